/* The `none` launcher: no resource manager; the node's executor manager
 * starts the executors it is sent on its WatchNode stream, and releases
 * them itself when BindExecutor answers empty. */
#include "sm.h"

static bool none_ready(const sm_node *n)
{
    return n->watch != NULL;
}

static flame_status none_create(sm_t *sm, sm_node *n, const sm_exec *e)
{
    if (!n->watch)
        return fl_error(FLAME_ERR_UNAVAILABLE, "node %s is not connected", n->node->name);
    Flame__V1__Executor m;
    fl_wire_fill_executor(&m, e->ex, sm_exec_session_id(e));
    Flame__V1__WatchNodeResponse r = FLAME__V1__WATCH_NODE_RESPONSE__INIT;
    r.response_case = FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_EXECUTOR;
    r.executor = &m;
    sm_push_msg(sm, n->watch, &r.base);
    fl_wire_fill_executor_done(&m);
    return FLAME_OK;
}

const sm_launcher sm_launcher_none = { "none", none_ready, none_create, NULL };
