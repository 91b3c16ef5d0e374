/* flame.v1 Backend: executor managers -> session manager, and the
 * scheduler loop that drives executors. All on the engine thread; parked
 * calls (WatchNode, BindExecutor, LaunchTask) are answered by events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

#define BIND_FAILURES_MAX 5
#define HEARTBEAT_TIMEOUT_S 30
#define VOID_TIMEOUT_S 30

static sm_exec *exec_get(sm_t *sm, const char *id)
{
    return id ? fl_map_get(&sm->execs, id) : NULL;
}

/* ---- pending queues and task hand-out ----------------------------------- */

static void pq_push(sm_session *ss, uint32_t id)
{
    if (ss->pq_len == ss->pq_cap) {
        size_t cap = ss->pq_cap ? ss->pq_cap * 2 : 64;
        uint32_t *q = fl_malloc(cap * sizeof *q);
        for (size_t i = 0; i < ss->pq_len; i++)
            q[i] = ss->pq[(ss->pq_head + i) % ss->pq_cap];
        free(ss->pq);
        ss->pq = q;
        ss->pq_cap = cap;
        ss->pq_head = 0;
    }
    ss->pq[(ss->pq_head + ss->pq_len) % ss->pq_cap] = id;
    ss->pq_len++;
}

static fl_task *pq_pop(sm_session *ss)
{
    while (ss->pq_len) {
        uint32_t id = ss->pq[ss->pq_head];
        ss->pq_head = (ss->pq_head + 1) % ss->pq_cap;
        ss->pq_len--;
        fl_task *t = id && id <= ss->s->ntasks ? ss->s->tasks[id - 1] : NULL;
        if (t && t->state == FLAME_TASK_PENDING)
            return t;
    }
    return NULL;
}

static void waiter_remove(sm_exec *e)
{
    if (!e->waiting)
        return;
    if (e->wprev)
        e->wprev->wnext = e->wnext;
    else if (e->sess)
        e->sess->waiters = e->wnext;
    if (e->wnext)
        e->wnext->wprev = e->wprev;
    e->wprev = e->wnext = NULL;
    e->waiting = false;
}

static void launch_cancelled(rpc_call *call, void *arg)
{
    sm_exec *e = arg;
    waiter_remove(e);
    e->launch_call = NULL;
}

static void bind_cancelled(rpc_call *call, void *arg)
{
    sm_exec *e = arg;
    e->bind_call = NULL;
}

/* Answers a parked LaunchTask with nothing: the executor is to unbind. */
static void launch_reply_empty(sm_t *sm, sm_exec *e)
{
    if (!e->launch_call)
        return;
    waiter_remove(e);
    rpc_call_on_cancel(e->launch_call, NULL, NULL);
    sm_defer(sm, e->launch_call, OUT_REPLY, 0, NULL, NULL, 0);
    e->launch_call = NULL;
}

static void run_add(sm_exec *e, fl_task *t)
{
    if (e->nrun == e->caprun) {
        e->caprun = e->caprun ? e->caprun * 2 : 8;
        e->run = fl_realloc(e->run, e->caprun * sizeof *e->run);
    }
    e->run[e->nrun++] = t;
}

/* Removes task `id` from e's running set (usually the oldest). */
static fl_task *run_take(sm_exec *e, uint64_t id)
{
    for (uint32_t i = 0; i < e->nrun; i++)
        if (e->run[i]->id == id) {
            fl_task *t = e->run[i];
            memmove(e->run + i, e->run + i + 1, (e->nrun - i - 1) * sizeof *e->run);
            e->nrun--;
            return t;
        }
    return NULL;
}

static void set_running(sm_t *sm, sm_exec *e, sm_session *ss, fl_task *t)
{
    /* the event's message is a static string: no per-task allocation */
    fl_task_set_state(ss->s, t, FLAME_TASK_RUNNING, NULL, fl_now_ms());
    run_add(e, t);
    sm_task_changed(sm, ss, t);
}

/* Gives task t to executor e (which waits in LaunchTask). */
static void launch(sm_t *sm, sm_exec *e, sm_session *ss, fl_task *t)
{
    set_running(sm, e, ss, t);
    size_t n;
    uint8_t *task = fl_wire_pack_task(ss->s, t, &n);
    fl_buf b = { 0 };
    fl_wire_put_bytes(&b, 1, task, n);
    free(task);
    waiter_remove(e);
    rpc_call_on_cancel(e->launch_call, NULL, NULL);
    size_t blen = b.len;
    sm_defer(sm, e->launch_call, OUT_REPLY, 0, NULL, (uint8_t *)fl_buf_detach(&b), blen);
    e->launch_call = NULL;
}

static void exec_dirty(sm_t *sm, sm_exec *e)
{
    if (e->nout == 0 && !e->out.len) {
        if (sm->ndirty_execs == sm->capdirty_execs) {
            sm->capdirty_execs = sm->capdirty_execs ? sm->capdirty_execs * 2 : 16;
            sm->dirty_execs = fl_realloc(sm->dirty_execs, sm->capdirty_execs * sizeof(sm_exec *));
        }
        sm->dirty_execs[sm->ndirty_execs++] = e;
    }
}

/* Adds task t to the ExecutorWork being built for streaming executor e. */
static void stream_task(sm_t *sm, sm_exec *e, sm_session *ss, fl_task *t)
{
    set_running(sm, e, ss, t);
    exec_dirty(sm, e);
    size_t n;
    uint8_t *task = fl_wire_pack_task(ss->s, t, &n);
    fl_wire_put_bytes(&e->out, 1, task, n);
    free(task);
    e->nout++;
    e->credit--;
}

static void dispatch(sm_t *sm, sm_session *ss)
{
    while (ss->waiters && ss->pq_len) {
        fl_task *t = pq_pop(ss);
        if (!t)
            break;
        launch(sm, ss->waiters, ss, t);
    }
    /* round robin over the streams that have credit */
    while (ss->pq_len && ss->streamers) {
        bool gave = false;
        for (sm_exec *e = ss->streamers; e && ss->pq_len; e = e->snext) {
            if (!e->credit)
                continue;
            fl_task *t = pq_pop(ss);
            if (!t)
                break;
            stream_task(sm, e, ss, t);
            gave = true;
        }
        if (!gave)
            break;
    }
}

static void streamer_remove(sm_exec *e)
{
    if (!e->stream || !e->sess)
        return;
    if (e->sprev)
        e->sprev->snext = e->snext;
    else if (e->sess->streamers == e)
        e->sess->streamers = e->snext;
    if (e->snext)
        e->snext->sprev = e->sprev;
    e->sprev = e->snext = NULL;
}

/* Ends an executor's stream from our side (it is being dropped). */
static void stream_close(sm_t *sm, sm_exec *e, int code, const char *why)
{
    if (!e->stream)
        return;
    streamer_remove(e);
    rpc_call_on_cancel(e->stream, NULL, NULL);
    rpc_call_finish(e->stream, code, "%s", why);
    e->stream = NULL;
    e->credit = 0;
}

void sm_flush_streams(sm_t *sm)
{
    for (size_t i = 0; i < sm->ndirty_execs; i++) {
        sm_exec *e = sm->dirty_execs[i];
        if (e->stream && (e->out.len || e->nout))
            rpc_call_send_packed(e->stream, (const uint8_t *)e->out.data, e->out.len);
        fl_buf_free(&e->out);
        e->nout = 0;
    }
    sm->ndirty_execs = 0;
    for (sm_swatch *w = sm->dirty_swatches, *next; w; w = next) {
        next = w->dnext;
        w->dnext = NULL;
        w->dirty = false;
        if (w->call && w->pending.len)
            rpc_call_send_packed(w->call, (const uint8_t *)w->pending.data, w->pending.len);
        fl_buf_free(&w->pending);
        w->npending = 0;
        if (!w->call) /* dropped while dirty */
            free(w);
    }
    sm->dirty_swatches = NULL;
}

void sm_task_pending(sm_t *sm, sm_session *ss, fl_task *t)
{
    pq_push(ss, t->id);
    dispatch(sm, ss);
    /* a session with executors at work only changes its demand: the cycle
     * can wait a little (coalesced); one with none needs it now */
    if (ss->streamers || ss->waiters)
        sm->sched_soft = true;
    else
        sm->sched_dirty = true;
}

/* The executor's running tasks (if any) go back to Pending. */
static void requeue_task(sm_t *sm, sm_exec *e, const char *why)
{
    sm_session *ss = e->sess;
    uint32_t n = e->nrun;
    e->nrun = 0;
    for (uint32_t i = 0; i < n && ss; i++) {
        fl_task *t = e->run[i];
        if (t->state != FLAME_TASK_RUNNING)
            continue;
        fl_task_set_state(ss->s, t, FLAME_TASK_PENDING, why, fl_now_ms());
        sm_task_changed(sm, ss, t);
        pq_push(ss, t->id);
    }
    if (n && ss) {
        dispatch(sm, ss);
        sm->sched_dirty = true;
    }
}

static void exec_free(sm_t *sm, sm_exec *e, const char *why)
{
    stream_close(sm, e, RPC_NOT_FOUND, why);
    requeue_task(sm, e, why);
    waiter_remove(e);
    for (size_t i = 0; i < sm->ndirty_execs; i++)
        if (sm->dirty_execs[i] == e)
            sm->dirty_execs[i] = sm->dirty_execs[--sm->ndirty_execs];
    fl_buf_free(&e->out);
    free(e->run);
    if (e->launch_call) {
        rpc_call_on_cancel(e->launch_call, NULL, NULL);
        sm_defer(sm, e->launch_call, OUT_ERROR, RPC_NOT_FOUND, why, NULL, 0);
    }
    if (e->bind_call) {
        rpc_call_on_cancel(e->bind_call, NULL, NULL);
        sm_defer(sm, e->bind_call, OUT_ERROR, RPC_NOT_FOUND, why, NULL, 0);
    }
    fl_map_del(&sm->execs, e->id);
    free(e->id);
    free(e->node);
    free(e->intended);
    free(e->app);
    free(e);
    sm->sched_dirty = true;
}

static void drop_node_executors(sm_t *sm, const char *node, const char *why)
{
    size_t it = 0;
    void *v;
    sm_exec **gone = NULL;
    size_t n = 0;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        if (strcmp(e->node, node) == 0) {
            gone = fl_realloc(gone, (n + 1) * sizeof *gone);
            gone[n++] = e;
        }
    }
    for (size_t i = 0; i < n; i++)
        exec_free(sm, gone[i], why);
    free(gone);
}

void sm_session_detach(sm_t *sm, sm_session *ss)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        if (e->sess != ss)
            continue;
        launch_reply_empty(sm, e);
        stream_close(sm, e, RPC_NOT_FOUND, "the session was deleted");
        e->nrun = 0;
        e->sess = NULL;
        if (e->state == FLAME_EXECUTOR_BOUND || e->state == FLAME_EXECUTOR_BINDING)
            e->state = FLAME_EXECUTOR_UNBINDING;
    }
    free(ss->pq);
    ss->pq = NULL;
    ss->pq_len = ss->pq_cap = ss->pq_head = 0;
}

/* ---- the scheduler loop ------------------------------------------------- */

static void apply(sm_t *sm, const flame_decision *d)
{
    sm_exec *e = exec_get(sm, d->executor_id);
    switch (d->kind) {
    case FLAME_DECISION_CREATE: {
        sm_node *n = fl_map_get(&sm->nodes, d->node);
        sm_session *ss = sm_session_get(sm, d->session_id);
        if (!n || !n->watch || !ss)
            return;
        e = fl_calloc(1, sizeof *e);
        e->id = fl_sprintf("%s-%llx-%llu", n->name, (unsigned long long)sm->started_ms,
                           (unsigned long long)++sm->exec_seq);
        e->node = fl_strdup(n->name);
        e->resreq = ss->s->resreq;
        fl_app *a = fl_map_get(&sm->apps, ss->s->app);
        e->shim = a ? (int)a->spec->shim : 0;
        e->state = FLAME_EXECUTOR_VOID;
        e->idle_since = fl_now_ms(); /* creation time while Void */
        e->intended = fl_strdup(ss->s->id);
        e->app = fl_strdup(ss->s->app);
        fl_map_put(&sm->execs, e->id, e);
        Flame__V1__Executor m;
        sm_fill_executor(&m, e);
        Flame__V1__WatchNodeResponse r = FLAME__V1__WATCH_NODE_RESPONSE__INIT;
        r.response_case = FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_EXECUTOR;
        r.executor = &m;
        rpc_call_send(n->watch, &r.base);
        fl_wire_fill_executor_done(&m);
        fl_log(FL_LOG_DEBUG, "sm", "executor %s created on %s for session %s", e->id, n->name,
               ss->s->id);
        break;
    }
    case FLAME_DECISION_BIND: {
        sm_session *ss = sm_session_get(sm, d->session_id);
        if (!e || !ss || e->state != FLAME_EXECUTOR_IDLE)
            return;
        e->state = FLAME_EXECUTOR_BINDING;
        e->sess = ss;
        free(e->app);
        e->app = fl_strdup(ss->s->app);
        if (e->bind_call) {
            fl_app *a = fl_map_get(&sm->apps, ss->s->app);
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
            rpc_call_on_cancel(e->bind_call, NULL, NULL);
            size_t blen = b.len;
            sm_defer(sm, e->bind_call, OUT_REPLY, 0, NULL, (uint8_t *)fl_buf_detach(&b), blen);
            e->bind_call = NULL;
        }
        break;
    }
    case FLAME_DECISION_UNBIND:
        if (!e || (e->state != FLAME_EXECUTOR_BOUND && e->state != FLAME_EXECUTOR_BINDING))
            return;
        e->state = FLAME_EXECUTOR_UNBINDING;
        launch_reply_empty(sm, e);
        if (e->stream) { /* finish what it has, then unbind */
            streamer_remove(e);
            e->credit = 0;
            exec_dirty(sm, e);
            fl_wire_put_bool(&e->out, 2, true); /* ExecutorWork.unbind */
        }
        break;
    case FLAME_DECISION_RELEASE:
        if (!e || e->state != FLAME_EXECUTOR_IDLE)
            return;
        e->state = FLAME_EXECUTOR_RELEASING;
        if (e->bind_call) {
            rpc_call_on_cancel(e->bind_call, NULL, NULL);
            sm_defer(sm, e->bind_call, OUT_REPLY, 0, NULL, NULL, 0);
            e->bind_call = NULL;
        }
        break;
    }
}

static int64_t delay_release_ms(const fl_app *a)
{
    return a && a->spec->has_delay_release ? a->spec->delay_release * 1000 : 60000;
}

/* No executor manager here runs Wasm: such sessions wait (stay Pending). */
static bool wasm_app(sm_t *sm, const char *name)
{
    fl_app *a = fl_map_get(&sm->apps, name);
    return a && a->spec->shim == FLAME_SHIM_WASM;
}

void sm_sched_run(sm_t *sm)
{
    sm->sched_dirty = false;
    sm->sched_soft = false;
    sm->sched_last_ns = fl_mono_ns();
    size_t nn = sm->nodes.len, na = sm->apps.len, ns = sm->sessions.len, ne = sm->execs.len;
    flame_sched_node *nodes = fl_calloc(nn + 1, sizeof *nodes);
    flame_sched_application *apps = fl_calloc(na + 1, sizeof *apps);
    flame_sched_session *sess = fl_calloc(ns + 1, sizeof *sess);
    flame_sched_executor *ex = fl_calloc(ne + 1, sizeof *ex);
    size_t it = 0, k = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        sm_node *n = v;
        const Flame__V1__ResourceRequirement *r = n->msg->status ? n->msg->status->allocatable : NULL;
        n->sched_hint = (uint32_t)k + 1;
        nodes[k++] = (flame_sched_node){ n->name, { r ? r->cpu : 0, r ? r->memory : 0, r ? r->gpu : 0 },
                                         n->watch != NULL };
    }
    nn = k;
    it = k = 0;
    while (fl_map_next(&sm->apps, &it, NULL, &v)) {
        fl_app *a = v;
        apps[k++] = (flame_sched_application){ a->name, a->spec->has_max_instances,
                                               a->spec->max_instances, delay_release_ms(a) };
    }
    k = 0;
    for (sm_session *ss = sm->first; ss; ss = ss->next)
        ss->held = false;
    it = 0;
    while (fl_map_next(&sm->execs, &it, NULL, &v))
        if (((sm_exec *)v)->sess)
            ((sm_exec *)v)->sess->held = true;
    for (sm_session *ss = sm->first; ss; ss = ss->next) {
        fl_session *s = ss->s;
        ss->sched_hint = 0;
        /* closed sessions matter only while executors still hold them */
        if (s->state != FLAME_SESSION_OPEN && !s->counts[FLAME_TASK_RUNNING] && !ss->held)
            continue;
        ss->sched_hint = (uint32_t)k + 1;
        sess[k++] = (flame_sched_session){
            s->id, s->app, s->priority, s->resreq, s->min_instances, s->has_max, s->max_instances,
            (uint32_t)s->counts[FLAME_TASK_PENDING], (uint32_t)s->counts[FLAME_TASK_RUNNING],
            s->state == FLAME_SESSION_OPEN, !s->unschedulable && !wasm_app(sm, s->app) };
    }
    ns = k;
    it = k = 0;
    const char *last_node = NULL;
    uint32_t last_hint = 0;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        const char *sid = e->sess ? e->sess->s->id : e->state == FLAME_EXECUTOR_VOID ? e->intended : NULL;
        /* executors sit on few nodes: look a node up once per run of them */
        if (!last_node || strcmp(last_node, e->node) != 0) {
            sm_node *n = fl_map_get(&sm->nodes, e->node);
            last_node = e->node;
            last_hint = n ? n->sched_hint : 0;
        }
        ex[k++] = (flame_sched_executor){ e->id, e->node, e->resreq, (flame_executor_state)e->state,
                                          sid, e->app, e->idle_since, last_hint,
                                          e->sess ? e->sess->sched_hint : 0 };
    }
    flame_sched_snapshot snap = { nodes, nn, apps, na, sess, ns, ex, k };
    const flame_decision *d;
    size_t nd;
    if (flame_scheduler_cycle(sm->sched, &snap, fl_now_ms(), &d, &nd) == FLAME_OK) {
        /* decisions point into the snapshot: copy the strings first, since
         * applying one may free an executor */
        for (size_t i = 0; i < nd; i++) {
            flame_decision x = d[i];
            char *node = fl_strdup(x.node), *exid = fl_strdup(x.executor_id),
                 *sid = fl_strdup(x.session_id);
            x.node = node;
            x.executor_id = exid;
            x.session_id = sid;
            apply(sm, &x);
            free(node);
            free(exid);
            free(sid);
        }
    }
    free(nodes);
    free(apps);
    free(sess);
    free(ex);
}

void sm_tick(void *ctx)
{
    sm_t *sm = ctx;
    int64_t now_s = fl_now_ms() / 1000;
    size_t it = 0;
    void *v;
    /* executors that never registered (their manager went away) */
    sm_exec **stale = NULL;
    size_t nstale = 0;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        if (e->state == FLAME_EXECUTOR_VOID && now_s - e->idle_since / 1000 > VOID_TIMEOUT_S) {
            stale = fl_realloc(stale, (nstale + 1) * sizeof *stale);
            stale[nstale++] = e;
        }
    }
    for (size_t i = 0; i < nstale; i++)
        exec_free(sm, stale[i], "its executor never registered");
    free(stale);
    it = 0;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        sm_node *n = v;
        if (n->watch && now_s - n->last_heartbeat > HEARTBEAT_TIMEOUT_S) {
            fl_log(FL_LOG_WARN, "sm", "node %s missed its heartbeats; its executors are lost",
                   n->name);
            rpc_call_on_cancel(n->watch, NULL, NULL);
            rpc_call_finish(n->watch, RPC_DEADLINE_EXCEEDED, "no heartbeat for %d s",
                            HEARTBEAT_TIMEOUT_S);
            n->watch = NULL;
            if (n->msg->status)
                n->msg->status->state = FLAME__V1__NODE_STATE__NotReady;
            drop_node_executors(sm, n->name, "the executor's node stopped sending heartbeats");
        }
    }
    sm_sched_run(sm);
}

/* ---- nodes -------------------------------------------------------------- */

static Flame__V1__Node *copy_node(const Flame__V1__Node *n)
{
    size_t len = flame__v1__node__get_packed_size(n);
    uint8_t *buf = fl_malloc(len ? len : 1);
    flame__v1__node__pack(n, buf);
    Flame__V1__Node *c = flame__v1__node__unpack(NULL, len, buf);
    free(buf);
    return c;
}

static void node_free(sm_node *n)
{
    flame__v1__node__free_unpacked(n->msg, NULL);
    free(n->name);
    free(n);
}

void sm_nodes_free(sm_t *sm)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        free(e->id);
        free(e->node);
        free(e->intended);
        free(e->app);
        free(e);
    }
    fl_map_free(&sm->execs);
    it = 0;
    while (fl_map_next(&sm->nodes, &it, NULL, &v))
        node_free(v);
    fl_map_free(&sm->nodes);
}

static const char *node_name(const Flame__V1__Node *n)
{
    if (n->metadata && n->metadata->name[0])
        return n->metadata->name;
    if (n->spec && n->spec->hostname[0])
        return n->spec->hostname;
    return NULL;
}

static void register_node(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__RegisterNodeRequest, flame__v1__register_node_request, req);
    const char *name = req->node ? node_name(req->node) : NULL;
    const char *why;
    if (!name || !fl_name_valid(name, &why)) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_INVALID_ARGUMENT, "RegisterNode: invalid node name"));
    } else {
        sm_node *n = fl_map_get(&sm->nodes, name);
        if (n) {
            /* the executor manager restarted: what it ran is gone, and its
             * old stream may not have noticed yet */
            if (n->watch) {
                rpc_call_on_cancel(n->watch, NULL, NULL);
                rpc_call_finish(n->watch, RPC_ABORTED, "the node registered again");
                n->watch = NULL;
            }
            drop_node_executors(sm, name, "the executor manager of its node restarted");
            flame__v1__node__free_unpacked(n->msg, NULL);
        } else {
            n = fl_calloc(1, sizeof *n);
            n->name = fl_strdup(name);
            fl_map_put(&sm->nodes, n->name, n);
        }
        n->msg = copy_node(req->node);
        if (!n->msg->metadata) {
            n->msg->metadata = fl_malloc(sizeof *n->msg->metadata);
            flame__v1__metadata__init(n->msg->metadata);
        }
        if (n->msg->status)
            n->msg->status->state = FLAME__V1__NODE_STATE__Ready;
        n->last_heartbeat = fl_now_ms() / 1000;
        fl_log(FL_LOG_INFO, "sm", "node %s registered", name);
        sm->sched_dirty = true;
        sm_reply_result(sm, call);
    }
    flame__v1__register_node_request__free_unpacked(req, NULL);
}

static void release_node(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__ReleaseNodeRequest, flame__v1__release_node_request, req);
    sm_node *n = fl_map_get(&sm->nodes, req->node_name);
    if (!n) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "node %s not found", req->node_name));
    } else {
        drop_node_executors(sm, n->name, "its node was released");
        if (n->watch) {
            rpc_call_on_cancel(n->watch, NULL, NULL);
            rpc_call_finish(n->watch, RPC_OK, "%s", "");
        }
        fl_map_del(&sm->nodes, n->name);
        node_free(n);
        sm_reply_result(sm, call);
    }
    flame__v1__release_node_request__free_unpacked(req, NULL);
}

static void sync_node(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__SyncNodeRequest, flame__v1__sync_node_request, req);
    const char *name = req->node ? node_name(req->node) : NULL;
    sm_node *n = name ? fl_map_get(&sm->nodes, name) : NULL;
    if (!n) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "node %s not found", name ? name : ""));
    } else {
        fl_buf b = { 0 };
        size_t l = flame__v1__node__get_packed_size(n->msg);
        uint8_t *x = fl_malloc(l ? l : 1);
        flame__v1__node__pack(n->msg, x);
        fl_wire_put_bytes(&b, 1, x, l);
        free(x);
        size_t it = 0;
        void *v;
        while (fl_map_next(&sm->execs, &it, NULL, &v)) {
            if (strcmp(((sm_exec *)v)->node, n->name))
                continue;
            x = sm_pack_executor(v, &l);
            fl_wire_put_bytes(&b, 2, x, l);
            free(x);
        }
        size_t blen = b.len;
        sm_defer(sm, call, OUT_REPLY, 0, NULL, (uint8_t *)fl_buf_detach(&b), blen);
    }
    flame__v1__sync_node_request__free_unpacked(req, NULL);
}

static void watch_cancelled(rpc_call *call, void *arg)
{
    sm_t *sm = rpc_call_user(call);
    sm_node *n = arg; /* whoever frees the node clears this callback first */
    if (n->watch == call) {
        n->watch = NULL;
        if (n->msg->status)
            n->msg->status->state = FLAME__V1__NODE_STATE__NotReady;
        fl_log(FL_LOG_WARN, "sm", "node %s disconnected; its executors are lost", n->name);
        drop_node_executors(sm, n->name, "the executor's node disconnected");
    }
}

static void watch_node(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    if (!data) { /* the executor manager half-closed: it is leaving */
        size_t it = 0;
        void *v;
        while (fl_map_next(&sm->nodes, &it, NULL, &v))
            if (((sm_node *)v)->watch == call) {
                rpc_call_on_cancel(call, NULL, NULL);
                watch_cancelled(call, v);
            }
        rpc_call_finish(call, RPC_OK, "%s", "");
        return;
    }
    RPC_UNPACK(Flame__V1__WatchNodeRequest, flame__v1__watch_node_request, req);
    const char *name = req->heartbeat ? req->heartbeat->node_name : NULL;
    sm_node *n = name ? fl_map_get(&sm->nodes, name) : NULL;
    if (!n) {
        rpc_call_finish(call, RPC_NOT_FOUND, "node %s is not registered; call RegisterNode first",
                        name ? name : "");
    } else {
        if (n->watch != call) {
            if (n->watch) { /* a newer stream replaces an old one */
                rpc_call_on_cancel(n->watch, NULL, NULL);
                rpc_call_finish(n->watch, RPC_ABORTED, "replaced by a newer WatchNode stream");
            }
            n->watch = call;
            rpc_call_set_user(call, sm);
            rpc_call_on_cancel(call, watch_cancelled, n);
            sm->sched_dirty = true;
        }
        n->last_heartbeat = fl_now_ms() / 1000;
        if (n->msg->status) {
            n->msg->status->last_heartbeat_time = n->last_heartbeat;
            n->msg->status->state = FLAME__V1__NODE_STATE__Ready;
        }
        Flame__V1__Acknowledgement ack = FLAME__V1__ACKNOWLEDGEMENT__INIT;
        ack.timestamp = fl_now_ms();
        Flame__V1__WatchNodeResponse r = FLAME__V1__WATCH_NODE_RESPONSE__INIT;
        r.response_case = FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_ACK;
        r.ack = &ack;
        rpc_call_send(call, &r.base);
    }
    flame__v1__watch_node_request__free_unpacked(req, NULL);
}

/* ---- executors ---------------------------------------------------------- */

static flame_status lookup(sm_t *sm, const char *id, sm_exec **out)
{
    *out = exec_get(sm, id);
    if (!*out)
        return fl_error(FLAME_ERR_NOT_FOUND, "executor %s not found", id ? id : "");
    return FLAME_OK;
}

static void register_executor(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__RegisterExecutorRequest, flame__v1__register_executor_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && e->state != FLAME_EXECUTOR_VOID)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is already registered (%s)",
                      e->id, flame_executor_state_str(e->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        e->state = FLAME_EXECUTOR_IDLE;
        e->idle_since = fl_now_ms();
        sm->sched_dirty = true;
        sm_reply_result(sm, call);
    }
    flame__v1__register_executor_request__free_unpacked(req, NULL);
}

static void unregister_executor(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__UnregisterExecutorRequest, flame__v1__unregister_executor_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        exec_free(sm, e, "its executor was unregistered");
        sm_reply_result(sm, call);
    }
    flame__v1__unregister_executor_request__free_unpacked(req, NULL);
}

static void bind_executor(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__BindExecutorRequest, flame__v1__bind_executor_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && e->bind_call)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is already waiting to bind",
                      e->id);
    if (!st && e->state != FLAME_EXECUTOR_IDLE && e->state != FLAME_EXECUTOR_BINDING &&
        e->state != FLAME_EXECUTOR_RELEASING)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s cannot bind while %s", e->id,
                      flame_executor_state_str(e->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        /* parked; apply() answers it when the scheduler decides */
        e->bind_call = call;
        rpc_call_on_cancel(call, bind_cancelled, e);
        if (e->state == FLAME_EXECUTOR_BINDING && e->sess) {
            e->state = FLAME_EXECUTOR_IDLE;
            sm_session *ss = e->sess;
            e->sess = NULL;
            flame_decision d = { FLAME_DECISION_BIND, NULL, e->id, ss->s->id };
            apply(sm, &d);
        } else if (e->state == FLAME_EXECUTOR_RELEASING) {
            e->state = FLAME_EXECUTOR_IDLE;
            flame_decision d = { FLAME_DECISION_RELEASE, NULL, e->id, NULL };
            apply(sm, &d);
        } else {
            sm->sched_dirty = true;
        }
    }
    flame__v1__bind_executor_request__free_unpacked(req, NULL);
}

static void bind_failed(sm_t *sm, sm_exec *e, const char *message)
{
    sm_session *ss = e->sess;
    e->sess = NULL;
    e->state = FLAME_EXECUTOR_IDLE;
    e->idle_since = fl_now_ms();
    if (!ss)
        return;
    fl_session *s = ss->s;
    char *msg = fl_sprintf("failed to bind session %s on executor %s: %s", s->id, e->id,
                           message && *message ? message : "the service refused the session");
    fl_events_add(&s->events, 1001, msg, fl_now_ms());
    fl_log(FL_LOG_WARN, "sm", "%s", msg);
    free(msg);
    if (++s->bind_failures >= BIND_FAILURES_MAX && !s->unschedulable) {
        s->unschedulable = true;
        msg = fl_sprintf("session %s failed to bind %d times in a row; it gets no more executors",
                         s->id, BIND_FAILURES_MAX);
        fl_events_add(&s->events, 1002, msg, fl_now_ms());
        free(msg);
    }
    fl_store_put_session(sm->store, s);
}

static void bind_executor_completed(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__BindExecutorCompletedRequest, flame__v1__bind_executor_completed_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && e->state != FLAME_EXECUTOR_BINDING && e->state != FLAME_EXECUTOR_UNBINDING)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is not binding (%s)", e->id,
                      flame_executor_state_str(e->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        const Flame__V1__Result *r = req->_result_case ? req->result : NULL;
        if (r && r->return_code != 0) {
            bind_failed(sm, e, r->_message_case ? r->message : NULL);
        } else if (e->state == FLAME_EXECUTOR_BINDING) {
            e->state = FLAME_EXECUTOR_BOUND;
            if (e->sess && e->sess->s->bind_failures) {
                e->sess->s->bind_failures = 0;
                fl_store_put_session(sm->store, e->sess->s);
            }
        }
        sm->sched_dirty = true;
        sm_reply_result(sm, call);
    }
    flame__v1__bind_executor_completed_request__free_unpacked(req, NULL);
}

static void unbind_executor(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__UnbindExecutorRequest, flame__v1__unbind_executor_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && e->state != FLAME_EXECUTOR_BOUND && e->state != FLAME_EXECUTOR_BINDING &&
        e->state != FLAME_EXECUTOR_UNBINDING)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is not bound (%s)", e->id,
                      flame_executor_state_str(e->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        requeue_task(sm, e, "its executor unbound before the task completed");
        e->state = FLAME_EXECUTOR_UNBINDING;
        launch_reply_empty(sm, e);
        sm_reply_result(sm, call);
    }
    flame__v1__unbind_executor_request__free_unpacked(req, NULL);
}

static void unbind_executor_completed(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__UnbindExecutorCompletedRequest, flame__v1__unbind_executor_completed_request,
           req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && e->state != FLAME_EXECUTOR_UNBINDING && e->state != FLAME_EXECUTOR_BOUND)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is not unbinding (%s)", e->id,
                      flame_executor_state_str(e->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        requeue_task(sm, e, "its executor unbound before the task completed");
        waiter_remove(e);
        e->sess = NULL;
        e->state = FLAME_EXECUTOR_IDLE;
        e->idle_since = fl_now_ms();
        sm->sched_dirty = true;
        sm_reply_result(sm, call);
    }
    flame__v1__unbind_executor_completed_request__free_unpacked(req, NULL);
}

static void launch_task(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__LaunchTaskRequest, flame__v1__launch_task_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && e->launch_call)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is already waiting for a task",
                      e->id);
    if (!st && e->nrun)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                      "executor %s still runs task %u; complete it first", e->id, e->run[0]->id);
    if (st) {
        sm_reply_error(sm, call, st);
    } else if (e->state != FLAME_EXECUTOR_BOUND || !e->sess) {
        /* unbinding (or never bound): no task, the executor leaves the session */
        sm_defer(sm, call, OUT_REPLY, 0, NULL, NULL, 0);
    } else {
        e->launch_call = call;
        rpc_call_on_cancel(call, launch_cancelled, e);
        sm_session *ss = e->sess;
        /* FIFO of waiting executors */
        e->waiting = true;
        e->wnext = NULL;
        e->wprev = NULL;
        if (!ss->waiters) {
            ss->waiters = e;
        } else {
            sm_exec *w = ss->waiters;
            while (w->wnext)
                w = w->wnext;
            w->wnext = e;
            e->wprev = w;
        }
        dispatch(sm, ss);
    }
    flame__v1__launch_task_request__free_unpacked(req, NULL);
}

/* A task the service ran: Succeed or Failed, with its output. */
static void finish_task(sm_t *sm, sm_session *ss, fl_task *t, int rc,
                        const ProtobufCBinaryData *output, const char *msg)
{
    if (output) {
        free(t->output);
        t->has_output = true;
        t->output_len = (uint32_t)output->len;
        t->output = output->len ? fl_memdup(output->data, output->len) : NULL;
    }
    if (rc == 0)
        fl_task_set_state(ss->s, t, FLAME_TASK_SUCCEED, msg, fl_now_ms());
    else
        fl_task_set_state(ss->s, t, FLAME_TASK_FAILED, msg ? msg : "the service failed the task",
                          fl_now_ms());
    sm_task_changed(sm, ss, t);
    sm->sched_soft = true;
}

/* ---- ExecutorStream ----------------------------------------------------- */

static void stream_cancelled(rpc_call *call, void *arg)
{
    sm_exec *e = arg;
    sm_t *sm = rpc_call_user(call);
    streamer_remove(e);
    e->stream = NULL;
    e->credit = 0;
    requeue_task(sm, e, "the executor's stream broke before the task completed");
}

static void executor_stream(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    sm_exec *e = NULL;
    if (!data) { /* the executor is done: what it did not report runs again */
        size_t it = 0;
        void *v;
        while (fl_map_next(&sm->execs, &it, NULL, &v))
            if (((sm_exec *)v)->stream == call)
                e = v;
        if (e) {
            streamer_remove(e);
            e->stream = NULL;
            e->credit = 0;
            requeue_task(sm, e, "its executor left the session before the task completed");
        }
        rpc_call_on_cancel(call, NULL, NULL);
        rpc_call_finish(call, RPC_OK, "%s", "");
        return;
    }
    RPC_UNPACK(Flame__V1__ExecutorUpdate, flame__v1__executor_update, req);
    e = exec_get(sm, req->executor_id);
    if (e && e->stream && e->stream != call) {
        rpc_call_finish(call, RPC_FAILED_PRECONDITION, "executor %s already has a stream", e->id);
    } else if (!e) {
        rpc_call_finish(call, RPC_NOT_FOUND, "executor %s not found", req->executor_id);
    } else if (!e->stream && e->state == FLAME_EXECUTOR_UNBINDING) {
        /* unbound while it was entering the session: nothing to run, the
         * stream ends at once and the executor goes on to unbind */
        rpc_call_finish(call, RPC_OK, "%s", "");
    } else if (!e->stream && (e->state != FLAME_EXECUTOR_BOUND || !e->sess)) {
        rpc_call_finish(call, RPC_FAILED_PRECONDITION, "executor %s is not bound (%s)", e->id,
                        flame_executor_state_str(e->state));
    } else {
        if (!e->stream) {
            e->stream = call;
            rpc_call_set_user(call, sm);
            rpc_call_on_cancel(call, stream_cancelled, e);
            e->snext = e->sess->streamers;
            e->sprev = NULL;
            if (e->snext)
                e->snext->sprev = e;
            e->sess->streamers = e;
        }
        sm_session *ss = e->sess;
        for (size_t i = 0; i < req->n_outcomes && ss; i++) {
            const Flame__V1__TaskOutcome *o = req->outcomes[i];
            fl_task *t = run_take(e, o->task_id);
            if (!t || t->state != FLAME_TASK_RUNNING)
                continue; /* not ours (any more) */
            finish_task(sm, ss, t, o->state == FLAME__V1__TASK_STATE__Succeed ? 0
                                   : o->return_code ? o->return_code : 1,
                        o->_output_case ? &o->output : NULL,
                        o->_message_case ? o->message : NULL);
        }
        if (e->state == FLAME_EXECUTOR_BOUND && ss) {
            e->credit += req->credit;
            dispatch(sm, ss);
        }
    }
    flame__v1__executor_update__free_unpacked(req, NULL);
}

static void complete_task(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__CompleteTaskRequest, flame__v1__complete_task_request, req);
    sm_exec *e;
    flame_status st = lookup(sm, req->executor_id, &e);
    if (!st && (!e->nrun || !e->sess))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s runs no task", e->id);
    if (!st && !req->task_result)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "CompleteTask needs a task_result");
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        const Flame__V1__TaskResult *r = req->task_result;
        fl_task *t = run_take(e, e->run[0]->id);
        finish_task(sm, e->sess, t, r->return_code, r->_output_case ? &r->output : NULL,
                    r->_message_case ? r->message : NULL);
        sm_reply_result(sm, call);
    }
    flame__v1__complete_task_request__free_unpacked(req, NULL);
}

/* ---- executor messages -------------------------------------------------- */

/* An executor's fields as the model has them, pointing into e. */
static fl_executor exec_view(const sm_exec *e)
{
    return (fl_executor){ e->id, e->node, e->app, e->intended, e->resreq, e->shim, e->state,
                          e->idle_since };
}

void sm_fill_executor(Flame__V1__Executor *m, const sm_exec *e)
{
    fl_executor x = exec_view(e);
    fl_wire_fill_executor(m, &x, e->sess ? e->sess->s->id : NULL);
}

uint8_t *sm_pack_executor(const sm_exec *e, size_t *len)
{
    fl_executor x = exec_view(e);
    return fl_wire_pack_executor(&x, e->sess ? e->sess->s->id : NULL, len);
}

#define BE(name) "/flame.v1.Backend/" name

const rpc_legacy_method sm_backend_methods[] = {
    { BE("RegisterNode"), RPC_KIND_UNARY, register_node },
    { BE("SyncNode"), RPC_KIND_UNARY, sync_node },
    { BE("ReleaseNode"), RPC_KIND_UNARY, release_node },
    { BE("WatchNode"), RPC_KIND_BIDI, watch_node },
    { BE("RegisterExecutor"), RPC_KIND_UNARY, register_executor },
    { BE("UnregisterExecutor"), RPC_KIND_UNARY, unregister_executor },
    { BE("BindExecutor"), RPC_KIND_UNARY, bind_executor },
    { BE("BindExecutorCompleted"), RPC_KIND_UNARY, bind_executor_completed },
    { BE("UnbindExecutor"), RPC_KIND_UNARY, unbind_executor },
    { BE("UnbindExecutorCompleted"), RPC_KIND_UNARY, unbind_executor_completed },
    { BE("LaunchTask"), RPC_KIND_UNARY, launch_task },
    { BE("CompleteTask"), RPC_KIND_UNARY, complete_task },
    { BE("ExecutorStream"), RPC_KIND_BIDI, executor_stream },
};
const size_t sm_backend_methods_len = FL_ARRAY_LEN(sm_backend_methods);
