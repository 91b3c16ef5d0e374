/* Tasks: creating them, finding them, finishing them, and the typed
 * notifications that follow each change the model made (persist, tell
 * watchers, queue for hand-out, as each needs). */
#include <stdlib.h>

#include "sm.h"

/* A task that became Pending: it waits for an executor. */
static void queue(sm_t *sm, sm_session *ss, fl_task *t)
{
    sm_dispatch_queue(sm, ss, t);
    sm_dispatch(sm, ss);
    /* a session with executors at work only changes its demand: the cycle
     * can wait a little (coalesced); one with none needs it now */
    if (ss->streamers || ss->waiters)
        sm->sched_soft = true;
    else
        sm->sched_dirty = true;
}

void sm_task_created(sm_t *sm, sm_session *ss, fl_task *t)
{
    fl_store_put_task(sm->store, ss->s, t);
    queue(sm, ss, t);
}

void sm_task_finished(sm_t *sm, sm_session *ss, fl_task *t)
{
    sm_metrics_task_done(t);
    fl_store_put_task(sm->store, ss->s, t);
    if (ss->swatches)
        sm_swatch_outcome(sm, ss, t);
    sm_watch_task_changed(sm, ss, t);
}

void sm_task_requeued(sm_t *sm, sm_session *ss, fl_task *t)
{
    fl_store_put_task(sm->store, ss->s, t);
    sm_watch_task_changed(sm, ss, t);
    /* the caller hands the batch out */
    sm_dispatch_queue(sm, ss, t);
}

void sm_task_restored(sm_t *sm, sm_session *ss, fl_task *t)
{
    bool was_running = t->state == FLAME_TASK_RUNNING;
    if (was_running)
        t->state = FLAME_TASK_PENDING; /* its executor is gone with the old process */
    fl_session_put_task(ss->s, t);
    if (t->state == FLAME_TASK_PENDING)
        queue(sm, ss, t);
    if (was_running) {
        fl_events_add(&t->events, FLAME_TASK_PENDING,
                      "session manager restarted while the task was running; it runs again",
                      fl_now_ms());
        fl_store_put_task(sm->store, ss->s, t);
    }
}

flame_status sm_tasks_add(sm_t *sm, sm_session *ss, const ProtobufCBinaryData *inputs,
                          size_t n_inputs, uint32_t count, const Flame__V1__TaskSpec *spec,
                          uint64_t *first, size_t *n)
{
    *n = n_inputs ? n_inputs : count;
    if (ss->s->state == FLAME_SESSION_CLOSED) /* a suspended one queues them */
        /* Flame's words and code (its fs engine): InvalidState */
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "Cannot create task in closed session %s", ss->s->id);
    if (n_inputs && count && count != n_inputs)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "count (%u) differs from the number of inputs (%zu)", count, n_inputs);
    int64_t now = fl_now_ms();
    if (*n)
        sm_journal_tasks_added(sm, ss);
    *first = ss->s->ntasks + 1;
    for (size_t i = 0; i < *n; i++) {
        fl_task *t = n_inputs ? fl_session_add_task(ss->s, inputs[i].data, inputs[i].len, true, now)
                              : fl_session_add_task(ss->s, NULL, 0, false, now);
        if (spec && spec->n_affinity) {
            size_t alen;
            t->affinity = fl_wire_affinity_pack(spec->affinity, spec->n_affinity, &alen);
            t->affinity_len = (uint32_t)alen;
        }
        sm_task_created(sm, ss, t);
    }
    return FLAME_OK;
}

void sm_task_complete(sm_t *sm, sm_session *ss, fl_task *t, int rc,
                      const ProtobufCBinaryData *output, const char *msg)
{
    sm_journal_task(sm, ss, t, output != NULL);
    if (output) {
        t->has_output = true;
        t->output_len = (uint32_t)output->len;
        t->output = output->len ? fl_memdup(output->data, output->len) : NULL;
    }
    if (rc == 0)
        fl_task_set_state(ss->s, t, FLAME_TASK_SUCCEED, msg, fl_now_ms());
    else
        fl_task_set_state(ss->s, t, FLAME_TASK_FAILED, msg ? msg : "the service failed the task",
                          fl_now_ms());
    sm_task_finished(sm, ss, t);
    sm->sched_soft = true;
}
