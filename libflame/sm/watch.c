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

/* ---- WatchTasks streams ---------------------------------------------------- */

static void stream_unlink(fl_watch *w)
{
    if (w->sprev)
        w->sprev->snext = w->snext;
    else
        w->stream->watches = w->snext;
    if (w->snext)
        w->snext->sprev = w->sprev;
}

/* Frees the stream's watches and the stream; the call forgets it. */
static void wstream_free(rpc_call *call, sm_wstream *ws)
{
    while (ws->watches) {
        fl_watch *w = ws->watches;
        ws->watches = w->snext;
        watch_unlink(w);
        free(w);
    }
    free(ws);
    rpc_call_set_user(call, NULL);
}

static void wstream_cancelled(rpc_call *call, void *arg)
{
    wstream_free(call, arg);
}

void sm_wstream_watch(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t)
{
    /* a task asked for twice is watched once: a stream holds at most one
     * watch per task */
    for (fl_watch *o = t->watchers; o; o = o->next)
        if (o->call == call)
            return;
    sm_wstream *ws = rpc_call_user(call);
    if (!ws) {
        ws = fl_calloc(1, sizeof *ws);
        rpc_call_set_user(call, ws);
        rpc_call_on_cancel(call, wstream_cancelled, ws);
    }
    fl_watch *w = fl_calloc(1, sizeof *w);
    w->call = call;
    w->sess = ss;
    w->task = t;
    w->stream = ws;
    w->next = t->watchers;
    if (t->watchers)
        t->watchers->prev = w;
    t->watchers = w;
    w->snext = ws->watches;
    if (ws->watches)
        ws->watches->sprev = w;
    ws->watches = w;
}

void sm_wstream_end(sm_t *sm, rpc_call *call, int code, const char *msg)
{
    sm_wstream *ws = rpc_call_user(call);
    if (ws) {
        rpc_call_on_cancel(call, NULL, NULL);
        wstream_free(call, ws);
    }
    sm_finish(sm, call, code, "%s", msg ? msg : "");
}

void sm_wstream_half_closed(sm_t *sm, rpc_call *call)
{
    sm_wstream *ws = rpc_call_user(call);
    if (!ws || !ws->watches)
        sm_wstream_end(sm, call, RPC_OK, "");
    else
        ws->half_closed = true;
}

/* A watched task ended: the stream goes on (or ends, when the client is
 * done and this was its last task). */
static void wstream_task_done(sm_t *sm, fl_watch *w)
{
    sm_wstream *ws = w->stream;
    rpc_call *call = w->call;
    watch_unlink(w);
    stream_unlink(w);
    free(w);
    if (ws->half_closed && !ws->watches)
        sm_wstream_end(sm, call, RPC_OK, "");
}

void sm_watch_task_drop_all(sm_t *sm, fl_task *t, int code, const char *msg)
{
    while (t->watchers) {
        fl_watch *w = t->watchers;
        if (w->stream) { /* the whole stream ends: its other watches too */
            sm_wstream_end(sm, w->call, code, msg);
            continue;
        }
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
        if (done && w->stream) {
            wstream_task_done(sm, w);
        } else if (done) {
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

/* Frees w now, or at the next flush when it still has a batch queued (or
 * when its backlog's drain callback comes back). */
static void swatch_release(sm_swatch *w)
{
    w->call = NULL;
    if (!w->dirty && !w->draining) {
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
    if (w->backlog_next || s->state != FLAME_SESSION_CLOSED || s->counts[FLAME_TASK_PENDING] ||
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

/* The outcomes of what already finished go out in chunks, the next once the
 * reader took most of the last: a slow reader holds one chunk, and a
 * session of a million tasks is never packed at once. Outcomes of tasks in
 * the part not scanned yet wait for the scan (no duplicates). */
#define BACKLOG_CHUNK_BYTES (1u << 20)
#define BACKLOG_CHUNK_TASKS 4096

static void swatch_backlog(rpc_call *call, void *arg)
{
    sm_swatch *w = arg;
    w->draining = false;
    if (!w->call || !rpc_call_alive(call) || !w->ss) {
        if (!w->call && !w->dirty)
            free(w);
        return;
    }
    sm_t *sm = w->sm;
    fl_session *s = w->ss->s;
    uint32_t n = 0;
    while (w->backlog_next && w->pending.len < BACKLOG_CHUNK_BYTES && n < BACKLOG_CHUNK_TASKS) {
        fl_task *t = w->backlog_next <= s->ntasks ? s->tasks[w->backlog_next - 1] : NULL;
        if (t && fl_task_terminal(t->state)) {
            swatch_add_outcome(sm, w, t);
            n++;
        }
        w->backlog_next = w->backlog_next < w->backlog_end ? w->backlog_next + 1 : 0;
    }
    /* an empty first message says the watch is in place */
    swatch_mark_dirty(sm, w);
    if (w->backlog_next) {
        w->draining = true;
        sm_on_drain(sm, call, BACKLOG_CHUNK_BYTES / 4, swatch_backlog, w);
    } else {
        swatch_maybe_end(sm, w);
    }
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
    if (backlog && w->from <= ss->s->ntasks) {
        w->backlog_next = w->from;
        w->backlog_end = ss->s->ntasks;
    }
    if (backlog) {
        w->sm = sm;
        swatch_backlog(call, w);
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
        else if (t->id >= w->from && !(w->backlog_next && t->id >= w->backlog_next &&
                                       t->id <= w->backlog_end))
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
        if (!w->call && !w->draining) /* dropped while dirty */
            free(w);
    }
    sm->dirty_swatches = NULL;
}
