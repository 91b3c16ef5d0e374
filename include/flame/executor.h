/* Flame in C — the executor manager as a library.
 *
 * Registers its node with a session manager, keeps the WatchNode stream and
 * runs executors through pluggable shims. Implemented by the execution
 * issue; this header fixes the API.
 */
#ifndef FLAME_EXECUTOR_H
#define FLAME_EXECUTOR_H

#include "error.h"
#include "service.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flame_executor_manager flame_executor_manager;

/* An application served in-process (the inproc shim): its sessions run the
 * service's callbacks inside the executor manager instead of a child
 * process. The service must outlive the executor manager. */
typedef struct flame_inproc_service {
    const char *application;
    const flame_service *service;
} flame_inproc_service;

#define FLAME_EXECUTOR_OPTIONS_VERSION 3

typedef struct flame_executor_options {
    int version;                 /* FLAME_EXECUTOR_OPTIONS_VERSION */
    const char *config_file;     /* Flame's cluster YAML (cluster.endpoint), or NULL */
    const char *endpoint;        /* session manager; default http://127.0.0.1:8080 */
    const char *work_dir;        /* per-executor directories, sockets and logs;
                                  * default $FLAME_HOME/work (FLAME_HOME: ~/.flame) */
    const char *node_name;       /* default: the host name */
    const char *bin_dir;         /* where commands without a '/' are looked for
                                  * first; default: the running program's directory */
    int has_resources;           /* 0: the machine's CPUs and memory */
    flame_resreq resources;
    int heartbeat_ms;            /* default 2000 */
    const flame_inproc_service *inproc;
    size_t inproc_len;
    /* A task whose service does not answer within this many ms fails with
     * a message saying so, and the service is restarted; 0: no limit. */
    int task_timeout_ms;
    /* TLS, for an https:// endpoint only (PEM files). The CA that verifies
     * the session manager: NULL: cluster.tls.ca_file of config_file, else
     * the client's (flame.yaml context, $FLAME_CA_FILE), else the system's
     * roots. The node's own certificate and key (its identity; required
     * by a session manager with mutual TLS): NULL: $FLAME_CERT_FILE and
     * $FLAME_KEY_FILE. cluster.tls.cert_file/key_file are the server's and
     * are never presented. */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    /* Version 2 (Security II). The sandbox level of applications that name
     * none: "none", "process" or "microvm"; NULL: "process". The levels this
     * node runs, comma-separated; NULL: all three. A session of an
     * application whose level this node does not run fails its bind with a
     * message saying so (never a weaker level instead). */
    const char *sandbox_default;
    const char *sandbox_allow;
    /* The uids (= gids) given to process-level executors, one each:
     * sandbox_uid_first .. + sandbox_uid_count - 1; 0: 100000, 65536. */
    unsigned sandbox_uid_first;
    unsigned sandbox_uid_count;
    /* Version 2. The microvm sandbox level: the accelerator, "kvm"
     * (NULL) or "tcg" (emulation, slow: only when chosen, never a fallback);
     * the image directory (vmlinuz + initramfs.img of
     * scripts/microvm-image.sh; NULL: $FLAME_MICROVM_IMAGE, else
     * ~/.cache/flame/microvm/current); VMs kept booted per application, the
     * service started, for fast binds (0: none). */
    const char *microvm_accel;
    const char *microvm_image;
    int microvm_pool;
    /* Version 3. Warm starts: an idle executor keeps the service of the
     * next session like its last started ahead (host-shim applications;
     * each process serves one session), at most warm_pool per application
     * and warm_pool_total in all. 0: config_file's executors.warm_pool /
     * warm_pool_total, else 2 and 8; negative: none. */
    int warm_pool;
    int warm_pool_total;
} flame_executor_options;

#define FLAME_EXECUTOR_OPTIONS_INIT { FLAME_EXECUTOR_OPTIONS_VERSION, NULL, NULL, NULL, NULL, \
    NULL, 0, { 0, 0, 0 }, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, 0, 0 }

/* Sets *opts to FLAME_EXECUTOR_OPTIONS_INIT of this library (for callers
 * that cannot use the macro, e.g. bindings). */
void flame_executor_options_init(flame_executor_options *opts);

/* Starts an executor manager on threads of its own: it registers its node
 * with the session manager, keeps a WatchNode stream (reconnecting with
 * bounded backoff when the session manager restarts) and runs the
 * executors the session manager creates on it. Returns at once; the
 * session manager need not be up yet. FLAME_ERR_CONFIG/IO for bad options. */
flame_status flame_executor_manager_start(flame_executor_manager **out,
                                          const flame_executor_options *opts);

/* The node name it registers as. Owned by em. */
const char *flame_executor_manager_node(const flame_executor_manager *em);

/* Stops every executor (service processes get SIGTERM, then SIGKILL),
 * joins the threads and frees em. NULL is a no-op. */
void flame_executor_manager_stop(flame_executor_manager *em);

#ifdef __cplusplus
}
#endif

#endif
