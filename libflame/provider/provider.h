/* Providers: the resource managers that launch executors for the session
 * manager. `none` (the default) is no provider: executor managers register
 * themselves. `kubernetes` creates executor-manager pods for the sessions'
 * demand and deletes them when the demand goes (kubernetes.c).
 *
 * The session manager hands in its whole demand after each scheduling
 * cycle (fl_provider_demand_set); the provider makes the world match it on
 * threads of its own, so the engine thread never waits on a resource
 * manager. Pods that register as nodes are scheduled like any node.
 *
 * Threads: fl_provider_new/free on the session manager's start/stop;
 * fl_provider_demand_set from the engine thread; the rest is internal. */
#ifndef FL_PROVIDER_H
#define FL_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/server.h"
#include "flame/types.h"

typedef struct fl_provider fl_provider;

/* What one session asks for now. */
typedef struct fl_provider_demand {
    const char *session_id;
    const char *app;
    flame_resreq resreq;   /* per executor */
    uint32_t executors;    /* executors it can use now */
    bool open;             /* false: closed, kept only for its running tasks */
} fl_provider_demand;

/* How the session manager serves TLS (the pods follow). */
typedef struct fl_provider_tls {
    bool mutual;           /* clients need certificates: pods get their own */
    const char *ca_file;   /* verifies clients; the pods verify the server with it */
} fl_provider_tls;

/* The provider cfg names (cfg->provider; NULL or "none": *out = NULL and
 * FLAME_OK). sm_endpoint: where the pods' executor managers reach the
 * session manager when cfg->k8s_endpoint is unset; tls NULL: plaintext.
 * FLAME_ERR_CONFIG on a bad section, unusable credentials, or mutual TLS
 * with no way to give pods certificates. */
flame_status fl_provider_new(fl_provider **out, const flame_cluster_config *cfg,
                             const char *sm_endpoint, const fl_provider_tls *tls);
/* Replaces the demand (copied); sessions absent from it want nothing. */
void fl_provider_demand_set(fl_provider *p, const fl_provider_demand *d, size_t n);
/* Stops its threads (bounded by the requests' timeouts); NULL: no-op. The
 * pods stay: a restarted session manager adopts or deletes them. */
void fl_provider_free(fl_provider *p);

#endif
