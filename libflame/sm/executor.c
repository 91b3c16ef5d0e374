/* Executors on the session manager's side: their life cycle (Void, Idle,
 * Binding, Bound, Unbinding, Releasing), the parked BindExecutor call the
 * scheduler's decisions answer, and what becomes of an executor's tasks
 * when it leaves its session or goes away. Executors are not persisted: the
 * executor managers rebuild them after a restart. */
#include <stdlib.h>
#include <string.h>

#include "sm.h"

#define VOID_TIMEOUT_S 30

/* Every state change goes through the model's table; the callers check
 * first, so a refusal is a bug here: logged, the state left as it was. */
static void set_state(sm_exec *e, int to)
{
    if (fl_executor_set_state(e->ex, to, fl_now_ms()))
        fl_log(FL_LOG_ERROR, "sm", "%s", flame_error_last());
}

flame_status sm_exec_lookup(sm_t *sm, const char *id, sm_exec **out)
{
    *out = sm_exec_get(sm, id);
    if (!*out)
        return fl_error(FLAME_ERR_NOT_FOUND, "executor %s not found", id ? id : "");
    return FLAME_OK;
}

sm_exec *sm_exec_create(sm_t *sm, sm_node *n, sm_session *ss)
{
    char *id = fl_sprintf("%s-%llx-%llu", n->node->name, (unsigned long long)sm->started_ms,
                          (unsigned long long)++sm->exec_seq);
    fl_app *a = sm_app_get(sm, ss->s->app);
    sm_exec *e = fl_calloc(1, sizeof *e);
    e->ex = fl_executor_new(id, n->node->name, ss->s->id, ss->s->app, ss->s->resreq,
                            a ? a->spec->shim : 0, fl_now_ms());
    free(id);
    e->launcher = n->launcher;
    fl_map_put(&sm->execs, e->ex->id, e);
    if (n->launcher->create(sm, n, e)) {
        fl_log(FL_LOG_WARN, "sm", "executor %s on %s: %s", e->ex->id, n->node->name, flame_error_last());
        sm_exec_free(sm, e, "its node could not start it");
        return NULL;
    }
    fl_log(FL_LOG_DEBUG, "sm", "executor %s created on %s for session %s", e->ex->id, n->node->name,
           ss->s->id);
    return e;
}

/* The executor's tasks (if any) go back: Running ones become Pending
 * again; those sent ahead and never started were Pending all along. */
static void requeue(sm_t *sm, sm_exec *e, const char *why)
{
    sm_session *ss = e->sess;
    uint32_t n = sm_dispatch_clear(e), rerun = 0;
    for (uint32_t i = 0; i < n && ss; i++) {
        fl_task *t = e->run[i].t;
        if (t->state == FLAME_TASK_RUNNING) {
            sm_journal_task(sm, ss, t, false);
            fl_task_set_state(ss->s, t, FLAME_TASK_PENDING, why, fl_now_ms());
            sm_task_requeued(sm, ss, t);
            rerun++;
        } else if (t->state == FLAME_TASK_PENDING) {
            sm_dispatch_queue(sm, ss, t);
        }
    }
    if (rerun) /* operators (and the test bed) count what runs twice */
        fl_log(FL_LOG_WARN, "sm", "executor %s: %u running task(s) of session %s back to "
               "Pending: %s", e->ex->id, rerun, ss->s->id, why);
    if (n && ss) {
        sm_dispatch(sm, ss);
        sm->sched_dirty = true;
    }
}

static void exec_destroy(sm_exec *e)
{
    free(e->last_spec);
    free(e->last_owner);
    free(e->run);
    fl_executor_free(e->ex);
    free(e);
}

void sm_exec_free(sm_t *sm, sm_exec *e, const char *why)
{
    sm_dispatch_stream_close(sm, e, RPC_NOT_FOUND, why);
    requeue(sm, e, why);
    sm_dispatch_forget(sm, e);
    if (e->launch_call) {
        rpc_call_on_cancel(e->launch_call, NULL, NULL);
        sm_finish(sm, e->launch_call, RPC_NOT_FOUND, "%s", why);
    }
    if (e->bind_call) {
        rpc_call_on_cancel(e->bind_call, NULL, NULL);
        sm_finish(sm, e->bind_call, RPC_NOT_FOUND, "%s", why);
    }
    if (e->launcher->release)
        e->launcher->release(sm, e);
    fl_map_del(&sm->execs, e->ex->id);
    exec_destroy(e);
    sm->sched_dirty = true;
}

/* Frees the executors that match (collected first: freeing edits the map). */
static void free_where(sm_t *sm, bool (*match)(const sm_exec *, const void *), const void *arg,
                       const char *why)
{
    size_t it = 0, n = 0;
    void *v;
    sm_exec **gone = NULL;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        if (match(v, arg)) {
            gone = fl_realloc(gone, (n + 1) * sizeof *gone);
            gone[n++] = v;
        }
    }
    for (size_t i = 0; i < n; i++)
        sm_exec_free(sm, gone[i], why);
    free(gone);
}

static bool on_node(const sm_exec *e, const void *node)
{
    return strcmp(e->ex->node, node) == 0;
}

void sm_exec_drop_node(sm_t *sm, const char *node, const char *why)
{
    free_where(sm, on_node, node, why);
}

static bool never_registered(const sm_exec *e, const void *now_s)
{
    return e->ex->state == FLAME_EXECUTOR_VOID &&
           *(const int64_t *)now_s - e->ex->idle_since / 1000 > VOID_TIMEOUT_S;
}

void sm_execs_expire(sm_t *sm, int64_t now_s)
{
    free_where(sm, never_registered, &now_s, "its executor never registered");
}

void sm_exec_detach_session(sm_t *sm, sm_session *ss)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        if (e->sess != ss)
            continue;
        sm_dispatch_launch_none(sm, e);
        sm_dispatch_stream_close(sm, e, RPC_NOT_FOUND, "the session was deleted");
        sm_dispatch_clear(e);
        e->sess = NULL;
        if (fl_executor_transition_ok(e->ex->state, FLAME_EXECUTOR_UNBINDING))
            set_state(e, FLAME_EXECUTOR_UNBINDING);
    }
}

void sm_execs_free(sm_t *sm)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        fl_buf_free(&e->out);
        exec_destroy(e);
    }
    fl_map_free(&sm->execs);
}

void sm_exec_registered(sm_t *sm, sm_exec *e)
{
    set_state(e, FLAME_EXECUTOR_IDLE);
    sm->sched_dirty = true;
}

/* ---- binding ---------------------------------------------------------------- */

static void bind_cancelled(rpc_call *call, void *arg)
{
    sm_exec *e = arg;
    e->bind_call = NULL;
}

/* May the executor's service (and sandbox) from its last session serve
 * this one? Only where the application opts in, is the same as registered
 * then (a new spec needs a new service) and both sessions have the same
 * owner: a service keeps what a session left in it, which must never reach
 * another user. */
static bool may_reuse(const sm_exec *e, const fl_app *a, const fl_session *s)
{
    return a->spec && a->spec->sandbox_reuse && e->last_spec && e->last_owner &&
           e->last_spec_len == a->blob_len && memcmp(e->last_spec, a->blob, a->blob_len) == 0 &&
           strcmp(e->last_owner, s->owner ? s->owner : "") == 0;
}

void sm_exec_bind(sm_t *sm, sm_exec *e, sm_session *ss)
{
    if (!fl_executor_transition_ok(e->ex->state, FLAME_EXECUTOR_BINDING))
        return;
    set_state(e, FLAME_EXECUTOR_BINDING);
    e->sess = ss;
    free(e->ex->app);
    e->ex->app = fl_strdup(ss->s->app);
    if (!e->bind_call)
        return;
    fl_app *a = sm_app_get(sm, ss->s->app);
    fl_buf b = { 0 };
    size_t n;
    uint8_t *x;
    if (a) {
        x = fl_wire_pack_app(a, &n);
        fl_wire_put_bytes(&b, 1, x, n);
        free(x);
    }
    x = fl_wire_pack_session(ss->s, &n);
    fl_wire_put_bytes(&b, 2, x, n);
    free(x);
    if (a && may_reuse(e, a, ss->s))
        fl_wire_put_varint(&b, 1001, 1); /* BindExecutorResponse.sandbox_reuse */
    free(e->last_spec);
    e->last_spec = a ? fl_memdup(a->blob, a->blob_len) : NULL;
    e->last_spec_len = a ? a->blob_len : 0;
    free(e->last_owner);
    e->last_owner = fl_strdup(ss->s->owner ? ss->s->owner : "");
    rpc_call_on_cancel(e->bind_call, NULL, NULL);
    size_t blen = b.len;
    sm_reply(sm, e->bind_call, (uint8_t *)fl_buf_detach(&b), blen);
    e->bind_call = NULL;
}

void sm_exec_release(sm_t *sm, sm_exec *e)
{
    if (!fl_executor_transition_ok(e->ex->state, FLAME_EXECUTOR_RELEASING))
        return;
    set_state(e, FLAME_EXECUTOR_RELEASING);
    if (e->bind_call) {
        rpc_call_on_cancel(e->bind_call, NULL, NULL);
        sm_reply(sm, e->bind_call, NULL, 0);
        e->bind_call = NULL;
    }
}

void sm_exec_wait_bind(sm_t *sm, sm_exec *e, rpc_call *call)
{
    e->bind_call = call;
    rpc_call_on_cancel(call, bind_cancelled, e);
    /* a decision taken before the executor asked is answered now */
    if (e->ex->state == FLAME_EXECUTOR_BINDING && e->sess) {
        set_state(e, FLAME_EXECUTOR_IDLE);
        sm_session *ss = e->sess;
        e->sess = NULL;
        sm_exec_bind(sm, e, ss);
    } else if (e->ex->state == FLAME_EXECUTOR_RELEASING) {
        set_state(e, FLAME_EXECUTOR_IDLE);
        sm_exec_release(sm, e);
    } else {
        sm->sched_dirty = true;
    }
}

/* Flame's bind failure (controller/executors/binding.rs): event 1001 per
 * failure, and at cluster.recovery.session.retry_limits failures in a row
 * event 1002, after which the session gets no more executors. Its Pending
 * tasks stay Pending (clients see 1002 and stop waiting: client/). */
static void bind_failed(sm_t *sm, sm_exec *e, int rc, const char *message)
{
    sm_session *ss = e->sess;
    e->sess = NULL;
    set_state(e, FLAME_EXECUTOR_IDLE);
    if (!ss)
        return;
    fl_session *s = ss->s;
    sm_journal_session_bind(sm, ss);
    char *msg = fl_sprintf("Executor %s on node %s failed to bind session with return_code %d: %s",
                           e->ex->id, e->ex->node, rc,
                           message && *message ? message : "the service refused the session");
    fl_events_add(&s->events, FLAME_EVENT_BIND_FAILED, msg, fl_now_ms());
    fl_log(FL_LOG_WARN, "sm", "session %s: %s", s->id, msg);
    free(msg);
    if (++s->bind_failures >= sm->retry_limits && !s->unschedulable) {
        s->unschedulable = true;
        msg = fl_sprintf("Session retry limit reached after %u/%u failed attempts; new executor "
                         "assignment is paused until the session is closed",
                         s->bind_failures, sm->retry_limits);
        fl_events_add(&s->events, FLAME_EVENT_RETRY_LIMIT, msg, fl_now_ms());
        fl_log(FL_LOG_WARN, "sm", "session %s: %s", s->id, msg);
        free(msg);
    }
    fl_store_put_session(sm->store, s);
}

void sm_exec_bind_completed(sm_t *sm, sm_exec *e, int rc, const char *message)
{
    if (rc) {
        bind_failed(sm, e, rc, message);
    } else if (e->ex->state == FLAME_EXECUTOR_BINDING) {
        set_state(e, FLAME_EXECUTOR_BOUND);
        if (e->sess && e->sess->s->bind_failures) {
            sm_journal_session_bind(sm, e->sess);
            e->sess->s->bind_failures = 0;
            fl_store_put_session(sm->store, e->sess->s);
        }
    }
    sm->sched_dirty = true;
}

/* ---- unbinding -------------------------------------------------------------- */

void sm_exec_unbind(sm_t *sm, sm_exec *e)
{
    if (!fl_executor_transition_ok(e->ex->state, FLAME_EXECUTOR_UNBINDING))
        return;
    set_state(e, FLAME_EXECUTOR_UNBINDING);
    sm_dispatch_launch_none(sm, e);
    sm_dispatch_stream_unbind(sm, e); /* a streamer finishes what it has first */
}

void sm_exec_unbinding(sm_t *sm, sm_exec *e)
{
    requeue(sm, e, "its executor unbound before the task completed");
    if (e->ex->state != FLAME_EXECUTOR_UNBINDING) /* asked twice */
        set_state(e, FLAME_EXECUTOR_UNBINDING);
    sm_dispatch_launch_none(sm, e);
}

void sm_exec_unbound(sm_t *sm, sm_exec *e)
{
    requeue(sm, e, "its executor unbound before the task completed");
    sm_dispatch_unwait(e);
    e->sess = NULL;
    set_state(e, FLAME_EXECUTOR_IDLE);
    sm->sched_dirty = true;
}

/* ---- ExecutorStream --------------------------------------------------------- */

static void stream_gone(sm_t *sm, sm_exec *e, const char *why)
{
    sm_dispatch_stream_remove(e);
    e->stream = NULL;
    e->credit = 0;
    requeue(sm, e, why);
}

static void stream_cancelled(rpc_call *call, void *arg)
{
    stream_gone(rpc_call_user(call), arg, "the executor's stream broke before the task completed");
}

void sm_exec_stream_open(sm_t *sm, sm_exec *e, rpc_call *call)
{
    e->stream = call;
    rpc_call_set_user(call, sm);
    rpc_call_on_cancel(call, stream_cancelled, e);
    sm_dispatch_stream_add(e);
}

sm_exec *sm_exec_of_stream(sm_t *sm, rpc_call *call)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v))
        if (((sm_exec *)v)->stream == call)
            return v;
    return NULL;
}

void sm_exec_stream_end(sm_t *sm, rpc_call *call)
{
    sm_exec *e = sm_exec_of_stream(sm, call);
    if (e)
        stream_gone(sm, e, "its executor left the session before the task completed");
    rpc_call_on_cancel(call, NULL, NULL);
}
