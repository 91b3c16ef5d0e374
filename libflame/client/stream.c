/* flame_session_stream: tasks submitted and their outcomes received over
 * one RunSession stream. submit() and next() may run on two threads (rpc/
 * allows one sender and one reader on a stream); each field below is
 * touched by next() only, so no lock. */
#include <stdlib.h>

#include "internal.h"
#include "util/util.h"

struct flame_session_stream {
    rpc_stream *st;
    flame_client *client;            /* for the stuck-session check */
    char *session_id;
    uint64_t acked;
    flame_task_outcome *v;
    size_t cap;
};

flame_status flame_session_stream_open(flame_session_stream **out, flame_session *s)
{
    if (!out || !s)
        return fl_client_bad_arg("flame_session_stream_open", "out and session are required");
    flame_session_stream *x = fl_calloc(1, sizeof *x);
    flame_status st = rpc_bidi_open(&x->st, s->client->ch, FE("RunSession"));
    if (st) {
        free(x);
        return st;
    }
    /* the first message names the session and creates nothing */
    Flame__V1__RunSessionRequest r = FLAME__V1__RUN_SESSION_REQUEST__INIT;
    r.session_id = s->id;
    if ((st = rpc_bidi_send(x->st, &r.base))) {
        rpc_stream_free(x->st);
        free(x);
        return st;
    }
    x->client = s->client;
    x->session_id = fl_strdup(s->id);
    *out = x;
    return FLAME_OK;
}

/* The server's default cluster.limits.max_tasks_per_request. */
#define SUBMIT_MAX_TASKS 1024

static flame_status submit_chunk(flame_session_stream *x, const flame_bytes *inputs, size_t n);

flame_status flame_session_stream_submit(flame_session_stream *x, const flame_bytes *inputs,
                                         size_t n)
{
    if (!x)
        return fl_client_bad_arg("flame_session_stream_submit", "stream is NULL");
    flame_status st = FLAME_OK;
    for (size_t done = 0; done < n && !st; done += SUBMIT_MAX_TASKS)
        st = submit_chunk(x, inputs ? inputs + done : NULL,
                          n - done < SUBMIT_MAX_TASKS ? n - done : SUBMIT_MAX_TASKS);
    return st;
}

static flame_status submit_chunk(flame_session_stream *x, const flame_bytes *inputs, size_t n)
{
    Flame__V1__RunSessionRequest r = FLAME__V1__RUN_SESSION_REQUEST__INIT;
    ProtobufCBinaryData one, *bins = NULL;
    bool all_inputs = inputs != NULL;
    for (size_t i = 0; inputs && i < n; i++)
        all_inputs = all_inputs && inputs[i].data;
    if (all_inputs) {
        bins = n == 1 ? &one : fl_calloc(n, sizeof *bins);
        for (size_t i = 0; i < n; i++) {
            bins[i].data = (uint8_t *)inputs[i].data;
            bins[i].len = inputs[i].len;
        }
        r.n_inputs = n;
        r.inputs = bins;
    } else if (!inputs) {
        r.count = (uint32_t)n;
    } else {
        return fl_client_bad_arg("flame_session_stream_submit", "mixing tasks with and without input");
    }
    flame_status st = rpc_bidi_send(x->st, &r.base);
    if (bins != &one)
        free(bins);
    return st;
}

flame_status flame_session_stream_next(flame_session_stream *x, flame_session_watch_cb cb,
                                       void *payload, uint64_t *acked_upto)
{
    if (!x)
        return fl_client_bad_arg("flame_session_stream_next", "stream is NULL");
    ProtobufCMessage *m;
    bool idle;
    flame_status st;
    while (!(st = rpc_stream_next_timed(x->st, &flame__v1__task_outcomes__descriptor, &m,
                                        FL_STUCK_CHECK_MS, &idle)) && idle) {
        flame_status stuck = fl_session_stuck(x->client, x->session_id);
        if (stuck)
            return stuck;
    }
    if (st)
        return st;
    if (!m)
        return fl_error(FLAME_ERR_CANCELLED, "RunSession: the stream has ended");
    Flame__V1__TaskOutcomes *o = (Flame__V1__TaskOutcomes *)m;
    if (o->created_count && o->created_first + o->created_count - 1 > x->acked)
        x->acked = o->created_first + o->created_count - 1;
    if (acked_upto)
        *acked_upto = x->acked;
    if (o->n_outcomes && cb) {
        if (o->n_outcomes > x->cap) {
            x->cap = o->n_outcomes;
            x->v = fl_realloc(x->v, x->cap * sizeof *x->v);
        }
        for (size_t i = 0; i < o->n_outcomes; i++)
            x->v[i] = fl_outcome_view(o->outcomes[i]);
        cb(x->v, o->n_outcomes, payload);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return FLAME_OK;
}

void flame_session_stream_close(flame_session_stream *x)
{
    if (!x)
        return;
    rpc_bidi_close_send(x->st);
    rpc_stream_cancel(x->st);
    rpc_stream_free(x->st);
    free(x->session_id);
    free(x->v);
    free(x);
}
