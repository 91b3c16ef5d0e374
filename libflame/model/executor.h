/* Executors and their life cycle, as the session manager sees them.
 * Plain C, no I/O, no protobuf; used by one thread at a time.
 *
 *   from       to         when
 *   Void       Idle       RegisterExecutor
 *   Idle       Binding    the scheduler binds it to a session
 *   Idle       Releasing  the scheduler releases it
 *   Binding    Bound      BindExecutorCompleted, success
 *   Binding    Unbinding  unbind decision, its session deleted, UnbindExecutor
 *   Binding    Idle       BindExecutorCompleted, failure; BindExecutor again
 *                         (the bind is then decided anew)
 *   Bound      Unbinding  unbind decision, its session deleted, UnbindExecutor
 *   Bound      Idle       UnbindExecutorCompleted without UnbindExecutor first
 *   Unbinding  Idle       UnbindExecutorCompleted; BindExecutorCompleted, failure
 *   Releasing  Idle       BindExecutor again (the release is then decided anew)
 *   Releasing  Released   the executor manager is done with it (final)
 *
 * Executors are not persisted: the session manager frees one, in whatever
 * state, when its executor manager unregisters it or its node is lost. */
#ifndef FL_MODEL_EXECUTOR_H
#define FL_MODEL_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/error.h"
#include "flame/types.h"

typedef struct fl_executor {
    char *id;
    char *node;
    char *app;          /* the application it serves or served */
    char *intended;     /* the session it was created for (meaningful while Void) */
    flame_resreq resreq;
    int shim;           /* flame_shim */
    int state;          /* flame_executor_state */
    int64_t idle_since; /* Unix ms: when it last became Idle; while Void, its creation */
} fl_executor;

/* A new executor in state Void, created for session `session_id` of
 * application `app` (both copied). Free with fl_executor_free. */
fl_executor *fl_executor_new(const char *id, const char *node, const char *session_id,
                             const char *app, flame_resreq resreq, int shim, int64_t now);
void fl_executor_free(fl_executor *e); /* NULL is a no-op */

/* The transition table: may an executor go from `from` to `to`? No state
 * goes to itself. */
bool fl_executor_transition_ok(int from, int to);
/* Moves e to `to`; entering Idle stamps idle_since with now (Unix ms).
 * FLAME_ERR_FAILED_PRECONDITION (naming both states, e unchanged) when the
 * table refuses it. */
flame_status fl_executor_set_state(fl_executor *e, int to, int64_t now);

/* What each Backend call accepts, by the executor's state. */
/* RegisterExecutor: Void. */
bool fl_executor_can_register(int state);
/* BindExecutor (waits for a bind or release decision): Idle; and Binding or
 * Releasing, whose decision is answered again (their first answer was lost). */
bool fl_executor_can_bind(int state);
/* BindExecutorCompleted: Binding; Unbinding (unbound while it entered). */
bool fl_executor_can_complete_bind(int state);
/* UnbindExecutor: Binding, Bound; Unbinding (already on its way out). */
bool fl_executor_can_unbind(int state);
/* UnbindExecutorCompleted: Unbinding; Bound (it left on its own). */
bool fl_executor_can_complete_unbind(int state);

#endif
