/* flame.v1 Frontend: the handlers clients call. Handlers only: each
 * unpacks its request, calls the core and answers through reply.c (after
 * the commit); nothing calls into this file. Engine thread. */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "sm.h"

/* The caller, as the authorization hook identified it (engine.c installs
 * the hook for every call). */
static const fl_identity *caller(const rpc_call *call)
{
    return fl_auth_call_identity(call);
}

/* Application environments may hold secrets: admins only see them. */
static uint8_t *pack_app_for(const rpc_call *call, const fl_app *a, size_t *len)
{
    return caller(call)->role == FL_ROLE_ADMIN ? fl_wire_pack_app(a, len)
                                               : fl_wire_pack_app_public(a, len);
}

static void reply_session(sm_t *sm, rpc_call *call, const fl_session *s)
{
    size_t n;
    uint8_t *buf = fl_wire_pack_session(s, &n);
    sm_reply(sm, call, buf, n);
}


/* ---- applications ------------------------------------------------------- */

/* Who may write an application (Security II): admins any; a user only
 * sandboxed ones (process or microvm; no level given means process, never
 * the node's default, which may be none) of their own, never the built-ins
 * or an admin's. The new spec is made from m with its owner set by us.
 * *out NULL: refused, the error set. */
static flame_status app_for(fl_app **out, const rpc_call *call, sm_t *sm, const char *name,
                            Flame__V1__ApplicationSpec *m)
{
    const fl_identity *id = caller(call);
    *out = NULL;
    if (!m)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "application %s: no spec given",
                        name ? name : "");
    fl_app *old = name ? sm_app_get(sm, name) : NULL;
    char *sandbox = m->sandbox, *owner = m->owner;
    if (id->role != FL_ROLE_ADMIN && !id->serial[0])
        return fl_error(FLAME_ERR_PERMISSION_DENIED,
                        "user %s may not write applications: that takes a certificate (an "
                        "application has an owner)", id->name);
    if (id->role != FL_ROLE_ADMIN) {
        const char *had = old && old->spec->owner ? old->spec->owner : "";
        if (old && strcmp(had, id->name) != 0)
            return fl_error(FLAME_ERR_PERMISSION_DENIED,
                            "user %s may not change application %s: it belongs to %s", id->name, name, had[0] ? had : "the admins");
        if (!m->sandbox || !m->sandbox[0])
            m->sandbox = "process";
        if (strcmp(m->sandbox, "none") == 0) {
            m->sandbox = sandbox;
            return fl_error(FLAME_ERR_PERMISSION_DENIED,
                            "user %s may not register application %s with sandbox none "
                            "(unconfined executors are for admins; use process or microvm)",
                            id->name, name ? name : "");
        }
        m->owner = (char *)id->name;
    } else {
        /* an admin's update keeps the owner; a registration is the admins' */
        m->owner = old && old->spec->owner ? old->spec->owner : "";
    }
    *out = fl_wire_app_new(name, m, fl_now_ms());
    m->sandbox = sandbox; /* the request's own strings go back before it is freed */
    m->owner = owner;
    return FLAME_OK;
}

static void register_application(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    Flame__V1__RegisterApplicationRequest *req = (Flame__V1__RegisterApplicationRequest *)msg;
    fl_app *a;
    flame_status st = app_for(&a, call, sm, req->name, req->application);
    if (!st)
        st = sm_app_register(sm, req->name, a);
    else
        fl_app_free(a);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        fl_log(FL_LOG_INFO, "sm", "application %s registered", req->name);
        sm_reply_result(sm, call);
    }
}

static void update_application(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    Flame__V1__UpdateApplicationRequest *req = (Flame__V1__UpdateApplicationRequest *)msg;
    fl_app *a;
    flame_status st = app_for(&a, call, sm, req->name, req->application);
    if (!st)
        st = sm_app_update(sm, req->name, a);
    if (st)
        sm_reply_error(sm, call, st);
    else
        sm_reply_result(sm, call);
}

static void unregister_application(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__UnregisterApplicationRequest *req = (const Flame__V1__UnregisterApplicationRequest *)msg;
    const fl_identity *id = caller(call);
    fl_app *a = id->role == FL_ROLE_ADMIN || !req->name ? NULL : sm_app_get(sm, req->name);
    const char *owner = a && a->spec->owner ? a->spec->owner : "";
    flame_status st =
        a && strcmp(owner, id->name) != 0
            ? fl_error(FLAME_ERR_PERMISSION_DENIED,
                       "user %s may not unregister application %s: it belongs to %s", id->name,
                       req->name, owner[0] ? owner : "the admins")
            : sm_app_unregister(sm, req->name);
    if (st)
        sm_reply_error(sm, call, st);
    else
        sm_reply_result(sm, call);
}

static void get_application(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__GetApplicationRequest *req = (const Flame__V1__GetApplicationRequest *)msg;
    fl_app *a = sm_app_get(sm, req->name);
    if (!a) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", req->name));
    } else {
        size_t n;
        uint8_t *buf = pack_app_for(call, a, &n);
        sm_reply(sm, call, buf, n);
    }
}

static int cmp_app(const void *x, const void *y)
{
    const fl_app *a = *(fl_app *const *)x, *b = *(fl_app *const *)y;
    return strcmp(a->name, b->name);
}

/* state < 0: every application (ListApplication, and ListApplications
 * without a filter). */
static void reply_app_list(sm_t *sm, rpc_call *call, int state)
{
    size_t n = sm->apps.len, k = 0, it = 0;
    fl_app **v = fl_calloc(n ? n : 1, sizeof *v);
    void *val;
    while (fl_map_next(&sm->apps, &it, NULL, &val))
        if (state < 0 || ((fl_app *)val)->state == state)
            v[k++] = val;
    qsort(v, k, sizeof *v, cmp_app);
    fl_buf b = { 0 }; /* ApplicationList: each one as field 1 */
    for (size_t i = 0; i < k; i++) {
        size_t xn;
        uint8_t *x = pack_app_for(call, v[i], &xn);
        fl_wire_put_bytes(&b, 1, x, xn);
        free(x);
    }
    free(v);
    size_t plen = b.len;
    sm_reply(sm, call, (uint8_t *)fl_buf_detach(&b), plen);
}

static void list_application(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    reply_app_list(ctx, call, -1);
}

static void list_applications(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    const Flame__V1__ListApplicationsRequest *req = (const Flame__V1__ListApplicationsRequest *)msg;
    reply_app_list(ctx, call, req->_state_case ? (int)req->state : -1);
}

/* ---- executors and nodes ---------------------------------------------- */

static void list_executor(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    size_t n = sm->execs.len, k = 0, it = 0;
    Flame__V1__Executor *msgs = fl_calloc(n + 1, sizeof *msgs);
    Flame__V1__Executor **ptrs = fl_calloc(n + 1, sizeof *ptrs);
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        fl_wire_fill_executor(&msgs[k], ((sm_exec *)v)->ex, sm_exec_session_id(v));
        ptrs[k] = &msgs[k];
        k++;
    }
    Flame__V1__ExecutorList list = FLAME__V1__EXECUTOR_LIST__INIT;
    list.n_executors = k;
    list.executors = ptrs;
    sm_reply_msg(sm, call, &list.base);
    for (size_t i = 0; i < k; i++)
        fl_wire_fill_executor_done(&msgs[i]);
    free(msgs);
    free(ptrs);
}

static void list_nodes(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    size_t n = sm->nodes.len, k = 0, it = 0;
    Flame__V1__Node *msgs = fl_calloc(n + 1, sizeof *msgs);
    Flame__V1__Node **ptrs = fl_calloc(n + 1, sizeof *ptrs);
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        fl_wire_fill_node(&msgs[k], ((sm_node *)v)->node);
        ptrs[k] = &msgs[k];
        k++;
    }
    Flame__V1__NodeList list = FLAME__V1__NODE_LIST__INIT;
    list.n_nodes = k;
    list.nodes = ptrs;
    sm_reply_msg(sm, call, &list.base);
    for (size_t i = 0; i < k; i++)
        fl_wire_fill_node_done(&msgs[i]);
    free(msgs);
    free(ptrs);
}

static void get_node(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__GetNodeRequest *req = (const Flame__V1__GetNodeRequest *)msg;
    sm_node *n = sm_node_get(sm, req->name);
    if (!n) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "node %s not found", req->name));
    } else {
        Flame__V1__Node m;
        fl_wire_fill_node(&m, n->node);
        Flame__V1__GetNodeResponse r = FLAME__V1__GET_NODE_RESPONSE__INIT;
        r.node = &m;
        sm_reply_msg(sm, call, &r.base);
        fl_wire_fill_node_done(&m);
    }
}

/* ---- sessions ----------------------------------------------------------- */

/* The plain spec of m, in *sp; NULL when m is. */
static const fl_session_spec *session_spec(fl_session_spec *sp, const Flame__V1__SessionSpec *m)
{
    if (!m)
        return NULL;
    fl_wire_session_spec(sp, m);
    return sp;
}

static void create_session_rpc(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__CreateSessionRequest *req = (const Flame__V1__CreateSessionRequest *)msg;
    fl_session_spec sp;
    const fl_session_spec *spec = session_spec(&sp, req->session);
    flame_status st = sm_session_check_new_id(sm, req->session_id);
    if (!st)
        st = sm_session_check_spec(sm, spec);
    if (st)
        sm_reply_error(sm, call, st);
    else
        reply_session(sm, call, sm_session_create(sm, req->session_id, spec, caller(call)->name));
}

static void open_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__OpenSessionRequest *req = (const Flame__V1__OpenSessionRequest *)msg;
    fl_session_spec sp;
    const fl_session_spec *spec = session_spec(&sp, req->_session_case ? req->session : NULL);
    sm_session *ss = sm_session_get(sm, req->session_id);
    flame_status st = FLAME_OK;
    const char *why;
    if (!req->session_id[0]) {
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "OpenSession needs a session id");
    } else if (ss) {
        if (ss->s->state != FLAME_SESSION_OPEN)
            st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "session %s is not open", ss->s->id);
        else if (spec && !fl_session_spec_matches(ss->s, spec, &sm->default_resreq, &why))
            st = fl_error(FLAME_ERR_INVALID_ARGUMENT,
                          "session %s exists with a different %s", ss->s->id, why);
        if (!st)
            reply_session(sm, call, ss->s);
    } else if (!spec) {
        st = fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
    } else {
        st = sm_session_check_new_id(sm, req->session_id);
        if (!st)
            st = sm_session_check_spec(sm, spec);
        if (!st)
            reply_session(sm, call,
                          sm_session_create(sm, req->session_id, spec, caller(call)->name));
    }
    if (st)
        sm_reply_error(sm, call, st);
}

static void close_session_rpc(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__CloseSessionRequest *req = (const Flame__V1__CloseSessionRequest *)msg;
    sm_session *ss = sm_session_get(sm, req->session_id);
    flame_status st = ss ? sm_session_close(sm, ss)
                         : fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
    if (st)
        sm_reply_error(sm, call, st);
    else
        reply_session(sm, call, ss->s);
}

static void delete_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__DeleteSessionRequest *req = (const Flame__V1__DeleteSessionRequest *)msg;
    sm_session *ss = sm_session_get(sm, req->session_id);
    flame_status st = ss ? sm_session_close(sm, ss)
                         : fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        reply_session(sm, call, ss->s);
        sm_session_delete(sm, ss);
    }
}

static void get_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__GetSessionRequest *req = (const Flame__V1__GetSessionRequest *)msg;
    sm_session *ss = sm_session_get(sm, req->session_id);
    if (ss)
        reply_session(sm, call, ss->s);
    else
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id));
}

/* What a ListSessions request narrows the list to (NULL: nothing). */
static bool session_matches(const fl_session *s, const Flame__V1__ListSessionsRequest *f)
{
    if (!f)
        return true;
    if (f->_application_case && strcmp(s->app, f->application) != 0)
        return false;
    if (f->_state_case && s->state != (int)f->state)
        return false;
    bool named = f->n_ids == 0;
    for (size_t i = 0; i < f->n_ids && !named; i++)
        named = strcmp(s->id, f->ids[i]) == 0;
    return named;
}

/* Admins see every session, users only their own. */
static void reply_session_list(sm_t *sm, rpc_call *call, const Flame__V1__ListSessionsRequest *f)
{
    const fl_identity *id = caller(call);
    size_t n = sm->sessions.len, k = 0;
    Flame__V1__Session *msgs = fl_calloc(n ? n : 1, sizeof *msgs);
    Flame__V1__Session **ptrs = fl_calloc(n ? n : 1, sizeof *ptrs);
    for (sm_session *ss = sm->first; ss && k < n; ss = ss->next) {
        if (id->role != FL_ROLE_ADMIN && strcmp(ss->s->owner, id->name))
            continue;
        if (!session_matches(ss->s, f))
            continue;
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
    sm_reply(sm, call, buf, plen);
}

static void list_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    reply_session_list(ctx, call, NULL);
}

/* The ids filter is matched by a scan per session: it is bounded. */
#define LIST_SESSIONS_MAX_IDS 1024

static void list_sessions(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    const Flame__V1__ListSessionsRequest *req = (const Flame__V1__ListSessionsRequest *)msg;
    if (req->n_ids > LIST_SESSIONS_MAX_IDS)
        sm_reply_error(ctx, call, fl_error(FLAME_ERR_INVALID_ARGUMENT,
                                           "ListSessions: at most %d ids (%zu given)",
                                           LIST_SESSIONS_MAX_IDS, req->n_ids));
    else
        reply_session_list(ctx, call, req);
}

/* SuspendSession / ResumeSession (Flame 0.7). */
static void suspend_or_resume(sm_t *sm, rpc_call *call, const char *id, bool suspend)
{
    sm_session *ss = sm_session_get(sm, id);
    flame_status st = !ss     ? fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", id)
                      : suspend ? sm_session_suspend(sm, ss)
                                : sm_session_resume(sm, ss);
    if (st)
        sm_reply_error(sm, call, st);
    else
        reply_session(sm, call, ss->s);
}

static void suspend_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    suspend_or_resume(ctx, call, ((const Flame__V1__SuspendSessionRequest *)msg)->session_id, true);
}

static void resume_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    suspend_or_resume(ctx, call, ((const Flame__V1__ResumeSessionRequest *)msg)->session_id, false);
}

/* ---- tasks -------------------------------------------------------------- */

/* Flame 0.7's TaskSpec.affinity within our bounds. */
static flame_status affinity_check(const Flame__V1__TaskSpec *spec)
{
    size_t bytes = 0;
    for (size_t i = 0; i < spec->n_affinity; i++)
        bytes += 4 + spec->affinity[i].len;
    if (spec->n_affinity > FL_MAX_AFFINITY || bytes > FL_MAX_AFFINITY_BYTES)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "a task's affinity has at most %d keys of %d bytes in all (%zu keys, "
                        "%zu bytes given)", FL_MAX_AFFINITY, FL_MAX_AFFINITY_BYTES,
                        spec->n_affinity, bytes);
    return FLAME_OK;
}

static void create_task(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__CreateTaskRequest *req = (const Flame__V1__CreateTaskRequest *)msg;
    const Flame__V1__TaskSpec *spec = req->task;
    sm_session *ss = spec ? sm_session_get(sm, spec->session_id) : NULL;
    uint64_t id = 0;
    size_t n = 0;
    flame_status st;
    if (!spec)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "a task spec is required");
    else if (!ss)
        st = fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", spec->session_id);
    else if ((st = affinity_check(spec)))
        ;
    else if (spec->_input_case) /* one task, with its input */
        st = sm_tasks_add(sm, ss, &spec->input, 1, 0, spec, &id, &n);
    else /* one task without input */
        st = sm_tasks_add(sm, ss, NULL, 0, 1, spec, &id, &n);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        size_t plen;
        uint8_t *buf = fl_wire_pack_task(ss->s, ss->s->tasks[id - 1], &plen);
        sm_reply(sm, call, buf, plen);
    }
}

static void create_tasks(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__CreateTasksRequest *req = (const Flame__V1__CreateTasksRequest *)msg;
    sm_session *ss = sm_session_get(sm, req->session_id);
    uint64_t first = 0;
    size_t n = 0;
    flame_status st = !ss ? fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id)
                          : sm_tasks_add(sm, ss, req->inputs, req->n_inputs, req->count, NULL, &first, &n);
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
        sm_reply(sm, call, buf, plen);
    }
}

/* ---- WatchSession / RunSession ------------------------------------------- */

static void watch_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__WatchSessionRequest *req = (const Flame__V1__WatchSessionRequest *)msg;
    sm_session *ss = sm_session_get(sm, req->session_id);
    if (!ss)
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id));
    else
        sm_swatch_new(sm, ss, call, req->from_task_id ? req->from_task_id : 1, true);
}

static void run_session_unwatch(sm_t *sm, rpc_call *call)
{
    sm_swatch *w = rpc_call_user(call);
    if (w) {
        sm_swatch_drop(sm, w);
        rpc_call_set_user(call, NULL);
    }
}

/* RunSession: creations in, acknowledgements and outcomes out, on one
 * stream (no call set-up per task: the low-latency path). */
static void run_session(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    sm_swatch *w = rpc_call_user(call);
    if (!msg) { /* the client is done */
        run_session_unwatch(sm, call);
        sm_finish(sm, call, RPC_OK, "%s", "");
        return;
    }
    const Flame__V1__RunSessionRequest *req = (const Flame__V1__RunSessionRequest *)msg;
    flame_status st = FLAME_OK;
    if (!w) {
        sm_session *ss = sm_session_get(sm, req->session_id);
        if (!ss) {
            st = fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", req->session_id);
        } else {
            w = sm_swatch_new(sm, ss, call, ss->s->ntasks + 1, false);
            rpc_call_set_user(call, w);
        }
    }
    uint64_t first = 0;
    size_t n = 0;
    if (!st && w->ss)
        st = sm_tasks_add(sm, w->ss, req->inputs, req->n_inputs, req->count, NULL, &first, &n);
    if (st) {
        run_session_unwatch(sm, call);
        sm_reply_error(sm, call, st);
    } else if (n) {
        sm_swatch_ack(sm, w, first, (uint32_t)n);
    }
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

static void get_task(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__GetTaskRequest *req = (const Flame__V1__GetTaskRequest *)msg;
    sm_session *ss;
    fl_task *t = find_task(sm, req->session_id, req->task_id, &ss);
    if (!t) {
        sm_reply_error(sm, call, FLAME_ERR_NOT_FOUND);
    } else {
        size_t n;
        uint8_t *buf = fl_wire_pack_task(ss->s, t, &n);
        sm_reply(sm, call, buf, n);
    }
}

static void watch_task(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__WatchTaskRequest *req = (const Flame__V1__WatchTaskRequest *)msg;
    sm_session *ss;
    fl_task *t = find_task(sm, req->session_id, req->task_id, &ss);
    if (!t) {
        sm_reply_error(sm, call, FLAME_ERR_NOT_FOUND);
    } else {
        size_t n;
        uint8_t *buf = fl_wire_pack_task(ss->s, t, &n);
        sm_send(sm, call, buf, n);
        if (fl_task_terminal(t->state))
            sm_finish(sm, call, RPC_OK, "%s", "");
        else
            sm_watch_task(sm, call, ss, t); /* ended when the task ends */
    }
}

/* ListTask goes out in chunks: one chunk of a session's tasks is queued,
 * the next only once the reader has taken most of it, so a reader that
 * never reads holds one chunk and the engine never packs a whole session
 * at once. The listing covers the tasks that existed when it began. */
#define LIST_CHUNK_BYTES (1u << 20)
#define LIST_CHUNK_TASKS 1024

typedef struct task_lister {
    sm_t *sm;
    char *session_id;
    uint32_t next, end; /* task indexes */
} task_lister;

static void list_task_chunk(rpc_call *call, void *arg)
{
    task_lister *l = arg;
    sm_session *ss = rpc_call_alive(call) ? sm_session_get(l->sm, l->session_id) : NULL;
    if (rpc_call_alive(call) && !ss)
        sm_finish(l->sm, call, RPC_NOT_FOUND, "session %s was deleted", l->session_id);
    size_t bytes = 0, sent = 0;
    while (ss && l->next < l->end && bytes < LIST_CHUNK_BYTES && sent < LIST_CHUNK_TASKS) {
        fl_task *t = l->next < ss->s->ntasks ? ss->s->tasks[l->next] : NULL;
        l->next++;
        if (!t)
            continue;
        size_t n;
        uint8_t *buf = fl_wire_pack_task(ss->s, t, &n);
        sm_send(l->sm, call, buf, n);
        bytes += n;
        sent++;
    }
    if (ss && l->next < l->end) {
        sm_on_drain(l->sm, call, LIST_CHUNK_BYTES / 4, list_task_chunk, l);
        return;
    }
    if (ss)
        sm_finish(l->sm, call, RPC_OK, "%s", "");
    free(l->session_id);
    free(l);
}

static void list_tasks_of(sm_t *sm, rpc_call *call, const char *session_id)
{
    sm_session *ss = sm_session_get(sm, session_id);
    if (!ss) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "session %s not found", session_id));
        return;
    }
    task_lister *l = fl_calloc(1, sizeof *l);
    l->sm = sm;
    l->session_id = fl_strdup(session_id);
    l->end = ss->s->ntasks;
    list_task_chunk(call, l);
}

static void list_task(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    list_tasks_of(ctx, call, ((const Flame__V1__ListTaskRequest *)msg)->session_id);
}

static void list_tasks(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    list_tasks_of(ctx, call, ((const Flame__V1__ListTasksRequest *)msg)->session_id);
}

/* WatchTasks (Flame 0.7): each request adds a task to the stream's watch;
 * its state now and every change after go out until it ends. The stream
 * ends when the client ends it (after its last watched task ended), or on
 * an unknown task. */
static void watch_tasks(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    if (!msg) {
        sm_wstream_half_closed(sm, call);
        return;
    }
    const Flame__V1__WatchTaskRequest *req = (const Flame__V1__WatchTaskRequest *)msg;
    sm_session *ss;
    fl_task *t = find_task(sm, req->session_id, req->task_id, &ss);
    if (!t)
        sm_wstream_end(sm, call, RPC_NOT_FOUND, flame_error_last());
    else
        sm_wstream_watch(sm, call, ss, t);
}

static const rpc_method methods[] = {
    { "RegisterApplication", RPC_KIND_UNARY, register_application },
    { "UnregisterApplication", RPC_KIND_UNARY, unregister_application },
    { "UpdateApplication", RPC_KIND_UNARY, update_application },
    { "GetApplication", RPC_KIND_UNARY, get_application },
    { "ListApplication", RPC_KIND_UNARY, list_application },
    { "ListExecutor", RPC_KIND_UNARY, list_executor },
    { "ListNodes", RPC_KIND_UNARY, list_nodes },
    { "GetNode", RPC_KIND_UNARY, get_node },
    { "CreateSession", RPC_KIND_UNARY, create_session_rpc },
    { "DeleteSession", RPC_KIND_UNARY, delete_session },
    { "OpenSession", RPC_KIND_UNARY, open_session },
    { "CloseSession", RPC_KIND_UNARY, close_session_rpc },
    { "GetSession", RPC_KIND_UNARY, get_session },
    { "ListSession", RPC_KIND_UNARY, list_session },
    { "CreateTask", RPC_KIND_UNARY, create_task },
    { "GetTask", RPC_KIND_UNARY, get_task },
    { "WatchTask", RPC_KIND_SERVER_STREAM, watch_task },
    { "ListTask", RPC_KIND_SERVER_STREAM, list_task },
    { "CreateTasks", RPC_KIND_UNARY, create_tasks },
    { "WatchSession", RPC_KIND_SERVER_STREAM, watch_session },
    { "RunSession", RPC_KIND_BIDI, run_session },
    /* Flame 0.7 */
    { "ListApplications", RPC_KIND_UNARY, list_applications },
    { "ListExecutors", RPC_KIND_UNARY, list_executor },
    { "ListSessions", RPC_KIND_UNARY, list_sessions },
    { "ListTasks", RPC_KIND_SERVER_STREAM, list_tasks },
    { "WatchTasks", RPC_KIND_BIDI, watch_tasks },
    { "SuspendSession", RPC_KIND_UNARY, suspend_session },
    { "ResumeSession", RPC_KIND_UNARY, resume_session },
};
const rpc_service sm_frontend_service = { &flame__v1__frontend__descriptor, methods,
                                           FL_ARRAY_LEN(methods) };
