/* Flame in C — the session manager as a library.
 *
 * Serves flame.v1 Frontend and Backend on one endpoint, keeps state in a
 * storage engine ("sqlite://PATH" or "none") and runs the scheduler. All
 * state is owned by one engine thread started by flame_session_manager_start().
 */
#ifndef FLAME_SERVER_H
#define FLAME_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flame_session_manager flame_session_manager;

#define FLAME_SERVER_OPTIONS_VERSION 2

/* Every field is optional (NULL/0: the config file's value, else the
 * default). Fields set here override the config file. */
typedef struct flame_server_options {
    int version;                 /* FLAME_SERVER_OPTIONS_VERSION */
    const char *config_file;     /* Flame's cluster YAML, or NULL */
    const char *endpoint;        /* default "http://127.0.0.1:8080"; port 0 picks one */
    const char *storage;         /* "sqlite://PATH" (default "sqlite://flame.db") or "none" */
    size_t max_message_size;     /* bytes; default 64 MiB */
    int schedule_interval_ms;    /* default 500 */
    /* version 2: */
    /* TLS (override cluster.tls.*): with a cert and key the server speaks
     * TLS whatever the endpoint's scheme; ca_file verifies client
     * certificates, tls_mutual (1) requires them; crl_file lists revoked
     * ones. Files are checked at start (FLAME_ERR_CONFIG naming the key)
     * and reloaded when they change. */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_ca_file;
    int tls_mutual;
    const char *tls_crl_file;
    /* Role of TLS clients without a certificate: "none" or "user" (never
     * "admin"); overrides cluster.auth.anonymous_role. */
    const char *auth_anonymous_role;
    /* 1: allow a non-loopback endpoint without TLS (every client is then
     * admin; logged at WARN on every start). 0: such an endpoint is
     * FLAME_ERR_CONFIG. */
    int insecure;
} flame_server_options;

#define FLAME_SERVER_OPTIONS_INIT { FLAME_SERVER_OPTIONS_VERSION, NULL, NULL, NULL, 0, 0, \
    NULL, NULL, NULL, 0, NULL, NULL, 0 }

/* Sets *opts to FLAME_SERVER_OPTIONS_INIT of this library (for callers that
 * cannot use the macro, e.g. bindings). */
void flame_server_options_init(flame_server_options *opts);

/* cluster.limits (ours): what one client may ask of the session manager.
 * 0 in a field: its default. */
typedef struct flame_cluster_limits {
    uint32_t max_tasks_per_request; /* CreateTasks/RunSession; default 1024 */
    size_t max_message_size;        /* bytes, both ways; default 64 MiB (task inputs and
                                       common data: at most (this - 64 KiB) / 2) */
    size_t max_send_queue;          /* bytes queued to one slow reader before its call is
                                       cancelled (RESOURCE_EXHAUSTED); default 16 MiB */
    int max_concurrent_streams;     /* calls per connection, parked ones
                                       included; default 1000 */
    int handshake_timeout_ms;       /* a connection's set-up; default 10000 */
    int idle_timeout_ms;            /* a connection without calls is closed; default 300000 */
    int keepalive_ms;               /* pings to find vanished peers; default 60000 */
    int shutdown_grace_ms;          /* a stop waits this long for calls; default 2000 */
} flame_cluster_limits;

/* The cluster configuration as read from Flame's YAML
 * (`cluster: {name, endpoint, storage, resreq, policies, schedule_interval,
 * tls: {cert_file, key_file, ca_file, mutual, crl_file},
 * auth: {anonymous_role}, recovery: {session: {retry_limits}}}`). cluster.tls present means the session manager
 * serves TLS (cert_file and key_file are then required); mutual: client
 * certificates required (ca_file required). Unset strings are NULL.
 * Library-allocated; free with flame_cluster_config_free(). */
typedef struct flame_cluster_config {
    const char *name;
    const char *endpoint;
    const char *storage;
    flame_resreq resreq;         /* default resreq of sessions */
    const char *const *policies;
    size_t policies_len;
    int schedule_interval_ms;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_ca_file;
    int tls_mutual;                  /* cluster.tls.mutual */
    const char *tls_crl_file;        /* cluster.tls.crl_file */
    const char *auth_anonymous_role; /* cluster.auth.anonymous_role: "none" or "user" */
    flame_cluster_limits limits;
    /* cache: {endpoint, network_interface, storage, eviction: {policy,
     * max_memory, max_objects}, tls: {cert_file, key_file, ca_file}}, the
     * object cache's section (Flame's). Env overrides, applied by the
     * loader: FLAME_CACHE_STORAGE, FLAME_CACHE_EVICTION_POLICY,
     * FLAME_CACHE_MAX_MEMORY, FLAME_CACHE_MAX_OBJECTS. */
    const char *cache_endpoint;          /* default "grpc://127.0.0.1:9090"; grpcs:// = TLS */
    const char *cache_network_interface; /* regex of the interface whose first IPv4 is
                                            bound and advertised; NULL: the endpoint's host */
    const char *cache_storage;           /* NULL: memory only; "fs://PATH", "file://PATH",
                                            "none" or a path (relative: under $FLAME_HOME) */
    const char *cache_eviction_policy;   /* "lru" (default) or "none" */
    uint64_t cache_max_memory;           /* bytes kept in memory; default 1 GiB */
    uint64_t cache_max_objects;          /* objects kept in memory; 0: no limit */
    const char *cache_tls_cert_file;     /* cache.tls (required with grpcs://): */
    const char *cache_tls_key_file;
    const char *cache_tls_ca_file;
    /* metrics: {session_manager, executor_manager, object_cache} (ours):
     * where each daemon serves /metrics, /healthz and /readyz, as
     * "[HOST:]PORT" (HOST default 127.0.0.1; include/flame/metrics.h);
     * NULL: that daemon serves none unless its --metrics flag says so.
     * log: {format}: "text" (default) or "json" (ours). */
    const char *metrics_session_manager;
    const char *metrics_executor_manager;
    const char *metrics_object_cache;
    const char *log_format;
    /* cluster.recovery.session.retry_limits: failed binds of a session in
     * a row before it gets no more executors (event 1002); default 5 */
    uint32_t session_retry_limits;
    /* provider: none|kubernetes (ours) — who launches executors: `none`
     * (default), executor managers register themselves; `kubernetes`, the
     * session manager creates executor-manager pods for the sessions'
     * demand and deletes them on release, configured by the top-level
     * kubernetes: {namespace, image, kubeconfig, endpoint, service_account,
     * labels: {KEY: VALUE}, resources, max_pods, scale_down_delay,
     * tls_secret, node_ca_cert, node_ca_key, node_cert_ttl, host_users}. */
    const char *provider;            /* NULL: none */
    const char *k8s_namespace;       /* NULL: the kubeconfig context's, the pod's, or "default" */
    const char *k8s_image;           /* the executor manager's image (required) */
    const char *k8s_kubeconfig;      /* NULL: in-cluster (service account token + CA) */
    const char *k8s_endpoint;        /* the session manager as pods reach it; NULL: cluster.endpoint */
    const char *k8s_service_account; /* the pods'; NULL: the namespace's default */
    const char *k8s_labels;          /* extra pod labels, "k=v,k2=v2"; NULL: none */
    flame_resreq k8s_resources;      /* a pod's when its session asks for nothing; 0: cluster.resreq */
    uint32_t k8s_max_pods;           /* pods at most; default 100 */
    int k8s_scale_down_delay_ms;     /* an open session's surplus pods wait this; default 60000 */
    const char *k8s_tls_secret;      /* a Secret with ca.crt, tls.crt, tls.key mounted in the pods
                                        for a TLS session manager; NULL: plaintext */
    /* cluster.node_timeout (ours), ms: a node whose heartbeats stop for
     * this long is NotReady (its executors are released and their tasks
     * run elsewhere) even when its connection stays open, and an executor
     * manager that hears no acknowledgement for this long reconnects.
     * Default 10000; "10s", "500ms" or a number of ms. */
    int node_timeout_ms;
    /* kubernetes.node_ca_cert, node_ca_key (ours): a CA able to sign node
     * certificates; the provider issues each pod its own (CN = the pod's
     * name) into a Secret made and deleted with the pod. Required with
     * cluster.tls.mutual unless tls_secret is set (one identity for every
     * pod). kubernetes.node_cert_ttl: "24h", "90m", "3600s" or seconds
     * (default 24 h); a pod is replaced when 90% of it has passed. */
    const char *k8s_node_ca_cert;
    const char *k8s_node_ca_key;
    int64_t k8s_node_cert_ttl_s;
    /* kubernetes.host_users (ours): 1 runs the pods in the host's user
     * namespace (for nodes without user namespace support); 0, the default,
     * in one of their own (hostUsers: false: root in the pod is no one
     * outside). */
    int k8s_host_users;
    /* executors.warm_pool (ours): idle executors per application an
     * executor manager keeps the next session's service started ahead for
     * (warm session starts; 0: none), and executors.warm_pool_total: at
     * most this many in all. Defaults 2 and 8. */
    int warm_pool;
    int warm_pool_total;
    /* cluster.busy_poll (ours), µs: after a pass with work, the session
     * manager's event loop keeps looking for the next event this long
     * without sleeping (the answer to what it sent often comes that soon,
     * and waking a sleeping thread costs more); 0: it sleeps at once.
     * Default 50; "50us" or a number of µs, at most 10000. */
    int busy_poll_us;
} flame_cluster_config;

/* Reads and validates a cluster config file. FLAME_ERR_CONFIG with a
 * message naming the file and the key on bad input (an unknown key of the
 * cache section too); FLAME_ERR_IO when the file cannot be read. path NULL:
 * the defaults, with the FLAME_CACHE_* overrides. */
flame_status flame_cluster_config_load(flame_cluster_config **out, const char *path);
void flame_cluster_config_free(flame_cluster_config *config);

/* Opens the storage, restores the state, registers the built-in
 * applications when absent, binds the endpoint and starts serving on a
 * thread of its own. Returns once the port is bound. Without TLS the
 * endpoint must be a loopback one (every local client is then the
 * identity `local`, role admin) unless opts->insecure is set. */
flame_status flame_session_manager_start(flame_session_manager **out,
                                         const flame_server_options *opts);

/* The TCP port actually bound (useful with port 0). */
int flame_session_manager_port(const flame_session_manager *sm);

/* Stops serving (open calls are cancelled), commits, closes the storage,
 * joins the thread and frees sm. NULL is a no-op. Not thread-safe with
 * itself. */
void flame_session_manager_stop(flame_session_manager *sm);

#ifdef __cplusplus
}
#endif

#endif
