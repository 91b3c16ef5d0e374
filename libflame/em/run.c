/* Running a bound session's tasks: the ExecutorStream with the session
 * manager, a queue of the tasks it pushed ahead (the window), and running
 * them on the shim one by one or in batches. A task is reported started
 * (Running) only when the service gets it; until then the session manager
 * may take it back (revoke) for an idle executor. Where tasks take less than
 * QUIET_START_US, their start is reported with their outcomes, in one
 * message instead of two; it is reported at once when the session manager
 * asks for one of them back, and QUIET_START_MAX_MS after it at the latest
 * (10 times that right after the tasks became quick).
 * Threads: the executor's thread runs the tasks and sends their outcomes;
 * whichever of it and the session's reader thread holds the read (r->reading)
 * takes ExecutorWork off the stream. The executor's thread reads while it has
 * nothing to run, sending its last outcomes and posting the read in one batch
 * (no thread hop before a task, and gRPC's flow-control update rides in that
 * write); the reader thread reads while a batch runs, so that a revoke is
 * answered while a long task runs: at once for tasks known to take time, and
 * once a quick batch has run for QUIET_START_MAX_MS. r->mu guards the queue,
 * the window counters and the read's owner; r->send_mu serialises the two
 * threads' sends (the reader holds it while it takes unreported starts, so
 * that a start always goes out before its outcome; lock order send_mu, then
 * mu); while the executor's thread holds the read, the reader thread sends
 * nothing (its batch may still be sending). The stream is published through
 * em_exec_set_stream so that teardown can cancel it, which also ends the
 * reads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "em.h"
#include "util/util.h"

/* The window: how many tasks the session manager may hand this executor
 * ahead of time (queued + running). It adapts to how long tasks take: fast
 * tasks run in batches (one OnTaskInvokeBatch of about BATCH_TARGET_US)
 * with a window of a few batches, so the service never waits on a round
 * trip; tasks that take time run one at a time with one task queued
 * behind, which an idle executor of the session can still take back. A
 * service without OnTaskInvokeBatch (flamepy's) gets the fast tasks' window
 * too, one task per call. */
#define WINDOW_SINGLE 2
#define WINDOW_BATCH 256
#define INVOKE_BATCH 64
#define BATCH_TARGET_US 2000
#define QUIET_START_US 200
#define QUIET_START_MAX_MS 20
/* how long the executor's thread waits in one read before it looks again */
#define EXEC_READ_MS 1000

enum { READ_NONE, READ_EXEC, READ_READER };

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

/* One bound session being run: its stream, the tasks pushed ahead, the
 * window, and the buffers of one call's outcomes. */
typedef struct session_run {
    em_exec *x;
    fl_shim *shim;
    const fl_shim_session *ctx;
    rpc_stream *st;
    pthread_mutex_t mu, send_mu;
    pthread_cond_t cv;  /* the executor's thread waits here */
    pthread_cond_t rcv; /* the reader thread waits here */
    /* under mu */
    runq q;            /* pushed ahead, not started */
    uint32_t running;  /* tasks of the batch being run */
    uint64_t granted;  /* credit given in all */
    uint64_t received; /* tasks received + tasks given back */
    uint32_t window;
    bool quiet;        /* tasks are quick: report starts with the outcomes */
    uint64_t unreported[INVOKE_BATCH]; /* started, not reported yet */
    size_t nunreported;
    bool unbind;       /* no more work will come: finish the queue, then stop */
    bool ended;        /* the stream ended or broke: stop */
    int reading;       /* READ_*: who holds the stream's read */
    bool handoff;      /* a batch of tasks that take time runs: the reader reads */
    bool closing;      /* the executor's thread is done: the reader reads to the end */
    uint64_t batch_seq; /* batches taken (the reader tells a long one by it) */
    /* the executor's thread only */
    bool dead;         /* the service is gone and could not be restarted */
    int batching;      /* -1: one task per call; 0: not known yet; 1: batches */
    double avg_us;     /* how long a task takes (moving average), 0: not known */
    Flame__V1__ExecutorUpdate up;
    bool up_due;       /* up carries something to send */
    qtask batch[INVOKE_BATCH];
    uint64_t started[2 * INVOKE_BATCH];
    Flame__V1__TaskOutcome out[INVOKE_BATCH];
    Flame__V1__TaskOutcome *outp[INVOKE_BATCH];
    flame_task_result res[INVOKE_BATCH];
    char *msgs[INVOKE_BATCH];
    size_t nout;       /* outcomes in out[] not sent yet */
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
    if (shim->ops->invoke_batch && n > 1 && r->batching >= 0) {
        int64_t t0 = fl_mono_ns();
        st = shim->ops->invoke_batch(shim, tc, n, rcs, r->res, &msg);
        em_metrics_shim(EM_SHIM_INVOKE_BATCH, fl_mono_ns() - t0);
    }
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
        int64_t t0 = fl_mono_ns();
        st = shim->ops->invoke(shim, &tc[done], &rc, &r->res[done], &msg);
        em_metrics_shim(EM_SHIM_INVOKE, fl_mono_ns() - t0);
        if (st == FLAME_OK) {
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

/* Credit that brings queued + running + still grantable up to the window
 * (under r->mu), once they are down to half of it: a service that takes
 * tasks one per call sends an update per task, and the session manager
 * answers a grant of several with one ExecutorWork rather than one each. */
static uint32_t new_credit(session_run *r)
{
    uint64_t avail = r->granted > r->received ? r->granted - r->received : 0;
    uint64_t used = r->q.len + r->running + avail;
    uint32_t c = used < r->window && used <= r->window / 2 ? (uint32_t)(r->window - used) : 0;
    r->granted += c;
    return c;
}

static flame_status send_update(session_run *r, Flame__V1__ExecutorUpdate *up)
{
    pthread_mutex_lock(&r->send_mu);
    flame_status rc = rpc_bidi_send(r->st, &up->base);
    pthread_mutex_unlock(&r->send_mu);
    return rc;
}

/* Takes the revoked tasks still queued out of the queue; their ids go to
 * out. Returns how many. */
static size_t runq_revoke(runq *q, const uint64_t *ids, size_t n, uint64_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < q->len; j++) {
            qtask *t = &q->v[q->head + j];
            if (strtoull(t->id, NULL, 10) != ids[i])
                continue;
            out[k++] = ids[i];
            free(t->id);
            free(t->input);
            memmove(t, t + 1, (q->len - j - 1) * sizeof *t);
            q->len--;
            break;
        }
    return k;
}

/* Reports the starts not reported yet, with what else up carries (under
 * send_mu, so that they go out before the executor's thread sends these
 * tasks' outcomes). */
static void report_unreported(session_run *r, Flame__V1__ExecutorUpdate *up, uint64_t *ids)
{
    pthread_mutex_lock(&r->mu);
    bool quiet = r->reading == READ_EXEC; /* its batch may still be sending */
    size_t n = quiet ? 0 : r->nunreported;
    memcpy(ids, r->unreported, n * sizeof *ids);
    r->nunreported -= n;
    pthread_mutex_unlock(&r->mu);
    up->n_started = n;
    up->started = ids;
    if (!quiet && (n || up->n_returned))
        rpc_bidi_send(r->st, &up->base);
}

/* One ExecutorWork into the queue; revoked tasks not yet started go back
 * at once. By whichever thread holds the read. */
static void take_work(session_run *r, const Flame__V1__ExecutorWork *w, uint64_t *ids)
{
    uint64_t *back = w->n_revoke ? fl_calloc(w->n_revoke, sizeof *back) : NULL;
    if (w->n_revoke) /* held until the answer is out (see report_unreported) */
        pthread_mutex_lock(&r->send_mu);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < w->n_tasks; i++)
        runq_push(&r->q, w->tasks[i]);
    r->received += w->n_tasks;
    size_t nback = w->n_revoke ? runq_revoke(&r->q, w->revoke, w->n_revoke, back) : 0;
    r->unbind = r->unbind || w->unbind;
    uint32_t credit = nback ? new_credit(r) : 0;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (w->n_revoke) {
        /* what was asked for and is running goes out as started, what
         * was still queued as returned */
        Flame__V1__ExecutorUpdate up = FLAME__V1__EXECUTOR_UPDATE__INIT;
        up.executor_id = r->x->id;
        up.n_returned = nback;
        up.returned = back;
        up.credit = credit;
        report_unreported(r, &up, ids);
        pthread_mutex_unlock(&r->send_mu);
    }
    free(back);
}

/* The stream ended or broke (under r->mu): both threads stop. */
static void set_ended(session_run *r)
{
    r->ended = true;
    pthread_cond_signal(&r->cv);
    pthread_cond_signal(&r->rcv);
}

/* Whether the reader thread should take the read now (under r->mu):
 * a batch runs and the executor's thread does not read, and either its
 * tasks take time or it has run since the reader's last look (seen). */
static bool reader_wanted(const session_run *r, uint64_t seen)
{
    if (r->reading != READ_NONE)
        return false;
    return r->closing || (r->running && (r->handoff || r->batch_seq == seen));
}

/* The reader thread: reads the stream while the executor's thread runs a
 * batch (see the top), and reports the starts of a quick batch that runs
 * long every QUIET_START_MAX_MS (while tasks take time, 10 times that). */
static void *reader_main(void *arg)
{
    session_run *r = arg;
    uint64_t ids[INVOKE_BATCH];
    uint64_t seen = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->ended) {
        int period = r->quiet ? QUIET_START_MAX_MS : 10 * QUIET_START_MAX_MS;
        if (!reader_wanted(r, seen)) {
            seen = r->running ? r->batch_seq : 0;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += period / 1000;
            ts.tv_nsec += (long)(period % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&r->rcv, &r->mu, &ts) != 0 && r->running) {
                pthread_mutex_unlock(&r->mu);
                Flame__V1__ExecutorUpdate up = FLAME__V1__EXECUTOR_UPDATE__INIT;
                up.executor_id = r->x->id;
                pthread_mutex_lock(&r->send_mu);
                report_unreported(r, &up, ids);
                pthread_mutex_unlock(&r->send_mu);
                pthread_mutex_lock(&r->mu);
            }
            continue;
        }
        r->reading = READ_READER;
        r->handoff = false;
        pthread_mutex_unlock(&r->mu);
        ProtobufCMessage *m;
        bool idle = false;
        flame_status rc = rpc_stream_next_timed(r->st, &flame__v1__executor_work__descriptor, &m,
                                                period, &idle);
        if (!rc && idle) {
            Flame__V1__ExecutorUpdate up = FLAME__V1__EXECUTOR_UPDATE__INIT;
            up.executor_id = r->x->id;
            pthread_mutex_lock(&r->send_mu);
            report_unreported(r, &up, ids);
            pthread_mutex_unlock(&r->send_mu);
        } else if (!rc && m) {
            take_work(r, (Flame__V1__ExecutorWork *)m, ids);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        pthread_mutex_lock(&r->mu);
        if (rc || (!idle && !m)) /* ended by the session manager (or broken): stop */
            set_ended(r);
        r->reading = READ_NONE;
        if (r->running || r->closing) /* read on: taken again at the loop's top */
            seen = r->batch_seq;
        else /* the executor's thread reads again */
            pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* How many tasks take about BATCH_TARGET_US together, from how long they
 * take (1 while not known). */
static size_t run_len(const session_run *r)
{
    if (r->avg_us <= 0)
        return 1;
    double k = BATCH_TARGET_US / r->avg_us;
    return k >= INVOKE_BATCH ? INVOKE_BATCH : k < 1 ? 1 : (size_t)k;
}

/* How many tasks to hand the service at once. */
static size_t batch_size(const session_run *r)
{
    return r->batching < 0 ? 1 : run_len(r);
}

/* Takes the next batch off the queue (decided under the lock, so that a
 * revoke finds a task either queued or started) and puts in r->up its start
 * (quick tasks: with its outcomes, next time), the last batch's outcomes,
 * their starts if not reported yet, and new credit: one message, sent by
 * the caller (r->up_due), then clear_outcomes(). Returns the batch's size:
 * 0 when there is nothing to run now. */
static size_t take_batch(session_run *r)
{
    pthread_mutex_lock(&r->mu);
    size_t ns = r->nunreported;
    memcpy(r->started, r->unreported, ns * sizeof *r->started);
    r->nunreported = 0;
    size_t k = 0;
    if (r->q.len && !r->ended && !r->dead) {
        k = batch_size(r);
        if (k > r->q.len)
            k = r->q.len;
        memcpy(r->batch, r->q.v + r->q.head, k * sizeof *r->batch);
        r->q.head += k;
        r->q.len -= k;
        if (!r->q.len)
            r->q.head = 0;
        r->running = (uint32_t)k;
        r->batch_seq++;
        if (!r->quiet && r->reading == READ_NONE) { /* a revoke must be heard while it runs */
            r->handoff = true;
            pthread_cond_signal(&r->rcv);
        }
    }
    r->up.credit = r->dead || r->ended ? 0 : new_credit(r);
    uint64_t *ids = r->quiet ? r->unreported : r->started + ns;
    for (size_t i = 0; i < k; i++)
        ids[i] = strtoull(r->batch[i].id, NULL, 10);
    if (r->quiet)
        r->nunreported = k;
    else
        ns += k;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < r->nout; i++)
        r->outp[i] = &r->out[i];
    r->up.n_outcomes = r->nout;
    r->up.outcomes = r->outp;
    r->up.n_started = ns;
    r->up.started = r->started;
    r->up_due = r->nout || ns || r->up.credit;
    return k;
}

/* The outcomes in r->up went out (or never will): their buffers go. */
static void clear_outcomes(session_run *r)
{
    for (size_t i = 0; i < r->nout; i++) {
        fl_task_result_clear(&r->res[i]);
        free(r->msgs[i]);
        r->msgs[i] = NULL;
    }
    r->nout = 0;
    r->up_due = false;
}

static void batch_free(session_run *r, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        free(r->batch[i].id);
        free(r->batch[i].input);
    }
}

/* Runs the batch taken and learns how long its tasks take. Their outcomes
 * go out with the next take_batch. What a dead service could not run is
 * requeued by the session manager (started, never reported). */
static void run_batch(session_run *r, size_t k)
{
    int64_t t0 = fl_mono_ns();
    r->nout = run_tasks(r, r->batch, k);
    double per = (double)(fl_mono_ns() - t0) / 1e3 / (double)k;
    r->avg_us = r->avg_us > 0 ? 0.7 * r->avg_us + 0.3 * per : per;
    batch_free(r, k);
    /* fast tasks get a window of a few runs whether the service takes them
     * in batches or one per call (then the window's grants come in chunks) */
    size_t kb = run_len(r);
    pthread_mutex_lock(&r->mu);
    r->running = 0;
    r->handoff = false;
    r->window = kb > 1 ? (kb * 4 < WINDOW_BATCH ? (uint32_t)kb * 4 : WINDOW_BATCH) : WINDOW_SINGLE;
    r->quiet = r->avg_us < QUIET_START_US;
    pthread_mutex_unlock(&r->mu);
}

/* Whether the executor's thread is done (under r->mu). */
static bool exec_done(const session_run *r)
{
    return r->ended || r->dead || (r->unbind && !r->q.len);
}

/* Nothing to run: sends r->up when due and waits for work, reading the
 * stream itself when the reader thread does not (the send and the read in
 * one batch). False: the executor's thread is done (*rc: a failed send). */
static bool read_work(session_run *r, flame_status *rc, uint64_t *ids)
{
    pthread_mutex_lock(&r->send_mu);
    pthread_mutex_lock(&r->mu);
    bool done = exec_done(r);
    bool mine = !done && !r->q.len && r->reading == READ_NONE;
    if (mine)
        r->reading = READ_EXEC;
    pthread_mutex_unlock(&r->mu);
    if (!mine) { /* the reader thread has the read: send, then wait for it */
        if (r->up_due)
            *rc = rpc_bidi_send(r->st, &r->up.base);
        pthread_mutex_unlock(&r->send_mu);
        clear_outcomes(r);
        if (*rc)
            return false;
        pthread_mutex_lock(&r->mu);
        while (!r->q.len && !exec_done(r) && r->reading == READ_READER)
            pthread_cond_wait(&r->cv, &r->mu);
        done = exec_done(r);
        pthread_mutex_unlock(&r->mu);
        return !done;
    }
    pthread_mutex_unlock(&r->send_mu);
    ProtobufCMessage *m = NULL;
    bool idle = false;
    const ProtobufCMessageDescriptor *d = &flame__v1__executor_work__descriptor;
    flame_status st = r->up_due ? rpc_bidi_send_next(r->st, &r->up.base, d, &m, EXEC_READ_MS, &idle)
                                : rpc_stream_next_timed(r->st, d, &m, EXEC_READ_MS, &idle);
    clear_outcomes(r);
    pthread_mutex_lock(&r->mu);
    r->reading = READ_NONE;
    if (st || (!idle && !m)) /* ended by the session manager (or broken): stop */
        set_ended(r);
    pthread_mutex_unlock(&r->mu);
    if (m) {
        take_work(r, (Flame__V1__ExecutorWork *)m, ids);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    pthread_mutex_lock(&r->mu);
    done = exec_done(r);
    pthread_mutex_unlock(&r->mu);
    return !done;
}

/* A dead executor asks to be unbound; then half-close (the reader sees the
 * session manager's end) or, after an error, cancel the stream. */
static flame_status finish(session_run *r, flame_status rc)
{
    if (!rc && r->dead) {
        Flame__V1__UnbindExecutorRequest ur = FLAME__V1__UNBIND_EXECUTOR_REQUEST__INIT;
        ur.executor_id = r->x->id;
        rc = em_exec_call(r->x, EM_BE("UnbindExecutor"), &ur.base, NULL, NULL,
                          EM_CALL_TIMEOUT_MS);
    }
    if (!rc)
        rpc_bidi_close_send(r->st);
    else
        rpc_stream_cancel(r->st);
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
    r->window = WINDOW_SINGLE;
    r->batching = shim->ops->invoke_batch ? 0 : -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->send_mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->rcv, NULL);
    flame__v1__executor_update__init(&r->up);
    r->up.executor_id = x->id;
    r->up.credit = new_credit(r);
    rc = rpc_bidi_send(st, &r->up.base);
    pthread_t reader;
    bool reading = !rc && pthread_create(&reader, NULL, reader_main, r) == 0;
    if (!rc && !reading)
        rc = fl_error(FLAME_ERR_INTERNAL, "executor %s: cannot start the stream reader", x->id);
    uint64_t ids[INVOKE_BATCH];
    while (!rc) {
        size_t k = take_batch(r);
        if (k) {
            if (r->up_due)
                rc = send_update(r, &r->up);
            clear_outcomes(r);
            if (rc) { /* taken but never run: the session manager requeues them */
                batch_free(r, k);
                break;
            }
            run_batch(r, k);
        } else if (!read_work(r, &rc, ids)) {
            break; /* unbind with the queue done, the end of the stream, a dead service */
        }
    }
    if (!rc && r->nout) { /* the last outcomes */
        take_batch(r);
        rc = send_update(r, &r->up);
    }
    clear_outcomes(r);
    rc = finish(r, rc);
    if (reading) { /* the reader reads to the end of the stream */
        pthread_mutex_lock(&r->mu);
        r->closing = true;
        pthread_cond_signal(&r->rcv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(reader, NULL);
    }
    em_exec_set_stream(x, NULL);
    rpc_stream_free(st);
    for (size_t i = 0; i < r->nout; i++) {
        fl_task_result_clear(&r->res[i]);
        free(r->msgs[i]);
    }
    runq_pop(&r->q, r->q.len);
    free(r->q.v);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->send_mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->rcv);
    free(r);
    return rc;
}
