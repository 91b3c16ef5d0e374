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

#define WSTREAM_CHUNK_BYTES (1u << 20)
#define WSTREAM_CHUNK_MSGS 1024

static void stream_unlink(fl_watch *w)
{
    if (w->sprev)
        w->sprev->snext = w->snext;
    else
        w->stream->watches = w->snext;
    if (w->snext)
        w->snext->sprev = w->sprev;
}

/* The stream lets go of its call: its watches are freed; the stream too,
 * unless a drain callback is due (that frees it). */
static void wstream_release(sm_wstream *ws)
{
    while (ws->watches) {
        fl_watch *w = ws->watches;
        ws->watches = w->snext;
        watch_unlink(w);
        free(w);
    }
    ws->ready_head = ws->ready_tail = NULL;
    if (ws->call)
        rpc_call_set_user(ws->call, NULL);
    ws->call = NULL;
    if (!ws->draining)
        free(ws);
}

/* The call is over (cancelled, refused, or ended by a failed commit). */
static void wstream_call_ended(rpc_call *call, void *arg)
{
    wstream_release(arg);
}

static void wstream_end(sm_wstream *ws, int code, const char *msg)
{
    rpc_call *call = ws->call;
    sm_t *sm = ws->sm;
    rpc_call_on_end(call, NULL, NULL);
    wstream_release(ws);
    sm_finish(sm, call, code, "%s", msg ? msg : "");
}

static void wstream_drained(rpc_call *call, void *arg);

/* Sends the news of the ready watches, one chunk; a watch whose task ended
 * goes with it. */
static void wstream_pump(sm_t *sm, sm_wstream *ws)
{
    /* a call ended by a failed commit sends nothing more; its end
     * callback releases the stream */
    if (ws->draining || !ws->call || !rpc_call_alive(ws->call))
        return;
    size_t bytes = 0;
    uint32_t n = 0;
    while (ws->ready_head && bytes < WSTREAM_CHUNK_BYTES && n < WSTREAM_CHUNK_MSGS) {
        fl_watch *w = ws->ready_head;
        ws->ready_head = w->rnext;
        if (!ws->ready_head)
            ws->ready_tail = NULL;
        w->ready = false;
        size_t len;
        uint8_t *data = fl_wire_pack_task(w->sess->s, w->task, &len);
        sm_send(sm, ws->call, data, len);
        bytes += len;
        n++;
        if (fl_task_terminal(w->task->state)) {
            watch_unlink(w);
            stream_unlink(w);
            free(w);
        }
    }
    if (ws->half_closed && !ws->watches) {
        wstream_end(ws, RPC_OK, ""); /* the status goes with the last news */
    } else if (n) {
        ws->draining = true;
        sm_on_drain(sm, ws->call, WSTREAM_CHUNK_BYTES / 4, wstream_drained, ws);
    }
}

static void wstream_drained(rpc_call *call, void *arg)
{
    sm_wstream *ws = arg;
    ws->draining = false;
    if (!ws->call) /* released meanwhile */
        free(ws);
    else if (rpc_call_alive(call))
        wstream_pump(ws->sm, ws);
    /* a call that is over: its end callback comes next and releases it */
}

static void wstream_ready(sm_t *sm, fl_watch *w)
{
    sm_wstream *ws = w->stream;
    if (!w->ready) {
        w->ready = true;
        w->rnext = NULL;
        if (ws->ready_tail)
            ws->ready_tail->rnext = w;
        else
            ws->ready_head = w;
        ws->ready_tail = w;
    }
    wstream_pump(sm, ws);
}

void sm_wstream_watch(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t)
{
    /* a task asked for twice is watched once (its state goes out again) */
    for (fl_watch *o = t->watchers; o; o = o->next)
        if (o->call == call && o->stream) {
            wstream_ready(sm, o);
            return;
        }
    sm_wstream *ws = rpc_call_user(call);
    if (!ws) {
        ws = fl_calloc(1, sizeof *ws);
        ws->call = call;
        ws->sm = sm;
        rpc_call_set_user(call, ws);
        rpc_call_on_end(call, wstream_call_ended, ws);
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
    wstream_ready(sm, w);
}

void sm_wstream_end(sm_t *sm, rpc_call *call, int code, const char *msg)
{
    sm_wstream *ws = rpc_call_user(call);
    if (ws) {
        wstream_end(ws, code, msg);
    } else {
        sm_finish(sm, call, code, "%s", msg ? msg : "");
    }
}

void sm_wstream_half_closed(sm_t *sm, rpc_call *call)
{
    sm_wstream *ws = rpc_call_user(call);
    if (!ws || !ws->watches)
        sm_wstream_end(sm, call, RPC_OK, "");
    else
        ws->half_closed = true;
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
    uint8_t *data = fl_wire_pack_task(ss->s, t, &len); /* for the WatchTask calls */
    bool done = fl_task_terminal(t->state);
    for (fl_watch *w = t->watchers, *next; w; w = next) {
        next = w->next;
        if (w->stream) { /* news for its stream, sent as the stream can take it */
            wstream_ready(sm, w);
            continue;
        }
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

/* How long an acknowledgement waits for its tasks' outcomes. */
#define ACK_HOLD_NS (1000 * 1000)

/* Appends the acknowledgement w holds to its pending message (fields 2
 * and 3 of TaskOutcomes after the outcomes of field 1); a message carries
 * one, so one already in it goes out first. */
static void swatch_put_ack(sm_t *sm, sm_swatch *w)
{
    if (!w->ack_count)
        return;
    if (w->pending_acked && w->call) {
        size_t len = w->pending.len;
        sm_send(sm, w->call, (uint8_t *)fl_buf_detach(&w->pending), len);
        fl_buf_free(&w->pending);
        w->npending = 0;
    }
    fl_wire_put_varint(&w->pending, 2, w->ack_first);
    fl_wire_put_varint(&w->pending, 3, w->ack_count);
    w->pending_acked = true;
    w->ack_count = 0;
    w->ack_due_ns = 0;
}

/* This batch's acknowledgement joins the one held (adjacent ranges only). */
static void swatch_take_new(sm_t *sm, sm_swatch *w, int64_t now)
{
    if (!w->new_count)
        return;
    if (w->ack_count && w->ack_first + w->ack_count != w->new_first)
        swatch_put_ack(sm, w);
    if (!w->ack_count) {
        w->ack_first = w->new_first;
        w->ack_due_ns = now + ACK_HOLD_NS;
    }
    w->ack_count += w->new_count;
    w->new_count = 0;
    w->ack_fresh = true;
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
    swatch_take_new(sm, w, fl_mono_ns());
    if (w->dirty || w->ack_count) { /* the last batch goes out first */
        swatch_put_ack(sm, w);
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

void sm_swatch_drop(sm_t *sm, sm_swatch *w)
{
    if (w->call && rpc_call_alive(w->call)) {
        swatch_take_new(sm, w, fl_mono_ns());
        swatch_put_ack(sm, w);
        if (w->pending.len) {
            size_t len = w->pending.len;
            sm_send(sm, w->call, (uint8_t *)fl_buf_detach(&w->pending), len);
            fl_buf_free(&w->pending);
            w->npending = 0;
        }
    }
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
            sm_swatch_drop(sm, w);
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

void sm_swatch_ack(sm_t *sm, sm_swatch *w, uint64_t first, uint32_t n)
{
    if (w->new_count && w->new_first + w->new_count != first) /* another client's came between */
        swatch_take_new(sm, w, fl_mono_ns());
    if (w->new_count) {
        w->new_count += n;
    } else {
        w->new_first = first;
        w->new_count = n;
    }
    swatch_mark_dirty(sm, w);
}

void sm_watch_collect(sm_t *sm)
{
    int64_t now = fl_mono_ns();
    sm_swatch *held = NULL;
    for (sm_swatch *w = sm->dirty_swatches, *next; w; w = next) {
        next = w->dnext;
        w->dnext = NULL;
        w->dirty = false;
        w->ack_fresh = false;
        swatch_take_new(sm, w, now);
        /* an acknowledgement waits for its tasks' outcomes while executors
         * stream the session's tasks, ACK_HOLD_NS at most */
        bool hold = w->call && w->ack_count && !w->pending.len && w->ss && w->ss->nstreamers &&
                    now < w->ack_due_ns;
        if (w->call && !hold)
            swatch_put_ack(sm, w);
        if (w->call && w->pending.len) {
            size_t len = w->pending.len;
            sm_send(sm, w->call, (uint8_t *)fl_buf_detach(&w->pending), len);
        }
        fl_buf_free(&w->pending);
        w->npending = 0;
        w->pending_acked = false;
        if (hold) { /* looked at again at the next flush */
            w->dirty = true;
            w->dnext = held;
            held = w;
            rpc_server_wake_at(sm->rpc, w->ack_due_ns);
        } else if (!w->call && !w->draining) { /* dropped while dirty */
            free(w);
        }
    }
    sm->dirty_swatches = held;
}

void sm_watch_commit_failed(sm_t *sm, const char *why)
{
    for (sm_swatch *w = sm->dirty_swatches; w; w = w->dnext)
        if (w->call && w->ack_fresh) { /* it acknowledges tasks the batch took with it */
            w->ack_count = 0;
            w->ack_fresh = false;
            sm_finish(sm, w->call, RPC_INTERNAL, "storage commit failed: %s", why);
        }
}
