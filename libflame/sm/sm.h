/* The session manager's internals, shared by its files. Everything here is
 * touched only by the engine thread (the rpc loop), so nothing is locked.
 *
 * Files call only downward (tests/sm_layers.sh checks it, in this order):
 *   handlers  frontend.c, backend.c: unpack, check, call the core, answer;
 *             nothing calls them (engine.c registers their tables)
 *   engine    engine.c: start/stop, restore, the flush after a batch, tick
 *   core      undo.c (a failed batch undone), schedule.c, builtin.c, app.c,
 *             node.c, session.c, executor.c, task.c, launch_none.c,
 *             provide.c (the sessions' demand to the provider)
 *   services  journal.c (what a batch changed), dispatch.c (task hand-out),
 *             watch.c (watchers), reply.c (every answer, sent after the
 *             commit)
 *
 * A batch is what the engine does between two flushes. Its changes to the
 * books go into the journal; the flush commits them, and when the commit
 * fails it undoes them (newest first), so memory again matches the disk,
 * and turns the batch's answers into INTERNAL errors naming the cause.
 * Tasks are handed out and the scheduler's decisions applied only after
 * the commit, so executors and executor managers never see a batch that
 * did not reach the disk.
 *   below     store/, model/, wire/ (flame.v1 <-> model), sched/, rpc/
 */
#ifndef FL_SM_H
#define FL_SM_H

#include <pthread.h>
#include <stdatomic.h>

#include "auth/auth.h"
#include "flame/scheduler.h"
#include "flame/server.h"
#include "config/tls.h"
#include "model/model.h"
#include "rpc/rpc.h"
#include "store/store.h"
#include "util/util.h"
#include "wire/wire.h"

#include "backend.pb-c.h"
#include "frontend.pb-c.h"

/* A parked WatchTask call, or one task a WatchTasks stream waits for
 * (stream set: the call goes on after the task ends). */
typedef struct fl_watch {
    rpc_call *call;
    struct sm_session *sess;
    fl_task *task;
    struct fl_watch *prev, *next;   /* the task's watchers */
    struct sm_wstream *stream;
    struct fl_watch *sprev, *snext; /* the stream's watches */
    struct fl_watch *rnext;         /* the stream's ready list */
    bool ready;                     /* its task has news for the stream */
} fl_watch;

/* A WatchTasks stream (Flame 0.7): one per client session, many tasks.
 * News goes out a chunk at a time, the next once the reader took most of
 * the last; a watch's news is its task as it is when sent. */
typedef struct sm_wstream {
    rpc_call *call;                 /* NULL: gone, a drain callback frees it */
    struct flame_session_manager *sm;
    fl_watch *watches;
    fl_watch *ready_head, *ready_tail; /* watches with news, oldest first */
    bool half_closed;               /* the client sends no more: end after the last */
    bool draining;                  /* a chunk is out: its drain callback is due */
} sm_wstream;

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
    uint32_t nstreamers;             /* executors in streamers */
    uint32_t revoking;               /* tasks asked back from executors, not answered yet */
    bool dispatch_due;               /* in sm->due: hand out at the flush */
    bool undo_touched;               /* scratch of sm_undo */
} sm_session;

/* A WatchSession call: outcomes of tasks >= from, batched per flush. */
typedef struct sm_swatch {
    rpc_call *call;
    sm_session *ss;
    uint64_t from;
    fl_buf pending;                  /* packed TaskOutcome fields (field 1) */
    uint32_t npending;
    bool dirty;
    uint64_t backlog_next, backlog_end; /* WatchSession: ids still to scan (0: none) */
    bool draining;                   /* a backlog chunk's drain callback is due */
    /* RunSession acknowledgements not sent yet: ack_* (committed) waits up to
     * ACK_HOLD_NS to go out with the outcomes of its tasks (one message
     * instead of two while executors stream them); new_* came in this batch */
    uint64_t ack_first, new_first;
    uint32_t ack_count, new_count;
    int64_t ack_due_ns;
    bool ack_fresh;                  /* ack_* took this batch's (until its commit) */
    bool pending_acked;              /* pending carries an acknowledgement */
    struct flame_session_manager *sm; /* for that callback */
    struct sm_swatch *prev, *next;   /* in ss->swatches */
    struct sm_swatch *dnext;         /* in sm->dirty_swatches */
} sm_swatch;

struct sm_launcher;

/* A node of an executor manager. */
typedef struct sm_node {
    fl_node *node;                   /* the model: name, resources, state */
    rpc_call *watch;                 /* the WatchNode stream, NULL when gone */
    uint32_t sched_hint;             /* scratch: 1 + its index in a snapshot */
    const struct sm_launcher *launcher; /* how executors are started on it */
    int64_t heard_ms;                /* monotonic: its last registration or heartbeat */
} sm_node;

/* An executor, server side (not persisted: executors are rebuilt by the
 * executor managers after a restart). */
enum { SM_HELD_STARTED = 1, SM_HELD_REVOKING = 2 };

typedef struct sm_exec {
    fl_executor *ex;                 /* the model: id, node, state (its table) */
    sm_session *sess;                /* BINDING/BOUND/UNBINDING */
    /* Tasks handed to it, in hand-out order. A task sent ahead on the
     * ExecutorStream stays Pending until the executor says it started it;
     * until then it can be asked back (revoked) for an idle executor. */
    struct sm_held {
        fl_task *t;
        uint8_t flags;               /* SM_HELD_* */
    } *run;
    uint32_t nrun, caprun;
    uint32_t nrevoking;              /* entries with SM_HELD_REVOKING */
    rpc_call *bind_call, *launch_call;
    struct sm_exec *wprev, *wnext;   /* in sess->waiters */
    bool waiting;
    rpc_call *stream;                /* ExecutorStream, when open */
    uint32_t credit;                 /* tasks it may still be sent */
    struct sm_exec *sprev, *snext;   /* in sess->streamers */
    bool streaming;                  /* in sess->streamers */
    fl_buf out;                      /* ExecutorWork being built */
    uint32_t nout;
    const struct sm_launcher *launcher; /* its node's, at creation */
    /* What its last bind was (sandbox reuse: executor.c): the application
     * as then registered (its packed spec) and the session's owner. */
    uint8_t *last_spec;
    size_t last_spec_len;
    char *last_owner;
} sm_exec;

/* A change of the batch, as the journal keeps it to undo it (journal.c). */
typedef struct sm_change {
    enum {
        UNDO_APP_ADD,       /* app: registered */
        UNDO_APP_REPLACE,   /* app: the one an update replaced (owned) */
        UNDO_APP_DEL,       /* app: unregistered (owned) */
        UNDO_SESSION_ADD,   /* ss: created */
        UNDO_SESSION_DEL,   /* ss: deleted (owned, unlinked), prev: its neighbour */
        UNDO_SESSION_CLOSE, /* ss: closed; etime before, tasks: the n it cancelled */
        UNDO_SESSION_BIND,  /* ss: n events, bind_failures, unschedulable before */
        UNDO_TASKS_ADD,     /* ss: tasks n+1.. created */
        UNDO_TASK,          /* t of ss: state, etime, events (n) and output before */
        UNDO_SESSION_STATE, /* ss: suspended or resumed; state before */
    } kind;
    uint8_t state;
    bool took_output, has_output;    /* TASK: the output changes */
    bool unschedulable;
    uint32_t n, output_len, bind_failures;
    fl_app *app;
    sm_session *ss, *prev;
    fl_task *t;
    fl_task **tasks;                 /* owned (the array) */
    uint8_t *output;                 /* owned */
    int64_t etime;
} sm_change;

/* An answer waiting for the commit (reply.c). */
typedef struct sm_out {
    rpc_call *call; /* held with rpc_call_ref */
    enum { OUT_REPLY, OUT_SEND, OUT_PUSH, OUT_FINISH, OUT_CLOSE, OUT_DRAIN } kind;
    int code;
    char *msg;
    uint8_t *data;
    size_t len;                    /* OUT_DRAIN: the low water mark */
    void (*fn)(rpc_call *, void *); /* OUT_DRAIN */
    void *arg;
} sm_out;

struct flame_session_manager {
    rpc_server *rpc;
    fl_auth *auth;   /* the authorization hook's: identities, CRL, policy */
    fl_store *store;
    pthread_t thread;
    int port;
    flame_resreq default_resreq;
    size_t max_message;
    size_t max_task_data;            /* an input or common data, at most */
    uint32_t max_tasks_per_request;  /* CreateTasks, RunSession */
    int schedule_interval_ms;
    int node_timeout_ms;             /* cluster.node_timeout: silent nodes are lost */
    uint32_t restored_running;       /* tasks Running when the last process stopped */
    uint32_t retry_limits;           /* cluster.recovery.session.retry_limits */
    int64_t nodes_seen_ms;           /* the last scheduling cycle that saw a node */
    char *name;
    /* TLS and auth settings as started with (tls.tls.cert_file set: TLS;
     * tls.crl_file, tls.anonymous_role: for auth/) */
    fl_server_tls tls;

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
    sm_session **due;                /* sessions with tasks to hand out */
    size_t ndue, capdue;
    sm_change *journal;               /* the batch's changes, oldest first */
    size_t njournal, capjournal;
    bool undoing;                    /* sm_undo runs: nothing is journaled */
    _Atomic int64_t tick_ns;         /* mono ns of the last tick (the health probe) */
    atomic_bool serving;             /* store open, port bound, engine running */
    struct fl_provider *provider;    /* who launches executors; NULL: none (provide.c) */
};

typedef flame_session_manager sm_t;

/* Lookups in the books (NULL name or id: NULL). */
static inline fl_app *sm_app_get(sm_t *sm, const char *name)
{
    return name ? (fl_app *)fl_map_get(&sm->apps, name) : NULL;
}
static inline sm_session *sm_session_get(sm_t *sm, const char *id)
{
    return id ? (sm_session *)fl_map_get(&sm->sessions, id) : NULL;
}
static inline sm_exec *sm_exec_get(sm_t *sm, const char *id)
{
    return id ? (sm_exec *)fl_map_get(&sm->execs, id) : NULL;
}
static inline sm_node *sm_node_get(sm_t *sm, const char *name)
{
    return name ? (sm_node *)fl_map_get(&sm->nodes, name) : NULL;
}

/* The session an executor is bound to (Binding, Bound, Unbinding), or NULL. */
static inline const char *sm_exec_session_id(const sm_exec *e)
{
    return e->sess ? e->sess->s->id : NULL;
}

/* ---- handlers: frontend.c, backend.c (engine.c registers the services;
 * nothing calls into these files) ---------------------------------------- */
extern const rpc_service sm_frontend_service;
extern const rpc_service sm_backend_service;

/* ---- engine.c ------------------------------------------------------------ */
/* The rpc loop's hooks: commit the batch and send what waited for it; the
 * periodic tick (heartbeats, stale executors, a scheduling cycle). */
void sm_flush(void *ctx);
void sm_tick(void *ctx);
/* Starts on an already open store (owned by the session manager from now
 * on, closed with it); tests hand in failing engines this way. */
flame_status sm_start(flame_session_manager **out, const flame_server_options *opts,
                      fl_store *store);
/* The same engine without network or thread (tests/fuzz/): the caller is
 * the engine thread and drives sm->rpc with rpc/inject.h; it ends every
 * injected call before sm_stop_inproc(). store NULL: opts->storage. */
flame_status sm_start_inproc(sm_t **out, const flame_server_options *opts, fl_store *store);
void sm_stop_inproc(sm_t *sm);

/* ---- validate.c: every request, before its handler (rpc_validate_fn) ---- */
int sm_validate_request(rpc_call *call, const ProtobufCMessage *req, char *why, size_t size,
                        void *ctx);
/* ---- undo.c: a failed batch undone -------------------------------------- */
/* Undoes the journal newest first: what the batch created is gone, what it
 * deleted is back, changed tasks and sessions are as they were (a task
 * whose completion was lost is Pending again and runs again), and the
 * pending queues are rebuilt. Watchers of what disappears end with
 * INTERNAL (why). */
void sm_undo(sm_t *sm, const char *why);

/* ---- app.c: applications ------------------------------------------------- */
/* Both take a (fl_wire_app_new; NULL: no spec given) and free it when they
 * refuse it. */
flame_status sm_app_register(sm_t *sm, const char *name, fl_app *a);
flame_status sm_app_update(sm_t *sm, const char *name, fl_app *a);
/* Deletes its (closed) sessions with it. */
flame_status sm_app_unregister(sm_t *sm, const char *name);

/* builtin.c */
void sm_register_builtins(sm_t *sm);

/* ---- session.c: sessions ------------------------------------------------- */
/* Adds a session to the books (a new one, or one read back from storage). */
void sm_session_add(sm_t *sm, fl_session *s);
/* Checks for a CreateSession/OpenSession: an id nobody has, a spec that
 * names an enabled application and sane instance bounds. */
flame_status sm_session_check_new_id(sm_t *sm, const char *id);
flame_status sm_session_check_spec(sm_t *sm, const fl_session_spec *spec);
/* Creates and persists a session (want_id empty or NULL: a generated id),
 * owned by owner (the creator's identity). */
fl_session *sm_session_create(sm_t *sm, const char *want_id, const fl_session_spec *spec,
                              const char *owner);
/* Flame 0.7: suspends (no new executors, the bound ones unbind once their
 * running tasks are done; Pending tasks wait) or resumes a session. */
flame_status sm_session_suspend(sm_t *sm, sm_session *ss);
flame_status sm_session_resume(sm_t *sm, sm_session *ss);
/* Scheduling cycle: a Suspending session nothing holds any more becomes
 * Suspended. */
void sm_session_suspend_check(sm_t *sm, sm_session *ss);
/* Closes: Pending tasks are Cancelled, watchers hear of it. */
flame_status sm_session_close(sm_t *sm, sm_session *ss);
/* Deletes from storage and memory; ss goes to the journal (freed once the
 * batch is committed). */
void sm_session_delete(sm_t *sm, sm_session *ss);
/* Undo: a session deleted in the batch goes back after prev (NULL: first);
 * one created in the batch is forgotten (its watchers end with code). */
void sm_session_relink(sm_t *sm, sm_session *ss, sm_session *prev);
void sm_session_discard(sm_t *sm, sm_session *ss, int code, const char *why);
void sm_sessions_free(sm_t *sm);

/* ---- task.c: tasks, and the typed notifications of their changes --------- */
/* Creates the tasks of a CreateTask(s) or RunSession request: n_inputs
 * tasks with inputs, or count without; spec (NULL: none): a CreateTask's
 * Flame 0.7 fields (affinity, bounded by the caller) for every one. */
flame_status sm_tasks_add(sm_t *sm, sm_session *ss, const ProtobufCBinaryData *inputs,
                          size_t n_inputs, uint32_t count, const Flame__V1__TaskSpec *spec,
                          uint64_t *first, size_t *n);
/* A task read back from storage: a Running one runs again. */
void sm_task_restored(sm_t *sm, sm_session *ss, fl_task *t);
/* A task the service ran: Succeed (rc 0) or Failed, with its output. */
void sm_task_complete(sm_t *sm, sm_session *ss, fl_task *t, int rc,
                      const ProtobufCBinaryData *output, const char *msg);
/* Notifications, after the model changed the task's state. */
void sm_task_created(sm_t *sm, sm_session *ss, fl_task *t);   /* persist, queue */
void sm_task_finished(sm_t *sm, sm_session *ss, fl_task *t);  /* persist, tell watchers */
void sm_task_requeued(sm_t *sm, sm_session *ss, fl_task *t);  /* persist, tell, queue */

/* ---- executor.c: executors' life cycle ----------------------------------- */
/* As sm_exec_get; NOT_FOUND with the error set when unknown. */
flame_status sm_exec_lookup(sm_t *sm, const char *id, sm_exec **out);
/* A new executor (Void) on node for session ss; its launcher starts it. */
sm_exec *sm_exec_create(sm_t *sm, sm_node *n, sm_session *ss);
/* Forgets e: its tasks run again, its parked calls end with NOT_FOUND. */
void sm_exec_free(sm_t *sm, sm_exec *e, const char *why);
void sm_exec_drop_node(sm_t *sm, const char *node, const char *why);
/* Before a session is freed: its executors forget it. */
void sm_exec_detach_session(sm_t *sm, sm_session *ss);
/* Void -> Idle (RegisterExecutor). */
void sm_exec_registered(sm_t *sm, sm_exec *e);
/* Parks a BindExecutor call until the scheduler decides. */
void sm_exec_wait_bind(sm_t *sm, sm_exec *e, rpc_call *call);
/* The scheduler's decisions. Each ignores an executor not in the state it
 * applies to (the decision is stale). */
void sm_exec_bind(sm_t *sm, sm_exec *e, sm_session *ss);
void sm_exec_unbind(sm_t *sm, sm_exec *e);
void sm_exec_release(sm_t *sm, sm_exec *e);
/* BindExecutorCompleted: rc 0, or the service refused the session with
 * return code rc (Flame's EM: 10 install, 11 shim, 12 on_session_enter). */
void sm_exec_bind_completed(sm_t *sm, sm_exec *e, int rc, const char *message);
/* UnbindExecutor (the executor leaves on its own) and its completion. */
void sm_exec_unbinding(sm_t *sm, sm_exec *e);
void sm_exec_unbound(sm_t *sm, sm_exec *e);
/* ExecutorStream opened by a Bound executor, and its clean end. */
void sm_exec_stream_open(sm_t *sm, sm_exec *e, rpc_call *call);
void sm_exec_stream_end(sm_t *sm, rpc_call *call);
/* The executor whose ExecutorStream call is, or NULL. */
sm_exec *sm_exec_of_stream(sm_t *sm, rpc_call *call);
/* Tick: Void executors whose manager never registered them. */
void sm_execs_expire(sm_t *sm, int64_t now_s);
void sm_execs_free(sm_t *sm);

/* ---- node.c: nodes -------------------------------------------------------- */
/* Registers (or re-registers: what it ran is gone) a node; takes node. */
void sm_node_register(sm_t *sm, fl_node *node);
void sm_node_release(sm_t *sm, sm_node *n);
/* A heartbeat on a WatchNode stream (a newer stream replaces an older). */
/* A heartbeat on the node's WatchNode stream; allocatable (NULL: as it was)
 * is what the node has free for executors now, at most its capacity (an
 * executor manager's warm pool holds some). */
void sm_node_heartbeat(sm_t *sm, sm_node *n, rpc_call *call, const flame_resreq *allocatable);
/* The WatchNode stream half-closed: the executor manager is leaving. */
void sm_node_watch_end(sm_t *sm, rpc_call *call);
/* Tick: nodes that stopped sending heartbeats. */
void sm_nodes_expire(sm_t *sm);
void sm_nodes_free(sm_t *sm);

/* ---- metrics.c: the metrics of the books, and the probes ------------------ */
void sm_metrics_tick(sm_t *sm);            /* gauges by state; the tick's time */
void sm_metrics_task_done(const fl_task *t); /* t reached a final state */
void sm_metrics_cycle(int64_t ns);
void sm_metrics_commit(int64_t ns, bool failed);

/* ---- launcher: how executors are started on a node (the provider seam) ---- */
typedef struct sm_launcher {
    const char *name;
    /* Can the node take a new executor now? */
    bool (*ready)(const sm_node *n);
    /* Starts executor e (Void) on n; it registers itself when up. */
    flame_status (*create)(sm_t *sm, sm_node *n, const sm_exec *e);
    /* e leaves the session manager's books (optional: NULL when the node's
     * manager releases executors itself). */
    void (*release)(sm_t *sm, const sm_exec *e);
} sm_launcher;
/* launch_none.c: the executor manager of the node starts executors it is
 * sent on its WatchNode stream. */
extern const sm_launcher sm_launcher_none;

/* ---- provide.c: the provider hook (libflame/provider/) -------------------- */
/* After a scheduling cycle: the sessions' demand goes to the provider,
 * which launches executor managers for it (no-op without one). */
void sm_provide(sm_t *sm);

/* ---- schedule.c: a scheduling cycle (snapshot, decide, apply) ------------- */
void sm_sched_run(sm_t *sm);

/* ---- journal.c: the batch's changes, kept until its commit ---------------- */
/* Each is called before the change it records (deletions: before the
 * object leaves the books; the journal then owns it), unless it says. */
void sm_journal_app_added(sm_t *sm, fl_app *a);
void sm_journal_app_replaced(sm_t *sm, fl_app *old);
void sm_journal_app_deleted(sm_t *sm, fl_app *a);
void sm_journal_session_added(sm_t *sm, sm_session *ss);
void sm_journal_session_deleted(sm_t *sm, sm_session *ss);
/* After the close: etime was the session's before it; takes cancelled, the
 * n tasks the close cancelled (fl_session_close's array). */
void sm_journal_session_closed(sm_t *sm, sm_session *ss, int64_t etime, fl_task **cancelled,
                               size_t n);
void sm_journal_tasks_added(sm_t *sm, sm_session *ss);
/* Its state is about to change (suspend, resume). */
void sm_journal_session_state(sm_t *sm, sm_session *ss);
/* Its bind failures (events, count, unschedulable) are about to change. */
void sm_journal_session_bind(sm_t *sm, sm_session *ss);
/* output: the journal takes t's output (the caller sets a new one). */
void sm_journal_task(sm_t *sm, sm_session *ss, fl_task *t, bool output);
/* The batch is on disk: frees what the journal kept. */
void sm_journal_clear(sm_t *sm);
/* Frees a session that is in no book any more (here: the journal frees the
 * sessions a batch deleted). */
void sm_session_free(sm_t *sm, sm_session *ss);

/* ---- dispatch.c: handing Pending tasks to executors ----------------------- */
/* Queues a Pending task of ss; sm_dispatch marks ss for the hand-out, which
 * happens at the flush, after the commit (sm_dispatch_run). */
void sm_dispatch_queue(sm_t *sm, sm_session *ss, fl_task *t);
void sm_dispatch(sm_t *sm, sm_session *ss);
void sm_dispatch_run(sm_t *sm);
void sm_dispatch_drop_queue(sm_t *sm, sm_session *ss);
/* After an undo: the queue holds exactly the Pending tasks no executor
 * holds (tasks the undo removed are gone from it, tasks it made Pending
 * again are in it). */
void sm_dispatch_resync(sm_t *sm, sm_session *ss);
/* LaunchTask: e waits for a task (FIFO per session). */
void sm_dispatch_wait(sm_t *sm, sm_exec *e, rpc_call *call);
void sm_dispatch_unwait(sm_exec *e);
/* Answers a parked LaunchTask with nothing: the executor is to unbind. */
void sm_dispatch_launch_none(sm_t *sm, sm_exec *e);
/* ExecutorStream: e takes tasks while it has credit. */
void sm_dispatch_stream_add(sm_exec *e);
void sm_dispatch_stream_remove(sm_exec *e);
void sm_dispatch_credit(sm_t *sm, sm_exec *e, uint32_t credit);
/* Ends e's stream from our side; it takes no more tasks. */
void sm_dispatch_stream_close(sm_t *sm, sm_exec *e, int code, const char *why);
/* Tells a streaming executor to finish what it has, then unbind. */
void sm_dispatch_stream_unbind(sm_t *sm, sm_exec *e);
/* A task e reported back leaves its running set (NULL: not there). */
fl_task *sm_dispatch_take(sm_exec *e, uint64_t id);
/* Forgets every task handed to e; returns how many there were (e->run
 * keeps them for the caller to walk until the next hand-out). */
uint32_t sm_dispatch_clear(sm_exec *e);
/* The executor started task id (it is Running now), or gave it back
 * unstarted after a revoke (it is queued again, first). */
void sm_dispatch_started(sm_t *sm, sm_exec *e, uint64_t id);
void sm_dispatch_returned(sm_t *sm, sm_exec *e, uint64_t id);
/* Before e is freed. */
void sm_dispatch_forget(sm_t *sm, sm_exec *e);
/* At the flush: queue the ExecutorWork built in this batch. */
void sm_dispatch_collect(sm_t *sm);

/* ---- watch.c: WatchTask, WatchSession and RunSession watchers ------------ */
/* Parks a WatchTask call; it hears of every change until t ends. */
void sm_watch_task(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t);
/* t changed state: its watchers get it (and end when it is terminal). */
void sm_watch_task_changed(sm_t *sm, sm_session *ss, fl_task *t);
void sm_watch_task_drop_all(sm_t *sm, fl_task *t, int code, const char *msg);
/* WatchTasks: call (a bidi stream) waits for t too (once, however often it
 * asks): t as it is now and after every change goes out until it ends, and
 * the stream goes on. */
void sm_wstream_watch(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t);
/* The client half-closed: the stream ends once its watched tasks have. */
void sm_wstream_half_closed(sm_t *sm, rpc_call *call);
/* Ends the stream now with code (its watches are dropped). */
void sm_wstream_end(sm_t *sm, rpc_call *call, int code, const char *msg);
/* A watch of the outcomes of ss's tasks >= from. backlog: the outcomes of
 * tasks already finished come first (WatchSession). */
sm_swatch *sm_swatch_new(sm_t *sm, sm_session *ss, rpc_call *call, uint64_t from, bool backlog);
/* Stops a watch whose call is ending (its caller answers the call); what
 * it holds for a call still alive (outcomes, an acknowledgement) goes out
 * first. */
void sm_swatch_drop(sm_t *sm, sm_swatch *w);
/* A task of ss reached a terminal state. */
void sm_swatch_outcome(sm_t *sm, sm_session *ss, const fl_task *t);
/* Ends the session's watches that can hear nothing more (closed, and no
 * task Pending or Running). */
void sm_swatch_end_done(sm_t *sm, sm_session *ss);
void sm_swatch_drop_all(sm_t *sm, sm_session *ss, int code, const char *msg);
/* At the flush: queue the outcome batches of this batch. */
void sm_watch_collect(sm_t *sm);
/* RunSession: tasks first..first+n-1 of w's session were created in this
 * batch; their acknowledgement goes out once they are committed (watch.c). */
void sm_swatch_ack(sm_t *sm, sm_swatch *w, uint64_t first, uint32_t n);
/* The batch was not committed: streams acknowledging its tasks end with why. */
void sm_watch_commit_failed(sm_t *sm, const char *why);

/* ---- reply.c: every answer, sent after the batch is committed ------------- */
/* The calls take ownership of data (malloc'ed; NULL with len 0: empty). If
 * the commit fails, the batch's replies, sends and finishes become INTERNAL
 * errors with the cause (sm_reply_fail: each may speak of what is not on
 * disk, errors included); pushes and closes of control streams go out. */
void sm_reply(sm_t *sm, rpc_call *call, uint8_t *data, size_t len);
void sm_reply_msg(sm_t *sm, rpc_call *call, const ProtobufCMessage *msg);
/* An empty Result, or the thread's last error as a gRPC status. */
void sm_reply_result(sm_t *sm, rpc_call *call);
void sm_reply_error(sm_t *sm, rpc_call *call, flame_status st);
/* A stream message reporting state (task, outcomes, acknowledgements). */
void sm_send(sm_t *sm, rpc_call *call, uint8_t *data, size_t len);
/* A control message to an executor manager (work, executors, heartbeat
 * acks): it acknowledges nothing stored. */
void sm_push(sm_t *sm, rpc_call *call, uint8_t *data, size_t len);
void sm_push_msg(sm_t *sm, rpc_call *call, const ProtobufCMessage *msg);
/* Ends a call: with RPC_OK, the end of a stream of sends. */
void sm_finish(sm_t *sm, rpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* After what was sent so far went out: fn(call, arg) once the call's queue
 * is down to low_water bytes (rpc_call_on_drain: it is also called, with
 * the call gone, when the call ends first). */
void sm_on_drain(sm_t *sm, rpc_call *call, size_t low_water, void (*fn)(rpc_call *, void *),
                 void *arg);
/* Ends a control stream (ExecutorStream, WatchNode). */
void sm_close(sm_t *sm, rpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The commit failed (why): what the batch queued so far fails instead. */
void sm_reply_fail(sm_t *sm, const char *why);
/* Sends everything queued. */
void sm_reply_flush(sm_t *sm);

#endif
