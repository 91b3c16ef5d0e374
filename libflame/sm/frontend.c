/* flame.v1 Frontend: the handlers clients call. Each runs on the engine
 * thread; replies are deferred until the batch is committed (sm_flush). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sm.h"

static void swatch_maybe_end(sm_t *sm, sm_swatch *w);


static void reply_session(sm_t *sm, rpc_call *call, const fl_session *s)
{
    size_t n;
    uint8_t *buf = fl_wire_pack_session(s, &n);
    sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, n);
}


/* ---- applications ------------------------------------------------------- */

static void register_application(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__RegisterApplicationRequest, flame__v1__register_application_request, req);
    fl_app *a = fl_wire_app_new(req->name, req->application, fl_now_ms());
    flame_status st = fl_app_validate(req->name, a ? a->spec : NULL);
    if (!st && fl_map_get(&sm->apps, req->name))
        st = fl_error(FLAME_ERR_ALREADY_EXISTS, "application %s already exists", req->name);
    if (st) {
        fl_app_free(a);
        sm_reply_error(sm, call, st);
    } else {
        fl_map_put(&sm->apps, a->name, a);
        fl_store_put_app(sm->store, a);
        fl_log(FL_LOG_INFO, "sm", "application %s registered", a->name);
        sm_reply_result(sm, call);
    }
    flame__v1__register_application_request__free_unpacked(req, NULL);
}

static void update_application(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__UpdateApplicationRequest, flame__v1__update_application_request, req);
    fl_app *a = fl_map_get(&sm->apps, req->name), *na = NULL;
    flame_status st = FLAME_OK;
    if (!a)
        st = fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", req->name);
    else if (a->open_sessions)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                      "application %s has %u open session(s); close them before updating it",
                      req->name, a->open_sessions);
    else {
        na = fl_wire_app_new(req->name, req->application, a->ctime);
        st = fl_app_validate(req->name, na ? na->spec : NULL);
    }
    if (st) {
        fl_app_free(na);
        sm_reply_error(sm, call, st);
    } else {
        na->state = a->state;
        fl_map_put(&sm->apps, na->name, na);
        fl_app_free(a);
        fl_store_put_app(sm->store, na);
        sm_reply_result(sm, call);
    }
    flame__v1__update_application_request__free_unpacked(req, NULL);
}

static void unregister_application(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__UnregisterApplicationRequest, flame__v1__unregister_application_request, req);
    fl_app *a = fl_map_get(&sm->apps, req->name);
    if (!a) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", req->name));
    } else if (a->open_sessions) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_FAILED_PRECONDITION,
                                "application %s has %u open session(s); close them first",
                                req->name, a->open_sessions));
    } else {
        for (sm_session *ss = sm->first, *next; ss; ss = next) {
            next = ss->next;
            if (strcmp(ss->s->app, a->name) == 0) {
                fl_store_del_session(sm->store, ss->s->id);
                sm_remove_session(sm, ss);
            }
        }
        fl_store_del_app(sm->store, a->name);
        fl_map_del(&sm->apps, a->name);
        fl_log(FL_LOG_INFO, "sm", "application %s unregistered", a->name);
        fl_app_free(a);
        sm_reply_result(sm, call);
    }
    flame__v1__unregister_application_request__free_unpacked(req, NULL);
}

static void get_application(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__GetApplicationRequest, flame__v1__get_application_request, req);
    fl_app *a = fl_map_get(&sm->apps, req->name);
    if (!a) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", req->name));
    } else {
        size_t n;
        uint8_t *buf = fl_wire_pack_app(a, &n);
        sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, n);
    }
    flame__v1__get_application_request__free_unpacked(req, NULL);
}

static int cmp_app(const void *x, const void *y)
{
    const fl_app *a = *(fl_app *const *)x, *b = *(fl_app *const *)y;
    return strcmp(a->name, b->name);
}

static void list_application(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    size_t n = sm->apps.len, k = 0, it = 0;
    fl_app **v = fl_calloc(n ? n : 1, sizeof *v);
    void *val;
    while (fl_map_next(&sm->apps, &it, NULL, &val))
        v[k++] = val;
    qsort(v, k, sizeof *v, cmp_app);
    fl_buf b = { 0 }; /* ApplicationList: each one as field 1 */
    for (size_t i = 0; i < k; i++) {
        size_t xn;
        uint8_t *x = fl_wire_pack_app(v[i], &xn);
        fl_wire_put_bytes(&b, 1, x, xn);
        free(x);
    }
    size_t plen = b.len;
    uint8_t *buf = (uint8_t *)fl_buf_detach(&b);
    free(v);
    sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, plen);
}

/* ---- executors and nodes ---------------------------------------------- */

static void list_executor(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    size_t n = sm->execs.len, k = 0, it = 0;
    Flame__V1__Executor *msgs = fl_calloc(n + 1, sizeof *msgs);
    Flame__V1__Executor **ptrs = fl_calloc(n + 1, sizeof *ptrs);
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_fill_executor(&msgs[k], v);
        ptrs[k] = &msgs[k];
        k++;
    }
    Flame__V1__ExecutorList list = FLAME__V1__EXECUTOR_LIST__INIT;
    list.n_executors = k;
    list.executors = ptrs;
    rpc_call_reply(call, &list.base);
    for (size_t i = 0; i < k; i++)
        fl_wire_fill_executor_done(&msgs[i]);
    free(msgs);
    free(ptrs);
}

static void list_nodes(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    size_t n = sm->nodes.len, k = 0, it = 0;
    Flame__V1__Node **ptrs = fl_calloc(n + 1, sizeof *ptrs);
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v))
        ptrs[k++] = ((sm_node *)v)->msg;
    Flame__V1__NodeList list = FLAME__V1__NODE_LIST__INIT;
    list.n_nodes = k;
    list.nodes = ptrs;
    rpc_call_reply(call, &list.base);
    free(ptrs);
}

static void get_node(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__GetNodeRequest, flame__v1__get_node_request, req);
    sm_node *n = fl_map_get(&sm->nodes, req->name);
    if (!n) {
        rpc_call_finish(call, RPC_NOT_FOUND, "node %s not found", req->name);
    } else {
        Flame__V1__GetNodeResponse r = FLAME__V1__GET_NODE_RESPONSE__INIT;
        r.node = n->msg;
        rpc_call_reply(call, &r.base);
    }
    flame__v1__get_node_request__free_unpacked(req, NULL);
}

/* ---- sessions ----------------------------------------------------------- */

static uint64_t rng_state;

static void random_suffix(char *out, size_t n)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (!rng_state)
        rng_state = (uint64_t)fl_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i + 1 < n; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        out[i] = al[rng_state % (sizeof al - 1)];
    }
    out[n - 1] = 0;
}

static flame_status check_spec(sm_t *sm, const Flame__V1__SessionSpec *spec)
{
    if (!spec)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "a session spec is required");
    fl_app *a = fl_map_get(&sm->apps, spec->application);
    if (!a)
        return fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", spec->application);
    if (a->state != FLAME_APPLICATION_ENABLED)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "application %s is disabled",
                        spec->application);
    if (spec->_max_instances_case && spec->max_instances < spec->min_instances)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "max_instances (%u) is smaller than min_instances (%u)",
                        spec->max_instances, spec->min_instances);
    return FLAME_OK;
}

static fl_session *create_session(sm_t *sm, const char *want_id,
                                  const Flame__V1__SessionSpec *spec)
{
    char id[300];
    if (want_id && *want_id) {
        snprintf(id, sizeof id, "%s", want_id);
    } else {
        do {
            char sfx[7];
            random_suffix(sfx, sizeof sfx);
            snprintf(id, sizeof id, "%.200s-%s", spec->application, sfx);
        } while (fl_map_get(&sm->sessions, id));
    }
    fl_session_spec sp;
    fl_wire_session_spec(&sp, spec);
    fl_session *s = fl_session_new(id, &sp, &sm->default_resreq, fl_now_ms());
    sm_add_session(sm, s);
    fl_store_put_session(sm->store, s);
    fl_log(FL_LOG_DEBUG, "sm", "session %s created", s->id);
    return s;
}

static flame_status check_new_id(sm_t *sm, const char *id)
{
    const char *why;
    if (id && *id) {
        if (!fl_name_valid(id, &why))
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "invalid session id \"%.64s\": it %s", id,
                            why);
        if (fl_map_get(&sm->sessions, id))
            return fl_error(FLAME_ERR_ALREADY_EXISTS, "session %s already exists", id);
    }
    return FLAME_OK;
}

static void create_session_rpc(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__CreateSessionRequest, flame__v1__create_session_request, req);
    flame_status st = check_new_id(sm, req->session_id);
    if (!st)
        st = check_spec(sm, req->session);
    if (st)
        sm_reply_error(sm, call, st);
    else
        reply_session(sm, call, create_session(sm, req->session_id, req->session));
    flame__v1__create_session_request__free_unpacked(req, NULL);
}

static void open_session(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__OpenSessionRequest, flame__v1__open_session_request, req);
    const Flame__V1__SessionSpec *spec = req->_session_case ? req->session : NULL;
    fl_session_spec sp;
    if (spec)
        fl_wire_session_spec(&sp, spec);
    sm_session *ss = sm_session_get(sm, req->session_id);
    flame_status st = FLAME_OK;
    const char *why;
    if (!req->session_id[0]) {
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "OpenSession needs a session id");
    } else if (ss) {
        if (ss->s->state != FLAME_SESSION_OPEN)
            st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "session %s is closed", ss->s->id);
        else if (spec && !fl_session_spec_matches(ss->s, &sp, &sm->default_resreq, &why))
            st = fl_error(FLAME_ERR_INVALID_ARGUMENT,
                          "session %s exists with a different %s", ss->s->id, why);
        if (!st)
            reply_session(sm, call, ss->s);
    } else if (!spec) {
        st = fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
    } else {
        st = check_new_id(sm, req->session_id);
        if (!st)
            st = check_spec(sm, spec);
        if (!st)
            reply_session(sm, call, create_session(sm, req->session_id, spec));
    }
    if (st)
        sm_reply_error(sm, call, st);
    flame__v1__open_session_request__free_unpacked(req, NULL);
}

static flame_status close_session(sm_t *sm, sm_session *ss)
{
    fl_session *s = ss->s;
    bool was_open = s->state == FLAME_SESSION_OPEN;
    fl_task **changed;
    size_t n;
    flame_status st = fl_session_close(s, fl_now_ms(), &changed, &n);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        sm_task_changed(sm, ss, changed[i]);
    free(changed);
    for (sm_swatch *w = ss->swatches, *next; w; w = next) {
        next = w->next;
        swatch_maybe_end(sm, w);
    }
    if (was_open) {
        sm->sched_dirty = true;
        fl_app *a = fl_map_get(&sm->apps, s->app);
        if (a && a->open_sessions)
            a->open_sessions--;
        fl_store_put_session(sm->store, s);
    }
    return FLAME_OK;
}

static void close_session_rpc(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__CloseSessionRequest, flame__v1__close_session_request, req);
    sm_session *ss = sm_session_get(sm, req->session_id);
    flame_status st = ss ? close_session(sm, ss)
                         : fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
    if (st)
        sm_reply_error(sm, call, st);
    else
        reply_session(sm, call, ss->s);
    flame__v1__close_session_request__free_unpacked(req, NULL);
}

static void delete_session(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__DeleteSessionRequest, flame__v1__delete_session_request, req);
    sm_session *ss = sm_session_get(sm, req->session_id);
    flame_status st = ss ? close_session(sm, ss)
                         : fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        reply_session(sm, call, ss->s);
        fl_store_del_session(sm->store, ss->s->id);
        sm_remove_session(sm, ss);
    }
    flame__v1__delete_session_request__free_unpacked(req, NULL);
}

static void get_session(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__GetSessionRequest, flame__v1__get_session_request, req);
    sm_session *ss = sm_session_get(sm, req->session_id);
    if (ss)
        reply_session(sm, call, ss->s);
    else
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id));
    flame__v1__get_session_request__free_unpacked(req, NULL);
}

static void list_session(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    size_t n = sm->sessions.len, k = 0;
    Flame__V1__Session *msgs = fl_calloc(n ? n : 1, sizeof *msgs);
    Flame__V1__Session **ptrs = fl_calloc(n ? n : 1, sizeof *ptrs);
    for (sm_session *ss = sm->first; ss && k < n; ss = ss->next) {
        fl_wire_fill_session(&msgs[k], ss->s);
        ptrs[k] = &msgs[k];
        k++;
    }
    Flame__V1__SessionList list = FLAME__V1__SESSION_LIST__INIT;
    list.n_sessions = k;
    list.sessions = ptrs;
    size_t plen = flame__v1__session_list__get_packed_size(&list);
    uint8_t *buf = fl_malloc(plen ? plen : 1);
    flame__v1__session_list__pack(&list, buf);
    for (size_t i = 0; i < k; i++)
        fl_wire_fill_session_done(&msgs[i]);
    free(msgs);
    free(ptrs);
    sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, plen);
}

/* ---- tasks -------------------------------------------------------------- */

/* Creates the tasks of a CreateTasks or RunSession request. */
static flame_status add_tasks(sm_t *sm, sm_session *ss, const ProtobufCBinaryData *inputs,
                              size_t n_inputs, uint32_t count, uint64_t *first, size_t *n)
{
    *n = n_inputs ? n_inputs : count;
    if (ss->s->state != FLAME_SESSION_OPEN)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "session %s is closed; it takes no new tasks",
                        ss->s->id);
    if (n_inputs && count && count != n_inputs)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "count (%u) differs from the number of inputs (%zu)", count, n_inputs);
    int64_t now = fl_now_ms();
    *first = ss->s->ntasks + 1;
    for (size_t i = 0; i < *n; i++) {
        fl_task *t = n_inputs ? fl_session_add_task(ss->s, inputs[i].data, inputs[i].len, true, now)
                              : fl_session_add_task(ss->s, NULL, 0, false, now);
        fl_store_put_task(sm->store, ss->s, t);
        sm_task_pending(sm, ss, t);
    }
    return FLAME_OK;
}

static void create_task(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__CreateTaskRequest, flame__v1__create_task_request, req);
    const Flame__V1__TaskSpec *spec = req->task;
    sm_session *ss = spec ? sm_session_get(sm, spec->session_id) : NULL;
    uint64_t id = 0;
    size_t n = 0;
    flame_status st;
    if (!spec)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "a task spec is required");
    else if (!ss)
        st = fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", spec->session_id);
    else if (spec->_input_case) /* one task, with its input */
        st = add_tasks(sm, ss, &spec->input, 1, 0, &id, &n);
    else /* one task without input */
        st = add_tasks(sm, ss, NULL, 0, 1, &id, &n);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        size_t plen;
        uint8_t *buf = fl_wire_pack_task(ss->s, ss->s->tasks[id - 1], &plen);
        sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, plen);
    }
    flame__v1__create_task_request__free_unpacked(req, NULL);
}

static void create_tasks(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__CreateTasksRequest, flame__v1__create_tasks_request, req);
    sm_session *ss = sm_session_get(sm, req->session_id);
    uint64_t first = 0;
    size_t n = 0;
    flame_status st = !ss ? fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id)
                          : add_tasks(sm, ss, req->inputs, req->n_inputs, req->count, &first, &n);
    if (!st && n == 0)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "CreateTasks: no tasks given");
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        Flame__V1__CreateTasksResponse r = FLAME__V1__CREATE_TASKS_RESPONSE__INIT;
        r.first_task_id = first;
        r.count = (uint32_t)n;
        size_t plen = flame__v1__create_tasks_response__get_packed_size(&r);
        uint8_t *buf = fl_malloc(plen ? plen : 1);
        flame__v1__create_tasks_response__pack(&r, buf);
        sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, plen);
    }
    flame__v1__create_tasks_request__free_unpacked(req, NULL);
}

/* ---- WatchSession ------------------------------------------------------- */

static void swatch_add_outcome(sm_t *sm, sm_swatch *w, const fl_task *t)
{
    size_t n;
    uint8_t *o = fl_wire_pack_outcome(t, &n);
    fl_wire_put_bytes(&w->pending, 1, o, n);
    free(o);
    w->npending++;
    if (!w->dirty) {
        w->dirty = true;
        w->dnext = sm->dirty_swatches;
        sm->dirty_swatches = w;
    }
}

static void swatch_unlink(sm_swatch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (w->ss)
        w->ss->swatches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->ss = NULL;
}

/* Frees w now, or at the next flush when it still has a batch queued. */
static void swatch_release(sm_swatch *w)
{
    w->call = NULL;
    if (!w->dirty) {
        fl_buf_free(&w->pending);
        free(w);
    }
}

static void swatch_cancelled(rpc_call *call, void *arg)
{
    sm_swatch *w = arg;
    swatch_unlink(w);
    swatch_release(w);
}

/* Ends the watch once the session is closed and nothing can change. */
static void swatch_maybe_end(sm_t *sm, sm_swatch *w)
{
    fl_session *s = w->ss->s;
    if (s->state != FLAME_SESSION_CLOSED || s->counts[FLAME_TASK_PENDING] ||
        s->counts[FLAME_TASK_RUNNING])
        return;
    rpc_call *call = w->call;
    rpc_call_on_cancel(call, NULL, NULL);
    swatch_unlink(w);
    if (w->dirty) { /* the last batch goes out first */
        rpc_call_send_packed(call, (const uint8_t *)w->pending.data, w->pending.len);
        fl_buf_free(&w->pending);
        w->npending = 0;
    }
    sm_defer(sm, call, OUT_FINISH_OK, 0, NULL, NULL, 0);
    swatch_release(w);
}

void sm_swatch_outcome(sm_t *sm, sm_session *ss, const fl_task *t)
{
    /* the end of the watch is decided by the caller once all changes are
     * in (closing a session cancels many tasks at once) */
    for (sm_swatch *w = ss->swatches; w; w = w->next)
        if (t->id >= w->from)
            swatch_add_outcome(sm, w, t);
}

void sm_swatch_drop_all(sm_t *sm, sm_session *ss, int code, const char *msg)
{
    while (ss->swatches) {
        sm_swatch *w = ss->swatches;
        rpc_call_on_cancel(w->call, NULL, NULL);
        sm_defer(sm, w->call, OUT_ERROR, code, msg, NULL, 0);
        swatch_unlink(w);
        swatch_release(w);
    }
}

static sm_swatch *swatch_new(sm_session *ss, rpc_call *call, uint64_t from)
{
    sm_swatch *w = fl_calloc(1, sizeof *w);
    w->call = call;
    w->ss = ss;
    w->from = from;
    w->next = ss->swatches;
    if (w->next)
        w->next->prev = w;
    ss->swatches = w;
    rpc_call_on_cancel(call, swatch_cancelled, w);
    return w;
}

static void watch_session(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__WatchSessionRequest, flame__v1__watch_session_request, req);
    sm_session *ss = sm_session_get(sm, req->session_id);
    if (!ss) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id));
    } else {
        sm_swatch *w = swatch_new(ss, call, req->from_task_id ? req->from_task_id : 1);
        /* what is already finished, in batches */
        for (uint64_t id = w->from; id <= ss->s->ntasks; id++) {
            fl_task *t = ss->s->tasks[id - 1];
            if (t && fl_task_terminal(t->state))
                swatch_add_outcome(sm, w, t);
        }
        /* an empty first message says the watch is in place */
        if (!w->dirty) {
            w->dirty = true;
            w->dnext = sm->dirty_swatches;
            sm->dirty_swatches = w;
        }
        swatch_maybe_end(sm, w);
    }
    flame__v1__watch_session_request__free_unpacked(req, NULL);
}

/* RunSession: creations in, acknowledgements and outcomes out, on one
 * stream (no call set-up per task: the low-latency path). */
static void run_session(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    sm_swatch *w = rpc_call_user(call);
    if (!data) { /* the client is done */
        if (w) {
            rpc_call_on_cancel(call, NULL, NULL);
            swatch_unlink(w);
            swatch_release(w);
            rpc_call_set_user(call, NULL);
        }
        sm_defer(sm, call, OUT_FINISH_OK, 0, NULL, NULL, 0);
        return;
    }
    RPC_UNPACK(Flame__V1__RunSessionRequest, flame__v1__run_session_request, req);
    flame_status st = FLAME_OK;
    if (!w) {
        sm_session *ss = sm_session_get(sm, req->session_id);
        if (!ss) {
            st = fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
        } else {
            w = swatch_new(ss, call, ss->s->ntasks + 1);
            rpc_call_set_user(call, w);
        }
    }
    uint64_t first = 0;
    size_t n = 0;
    if (!st && w->ss)
        st = add_tasks(sm, w->ss, req->inputs, req->n_inputs, req->count, &first, &n);
    if (st) {
        if (w) {
            rpc_call_on_cancel(call, NULL, NULL);
            swatch_unlink(w);
            swatch_release(w);
            rpc_call_set_user(call, NULL);
        }
        sm_reply_error(sm, call, st);
    } else if (n) {
        Flame__V1__TaskOutcomes ack = FLAME__V1__TASK_OUTCOMES__INIT;
        ack.created_first = first;
        ack.created_count = (uint32_t)n;
        size_t plen = flame__v1__task_outcomes__get_packed_size(&ack);
        uint8_t *buf = fl_malloc(plen ? plen : 1);
        flame__v1__task_outcomes__pack(&ack, buf);
        sm_defer(sm, call, OUT_SEND, 0, NULL, buf, plen);
    }
    flame__v1__run_session_request__free_unpacked(req, NULL);
}

static fl_task *find_task(sm_t *sm, const char *sid, const char *tid, sm_session **ssp)
{
    sm_session *ss = sm_session_get(sm, sid);
    *ssp = ss;
    if (!ss) {
        fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", sid);
        return NULL;
    }
    fl_task *t = fl_session_task(ss->s, tid);
    if (!t)
        fl_error(FLAME_ERR_NOT_FOUND, "task %s not found in session %s", tid, sid);
    return t;
}

static void get_task(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__GetTaskRequest, flame__v1__get_task_request, req);
    sm_session *ss;
    fl_task *t = find_task(sm, req->session_id, req->task_id, &ss);
    if (!t) {
        sm_reply_error(sm, call, FLAME_ERR_NOT_FOUND);
    } else {
        size_t n;
        uint8_t *buf = fl_wire_pack_task(ss->s, t, &n);
        sm_defer(sm, call, OUT_REPLY, 0, NULL, buf, n);
    }
    flame__v1__get_task_request__free_unpacked(req, NULL);
}

static void watch_task(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__WatchTaskRequest, flame__v1__watch_task_request, req);
    sm_session *ss;
    fl_task *t = find_task(sm, req->session_id, req->task_id, &ss);
    if (!t) {
        sm_reply_error(sm, call, FLAME_ERR_NOT_FOUND);
    } else {
        size_t n;
        uint8_t *buf = fl_wire_pack_task(ss->s, t, &n);
        sm_defer(sm, call, OUT_SEND, 0, NULL, buf, n);
        if (fl_task_terminal(t->state))
            sm_defer(sm, call, OUT_FINISH_OK, 0, NULL, NULL, 0);
        else
            sm_watch_add(sm, call, ss, t); /* completed by sm_task_changed */
    }
    flame__v1__watch_task_request__free_unpacked(req, NULL);
}

static void list_task(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    sm_t *sm = ctx;
    RPC_UNPACK(Flame__V1__ListTaskRequest, flame__v1__list_task_request, req);
    sm_session *ss = sm_session_get(sm, req->session_id);
    if (!ss) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id));
    } else {
        for (uint32_t i = 0; i < ss->s->ntasks; i++) {
            if (!ss->s->tasks[i])
                continue;
            size_t n;
            uint8_t *buf = fl_wire_pack_task(ss->s, ss->s->tasks[i], &n);
            sm_defer(sm, call, OUT_SEND, 0, NULL, buf, n);
        }
        sm_defer(sm, call, OUT_FINISH_OK, 0, NULL, NULL, 0);
    }
    flame__v1__list_task_request__free_unpacked(req, NULL);
}

#define FE(name) "/flame.v1.Frontend/" name

const rpc_legacy_method sm_frontend_methods[] = {
    { FE("RegisterApplication"), RPC_KIND_UNARY, register_application },
    { FE("UnregisterApplication"), RPC_KIND_UNARY, unregister_application },
    { FE("UpdateApplication"), RPC_KIND_UNARY, update_application },
    { FE("GetApplication"), RPC_KIND_UNARY, get_application },
    { FE("ListApplication"), RPC_KIND_UNARY, list_application },
    { FE("ListExecutor"), RPC_KIND_UNARY, list_executor },
    { FE("ListNodes"), RPC_KIND_UNARY, list_nodes },
    { FE("GetNode"), RPC_KIND_UNARY, get_node },
    { FE("CreateSession"), RPC_KIND_UNARY, create_session_rpc },
    { FE("DeleteSession"), RPC_KIND_UNARY, delete_session },
    { FE("OpenSession"), RPC_KIND_UNARY, open_session },
    { FE("CloseSession"), RPC_KIND_UNARY, close_session_rpc },
    { FE("GetSession"), RPC_KIND_UNARY, get_session },
    { FE("ListSession"), RPC_KIND_UNARY, list_session },
    { FE("CreateTask"), RPC_KIND_UNARY, create_task },
    { FE("GetTask"), RPC_KIND_UNARY, get_task },
    { FE("WatchTask"), RPC_KIND_SERVER_STREAM, watch_task },
    { FE("ListTask"), RPC_KIND_SERVER_STREAM, list_task },
    { FE("CreateTasks"), RPC_KIND_UNARY, create_tasks },
    { FE("WatchSession"), RPC_KIND_SERVER_STREAM, watch_session },
    { FE("RunSession"), RPC_KIND_BIDI, run_session },
};
const size_t sm_frontend_methods_len = FL_ARRAY_LEN(sm_frontend_methods);
