/* Flame in C — the scheduler as a pure library.
 *
 * Feed it a snapshot (nodes, applications, sessions with their demand,
 * executors), call flame_scheduler_cycle() and read the decisions. No I/O,
 * no threads, no clock of its own (the caller passes `now`), deterministic:
 * the same snapshot gives the same decisions. Another control plane can
 * embed it.
 *
 * Policies:
 * - an executor runs one task at a time; a session wants
 *   clamp(pending + running, min_instances, max_instances) executors, and an
 *   application's sessions together at most its max_instances;
 * - priority tiers: a higher-priority session is served first;
 * - within a tier, dominant-resource fair share (DRF over cpu/memory/gpu);
 * - executors are created only on nodes with room for the session's resreq;
 * - an idle executor is reused by a session of the same application; it is
 *   released once idle for longer than its application's delay_release, or
 *   at once when its node's room is needed by another application;
 * - a starving session may take executors from sessions that hold more
 *   than they can use, of a lower tier, or of its own tier that hold more
 *   than their fair share (never below
 *   their min_instances): those executors are unbound, on one node, and
 *   only when that makes room for it there (else it waits: unbinding what
 *   cannot make room would only churn); that room is kept for it until the
 *   next cycle;
 * - a session held back only by its application's max_instances may take,
 *   the same way, from another session of its application;
 * - the order of the snapshot's arrays does not matter; applying the
 *   decisions and running again settles (no decisions) within a few cycles.
 *
 * ABI: the element structs (flame_sched_node, _application, _session,
 * _executor) and flame_decision only ever get fields appended, and a zero
 * in an appended field means the behaviour from before it existed; so
 * zero-initialize elements (calloc, `= {0}`, or positional initializers)
 * before filling them. The caller tells the library, in the snapshot, the
 * version it was built against and the size of each element type
 * (FLAME_SCHED_SNAPSHOT_INIT or flame_sched_snapshot_init()): the library
 * reads its arrays and writes the decisions with those strides, and
 * fields the caller does not know read as zero. A snapshot whose version
 * is 0 (zeroed, or positionally initialized up to executors_len as before
 * versioning) is read with the version-1 layouts: that keeps older code
 * working, but such code must move to the initializer before it is built
 * against headers whose element structs grew.
 *
 * Thread-safety: a flame_scheduler is used by one thread at a time.
 */
#ifndef FLAME_SCHEDULER_H
#define FLAME_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flame_scheduler flame_scheduler;

typedef struct flame_sched_node {
    const char *name;
    flame_resreq allocatable;
    int ready;                  /* 0: no new executors here */
} flame_sched_node;

typedef struct flame_sched_application {
    const char *name;
    int has_max_instances;
    uint32_t max_instances;
    int64_t delay_release_ms;   /* idle time before an executor is released */
} flame_sched_application;

typedef struct flame_sched_session {
    const char *id;
    const char *application;
    uint32_t priority;          /* higher first */
    flame_resreq resreq;        /* of each executor */
    uint32_t min_instances;
    int has_max_instances;
    uint32_t max_instances;
    uint32_t pending;           /* tasks waiting */
    uint32_t running;           /* tasks running */
    int open;                   /* 0: closed, its executors are unbound */
    int schedulable;            /* 0: gets no executors (e.g. binds kept failing) */
} flame_sched_session;

typedef struct flame_sched_executor {
    const char *id;
    const char *node;
    flame_resreq resreq;
    flame_executor_state state; /* VOID (being created), IDLE, BINDING, BOUND, UNBINDING, ... */
    const char *session_id;     /* BINDING/BOUND: its session; IDLE/VOID: the one it is meant for, or NULL */
    const char *application;    /* the application it last served, or NULL */
    int64_t idle_since_ms;      /* IDLE: since when */
    /* Optional hints that save a lookup by name: 1 + the index of its node
     * in snapshot.nodes and of its session in snapshot.sessions (0: none).
     * A hint whose entry has another name is ignored. */
    uint32_t node_hint;
    uint32_t session_hint;
} flame_sched_executor;

#define FLAME_SCHED_SNAPSHOT_VERSION 1

/* The version fields come last so that snapshots written as
 * `{ nodes, n, apps, n, sessions, n, executors, n }` keep their meaning
 * (version 0). Fields are only appended. */
typedef struct flame_sched_snapshot {
    const flame_sched_node *nodes;
    size_t nodes_len;
    const flame_sched_application *applications;
    size_t applications_len;
    const flame_sched_session *sessions;
    size_t sessions_len;
    const flame_sched_executor *executors;
    size_t executors_len;
    /* Since version 1. */
    int version;                /* FLAME_SCHED_SNAPSHOT_VERSION; 0: see above */
    size_t node_size;           /* sizeof(flame_sched_node): the stride of nodes */
    size_t application_size;    /* sizeof(flame_sched_application) */
    size_t session_size;        /* sizeof(flame_sched_session) */
    size_t executor_size;       /* sizeof(flame_sched_executor) */
    size_t decision_size;       /* sizeof(flame_decision): the stride of the decisions returned */
} flame_sched_snapshot;

/* An empty snapshot of this header's version, with this header's element
 * sizes; set the arrays and lengths after. */
#define FLAME_SCHED_SNAPSHOT_INIT { NULL, 0, NULL, 0, NULL, 0, NULL, 0,         \
    FLAME_SCHED_SNAPSHOT_VERSION, sizeof(flame_sched_node),                    \
    sizeof(flame_sched_application), sizeof(flame_sched_session),              \
    sizeof(flame_sched_executor), sizeof(flame_decision) }

typedef enum flame_decision_kind {
    FLAME_DECISION_CREATE = 1,  /* create an executor on node for session (resreq of the session) */
    FLAME_DECISION_BIND = 2,    /* bind an idle executor to session */
    FLAME_DECISION_UNBIND = 3,  /* unbind executor from its session */
    FLAME_DECISION_RELEASE = 4  /* release an idle executor */
} flame_decision_kind;

/* Pointers point into the snapshot given to the cycle. Fields are only
 * appended (the snapshot's decision_size says which the caller knows). */
typedef struct flame_decision {
    flame_decision_kind kind;
    const char *node;           /* CREATE */
    const char *executor_id;    /* BIND, UNBIND, RELEASE */
    const char *session_id;     /* CREATE, BIND */
} flame_decision;

/* Sets *snap to FLAME_SCHED_SNAPSHOT_INIT of this library (for callers
 * that cannot use the macro, e.g. bindings). */
void flame_sched_snapshot_init(flame_sched_snapshot *snap);

flame_status flame_scheduler_new(flame_scheduler **out);
void flame_scheduler_free(flame_scheduler *sched);

/* Runs one cycle. *decisions (owned by sched, valid until the next cycle
 * or flame_scheduler_free) gets *count decisions, in the order to apply
 * them, snap->decision_size bytes apart (sizeof(flame_decision) for a
 * version-0 snapshot). Unknown references in the snapshot (an executor's
 * session or node that is not listed) are ignored, never fatal. Errors:
 * FLAME_ERR_INVALID_ARGUMENT (a NULL argument; a snapshot of a version this
 * library does not know, or with an element size below that of version 1). */
flame_status flame_scheduler_cycle(flame_scheduler *sched, const flame_sched_snapshot *snap,
                                   int64_t now_ms, const flame_decision **decisions,
                                   size_t *count);

#ifdef __cplusplus
}
#endif

#endif
