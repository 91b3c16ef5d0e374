/* The executor life cycle: the transition table and what each Backend call
 * accepts (executor.h has the table in words). */
#include "executor.h"

#include <stdlib.h>

#include "util/util.h"

fl_executor *fl_executor_new(const char *id, const char *node, const char *session_id,
                             const char *app, flame_resreq resreq, int shim, int64_t now)
{
    fl_executor *e = fl_calloc(1, sizeof *e);
    e->id = fl_strdup(id);
    e->node = fl_strdup(node);
    e->intended = fl_strdup(session_id);
    e->app = fl_strdup(app);
    e->resreq = resreq;
    e->shim = shim;
    e->state = FLAME_EXECUTOR_VOID;
    e->idle_since = now; /* Void executors time out from their creation */
    return e;
}

void fl_executor_free(fl_executor *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->node);
    free(e->intended);
    free(e->app);
    free(e);
}

bool fl_executor_transition_ok(int from, int to)
{
    switch (from) {
    case FLAME_EXECUTOR_VOID:
        return to == FLAME_EXECUTOR_IDLE; /* it registered */
    case FLAME_EXECUTOR_IDLE:
        return to == FLAME_EXECUTOR_BINDING || to == FLAME_EXECUTOR_RELEASING;
    case FLAME_EXECUTOR_BINDING:
        /* back to Idle when the bind failed, or to be decided again when
         * the executor asks to bind a second time */
        return to == FLAME_EXECUTOR_BOUND || to == FLAME_EXECUTOR_UNBINDING ||
               to == FLAME_EXECUTOR_IDLE;
    case FLAME_EXECUTOR_BOUND:
        /* to Idle when it reports it unbound without being asked */
        return to == FLAME_EXECUTOR_UNBINDING || to == FLAME_EXECUTOR_IDLE;
    case FLAME_EXECUTOR_UNBINDING:
        return to == FLAME_EXECUTOR_IDLE;
    case FLAME_EXECUTOR_RELEASING:
        /* to Idle only to be released again when it asks to bind twice */
        return to == FLAME_EXECUTOR_RELEASED || to == FLAME_EXECUTOR_IDLE;
    default:
        return false; /* Released is final; Unknown is no state to leave */
    }
}

flame_status fl_executor_set_state(fl_executor *e, int to, int64_t now)
{
    if (!fl_executor_transition_ok(e->state, to))
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "executor %s cannot go from %s to %s",
                        e->id, flame_executor_state_str(e->state), flame_executor_state_str(to));
    e->state = to;
    if (to == FLAME_EXECUTOR_IDLE)
        e->idle_since = now;
    return FLAME_OK;
}

bool fl_executor_can_register(int state)
{
    return state == FLAME_EXECUTOR_VOID;
}

bool fl_executor_can_bind(int state)
{
    return state == FLAME_EXECUTOR_IDLE || state == FLAME_EXECUTOR_BINDING ||
           state == FLAME_EXECUTOR_RELEASING;
}

bool fl_executor_can_complete_bind(int state)
{
    return state == FLAME_EXECUTOR_BINDING || state == FLAME_EXECUTOR_UNBINDING;
}

bool fl_executor_can_unbind(int state)
{
    return state == FLAME_EXECUTOR_BINDING || state == FLAME_EXECUTOR_BOUND ||
           state == FLAME_EXECUTOR_UNBINDING;
}

bool fl_executor_can_complete_unbind(int state)
{
    return state == FLAME_EXECUTOR_UNBINDING || state == FLAME_EXECUTOR_BOUND;
}
