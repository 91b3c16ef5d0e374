/* flame-shim rest: an HTTP service (shim/rest-openapi.yaml has the paths).
 *
 * With a program: we pick a free loopback port, start the program with
 * PORT set (and $PORT / ${PORT} in its arguments replaced), and its base
 * URL is http://127.0.0.1:PORT; with --url, the service already runs there.
 * We wait (up to HEALTH_WAIT_MS) for GET <health> to answer 2xx, then:
 *   POST   /sessions/{session_id}                  body: the common data
 *   POST   /sessions/{session_id}/tasks/{task_id}  body: the input; 2xx: the
 *          body is the output; any other status fails the task with the body
 *          as its message
 *   DELETE /sessions/{session_id}                  at the end
 * 404 or 405 on enter/leave means the service keeps no sessions (fine).
 * One curl handle, so the connection is kept alive. A request is retried
 * only when it could not connect (it never reached the service); a task
 * whose POST was sent is never sent again. A program that exits fails the
 * task it was running and is started (and entered) again for the next.
 * Threads: flame_service_run's one callback thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <flame/flame.h>

#include "child.h"
#include "shim.h"

#define HEALTH_WAIT_MS 60000
#define CONTROL_TIMEOUT_MS 30000 /* enter, leave, health */
#define CONNECT_RETRIES 3
#define MAX_MESSAGE 4096

static struct {
    const shim_opts *o;
    shim_child c;
    CURL *curl;
    char *base;       /* the service's base URL, no trailing '/' */
    char *session_id; /* the session we are in */
    void *common;
    size_t common_len;
    bool entered;     /* the service has our session (re-entered after a restart) */
} S = { .c = SHIM_CHILD_INIT };

typedef struct body {
    char *data;
    size_t len;
    bool too_big;
} body;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    body *b = arg;
    size_t k = size * n;
    if (b->len + k > S.o->max_frame) {
        b->too_big = true;
        return 0; /* curl stops: CURLE_WRITE_ERROR */
    }
    char *d = realloc(b->data, b->len + k + 1);
    if (!d)
        abort();
    memcpy(d + b->len, p, k);
    b->data = d;
    b->len += k;
    d[b->len] = 0;
    return k;
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* One request. *status is the HTTP status (0: none); out gets the body.
 * Retries only a connection that was refused. NULL or why it failed. */
static char *request(const char *method, const char *path, const void *data, size_t len,
                     int timeout_ms, long *status, body *out)
{
    char *url = xprintf("%s%s", S.base, path);
    *status = 0;
    CURLcode rc = CURLE_OK;
    for (int attempt = 0; attempt <= CONNECT_RETRIES; attempt++) {
        free(out->data);
        *out = (body){ 0 };
        CURL *c = S.curl;
        curl_easy_setopt(c, CURLOPT_URL, url);
        if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, data ? data : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        } else { /* GET, or DELETE (a GET with another verb: no body) */
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
        }
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
        rc = curl_easy_perform(c);
        if (rc != CURLE_COULDNT_CONNECT || attempt == CONNECT_RETRIES)
            break;
        if (S.o->argv && !child_alive(&S.c))
            break; /* nobody will listen */
        msleep(100 << attempt);
    }
    free(url);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(S.curl, CURLINFO_RESPONSE_CODE, status);
        return NULL;
    }
    if (out->too_big)
        return xprintf("its answer to %s %s is larger than %zu bytes", method, path,
                       S.o->max_frame);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return xprintf("timed out: %s %s did not complete within %d ms", method, path,
                       timeout_ms);
    return xprintf("%s %s failed: %s", method, path, curl_easy_strerror(rc));
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* s with $PORT and ${PORT} replaced (malloc'ed). */
static char *with_port(const char *s, const char *port)
{
    size_t cap = strlen(s) * 2 + 16, n = 0;
    char *o = malloc(cap);
    if (!o)
        abort();
    while (*s) {
        size_t k = strncmp(s, "${PORT}", 7) == 0 ? 7
                   : strncmp(s, "$PORT", 5) == 0 && !(s[5] == '_' || (s[5] >= 'A' && s[5] <= 'Z') ||
                                                     (s[5] >= 'a' && s[5] <= 'z') ||
                                                     (s[5] >= '0' && s[5] <= '9'))
                       ? 5
                       : 0;
        if (n + 16 >= cap && !(o = realloc(o, cap *= 2)))
            abort();
        if (k) {
            n += (size_t)sprintf(o + n, "%s", port);
            s += k;
        } else {
            o[n++] = *s++;
        }
    }
    o[n] = 0;
    return o;
}

/* Starts the program (if we run one) and waits for its health. */
static char *start_service(void)
{
    if (!S.o->argv)
        return NULL;
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    int p = free_port();
    if (p < 0)
        return xprintf("no free loopback port for the service");
    char port[16];
    snprintf(port, sizeof port, "%d", p);
    size_t argc = 0;
    while (S.o->argv[argc])
        argc++;
    char **argv = calloc(argc + 1, sizeof *argv);
    if (!argv)
        abort();
    for (size_t i = 0; i < argc; i++)
        argv[i] = with_port(S.o->argv[i], port);
    char *env[] = { xprintf("PORT=%s", port), NULL };
    char *why = child_start(&S.c, argv, env, false);
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    free(env[0]);
    free(S.base);
    S.base = xprintf("http://127.0.0.1:%s", port);
    return why;
}

static char *wait_health(void)
{
    long long end = now_ms() + HEALTH_WAIT_MS;
    char *last = NULL;
    for (int wait = 20;; wait = wait < 500 ? wait * 2 : 500) {
        if (S.o->argv && !child_alive(&S.c)) {
            char *how = child_exit_text(&S.c);
            char *m = xprintf("the service %s before it was healthy (its output is in the "
                              "executor's log)", how);
            free(how);
            free(last);
            return m;
        }
        long status;
        body b = { 0 };
        char *why = request("GET", S.o->health, NULL, 0, CONTROL_TIMEOUT_MS, &status, &b);
        free(b.data);
        if (!why && status >= 200 && status < 300) {
            free(last);
            return NULL;
        }
        free(last);
        last = why ? why : xprintf("GET %s answered %ld", S.o->health, status);
        if (now_ms() >= end)
            break;
        msleep(wait);
    }
    char *m = xprintf("the service at %s was not healthy within %d s: %s", S.base,
                      HEALTH_WAIT_MS / 1000, last);
    free(last);
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    return m;
}

/* /sessions/{id}, or /sessions/{id}/tasks/{task_id} (malloc'ed). */
static char *session_path(const char *task_id)
{
    char *sid = curl_easy_escape(S.curl, S.session_id, 0);
    char *tid = task_id ? curl_easy_escape(S.curl, task_id, 0) : NULL;
    char *p = tid ? xprintf("/sessions/%s/tasks/%s", sid, tid) : xprintf("/sessions/%s", sid);
    curl_free(sid);
    curl_free(tid);
    return p;
}

static char *body_message(const char *what, long status, const body *b)
{
    int n = b->len > MAX_MESSAGE ? MAX_MESSAGE : (int)b->len;
    return n ? xprintf("%s: HTTP %ld: %.*s", what, status, n, b->data)
             : xprintf("%s: HTTP %ld", what, status);
}

/* The service runs, is healthy and has our session; else why not. */
static char *ensure_entered(void)
{
    if (S.entered && (!S.o->argv || child_alive(&S.c)))
        return NULL;
    if (S.o->argv && S.c.exited)
        fprintf(stderr, "flame-shim: the service exited; starting it again\n");
    S.entered = false;
    char *why = start_service();
    if (!why)
        why = wait_health();
    if (why)
        return why;
    char *path = session_path(NULL);
    long status;
    body b = { 0 };
    why = request("POST", path, S.common, S.common_len, CONTROL_TIMEOUT_MS, &status, &b);
    free(path);
    if (!why && !(status >= 200 && status < 300) && status != 404 && status != 405)
        why = body_message("the service refused the session", status, &b);
    free(b.data);
    S.entered = !why;
    return why;
}

static int on_enter(const flame_session_context *ctx, char **message, void *payload)
{
    free(S.session_id);
    free(S.common);
    S.session_id = strdup(ctx->session_id ? ctx->session_id : "");
    S.common_len = ctx->common_data.data ? ctx->common_data.len : 0;
    S.common = malloc(S.common_len + 1);
    if (!S.session_id || !S.common)
        abort();
    if (S.common_len)
        memcpy(S.common, ctx->common_data.data, S.common_len);
    S.entered = false;
    *message = ensure_entered();
    return *message ? 1 : 0;
}

static int fail(flame_task_result *result, char *message)
{
    flame_task_result_set_message(result, message);
    free(message);
    return 1;
}

static int on_invoke(const flame_task_context *t, flame_task_result *result, void *payload)
{
    char *why = ensure_entered();
    if (why) {
        char *m = xprintf("task %s: the service is not available: %s", t->task_id, why);
        free(why);
        return fail(result, m);
    }
    char *path = session_path(t->task_id);
    long status;
    body b = { 0 };
    /* no timeout given: a day, so a lost connection cannot hang us forever */
    int timeout = S.o->timeout_ms > 0 ? S.o->timeout_ms : 86400000;
    why = request("POST", path, t->input.data, t->input.data ? t->input.len : 0, timeout,
                  &status, &b);
    free(path);
    int rc = 0;
    if (why) {
        /* a connection a dying service dropped comes before its exit can be
         * reaped: it gets SHIM_REAP_MS to be seen exiting, so the task says so */
        bool timed_out = strncmp(why, "timed out", 9) == 0;
        if (S.o->argv && !timed_out)
            child_wait_exit(&S.c, SHIM_REAP_MS);
        if (S.o->argv && !child_alive(&S.c) && S.c.exited) {
            char *how = child_exit_text(&S.c);
            char *m = xprintf("task %s: the service %s while running it (its output is in the "
                              "executor's log); it is started again for the next task",
                              t->task_id, how);
            free(how);
            free(why);
            why = m;
        } else if (S.o->argv) { /* stuck or broken: a new one for the next task */
            /* stuck: no grace (the executor's own timeout is near) */
            child_stop(&S.c, timed_out ? 0 : SHIM_STOP_GRACE_MS);
            char *m = xprintf("task %s: %s; the service is started again for the next task",
                              t->task_id, why);
            free(why);
            why = m;
        }
        S.entered = S.entered && !S.o->argv;
        rc = fail(result, why);
    } else if (status >= 200 && status < 300) {
        flame_task_result_set_output(result, b.data ? b.data : "", b.len);
    } else {
        char *what = xprintf("task %s", t->task_id);
        rc = fail(result, body_message(what, status, &b));
        free(what);
    }
    free(b.data);
    return rc;
}

static void on_leave(void *payload)
{
    if (S.entered && (!S.o->argv || child_alive(&S.c))) {
        char *path = session_path(NULL);
        long status;
        body b = { 0 };
        free(request("DELETE", path, NULL, 0, CONTROL_TIMEOUT_MS, &status, &b));
        free(b.data);
        free(path);
    }
    S.entered = false;
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
}

int rest_main(const shim_opts *o)
{
    S.o = o;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(S.curl = curl_easy_init())) {
        fprintf(stderr, "flame-shim: libcurl could not start\n");
        return 1;
    }
    if (o->url) {
        S.base = strdup(o->url);
        size_t n = strlen(S.base);
        while (n && S.base[n - 1] == '/')
            S.base[--n] = 0;
    }
    curl_easy_setopt(S.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(S.curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(S.curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(S.curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(S.curl, CURLOPT_WRITEFUNCTION, on_data);
    if (!o->url) /* our own loopback service: never through an http_proxy of the environment */
        curl_easy_setopt(S.curl, CURLOPT_PROXY, "");
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(S.curl, CURLOPT_HTTPHEADER, h);
    flame_service svc = { FLAME_SERVICE_VERSION, on_enter, on_invoke, on_leave, NULL };
    flame_status st = flame_service_run(&svc);
    child_stop(&S.c, SHIM_STOP_GRACE_MS);
    curl_easy_cleanup(S.curl);
    curl_slist_free_all(h);
    curl_global_cleanup();
    free(S.base);
    free(S.session_id);
    free(S.common);
    if (st) {
        fprintf(stderr, "flame-shim: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
