/* Nodes: registration, the WatchNode stream with its heartbeats, and what
 * losing a node means for its executors (they are dropped; their tasks run
 * again elsewhere). */
#include <stdlib.h>
#include <string.h>

#include "sm.h"

#define HEARTBEAT_TIMEOUT_S 30

const char *sm_node_name(const Flame__V1__Node *n)
{
    if (n->metadata && n->metadata->name[0])
        return n->metadata->name;
    if (n->spec && n->spec->hostname[0])
        return n->spec->hostname;
    return NULL;
}

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

static void set_ready(sm_node *n, bool ready)
{
    if (n->msg->status)
        n->msg->status->state = ready ? FLAME__V1__NODE_STATE__Ready
                                      : FLAME__V1__NODE_STATE__NotReady;
}

/* Ends the node's WatchNode stream from our side. */
static void watch_close(sm_t *sm, sm_node *n, int code, const char *why)
{
    if (!n->watch)
        return;
    rpc_call_on_cancel(n->watch, NULL, NULL);
    sm_close(sm, n->watch, code, "%s", why);
    n->watch = NULL;
}

void sm_node_register(sm_t *sm, const char *name, const Flame__V1__Node *msg)
{
    sm_node *n = sm_node_get(sm, name);
    if (n) {
        /* the executor manager restarted: what it ran is gone, and its old
         * stream may not have noticed yet */
        watch_close(sm, n, RPC_ABORTED, "the node registered again");
        sm_exec_drop_node(sm, name, "the executor manager of its node restarted");
        flame__v1__node__free_unpacked(n->msg, NULL);
    } else {
        n = fl_calloc(1, sizeof *n);
        n->name = fl_strdup(name);
        n->launcher = &sm_launcher_none;
        fl_map_put(&sm->nodes, n->name, n);
    }
    n->msg = copy_node(msg);
    if (!n->msg->metadata) {
        n->msg->metadata = fl_malloc(sizeof *n->msg->metadata);
        flame__v1__metadata__init(n->msg->metadata);
    }
    set_ready(n, true);
    n->last_heartbeat = fl_now_ms() / 1000;
    fl_log(FL_LOG_INFO, "sm", "node %s registered", name);
    sm->sched_dirty = true;
}

void sm_node_release(sm_t *sm, sm_node *n)
{
    sm_exec_drop_node(sm, n->name, "its node was released");
    watch_close(sm, n, RPC_OK, "");
    fl_map_del(&sm->nodes, n->name);
    node_free(n);
}

static void node_lost(sm_t *sm, sm_node *n, const char *why)
{
    set_ready(n, false);
    sm_exec_drop_node(sm, n->name, why);
}

static void watch_cancelled(rpc_call *call, void *arg)
{
    sm_t *sm = rpc_call_user(call);
    sm_node *n = arg; /* whoever frees the node clears this callback first */
    if (n->watch == call) {
        n->watch = NULL;
        fl_log(FL_LOG_WARN, "sm", "node %s disconnected; its executors are lost", n->name);
        node_lost(sm, n, "the executor's node disconnected");
    }
}

void sm_node_watch_end(sm_t *sm, rpc_call *call)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v))
        if (((sm_node *)v)->watch == call) {
            rpc_call_on_cancel(call, NULL, NULL);
            watch_cancelled(call, v);
        }
}

void sm_node_heartbeat(sm_t *sm, sm_node *n, rpc_call *call)
{
    if (n->watch != call) {
        /* a newer stream replaces an old one */
        watch_close(sm, n, RPC_ABORTED, "replaced by a newer WatchNode stream");
        n->watch = call;
        rpc_call_set_user(call, sm);
        rpc_call_on_cancel(call, watch_cancelled, n);
        sm->sched_dirty = true;
    }
    n->last_heartbeat = fl_now_ms() / 1000;
    if (n->msg->status)
        n->msg->status->last_heartbeat_time = n->last_heartbeat;
    set_ready(n, true);
    Flame__V1__Acknowledgement ack = FLAME__V1__ACKNOWLEDGEMENT__INIT;
    ack.timestamp = fl_now_ms();
    Flame__V1__WatchNodeResponse r = FLAME__V1__WATCH_NODE_RESPONSE__INIT;
    r.response_case = FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_ACK;
    r.ack = &ack;
    sm_push_msg(sm, call, &r.base);
}

void sm_nodes_expire(sm_t *sm, int64_t now_s)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        sm_node *n = v;
        if (n->watch && now_s - n->last_heartbeat > HEARTBEAT_TIMEOUT_S) {
            fl_log(FL_LOG_WARN, "sm", "node %s missed its heartbeats; its executors are lost",
                   n->name);
            rpc_call_on_cancel(n->watch, NULL, NULL);
            sm_close(sm, n->watch, RPC_DEADLINE_EXCEEDED, "no heartbeat for %d s",
                     HEARTBEAT_TIMEOUT_S);
            n->watch = NULL;
            node_lost(sm, n, "the executor's node stopped sending heartbeats");
        }
    }
}

void sm_nodes_free(sm_t *sm)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v))
        node_free(v);
    fl_map_free(&sm->nodes);
}
