/* The session manager's internals, shared by its files. Everything here is
 * touched only by the engine thread (the rpc loop). */
#ifndef FL_SM_H
#define FL_SM_H

#include <pthread.h>

#include "flame/scheduler.h"
#include "flame/server.h"
#include "model/model.h"
#include "rpc/rpc.h"
#include "store/store.h"
#include "util/util.h"
#include "wire/wire.h"

#include "backend.pb-c.h"
#include "frontend.pb-c.h"

/* A parked WatchTask call. */
typedef struct fl_watch {
    rpc_call *call;
    struct sm_session *sess;
    fl_task *task;
    struct fl_watch *prev, *next;
} fl_watch;

struct sm_exec;

typedef struct sm_session {
    fl_session *s;
    struct sm_session *prev, *next; /* creation order */
    uint32_t *pq;                    /* FIFO of ids of Pending tasks */
    size_t pq_head, pq_len, pq_cap;
    struct sm_exec *waiters;         /* executors with a parked LaunchTask */
    struct sm_exec *streamers;       /* executors with an ExecutorStream */
    struct sm_swatch *swatches;      /* WatchSession calls */
    uint32_t sched_hint;             /* scratch: 1 + its index in a snapshot */
    bool held;                       /* scratch: an executor refers to it */
} sm_session;

/* A WatchSession call: outcomes of tasks >= from, batched per flush. */
typedef struct sm_swatch {
    rpc_call *call;
    sm_session *ss;
    uint64_t from;
    fl_buf pending;                  /* packed TaskOutcome fields (field 1) */
    uint32_t npending;
    bool dirty;
    struct sm_swatch *prev, *next;   /* in ss->swatches */
    struct sm_swatch *dnext;         /* in sm->dirty_swatches */
} sm_swatch;

/* A node of an executor manager. */
typedef struct sm_node {
    char *name;
    Flame__V1__Node *msg;            /* as registered; status kept current */
    rpc_call *watch;                 /* the WatchNode stream, NULL when gone */
    int64_t last_heartbeat;          /* Unix seconds */
    uint32_t sched_hint;             /* scratch: 1 + its index in a snapshot */
} sm_node;

/* An executor, server side (not persisted: executors are rebuilt by the
 * executor managers after a restart). */
typedef struct sm_exec {
    char *id;
    char *node;
    flame_resreq resreq;
    int shim;
    int state;                       /* flame_executor_state */
    sm_session *sess;                /* BINDING/BOUND/UNBINDING */
    char *intended;                  /* VOID: the session it was created for */
    char *app;                       /* the application it serves or served */
    int64_t idle_since;
    fl_task **run;                   /* running on it, in hand-out order */
    uint32_t nrun, caprun;
    rpc_call *bind_call, *launch_call;
    struct sm_exec *wprev, *wnext;   /* in sess->waiters */
    bool waiting;
    rpc_call *stream;                /* ExecutorStream, when open */
    uint32_t credit;                 /* tasks it may still be sent */
    struct sm_exec *sprev, *snext;   /* in sess->streamers */
    fl_buf out;                      /* ExecutorWork being built */
    uint32_t nout;
} sm_exec;

/* What to do with a call once the current batch is committed. */
typedef struct sm_out {
    rpc_call *call; /* held with rpc_call_ref */
    enum { OUT_REPLY, OUT_SEND, OUT_FINISH_OK, OUT_ERROR } kind;
    int code;
    char *msg;
    uint8_t *data;
    size_t len;
} sm_out;

struct flame_session_manager {
    rpc_server *rpc;
    rpc_legacy_method *methods;
    fl_store *store;
    pthread_t thread;
    int port;
    flame_resreq default_resreq;
    size_t max_message;
    int schedule_interval_ms;
    char *name;

    fl_map apps;     /* name -> fl_app */
    fl_map sessions; /* id -> sm_session */
    sm_session *first, *last;
    uint64_t next_seq;

    sm_out *out;     /* deferred until commit */
    size_t n_out, cap_out;

    fl_map nodes;    /* name -> sm_node */
    fl_map execs;    /* id -> sm_exec */
    uint64_t exec_seq;
    int64_t started_ms;
    flame_scheduler *sched;
    bool sched_dirty;                /* run a cycle at the next flush */
    bool sched_soft;                 /* demand moved: run one soon */
    int64_t sched_last_ns;
    sm_swatch *dirty_swatches;
    sm_exec **dirty_execs;           /* with ExecutorWork to send */
    size_t ndirty_execs, capdirty_execs;
};

typedef flame_session_manager sm_t;

/* engine.c */
void sm_defer(sm_t *sm, rpc_call *call, int kind, int code, const char *msg, uint8_t *data,
              size_t len);
void sm_flush(void *ctx);
void sm_add_session(sm_t *sm, fl_session *s);
void sm_remove_session(sm_t *sm, sm_session *ss);
sm_session *sm_session_get(sm_t *sm, const char *id);
/* Persists and notifies watchers of a task whose state changed. */
void sm_task_changed(sm_t *sm, sm_session *ss, fl_task *t);
void sm_watch_add(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t);
void sm_watch_drop_all(sm_t *sm, fl_task *t, int code, const char *msg);

/* backend.c */
void sm_sched_run(sm_t *sm);
void sm_tick(void *ctx);
/* Queues a Pending task of ss for the executors and hands it out. */
void sm_task_pending(sm_t *sm, sm_session *ss, fl_task *t);
/* Before a session is freed: executors forget it. */
void sm_session_detach(sm_t *sm, sm_session *ss);
void sm_nodes_free(sm_t *sm);
/* Sends what accumulated for session watchers and executor streams. */
void sm_flush_streams(sm_t *sm);
/* A task reached a terminal state: session watchers hear of it. */
void sm_swatch_outcome(sm_t *sm, sm_session *ss, const fl_task *t);
void sm_swatch_drop_all(sm_t *sm, sm_session *ss, int code, const char *msg);
uint8_t *sm_pack_executor(const sm_exec *e, size_t *len);
void sm_fill_executor(Flame__V1__Executor *m, const sm_exec *e);

/* frontend.c / backend.c */
extern const rpc_legacy_method sm_frontend_methods[];
extern const size_t sm_frontend_methods_len;
extern const rpc_legacy_method sm_backend_methods[];
extern const size_t sm_backend_methods_len;

/* builtin.c */
void sm_register_builtins(sm_t *sm);

/* Deferred answers (sent after the commit): an empty Result, or the
 * thread's last error as a gRPC status. */
void sm_reply_result(sm_t *sm, rpc_call *call);
void sm_reply_error(sm_t *sm, rpc_call *call, flame_status st);

#endif
