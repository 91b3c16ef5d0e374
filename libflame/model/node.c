/* The node life cycle (node.h has the table in words). */
#include "node.h"

#include <stdlib.h>

#include "util/util.h"

fl_node *fl_node_new(const char *name)
{
    fl_node *n = fl_calloc(1, sizeof *n);
    n->name = fl_strdup(name);
    n->state = FLAME_NODE_UNKNOWN;
    return n;
}

void fl_node_free(fl_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_addresses; i++) {
        free(n->addresses[i].type);
        free(n->addresses[i].address);
    }
    free(n->addresses);
    free(n->name);
    free(n->hostname);
    free(n->arch);
    free(n->os);
    free(n);
}

bool fl_node_transition_ok(int from, int to)
{
    switch (from) {
    case FLAME_NODE_UNKNOWN:
    case FLAME_NODE_NOT_READY:
        return to == FLAME_NODE_READY;
    case FLAME_NODE_READY:
        return to == FLAME_NODE_READY || to == FLAME_NODE_NOT_READY;
    default:
        return false;
    }
}

flame_status fl_node_set_state(fl_node *n, int to, int64_t now_s)
{
    if (!fl_node_transition_ok(n->state, to))
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "node %s cannot go from %s to %s", n->name,
                        flame_node_state_str(n->state), flame_node_state_str(to));
    n->state = to;
    if (to == FLAME_NODE_READY)
        n->last_heartbeat = now_s;
    return FLAME_OK;
}
