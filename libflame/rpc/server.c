/* rpc server: one completion queue, one thread, calls dispatched by path
 * from a table built from protoc-c service descriptors.
 *
 * Threads: everything here runs on the thread in rpc_server_run() (or the
 * one in rpc_server_free()), except rpc_server_shutdown(), which only
 * flips an atomic and asks gRPC to stop. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "inject.h"
#include "rpc_internal.h"
#include "util/metrics.h"
#include "util/util.h"

#define N_PENDING_REQUESTS 32
#define RPC_N_CODES 17 /* OK .. UNAUTHENTICATED */
#define RPC_PROBE_STUCK_NS (15 * 1000000000LL)

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_CLOSE, TAG_DRAIN, TAG_SHUTDOWN };

struct tag {
    enum tag_kind kind;
    rpc_call *call;
};

struct outmsg {
    grpc_byte_buffer *bb; /* NULL: status only */
    size_t len;           /* bytes of bb */
    bool final;
    int code;
    char *details;
    struct outmsg *next;
};

/* One dispatch table entry. */
struct entry {
    const char *path;
    rpc_kind kind;
    const ProtobufCMessageDescriptor *input;
    rpc_handler handler;
    /* its series (metrics), found on first use: by code, and its duration */
    struct fl_series *ends[RPC_N_CODES], *duration;
};

struct rpc_call {
    rpc_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    const struct entry *method;
    char *path;
    grpc_byte_buffer *recv_buf;
    int close_cancelled;
    struct tag t_new, t_recv, t_send, t_close, t_drain;
    int ops;            /* batches in flight */
    int refs;           /* holds by the owner (rpc_call_ref) */
    bool md_sent;
    bool sending;
    bool finishing;     /* a final status is queued or sent */
    bool counted;       /* its end is in the metrics */
    int64_t start_ns;   /* mono: when it arrived */
    bool closed;        /* RECV_CLOSE_ON_SERVER came back */
    bool dead;          /* cancelled or finished: no more sends */
    bool recv_over;     /* injected calls: no more messages will come */
    struct outmsg *q_head, *q_tail;
    size_t q_bytes, q_msgs;    /* queued, inflight included */
    struct outmsg *inflight;
    void (*drain_fn)(rpc_call *, void *);
    void *drain_arg;
    size_t drain_low;
    grpc_slice inflight_details;
    void (*cancel_fn)(rpc_call *, void *);
    void *cancel_arg;
    void (*end_fn)(rpc_call *, void *);
    void *end_arg;
    void *user;
    void *auth;
    void (*auth_release)(void *);
    bool kicked;        /* in srv->kicks: its first message waits for the loop turn's end */
    struct rpc_call *knext;
    bool rearm;         /* in srv->rearms: its next read is posted after the flush */
    struct rpc_call *rnext;
    bool peer_known;    /* peer_cert, peer_cn and is_tls are read */
    bool is_tls;
    char *peer_cert, *peer_cn;
    struct rpc_call *prev, *next; /* live calls */
};

struct rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    struct entry *methods;
    size_t n_methods;
    void *ctx;
    rpc_server_hooks hooks;
    size_t max_message;
    rpc_tls tls; /* owned copy */
    rpc_cert_watch *watches; /* of the TLS ports; freed after the server */
    rpc_authorize_fn authorize;
    void *authorize_ctx;
    rpc_validate_fn validate;
    void *validate_ctx;
    rpc_limits limits;         /* defaults filled in */
    size_t freed_bytes;        /* queued bytes dropped since the last malloc_trim */
    _Atomic int64_t shutdown_deadline; /* mono ns: calls still open then are cancelled */
    struct tag shutdown_tag;
    _Atomic bool shutting_down;
    _Atomic int64_t loop_ns;   /* mono: the loop last turned (rpc_server_probe) */
    int64_t wake_ns;           /* mono: a flush is due then (0: none) */
    int64_t busy_poll_ns;      /* see rpc_server_options.busy_poll_us */
    int64_t event_ns;          /* mono: the last event came then */
    bool shutdown_seen;
    bool forced;               /* shutdown went past its grace period */
    bool started;
    int live;           /* calls allocated (incl. pending requests) */
    rpc_call *calls;
    rpc_call *kicks;    /* calls whose sending starts at the end of this loop turn */
    rpc_call *rearms;   /* streams whose next read is posted once the turn's answers are out */
    rpc_inject_sink sink; /* what injected calls send (inject.h) */
    void *sink_arg;
};

#define RPC_N_LIMIT_ARGS 5

static void rpc_limits_defaults(rpc_limits *l)
{
    if (!l->max_send_queue_bytes)
        l->max_send_queue_bytes = 16u << 20;
    if (!l->max_send_queue_msgs)
        l->max_send_queue_msgs = 4096;
    if (!l->max_concurrent_streams)
        l->max_concurrent_streams = 1000;
    if (!l->handshake_timeout_ms)
        l->handshake_timeout_ms = 10000;
    if (!l->idle_timeout_ms)
        l->idle_timeout_ms = 300000;
    if (!l->keepalive_ms)
        l->keepalive_ms = 60000;
    if (!l->shutdown_grace_ms)
        l->shutdown_grace_ms = 2000;
}

static void int_arg(grpc_arg *a, const char *key, int value)
{
    a->type = GRPC_ARG_INTEGER;
    a->key = (char *)key;
    a->value.integer = value;
}

/* Connection limits: a peer that connects and says nothing is dropped after
 * the handshake timeout, one that holds a connection without calls after
 * the idle timeout, one that vanished after the keepalive ping goes
 * unanswered. (gRPC 1.51 has no cap on the number of connections: the
 * process's file descriptor limit is that cap.) */
static void rpc_limit_args(grpc_arg *a, const rpc_limits *l)
{
    int_arg(&a[0], GRPC_ARG_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams);
    int_arg(&a[1], GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, l->handshake_timeout_ms);
    int_arg(&a[2], GRPC_ARG_MAX_CONNECTION_IDLE_MS, l->idle_timeout_ms);
    int_arg(&a[3], GRPC_ARG_KEEPALIVE_TIME_MS, l->keepalive_ms);
    int_arg(&a[4], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
}

static void post_request(rpc_server *srv);
static void pump(rpc_call *c);
static void maybe_free(rpc_call *c);
static void run_drain(rpc_call *c, bool force);
static void owner_forgets(rpc_call *c);
static void on_send(rpc_call *c, bool ok);
static void on_close(rpc_call *c);
static void count_end(rpc_call *c, int code);
static void inject_send(rpc_call *c, struct outmsg *m);
static void kick_later(rpc_call *c);

/* Takes ownership of methods (n entries). */
static rpc_server *server_new(struct entry *methods, size_t n, void *ctx,
                              const rpc_server_options *o)
{
    rpc_init();
    rpc_server *srv = fl_calloc(1, sizeof *srv);
    srv->methods = methods;
    srv->n_methods = n;
    srv->ctx = ctx;
    srv->max_message = o->max_message ? o->max_message : RPC_DEFAULT_MAX_MESSAGE;
    srv->hooks = o->hooks;
    rpc_tls_copy(&srv->tls, &o->tls);
    srv->authorize = o->authorize;
    srv->authorize_ctx = o->authorize_ctx;
    srv->validate = o->validate;
    srv->validate_ctx = o->validate_ctx;
    srv->limits = o->limits;
    rpc_limits_defaults(&srv->limits);
    srv->busy_poll_ns = o->busy_poll_us > 0 ? (int64_t)o->busy_poll_us * 1000 : 0;
    grpc_arg args[4 + RPC_N_LIMIT_ARGS];
    rpc_size_args(args, srv->max_message);
    args[3].type = GRPC_ARG_STRING;
    args[3].key = (char *)GRPC_ARG_OPTIMIZATION_TARGET;
    args[3].value.string = (char *)"latency";
    /* gRPC sets SO_REUSEPORT by default: a second server on a taken port
     * would then silently share it. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    rpc_limit_args(args + 4, &srv->limits);
    grpc_channel_args cargs = { FL_ARRAY_LEN(args), args };
    srv->server = grpc_server_create(&cargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    srv->shutdown_tag.kind = TAG_SHUTDOWN;
    return srv;
}

rpc_server *rpc_server_new(const rpc_service *services, size_t n_services, void *ctx,
                           const rpc_server_options *opts)
{
    rpc_server_options o = RPC_SERVER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    size_t n = 0;
    for (size_t i = 0; i < n_services; i++)
        n += services[i].n_methods;
    struct entry *methods = fl_calloc(n ? n : 1, sizeof *methods);
    size_t k = 0;
    for (size_t i = 0; i < n_services; i++) {
        const ProtobufCServiceDescriptor *d = services[i].desc;
        for (size_t j = 0; j < services[i].n_methods; j++) {
            const rpc_method *m = &services[i].methods[j];
            /* rpc_path aborts on a name the descriptor lacks */
            methods[k].path = rpc_path(d, m->name);
            methods[k].input = protobuf_c_service_descriptor_get_method_by_name(d, m->name)->input;
            methods[k].kind = m->kind;
            methods[k].handler = m->handler;
            k++;
        }
    }
    return server_new(methods, n, ctx, &o);
}

int rpc_server_listen(rpc_server *srv, const char *addr)
{
    grpc_server_credentials *creds;
    if (rpc_server_credentials(&creds, &srv->tls, &srv->watches))
        return -1;
    int port = grpc_server_add_http2_port(srv->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        fl_error(FLAME_ERR_UNAVAILABLE, "cannot listen on %s (address in use or invalid)", addr);
        return -1;
    }
    grpc_server_start(srv->server);
    srv->started = true;
    for (int i = 0; i < N_PENDING_REQUESTS; i++)
        post_request(srv);
    return port;
}

static void link_call(rpc_server *srv, rpc_call *c)
{
    c->next = srv->calls;
    if (srv->calls)
        srv->calls->prev = c;
    srv->calls = c;
    srv->live++;
}

static void post_request(rpc_server *srv)
{
    rpc_call *c = fl_calloc(1, sizeof *c);
    c->srv = srv;
    c->t_new = (struct tag){ TAG_NEW, c };
    c->t_recv = (struct tag){ TAG_RECV, c };
    c->t_send = (struct tag){ TAG_SEND, c };
    c->t_close = (struct tag){ TAG_CLOSE, c };
    c->t_drain = (struct tag){ TAG_DRAIN, c };
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    link_call(srv, c);
    c->ops = 1;
    grpc_call_error e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md,
                                                 srv->cq, srv->cq, &c->t_new);
    if (e != GRPC_CALL_OK) {
        c->ops = 0;
        c->closed = true;
        c->dead = true;
        maybe_free(c);
    }
}

static void free_out(struct outmsg *m)
{
    if (!m)
        return;
    if (m->bb)
        grpc_byte_buffer_destroy(m->bb);
    free(m->details);
    free(m);
}

/* Drops what was queued and never sent (the call is gone). */
static void drop_queue(rpc_call *c)
{
    while (c->q_head) {
        struct outmsg *m = c->q_head;
        c->q_head = m->next;
        c->srv->freed_bytes += m->len;
        free_out(m);
    }
    c->q_tail = NULL;
    c->q_bytes = c->inflight ? c->inflight->len : 0;
    c->q_msgs = c->inflight ? 1 : 0;
}

static void maybe_free(rpc_call *c)
{
    if (c->ops > 0 || !c->closed || c->refs > 0)
        return;
    rpc_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->live--;
    drop_queue(c);
    if (c->recv_buf)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->call)
        grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->auth_release)
        c->auth_release(c->auth);
    free(c->path);
    free(c->peer_cert);
    free(c->peer_cn);
    free(c);
}

static void start_recv(rpc_call *c)
{
    grpc_op op = { 0 };
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    c->ops++;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK) {
        c->ops--;
        fl_log(FL_LOG_ERROR, "rpc", "cannot start RECV_MESSAGE on %s", c->path);
    }
}

/* The reader fell behind: the call ends with RESOURCE_EXHAUSTED now, its
 * queue is freed, and its owner hears of it as of a cancel. */
static void cancel_exhausted(rpc_call *c, size_t more)
{
    fl_log(FL_LOG_WARN, "rpc", "%s: the client reads too slowly (%zu bytes in %zu messages "
           "queued, %zu more); the call is cancelled", c->path, c->q_bytes, c->q_msgs, more);
    drop_queue(c);
    c->dead = true;
    count_end(c, RPC_RESOURCE_EXHAUSTED);
    run_drain(c, true);
    if (!c->finishing)
        owner_forgets(c);
    /* last: the peer may act on it at once */
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "the client reads too slowly: its send queue is full", NULL);
}

/* The metrics' one hook: every call's end, once, by method and code
 * (unknown methods share one label: a client cannot grow the series). */
static void count_end(rpc_call *c, int code)
{
    static const char *names[RPC_N_CODES] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED" };
    if (c->counted)
        return;
    c->counted = true;
    if (code < 0 || code >= RPC_N_CODES)
        code = RPC_UNKNOWN;
    struct entry *m = (struct entry *)c->method;
    char svc[128] = "unknown";
    const char *meth = "unknown";
    if (m && (!m->ends[code] || !m->duration)) {
        const char *slash = strrchr(m->path, '/');
        snprintf(svc, sizeof svc, "%.*s", (int)(slash - m->path - 1), m->path + 1);
        meth = slash + 1;
    }
    struct fl_series *s = m ? m->ends[code] : NULL;
    if (!s) {
        s = fl_counter("flame_rpc_requests_total", "gRPC calls served, by service, method and "
                       "status code.", "service", svc, "method", meth, "code", names[code], NULL);
        if (m)
            m->ends[code] = s;
    }
    fl_counter_add(s, 1);
    if (!m)
        return;
    if (!m->duration)
        m->duration = fl_histogram("flame_rpc_duration_seconds", "Time from a gRPC call's "
                                   "arrival to its final status, by method (streams: their "
                                   "life).", fl_metrics_latency_buckets,
                                   fl_metrics_latency_nbuckets, "service", svc, "method", meth,
                                   NULL);
    fl_histogram_observe(m->duration, (double)(fl_mono_ns() - c->start_ns) / 1e9);
}

static void enqueue(rpc_call *c, grpc_byte_buffer *bb, bool final, int code, char *details)
{
    if (final)
        count_end(c, code);
    size_t len = bb ? grpc_byte_buffer_length(bb) : 0;
    if (!final && c->q_msgs &&
        (c->q_bytes + len > c->srv->limits.max_send_queue_bytes ||
         c->q_msgs + 1 > c->srv->limits.max_send_queue_msgs)) {
        grpc_byte_buffer_destroy(bb);
        c->srv->freed_bytes += len;
        cancel_exhausted(c, len);
        return;
    }
    struct outmsg *m = fl_calloc(1, sizeof *m);
    m->bb = bb;
    m->len = len;
    c->q_bytes += len;
    c->q_msgs++;
    m->final = final;
    m->code = code;
    m->details = details;
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    if (!final && c->call && !c->sending)
        kick_later(c);
    else
        pump(c);
}

/* A stream's message that would go out alone waits for the end of the loop
 * turn: when the handler ends the call in the same turn, pump() sends the
 * message and the status in one batch. Clients that drop a stream on its
 * last message (Flame 0.6's flmping, over h2) otherwise reset the stream
 * before the trailers arrive, and h2 answers enough of those with GOAWAY
 * too_many_internal_resets. */
static void kick_later(rpc_call *c)
{
    if (c->kicked)
        return;
    c->kicked = true;
    c->refs++;
    c->knext = c->srv->kicks;
    c->srv->kicks = c;
}

static void kick_all(rpc_server *srv)
{
    while (srv->kicks) {
        rpc_call *c = srv->kicks;
        srv->kicks = c->knext;
        c->knext = NULL;
        c->kicked = false;
        pump(c);
        rpc_call_unref(c);
    }
}

/* gRPC 1.51 answers a read posted after bytes were consumed with a
 * WINDOW_UPDATE in a write of its own, at once (StreamFlowControl::
 * UpdateAction). Posted in on_recv, that write went out before the handler's
 * work and its answers: on a sequential stream, a system call and a wakeup
 * of the peer on every message's critical path. So a stream's next read is
 * posted at the end of the loop turn, after the flush and the sends it
 * started; the messages that came meanwhile wait in the transport. */
static void rearm_later(rpc_call *c)
{
    if (c->rearm)
        return;
    c->rearm = true;
    c->refs++;
    c->rnext = c->srv->rearms;
    c->srv->rearms = c;
}

static void rearm_all(rpc_server *srv, bool post)
{
    while (srv->rearms) {
        rpc_call *c = srv->rearms;
        srv->rearms = c->rnext;
        c->rnext = NULL;
        c->rearm = false;
        if (post && !c->dead && !c->finishing)
            start_recv(c);
        rpc_call_unref(c);
    }
}

static void pump(rpc_call *c)
{
    if (c->sending || !c->q_head)
        return;
    if (c->dead && !c->finishing) {
        return;
    }
    struct outmsg *m = c->q_head;
    c->q_head = m->next;
    if (m->bb && !m->final && c->q_head && c->q_head->final && !c->q_head->bb) {
        /* the last message and the status: one batch (kick_later) */
        struct outmsg *st = c->q_head;
        c->q_head = st->next;
        m->final = true;
        m->code = st->code;
        m->details = st->details;
        st->details = NULL;
        c->q_msgs--;
        free_out(st);
    }
    if (!c->q_head)
        c->q_tail = NULL;
    if (!c->call) {
        inject_send(c, m);
        return;
    }
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        n++;
        c->md_sent = true;
    }
    if (m->bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = m->bb;
        n++;
    }
    if (m->final) {
        c->inflight_details = grpc_slice_from_copied_string(m->details ? m->details : "");
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)m->code;
        ops[n].data.send_status_from_server.status_details =
            m->code == RPC_OK ? NULL : &c->inflight_details;
        ops[n].data.send_status_from_server.trailing_metadata_count = 0;
        n++;
    }
    c->inflight = m;
    c->sending = true;
    c->ops++;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL);
    if (e != GRPC_CALL_OK) {
        fl_log(FL_LOG_ERROR, "rpc", "start_batch(send) failed on %s: %d", c->path, (int)e);
        c->ops--;
        c->sending = false;
        c->q_bytes -= m->len;
        c->q_msgs--;
        if (m->final)
            grpc_slice_unref(c->inflight_details);
        c->inflight = NULL;
        free_out(m);
        c->dead = true;
        grpc_call_cancel(c->call, NULL);
    }
}

void rpc_call_reply(rpc_call *c, const ProtobufCMessage *msg)
{
    if (c->finishing)
        return;
    c->finishing = true;
    if (c->dead)
        return;
    enqueue(c, rpc_pack(msg), true, RPC_OK, NULL);
}

void rpc_call_reply_packed(rpc_call *c, const uint8_t *data, size_t len)
{
    if (c->finishing)
        return;
    c->finishing = true;
    if (c->dead)
        return;
    enqueue(c, rpc_bytes(data, len), true, RPC_OK, NULL);
}

void rpc_call_finish(rpc_call *c, int code, const char *fmt, ...)
{
    if (c->finishing)
        return;
    c->finishing = true;
    if (c->dead)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    enqueue(c, NULL, true, code, fl_strdup(buf));
}

bool rpc_call_send(rpc_call *c, const ProtobufCMessage *msg)
{
    if (c->dead || c->finishing)
        return false;
    enqueue(c, rpc_pack(msg), false, 0, NULL);
    return !c->dead;
}

bool rpc_call_send_packed(rpc_call *c, const uint8_t *data, size_t len)
{
    if (c->dead || c->finishing)
        return false;
    enqueue(c, rpc_bytes(data, len), false, 0, NULL);
    return !c->dead;
}

void rpc_call_on_drain(rpc_call *c, size_t low_water, void (*fn)(rpc_call *, void *), void *arg)
{
    if (c->dead || c->finishing) {
        fn(c, arg);
        return;
    }
    c->drain_fn = fn;
    c->drain_arg = arg;
    c->drain_low = low_water;
    if (!c->q_msgs && !c->call) { /* injected: its sends are done already */
        run_drain(c, false);
    } else if (!c->q_msgs) { /* no send will complete to call it: ask for a loop turn */
        c->ops++;
        if (grpc_call_start_batch(c->call, NULL, 0, &c->t_drain, NULL) != GRPC_CALL_OK)
            c->ops--;
    }
}

/* Runs a drain callback that is due (force: the call is gone), once. */
static void run_drain(rpc_call *c, bool force)
{
    if (!c->drain_fn)
        return;
    if (!force && !c->dead && !c->finishing &&
        (c->q_bytes > c->drain_low || c->q_msgs > c->srv->limits.max_send_queue_msgs / 4))
        return;
    void (*fn)(rpc_call *, void *) = c->drain_fn;
    c->drain_fn = NULL;
    fn(c, c->drain_arg);
}

void rpc_call_on_cancel(rpc_call *c, void (*fn)(rpc_call *, void *), void *arg)
{
    c->cancel_fn = fn;
    c->cancel_arg = arg;
}

void rpc_call_on_end(rpc_call *c, void (*fn)(rpc_call *, void *), void *arg)
{
    c->end_fn = fn;
    c->end_arg = arg;
}

void rpc_call_ref(rpc_call *c)
{
    c->refs++;
}

void rpc_call_unref(rpc_call *c)
{
    c->refs--;
    maybe_free(c);
}

void rpc_call_set_user(rpc_call *c, void *user)
{
    c->user = user;
}

void *rpc_call_user(const rpc_call *c)
{
    return c->user;
}

bool rpc_call_alive(const rpc_call *c)
{
    return !c->dead && !c->finishing;
}

const char *rpc_call_method(const rpc_call *c)
{
    return c->path;
}

rpc_kind rpc_call_kind(const rpc_call *c)
{
    return c->method ? c->method->kind : RPC_KIND_UNARY;
}

static char *property(grpc_auth_context *ctx, const char *name)
{
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    return p ? fl_strndup(p->value, p->value_length) : NULL;
}

/* Reads what the handshake left in the call's auth context, once. */
static void know_peer(const rpc_call *cc)
{
    rpc_call *c = (rpc_call *)cc; /* a cache: logically const */
    if (c->peer_known)
        return;
    c->peer_known = true;
    if (!rpc_tls_enabled(&c->srv->tls) || !c->call)
        return;
    grpc_auth_context *ctx = grpc_call_auth_context(c->call);
    if (!ctx)
        return;
    char *type = property(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    c->is_tls = type && strcmp(type, GRPC_SSL_TRANSPORT_SECURITY_TYPE) == 0;
    free(type);
    if (c->is_tls) {
        /* present only for a certificate that verified */
        c->peer_cert = property(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
        c->peer_cn = property(ctx, GRPC_X509_CN_PROPERTY_NAME);
    }
    grpc_auth_context_release(ctx);
}

const char *rpc_call_peer_identity(const rpc_call *c)
{
    know_peer(c);
    return c->peer_cert ? c->peer_cn : NULL;
}

const char *rpc_call_peer_cert(const rpc_call *c)
{
    know_peer(c);
    return c->peer_cert;
}

bool rpc_call_is_tls(const rpc_call *c)
{
    know_peer(c);
    return c->is_tls;
}

void rpc_call_set_auth(rpc_call *c, void *auth, void (*release)(void *))
{
    if (c->auth_release)
        c->auth_release(c->auth);
    c->auth = auth;
    c->auth_release = release;
}

void *rpc_call_auth(const rpc_call *c)
{
    return c->auth;
}

/* Tells the owner of a parked call that it is gone (rpc_call_on_cancel). */
static void owner_forgets(rpc_call *c)
{
    void (*fn)(rpc_call *, void *) = c->cancel_fn;
    c->cancel_fn = NULL;
    if (fn)
        fn(c, c->cancel_arg);
}

/* rpc/ ends a call on its own ("<path>: why"): a stream its handler parked
 * ends here, so the owner must forget it (its sends fail from now on; it
 * would send on a freed call: fuzz_sm). Every refusal of a request goes
 * through here. */
static void refuse(rpc_call *c, int code, const char *why)
{
    rpc_call_finish(c, code, "%s: %s", c->path, why);
    owner_forgets(c);
}

/* The authorization hook's verdict on the call (req NULL) or on one of its
 * requests; false when it finished the call. */
static bool authorized(rpc_server *srv, rpc_call *c, const ProtobufCMessage *req)
{
    if (!srv->authorize)
        return true;
    char msg[512] = "";
    int code = srv->authorize(c, req, msg, sizeof msg, srv->authorize_ctx);
    if (code == RPC_OK)
        return true;
    refuse(c, code, *msg ? msg : "permission denied");
    return false;
}

/* A new call's method (UNIMPLEMENTED when unknown) and authorization;
 * false when the call was finished here. */
static bool accept_call(rpc_server *srv, rpc_call *c)
{
    for (size_t i = 0; i < srv->n_methods; i++)
        if (strcmp(srv->methods[i].path, c->path) == 0) {
            c->method = &srv->methods[i];
            break;
        }
    if (!c->method) {
        rpc_call_finish(c, RPC_UNIMPLEMENTED, "unknown method %s", c->path);
        return false;
    }
    return authorized(srv, c, NULL);
}

static void on_new(rpc_server *srv, rpc_call *c, bool ok)
{
    if (!srv->shutting_down)
        post_request(srv);
    if (!ok) {
        c->closed = true;
        c->dead = true;
        return;
    }
    c->path = rpc_slice_str(c->details.method);
    c->start_ns = fl_mono_ns();
    grpc_op op = { 0 };
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    c->ops++;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
        c->ops--;
        c->closed = true;
    }
    if (accept_call(srv, c))
        start_recv(c);
}

static bool streams_in(const rpc_call *c)
{
    return c->method->kind == RPC_KIND_CLIENT_STREAM || c->method->kind == RPC_KIND_BIDI;
}

/* Hands one request (NULL: the client half-closed) to the handler. */
static void deliver(rpc_server *srv, rpc_call *c, const uint8_t *data, size_t len)
{
    const struct entry *m = c->method;
    if (!data) {
        m->handler(c, NULL, srv->ctx);
        return;
    }
    ProtobufCMessage *req = rpc_unpack(m->input, len, data);
    if (!req) {
        refuse(c, RPC_INVALID_ARGUMENT, "malformed request message");
        return;
    }
    char why[256] = "";
    int code = RPC_OK;
    if (!rpc_message_valid(req, why, sizeof why))
        code = RPC_INVALID_ARGUMENT;
    else if (srv->validate)
        code = srv->validate(c, req, why, sizeof why, srv->validate_ctx);
    if (code != RPC_OK)
        refuse(c, code, *why ? why : "invalid request");
    else if (authorized(srv, c, req))
        m->handler(c, req, srv->ctx);
    protobuf_c_message_free_unpacked(req, NULL);
}

/* One received message (data, len), or the end of the client's messages
 * (data NULL): what the network and rpc_inject_message share. */
static void receive(rpc_server *srv, rpc_call *c, const uint8_t *data, size_t len)
{
    /* an empty message is valid protobuf: never pass NULL for it */
    static const uint8_t empty[1];
    if (data)
        deliver(srv, c, len ? data : empty, len);
    else if (streams_in(c))
        deliver(srv, c, NULL, 0);
    else
        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "%s: no request message", c->path);
}

static void on_recv(rpc_server *srv, rpc_call *c, bool ok)
{
    grpc_byte_buffer *bb = c->recv_buf;
    c->recv_buf = NULL;
    if (c->dead || c->finishing || !ok) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    if (!bb) {
        receive(srv, c, NULL, 0);
        return;
    }
    grpc_slice s = rpc_flatten(bb);
    grpc_byte_buffer_destroy(bb);
    receive(srv, c, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
    grpc_slice_unref(s);
    if (streams_in(c) && !c->dead && !c->finishing)
        rearm_later(c);
}

static void on_send(rpc_call *c, bool ok)
{
    struct outmsg *m = c->inflight;
    c->inflight = NULL;
    c->sending = false;
    if (m) {
        c->q_bytes -= m->len;
        c->q_msgs--;
        c->srv->freed_bytes += m->len;
    }
    if (m && m->final) {
        grpc_slice_unref(c->inflight_details);
        c->dead = true;
    }
    free_out(m);
    if (!ok && !c->dead) {
        c->dead = true;
    }
    pump(c);
    run_drain(c, false);
}

static void on_close(rpc_call *c)
{
    c->closed = true;
    run_drain(c, true);
    bool was_alive = !c->dead;
    if (c->close_cancelled || was_alive) {
        if (c->close_cancelled && c->path)
            count_end(c, RPC_CANCELLED);
        c->dead = true;
        drop_queue(c);
        if (!c->finishing)
            owner_forgets(c);
    }
    void (*fn)(rpc_call *, void *) = c->end_fn;
    c->end_fn = NULL;
    if (fn)
        fn(c, c->end_arg);
}

static void dispatch(rpc_server *srv, grpc_event ev)
{
    struct tag *t = ev.tag;
    if (t->kind == TAG_SHUTDOWN) {
        srv->shutdown_seen = true;
        return;
    }
    rpc_call *c = t->call;
    c->ops--;
    switch (t->kind) {
    case TAG_NEW: on_new(srv, c, ev.success); break;
    case TAG_RECV: on_recv(srv, c, ev.success); break;
    case TAG_SEND: on_send(c, ev.success); break;
    case TAG_CLOSE: on_close(c); break;
    case TAG_DRAIN: run_drain(c, false); break;
    default: break;
    }
    maybe_free(c);
}

/* glibc keeps freed memory of big queues for the next ones: once enough
 * went back, hand it to the kernel while idle (costs a few ms). */
static void trim(rpc_server *srv)
{
    if (srv->freed_bytes < (64u << 20))
        return;
    srv->freed_bytes = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Shutdown waits for the calls and connections to end, at most the grace
 * period; then open calls are cancelled again, and a second grace period
 * later the loop stops whatever peers still hold (a connection that never
 * finished its handshake, a peer that never reads). */
static bool shutdown_overdue(rpc_server *srv)
{
    if (!srv->shutting_down || srv->shutdown_seen || !srv->shutdown_deadline)
        return false;
    int64_t now = fl_mono_ns();
    if (now < srv->shutdown_deadline)
        return false;
    if (!srv->forced) {
        fl_log(FL_LOG_WARN, "rpc", "shutdown: %d call(s) still open after %d ms; cancelling them",
               srv->live, srv->limits.shutdown_grace_ms);
        grpc_server_cancel_all_calls(srv->server);
        srv->forced = true;
        srv->shutdown_deadline = now + (int64_t)srv->limits.shutdown_grace_ms * 1000000;
        return false;
    }
    fl_log(FL_LOG_WARN, "rpc", "shutdown: peers still hold %d call(s); stopping without them",
           srv->live);
    return true;
}

void rpc_server_run(rpc_server *srv)
{
    int64_t tick_ns = (int64_t)(srv->hooks.tick_ms > 0 ? srv->hooks.tick_ms : 1000) * 1000000;
    int64_t next_tick = fl_mono_ns() + tick_ns;
    bool dirty = false;
    int batch = 0;
    for (;;) {
        kick_all(srv);
        if (!dirty) /* the turn's flush is done and its answers started */
            rearm_all(srv, true);
        atomic_store_explicit(&srv->loop_ns, fl_mono_ns(), memory_order_relaxed);
        if (srv->shutdown_seen && srv->live == 0)
            break;
        gpr_timespec dl;
        if (dirty) {
            dl = gpr_time_0(GPR_CLOCK_MONOTONIC);
        } else {
            int64_t until = srv->wake_ns && srv->wake_ns < next_tick ? srv->wake_ns : next_tick;
            int64_t wait = until - fl_mono_ns();
            if (wait < 0)
                wait = 0;
            if ((srv->shutdown_seen || srv->shutting_down) && wait > 100000000)
                wait = 100000000;
            dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(wait, GPR_TIMESPAN));
        }
        /* busy polling: a look that does not sleep, until busy_poll_ns
         * after the last event (nothing else is due meanwhile) */
        int64_t now = srv->busy_poll_ns && !dirty ? fl_mono_ns() : 0;
        bool poll = now && now - srv->event_ns < srv->busy_poll_ns && now < next_tick &&
                    !(srv->wake_ns && now >= srv->wake_ns) && !srv->shutting_down;
        grpc_event ev = grpc_completion_queue_next(srv->cq, poll ? gpr_time_0(GPR_CLOCK_MONOTONIC)
                                                                 : dl, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT && poll)
            continue;
        if (ev.type == GRPC_OP_COMPLETE && srv->busy_poll_ns)
            srv->event_ns = fl_mono_ns();
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            if (shutdown_overdue(srv))
                break;
            if (srv->wake_ns && fl_mono_ns() >= srv->wake_ns) {
                srv->wake_ns = 0;
                dirty = true;
            }
            if (!dirty)
                trim(srv);
            if (dirty) {
                if (srv->hooks.flush)
                    srv->hooks.flush(srv->hooks.ctx);
                dirty = false;
                batch = 0;
            }
            if (fl_mono_ns() >= next_tick) {
                next_tick = fl_mono_ns() + tick_ns;
                if (srv->hooks.tick && !srv->shutdown_seen) {
                    srv->hooks.tick(srv->hooks.ctx);
                    dirty = true;
                }
            }
            continue;
        }
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        dispatch(srv, ev);
        dirty = true;
        if (++batch >= 256) {
            if (srv->hooks.flush)
                srv->hooks.flush(srv->hooks.ctx);
            dirty = false;
            batch = 0;
        }
    }
    if (srv->hooks.flush)
        srv->hooks.flush(srv->hooks.ctx);
    kick_all(srv);
    rearm_all(srv, false); /* stopped: no more reads */
}

void rpc_server_wake_at(rpc_server *srv, int64_t mono_ns)
{
    if (!srv->wake_ns || mono_ns < srv->wake_ns)
        srv->wake_ns = mono_ns;
}

int rpc_server_probe(const rpc_server *srv, char *why, size_t size)
{
    int64_t last = atomic_load_explicit(&srv->loop_ns, memory_order_relaxed);
    int64_t age = fl_mono_ns() - last;
    if (srv->shutting_down) {
        snprintf(why, size, "the server is stopping");
        return 0;
    }
    /* the loop turns at least every tick (1 s without hooks) */
    if (!last || age > RPC_PROBE_STUCK_NS) {
        snprintf(why, size, "the rpc loop last turned %.1f s ago (stuck?)",
                 last ? (double)age / 1e9 : -1.0);
        return 0;
    }
    return 1;
}

void rpc_server_shutdown(rpc_server *srv)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&srv->shutting_down, &expected, true))
        return;
    srv->shutdown_deadline = fl_mono_ns() + (int64_t)srv->limits.shutdown_grace_ms * 1000000;
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
    /* the shutdown tag comes only once every call is done: parked calls
     * must be cancelled now, not when it arrives */
    grpc_server_cancel_all_calls(srv->server);
}

void rpc_server_free(rpc_server *srv)
{
    if (!srv)
        return;
    if (!srv->shutting_down && srv->started) {
        rpc_server_shutdown(srv);
        rpc_server_run(srv);
    }
    if (srv->started && !srv->shutdown_seen) {
        /* the loop gave up on peers that held on past both grace periods:
         * gRPC still owns their calls, so its objects stay (the process is
         * stopping) rather than wait for ever */
        fl_log(FL_LOG_WARN, "rpc", "server left behind with %d call(s) held by peers", srv->live);
        return;
    }
    grpc_server_destroy(srv->server);
    grpc_completion_queue_shutdown(srv->cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    grpc_completion_queue_destroy(srv->cq);
    rpc_cert_watch_free(srv->watches);
    rpc_tls_clear(&srv->tls);
    free(srv->methods);
    free(srv);
}

/* ---- in-process injection (inject.h) -------------------------------------
 * A fake call has no grpc_call: what it sends completes at once (and goes
 * to the sink), a final status is followed by the close, and the injector's
 * end is the peer going away. Everything else is the real path above. */

void rpc_inject_set_sink(rpc_server *srv, rpc_inject_sink fn, void *arg)
{
    srv->sink = fn;
    srv->sink_arg = arg;
}

static void inject_send(rpc_call *c, struct outmsg *m)
{
    rpc_server *srv = c->srv;
    bool final = m->final;
    if (srv->sink) {
        grpc_slice s = m->bb ? rpc_flatten(m->bb) : grpc_empty_slice();
        srv->sink(srv->sink_arg, c, m->bb ? GRPC_SLICE_START_PTR(s) : NULL, GRPC_SLICE_LENGTH(s),
                  final, m->code, m->details);
        grpc_slice_unref(s);
    }
    c->md_sent = true;
    c->inflight = m;
    c->inflight_details = grpc_empty_slice();
    c->sending = true;
    on_send(c, true);
    if (final)
        on_close(c);
}

rpc_call *rpc_inject_open(rpc_server *srv, const char *path)
{
    rpc_call *c = fl_calloc(1, sizeof *c);
    c->srv = srv;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    link_call(srv, c);
    c->refs = 1; /* the injector's, until rpc_inject_end */
    c->path = fl_strdup(path);
    c->start_ns = fl_mono_ns();
    accept_call(srv, c);
    return c;
}

void rpc_inject_message(rpc_call *c, const uint8_t *data, size_t len)
{
    if (c->dead || c->finishing || c->recv_over)
        return;
    c->recv_over = !data || !streams_in(c);
    receive(c->srv, c, data, len);
}

void rpc_inject_end(rpc_call *c)
{
    if (!c->closed) {
        c->close_cancelled = 1;
        on_close(c);
    }
    rpc_call_unref(c);
}

void rpc_inject_flush(rpc_server *srv)
{
    if (srv->hooks.flush)
        srv->hooks.flush(srv->hooks.ctx);
}

void rpc_inject_tick(rpc_server *srv)
{
    if (srv->hooks.tick)
        srv->hooks.tick(srv->hooks.ctx);
}
