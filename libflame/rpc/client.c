/* rpc client: blocking calls, each on its own pluck queue.
 *
 * Threads: a channel is shared by any number of threads (its method
 * registry takes a mutex on a miss); a unary call runs on its caller's
 * thread queue; a stream has its own queue, read by one thread while
 * another may send (bidi) or cancel. The first quiet wait (rpc_quiet)
 * starts the watchman, a detached thread that lives as long as the process
 * (as gRPC's own do). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc_internal.h"
#include "util/util.h"

/* Methods registered with the channel once (gRPC then skips parsing the
 * path on every call). Method strings are stable (rpc_path or literals):
 * compared by address. */
#define MAX_REGISTERED 64

struct rpc_channel {
    grpc_channel *ch;
    char *target;
    size_t max_message;
    pthread_mutex_t mu;
    const char *reg_method[MAX_REGISTERED];
    void *reg_handle[MAX_REGISTERED];
    _Atomic size_t nreg;
};

/* ---- quiet waits (rpc_quiet) ----------------------------------------------
 * gRPC 1.51's epoll1 engine lets one waiting thread poll the process's
 * sockets at a time and, each time that poller returns, hands the role to
 * another waiting thread. A thread that waits for rare messages (a node's
 * watch, an idle executor's long poll) was thus woken for every message any
 * other thread got: two more threads woke per task in the executor manager.
 * A quiet call's batches complete through functors on a callback queue
 * (which nobody waits on: gRPC runs them inline or on its executor thread)
 * into a list of its own, which its waiting thread sleeps on. (A
 * GRPC_CQ_NON_POLLING queue would do without the functors, but gRPC 1.51
 * aborts when a call on one leaves the queue of a channel that was still
 * connecting: polling_entity.cc's assertion.) The watchman, a thread of
 * ours started with the first quiet call, polls in slices whenever no
 * polling wait has been in progress for WATCH_IDLE_MS. So a quiet wait is
 * served at once by whichever thread polls, and within ~WATCH_IDLE_MS when
 * the threads that poll are all busy elsewhere (or gone). */
#define WATCH_IDLE_MS 10
#define WATCH_SLICE_MS 50        /* soon after polling waits: the role goes back to them */
#define WATCH_LONG_SLICE_MS 1000 /* a second after the last (an idle process) */

static _Atomic int hot_waiters;     /* threads in a polling wait */
static _Atomic int64_t hot_left_ns; /* when the last of them returned */
static _Thread_local bool tl_quiet;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

/* The watchman's polls reach every socket only with epoll1 (one epoll set
 * for the process: gRPC's default on Linux); with another poll strategy a
 * quiet call would wait for gRPC's backup poller, so calls stay polling. */
static bool quiet_works;
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void quiet_check(void)
{
    const char *e = getenv("GRPC_POLL_STRATEGY");
    quiet_works = !e || !*e || strncmp(e, "epoll1", 6) == 0 || strncmp(e, "all", 3) == 0;
    if (!quiet_works)
        fl_log(FL_LOG_WARN, "rpc", "GRPC_POLL_STRATEGY=%s: waits for rare messages poll like "
                                  "the others (more wakeups per task)", e);
}

bool rpc_quiet(bool on)
{
    pthread_once(&quiet_once, quiet_check);
    bool was = tl_quiet;
    tl_quiet = on && quiet_works;
    return was;
}

static void *watchman(void *arg)
{
    (void)arg;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    int tag;
    for (;;) {
        int64_t idle_ns = fl_mono_ns() - atomic_load(&hot_left_ns);
        if (atomic_load(&hot_waiters) > 0 || idle_ns < (int64_t)WATCH_IDLE_MS * 1000000) {
            struct timespec ts = { 0, WATCH_IDLE_MS * 1000000L };
            nanosleep(&ts, NULL);
            continue;
        }
        /* nothing completes on cq: this polls for the slice. A polling
         * wait that starts meanwhile shares the role until it ends. */
        int slice = idle_ns >= 1000000000LL ? WATCH_LONG_SLICE_MS : WATCH_SLICE_MS;
        grpc_completion_queue_pluck(cq, &tag,
                                    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                 gpr_time_from_millis(slice, GPR_TIMESPAN)),
                                    NULL);
    }
    return NULL;
}

static void watch_start(void)
{
    pthread_t th;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &ta, watchman, NULL) != 0)
        fl_log(FL_LOG_ERROR, "rpc", "cannot start the watchman thread: quiet waits are served "
                                   "only by gRPC's backup poller (every 5 s)");
    pthread_attr_destroy(&ta);
}

/* A quiet call's batches: each started one is in ops until its thread
 * takes it (wait_tag). Several threads may wait on one (a stream read by
 * one and written by another). */
typedef struct quiet_op {
    grpc_completion_queue_functor f; /* first: gRPC hands back &f */
    struct quiet_q *q;
    void *tag;
    bool ok, done;
    struct quiet_op *next;
} quiet_op;

typedef struct quiet_q {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    quiet_op *ops;
} quiet_q;

static grpc_completion_queue *callback_cq; /* every quiet call's; never waited on */

static void quiet_start(void)
{
    callback_cq = grpc_completion_queue_create_for_callback(NULL, NULL);
    watch_start();
}

static quiet_q *quiet_new(void)
{
    pthread_once(&watch_once, quiet_start);
    quiet_q *q = fl_calloc(1, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &a);
    pthread_condattr_destroy(&a);
    return q;
}

/* After every batch on it has been waited for. */
static void quiet_free(quiet_q *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

static void quiet_done(grpc_completion_queue_functor *f, int ok)
{
    quiet_op *op = (quiet_op *)f;
    quiet_q *q = op->q;
    pthread_mutex_lock(&q->mu);
    op->ok = ok;
    op->done = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* grpc_call_start_batch on the call's queue (q NULL: a pluck queue). */
static grpc_call_error batch(grpc_call *call, quiet_q *q, const grpc_op *ops, size_t n, void *tag)
{
    if (!q)
        return grpc_call_start_batch(call, ops, n, tag, NULL);
    quiet_op *op = fl_calloc(1, sizeof *op);
    op->f.functor_run = quiet_done;
    op->f.inlineable = 1; /* it only signals */
    op->q = q;
    op->tag = tag;
    pthread_mutex_lock(&q->mu);
    op->next = q->ops;
    q->ops = op;
    pthread_mutex_unlock(&q->mu);
    grpc_call_error e = grpc_call_start_batch(call, ops, n, &op->f, NULL);
    if (e != GRPC_CALL_OK) {
        pthread_mutex_lock(&q->mu);
        for (quiet_op **pp = &q->ops; *pp; pp = &(*pp)->next)
            if (*pp == op) {
                *pp = op->next;
                break;
            }
        pthread_mutex_unlock(&q->mu);
        free(op);
    }
    return e;
}

static grpc_event quiet_wait(quiet_q *q, void *tag, gpr_timespec dl)
{
    bool forever = gpr_time_cmp(dl, gpr_inf_future(dl.clock_type)) == 0;
    struct timespec until;
    if (!forever) {
        gpr_timespec left = gpr_time_sub(gpr_convert_clock_type(dl, GPR_CLOCK_MONOTONIC),
                                         gpr_now(GPR_CLOCK_MONOTONIC));
        int64_t ns = left.tv_sec < 0 ? 0 : left.tv_sec * 1000000000LL + left.tv_nsec;
        clock_gettime(CLOCK_MONOTONIC, &until);
        ns += until.tv_nsec;
        until.tv_sec += ns / 1000000000LL;
        until.tv_nsec = ns % 1000000000LL;
    }
    grpc_event ev = { GRPC_QUEUE_TIMEOUT, 0, NULL };
    pthread_mutex_lock(&q->mu);
    for (bool timed_out = false;;) {
        quiet_op **pp = &q->ops;
        while (*pp && (*pp)->tag != tag)
            pp = &(*pp)->next;
        quiet_op *op = *pp;
        if (op && op->done) {
            *pp = op->next;
            ev.type = GRPC_OP_COMPLETE;
            ev.success = op->ok;
            ev.tag = tag;
            free(op);
            break;
        }
        if (!op || timed_out) /* !op: nothing started with that tag */
            break;
        if (forever)
            pthread_cond_wait(&q->cv, &q->mu);
        else
            timed_out = pthread_cond_timedwait(&q->cv, &q->mu, &until) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&q->mu);
    return ev;
}

/* Every wait for a batch (q NULL: on cq, a pluck queue). */
static grpc_event wait_tag(grpc_completion_queue *cq, quiet_q *q, void *tag, gpr_timespec dl)
{
    if (q)
        return quiet_wait(q, tag, dl);
    atomic_fetch_add(&hot_waiters, 1);
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, dl, NULL);
    if (atomic_fetch_sub(&hot_waiters, 1) == 1)
        atomic_store(&hot_left_ns, fl_mono_ns());
    return ev;
}

/* Per thread, made on first use: a pluck queue for unary calls and a quiet
 * list for its quiet ones. */
static pthread_key_t tl_cq_key, tl_quiet_key;
static pthread_once_t tl_cq_once = PTHREAD_ONCE_INIT;

static void tl_cq_free(void *p)
{
    grpc_completion_queue *cq = p;
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

static void tl_quiet_free(void *p)
{
    quiet_free(p);
}

static void tl_cq_init(void)
{
    pthread_key_create(&tl_cq_key, tl_cq_free);
    pthread_key_create(&tl_quiet_key, tl_quiet_free);
}

/* The thread's queue for a unary call; *q is set for a quiet one. */
static grpc_completion_queue *thread_cq(quiet_q **q)
{
    pthread_once(&tl_cq_once, tl_cq_init);
    *q = NULL;
    if (tl_quiet) {
        *q = pthread_getspecific(tl_quiet_key);
        if (!*q) {
            *q = quiet_new();
            pthread_setspecific(tl_quiet_key, *q);
        }
        return callback_cq;
    }
    grpc_completion_queue *cq = pthread_getspecific(tl_cq_key);
    if (!cq) {
        cq = grpc_completion_queue_create_for_pluck(NULL);
        pthread_setspecific(tl_cq_key, cq);
    }
    return cq;
}

static void *registered(rpc_channel *c, const char *method)
{
    size_t n = atomic_load(&c->nreg);
    for (size_t i = 0; i < n; i++)
        if (c->reg_method[i] == method)
            return c->reg_handle[i];
    pthread_mutex_lock(&c->mu);
    void *h = NULL;
    n = atomic_load(&c->nreg);
    for (size_t i = 0; i < n && !h; i++)
        if (c->reg_method[i] == method)
            h = c->reg_handle[i];
    if (!h && n < MAX_REGISTERED) {
        h = grpc_channel_register_call(c->ch, method, NULL, NULL);
        c->reg_method[n] = method;
        c->reg_handle[n] = h;
        atomic_store(&c->nreg, n + 1);
    }
    pthread_mutex_unlock(&c->mu);
    return h;
}

struct rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    quiet_q *q;                  /* a quiet stream's batches (cq is callback_cq) */
    grpc_metadata_array md;
    grpc_metadata_array trailing;
    grpc_status_code status;
    grpc_slice details;
    bool status_started;
    bool md_received;
    bool ended;
    bool reading;                /* a read is posted (read_tag, read_bb) */
    int read_tag;
    grpc_byte_buffer *read_bb;
    grpc_byte_buffer *send_bb;   /* sent in the posted read's batch (send_next) */
    char method[128];
};

flame_status rpc_channel_new(rpc_channel **out, const char *target,
                             const rpc_channel_options *opts)
{
    rpc_channel_options o = RPC_CHANNEL_OPTIONS_INIT;
    if (opts)
        o = *opts;
    rpc_init();
    grpc_channel_credentials *creds;
    flame_status st = rpc_channel_credentials(&creds, &o.tls);
    if (st)
        return st;
    rpc_channel *c = fl_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->target = fl_strdup(target);
    c->max_message = o.max_message ? o.max_message : RPC_DEFAULT_MAX_MESSAGE;
    grpc_arg args[5];
    rpc_size_args(args, c->max_message);
    /* no transparent retries (our calls are not idempotent anyway, and the
     * retry filter costs time on every call) */
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = (char *)GRPC_ARG_ENABLE_RETRIES;
    args[3].value.integer = 0;
    args[4].type = GRPC_ARG_STRING;
    args[4].key = (char *)GRPC_ARG_OPTIMIZATION_TARGET;
    args[4].value.string = (char *)"latency";
    /* reconnect quickly after a session manager restart */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
    args[2].value.integer = 1000;
    grpc_channel_args cargs = { 5, args };
    c->ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    *out = c;
    return FLAME_OK;
}

void rpc_channel_free(rpc_channel *c)
{
    if (!c)
        return;
    grpc_channel_destroy(c->ch);
    pthread_mutex_destroy(&c->mu);
    free(c->target);
    free(c);
}

static gpr_timespec deadline_of(int timeout_ms)
{
    if (timeout_ms <= 0)
        return gpr_inf_future(GPR_CLOCK_REALTIME);
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

bool rpc_channel_connect(rpc_channel *c, int timeout_ms)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec deadline = deadline_of(timeout_ms);
    grpc_connectivity_state s = grpc_channel_check_connectivity_state(c->ch, 1);
    while (s != GRPC_CHANNEL_READY && s != GRPC_CHANNEL_SHUTDOWN) {
        grpc_channel_watch_connectivity_state(c->ch, s, deadline, cq, NULL);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (!ev.success) /* the deadline */
            break;
        s = grpc_channel_check_connectivity_state(c->ch, 1);
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return s == GRPC_CHANNEL_READY;
}

static _Thread_local int last_code;

int rpc_last_code(void)
{
    return last_code;
}

static flame_status status_error(const char *method, grpc_status_code code, grpc_slice details)
{
    last_code = (int)code;
    char *d = rpc_slice_str(details);
    flame_status st = rpc_code_to_status((int)code);
    if (code == GRPC_STATUS_UNAVAILABLE && !*d)
        fl_error(st, "%s: server unavailable", method);
    else if (code == GRPC_STATUS_UNAVAILABLE && strstr(d, "Socket closed"))
        /* all gRPC tells a client whose TLS handshake the server refused */
        fl_error(st, "%s (the server closed the connection: if it speaks TLS, the endpoint must "
                     "be https:// and, with mutual TLS, a certificate from its CA is needed; "
                     "the server logs why it refused)", d);
    else if (code == GRPC_STATUS_DEADLINE_EXCEEDED)
        fl_error(st, "%s: deadline exceeded%s%s", method, *d ? ": " : "", d);
    else
        fl_error(st, "%s", *d ? d : flame_status_str(st));
    free(d);
    return st;
}

static grpc_call *new_call(rpc_channel *c, grpc_completion_queue *cq, const char *method,
                           int timeout_ms)
{
    void *h = registered(c, method);
    if (h)
        return grpc_channel_create_registered_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, h,
                                                   deadline_of(timeout_ms), NULL);
    grpc_slice m = grpc_slice_from_static_string(method);
    return grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                    deadline_of(timeout_ms), NULL);
}

static bool pluck(grpc_completion_queue *cq, quiet_q *q, void *tag)
{
    grpc_event ev = wait_tag(cq, q, tag, gpr_inf_future(GPR_CLOCK_REALTIME));
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static void destroy_cq(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

struct rpc_cancel {
    pthread_mutex_t mu;
    grpc_call *call; /* the call in flight, if any */
    bool cancelled;
};

rpc_cancel *rpc_cancel_new(void)
{
    rpc_cancel *c = fl_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void rpc_cancel_fire(rpc_cancel *c)
{
    pthread_mutex_lock(&c->mu);
    c->cancelled = true;
    if (c->call)
        grpc_call_cancel(c->call, NULL);
    pthread_mutex_unlock(&c->mu);
}

void rpc_cancel_free(rpc_cancel *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static flame_status unary_bb(rpc_channel *c, const char *method, grpc_byte_buffer *req,
                             grpc_slice *out, int timeout_ms, rpc_cancel *cancel)
{
    size_t req_len = grpc_byte_buffer_length(req);
    if (req_len > c->max_message) {
        grpc_byte_buffer_destroy(req);
        last_code = RPC_RESOURCE_EXHAUSTED;
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED,
                        "%s: request of %zu bytes exceeds the maximum message size of %zu bytes",
                        method, req_len, c->max_message);
    }
    quiet_q *q;
    grpc_completion_queue *cq = thread_cq(&q);
    grpc_call *call = new_call(c, cq, method, timeout_ms);
    if (cancel) {
        pthread_mutex_lock(&cancel->mu);
        cancel->call = call;
        if (cancel->cancelled)
            grpc_call_cancel(call, NULL);
        pthread_mutex_unlock(&cancel->mu);
    }
    grpc_metadata_array md, trailing;
    grpc_metadata_array_init(&md);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *resp = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    flame_status st = FLAME_OK;
    int tag;
    if (batch(call, q, ops, 6, &tag) != GRPC_CALL_OK) {
        st = fl_error(FLAME_ERR_INTERNAL, "%s: cannot start the call", method);
    } else {
        pluck(cq, q, &tag);
        if (code != GRPC_STATUS_OK)
            st = status_error(method, code, details);
        else if (!resp)
            st = fl_error(FLAME_ERR_INTERNAL, "%s: empty response", method);
        else
            *out = rpc_flatten(resp);
    }
    if (cancel) {
        pthread_mutex_lock(&cancel->mu);
        cancel->call = NULL;
        pthread_mutex_unlock(&cancel->mu);
    }
    if (resp)
        grpc_byte_buffer_destroy(resp);
    grpc_byte_buffer_destroy(req);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    return st;
}

flame_status rpc_unary(rpc_channel *c, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                       int timeout_ms)
{
    return rpc_unary_cancellable(c, method, req, desc, resp, timeout_ms, NULL);
}

flame_status rpc_unary_cancellable(rpc_channel *c, const char *method, const ProtobufCMessage *req,
                                   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                                   int timeout_ms, rpc_cancel *cancel)
{
    grpc_slice s;
    flame_status st = unary_bb(c, method, rpc_pack(req), &s, timeout_ms, cancel);
    if (st != FLAME_OK)
        return st;
    *resp = rpc_unpack(desc, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (!*resp)
        return fl_error(FLAME_ERR_INTERNAL, "%s: malformed response", method);
    return FLAME_OK;
}

flame_status rpc_unary_raw(rpc_channel *c, const char *method, const uint8_t *data, size_t len,
                           uint8_t **resp, size_t *resp_len, int timeout_ms)
{
    grpc_slice s;
    flame_status st = unary_bb(c, method, rpc_bytes(data, len), &s, timeout_ms, NULL);
    if (st != FLAME_OK)
        return st;
    *resp_len = GRPC_SLICE_LENGTH(s);
    *resp = fl_memdup(GRPC_SLICE_START_PTR(s), *resp_len ? *resp_len : 1);
    grpc_slice_unref(s);
    return FLAME_OK;
}

flame_status rpc_stream_open(rpc_stream **out, rpc_channel *c, const char *method,
                             const ProtobufCMessage *req, int timeout_ms)
{
    rpc_stream *st = fl_calloc(1, sizeof *st);
    snprintf(st->method, sizeof st->method, "%s", method);
    st->q = tl_quiet ? quiet_new() : NULL;
    st->cq = st->q ? callback_cq : grpc_completion_queue_create_for_pluck(NULL);
    st->call = new_call(c, st->cq, method, timeout_ms);
    grpc_metadata_array_init(&st->md);
    grpc_metadata_array_init(&st->trailing);
    st->details = grpc_empty_slice();
    grpc_byte_buffer *bb = rpc_pack(req);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    int tag;
    flame_status s = FLAME_OK;
    if (batch(st->call, st->q, ops, 3, &tag) != GRPC_CALL_OK)
        s = fl_error(FLAME_ERR_INTERNAL, "%s: cannot start the call", method);
    else
        pluck(st->cq, st->q, &tag);
    /* the server's headers are read with the first message: a server may
     * hold them until it has something to say (a watch of a session that
     * does not move), and next_timed() must not block in open() */
    st->md_received = false;
    grpc_byte_buffer_destroy(bb);
    /* the status op is started now so that errors are reported as soon as
     * the stream ends */
    grpc_op sop;
    memset(&sop, 0, sizeof sop);
    sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    sop.data.recv_status_on_client.status = &st->status;
    sop.data.recv_status_on_client.status_details = &st->details;
    sop.data.recv_status_on_client.trailing_metadata = &st->trailing;
    if (s == FLAME_OK && batch(st->call, st->q, &sop, 1, &st->status) == GRPC_CALL_OK)
        st->status_started = true;
    if (s != FLAME_OK) {
        rpc_stream_free(st);
        return s;
    }
    *out = st;
    return FLAME_OK;
}

flame_status rpc_stream_next(rpc_stream *st, const ProtobufCMessageDescriptor *desc,
                             ProtobufCMessage **msg)
{
    return rpc_stream_next_timed(st, desc, msg, -1, NULL);
}

/* Posts the stream's read, with bb (may be NULL) sent in the same batch. */
static flame_status post_read(rpc_stream *st, grpc_byte_buffer *bb)
{
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
    }
    if (!st->md_received) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &st->md;
        n++;
        st->md_received = true;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &st->read_bb;
    n++;
    st->read_bb = NULL;
    if (batch(st->call, st->q, ops, n, &st->read_tag) != GRPC_CALL_OK)
        return fl_error(FLAME_ERR_INTERNAL, "%s: cannot read the stream", st->method);
    st->send_bb = bb;
    st->reading = true;
    return FLAME_OK;
}

/* Waits for the posted read (see rpc_stream_next_timed). */
static flame_status wait_read(rpc_stream *st, const ProtobufCMessageDescriptor *desc,
                              ProtobufCMessage **msg, int timeout_ms, bool *idle)
{
    gpr_timespec dl = timeout_ms < 0 ? gpr_inf_future(GPR_CLOCK_REALTIME)
                                     : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_event ev = wait_tag(st->cq, st->q, &st->read_tag, dl);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        *idle = true;
        return FLAME_OK;
    }
    st->reading = false;
    if (st->send_bb) {
        grpc_byte_buffer_destroy(st->send_bb);
        st->send_bb = NULL;
    }
    grpc_byte_buffer *bb = st->read_bb;
    st->read_bb = NULL;
    if (bb) {
        grpc_slice s = rpc_flatten(bb);
        grpc_byte_buffer_destroy(bb);
        *msg = rpc_unpack(desc, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
        grpc_slice_unref(s);
        if (!*msg)
            return fl_error(FLAME_ERR_INTERNAL, "%s: malformed message", st->method);
        return FLAME_OK;
    }
    st->ended = true;
    if (st->status_started) {
        pluck(st->cq, st->q, &st->status);
        st->status_started = false;
    }
    if (st->status != GRPC_STATUS_OK)
        return status_error(st->method, st->status, st->details);
    return FLAME_OK;
}

flame_status rpc_stream_next_timed(rpc_stream *st, const ProtobufCMessageDescriptor *desc,
                                   ProtobufCMessage **msg, int timeout_ms, bool *idle)
{
    *msg = NULL;
    if (idle)
        *idle = false;
    if (st->ended)
        return FLAME_OK;
    flame_status rc = st->reading ? FLAME_OK : post_read(st, NULL);
    return rc ? rc : wait_read(st, desc, msg, timeout_ms, idle);
}

flame_status rpc_bidi_send_next(rpc_stream *st, const ProtobufCMessage *msg,
                                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                                int timeout_ms, bool *idle)
{
    *out = NULL;
    *idle = false;
    if (st->ended)
        return fl_error(FLAME_ERR_UNAVAILABLE, "%s: the stream is closed", st->method);
    flame_status rc;
    if (st->reading) { /* a read from an idle return is posted: send alone */
        if ((rc = rpc_bidi_send(st, msg)))
            return rc;
    } else {
        grpc_byte_buffer *bb = rpc_pack(msg);
        if ((rc = post_read(st, bb))) {
            grpc_byte_buffer_destroy(bb);
            return rc;
        }
    }
    return wait_read(st, desc, out, timeout_ms, idle);
}

/* Opens a stream whose requests we send one by one (bidi, client stream). */
static flame_status open_sending(rpc_stream **out, rpc_channel *c, const char *method,
                                 int timeout_ms)
{
    rpc_stream *st = fl_calloc(1, sizeof *st);
    snprintf(st->method, sizeof st->method, "%s", method);
    st->q = tl_quiet ? quiet_new() : NULL;
    st->cq = st->q ? callback_cq : grpc_completion_queue_create_for_pluck(NULL);
    st->call = new_call(c, st->cq, method, timeout_ms);
    grpc_metadata_array_init(&st->md);
    grpc_metadata_array_init(&st->trailing);
    st->details = grpc_empty_slice();
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    int tag;
    if (batch(st->call, st->q, ops, 1, &tag) != GRPC_CALL_OK) {
        rpc_stream_free(st);
        return fl_error(FLAME_ERR_INTERNAL, "%s: cannot start the stream", method);
    }
    pluck(st->cq, st->q, &tag);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.status = &st->status;
    ops[0].data.recv_status_on_client.status_details = &st->details;
    ops[0].data.recv_status_on_client.trailing_metadata = &st->trailing;
    if (batch(st->call, st->q, ops, 1, &st->status) == GRPC_CALL_OK)
        st->status_started = true;
    *out = st;
    return FLAME_OK;
}

flame_status rpc_bidi_open(rpc_stream **out, rpc_channel *c, const char *method)
{
    return open_sending(out, c, method, 0);
}

flame_status rpc_client_stream_open(rpc_stream **out, rpc_channel *c, const char *method,
                                    int timeout_ms)
{
    return open_sending(out, c, method, timeout_ms);
}

flame_status rpc_bidi_send(rpc_stream *st, const ProtobufCMessage *msg)
{
    grpc_byte_buffer *bb = rpc_pack(msg);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    int tag;
    flame_status s = FLAME_OK;
    if (batch(st->call, st->q, &op, 1, &tag) != GRPC_CALL_OK)
        s = fl_error(FLAME_ERR_INTERNAL, "%s: cannot send", st->method);
    else if (!pluck(st->cq, st->q, &tag))
        s = fl_error(FLAME_ERR_UNAVAILABLE, "%s: the stream is closed", st->method);
    grpc_byte_buffer_destroy(bb);
    return s;
}

flame_status rpc_bidi_close_send(rpc_stream *st)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    int tag;
    if (batch(st->call, st->q, &op, 1, &tag) != GRPC_CALL_OK)
        return fl_error(FLAME_ERR_INTERNAL, "%s: cannot close the stream", st->method);
    pluck(st->cq, st->q, &tag);
    return FLAME_OK;
}

flame_status rpc_client_stream_send(rpc_stream *st, const ProtobufCMessage *msg)
{
    return rpc_bidi_send(st, msg);
}

flame_status rpc_client_stream_finish(rpc_stream *st, const ProtobufCMessageDescriptor *desc,
                                      ProtobufCMessage **resp)
{
    *resp = NULL;
    flame_status s = rpc_bidi_close_send(st);
    if (s)
        return s;
    ProtobufCMessage *m;
    if ((s = rpc_stream_next(st, desc, &m)))
        return s;
    if (!m)
        return fl_error(FLAME_ERR_INTERNAL, "%s: empty response", st->method);
    /* the end of the stream carries the status */
    ProtobufCMessage *extra;
    if ((s = rpc_stream_next(st, desc, &extra)) || extra) {
        protobuf_c_message_free_unpacked(m, NULL);
        if (extra) {
            protobuf_c_message_free_unpacked(extra, NULL);
            return fl_error(FLAME_ERR_INTERNAL, "%s: more than one response", st->method);
        }
        return s;
    }
    *resp = m;
    return FLAME_OK;
}

void rpc_stream_cancel(rpc_stream *st)
{
    if (st && st->call)
        grpc_call_cancel(st->call, NULL);
}

void rpc_stream_free(rpc_stream *st)
{
    if (!st)
        return;
    if (st->reading) { /* a timed read gave up: its batch ends with the cancel */
        grpc_call_cancel(st->call, NULL);
        pluck(st->cq, st->q, &st->read_tag);
        if (st->read_bb)
            grpc_byte_buffer_destroy(st->read_bb);
        if (st->send_bb)
            grpc_byte_buffer_destroy(st->send_bb);
    }
    if (st->status_started) {
        grpc_call_cancel(st->call, NULL);
        pluck(st->cq, st->q, &st->status);
    }
    grpc_call_unref(st->call);
    grpc_slice_unref(st->details);
    grpc_metadata_array_destroy(&st->md);
    grpc_metadata_array_destroy(&st->trailing);
    if (st->q)
        quiet_free(st->q);
    else
        destroy_cq(st->cq);
    free(st);
}
