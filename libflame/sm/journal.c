/* The journal: every change a batch makes to the books (applications,
 * sessions, tasks), recorded before it is made, so that a batch whose
 * commit fails can be undone (undo.c) and memory matches the disk again.
 * What a batch deleted or replaced stays alive here until its commit.
 * Engine thread only. */
#include <stdlib.h>

#include "sm.h"

static sm_change *record(sm_t *sm, int kind)
{
    if (sm->undoing)
        return NULL;
    if (sm->njournal == sm->capjournal) {
        sm->capjournal = sm->capjournal ? sm->capjournal * 2 : 64;
        sm->journal = fl_realloc(sm->journal, sm->capjournal * sizeof *sm->journal);
    }
    sm_change *u = &sm->journal[sm->njournal++];
    *u = (sm_change){ .kind = kind };
    return u;
}

void sm_journal_app_added(sm_t *sm, fl_app *a)
{
    sm_change *u = record(sm, UNDO_APP_ADD);
    if (u)
        u->app = a;
}

/* Replaced and deleted applications are freed here when not journaled. */
static void keep_app(sm_t *sm, int kind, fl_app *a)
{
    sm_change *u = record(sm, kind);
    if (u)
        u->app = a;
    else
        fl_app_free(a);
}

void sm_journal_app_replaced(sm_t *sm, fl_app *old)
{
    keep_app(sm, UNDO_APP_REPLACE, old);
}

void sm_journal_app_deleted(sm_t *sm, fl_app *a)
{
    keep_app(sm, UNDO_APP_DEL, a);
}

void sm_journal_session_added(sm_t *sm, sm_session *ss)
{
    sm_change *u = record(sm, UNDO_SESSION_ADD);
    if (u)
        u->ss = ss;
}

void sm_journal_session_deleted(sm_t *sm, sm_session *ss)
{
    sm_change *u = record(sm, UNDO_SESSION_DEL);
    if (!u) {
        sm_session_free(sm, ss);
        return;
    }
    u->ss = ss;
    u->prev = ss->prev;
}

void sm_journal_session_closed(sm_t *sm, sm_session *ss, int64_t etime, fl_task **cancelled,
                               size_t n)
{
    sm_change *u = record(sm, UNDO_SESSION_CLOSE);
    if (!u) {
        free(cancelled);
        return;
    }
    u->ss = ss;
    u->etime = etime;
    u->tasks = cancelled; /* one pointer per task: a close may cancel millions */
    u->n = (uint32_t)n;
}

void sm_journal_session_state(sm_t *sm, sm_session *ss)
{
    sm_change *u = record(sm, UNDO_SESSION_STATE);
    if (u) {
        u->ss = ss;
        u->state = (uint8_t)ss->s->state;
    }
}

void sm_journal_session_bind(sm_t *sm, sm_session *ss)
{
    sm_change *u = record(sm, UNDO_SESSION_BIND);
    if (u) {
        u->ss = ss;
        u->n = ss->s->events.n;
        u->bind_failures = ss->s->bind_failures;
        u->unschedulable = ss->s->unschedulable;
    }
}

void sm_journal_tasks_added(sm_t *sm, sm_session *ss)
{
    sm_change *u = record(sm, UNDO_TASKS_ADD);
    if (u) {
        u->ss = ss;
        u->n = ss->s->ntasks;
    }
}

void sm_journal_task(sm_t *sm, sm_session *ss, fl_task *t, bool output)
{
    sm_change *u = record(sm, UNDO_TASK);
    if (!u) {
        if (output) {
            free(t->output);
            t->output = NULL;
        }
        return;
    }
    u->ss = ss;
    u->t = t;
    u->state = t->state;
    u->etime = t->etime;
    u->n = t->events.n;
    u->took_output = output;
    if (output) {
        u->has_output = t->has_output;
        u->output_len = t->output_len;
        u->output = t->output;
        t->output = NULL;
    }
}

void sm_journal_clear(sm_t *sm)
{
    /* oldest first: a task's entry comes before its session's deletion */
    for (size_t i = 0; i < sm->njournal; i++) {
        sm_change *u = &sm->journal[i];
        switch (u->kind) {
        case UNDO_APP_REPLACE:
        case UNDO_APP_DEL:
            fl_app_free(u->app);
            break;
        case UNDO_SESSION_DEL:
            sm_session_free(sm, u->ss);
            break;
        case UNDO_TASK:
            free(u->output);
            break;
        case UNDO_SESSION_CLOSE:
            free(u->tasks);
            break;
        default:
            break;
        }
    }
    sm->njournal = 0;
    if (sm->capjournal > 4096) { /* a huge batch does not keep its room */
        free(sm->journal);
        sm->journal = NULL;
        sm->capjournal = 0;
    }
}

void sm_session_free(sm_t *sm, sm_session *ss)
{
    fl_session_free(ss->s);
    sm_dispatch_drop_queue(sm, ss);
    free(ss);
}
