/* Watching: flame_session_watch (the outcomes of a session's tasks) and
 * flame_task_watch (one task's states), both over a stream that comes back
 * after a session-manager restart (resume.c). The callbacks run on the
 * calling thread; no state is shared between calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

/* Outcomes already given to the callback (a watch that reconnects after a
 * session-manager restart is sent them again). `next` is the lowest id not
 * seen yet: the place to resume from. */
typedef struct seen_set {
    uint64_t base;
    uint64_t next;
    uint8_t *bits;
    size_t nbytes;
} seen_set;

static bool seen_has(const seen_set *x, uint64_t id)
{
    if (id < x->base)
        return true;
    uint64_t k = id - x->base;
    return k / 8 < x->nbytes && (x->bits[k / 8] & (1u << (k % 8)));
}

static bool seen_test_and_set(seen_set *x, uint64_t id)
{
    if (seen_has(x, id))
        return true;
    uint64_t k = id - x->base;
    if (k / 8 >= x->nbytes) {
        size_t n = x->nbytes ? x->nbytes : 1024;
        while (k / 8 >= n)
            n *= 2;
        x->bits = fl_realloc(x->bits, n);
        memset(x->bits + x->nbytes, 0, n - x->nbytes);
        x->nbytes = n;
    }
    x->bits[k / 8] |= (uint8_t)(1u << (k % 8));
    while (seen_has(x, x->next))
        x->next++;
    return false;
}

flame_status flame_session_watch(flame_session *s, uint64_t from_task_id,
                                 flame_session_watch_cb cb, void *payload, int timeout_ms)
{
    if (!s || !cb)
        return fl_client_bad_arg("flame_session_watch", "session and callback are required");
    Flame__V1__WatchSessionRequest r = FLAME__V1__WATCH_SESSION_REQUEST__INIT;
    r.session_id = s->id;
    r.from_task_id = from_task_id ? from_task_id : 1;
    seen_set seen = { r.from_task_id, r.from_task_id, NULL, 0 };
    fl_resumable rs;
    fl_resumable_init(&rs, s->client->ch, FE("WatchSession"), &r.base,
                      &flame__v1__task_outcomes__descriptor, timeout_ms);
    rs.client = s->client;
    rs.session_id = s->id;
    flame_task_outcome *v = NULL;
    size_t cap = 0;
    flame_status rc;
    ProtobufCMessage *m;
    while (!(rc = fl_resumable_next(&rs, &m)) && m) {
        Flame__V1__TaskOutcomes *o = (Flame__V1__TaskOutcomes *)m;
        if (o->n_outcomes > cap) {
            cap = o->n_outcomes;
            v = fl_realloc(v, cap * sizeof *v);
        }
        size_t k = 0;
        for (size_t i = 0; i < o->n_outcomes; i++)
            if (!seen_test_and_set(&seen, o->outcomes[i]->task_id))
                v[k++] = fl_outcome_view(o->outcomes[i]);
        int stop = k ? cb(v, k, payload) : 0;
        protobuf_c_message_free_unpacked(m, NULL);
        if (stop)
            break;
        /* a reopened stream starts past what was reported */
        r.from_task_id = seen.next;
    }
    fl_resumable_close(&rs);
    free(v);
    free(seen.bits);
    if (rc == FLAME_ERR_UNIMPLEMENTED) /* Flame's own server: no WatchSession */
        rc = fl_client_watch_polled(s, r.from_task_id, cb, payload, timeout_ms);
    return rc;
}

flame_status flame_task_watch(flame_session *s, const char *task_id, flame_task_watch_cb cb,
                              void *payload, int timeout_ms)
{
    if (!s || !task_id || !cb)
        return fl_client_bad_arg("flame_task_watch", "session, task id and callback are required");
    Flame__V1__WatchTaskRequest r = FLAME__V1__WATCH_TASK_REQUEST__INIT;
    r.session_id = s->id;
    r.task_id = (char *)task_id;
    char what[128];
    snprintf(what, sizeof what, "WatchTask of task %s", task_id);
    fl_resumable rs;
    fl_resumable_init(&rs, s->client->ch, FE("WatchTask"), &r.base, &flame__v1__task__descriptor,
                      timeout_ms);
    rs.what = what;
    rs.client = s->client;
    rs.session_id = s->id;
    /* the stream ends after the terminal state, which we stop at: an
     * earlier end is a restart, and the callback then sees the current
     * state once more */
    rs.end_is_break = true;
    flame_status rc;
    ProtobufCMessage *m;
    while (!(rc = fl_resumable_next(&rs, &m))) {
        flame_task *t = fl_task_from((Flame__V1__Task *)m);
        protobuf_c_message_free_unpacked(m, NULL);
        int stop = cb(t, payload);
        int terminal = flame_task_state_is_terminal(t->state);
        flame_task_free(t);
        if (terminal)
            break;
        if (stop) {
            rc = fl_error(FLAME_ERR_CANCELLED, "watch of task %s stopped by the callback",
                          task_id);
            break;
        }
    }
    fl_resumable_close(&rs);
    return rc;
}
