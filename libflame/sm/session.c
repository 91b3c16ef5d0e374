/* Sessions: the books (by id and in creation order), creating, closing and
 * deleting them, and what each of those means for watchers and executors. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sm.h"

/* Puts ss in the books after prev (NULL: first). */
static void link_session(sm_t *sm, sm_session *ss, sm_session *prev)
{
    ss->prev = prev;
    ss->next = prev ? prev->next : sm->first;
    if (ss->next)
        ss->next->prev = ss;
    else
        sm->last = ss;
    if (prev)
        prev->next = ss;
    else
        sm->first = ss;
    fl_map_put(&sm->sessions, ss->s->id, ss);
    fl_app *a = fl_map_get(&sm->apps, ss->s->app);
    if (a && ss->s->state != FLAME_SESSION_CLOSED) /* suspended ones are open */
        a->open_sessions++;
}

void sm_session_add(sm_t *sm, fl_session *s)
{
    sm_session *ss = fl_calloc(1, sizeof *ss);
    ss->s = s;
    if (!s->seq)
        s->seq = sm->next_seq;
    if (s->seq >= sm->next_seq)
        sm->next_seq = s->seq + 1;
    link_session(sm, ss, sm->last);
}

void sm_session_relink(sm_t *sm, sm_session *ss, sm_session *prev)
{
    link_session(sm, ss, prev);
}

/* Takes ss out of the books; its executors and watchers let go of it. */
static void unlink_session(sm_t *sm, sm_session *ss, int code, const char *why)
{
    fl_session *s = ss->s;
    sm_exec_detach_session(sm, ss);
    sm_swatch_drop_all(sm, ss, code, why);
    for (uint32_t i = 0; i < s->ntasks; i++)
        if (s->tasks[i])
            sm_watch_task_drop_all(sm, s->tasks[i], code, why);
    fl_app *a = fl_map_get(&sm->apps, s->app);
    if (a && s->state != FLAME_SESSION_CLOSED && a->open_sessions)
        a->open_sessions--;
    fl_map_del(&sm->sessions, s->id);
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        sm->first = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    else
        sm->last = ss->prev;
}

void sm_session_delete(sm_t *sm, sm_session *ss)
{
    fl_store_del_session(sm->store, ss->s->id);
    sm_journal_session_deleted(sm, ss); /* keeps ss until the commit */
    unlink_session(sm, ss, RPC_NOT_FOUND, "the session was deleted");
}

void sm_session_discard(sm_t *sm, sm_session *ss, int code, const char *why)
{
    unlink_session(sm, ss, code, why);
    sm_session_free(sm, ss);
}

void sm_sessions_free(sm_t *sm)
{
    for (sm_session *ss = sm->first, *next; ss; ss = next) {
        next = ss->next;
        sm_session_free(sm, ss);
    }
    sm->first = sm->last = NULL;
    fl_map_free(&sm->sessions);
}

static uint64_t rng_state;

static void random_suffix(char *out, size_t n)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (!rng_state)
        rng_state = (uint64_t)fl_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i + 1 < n; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        out[i] = al[rng_state % (sizeof al - 1)];
    }
    out[n - 1] = 0;
}

flame_status sm_session_check_spec(sm_t *sm, const fl_session_spec *spec)
{
    if (!spec)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "a session spec is required");
    fl_app *a = fl_map_get(&sm->apps, spec->application);
    if (!a)
        return fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", spec->application);
    if (a->state != FLAME_APPLICATION_ENABLED)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "application %s is disabled",
                        spec->application);
    if (spec->n_tokens > FL_MAX_TOKENS)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "a session takes at most %d tokens (%zu given)",
                        FL_MAX_TOKENS, spec->n_tokens);
    if (spec->has_max_instances && spec->max_instances < spec->min_instances)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "max_instances (%u) is smaller than min_instances (%u)",
                        spec->max_instances, spec->min_instances);
    return FLAME_OK;
}

flame_status sm_session_check_new_id(sm_t *sm, const char *id)
{
    const char *why;
    if (id && *id) {
        if (!fl_name_valid(id, &why))
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "invalid session id \"%.64s\": it %s", id,
                            why);
        if (fl_map_get(&sm->sessions, id))
            return fl_error(FLAME_ERR_ALREADY_EXISTS, "session %s already exists", id);
    }
    return FLAME_OK;
}

fl_session *sm_session_create(sm_t *sm, const char *want_id, const fl_session_spec *spec,
                              const char *owner)
{
    char id[300];
    if (want_id && *want_id) {
        snprintf(id, sizeof id, "%s", want_id);
    } else {
        do {
            char sfx[7];
            random_suffix(sfx, sizeof sfx);
            snprintf(id, sizeof id, "%.200s-%s", spec->application, sfx);
        } while (fl_map_get(&sm->sessions, id));
    }
    fl_session *s = fl_session_new(id, spec, &sm->default_resreq, fl_now_ms());
    free(s->owner);
    s->owner = fl_strdup(owner ? owner : "");
    sm_session_add(sm, s);
    sm_journal_session_added(sm, sm->last);
    fl_store_put_session(sm->store, s);
    fl_log(FL_LOG_DEBUG, "sm", "session %s created by %s", s->id, s->owner);
    return s;
}

flame_status sm_session_close(sm_t *sm, sm_session *ss)
{
    fl_session *s = ss->s;
    bool was_open = s->state != FLAME_SESSION_CLOSED;
    int64_t etime = s->etime;
    fl_task **changed;
    size_t n;
    /* Flame's answer, code and words (its InvalidState for this is
     * mapped to INTERNAL); closing a Closed session is a no-op */
    if (was_open && s->counts[FLAME_TASK_RUNNING] > 0)
        return fl_error(FLAME_ERR_INTERNAL, "Cannot close session with running tasks (session %s "
                        "has %d running; close it after they complete)", s->id,
                        s->counts[FLAME_TASK_RUNNING]);
    flame_status st = fl_session_close(s, fl_now_ms(), &changed, &n);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        sm_task_finished(sm, ss, changed[i]);
    if (was_open)
        sm_journal_session_closed(sm, ss, etime, changed, n);
    else
        free(changed);
    sm_swatch_end_done(sm, ss);
    if (was_open) {
        sm->sched_dirty = true;
        fl_app *a = fl_map_get(&sm->apps, s->app);
        if (a && a->open_sessions)
            a->open_sessions--;
        fl_store_put_session(sm->store, s);
    }
    return FLAME_OK;
}

/* ---- Flame 0.7: suspend and resume ---------------------------------------- */

static void session_state_changed(sm_t *sm, sm_session *ss, int before)
{
    if (ss->s->state == before)
        return;
    fl_store_put_session(sm->store, ss->s);
    sm->sched_dirty = true;
    fl_log(FL_LOG_DEBUG, "sm", "session %s: %s -> %s", ss->s->id,
           flame_session_state_str(before), flame_session_state_str(ss->s->state));
}

flame_status sm_session_suspend(sm_t *sm, sm_session *ss)
{
    int before = ss->s->state;
    bool held = false;
    size_t it = 0;
    void *v;
    while (!held && fl_map_next(&sm->execs, &it, NULL, &v))
        held = ((sm_exec *)v)->sess == ss;
    sm_journal_session_state(sm, ss);
    flame_status st = fl_session_suspend(ss->s, held);
    if (!st)
        session_state_changed(sm, ss, before);
    return st;
}

flame_status sm_session_resume(sm_t *sm, sm_session *ss)
{
    int before = ss->s->state;
    sm_journal_session_state(sm, ss);
    flame_status st = fl_session_resume(ss->s);
    if (!st && before != ss->s->state) {
        session_state_changed(sm, ss, before);
        sm_dispatch(sm, ss); /* its Pending tasks may go out again */
    }
    return st;
}

void sm_session_suspend_check(sm_t *sm, sm_session *ss)
{
    if (ss->s->state != FLAME_SESSION_SUSPENDING || ss->held ||
        ss->s->counts[FLAME_TASK_RUNNING])
        return;
    sm_journal_session_state(sm, ss);
    fl_session_suspend_done(ss->s, false);
    session_state_changed(sm, ss, FLAME_SESSION_SUSPENDING);
}
