/* The inproc shim: a flame_service's callbacks run inside the executor
 * manager's process (built-in applications, programs embedding libflame). */
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "util/util.h"

typedef struct inproc_shim {
    fl_shim base;
    const flame_service *svc;
    bool entered;
} inproc_shim;

static flame_status inproc_enter(fl_shim *sh, const fl_shim_session *ctx, char **message)
{
    inproc_shim *p = (inproc_shim *)sh;
    *message = NULL;
    flame_session_context sc = { ctx->session_id, ctx->application, ctx->common_data };
    int rc = p->svc->on_session_enter ? p->svc->on_session_enter(&sc, message, p->svc->payload) : 0;
    if (rc != 0) {
        if (!*message)
            *message = fl_sprintf("on_session_enter returned %d", rc);
        return FLAME_ERR_FAILED_PRECONDITION;
    }
    p->entered = true;
    return FLAME_OK;
}

static flame_status inproc_invoke(fl_shim *sh, const flame_task_context *task, int *rc,
                                  flame_task_result *result, char **message)
{
    inproc_shim *p = (inproc_shim *)sh;
    *message = NULL;
    *rc = p->svc->on_task_invoke ? p->svc->on_task_invoke(task, result, p->svc->payload) : 0;
    return FLAME_OK;
}

/* In-process calls cost nothing to batch: saying yes lets the executor
 * manager take tasks in big windows. */
static flame_status inproc_invoke_batch(fl_shim *sh, const flame_task_context *tasks, size_t n,
                                        int *rcs, flame_task_result *results, char **message)
{
    for (size_t i = 0; i < n; i++)
        inproc_invoke(sh, &tasks[i], &rcs[i], &results[i], message);
    return FLAME_OK;
}

static void inproc_leave(fl_shim *sh)
{
    inproc_shim *p = (inproc_shim *)sh;
    if (p->entered && p->svc->on_session_leave)
        p->svc->on_session_leave(p->svc->payload);
    p->entered = false;
}

static void inproc_free(fl_shim *sh)
{
    free(sh);
}

static const fl_shim_ops inproc_ops = { "inproc", inproc_enter, inproc_invoke,
                                        inproc_invoke_batch, inproc_leave, inproc_free };

fl_shim *fl_shim_inproc_new(const flame_service *service)
{
    inproc_shim *p = fl_calloc(1, sizeof *p);
    p->base.ops = &inproc_ops;
    p->svc = service;
    return &p->base;
}
