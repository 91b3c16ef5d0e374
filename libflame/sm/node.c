/* Nodes: registration, the WatchNode stream with its heartbeats, and what
 * losing a node means for its executors (they are dropped; their tasks run
 * again elsewhere). */
#include <stdlib.h>
#include <string.h>

#include "sm.h"

static int64_t mono_ms(void)
{
    return fl_mono_ns() / 1000000;
}

static void node_free(sm_node *n)
{
    fl_node_free(n->node);
    free(n);
}

/* Every state change goes through the model's table. */
static void set_state(sm_node *n, int to)
{
    if (fl_node_transition_ok(n->node->state, to))
        fl_node_set_state(n->node, to, fl_now_ms() / 1000);
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

void sm_node_register(sm_t *sm, fl_node *node)
{
    const char *name = node->name;
    sm_node *n = sm_node_get(sm, name);
    if (n) {
        /* the executor manager restarted: what it ran is gone, and its old
         * stream may not have noticed yet */
        watch_close(sm, n, RPC_ABORTED, "the node registered again");
        sm_exec_drop_node(sm, name, "the executor manager of its node restarted");
        fl_map_del(&sm->nodes, name);
        fl_node_free(n->node);
    } else {
        n = fl_calloc(1, sizeof *n);
        n->launcher = &sm_launcher_none;
    }
    n->node = node;
    fl_map_put(&sm->nodes, n->node->name, n);
    set_state(n, FLAME_NODE_READY);
    n->heard_ms = mono_ms();
    fl_log(FL_LOG_INFO, "sm", "node %s registered", n->node->name);
    sm->sched_dirty = true;
}

void sm_node_release(sm_t *sm, sm_node *n)
{
    sm_exec_drop_node(sm, n->node->name, "its node was released");
    watch_close(sm, n, RPC_OK, "");
    fl_map_del(&sm->nodes, n->node->name);
    node_free(n);
}

static void node_lost(sm_t *sm, sm_node *n, const char *why)
{
    set_state(n, FLAME_NODE_NOT_READY);
    sm_exec_drop_node(sm, n->node->name, why);
}

static void watch_cancelled(rpc_call *call, void *arg)
{
    sm_t *sm = rpc_call_user(call);
    sm_node *n = arg; /* whoever frees the node clears this callback first */
    if (n->watch == call) {
        n->watch = NULL;
        fl_log(FL_LOG_WARN, "sm", "node %s disconnected; its executors are lost",
               n->node->name);
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

void sm_node_heartbeat(sm_t *sm, sm_node *n, rpc_call *call, const flame_resreq *allocatable)
{
    if (allocatable) {
        const flame_resreq *cap = &n->node->capacity;
        flame_resreq a = { allocatable->cpu < cap->cpu ? allocatable->cpu : cap->cpu,
                           allocatable->memory < cap->memory ? allocatable->memory : cap->memory,
                           allocatable->gpu < cap->gpu ? allocatable->gpu : cap->gpu };
        const flame_resreq *was = &n->node->allocatable;
        if (a.cpu != was->cpu || a.memory != was->memory || a.gpu != was->gpu) {
            n->node->allocatable = a;
            sm->sched_dirty = true;
        }
    }
    if (n->watch != call) {
        /* a newer stream replaces an old one */
        watch_close(sm, n, RPC_ABORTED, "replaced by a newer WatchNode stream");
        n->watch = call;
        rpc_call_set_user(call, sm);
        rpc_call_on_cancel(call, watch_cancelled, n);
        sm->sched_dirty = true;
    }
    set_state(n, FLAME_NODE_READY); /* stamps the heartbeat */
    n->heard_ms = mono_ms();
    Flame__V1__Acknowledgement ack = FLAME__V1__ACKNOWLEDGEMENT__INIT;
    ack.timestamp = fl_now_ms();
    Flame__V1__WatchNodeResponse r = FLAME__V1__WATCH_NODE_RESPONSE__INIT;
    r.response_case = FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_ACK;
    r.ack = &ack;
    sm_push_msg(sm, call, &r.base);
}

/* A node is lost when it falls silent for node_timeout: its heartbeats
 * stop while the connection stays open (a hung manager, a cut link), or it
 * registered and never opened its WatchNode stream. Timed on the monotonic
 * clock, so a wall-clock step loses no node. */
void sm_nodes_expire(sm_t *sm)
{
    int64_t now = mono_ms();
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        sm_node *n = v;
        if (n->node->state != FLAME_NODE_READY || now - n->heard_ms <= sm->node_timeout_ms)
            continue;
        fl_log(FL_LOG_WARN, "sm", "node %s silent for %lld ms (cluster.node_timeout %d ms); "
               "its executors are lost", n->node->name, (long long)(now - n->heard_ms),
               sm->node_timeout_ms);
        if (n->watch) {
            rpc_call_on_cancel(n->watch, NULL, NULL);
            sm_close(sm, n->watch, RPC_DEADLINE_EXCEEDED, "no heartbeat for %d ms",
                     sm->node_timeout_ms);
            n->watch = NULL;
        }
        node_lost(sm, n, "the executor's node stopped sending heartbeats");
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
