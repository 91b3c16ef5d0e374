/* libFuzzer target: what the kubernetes provider reads from the API server,
 * without a server: a pod watch (a stream of JSON events, one a line, cut
 * into reads as curl would hand them over: kube_lines_feed) applied to the
 * provider's books (on_event of provider/kubernetes.c, which is included
 * here, as its event handling is static and works on the provider), and
 * the Status text of an error answer (kube_error_text). Byte 0: the size of
 * the reads (1..256); the rest is the answer's body. Afterwards every pod in
 * the books must be filed under its own name. */
/* the library (linked whole) has the provider's functions too: this copy's
 * get other names */
#define fl_provider_new fuzz_provider_new
#define fl_provider_free fuzz_provider_free
#define fl_provider_demand_set fuzz_provider_demand_set
#include "../../libflame/provider/kubernetes.c"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    fl_provider *p = fl_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    watch_ctx w = { p, false, NULL };
    fl_buf buf = { 0 };
    for (size_t at = 1; at < size; at += chunk) {
        size_t k = size - at < chunk ? size - at : chunk;
        if (!kube_lines_feed(&buf, (const char *)data + at, k, on_event, &w))
            break;
    }
    size_t it = 0;
    const char *name;
    void *v;
    while (fl_map_next(&p->pods, &it, &name, &v))
        check(strcmp(name, ((kpod *)v)->name) == 0, "a pod filed under another name");
    /* the whole body as an error answer's Status */
    char *body = fl_malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = 0;
    char *text = kube_error_text(403, body);
    check(strlen(text) <= 512, "an error text longer than 512");
    free(text);
    free(body);
    free(w.error);
    fl_buf_free(&buf);
    provider_destroy(p);
    return 0;
}
