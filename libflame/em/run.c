/* Running a bound session's tasks: the ExecutorStream with the session
 * manager, a queue of the tasks it pushed ahead (the window), and running
 * them on the shim one by one or in batches.
 * Threads: runs on its executor's thread only; the stream is published
 * through em_exec_set_stream so that teardown can cancel it. */
#include <stdlib.h>
#include <string.h>

#include "em.h"
#include "util/util.h"

/* Prefetch: the session manager may push this many tasks ahead, so the
 * service never waits on a round trip. Services that take batches get
 * bigger windows and run INVOKE_BATCH tasks per call; the others run one
 * at a time, each outcome reported at once. */
#define WINDOW_SINGLE 2
#define WINDOW_BATCH 256
#define INVOKE_BATCH 64

typedef struct qtask {
    char *id;
    uint8_t *input;
    size_t len;
    bool has_input;
} qtask;

typedef struct runq {
    qtask *v;
    size_t head, len, cap;
} runq;

static void runq_push(runq *q, const Flame__V1__Task *t)
{
    if (q->head + q->len == q->cap) {
        if (q->head) {
            memmove(q->v, q->v + q->head, q->len * sizeof *q->v);
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 256;
            q->v = fl_realloc(q->v, q->cap * sizeof *q->v);
        }
    }
    qtask *x = &q->v[q->head + q->len++];
    x->id = fl_strdup(t->metadata ? t->metadata->id : "");
    x->has_input = t->spec && t->spec->_input_case;
    x->len = x->has_input ? t->spec->input.len : 0;
    x->input = x->len ? fl_memdup(t->spec->input.data, x->len) : NULL;
}

static void runq_pop(runq *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q->v[q->head + i].id);
        free(q->v[q->head + i].input);
    }
    q->head += n;
    q->len -= n;
    if (!q->len)
        q->head = 0;
}

static void set_outcome(Flame__V1__TaskOutcome *o, const qtask *t, int rc,
                        const flame_task_result *res, const char *msg)
{
    flame__v1__task_outcome__init(o);
    o->task_id = strtoull(t->id, NULL, 10);
    o->state = rc == 0 ? FLAME__V1__TASK_STATE__Succeed : FLAME__V1__TASK_STATE__Failed;
    o->return_code = rc;
    if (res && res->has_output) {
        o->_output_case = FLAME__V1__TASK_OUTCOME___OUTPUT_OUTPUT;
        o->output.data = res->output;
        o->output.len = res->output_len;
    }
    const char *m = msg ? msg : res ? res->message : NULL;
    if (m) {
        o->_message_case = FLAME__V1__TASK_OUTCOME___MESSAGE_MESSAGE;
        o->message = (char *)m;
    }
}

/* One bound session being run: its stream, the tasks pushed ahead, and
 * the buffers of one call's outcomes. */
typedef struct session_run {
    em_exec *x;
    fl_shim *shim;
    const fl_shim_session *ctx;
    rpc_stream *st;
    runq q;
    bool unbind;  /* no more work will come: finish the queue, then stop */
    bool dead;    /* the service is gone and could not be restarted */
    int batching; /* -1: one task per call; 0: not known yet; 1: batches */
    Flame__V1__ExecutorUpdate up;
    Flame__V1__TaskOutcome out[INVOKE_BATCH];
    Flame__V1__TaskOutcome *outp[INVOKE_BATCH];
    flame_task_result res[INVOKE_BATCH];
    char *msgs[INVOKE_BATCH];
} session_run;

/* Starts a new service process after the last one died; false (the
 * executor is dead) if it does not come up. */
static bool restart(session_run *r)
{
    char *why = NULL;
    if (r->shim->ops->enter(r->shim, r->ctx, &why) == FLAME_OK)
        return true;
    fl_log(FL_LOG_WARN, "em", "executor %s: cannot restart the service: %s", r->x->id,
           why ? why : "");
    free(why);
    r->dead = true;
    return false;
}

/* Runs q[0..n) on the shim, in one batch when the service takes them, else
 * one by one. Fills r->out; returns how many ran (all, unless the service
 * died and could not be restarted). */
static size_t run_tasks(session_run *r, const qtask *q, size_t n)
{
    fl_shim *shim = r->shim;
    flame_task_context *tc = fl_calloc(n, sizeof *tc);
    int *rcs = fl_calloc(n, sizeof *rcs);
    for (size_t i = 0; i < n; i++) {
        tc[i].task_id = q[i].id;
        tc[i].session_id = r->ctx->session_id;
        if (q[i].has_input) {
            tc[i].input.data = q[i].input ? q[i].input : (const uint8_t *)"";
            tc[i].input.len = q[i].len;
        }
    }
    size_t done = 0;
    char *msg = NULL;
    flame_status st = FLAME_ERR_UNIMPLEMENTED;
    if (shim->ops->invoke_batch && n > 1 && r->batching >= 0)
        st = shim->ops->invoke_batch(shim, tc, n, rcs, r->res, &msg);
    if (st == FLAME_ERR_UNIMPLEMENTED && n > 1)
        r->batching = -1;
    if (st == FLAME_OK) {
        r->batching = 1;
        for (; done < n; done++)
            set_outcome(&r->out[done], &q[done], rcs[done], &r->res[done], NULL);
        goto out;
    }
    if (st != FLAME_ERR_UNIMPLEMENTED) {
        /* the batch died with the service: restart it and run them one by
         * one, so that only the task that kills it fails */
        fl_log(FL_LOG_WARN, "em", "executor %s: %s", r->x->id, msg ? msg : "");
        free(msg);
        if (!restart(r))
            goto out;
    }
    for (; done < n; done++) {
        int rc = 0;
        msg = NULL;
        if (shim->ops->invoke(shim, &tc[done], &rc, &r->res[done], &msg) == FLAME_OK) {
            set_outcome(&r->out[done], &q[done], rc, &r->res[done], NULL);
            continue;
        }
        /* the service crashed or hung: this task fails, a new process takes
         * the next ones */
        fl_log(FL_LOG_WARN, "em", "executor %s: %s", r->x->id, msg);
        r->msgs[done] = msg;
        set_outcome(&r->out[done], &q[done], 1, NULL, msg);
        if (!restart(r)) {
            done++;
            break;
        }
    }
out:
    free(tc);
    free(rcs);
    return done;
}

/* Waits for the session manager's next message: tasks for the queue, and
 * perhaps the unbind. */
static flame_status take_work(session_run *r)
{
    ProtobufCMessage *m;
    flame_status rc = rpc_stream_next(r->st, &flame__v1__executor_work__descriptor, &m);
    if (rc)
        return rc;
    if (!m) { /* ended by the session manager: like unbind */
        r->unbind = true;
        return FLAME_OK;
    }
    Flame__V1__ExecutorWork *w = (Flame__V1__ExecutorWork *)m;
    for (size_t i = 0; i < w->n_tasks; i++)
        runq_push(&r->q, w->tasks[i]);
    r->unbind = r->unbind || w->unbind;
    protobuf_c_message_free_unpacked(m, NULL);
    return FLAME_OK;
}

/* Runs the head of the queue and sends the outcomes with as much new
 * credit as tasks left the window. */
static flame_status run_and_report(session_run *r)
{
    size_t k = r->batching < 0 ? 1 : r->q.len < INVOKE_BATCH ? r->q.len : INVOKE_BATCH;
    int was = r->batching;
    size_t done = run_tasks(r, r->q.v + r->q.head, k);
    for (size_t i = 0; i < done; i++)
        r->outp[i] = &r->out[i];
    r->up.n_outcomes = done;
    r->up.outcomes = r->outp;
    r->up.credit = r->dead ? 0 : (uint32_t)done;
    if (was == 0 && r->batching == 1) /* it takes batches: widen the window */
        r->up.credit += WINDOW_BATCH - WINDOW_SINGLE;
    flame_status rc = rpc_bidi_send(r->st, &r->up.base);
    for (size_t i = 0; i < k; i++) {
        fl_task_result_clear(&r->res[i]);
        free(r->msgs[i]);
        r->msgs[i] = NULL;
    }
    runq_pop(&r->q, r->dead ? r->q.len : done); /* what it could not run runs elsewhere */
    return rc;
}

/* A clean end: a dead executor asks to be unbound; then half-close and
 * wait for the session manager's end of the stream. */
static flame_status finish(session_run *r)
{
    flame_status rc = FLAME_OK;
    if (r->dead) {
        Flame__V1__UnbindExecutorRequest ur = FLAME__V1__UNBIND_EXECUTOR_REQUEST__INIT;
        ur.executor_id = r->x->id;
        rc = em_exec_call(r->x, EM_BE("UnbindExecutor"), &ur.base, NULL, NULL,
                          EM_CALL_TIMEOUT_MS);
    }
    if (!rc) {
        rpc_bidi_close_send(r->st);
        ProtobufCMessage *m;
        while (rpc_stream_next(r->st, &flame__v1__executor_work__descriptor, &m) == FLAME_OK && m)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    return rc;
}

flame_status em_run_session(em_exec *x, fl_shim *shim, const fl_shim_session *ctx)
{
    rpc_stream *st;
    flame_status rc = rpc_bidi_open(&st, x->em->ch, EM_BE("ExecutorStream"));
    if (rc)
        return rc;
    em_exec_set_stream(x, st);
    session_run *r = fl_calloc(1, sizeof *r);
    r->x = x;
    r->shim = shim;
    r->ctx = ctx;
    r->st = st;
    r->batching = shim->ops->invoke_batch ? 0 : -1;
    flame__v1__executor_update__init(&r->up);
    r->up.executor_id = x->id;
    r->up.credit = WINDOW_SINGLE;
    rc = rpc_bidi_send(st, &r->up.base);
    while (!rc) {
        if (r->q.len)
            rc = run_and_report(r);
        else if (r->unbind || r->dead)
            break;
        else
            rc = take_work(r);
    }
    if (!rc)
        rc = finish(r);
    em_exec_set_stream(x, NULL);
    rpc_stream_free(st);
    runq_pop(&r->q, r->q.len);
    free(r->q.v);
    free(r);
    return rc;
}
