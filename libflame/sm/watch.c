/* Watchers: parked WatchTask calls (per task; each change of the task is
 * sent, the call ends with the task) and WatchSession/RunSession streams
 * (per session; outcomes of finished tasks, batched per flush). */
#include <stdlib.h>

#include "sm.h"

/* ---- WatchTask ----------------------------------------------------------- */

static void watch_unlink(fl_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->task->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void watch_cancelled(rpc_call *call, void *arg)
{
    fl_watch *w = arg;
    watch_unlink(w);
    free(w);
}

void sm_watch_task(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t)
{
    fl_watch *w = fl_calloc(1, sizeof *w);
    w->call = call;
    w->sess = ss;
    w->task = t;
    w->next = t->watchers;
    if (t->watchers)
        t->watchers->prev = w;
    t->watchers = w;
    rpc_call_on_cancel(call, watch_cancelled, w);
}

void sm_watch_task_drop_all(sm_t *sm, fl_task *t, int code, const char *msg)
{
    while (t->watchers) {
        fl_watch *w = t->watchers;
        watch_unlink(w);
        rpc_call_on_cancel(w->call, NULL, NULL);
        sm_finish(sm, w->call, code, "%s", msg);
        free(w);
    }
}

void sm_watch_task_changed(sm_t *sm, sm_session *ss, fl_task *t)
{
    if (!t->watchers)
        return;
    size_t len;
    uint8_t *data = fl_wire_pack_task(ss->s, t, &len);
    bool done = fl_task_terminal(t->state);
    for (fl_watch *w = t->watchers, *next; w; w = next) {
        next = w->next;
        sm_send(sm, w->call, fl_memdup(data, len ? len : 1), len);
        if (done) {
            watch_unlink(w);
            rpc_call_on_cancel(w->call, NULL, NULL);
            sm_finish(sm, w->call, RPC_OK, "%s", "");
            free(w);
        }
    }
    free(data);
}

/* ---- WatchSession / RunSession -------------------------------------------- */

static void swatch_mark_dirty(sm_t *sm, sm_swatch *w)
{
    if (!w->dirty) {
        w->dirty = true;
        w->dnext = sm->dirty_swatches;
        sm->dirty_swatches = w;
    }
}

static void swatch_add_outcome(sm_t *sm, sm_swatch *w, const fl_task *t)
{
    size_t n;
    uint8_t *o = fl_wire_pack_outcome(t, &n);
    fl_wire_put_bytes(&w->pending, 1, o, n);
    free(o);
    w->npending++;
    swatch_mark_dirty(sm, w);
}

static void swatch_unlink(sm_swatch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (w->ss)
        w->ss->swatches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->ss = NULL;
}

/* Frees w now, or at the next flush when it still has a batch queued. */
static void swatch_release(sm_swatch *w)
{
    w->call = NULL;
    if (!w->dirty) {
        fl_buf_free(&w->pending);
        free(w);
    }
}

static void swatch_cancelled(rpc_call *call, void *arg)
{
    sm_swatch *w = arg;
    swatch_unlink(w);
    swatch_release(w);
}

/* Ends the watch once the session is closed and nothing can change. */
static void swatch_maybe_end(sm_t *sm, sm_swatch *w)
{
    fl_session *s = w->ss->s;
    if (s->state != FLAME_SESSION_CLOSED || s->counts[FLAME_TASK_PENDING] ||
        s->counts[FLAME_TASK_RUNNING])
        return;
    rpc_call *call = w->call;
    rpc_call_on_cancel(call, NULL, NULL);
    swatch_unlink(w);
    if (w->dirty) { /* the last batch goes out first */
        size_t len = w->pending.len;
        sm_send(sm, call, (uint8_t *)fl_buf_detach(&w->pending), len);
        w->npending = 0;
    }
    sm_finish(sm, call, RPC_OK, "%s", "");
    swatch_release(w);
}

sm_swatch *sm_swatch_new(sm_t *sm, sm_session *ss, rpc_call *call, uint64_t from, bool backlog)
{
    sm_swatch *w = fl_calloc(1, sizeof *w);
    w->call = call;
    w->ss = ss;
    w->from = from;
    w->next = ss->swatches;
    if (w->next)
        w->next->prev = w;
    ss->swatches = w;
    rpc_call_on_cancel(call, swatch_cancelled, w);
    if (backlog) {
        /* what is already finished, in batches */
        for (uint64_t id = w->from; id <= ss->s->ntasks; id++) {
            fl_task *t = ss->s->tasks[id - 1];
            if (t && fl_task_terminal(t->state))
                swatch_add_outcome(sm, w, t);
        }
        /* an empty first message says the watch is in place */
        swatch_mark_dirty(sm, w);
        swatch_maybe_end(sm, w);
    }
    return w;
}

void sm_swatch_drop(sm_swatch *w)
{
    rpc_call_on_cancel(w->call, NULL, NULL);
    swatch_unlink(w);
    swatch_release(w);
}

void sm_swatch_outcome(sm_t *sm, sm_session *ss, const fl_task *t)
{
    /* the end of the watch is decided by the caller once all changes are
     * in (closing a session cancels many tasks at once) */
    for (sm_swatch *w = ss->swatches, *next; w; w = next) {
        next = w->next;
        if (!rpc_call_alive(w->call)) /* ended from our side (a failed commit) */
            sm_swatch_drop(w);
        else if (t->id >= w->from)
            swatch_add_outcome(sm, w, t);
    }
}

void sm_swatch_end_done(sm_t *sm, sm_session *ss)
{
    for (sm_swatch *w = ss->swatches, *next; w; w = next) {
        next = w->next;
        swatch_maybe_end(sm, w);
    }
}

void sm_swatch_drop_all(sm_t *sm, sm_session *ss, int code, const char *msg)
{
    while (ss->swatches) {
        sm_swatch *w = ss->swatches;
        rpc_call_on_cancel(w->call, NULL, NULL);
        sm_finish(sm, w->call, code, "%s", msg);
        swatch_unlink(w);
        swatch_release(w);
    }
}

void sm_watch_collect(sm_t *sm)
{
    for (sm_swatch *w = sm->dirty_swatches, *next; w; w = next) {
        next = w->dnext;
        w->dnext = NULL;
        w->dirty = false;
        if (w->call && w->pending.len) {
            size_t len = w->pending.len;
            sm_send(sm, w->call, (uint8_t *)fl_buf_detach(&w->pending), len);
        }
        fl_buf_free(&w->pending);
        w->npending = 0;
        if (!w->call) /* dropped while dirty */
            free(w);
    }
    sm->dirty_swatches = NULL;
}
