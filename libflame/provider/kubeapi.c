/* The Kubernetes API client: credentials from a kubeconfig or the pod's
 * service account, and bounded requests over libcurl.
 *
 * Threads: see kubeapi.h (a loaded kube_api is only read). */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "install/dl.h" /* libcurl, loaded on first use */
#include "provider/kubeapi.h"
#include "util/util.h"
#include "util/yaml.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_RESPONSE (64u << 20) /* a list of every pod of ours fits */

/* The loaded libcurl, or NULL with the error set. */
static const fl_curl_api *curl_api(void)
{
    char *why = NULL;
    const fl_curl_api *c = fl_curl_api_get(&why);
    if (!c)
        fl_error(FLAME_ERR_UNAVAILABLE, "kubernetes: %s", why ? why : "libcurl not loaded");
    free(why);
    return c;
}

flame_status kube_global_init(void)
{
    return curl_api() ? FLAME_OK : FLAME_ERR_UNAVAILABLE;
}

void kube_api_clear(kube_api *a)
{
    free(a->server);
    free(a->ca_file);
    free(a->ca_pem);
    free(a->token);
    free(a->token_file);
    free(a->cert_file);
    free(a->key_file);
    free(a->cert_pem);
    free(a->key_pem);
    free(a->namespace);
    memset(a, 0, sizeof *a);
}

static char *trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = 0;
    return s;
}

/* Base64 (kubeconfig *-data fields) -> bytes; NULL when malformed. */
static char *b64_decode(const char *in, size_t *len)
{
    size_t n = strlen(in);
    if (n % 4)
        return NULL;
    unsigned char *out = fl_malloc(n / 4 * 3 + 1);
    int m = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (m < 0) {
        free(out);
        return NULL;
    }
    while (n && in[n - 1] == '=') {
        n--;
        m--;
    }
    out[m] = 0;
    *len = (size_t)m;
    return (char *)out;
}

/* A path of the kubeconfig, relative to its directory. */
static char *rel_path(const char *kubeconfig, const char *p)
{
    if (p[0] == '/')
        return fl_strdup(p);
    const char *slash = strrchr(kubeconfig, '/');
    if (!slash)
        return fl_strdup(p);
    return fl_sprintf("%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p);
}

/* The entry `name` of a list of {name, <key>: {...}} (clusters, users, contexts). */
static yaml_node_t *named(fl_yaml *y, yaml_node_t *root, const char *list, const char *key,
                          const char *name)
{
    yaml_node_t *l = fl_yaml_get(y, root, list);
    if (!l || l->type != YAML_SEQUENCE_NODE || !name)
        return NULL;
    for (yaml_node_item_t *i = l->data.sequence.items.start; i < l->data.sequence.items.top; i++) {
        yaml_node_t *e = yaml_document_get_node(&y->doc, *i);
        const char *n = e ? fl_yaml_str(fl_yaml_get(y, e, "name")) : NULL;
        if (n && strcmp(n, name) == 0)
            return fl_yaml_get(y, e, key);
    }
    return NULL;
}

static const char *str_of(fl_yaml *y, yaml_node_t *map, const char *key)
{
    yaml_node_t *v = map ? fl_yaml_get(y, map, key) : NULL;
    return v ? fl_yaml_str(v) : NULL;
}

/* "<file>: <what>" */
static flame_status load_err(const char *file, const char *what)
{
    return fl_error(FLAME_ERR_CONFIG, "kubeconfig %s: %s", file, what);
}

static flame_status pem_field(fl_yaml *y, yaml_node_t *map, const char *kubeconfig,
                              const char *file_key, const char *data_key, char **file,
                              char **pem, size_t *pem_len)
{
    const char *s = str_of(y, map, data_key);
    if (s) {
        *pem = b64_decode(s, pem_len);
        if (!*pem)
            return fl_error(FLAME_ERR_CONFIG, "kubeconfig %s: %s is not base64", kubeconfig,
                            data_key);
        return FLAME_OK;
    }
    if ((s = str_of(y, map, file_key)))
        *file = rel_path(kubeconfig, s);
    return FLAME_OK;
}

static flame_status load_kubeconfig(kube_api *a, const char *path)
{
    fl_yaml y = { 0 };
    flame_status st = fl_yaml_load_file(&y, path);
    if (st)
        return st;
    yaml_node_t *root = fl_yaml_root(&y);
    const char *ctx_name = root ? str_of(&y, root, "current-context") : NULL;
    yaml_node_t *ctx = ctx_name ? named(&y, root, "contexts", "context", ctx_name) : NULL;
    if (!ctx) {
        st = load_err(path, "no current-context, or it names no context");
        goto out;
    }
    yaml_node_t *cl = named(&y, root, "clusters", "cluster", str_of(&y, ctx, "cluster"));
    yaml_node_t *us = named(&y, root, "users", "user", str_of(&y, ctx, "user"));
    const char *server = str_of(&y, cl, "server");
    if (!cl || !server || strncmp(server, "https://", 8) != 0) {
        st = load_err(path, "the context's cluster has no https:// server");
        goto out;
    }
    a->server = fl_strdup(server);
    size_t n = strlen(a->server);
    while (n > 8 && a->server[n - 1] == '/')
        a->server[--n] = 0;
    const char *ns = str_of(&y, ctx, "namespace");
    a->namespace = ns && *ns ? fl_strdup(ns) : NULL;
    const char *insecure = str_of(&y, cl, "insecure-skip-tls-verify");
    a->insecure = insecure && strcmp(insecure, "true") == 0;
    if ((st = pem_field(&y, cl, path, "certificate-authority", "certificate-authority-data",
                        &a->ca_file, &a->ca_pem, &a->ca_pem_len)))
        goto out;
    if (us) {
        const char *t = str_of(&y, us, "token");
        if (t)
            a->token = fl_strdup(t);
        else if ((t = str_of(&y, us, "tokenFile")))
            a->token_file = rel_path(path, t);
        if ((st = pem_field(&y, us, path, "client-certificate", "client-certificate-data",
                            &a->cert_file, &a->cert_pem, &a->cert_pem_len)) ||
            (st = pem_field(&y, us, path, "client-key", "client-key-data", &a->key_file,
                            &a->key_pem, &a->key_pem_len)))
            goto out;
        if (fl_yaml_get(&y, us, "exec") || fl_yaml_get(&y, us, "auth-provider")) {
            st = load_err(path, "the user's exec/auth-provider credentials are not supported "
                                "(use a token, a token file or a client certificate)");
            goto out;
        }
    }
out:
    fl_yaml_free(&y);
    return st;
}

static flame_status load_in_cluster(kube_api *a)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port)
        return fl_error(FLAME_ERR_CONFIG, "kubernetes: no kubeconfig given and not in a pod "
                        "(KUBERNETES_SERVICE_HOST/PORT unset)");
    a->server = strchr(host, ':') ? fl_sprintf("https://[%s]:%s", host, port)
                                  : fl_sprintf("https://%s:%s", host, port);
    a->token_file = fl_strdup(SA_DIR "/token");
    a->ca_file = fl_strdup(SA_DIR "/ca.crt");
    char *ns = fl_read_small_file(SA_DIR "/namespace");
    if (ns && *trim(ns))
        a->namespace = ns;
    else
        free(ns);
    char *tok = fl_read_small_file(a->token_file);
    bool ok = tok && *trim(tok);
    free(tok);
    if (!ok)
        return fl_error(FLAME_ERR_CONFIG, "kubernetes: in-cluster, but %s is missing or empty "
                        "(automountServiceAccountToken?)", SA_DIR "/token");
    return FLAME_OK;
}

flame_status kube_api_load(kube_api *a, const char *kubeconfig)
{
    memset(a, 0, sizeof *a);
    flame_status st = kubeconfig ? load_kubeconfig(a, kubeconfig) : load_in_cluster(a);
    if (st)
        kube_api_clear(a);
    return st;
}

/* ---- requests ----------------------------------------------------------- */

typedef struct xfer {
    fl_buf body;
    bool too_big;
    /* streamed */
    bool (*on_line)(void *, char *);
    bool (*stop)(void *);
    void *arg;
    bool stopped;
} xfer;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (x->body.len + n > MAX_RESPONSE) {
        x->too_big = true;
        return 0;
    }
    if (!x->on_line) {
        fl_buf_add(&x->body, p, n);
        return n;
    }
    if (!kube_lines_feed(&x->body, p, n, x->on_line, x->arg)) {
        x->stopped = true;
        return 0;
    }
    return n;
}

bool kube_lines_feed(fl_buf *buf, const char *p, size_t n, bool (*on_line)(void *arg, char *line),
                     void *arg)
{
    size_t from = buf->len; /* the bytes before hold no '\n' */
    fl_buf_add(buf, p, n);
    size_t start = 0;
    for (size_t i = from; i < buf->len; i++) {
        if (buf->data[i] != '\n')
            continue;
        buf->data[i] = 0;
        if (i > start && !on_line(arg, buf->data + start))
            return false;
        start = i + 1;
    }
    memmove(buf->data, buf->data + start, buf->len - start);
    buf->len -= start;
    return true;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    xfer *x = ud;
    if (x->stop && x->stop(x->arg)) {
        x->stopped = true;
        return 1;
    }
    return 0;
}

static CURL *handle(const fl_curl_api *cu, const kube_api *a, const char *method,
                    const char *path, long timeout_ms, struct curl_slist **hdrs, char **auth)
{
    CURL *c = cu->curl_easy_init();
    if (!c)
        return NULL;
    char *url = fl_sprintf("%s%s", a->server, path);
    cu->curl_easy_setopt(c, CURLOPT_URL, url);
    free(url);
    cu->curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    cu->curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cu->curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    cu->curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    cu->curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    if (a->insecure) {
        cu->curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        cu->curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (a->ca_file)
        cu->curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_file);
    if (a->ca_pem) {
        struct curl_blob blob = { a->ca_pem, a->ca_pem_len, CURL_BLOB_COPY };
        cu->curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (a->cert_file)
        cu->curl_easy_setopt(c, CURLOPT_SSLCERT, a->cert_file);
    if (a->key_file)
        cu->curl_easy_setopt(c, CURLOPT_SSLKEY, a->key_file);
    if (a->cert_pem) {
        struct curl_blob blob = { a->cert_pem, a->cert_pem_len, CURL_BLOB_COPY };
        cu->curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &blob);
    }
    if (a->key_pem) {
        struct curl_blob blob = { a->key_pem, a->key_pem_len, CURL_BLOB_COPY };
        cu->curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &blob);
    }
    char *token = a->token ? fl_strdup(a->token) : NULL;
    if (!token && a->token_file && (token = fl_read_small_file(a->token_file)))
        trim(token);
    *hdrs = cu->curl_slist_append(NULL, "Accept: application/json");
    *hdrs = cu->curl_slist_append(*hdrs, "Content-Type: application/json");
    *auth = NULL;
    if (token && *token) {
        *auth = fl_sprintf("Authorization: Bearer %s", token);
        *hdrs = cu->curl_slist_append(*hdrs, *auth);
    }
    free(token);
    cu->curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    cu->curl_easy_setopt(c, CURLOPT_USERAGENT, "flame-session-manager");
    return c;
}

static flame_status perform(const kube_api *a, const char *method, const char *path,
                            const char *body, long timeout_ms, xfer *x, long *status)
{
    *status = 0;
    const fl_curl_api *cu = curl_api();
    if (!cu)
        return FLAME_ERR_UNAVAILABLE;
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    CURL *c = handle(cu, a, method, path, timeout_ms, &hdrs, &auth);
    if (!c)
        return fl_error(FLAME_ERR_INTERNAL, "kubernetes: curl_easy_init failed");
    if (body)
        cu->curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    cu->curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    cu->curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    if (x->stop) {
        cu->curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        cu->curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
        cu->curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode rc = cu->curl_easy_perform(c);
    cu->curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    cu->curl_easy_cleanup(c);
    cu->curl_slist_free_all(hdrs);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    if (x->stopped)
        return FLAME_OK;
    if (rc != CURLE_OK) {
        if (x->too_big)
            return fl_error(FLAME_ERR_UNAVAILABLE, "%s %s: answer over %u bytes",
                            method, path, MAX_RESPONSE);
        /* a stream that ran to its bound is a normal end */
        if (rc == CURLE_OPERATION_TIMEDOUT && x->on_line && *status == 200)
            return FLAME_OK;
        *status = 0;
        return fl_error(FLAME_ERR_UNAVAILABLE, "%s %s%s: %s", method, a->server,
                        path, cu->curl_easy_strerror(rc));
    }
    return FLAME_OK;
}

flame_status kube_call(const kube_api *a, const char *method, const char *path,
                       const char *body, long timeout_ms, long *status, char **resp)
{
    xfer x = { 0 };
    flame_status st = perform(a, method, path, body, timeout_ms, &x, status);
    *resp = st ? NULL : fl_buf_detach(&x.body);
    fl_buf_free(&x.body);
    return st;
}

flame_status kube_stream(const kube_api *a, const char *path, long timeout_ms,
                         bool (*on_line)(void *arg, char *line), bool (*stop)(void *arg),
                         void *arg, long *status)
{
    xfer x = { .on_line = on_line, .stop = stop, .arg = arg };
    flame_status st = perform(a, "GET", path, NULL, timeout_ms, &x, status);
    /* a non-200 answer is one JSON Status, not lines: hand it out whole */
    if (!st && *status != 200 && x.body.len) {
        fl_buf_add(&x.body, "", 1);
        on_line(arg, x.body.data);
    }
    fl_buf_free(&x.body);
    return st;
}

char *kube_error_text(long status, const char *body)
{
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *msg = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    const cJSON *reason = j ? cJSON_GetObjectItemCaseSensitive(j, "reason") : NULL;
    char *s = fl_sprintf("%ld %s: %s", status,
                         cJSON_IsString(reason) ? reason->valuestring : "error",
                         cJSON_IsString(msg) ? msg->valuestring
                         : body && *body     ? body
                                             : "(no message)");
    cJSON_Delete(j);
    if (strlen(s) > 512)
        strcpy(s + 500, "...");
    return s;
}
