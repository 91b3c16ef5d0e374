/* The session manager's engine: start/stop, restore, group commit and the
 * deferred replies that wait for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/endpoint.h"
#include "sm.h"

void sm_reply_result(sm_t *sm, rpc_call *call)
{
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    size_t n = flame__v1__result__get_packed_size(&r);
    uint8_t *buf = fl_malloc(n ? n : 1);
    flame__v1__result__pack(&r, buf);
    sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, n);
}

void sm_reply_error(sm_t *sm, rpc_call *call, flame_status st)
{
    sm_defer(sm, call, OUT_ERROR, rpc_status_to_code(st), flame_error_last(), NULL, 0);
}

void sm_defer(sm_t *sm, rpc_call *call, int kind, int code, const char *msg, uint8_t *data,
              size_t len)
{
    if (sm->n_out == sm->cap_out) {
        sm->cap_out = sm->cap_out ? sm->cap_out * 2 : 64;
        sm->out = fl_realloc(sm->out, sm->cap_out * sizeof *sm->out);
    }
    rpc_call_ref(call);
    sm->out[sm->n_out++] = (sm_out){ call, kind, code, fl_strdup(msg), data, len };
}

/* Demand changes of busy sessions wait at most this long for a cycle (the
 * tick catches up with the rest). */
#define SCHED_SOFT_NS 5000000

void sm_flush(void *ctx)
{
    sm_t *sm = ctx;
    if (sm->sched && (sm->sched_dirty ||
                      (sm->sched_soft && fl_mono_ns() - sm->sched_last_ns > SCHED_SOFT_NS)))
        sm_sched_run(sm);
    flame_status st = fl_store_commit(sm->store);
    if (st)
        fl_log(FL_LOG_ERROR, "sm", "commit failed: %s", flame_error_last());
    /* Replies go out only now: what a client saw acknowledged is on disk. */
    for (size_t i = 0; i < sm->n_out; i++) {
        sm_out *o = &sm->out[i];
        if (st && (o->kind == OUT_REPLY || o->kind == OUT_FINISH_OK))
            rpc_call_finish(o->call, RPC_INTERNAL, "storage commit failed: %s", flame_error_last());
        else if (o->kind == OUT_REPLY)
            rpc_call_reply_packed(o->call, o->data, o->len);
        else if (o->kind == OUT_SEND)
            rpc_call_send_packed(o->call, o->data, o->len);
        else if (o->kind == OUT_FINISH_OK)
            rpc_call_finish(o->call, RPC_OK, "%s", "");
        else
            rpc_call_finish(o->call, o->code, "%s", o->msg ? o->msg : "");
        rpc_call_unref(o->call);
        free(o->data);
        free(o->msg);
    }
    sm->n_out = 0;
    sm_flush_streams(sm);
}

/* ---- sessions and watchers ---------------------------------------------- */

void sm_add_session(sm_t *sm, fl_session *s)
{
    sm_session *ss = fl_calloc(1, sizeof *ss);
    ss->s = s;
    if (!s->seq)
        s->seq = sm->next_seq;
    if (s->seq >= sm->next_seq)
        sm->next_seq = s->seq + 1;
    ss->prev = sm->last;
    if (sm->last)
        sm->last->next = ss;
    else
        sm->first = ss;
    sm->last = ss;
    fl_map_put(&sm->sessions, s->id, ss);
    fl_app *a = fl_map_get(&sm->apps, s->app);
    if (a && s->state == FLAME_SESSION_OPEN)
        a->open_sessions++;
}

void sm_remove_session(sm_t *sm, sm_session *ss)
{
    fl_session *s = ss->s;
    sm_session_detach(sm, ss);
    sm_swatch_drop_all(sm, ss, RPC_NOT_FOUND, "the session was deleted");
    for (uint32_t i = 0; i < s->ntasks; i++)
        if (s->tasks[i])
            sm_watch_drop_all(sm, s->tasks[i], RPC_NOT_FOUND, "the session was deleted");
    fl_app *a = fl_map_get(&sm->apps, s->app);
    if (a && s->state == FLAME_SESSION_OPEN && a->open_sessions)
        a->open_sessions--;
    fl_map_del(&sm->sessions, s->id);
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        sm->first = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    else
        sm->last = ss->prev;
    fl_session_free(s);
    free(ss->pq);
    free(ss);
}

sm_session *sm_session_get(sm_t *sm, const char *id)
{
    return id ? fl_map_get(&sm->sessions, id) : NULL;
}

static void watch_unlink(fl_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->task->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void watch_cancelled(rpc_call *call, void *arg)
{
    fl_watch *w = arg;
    watch_unlink(w);
    free(w);
}

void sm_watch_add(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t)
{
    fl_watch *w = fl_calloc(1, sizeof *w);
    w->call = call;
    w->sess = ss;
    w->task = t;
    w->next = t->watchers;
    if (t->watchers)
        t->watchers->prev = w;
    t->watchers = w;
    rpc_call_on_cancel(call, watch_cancelled, w);
}

void sm_watch_drop_all(sm_t *sm, fl_task *t, int code, const char *msg)
{
    while (t->watchers) {
        fl_watch *w = t->watchers;
        watch_unlink(w);
        rpc_call_on_cancel(w->call, NULL, NULL);
        sm_defer(sm, w->call, OUT_ERROR, code, msg, NULL, 0);
        free(w);
    }
}

void sm_task_changed(sm_t *sm, sm_session *ss, fl_task *t)
{
    /* Running is not persisted: after a restart a Running task is Pending
     * again anyway */
    if (t->state != FLAME_TASK_RUNNING)
        fl_store_put_task(sm->store, ss->s, t);
    if (fl_task_terminal(t->state) && ss->swatches)
        sm_swatch_outcome(sm, ss, t);
    if (!t->watchers)
        return;
    size_t len;
    uint8_t *data = fl_wire_pack_task(ss->s, t, &len);
    bool done = fl_task_terminal(t->state);
    for (fl_watch *w = t->watchers, *next; w; w = next) {
        next = w->next;
        sm_defer(sm, w->call, OUT_SEND, 0, NULL, fl_memdup(data, len ? len : 1), len);
        if (done) {
            watch_unlink(w);
            rpc_call_on_cancel(w->call, NULL, NULL);
            sm_defer(sm, w->call, OUT_FINISH_OK, 0, NULL, NULL, 0);
            free(w);
        }
    }
    free(data);
}

/* ---- restore ------------------------------------------------------------ */

static void load_app(void *ctx, fl_app *a)
{
    sm_t *sm = ctx;
    fl_app_free(fl_map_get(&sm->apps, a->name));
    fl_map_put(&sm->apps, a->name, a);
}

static void load_session(void *ctx, fl_session *s)
{
    sm_t *sm = ctx;
    if (fl_map_get(&sm->sessions, s->id)) {
        fl_session_free(s);
        return;
    }
    sm_add_session(sm, s);
}

static void load_task(void *ctx, const char *sid, fl_task *t)
{
    sm_t *sm = ctx;
    sm_session *ss = sm_session_get(sm, sid);
    if (!ss) {
        fl_task_free(t);
        return;
    }
    bool was_running = t->state == FLAME_TASK_RUNNING;
    if (was_running)
        t->state = FLAME_TASK_PENDING; /* its executor is gone with the old process */
    fl_session_put_task(ss->s, t);
    if (t->state == FLAME_TASK_PENDING)
        sm_task_pending(sm, ss, t);
    if (was_running) {
        fl_events_add(&t->events, FLAME_TASK_PENDING,
                      "session manager restarted while the task was running; it runs again",
                      fl_now_ms());
        fl_store_put_task(sm->store, ss->s, t);
    }
}

/* ---- life cycle --------------------------------------------------------- */

static void *engine_main(void *arg)
{
    sm_t *sm = arg;
    rpc_server_run(sm->rpc);
    return NULL;
}

static void sm_free(sm_t *sm)
{
    sm_nodes_free(sm);
    for (sm_session *ss = sm->first, *next; ss; ss = next) {
        next = ss->next;
        fl_session_free(ss->s);
        free(ss->pq);
        free(ss);
    }
    flame_scheduler_free(sm->sched);
    fl_map_free(&sm->sessions);
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->apps, &it, NULL, &v))
        fl_app_free(v);
    fl_map_free(&sm->apps);
    fl_store_close(sm->store);
    free(sm->out);
    free(sm->dirty_execs);
    free(sm->methods);
    free(sm->name);
    free(sm);
}

flame_status flame_session_manager_start(flame_session_manager **out,
                                         const flame_server_options *opts)
{
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    flame_cluster_config *cfg = NULL;
    if (o.config_file) {
        flame_status st = flame_cluster_config_load(&cfg, o.config_file);
        if (st)
            return st;
    }
    sm_t *sm = fl_calloc(1, sizeof *sm);
    sm->next_seq = 1;
    sm->started_ms = fl_now_ms();
    flame_scheduler_new(&sm->sched);
    sm->default_resreq = cfg ? cfg->resreq : (flame_resreq){ 1, 1ULL << 30, 0 };
    sm->schedule_interval_ms = o.schedule_interval_ms ? o.schedule_interval_ms
                               : cfg ? cfg->schedule_interval_ms : 500;
    sm->max_message = o.max_message_size ? o.max_message_size : RPC_DEFAULT_MAX_MESSAGE;
    sm->name = fl_strdup(cfg ? cfg->name : "flame");
    const char *endpoint = o.endpoint ? o.endpoint : cfg ? cfg->endpoint : FL_DEFAULT_ENDPOINT;
    const char *storage = o.storage ? o.storage : cfg ? cfg->storage : "sqlite://flame.db";
    char addr[256];
    fl_endpoint ep;
    flame_status st = fl_endpoint_parse(&ep, endpoint, FLAME_ERR_CONFIG);
    if (!st) {
        if ((size_t)snprintf(addr, sizeof addr, "%s", ep.target) >= sizeof addr)
            st = fl_error(FLAME_ERR_CONFIG, "endpoint \"%s\": too long", endpoint);
        fl_endpoint_clear(&ep);
    }
    if (!st)
        st = fl_store_open(&sm->store, storage);
    flame_cluster_config_free(cfg);
    if (st) {
        sm_free(sm);
        return st;
    }
    st = sm->store->ops->load(sm->store, sm, load_app, load_session, load_task);
    if (st) {
        sm_free(sm);
        return st;
    }
    sm_register_builtins(sm);
    if ((st = fl_store_commit(sm->store))) {
        sm_free(sm);
        return st;
    }
    size_t n = sm_frontend_methods_len + sm_backend_methods_len;
    rpc_legacy_method *methods = fl_malloc(n * sizeof *methods);
    memcpy(methods, sm_frontend_methods, sm_frontend_methods_len * sizeof *methods);
    memcpy(methods + sm_frontend_methods_len, sm_backend_methods,
           sm_backend_methods_len * sizeof *methods);
    rpc_server_hooks hooks = { sm_flush, sm_tick, sm->schedule_interval_ms, sm };
    sm->rpc = rpc_server_new_legacy(methods, n, sm, sm->max_message, &hooks);
    sm->methods = methods;
    sm->port = rpc_server_listen(sm->rpc, addr);
    if (sm->port < 0) {
        rpc_server_free(sm->rpc);
        sm_free(sm);
        return FLAME_ERR_UNAVAILABLE;
    }
    if (pthread_create(&sm->thread, NULL, engine_main, sm) != 0) {
        rpc_server_free(sm->rpc);
        sm_free(sm);
        return fl_error(FLAME_ERR_INTERNAL, "cannot start the engine thread");
    }
    fl_log(FL_LOG_INFO, "sm", "session manager %s listening on %s (port %d), storage %s",
           sm->name, addr, sm->port, sm->store->ops->name);
    *out = sm;
    return FLAME_OK;
}

int flame_session_manager_port(const flame_session_manager *sm)
{
    return sm ? sm->port : -1;
}

void flame_session_manager_stop(flame_session_manager *sm)
{
    if (!sm)
        return;
    rpc_server_shutdown(sm->rpc);
    pthread_join(sm->thread, NULL);
    rpc_server_free(sm->rpc);
    sm_flush(sm);
    sm_free(sm);
}
