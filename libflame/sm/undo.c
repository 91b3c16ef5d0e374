/* A failed batch undone: the journal (journal.c) replayed newest first, so
 * each change is undone in the state it left (a session's tasks before the
 * session, an update before the registration it replaced). Afterwards the
 * books are what the disk holds: what the batch created is gone, what it
 * deleted is back, and a task whose completion was lost is Pending again
 * (as a restart would find it) and runs again. Engine thread only. */
#include <stdlib.h>

#include "sm.h"

/* Sessions whose tasks changed: their queues are rebuilt at the end. */
typedef struct touched {
    sm_session **v;
    size_t n, cap;
} touched;

static void touch(touched *tc, sm_session *ss)
{
    if (ss->undo_touched)
        return;
    if (tc->n == tc->cap) {
        tc->cap = tc->cap ? tc->cap * 2 : 8;
        tc->v = fl_realloc(tc->v, tc->cap * sizeof *tc->v);
    }
    tc->v[tc->n++] = ss;
    ss->undo_touched = true;
}

static void untouch(touched *tc, sm_session *ss)
{
    for (size_t i = 0; ss->undo_touched && i < tc->n; i++)
        if (tc->v[i] == ss)
            tc->v[i] = tc->v[--tc->n];
    ss->undo_touched = false;
}

/* Tasks created by the batch: never handed out (hand-outs follow the
 * commit), so only watchers can know them. */
static void tasks_unadd(sm_t *sm, sm_session *ss, uint32_t n, const char *why)
{
    fl_session *s = ss->s;
    for (uint32_t id = s->ntasks; id > n; id--) {
        fl_task *t = s->tasks[id - 1];
        if (!t)
            continue;
        sm_watch_task_drop_all(sm, t, RPC_INTERNAL, why);
        s->counts[t->state]--;
        fl_task_free(t);
        s->tasks[id - 1] = NULL;
    }
    s->ntasks = n;
}

static void task_restore(sm_change *u)
{
    fl_session *s = u->ss->s;
    fl_task *t = u->t;
    /* a completion undone: its executor let go of it, so it is Pending
     * again, which is also what the disk says */
    int to = u->state == FLAME_TASK_RUNNING ? FLAME_TASK_PENDING : u->state;
    s->counts[t->state]--;
    s->counts[to]++;
    t->state = (uint8_t)to;
    t->etime = u->etime;
    fl_events_truncate(&t->events, u->n);
    if (u->took_output) {
        free(t->output);
        t->output = u->output;
        t->has_output = u->has_output;
        t->output_len = u->output_len;
        u->output = NULL;
    }
}

static void undo_one(sm_t *sm, sm_change *u, touched *tc, const char *why)
{
    fl_app *cur;
    switch (u->kind) {
    case UNDO_APP_ADD:
        fl_map_del(&sm->apps, u->app->name);
        fl_app_free(u->app);
        break;
    case UNDO_APP_REPLACE:
        cur = fl_map_get(&sm->apps, u->app->name);
        if (cur) {
            u->app->open_sessions = cur->open_sessions;
            fl_app_free(cur);
        }
        fl_map_put(&sm->apps, u->app->name, u->app);
        break;
    case UNDO_APP_DEL:
        fl_map_put(&sm->apps, u->app->name, u->app);
        break;
    case UNDO_SESSION_ADD:
        untouch(tc, u->ss);
        sm_session_discard(sm, u->ss, RPC_INTERNAL, why);
        sm->sched_dirty = true;
        break;
    case UNDO_SESSION_DEL:
        sm_session_relink(sm, u->ss, u->prev);
        touch(tc, u->ss); /* executors that held its tasks let them go */
        sm->sched_dirty = true;
        break;
    case UNDO_SESSION_STATE:
        u->ss->s->state = u->state;
        sm->sched_dirty = true;
        break;
    case UNDO_SESSION_CLOSE: {
        fl_session *s = u->ss->s;
        /* the tasks it cancelled were Pending, with one event less */
        for (uint32_t i = 0; i < u->n; i++) {
            fl_task *t = u->tasks[i];
            s->counts[t->state]--;
            s->counts[FLAME_TASK_PENDING]++;
            t->state = FLAME_TASK_PENDING;
            t->etime = 0;
            fl_events_truncate(&t->events, t->events.n - 1u);
        }
        free(u->tasks);
        u->tasks = NULL;
        if (u->n)
            touch(tc, u->ss);
        s->state = FLAME_SESSION_OPEN;
        s->etime = u->etime;
        fl_app *a = sm_app_get(sm, s->app);
        if (a)
            a->open_sessions++;
        sm->sched_dirty = true;
        break;
    }
    case UNDO_SESSION_BIND:
        fl_events_truncate(&u->ss->s->events, u->n);
        u->ss->s->bind_failures = u->bind_failures;
        u->ss->s->unschedulable = u->unschedulable;
        sm->sched_dirty = true;
        break;
    case UNDO_TASKS_ADD:
        tasks_unadd(sm, u->ss, u->n, why);
        touch(tc, u->ss);
        break;
    case UNDO_TASK:
        task_restore(u);
        touch(tc, u->ss);
        sm->sched_dirty = true;
        break;
    }
}

void sm_undo(sm_t *sm, const char *why)
{
    char *msg = fl_sprintf("storage commit failed: %s", why);
    touched tc = { 0 };
    sm->undoing = true;
    for (size_t i = sm->njournal; i-- > 0;)
        undo_one(sm, &sm->journal[i], &tc, msg);
    sm->njournal = 0;
    sm->undoing = false;
    for (size_t i = 0; i < tc.n; i++) {
        tc.v[i]->undo_touched = false;
        sm_dispatch_resync(sm, tc.v[i]);
    }
    free(tc.v);
    free(msg);
}
