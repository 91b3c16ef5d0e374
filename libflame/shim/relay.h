/* The object cache for a service in a process sandbox whose application
 * names no network (the default; an explicit "none" gets no relay): a relay
 * (relay.c) listens on the cache's endpoint (host and port of the cluster
 * yaml's cache.endpoint) inside the sandbox's network namespace and passes
 * each connection on to the cache from the executor manager's. The service
 * reaches the cache as Flame's services do (FLAME_CACHE_ENDPOINT, the
 * endpoint in ObjectRefs) and nothing else: no route out, no other port.
 *
 * Threads: a relay has a thread that accepts and two per connection (one
 * each way, blocking I/O, so neither side can stall the other);
 * fl_relay_start and fl_relay_stop are called from the executor's thread. */
#ifndef FL_SHIM_RELAY_H
#define FL_SHIM_RELAY_H

#include <sys/types.h>

#include "flame/error.h"

typedef struct fl_relay fl_relay;

/* Listens on endpoint's host:port (a host that is not a loopback address
 * is added to the sandbox's loopback first) in the network namespace of
 * process pid and relays to the same host:port outside. Errors: the
 * endpoint is malformed or does not resolve to IPv4, the namespace cannot
 * be entered, the address is taken; flame_error_last() says which. */
flame_status fl_relay_start(fl_relay **out, pid_t pid, const char *endpoint);

/* Closes the listener and every connection, joins the threads and frees r
 * (NULL: nothing). */
void fl_relay_stop(fl_relay *r);

#endif
