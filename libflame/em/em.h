/* The executor manager's insides, shared by its files:
 *   em.c    start/stop and options
 *   node.c  the node: registration, WatchNode, heartbeats, reconnecting
 *   exec.c  one thread per executor, running its life cycle
 *   run.c   a bound session's tasks over ExecutorStream (the batch window)
 *   pool.c  the warm pool: service processes started ahead, per application
 *
 * Threads and locks:
 *   - the node thread (node.c) owns the connection and starts executor
 *     threads; a heartbeat thread runs beside it while it is connected;
 *   - each executor has a thread of its own (exec.c, run.c);
 *   - em->mu guards em->watch and em->execs, and with em->cv wakes sleepers
 *     when stopping; em->stopping is atomic and read anywhere;
 *   - x->mu guards x->stream and x->cancelled (the executor thread sets the
 *     stream, the node thread cancels it on teardown). Lock order: em->mu
 *     is never held while taking x->mu;
 *   - the warm pool has a thread and a lock of its own (pool.c); executor
 *     threads take from it. */
#ifndef FL_EM_H
#define FL_EM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "flame/executor.h"
#include "rpc/rpc.h"
#include "install/install.h"
#include "shim/shim.h"

#include "backend.pb-c.h"

#define EM_BE(name) rpc_path(&flame__v1__backend__descriptor, name)
#define EM_CALL_TIMEOUT_MS 10000

typedef struct em_exec em_exec;
typedef struct em_pool em_pool;

struct flame_executor_manager {
    char *endpoint; /* http(s)://host:port, handed to services as FLAME_ENDPOINT */
    char *ca_file;  /* absolute; with TLS, handed to services as FLAME_CA_FILE */
    char *cache_endpoint; /* FLAME_CACHE_ENDPOINT for services, or NULL */
    char *cache_ca_file;  /* the cache's CA (grpcs:// packages), or NULL */
    char *node;
    char *work_dir, *log_dir, *bin_dir;
    flame_resreq res;
    int heartbeat_ms;
    int node_timeout_ms; /* cluster.node_timeout: no ack for this long = the manager is lost */
    int task_timeout_ms;
    char *sandbox_default; /* the level of applications that name none */
    char *sandbox_allow;   /* ",none,process," : the levels this node runs */
    flame_inproc_service *inproc;
    size_t inproc_len;
    rpc_channel *ch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stopping;
    rpc_stream *watch; /* the WatchNode stream while connected */
    em_exec *execs;
    _Atomic int64_t alive_ns; /* mono: the node loop or a heartbeat last moved */
    atomic_bool node_done;    /* the node thread returned */
    int warm_pool, warm_pool_total; /* pool.c's sizes; 0: no pool */
    em_pool *pool;                  /* NULL: none */
};

/* One executor: its thread runs the life cycle in exec.c. */
struct em_exec {
    flame_executor_manager *em;
    char *id;
    pthread_t th;
    rpc_cancel *cancel;   /* aborts its unary calls on teardown */
    pthread_mutex_t mu;   /* guards stream and cancelled */
    rpc_stream *stream;   /* the ExecutorStream in use */
    bool cancelled;       /* torn down: a stream set from now on is cancelled */
    struct em_exec *next; /* in em->execs */
};

/* metrics.c: the metrics (any thread). step: exec.c's em_state (-1: none). */
#define EM_METRICS_N_STEPS 7
enum { EM_SHIM_ENTER, EM_SHIM_INVOKE, EM_SHIM_INVOKE_BATCH };
void em_metrics_step(int from, int to);
void em_metrics_bind(bool ok);
void em_metrics_shim(int op, int64_t ns);
enum { EM_WARM_STARTED, EM_WARM_TAKEN, EM_WARM_EXITED, EM_WARM_FAILED, EM_WARM_N_EVENTS };
void em_metrics_warm(int event);
void em_metrics_warm_gauges(unsigned ready, uint64_t memory);

/* node.c: the node thread (pthread start routine; arg is the manager). */
void *em_node_main(void *arg);
/* Sleeps up to ms, waking early when the manager stops. */
void em_wait_ms(flame_executor_manager *em, int ms);

/* exec.c */
/* Starts a thread running executor id (the session manager created it). */
void em_exec_start(flame_executor_manager *em, const char *id);
/* Cancels every executor's calls and streams and joins their threads. */
void em_exec_teardown_all(flame_executor_manager *em);
/* Sets (or clears, NULL) the executor's stream; cancels it at once if the
 * executor is being torn down. */
void em_exec_set_stream(em_exec *x, rpc_stream *st);
/* A unary Backend call that teardown can abort. resp_desc NULL: the reply
 * is a Result; resp NULL: the reply is dropped. */
flame_status em_exec_call(em_exec *x, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                          int timeout_ms);

/* The session context of a service of application app on this node (the
 * node's settings and the spec's sandbox); session_id "". */
void em_shim_ctx(const flame_executor_manager *em, fl_shim_session *ctx, const char *id,
                 const char *app, const Flame__V1__ApplicationSpec *spec);
/* Installs an application (its installer, url, command); on failure
 * *message (malloc'ed) says why. */
flame_status em_install(const flame_executor_manager *em, const char *app,
                        const Flame__V1__ApplicationSpec *spec, fl_installation *inst,
                        char **message);

/* pool.c: the warm pool (em->warm_pool > 0); any thread. */
void em_pool_start(flame_executor_manager *em);
/* Stops its threads and every process it holds. */
void em_pool_stop(flame_executor_manager *em);
/* The executor ctx->executor_id is idle after a session like ctx's: a
 * service for its next one is started ahead (within the pool's sizes). */
void em_pool_reserve(flame_executor_manager *em, const fl_shim_session *ctx);
/* The executor's bind to ctx's session: hands over the service started
 * ahead for it, if it is for exactly ctx's application spec, sandbox and
 * resreq, with its installation moved into *inst; the caller owns the shim
 * (enter it, then leave and free it as any other). NULL: none (one for
 * another kind of session is stopped). */
fl_shim *em_pool_take(flame_executor_manager *em, const fl_shim_session *ctx,
                      fl_installation *inst);
/* The executor goes away: its service started ahead is stopped. */
void em_pool_release(flame_executor_manager *em, const char *exec);
/* The memory its processes use now (bytes): the node's allocatable is less
 * by that much. */
uint64_t em_pool_memory(const flame_executor_manager *em);

/* run.c: runs a bound session's tasks until the session manager says
 * unbind (FLAME_OK) or the connection is gone (an error). */
flame_status em_run_session(em_exec *x, fl_shim *shim, const fl_shim_session *ctx);

#endif
