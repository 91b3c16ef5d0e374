/* Flame in C — the scheduler as a pure library.
 *
 * Feed it a snapshot (nodes, sessions with their demand, executors), call
 * flame_scheduler_cycle() and read the decisions. No I/O, no threads,
 * deterministic. Implemented by the execution issue; this header fixes the
 * API.
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

typedef enum flame_decision_kind {
    FLAME_DECISION_CREATE = 1,   /* create an executor on node for session */
    FLAME_DECISION_BIND = 2,     /* bind an idle executor to session */
    FLAME_DECISION_UNBIND = 3,   /* unbind executor from its session */
    FLAME_DECISION_RELEASE = 4   /* release an idle executor */
} flame_decision_kind;

typedef struct flame_decision {
    flame_decision_kind kind;
    const char *node;            /* CREATE */
    const char *executor_id;     /* BIND, UNBIND, RELEASE */
    const char *session_id;      /* CREATE, BIND */
} flame_decision;

flame_status flame_scheduler_new(flame_scheduler **out);
void flame_scheduler_free(flame_scheduler *sched);

#ifdef __cplusplus
}
#endif

#endif
