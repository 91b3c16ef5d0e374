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

/* Runs tasks[0..n) on the shim. Fills outcomes; returns how many ran (all,
 * unless the service died and could not be restarted). */
static size_t run_tasks(em_exec *x, fl_shim *shim, const fl_shim_session *ctx, const qtask *q,
                        size_t n, Flame__V1__TaskOutcome *out, flame_task_result *res,
                        char **msgs, bool *dead, int *batching)
{
    flame_task_context *tc = fl_calloc(n, sizeof *tc);
    int *rcs = fl_calloc(n, sizeof *rcs);
    for (size_t i = 0; i < n; i++) {
        tc[i].task_id = q[i].id;
        tc[i].session_id = ctx->session_id;
        if (q[i].has_input) {
            tc[i].input.data = q[i].input ? q[i].input : (const uint8_t *)"";
            tc[i].input.len = q[i].len;
        }
    }
    size_t done = 0;
    *dead = false;
    char *msg = NULL;
    flame_status st = FLAME_ERR_UNIMPLEMENTED;
    if (shim->ops->invoke_batch && n > 1 && *batching >= 0)
        st = shim->ops->invoke_batch(shim, tc, n, rcs, res, &msg);
    if (st == FLAME_ERR_UNIMPLEMENTED && n > 1)
        *batching = -1;
    if (st == FLAME_OK) {
        *batching = 1;
        for (; done < n; done++)
            set_outcome(&out[done], &q[done], rcs[done], &res[done], NULL);
    } else {
        if (st != FLAME_ERR_UNIMPLEMENTED) {
            /* the batch died with the service: restart it and run them one
             * by one, so that only the task that kills it fails */
            fl_log(FL_LOG_WARN, "em", "executor %s: %s", x->id, msg ? msg : "");
            free(msg);
            msg = NULL;
            if (shim->ops->enter(shim, ctx, &msg) != FLAME_OK) {
                fl_log(FL_LOG_WARN, "em", "executor %s: cannot restart the service: %s", x->id,
                       msg ? msg : "");
                free(msg);
                *dead = true;
                goto out;
            }
        }
        for (; done < n; done++) {
            int rc = 0;
            msg = NULL;
            if (shim->ops->invoke(shim, &tc[done], &rc, &res[done], &msg) == FLAME_OK) {
                set_outcome(&out[done], &q[done], rc, &res[done], NULL);
                continue;
            }
            /* the service crashed or hung: this task fails, a new process
             * takes the next ones */
            fl_log(FL_LOG_WARN, "em", "executor %s: %s", x->id, msg);
            msgs[done] = msg;
            set_outcome(&out[done], &q[done], 1, NULL, msg);
            char *why = NULL;
            if (shim->ops->enter(shim, ctx, &why) != FLAME_OK) {
                fl_log(FL_LOG_WARN, "em", "executor %s: cannot restart the service: %s", x->id,
                       why ? why : "");
                free(why);
                *dead = true;
                done++;
                goto out;
            }
        }
    }
out:
    free(tc);
    free(rcs);
    return done;
}

flame_status em_run_session(em_exec *x, fl_shim *shim, const fl_shim_session *ctx)
{
    rpc_stream *st;
    flame_status rc = rpc_bidi_open(&st, x->em->ch, EM_BE("ExecutorStream"));
    if (rc)
        return rc;
    em_exec_set_stream(x, st);
    Flame__V1__ExecutorUpdate up = FLAME__V1__EXECUTOR_UPDATE__INIT;
    up.executor_id = x->id;
    up.credit = WINDOW_SINGLE;
    int batching = shim->ops->invoke_batch ? 0 : -1; /* 0: not known yet */
    rc = rpc_bidi_send(st, &up.base);
    runq q = { 0 };
    bool unbind = false, dead = false;
    Flame__V1__TaskOutcome *out = fl_calloc(INVOKE_BATCH, sizeof *out);
    Flame__V1__TaskOutcome **outp = fl_calloc(INVOKE_BATCH, sizeof *outp);
    flame_task_result *res = fl_calloc(INVOKE_BATCH, sizeof *res);
    char **msgs = fl_calloc(INVOKE_BATCH, sizeof *msgs);
    while (!rc) {
        if (!q.len) {
            if (unbind || dead)
                break;
            ProtobufCMessage *m;
            rc = rpc_stream_next(st, &flame__v1__executor_work__descriptor, &m);
            if (rc || !m)
                break; /* ended by the session manager: like unbind */
            Flame__V1__ExecutorWork *w = (Flame__V1__ExecutorWork *)m;
            for (size_t i = 0; i < w->n_tasks; i++)
                runq_push(&q, w->tasks[i]);
            unbind = unbind || w->unbind;
            protobuf_c_message_free_unpacked(m, NULL);
            continue;
        }
        size_t k = batching < 0 ? 1 : q.len < INVOKE_BATCH ? q.len : INVOKE_BATCH;
        int was = batching;
        size_t done = run_tasks(x, shim, ctx, q.v + q.head, k, out, res, msgs, &dead, &batching);
        for (size_t i = 0; i < done; i++)
            outp[i] = &out[i];
        up.n_outcomes = done;
        up.outcomes = outp;
        up.credit = dead ? 0 : (uint32_t)done;
        if (was == 0 && batching == 1) /* it takes batches: widen the window */
            up.credit += WINDOW_BATCH - WINDOW_SINGLE;
        rc = rpc_bidi_send(st, &up.base);
        for (size_t i = 0; i < k; i++) {
            fl_task_result_clear(&res[i]);
            free(msgs[i]);
            msgs[i] = NULL;
        }
        runq_pop(&q, dead ? q.len : done); /* what it could not run runs elsewhere */
    }
    if (dead && !rc) {
        Flame__V1__UnbindExecutorRequest ur = FLAME__V1__UNBIND_EXECUTOR_REQUEST__INIT;
        ur.executor_id = x->id;
        rc = em_exec_call(x, EM_BE("UnbindExecutor"), &ur.base, NULL, NULL, EM_CALL_TIMEOUT_MS);
    }
    if (!rc) { /* half-close, then wait for the session manager's end */
        rpc_bidi_close_send(st);
        ProtobufCMessage *m;
        while (rpc_stream_next(st, &flame__v1__executor_work__descriptor, &m) == FLAME_OK && m)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    em_exec_set_stream(x, NULL);
    rpc_stream_free(st);
    runq_pop(&q, q.len);
    free(q.v);
    free(out);
    free(outp);
    free(res);
    free(msgs);
    return rc;
}
