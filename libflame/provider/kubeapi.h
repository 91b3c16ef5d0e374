/* A minimal Kubernetes API client over libcurl (loaded on first use,
 * install/dl.h): credentials (a kubeconfig,
 * or the in-cluster service account) and bounded HTTPS requests, one-shot
 * or streamed line by line (watches). No client library.
 *
 * Threads: a kube_api is read-only once loaded; any thread may call with
 * it (each call uses its own curl handle). kube_global_init() before the
 * first call from any thread. */
#ifndef FL_PROVIDER_KUBEAPI_H
#define FL_PROVIDER_KUBEAPI_H

#include <stdbool.h>
#include <stddef.h>

#include "flame/error.h"
#include "util/util.h"

typedef struct kube_api {
    char *server;                  /* https://HOST:PORT, no trailing slash */
    char *ca_file, *ca_pem;        /* one of them, or neither (system CAs) */
    size_t ca_pem_len;
    char *token, *token_file;      /* token_file re-read per call (rotation) */
    char *cert_file, *key_file;    /* client certificate (kubeconfig) */
    char *cert_pem, *key_pem;
    size_t cert_pem_len, key_pem_len;
    bool insecure;                 /* insecure-skip-tls-verify */
    char *namespace;               /* the context's, or in-cluster; NULL: none said */
} kube_api;

/* Loads libcurl (dlopen, once); FLAME_ERR_UNAVAILABLE naming what is
 * missing. */
flame_status kube_global_init(void);

/* kubeconfig NULL: in-cluster (KUBERNETES_SERVICE_HOST/PORT and
 * /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}).
 * FLAME_ERR_CONFIG naming what is missing. */
flame_status kube_api_load(kube_api *a, const char *kubeconfig);
void kube_api_clear(kube_api *a);

/* One request with a body (JSON) or none. *status: the HTTP status, 0 when
 * no answer came (then the error is set and returned); *resp: the body
 * (malloc'ed, NUL-terminated; may be NULL). */
flame_status kube_call(const kube_api *a, const char *method, const char *path,
                       const char *body, long timeout_ms, long *status, char **resp);

/* A streamed GET: on_line(arg, line) for each complete line (NUL-terminated,
 * without '\n'); returns false to stop. stop(arg) is polled about once a
 * second. The whole call is bounded by timeout_ms. */
flame_status kube_stream(const kube_api *a, const char *path, long timeout_ms,
                         bool (*on_line)(void *arg, char *line), bool (*stop)(void *arg),
                         void *arg, long *status);

/* kube_stream's line splitting, over bytes: appends n bytes of a watch to
 * buf and calls on_line for every complete non-empty line (NUL-terminated,
 * without its '\n'); the rest stays in buf. false once on_line returned
 * false (buf is left as it was then). */
bool kube_lines_feed(fl_buf *buf, const char *p, size_t n, bool (*on_line)(void *arg, char *line),
                     void *arg);

/* "403 Forbidden: <the Status message of body>" (malloc'ed). */
char *kube_error_text(long status, const char *body);

#endif
