/* Nodes: what an executor manager registered, and whether it is reachable.
 * Plain C, no I/O, no protobuf; used by one thread at a time.
 *
 *   from      to        when
 *   Unknown   Ready     RegisterNode
 *   Ready     Ready     a heartbeat (WatchNode), RegisterNode again
 *   Ready     NotReady  its WatchNode stream ended or missed its heartbeats
 *   NotReady  Ready     RegisterNode again, a heartbeat on a new stream
 *
 * Entering (or staying) Ready stamps the heartbeat time. */
#ifndef FL_MODEL_NODE_H
#define FL_MODEL_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/error.h"
#include "flame/types.h"

typedef struct fl_node_address {
    char *type;
    char *address;
} fl_node_address;

typedef struct fl_node {
    char *name;
    char *hostname;
    char *arch, *os;
    flame_resreq capacity, allocatable;
    fl_node_address *addresses;
    size_t n_addresses;
    int state;              /* flame_node_state */
    int64_t last_heartbeat; /* Unix seconds */
} fl_node;

/* A node in state Unknown with only its name (copied); the caller fills
 * the rest (strings malloc'ed, owned by the node). */
fl_node *fl_node_new(const char *name);
void fl_node_free(fl_node *n); /* NULL is a no-op */

bool fl_node_transition_ok(int from, int to);
/* Moves n to `to`; Ready stamps last_heartbeat with now_s (Unix seconds).
 * FLAME_ERR_FAILED_PRECONDITION (naming both states, n unchanged) when the
 * table refuses it. */
flame_status fl_node_set_state(fl_node *n, int to, int64_t now_s);

#endif
