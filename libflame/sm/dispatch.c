/* Task hand-out: each session's FIFO of Pending tasks, the executors parked
 * in LaunchTask (waiters, served first, in order) and those with an
 * ExecutorStream and credit (streamers, round robin, none holding more than
 * its share of the session's work). A task handed to a waiter is Running at
 * once; one sent ahead on a stream stays Pending until the executor says it
 * started it, and an idle streamer may take back what a busy one has not
 * started (revoke). Hand-outs happen at the flush, after the batch's
 * commit (sm_dispatch only marks the session), so no executor is ever sent
 * a task its batch failed to store; ExecutorWork batches are queued then. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

/* ---- pending queues ------------------------------------------------------ */

static void pq_reserve(sm_session *ss)
{
    if (ss->pq_len < ss->pq_cap)
        return;
    size_t cap = ss->pq_cap ? ss->pq_cap * 2 : 64;
    uint32_t *q = fl_malloc(cap * sizeof *q);
    for (size_t i = 0; i < ss->pq_len; i++)
        q[i] = ss->pq[(ss->pq_head + i) % ss->pq_cap];
    free(ss->pq);
    ss->pq = q;
    ss->pq_cap = cap;
    ss->pq_head = 0;
}

static void pq_push(sm_session *ss, uint32_t id)
{
    pq_reserve(ss);
    ss->pq[(ss->pq_head + ss->pq_len) % ss->pq_cap] = id;
    ss->pq_len++;
}

/* A task an executor gave back goes first: it was handed out before the
 * ones still queued. */
static void pq_push_front(sm_session *ss, uint32_t id)
{
    pq_reserve(ss);
    ss->pq_head = (ss->pq_head + ss->pq_cap - 1) % ss->pq_cap;
    ss->pq[ss->pq_head] = id;
    ss->pq_len++;
}

static fl_task *pq_pop(sm_session *ss)
{
    while (ss->pq_len) {
        uint32_t id = ss->pq[ss->pq_head];
        ss->pq_head = (ss->pq_head + 1) % ss->pq_cap;
        ss->pq_len--;
        fl_task *t = id && id <= ss->s->ntasks ? ss->s->tasks[id - 1] : NULL;
        if (t && t->state == FLAME_TASK_PENDING)
            return t;
    }
    return NULL;
}

void sm_dispatch_queue(sm_t *sm, sm_session *ss, fl_task *t)
{
    pq_push(ss, t->id);
}

void sm_dispatch_drop_queue(sm_t *sm, sm_session *ss)
{
    free(ss->pq);
    ss->pq = NULL;
    ss->pq_len = ss->pq_cap = ss->pq_head = 0;
    if (ss->dispatch_due)
        for (size_t i = 0; i < sm->ndue; i++)
            if (sm->due[i] == ss)
                sm->due[i] = sm->due[--sm->ndue];
    ss->dispatch_due = false;
}

void sm_dispatch_resync(sm_t *sm, sm_session *ss)
{
    const fl_session *s = ss->s;
    uint8_t *seen = fl_calloc(s->ntasks + 1, 1); /* held or queued */
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        const sm_exec *e = v;
        for (uint32_t i = 0; e->sess == ss && i < e->nrun; i++)
            if (e->run[i].t->id <= s->ntasks)
                seen[e->run[i].t->id] = 1;
    }
    uint32_t *old = ss->pq;
    size_t head = ss->pq_head, len = ss->pq_len, cap = ss->pq_cap;
    ss->pq = NULL;
    ss->pq_head = ss->pq_len = ss->pq_cap = 0;
    /* the queue's order first, then the tasks the undo made Pending again */
    for (size_t i = 0; i < len; i++) {
        uint32_t id = old[(head + i) % cap];
        if (id && id <= s->ntasks && !seen[id] && s->tasks[id - 1] &&
            s->tasks[id - 1]->state == FLAME_TASK_PENDING) {
            seen[id] = 1;
            pq_push(ss, id);
        }
    }
    for (uint32_t id = 1; id <= s->ntasks; id++)
        if (!seen[id] && s->tasks[id - 1] && s->tasks[id - 1]->state == FLAME_TASK_PENDING)
            pq_push(ss, id);
    free(old);
    free(seen);
    sm_dispatch(sm, ss);
}

/* ---- the tasks an executor holds ------------------------------------------ */

static void run_add(sm_exec *e, fl_task *t, uint8_t flags)
{
    if (e->nrun == e->caprun) {
        e->caprun = e->caprun ? e->caprun * 2 : 8;
        e->run = fl_realloc(e->run, e->caprun * sizeof *e->run);
    }
    e->run[e->nrun++] = (struct sm_held){ t, flags };
}

static struct sm_held *run_find(sm_exec *e, uint64_t id)
{
    for (uint32_t i = 0; i < e->nrun; i++)
        if (e->run[i].t->id == id)
            return &e->run[i];
    return NULL;
}

static void unrevoke(sm_exec *e, struct sm_held *h)
{
    if (!(h->flags & SM_HELD_REVOKING))
        return;
    h->flags &= (uint8_t)~SM_HELD_REVOKING;
    e->nrevoking--;
    if (e->sess && e->sess->revoking)
        e->sess->revoking--;
}

fl_task *sm_dispatch_take(sm_exec *e, uint64_t id)
{
    struct sm_held *h = run_find(e, id);
    if (!h)
        return NULL;
    unrevoke(e, h);
    fl_task *t = h->t;
    uint32_t i = (uint32_t)(h - e->run);
    memmove(e->run + i, e->run + i + 1, (e->nrun - i - 1) * sizeof *e->run);
    e->nrun--;
    return t;
}

uint32_t sm_dispatch_clear(sm_exec *e)
{
    uint32_t n = e->nrun;
    for (uint32_t i = 0; i < n; i++)
        unrevoke(e, &e->run[i]);
    e->nrun = 0;
    return n;
}

static void set_running(sm_t *sm, sm_session *ss, fl_task *t, const sm_exec *e)
{
    /* Flame's event text (its controller's launch_task), with the node */
    char msg[300];
    snprintf(msg, sizeof msg, "Running task on host %.256s.", e->ex->node);
    fl_task_set_state(ss->s, t, FLAME_TASK_RUNNING, msg, fl_now_ms());
    /* Running is not persisted (after a restart a Running task is Pending
     * again anyway): only watchers hear of it */
    sm_watch_task_changed(sm, ss, t);
}

void sm_dispatch_started(sm_t *sm, sm_exec *e, uint64_t id)
{
    struct sm_held *h = run_find(e, id);
    if (!h || (h->flags & SM_HELD_STARTED))
        return;
    unrevoke(e, h); /* too late to give it back */
    h->flags |= SM_HELD_STARTED;
    if (h->t->state == FLAME_TASK_PENDING && e->sess)
        set_running(sm, e->sess, h->t, e);
}

void sm_dispatch_returned(sm_t *sm, sm_exec *e, uint64_t id)
{
    struct sm_held *h = run_find(e, id);
    if (!h || (h->flags & SM_HELD_STARTED))
        return;
    fl_task *t = sm_dispatch_take(e, id);
    if (t->state == FLAME_TASK_PENDING && e->sess)
        pq_push_front(e->sess, t->id);
}

/* ---- LaunchTask waiters --------------------------------------------------- */

void sm_dispatch_unwait(sm_exec *e)
{
    if (!e->waiting)
        return;
    if (e->wprev)
        e->wprev->wnext = e->wnext;
    else if (e->sess)
        e->sess->waiters = e->wnext;
    if (e->wnext)
        e->wnext->wprev = e->wprev;
    e->wprev = e->wnext = NULL;
    e->waiting = false;
}

static void launch_cancelled(rpc_call *call, void *arg)
{
    sm_exec *e = arg;
    sm_dispatch_unwait(e);
    e->launch_call = NULL;
}

void sm_dispatch_wait(sm_t *sm, sm_exec *e, rpc_call *call)
{
    e->launch_call = call;
    rpc_call_on_cancel(call, launch_cancelled, e);
    sm_session *ss = e->sess;
    /* FIFO of waiting executors */
    e->waiting = true;
    e->wnext = NULL;
    e->wprev = NULL;
    if (!ss->waiters) {
        ss->waiters = e;
    } else {
        sm_exec *w = ss->waiters;
        while (w->wnext)
            w = w->wnext;
        w->wnext = e;
        e->wprev = w;
    }
    sm_dispatch(sm, ss);
}

void sm_dispatch_launch_none(sm_t *sm, sm_exec *e)
{
    if (!e->launch_call)
        return;
    sm_dispatch_unwait(e);
    rpc_call_on_cancel(e->launch_call, NULL, NULL);
    sm_reply(sm, e->launch_call, NULL, 0);
    e->launch_call = NULL;
}

/* Gives task t to executor e (which waits in LaunchTask). */
static void launch(sm_t *sm, sm_exec *e, sm_session *ss, fl_task *t)
{
    run_add(e, t, SM_HELD_STARTED);
    set_running(sm, ss, t, e);
    size_t n;
    uint8_t *task = fl_wire_pack_task(ss->s, t, &n);
    fl_buf b = { 0 };
    fl_wire_put_bytes(&b, 1, task, n);
    free(task);
    sm_dispatch_unwait(e);
    rpc_call_on_cancel(e->launch_call, NULL, NULL);
    size_t blen = b.len;
    sm_reply(sm, e->launch_call, (uint8_t *)fl_buf_detach(&b), blen);
    e->launch_call = NULL;
}

/* ---- ExecutorStream ------------------------------------------------------- */

static void exec_dirty(sm_t *sm, sm_exec *e)
{
    if (e->nout == 0 && !e->out.len) {
        if (sm->ndirty_execs == sm->capdirty_execs) {
            sm->capdirty_execs = sm->capdirty_execs ? sm->capdirty_execs * 2 : 16;
            sm->dirty_execs = fl_realloc(sm->dirty_execs, sm->capdirty_execs * sizeof(sm_exec *));
        }
        sm->dirty_execs[sm->ndirty_execs++] = e;
    }
}

/* Adds task t to the ExecutorWork being built for streaming executor e.
 * It stays Pending until the executor says it started it. */
static void stream_task(sm_t *sm, sm_exec *e, sm_session *ss, fl_task *t)
{
    run_add(e, t, 0);
    exec_dirty(sm, e);
    size_t n;
    uint8_t *task = fl_wire_pack_task(ss->s, t, &n);
    fl_wire_put_bytes(&e->out, 1, task, n);
    free(task);
    e->nout++;
    e->credit--;
}

void sm_dispatch_stream_add(sm_exec *e)
{
    e->snext = e->sess->streamers;
    e->sprev = NULL;
    if (e->snext)
        e->snext->sprev = e;
    e->sess->streamers = e;
    e->sess->nstreamers++;
    e->streaming = true;
}

void sm_dispatch_stream_remove(sm_exec *e)
{
    if (!e->streaming || !e->sess)
        return;
    e->streaming = false;
    e->sess->nstreamers--;
    if (e->sprev)
        e->sprev->snext = e->snext;
    else if (e->sess->streamers == e)
        e->sess->streamers = e->snext;
    if (e->snext)
        e->snext->sprev = e->sprev;
    e->sprev = e->snext = NULL;
}

void sm_dispatch_credit(sm_t *sm, sm_exec *e, uint32_t credit)
{
    e->credit += credit;
    sm_dispatch(sm, e->sess);
}

void sm_dispatch_stream_close(sm_t *sm, sm_exec *e, int code, const char *why)
{
    if (!e->stream)
        return;
    sm_dispatch_stream_remove(e);
    rpc_call_on_cancel(e->stream, NULL, NULL);
    sm_close(sm, e->stream, code, "%s", why);
    e->stream = NULL;
    e->credit = 0;
}

void sm_dispatch_stream_unbind(sm_t *sm, sm_exec *e)
{
    if (!e->stream)
        return;
    sm_dispatch_stream_remove(e);
    e->credit = 0;
    exec_dirty(sm, e);
    fl_wire_put_bool(&e->out, 2, true); /* ExecutorWork.unbind */
}

void sm_dispatch_forget(sm_t *sm, sm_exec *e)
{
    sm_dispatch_unwait(e);
    for (size_t i = 0; i < sm->ndirty_execs; i++)
        if (sm->dirty_execs[i] == e)
            sm->dirty_execs[i] = sm->dirty_execs[--sm->ndirty_execs];
    fl_buf_free(&e->out);
}

void sm_dispatch_collect(sm_t *sm)
{
    for (size_t i = 0; i < sm->ndirty_execs; i++) {
        sm_exec *e = sm->dirty_execs[i];
        if (e->stream && (e->out.len || e->nout)) {
            size_t len = e->out.len;
            sm_push(sm, e->stream, (uint8_t *)fl_buf_detach(&e->out), len);
        }
        fl_buf_free(&e->out);
        e->nout = 0;
    }
    sm->ndirty_execs = 0;
}

/* ---- hand-out ------------------------------------------------------------- */

/* Asks a busy streamer to give back half of the tasks it was sent ahead
 * and has not started, for an idle streamer of the same session. One
 * request at a time per session: what comes back is handed out again. */
static void steal(sm_t *sm, sm_session *ss)
{
    sm_exec *idle = NULL;
    for (sm_exec *e = ss->streamers; e && !idle; e = e->snext)
        if (e->credit && !e->nrun)
            idle = e;
    if (!idle)
        return;
    sm_exec *victim = NULL;
    uint32_t most = 0;
    for (sm_exec *e = ss->streamers; e; e = e->snext) {
        uint32_t unstarted = 0, started = 0;
        for (uint32_t i = 0; i < e->nrun; i++) {
            if (e->run[i].flags & SM_HELD_STARTED)
                started++;
            else if (!(e->run[i].flags & SM_HELD_REVOKING))
                unstarted++;
        }
        if (started && unstarted > most) {
            most = unstarted;
            victim = e;
        }
    }
    if (!victim)
        return;
    exec_dirty(sm, victim);
    uint32_t want = (most + 1) / 2;
    for (uint32_t i = victim->nrun; i-- > 0 && want;) {
        struct sm_held *h = &victim->run[i];
        if (h->flags & (SM_HELD_STARTED | SM_HELD_REVOKING))
            continue;
        h->flags |= SM_HELD_REVOKING;
        victim->nrevoking++;
        ss->revoking++;
        fl_wire_put_varint(&victim->out, 3, h->t->id); /* ExecutorWork.revoke */
        want--;
    }
}

void sm_dispatch(sm_t *sm, sm_session *ss)
{
    if (ss->dispatch_due)
        return;
    if (sm->ndue == sm->capdue) {
        sm->capdue = sm->capdue ? sm->capdue * 2 : 16;
        sm->due = fl_realloc(sm->due, sm->capdue * sizeof *sm->due);
    }
    sm->due[sm->ndue++] = ss;
    ss->dispatch_due = true;
}

static void hand_out(sm_t *sm, sm_session *ss)
{
    while (ss->waiters && ss->pq_len) {
        fl_task *t = pq_pop(ss);
        if (!t)
            break;
        launch(sm, ss->waiters, ss, t);
    }
    if (!ss->streamers)
        return;
    /* no streamer holds more than its share of the session's work, so tasks
     * that take time spread over all of them; round robin over the streams
     * that have credit */
    const fl_session *s = ss->s;
    uint32_t work = (uint32_t)(s->counts[FLAME_TASK_PENDING] + s->counts[FLAME_TASK_RUNNING]);
    uint32_t n = ss->nstreamers ? ss->nstreamers : 1;
    uint32_t share = work / n + (work % n != 0);
    while (ss->pq_len) {
        bool gave = false;
        for (sm_exec *e = ss->streamers; e && ss->pq_len; e = e->snext) {
            if (!e->credit || e->nrun >= share)
                continue;
            fl_task *t = pq_pop(ss);
            if (!t)
                break;
            stream_task(sm, e, ss, t);
            gave = true;
        }
        if (!gave)
            break;
    }
    if (!ss->pq_len && !ss->revoking)
        steal(sm, ss);
}

void sm_dispatch_run(sm_t *sm)
{
    /* a hand-out marks no session: the list does not grow under us */
    for (size_t i = 0; i < sm->ndue; i++) {
        sm_session *ss = sm->due[i];
        ss->dispatch_due = false;
        if (!fl_session_suspended(ss->s)) /* its tasks wait for ResumeSession */
            hand_out(sm, ss);
    }
    sm->ndue = 0;
}
