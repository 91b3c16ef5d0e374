/* rpc client: blocking calls, each on its own pluck queue.
 *
 * Threads: a channel is shared by any number of threads (its method
 * registry takes a mutex on a miss); a unary call runs on its caller's
 * thread queue; a stream has its own queue, read by one thread while
 * another may send (bidi) or cancel. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * A quiet wait is on a queue that does not poll; the watchman, a thread of
 * ours started with the first quiet queue, polls in slices whenever no
 * polling wait has been in progress for WATCH_IDLE_MS (or at once when a
 * quiet wait starts with nobody polling). So a quiet wait is served by
 * whichever thread polls, within ~WATCH_IDLE_MS when threads that do poll
 * are busy elsewhere. */
#define WATCH_IDLE_MS 10
#define WATCH_SLICE_MS 50

static _Atomic int hot_waiters;      /* threads in a polling wait */
static _Atomic int64_t hot_left_ns;  /* when the last of them returned */
static _Atomic bool watch_polling;   /* the watchman is in its slice */
static _Thread_local bool tl_quiet;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cv;
static bool watch_poked;

bool rpc_quiet(bool on)
{
    bool was = tl_quiet;
    tl_quiet = on;
    return was;
}

static void *watchman(void *arg)
{
    (void)arg;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    int tag;
    pthread_mutex_lock(&watch_mu);
    for (;;) {
        int64_t idle_ns = fl_mono_ns() - atomic_load(&hot_left_ns);
        if (atomic_load(&hot_waiters) == 0 &&
            (watch_poked || idle_ns >= (int64_t)WATCH_IDLE_MS * 1000000)) {
            watch_poked = false;
            atomic_store(&watch_polling, true);
            pthread_mutex_unlock(&watch_mu);
            /* nothing completes on cq: this polls for the slice */
            grpc_completion_queue_pluck(
                cq, &tag,
                gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_millis(WATCH_SLICE_MS, GPR_TIMESPAN)),
                NULL);
            atomic_store(&watch_polling, false);
            pthread_mutex_lock(&watch_mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_IDLE_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!watch_poked)
            pthread_cond_timedwait(&watch_cv, &watch_mu, &ts);
    }
    return NULL;
}

static void watch_start(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&watch_cv, &a);
    pthread_condattr_destroy(&a);
    pthread_t th;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &ta, watchman, NULL) != 0)
        fl_log(FL_LOG_ERROR, "rpc", "cannot start the watchman thread: quiet waits are served "
                                   "only by gRPC's backup poller (every 5 s)");
    pthread_attr_destroy(&ta);
}

/* A queue for a call or stream; quiet as the calling thread is. */
static grpc_completion_queue *new_cq(bool quiet)
{
    if (!quiet)
        return grpc_completion_queue_create_for_pluck(NULL);
    pthread_once(&watch_once, watch_start);
    grpc_completion_queue_attributes attr = { GRPC_CQ_CURRENT_VERSION, GRPC_CQ_PLUCK,
                                              GRPC_CQ_NON_POLLING, NULL };
    return grpc_completion_queue_create(grpc_completion_queue_factory_lookup(&attr), &attr, NULL);
}

/* Every wait on a call's or stream's queue. */
static grpc_event cq_wait(grpc_completion_queue *cq, bool quiet, void *tag, gpr_timespec dl)
{
    if (quiet) {
        if (atomic_load(&hot_waiters) == 0 && !atomic_load(&watch_polling)) {
            pthread_mutex_lock(&watch_mu);
            watch_poked = true;
            pthread_cond_signal(&watch_cv);
            pthread_mutex_unlock(&watch_mu);
        }
        return grpc_completion_queue_pluck(cq, tag, dl, NULL);
    }
    atomic_fetch_add(&hot_waiters, 1);
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, dl, NULL);
    if (atomic_fetch_sub(&hot_waiters, 1) == 1)
        atomic_store(&hot_left_ns, fl_mono_ns());
    return ev;
}

/* One pluck queue per thread for unary calls, made on first use; a second
 * for its quiet calls. */
static pthread_key_t tl_cq_key[2];
static pthread_once_t tl_cq_once = PTHREAD_ONCE_INIT;

static void tl_cq_free(void *p)
{
    grpc_completion_queue *cq = p;
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

static void tl_cq_init(void)
{
    pthread_key_create(&tl_cq_key[0], tl_cq_free);
    pthread_key_create(&tl_cq_key[1], tl_cq_free);
}

static grpc_completion_queue *thread_cq(bool quiet)
{
    pthread_once(&tl_cq_once, tl_cq_init);
    grpc_completion_queue *cq = pthread_getspecific(tl_cq_key[quiet]);
    if (!cq) {
        cq = new_cq(quiet);
        pthread_setspecific(tl_cq_key[quiet], cq);
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
    bool quiet;                  /* cq does not poll (rpc_quiet) */
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

static bool pluck(grpc_completion_queue *cq, bool quiet, void *tag)
{
    grpc_event ev = cq_wait(cq, quiet, tag, gpr_inf_future(GPR_CLOCK_REALTIME));
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
    bool quiet = tl_quiet;
    grpc_completion_queue *cq = thread_cq(quiet);
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
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        st = fl_error(FLAME_ERR_INTERNAL, "%s: cannot start the call", method);
    } else {
        pluck(cq, quiet, &tag);
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
    st->quiet = tl_quiet;
    st->cq = new_cq(st->quiet);
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
    if (grpc_call_start_batch(st->call, ops, 3, &tag, NULL) != GRPC_CALL_OK)
        s = fl_error(FLAME_ERR_INTERNAL, "%s: cannot start the call", method);
    else
        pluck(st->cq, st->quiet, &tag);
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
    if (s == FLAME_OK && grpc_call_start_batch(st->call, &sop, 1, &st->status, NULL) == GRPC_CALL_OK)
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
    if (grpc_call_start_batch(st->call, ops, n, &st->read_tag, NULL) != GRPC_CALL_OK)
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
    grpc_event ev = cq_wait(st->cq, st->quiet, &st->read_tag, dl);
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
        pluck(st->cq, st->quiet, &st->status);
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
    st->quiet = tl_quiet;
    st->cq = new_cq(st->quiet);
    st->call = new_call(c, st->cq, method, timeout_ms);
    grpc_metadata_array_init(&st->md);
    grpc_metadata_array_init(&st->trailing);
    st->details = grpc_empty_slice();
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    int tag;
    if (grpc_call_start_batch(st->call, ops, 1, &tag, NULL) != GRPC_CALL_OK) {
        rpc_stream_free(st);
        return fl_error(FLAME_ERR_INTERNAL, "%s: cannot start the stream", method);
    }
    pluck(st->cq, st->quiet, &tag);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.status = &st->status;
    ops[0].data.recv_status_on_client.status_details = &st->details;
    ops[0].data.recv_status_on_client.trailing_metadata = &st->trailing;
    if (grpc_call_start_batch(st->call, ops, 1, &st->status, NULL) == GRPC_CALL_OK)
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
    if (grpc_call_start_batch(st->call, &op, 1, &tag, NULL) != GRPC_CALL_OK)
        s = fl_error(FLAME_ERR_INTERNAL, "%s: cannot send", st->method);
    else if (!pluck(st->cq, st->quiet, &tag))
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
    if (grpc_call_start_batch(st->call, &op, 1, &tag, NULL) != GRPC_CALL_OK)
        return fl_error(FLAME_ERR_INTERNAL, "%s: cannot close the stream", st->method);
    pluck(st->cq, st->quiet, &tag);
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
        pluck(st->cq, st->quiet, &st->read_tag);
        if (st->read_bb)
            grpc_byte_buffer_destroy(st->read_bb);
        if (st->send_bb)
            grpc_byte_buffer_destroy(st->send_bb);
    }
    if (st->status_started) {
        grpc_call_cancel(st->call, NULL);
        pluck(st->cq, st->quiet, &st->status);
    }
    grpc_call_unref(st->call);
    grpc_slice_unref(st->details);
    grpc_metadata_array_destroy(&st->md);
    grpc_metadata_array_destroy(&st->trailing);
    destroy_cq(st->cq);
    free(st);
}
