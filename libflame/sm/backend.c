/* flame.v1 Backend: the handlers executor managers call. Handlers only:
 * each unpacks its request, checks it, calls the core (executor.c, node.c,
 * dispatch.c, task.c) and answers through reply.c; nothing calls into this
 * file. Engine thread. */
#include <stdlib.h>
#include <string.h>

#include "sm.h"

/* ---- nodes -------------------------------------------------------------- */

/* The name a Node message gives (metadata.name, else spec.hostname). */
static const char *node_name(const Flame__V1__Node *n)
{
    if (n->metadata && n->metadata->name[0])
        return n->metadata->name;
    if (n->spec && n->spec->hostname[0])
        return n->spec->hostname;
    return NULL;
}

static void register_node(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__RegisterNodeRequest *req = (const Flame__V1__RegisterNodeRequest *)msg;
    const char *name = req->node ? node_name(req->node) : NULL;
    const char *why;
    if (!name || !fl_name_valid(name, &why)) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_INVALID_ARGUMENT, "RegisterNode: invalid node name"));
    } else {
        sm_node_register(sm, fl_wire_node(req->node, name));
        sm_reply_result(sm, call);
    }
}

static void release_node(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__ReleaseNodeRequest *req = (const Flame__V1__ReleaseNodeRequest *)msg;
    sm_node *n = sm_node_get(sm, req->node_name);
    if (!n) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "node %s not found", req->node_name));
    } else {
        sm_node_release(sm, n);
        sm_reply_result(sm, call);
    }
}

static void sync_node(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__SyncNodeRequest *req = (const Flame__V1__SyncNodeRequest *)msg;
    const char *name = req->node ? node_name(req->node) : NULL;
    sm_node *n = sm_node_get(sm, name);
    if (!n) {
        sm_reply_error(sm, call, fl_error(FLAME_ERR_NOT_FOUND, "node %s not found", name ? name : ""));
    } else {
        fl_buf b = { 0 };
        size_t l;
        uint8_t *x = fl_wire_pack_node(n->node, &l);
        fl_wire_put_bytes(&b, 1, x, l);
        free(x);
        size_t it = 0;
        void *v;
        while (fl_map_next(&sm->execs, &it, NULL, &v)) {
            if (strcmp(((sm_exec *)v)->ex->node, n->node->name))
                continue;
            x = fl_wire_pack_executor(((sm_exec *)v)->ex, sm_exec_session_id(v), &l);
            fl_wire_put_bytes(&b, 2, x, l);
            free(x);
        }
        size_t blen = b.len;
        sm_reply(sm, call, (uint8_t *)fl_buf_detach(&b), blen);
    }
}

static void watch_node(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    if (!msg) { /* the executor manager half-closed: it is leaving */
        sm_node_watch_end(sm, call);
        sm_close(sm, call, RPC_OK, "%s", "");
        return;
    }
    const Flame__V1__WatchNodeRequest *req = (const Flame__V1__WatchNodeRequest *)msg;
    const char *name = req->heartbeat ? req->heartbeat->node_name : NULL;
    sm_node *n = sm_node_get(sm, name);
    if (!n)
        sm_close(sm, call, RPC_NOT_FOUND, "node %s is not registered; call RegisterNode first",
                 name ? name : "");
    else
        sm_node_heartbeat(sm, n, call,
                          req->heartbeat->status && req->heartbeat->status->allocatable
                              ? &(flame_resreq){ req->heartbeat->status->allocatable->cpu,
                                                 req->heartbeat->status->allocatable->memory,
                                                 req->heartbeat->status->allocatable->gpu }
                              : NULL);
}

/* ---- executors ---------------------------------------------------------- */

static void register_executor(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__RegisterExecutorRequest *req = (const Flame__V1__RegisterExecutorRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && !fl_executor_can_register(e->ex->state))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is already registered (%s)",
                      e->ex->id, flame_executor_state_str(e->ex->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        sm_exec_registered(sm, e);
        sm_reply_result(sm, call);
    }
}

static void unregister_executor(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__UnregisterExecutorRequest *req = (const Flame__V1__UnregisterExecutorRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        sm_exec_free(sm, e, "its executor was unregistered");
        sm_reply_result(sm, call);
    }
}

static void bind_executor(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__BindExecutorRequest *req = (const Flame__V1__BindExecutorRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && e->bind_call)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is already waiting to bind",
                      e->ex->id);
    if (!st && !fl_executor_can_bind(e->ex->state))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s cannot bind while %s", e->ex->id,
                      flame_executor_state_str(e->ex->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        /* parked; the scheduler's decision answers it */
        sm_exec_wait_bind(sm, e, call);
    }
}

static void bind_executor_completed(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__BindExecutorCompletedRequest *req = (const Flame__V1__BindExecutorCompletedRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && !fl_executor_can_complete_bind(e->ex->state))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is not binding (%s)", e->ex->id,
                      flame_executor_state_str(e->ex->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        const Flame__V1__Result *r = req->_result_case ? req->result : NULL;
        int rc = r ? r->return_code : 0;
        sm_exec_bind_completed(sm, e, rc, rc && r->_message_case ? r->message : NULL);
        sm_reply_result(sm, call);
    }
}

static void unbind_executor(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__UnbindExecutorRequest *req = (const Flame__V1__UnbindExecutorRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && !fl_executor_can_unbind(e->ex->state))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is not bound (%s)", e->ex->id,
                      flame_executor_state_str(e->ex->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        sm_exec_unbinding(sm, e);
        sm_reply_result(sm, call);
    }
}

static void unbind_executor_completed(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__UnbindExecutorCompletedRequest *req =
        (const Flame__V1__UnbindExecutorCompletedRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && !fl_executor_can_complete_unbind(e->ex->state))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is not unbinding (%s)", e->ex->id,
                      flame_executor_state_str(e->ex->state));
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        sm_exec_unbound(sm, e);
        sm_reply_result(sm, call);
    }
}

static void launch_task(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__LaunchTaskRequest *req = (const Flame__V1__LaunchTaskRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && e->launch_call)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s is already waiting for a task",
                      e->ex->id);
    if (!st && e->nrun)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                      "executor %s still runs task %u; complete it first", e->ex->id, e->run[0].t->id);
    if (st) {
        sm_reply_error(sm, call, st);
    } else if (e->ex->state != FLAME_EXECUTOR_BOUND || !e->sess) {
        /* unbinding (or never bound): no task, the executor leaves the session */
        sm_reply(sm, call, NULL, 0);
    } else {
        sm_dispatch_wait(sm, e, call);
    }
}

static void executor_stream(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    if (!msg) { /* the executor is done: what it did not report runs again */
        sm_exec_stream_end(sm, call);
        sm_close(sm, call, RPC_OK, "%s", "");
        return;
    }
    const Flame__V1__ExecutorUpdate *req = (const Flame__V1__ExecutorUpdate *)msg;
    sm_exec *e = sm_exec_get(sm, req->executor_id);
    sm_exec *owner = e && e->stream == call ? e : sm_exec_of_stream(sm, call);
    if (owner && !req->executor_id[0]) {
        e = owner; /* the id is needed in the first message only */
    } else if (owner && owner != e) {
        /* the stream must be let go before it is closed (fuzz_sm: its
         * executor kept the freed call) */
        sm_exec_stream_end(sm, call);
        sm_close(sm, call, RPC_INVALID_ARGUMENT, "the stream of executor %s named executor %s",
                 owner->ex->id, req->executor_id);
        return;
    }
    if (e && e->stream && e->stream != call) {
        sm_close(sm, call, RPC_FAILED_PRECONDITION, "executor %s already has a stream", e->ex->id);
    } else if (!e) {
        sm_close(sm, call, RPC_NOT_FOUND, "executor %s not found", req->executor_id);
    } else if (!e->stream && e->ex->state == FLAME_EXECUTOR_UNBINDING) {
        /* unbound while it was entering the session: nothing to run, the
         * stream ends at once and the executor goes on to unbind */
        sm_close(sm, call, RPC_OK, "%s", "");
    } else if (!e->stream && (e->ex->state != FLAME_EXECUTOR_BOUND || !e->sess)) {
        sm_close(sm, call, RPC_FAILED_PRECONDITION, "executor %s is not bound (%s)", e->ex->id,
                        flame_executor_state_str(e->ex->state));
    } else {
        if (!e->stream)
            sm_exec_stream_open(sm, e, call);
        sm_session *ss = e->sess;
        /* started before returned before outcomes: the order the executor
         * decided them in */
        for (size_t i = 0; i < req->n_started && ss; i++)
            sm_dispatch_started(sm, e, req->started[i]);
        for (size_t i = 0; i < req->n_returned && ss; i++)
            sm_dispatch_returned(sm, e, req->returned[i]);
        for (size_t i = 0; i < req->n_outcomes && ss; i++) {
            const Flame__V1__TaskOutcome *o = req->outcomes[i];
            fl_task *t = sm_dispatch_take(e, o->task_id);
            if (!t || t->state != FLAME_TASK_RUNNING)
                continue; /* not ours (any more) */
            sm_task_complete(sm, ss, t, o->state == FLAME__V1__TASK_STATE__Succeed ? 0
                                        : o->return_code ? o->return_code : 1,
                             o->_output_case ? &o->output : NULL,
                             o->_message_case ? o->message : NULL);
        }
        if (e->ex->state == FLAME_EXECUTOR_BOUND && ss) {
            sm_dispatch_credit(sm, e, req->credit);
        }
    }
}

static void complete_task(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    sm_t *sm = ctx;
    const Flame__V1__CompleteTaskRequest *req = (const Flame__V1__CompleteTaskRequest *)msg;
    sm_exec *e;
    flame_status st = sm_exec_lookup(sm, req->executor_id, &e);
    if (!st && (!e->nrun || !e->sess))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s runs no task", e->ex->id);
    if (!st && !req->task_result)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "CompleteTask needs a task_result");
    if (st) {
        sm_reply_error(sm, call, st);
    } else {
        const Flame__V1__TaskResult *r = req->task_result;
        fl_task *t = sm_dispatch_take(e, e->run[0].t->id);
        sm_task_complete(sm, e->sess, t, r->return_code, r->_output_case ? &r->output : NULL,
                         r->_message_case ? r->message : NULL);
        sm_reply_result(sm, call);
    }
}

static const rpc_method methods[] = {
    { "RegisterNode", RPC_KIND_UNARY, register_node },
    { "SyncNode", RPC_KIND_UNARY, sync_node },
    { "ReleaseNode", RPC_KIND_UNARY, release_node },
    { "WatchNode", RPC_KIND_BIDI, watch_node },
    { "RegisterExecutor", RPC_KIND_UNARY, register_executor },
    { "UnregisterExecutor", RPC_KIND_UNARY, unregister_executor },
    { "BindExecutor", RPC_KIND_UNARY, bind_executor },
    { "BindExecutorCompleted", RPC_KIND_UNARY, bind_executor_completed },
    { "UnbindExecutor", RPC_KIND_UNARY, unbind_executor },
    { "UnbindExecutorCompleted", RPC_KIND_UNARY, unbind_executor_completed },
    { "LaunchTask", RPC_KIND_UNARY, launch_task },
    { "CompleteTask", RPC_KIND_UNARY, complete_task },
    { "ExecutorStream", RPC_KIND_BIDI, executor_stream },
};
const rpc_service sm_backend_service = { &flame__v1__backend__descriptor, methods,
                                          FL_ARRAY_LEN(methods) };
