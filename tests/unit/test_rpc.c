/* Call life-cycle tests of rpc/: a real server and channel on loopback in
 * one process, serving a hand-made service "test.Echo" whose messages are
 * flame.v1.Result.
 *
 * Threads: the server loop runs on its own thread; the tests reach it
 * through on_server(), which runs a function there (from the tick hook)
 * and waits for it. Blocking client calls that must overlap a server-side
 * step run on helper threads (struct pending). */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpc/rpc.h"
#include "util/util.h"

#include "shim.pb-c.h"
#include "types.pb-c.h"

/* ---- the service -------------------------------------------------------- */

#define RESULT &flame__v1__result__descriptor
static const ProtobufCMethodDescriptor echo_methods[] = {
    { "Bidi", RESULT, RESULT },   { "ClientStream", RESULT, RESULT },
    { "Park", RESULT, RESULT },   { "Secret", RESULT, RESULT },
    { "ServerStream", RESULT, RESULT }, { "Unary", RESULT, RESULT },
};
static const unsigned echo_by_name[] = { 0, 1, 2, 3, 4, 5 };
static const ProtobufCServiceDescriptor echo_desc = {
    PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC, "test.Echo", "Echo", "Test__Echo", "test",
    FL_ARRAY_LEN(echo_methods), echo_methods, echo_by_name,
};
#define PATH(name) rpc_path(&echo_desc, name)

static _Atomic int handled;    /* handler calls with a request */
static _Atomic int secret_calls;
static _Atomic int cancels;    /* on_cancel callbacks */
static _Atomic int parked_n;
static rpc_call *parked[32];   /* server thread only */
static bool send_in_cancel;    /* rpc_call_send's answer inside on_cancel */
static _Atomic int authorized_calls;
static _Atomic bool peer_seen; /* the hook got a non-NULL identity */
static char peer_cn[64];       /* the identity the hook got (server thread) */
static _Atomic bool peer_tls;  /* rpc_call_is_tls in the hook */
static _Atomic bool peer_pem;  /* rpc_call_peer_cert was a PEM certificate */

static Flame__V1__Result result(int rc, const char *msg)
{
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    r.return_code = rc;
    if (msg) {
        r._message_case = FLAME__V1__RESULT___MESSAGE_MESSAGE;
        r.message = (char *)msg;
    }
    return r;
}

static const Flame__V1__Result *as_result(const ProtobufCMessage *m)
{
    ck_assert_ptr_eq(m->descriptor, &flame__v1__result__descriptor);
    return (const Flame__V1__Result *)m;
}

static void unary_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    const Flame__V1__Result *req = as_result(m);
    handled++;
    Flame__V1__Result r = result(req->return_code + 1, req->_message_case ? req->message : NULL);
    rpc_call_reply(call, &r.base);
}

static void secret_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    secret_calls++;
    rpc_call_reply(call, NULL);
}

static void server_stream_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    handled++;
    for (int i = 0; i < as_result(m)->return_code; i++) {
        Flame__V1__Result r = result(i, NULL);
        ck_assert(rpc_call_send(call, &r.base));
    }
    rpc_call_finish(call, RPC_OK, "%s", "");
}

/* Sums the return codes of the client's messages into the call's user. */
static void client_stream_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    intptr_t sum = (intptr_t)rpc_call_user(call);
    if (m) {
        handled++;
        rpc_call_set_user(call, (void *)(sum + as_result(m)->return_code));
        return;
    }
    Flame__V1__Result r = result((int)sum, NULL);
    rpc_call_reply(call, &r.base);
}

static void on_cancel(rpc_call *call, void *arg)
{
    cancels++;
    send_in_cancel = rpc_call_send(call, NULL);
}

static void bidi_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    if (!m) {
        rpc_call_finish(call, RPC_OK, "%s", "");
        return;
    }
    handled++;
    Flame__V1__Result r = result(as_result(m)->return_code * 2, NULL);
    rpc_call_send(call, &r.base);
    rpc_call_on_cancel(call, on_cancel, NULL); /* the owner of an open stream */
}

/* Parks the call; return_code 1 also takes a ref (released by the test). */
static void park_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    handled++;
    if (as_result(m)->return_code == 1)
        rpc_call_ref(call);
    rpc_call_set_user(call, (void *)"parked");
    rpc_call_on_cancel(call, on_cancel, NULL);
    ck_assert_int_lt(parked_n, FL_ARRAY_LEN(parked));
    parked[parked_n] = call;
    parked_n++;
}

static const rpc_method echo_table[] = {
    { "Unary", RPC_KIND_UNARY, unary_h },
    { "Secret", RPC_KIND_UNARY, secret_h },
    { "ServerStream", RPC_KIND_SERVER_STREAM, server_stream_h },
    { "ClientStream", RPC_KIND_CLIENT_STREAM, client_stream_h },
    { "Bidi", RPC_KIND_BIDI, bidi_h },
    { "Park", RPC_KIND_UNARY, park_h },
};

/* Secret is closed to all; a Unary or Bidi request asking for 666 is
 * refused by what it says. */
static int authorize(rpc_call *call, const ProtobufCMessage *req, char *message, size_t size,
                     void *ctx)
{
    if (req) {
        if ((strcmp(rpc_call_method(call), PATH("Unary")) != 0 &&
             strcmp(rpc_call_method(call), PATH("Bidi")) != 0) ||
            ((const Flame__V1__Result *)req)->return_code != 666)
            return RPC_OK;
        snprintf(message, size, "not this one");
        return RPC_PERMISSION_DENIED;
    }
    authorized_calls++;
    const char *peer = rpc_call_peer_identity(call);
    if (peer)
        peer_seen = true;
    snprintf(peer_cn, sizeof peer_cn, "%s", peer ? peer : "");
    peer_tls = rpc_call_is_tls(call);
    const char *pem = rpc_call_peer_cert(call);
    peer_pem = pem && strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0;
    ck_assert(!pem == !peer);
    if (strcmp(rpc_call_method(call), PATH("Secret")) != 0)
        return RPC_OK;
    snprintf(message, size, "not for you");
    return RPC_PERMISSION_DENIED;
}

/* ---- running things on the server thread -------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void (*job)(void *);
static void *job_arg;

static void tick(void *ctx)
{
    pthread_mutex_lock(&mu);
    if (job) {
        job(job_arg);
        job = NULL;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
}

static void on_server(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&mu);
    job = fn;
    job_arg = arg;
    while (job)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static bool wait_for(_Atomic int *v, int want)
{
    for (int i = 0; i < 500 && *v < want; i++)
        nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
    return *v >= want;
}

static void pause_ms(int ms)
{
    nanosleep(&(struct timespec){ ms / 1000, (long)(ms % 1000) * 1000000 }, NULL);
}

/* ---- fixture ------------------------------------------------------------ */

#define MAX_MESSAGE (64 * 1024)

static rpc_server *srv;
static pthread_t srv_thread;
static bool srv_joined;
static rpc_channel *ch;

static void *serve(void *arg)
{
    rpc_server_run(arg);
    return NULL;
}

/* Starts the server (TLS when tls is not NULL); returns its port. */
static int start_server(const rpc_tls *tls)
{
    handled = secret_calls = cancels = parked_n = authorized_calls = 0;
    peer_seen = peer_tls = peer_pem = false;
    peer_cn[0] = 0;
    send_in_cancel = true;
    rpc_service svc = { &echo_desc, echo_table, FL_ARRAY_LEN(echo_table) };
    rpc_server_options o = RPC_SERVER_OPTIONS_INIT;
    o.max_message = MAX_MESSAGE;
    o.hooks.tick = tick;
    o.hooks.tick_ms = 5;
    o.authorize = authorize;
    if (tls)
        o.tls = *tls;
    srv = rpc_server_new(&svc, 1, NULL, &o);
    int port = rpc_server_listen(srv, "127.0.0.1:0");
    ck_assert_msg(port > 0, "listen: %s", flame_error_last());
    pthread_create(&srv_thread, NULL, serve, srv);
    srv_joined = false;
    return port;
}

static void setup(void)
{
    int port = start_server(NULL);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    ck_assert_int_eq(rpc_channel_new(&ch, target, NULL), FLAME_OK);
}

static void stop_server(void)
{
    rpc_server_shutdown(srv);
    pthread_join(srv_thread, NULL);
    srv_joined = true;
}

static void teardown(void)
{
    rpc_channel_free(ch);
    if (!srv_joined)
        stop_server();
    rpc_server_free(srv);
}

/* A unary call on a helper thread. */
struct pending {
    pthread_t th;
    const char *path;
    int rc;
    int timeout_ms;
    flame_status st;
    int code;    /* gRPC status */
    int resp_rc; /* return_code of the reply */
    rpc_cancel *cancel;
};

static void *pending_main(void *arg)
{
    struct pending *p = arg;
    Flame__V1__Result req = result(p->rc, NULL);
    Flame__V1__Result *resp;
    p->st = rpc_unary_cancellable(ch, p->path, &req.base, RESULT, (ProtobufCMessage **)&resp,
                                  p->timeout_ms, p->cancel);
    p->code = p->st ? rpc_last_code() : RPC_OK;
    if (!p->st) {
        p->resp_rc = resp->return_code;
        flame__v1__result__free_unpacked(resp, NULL);
    }
    return NULL;
}

static void start(struct pending *p, const char *path, int rc, int timeout_ms, rpc_cancel *cancel)
{
    *p = (struct pending){ .path = path, .rc = rc, .timeout_ms = timeout_ms, .cancel = cancel };
    pthread_create(&p->th, NULL, pending_main, p);
}

static void join(struct pending *p)
{
    pthread_join(p->th, NULL);
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(unary_reply)
{
    Flame__V1__Result req = result(41, "hello"), *resp;
    ck_assert_int_eq(rpc_unary(ch, PATH("Unary"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                               5000),
                     FLAME_OK);
    ck_assert_int_eq(resp->return_code, 42);
    ck_assert_str_eq(resp->message, "hello");
    flame__v1__result__free_unpacked(resp, NULL);
    ck_assert_int_eq(handled, 1);
    ck_assert_int_eq(authorized_calls, 1);
    ck_assert(!peer_seen); /* plaintext: no verified identity */
}
END_TEST

START_TEST(malformed_request_never_reaches_handler)
{
    const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99 };
    uint8_t *resp = NULL;
    size_t len;
    ck_assert_int_eq(rpc_unary_raw(ch, PATH("Unary"), garbage, sizeof garbage, &resp, &len, 5000),
                     FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(rpc_last_code(), RPC_INVALID_ARGUMENT);
    ck_assert_str_eq(flame_error_last(), "/test.Echo/Unary: malformed request message");
    ck_assert_int_eq(handled, 0);
    /* an empty message is a valid one */
    ck_assert_int_eq(rpc_unary_raw(ch, PATH("Unary"), garbage, 0, &resp, &len, 5000), FLAME_OK);
    free(resp);
    ck_assert_int_eq(handled, 1);
}
END_TEST

START_TEST(unknown_method_is_unimplemented)
{
    uint8_t *resp = NULL;
    size_t len;
    ck_assert_int_eq(rpc_unary_raw(ch, "/test.Echo/Nope", (const uint8_t *)"", 0, &resp, &len, 5000),
                     FLAME_ERR_UNIMPLEMENTED);
    ck_assert_int_eq(rpc_last_code(), RPC_UNIMPLEMENTED);
    ck_assert_int_eq(authorized_calls, 0);
}
END_TEST

START_TEST(authorization_denies_before_handler)
{
    Flame__V1__Result req = result(1, NULL), *resp = NULL;
    flame_status st = rpc_unary(ch, PATH("Secret"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                                5000);
    ck_assert_int_ne(st, FLAME_OK);
    ck_assert_int_eq(rpc_last_code(), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(flame_error_last(), "/test.Echo/Secret: not for you");
    ck_assert_int_eq(secret_calls, 0);
    ck_assert_int_eq(authorized_calls, 1);
}
END_TEST

START_TEST(authorization_sees_the_request)
{
    Flame__V1__Result req = result(666, NULL), *resp = NULL;
    ck_assert_int_ne(rpc_unary(ch, PATH("Unary"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                               5000), FLAME_OK);
    ck_assert_int_eq(rpc_last_code(), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(flame_error_last(), "/test.Echo/Unary: not this one");
    ck_assert_int_eq(handled, 0);
    req = result(665, NULL);
    ck_assert_int_eq(rpc_unary(ch, PATH("Unary"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                               5000), FLAME_OK);
    flame__v1__result__free_unpacked(resp, NULL);
    ck_assert_int_eq(handled, 1);
}
END_TEST

START_TEST(server_stream)
{
    Flame__V1__Result req = result(5, NULL);
    rpc_stream *st;
    ck_assert_int_eq(rpc_stream_open(&st, ch, PATH("ServerStream"), &req.base, 5000), FLAME_OK);
    int n = 0;
    for (;;) {
        ProtobufCMessage *m;
        ck_assert_int_eq(rpc_stream_next(st, RESULT, &m), FLAME_OK);
        if (!m)
            break;
        ck_assert_int_eq(((Flame__V1__Result *)m)->return_code, n);
        protobuf_c_message_free_unpacked(m, NULL);
        n++;
    }
    ck_assert_int_eq(n, 5);
    rpc_stream_free(st);
}
END_TEST

START_TEST(bidi_stream)
{
    rpc_stream *st;
    ck_assert_int_eq(rpc_bidi_open(&st, ch, PATH("Bidi")), FLAME_OK);
    for (int i = 1; i <= 3; i++) {
        Flame__V1__Result req = result(i, NULL);
        ck_assert_int_eq(rpc_bidi_send(st, &req.base), FLAME_OK);
        ProtobufCMessage *m;
        ck_assert_int_eq(rpc_stream_next(st, RESULT, &m), FLAME_OK);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(((Flame__V1__Result *)m)->return_code, 2 * i);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    ck_assert_int_eq(rpc_bidi_close_send(st), FLAME_OK);
    ProtobufCMessage *m;
    ck_assert_int_eq(rpc_stream_next(st, RESULT, &m), FLAME_OK);
    ck_assert_ptr_null(m); /* the handler saw the half-close and finished */
    rpc_stream_free(st);
}
END_TEST

START_TEST(a_denied_message_ends_a_stream_and_tells_its_owner)
{
    rpc_stream *st;
    ck_assert_int_eq(rpc_bidi_open(&st, ch, PATH("Bidi")), FLAME_OK);
    Flame__V1__Result req = result(1, NULL);
    ck_assert_int_eq(rpc_bidi_send(st, &req.base), FLAME_OK);
    ProtobufCMessage *m;
    ck_assert_int_eq(rpc_stream_next(st, RESULT, &m), FLAME_OK);
    protobuf_c_message_free_unpacked(m, NULL);
    req = result(666, NULL);
    ck_assert_int_eq(rpc_bidi_send(st, &req.base), FLAME_OK);
    ck_assert_int_ne(rpc_stream_next(st, RESULT, &m), FLAME_OK);
    ck_assert_int_eq(rpc_last_code(), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(flame_error_last(), "/test.Echo/Bidi: not this one");
    ck_assert(wait_for(&cancels, 1));
    ck_assert(!send_in_cancel); /* the call is finishing: the owner's sends fail */
    ck_assert_int_eq(handled, 1);
    rpc_stream_free(st);
}
END_TEST

START_TEST(client_stream)
{
    rpc_stream *st;
    ck_assert_int_eq(rpc_client_stream_open(&st, ch, PATH("ClientStream"), 5000), FLAME_OK);
    for (int i = 1; i <= 4; i++) {
        Flame__V1__Result req = result(i, NULL);
        ck_assert_int_eq(rpc_client_stream_send(st, &req.base), FLAME_OK);
    }
    ProtobufCMessage *m;
    ck_assert_int_eq(rpc_client_stream_finish(st, RESULT, &m), FLAME_OK);
    ck_assert_int_eq(((Flame__V1__Result *)m)->return_code, 10);
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_stream_free(st);
    ck_assert_int_eq(handled, 4);
    /* a malformed message in the stream ends it before the handler: field
     * 1 of a SessionContext is a string where Result has an int */
    ck_assert_int_eq(rpc_client_stream_open(&st, ch, PATH("ClientStream"), 5000), FLAME_OK);
    Flame__V1__SessionContext bad = FLAME__V1__SESSION_CONTEXT__INIT;
    bad.session_id = (char *)"not a number";
    ck_assert_int_eq(rpc_client_stream_send(st, &bad.base), FLAME_OK);
    pause_ms(100);
    /* the server has answered: this send may fail, finish() has the status */
    rpc_client_stream_send(st, &bad.base);
    ck_assert_int_eq(rpc_client_stream_finish(st, RESULT, &m), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(flame_error_last(), "/test.Echo/ClientStream: malformed request message");
    rpc_stream_free(st);
    ck_assert_int_eq(handled, 4);
}
END_TEST

START_TEST(parked_call_cancelled_by_client)
{
    struct pending p;
    start(&p, PATH("Park"), 0, 300, NULL); /* the deadline cancels it */
    ck_assert(wait_for(&parked_n, 1));
    join(&p);
    ck_assert_int_eq(p.code, RPC_DEADLINE_EXCEEDED);
    ck_assert(wait_for(&cancels, 1));
    ck_assert(!send_in_cancel);
    pause_ms(50);
    ck_assert_int_eq(cancels, 1);
}
END_TEST

static void finish_parked(void *arg)
{
    Flame__V1__Result r = result(7, NULL);
    rpc_call_reply(parked[*(int *)arg], &r.base);
}

START_TEST(finish_then_cancel_has_no_callback)
{
    /* the server finishes, the client cancels right after: whichever the
     * client sees, the server's on_cancel must not fire */
    for (int i = 0; i < 20; i++) {
        rpc_cancel *cancel = rpc_cancel_new();
        struct pending p;
        start(&p, PATH("Park"), 0, 5000, cancel);
        ck_assert(wait_for(&parked_n, i + 1));
        on_server(finish_parked, &i);
        rpc_cancel_fire(cancel);
        join(&p);
        ck_assert(p.st == FLAME_OK || p.st == FLAME_ERR_CANCELLED);
        if (p.st == FLAME_OK)
            ck_assert_int_eq(p.resp_rc, 7);
        rpc_cancel_free(cancel);
    }
    pause_ms(100);
    ck_assert_int_eq(cancels, 0);
}
END_TEST

struct after_cancel {
    bool alive, sent;
    const char *method;
    const char *user;
};

static void inspect_and_unref(void *arg)
{
    struct after_cancel *a = arg;
    rpc_call *c = parked[0];
    a->alive = rpc_call_alive(c);
    a->sent = rpc_call_send(c, NULL);
    a->method = fl_strdup(rpc_call_method(c));
    a->user = rpc_call_user(c);
    rpc_call_unref(c);
}

START_TEST(ref_keeps_call_past_cancel)
{
    struct pending p;
    start(&p, PATH("Park"), 1, 200, NULL); /* 1: the handler takes a ref */
    ck_assert(wait_for(&parked_n, 1));
    join(&p);
    ck_assert(wait_for(&cancels, 1));
    pause_ms(50); /* let the call's last gRPC events come back */
    struct after_cancel a;
    on_server(inspect_and_unref, &a);
    ck_assert(!a.alive);
    ck_assert(!a.sent);
    ck_assert_str_eq(a.method, "/test.Echo/Park");
    ck_assert_str_eq(a.user, "parked");
    free((char *)a.method);
    ck_assert_int_eq(cancels, 1);
}
END_TEST

START_TEST(max_message_is_resource_exhausted)
{
    char *big = fl_malloc(MAX_MESSAGE + 1);
    memset(big, 'x', MAX_MESSAGE);
    big[MAX_MESSAGE] = 0;
    Flame__V1__Result req = result(0, big), *resp = NULL;
    /* refused by the server */
    ck_assert_int_eq(rpc_unary(ch, PATH("Unary"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                               5000),
                     FLAME_ERR_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(rpc_last_code(), RPC_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(handled, 0);
    /* refused by a channel with a smaller limit before it is sent */
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.max_message = 1024;
    rpc_channel *small;
    ck_assert_int_eq(rpc_channel_new(&small, "127.0.0.1:1", &co), FLAME_OK);
    ck_assert_int_eq(rpc_unary(small, PATH("Unary"), &req.base, RESULT,
                               (ProtobufCMessage **)&resp, 5000),
                     FLAME_ERR_RESOURCE_EXHAUSTED);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "exceeds the maximum message size"));
    rpc_channel_free(small);
    free(big);
}
END_TEST

START_TEST(shutdown_completes_parked_calls)
{
    struct pending p[3];
    for (int i = 0; i < 3; i++)
        start(&p[i], PATH("Park"), 0, 0, NULL);
    ck_assert(wait_for(&parked_n, 3));
    stop_server(); /* returns only once every call is gone */
    ck_assert_int_eq(cancels, 3);
    for (int i = 0; i < 3; i++) {
        join(&p[i]);
        ck_assert_int_ne(p[i].st, FLAME_OK);
    }
}
END_TEST

/* ---- TLS ------------------------------------------------------------------ */

static char certs[256]; /* the test PKI: tests/tls/make_certs.sh */

/* "<certs>/<name>" in one of a few rotating buffers. */
static const char *pki(const char *name)
{
    static char buf[8][320];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", certs, name);
    return p;
}

static int tls_port;

static void tls_setup(void)
{
    ch = NULL;
    srv = NULL;
    srv_joined = true; /* until a test starts one */
    tls_port = 0;
}

/* A TLS server with the test PKI's server certificate; mutual: client
 * certificates required. */
static void tls_server(bool mutual)
{
    rpc_tls t = RPC_TLS_INIT;
    t.cert_file = pki("server.crt");
    t.key_file = pki("server.key");
    t.ca_file = pki("ca.crt");
    t.mutual = mutual;
    tls_port = start_server(&t);
}

/* One Unary call on a new channel (ca, cert: names in the PKI, or NULL;
 * tls false: plaintext). Returns the gRPC code. */
static int call_as(bool tls, const char *ca, const char *cert)
{
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.tls.enabled = tls;
    char crt[64], key[64];
    if (ca)
        co.tls.ca_file = pki(ca);
    if (cert) {
        snprintf(crt, sizeof crt, "%s.crt", cert);
        snprintf(key, sizeof key, "%s.key", cert);
        co.tls.cert_file = pki(crt);
        co.tls.key_file = pki(key);
    }
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", tls_port);
    rpc_channel *c;
    ck_assert_msg(rpc_channel_new(&c, target, &co) == FLAME_OK, "%s", flame_error_last());
    Flame__V1__Result req = result(1, NULL), *resp;
    flame_status st = rpc_unary(c, PATH("Unary"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                                5000);
    int code = st ? rpc_last_code() : RPC_OK;
    if (!st)
        flame__v1__result__free_unpacked(resp, NULL);
    rpc_channel_free(c);
    return code;
}

START_TEST(tls_client_certificate_is_the_peer)
{
    tls_server(true);
    ck_assert_int_eq(call_as(true, "ca.crt", "user"), RPC_OK);
    ck_assert(peer_tls);
    ck_assert(peer_pem);
    ck_assert_str_eq(peer_cn, "bob");
    ck_assert_int_eq(call_as(true, "ca.crt", "node"), RPC_OK);
    ck_assert_str_eq(peer_cn, "test-node");
    ck_assert_int_eq(handled, 2);
}
END_TEST

START_TEST(tls_without_client_certificate)
{
    /* mutual off (Flame's server-side TLS): a client with only the CA gets
     * in, with no identity; a certificate, when presented, is verified */
    tls_server(false);
    ck_assert_int_eq(call_as(true, "ca.crt", NULL), RPC_OK);
    ck_assert(peer_tls);
    ck_assert(!peer_seen && !peer_pem);
    ck_assert_int_eq(call_as(true, "ca.crt", "admin"), RPC_OK);
    ck_assert_str_eq(peer_cn, "alice");
    ck_assert_int_eq(call_as(true, "ca.crt", "rogue"), RPC_UNAVAILABLE);
    ck_assert_int_eq(call_as(true, "ca.crt", "expired"), RPC_UNAVAILABLE);
    ck_assert_int_eq(handled, 2);
}
END_TEST

START_TEST(tls_handshake_refusals)
{
    tls_server(true);
    ck_assert_int_eq(call_as(false, NULL, NULL), RPC_UNAVAILABLE);           /* plaintext */
    ck_assert_int_eq(call_as(true, "ca.crt", NULL), RPC_UNAVAILABLE);        /* no cert */
    ck_assert_int_eq(call_as(true, "ca.crt", "rogue"), RPC_UNAVAILABLE);     /* wrong CA */
    ck_assert_int_eq(call_as(true, "ca.crt", "expired"), RPC_UNAVAILABLE);   /* expired */
    ck_assert_int_eq(call_as(true, "other-ca.crt", "user"), RPC_UNAVAILABLE); /* server unverified */
    ck_assert_int_eq(authorized_calls, 0);
    ck_assert_int_eq(handled, 0);
    ck_assert_int_eq(call_as(true, "ca.crt", "user"), RPC_OK);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    FILE *in = fopen(from, "rb"), *out = fopen(tmp, "wb");
    ck_assert(in && out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    ck_assert_int_eq(rename(tmp, to), 0); /* as a careful operator replaces them */
}

START_TEST(tls_certificates_reload_without_restart)
{
    char live_crt[320], live_key[320];
    snprintf(live_crt, sizeof live_crt, "%s", pki("live.crt"));
    snprintf(live_key, sizeof live_key, "%s", pki("live.key"));
    copy_file(pki("server.crt"), live_crt);
    copy_file(pki("server.key"), live_key);
    rpc_tls t = RPC_TLS_INIT;
    t.cert_file = live_crt;
    t.key_file = live_key;
    t.ca_file = pki("ca.crt");
    tls_port = start_server(&t);
    ck_assert_int_eq(call_as(true, "ca.crt", "user"), RPC_OK);
    ck_assert_int_eq(call_as(true, "other-ca.crt", "user"), RPC_UNAVAILABLE);
    /* the server's certificate now comes from the other CA */
    copy_file(pki("other-server.key"), live_key);
    copy_file(pki("other-server.crt"), live_crt);
    ck_assert_int_eq(call_as(true, "other-ca.crt", "user"), RPC_OK);
    ck_assert_int_eq(call_as(true, "ca.crt", "user"), RPC_UNAVAILABLE);
    /* a file that does not load keeps what is in use */
    copy_file(pki("ca.crt"), live_key);
    ck_assert_int_eq(call_as(true, "other-ca.crt", "user"), RPC_OK);
    unlink(live_crt);
    unlink(live_key);
}
END_TEST

static void ck_check_fails(const rpc_tls *t, bool server, const char *want)
{
    ck_assert_int_eq(rpc_tls_check(t, server), FLAME_ERR_CONFIG);
    ck_assert_msg(strstr(flame_error_last(), want), "\"%s\" lacks \"%s\"", flame_error_last(),
                  want);
}

START_TEST(tls_bad_settings_are_config_errors)
{
    rpc_tls t = RPC_TLS_INIT;
    t.cert_file = "/nonexistent/server.crt";
    t.key_file = pki("server.key");
    ck_check_fails(&t, true, "cert_file: /nonexistent/server.crt: No such file or directory");
    t.cert_file = pki("server.crt");
    t.key_file = pki("user.key");
    ck_check_fails(&t, true, "key_file: ");
    ck_check_fails(&t, true, "does not match the certificate");
    t.key_file = pki("ca.crt");
    ck_check_fails(&t, true, "no PEM private key");
    t.key_file = pki("server.key");
    t.ca_file = pki("server.key");
    ck_check_fails(&t, true, "ca_file: ");
    t.ca_file = NULL;
    t.mutual = true;
    ck_check_fails(&t, true, "ca_file: required with mutual TLS");
    t.mutual = false;
    ck_assert_int_eq(rpc_tls_check(&t, true), FLAME_OK);
    rpc_tls only_key = RPC_TLS_INIT;
    only_key.key_file = pki("server.key");
    ck_check_fails(&only_key, true, "cert_file: required");
    ck_check_fails(&only_key, false, "cert_file: required with key_file");
    /* the same checks stop a channel and a server from starting */
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.tls.ca_file = "/nonexistent/ca.pem";
    rpc_channel *c = NULL;
    ck_assert_int_eq(rpc_channel_new(&c, "127.0.0.1:1", &co), FLAME_ERR_CONFIG);
    ck_assert_ptr_null(c);
    rpc_service svc = { &echo_desc, echo_table, 1 };
    rpc_server_options so = RPC_SERVER_OPTIONS_INIT;
    so.tls.cert_file = "/nonexistent/cert.pem";
    so.tls.key_file = pki("server.key");
    rpc_server *s = rpc_server_new(&svc, 1, NULL, &so);
    ck_assert_int_eq(rpc_server_listen(s, "127.0.0.1:0"), -1);
    ck_assert_int_eq(flame_error_last_code(), FLAME_ERR_CONFIG);
    rpc_server_free(s);
}
END_TEST

/* A handler that queues faster than any reader: 100 messages of 10 KB. */
static _Atomic int flood_sent, flood_cancelled;

static void flood_cancel(rpc_call *call, void *arg)
{
    flood_cancelled++;
}

static void flood_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    static char big[10000];
    memset(big, 'x', sizeof big - 1);
    rpc_call_on_cancel(call, flood_cancel, NULL);
    for (flood_sent = 0; flood_sent < 100; flood_sent++) {
        Flame__V1__Result r = result(flood_sent, big);
        if (!rpc_call_send(call, &r.base))
            break;
    }
    rpc_call_finish(call, RPC_OK, "%s", ""); /* dropped: the call is gone */
}

START_TEST(send_queue_is_bounded)
{
    static const rpc_method flood_table[] = { { "ServerStream", RPC_KIND_SERVER_STREAM, flood_h } };
    rpc_service svc = { &echo_desc, flood_table, 1 };
    rpc_server_options o = RPC_SERVER_OPTIONS_INIT;
    o.limits.max_send_queue_bytes = 64 << 10;
    rpc_server *s = rpc_server_new(&svc, 1, NULL, &o);
    int port = rpc_server_listen(s, "127.0.0.1:0");
    ck_assert_int_gt(port, 0);
    pthread_t th;
    pthread_create(&th, NULL, serve, s);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    rpc_channel *c;
    ck_assert_int_eq(rpc_channel_new(&c, target, NULL), FLAME_OK);
    Flame__V1__Result req = result(0, NULL);
    rpc_stream *st;
    ck_assert_int_eq(rpc_stream_open(&st, c, PATH("ServerStream"), &req.base, 5000), FLAME_OK);
    flame_status rc;
    int got = 0;
    ProtobufCMessage *m;
    while ((rc = rpc_stream_next(st, RESULT, &m)) == FLAME_OK && m) {
        protobuf_c_message_free_unpacked(m, NULL);
        got++;
    }
    ck_assert_int_eq(rc, FLAME_ERR_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(rpc_last_code(), RPC_RESOURCE_EXHAUSTED);
    /* the bound held: about 64 KB queued, then the call ended */
    ck_assert_int_ge(flood_sent, 5);
    ck_assert_int_le(flood_sent, 8);
    ck_assert_int_le(got, flood_sent);
    ck_assert_int_eq(flood_cancelled, 1);
    rpc_stream_free(st);
    rpc_channel_free(c);
    rpc_server_shutdown(s);
    pthread_join(th, NULL);
    rpc_server_free(s);
}
END_TEST

START_TEST(utf8_and_field_numbers_are_checked)
{
    static const struct { const char *s; size_t bad_at; } cases[] = {
        { "plain", (size_t)-1 },       { "h\xc3\xa9llo \xe2\x9c\x93", (size_t)-1 },
        { "\xf0\x9d\x84\x9e", (size_t)-1 }, { "a\xff", 1 },
        { "\xc0\xaf", 0 },              /* overlong '/' */
        { "x\xed\xa0\x80", 1 },         /* a surrogate */
        { "\xf4\x90\x80\x80", 0 },      /* above U+10FFFF */
        { "ab\xe2\x9c", 2 },             /* cut short */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_uint_eq(rpc_utf8_invalid_at((const uint8_t *)cases[i].s, strlen(cases[i].s)),
                          cases[i].bad_at);
    char why[128];
    Flame__V1__Result r = result(1, "fine");
    ck_assert(rpc_message_valid(&r.base, why, sizeof why));
    r.message = (char *)"bad \xff";
    ck_assert(!rpc_message_valid(&r.base, why, sizeof why));
    ck_assert_str_eq(why, "field Result.message: not valid UTF-8");
    /* field 0 in a padded tag: protobuf-c takes it, a re-pack would not unpack */
    const uint8_t field0[] = { 0x08, 0x01, 0x80, 0x00, 0x01 };
    ProtobufCMessage *m = protobuf_c_message_unpack(RESULT, NULL, sizeof field0, field0);
    ck_assert_ptr_nonnull(m);
    ck_assert(!rpc_message_valid(m, why, sizeof why));
    ck_assert_str_eq(why, "message Result: invalid field number 0");
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

START_TEST(paths_are_interned)
{
    const char *a = rpc_path(&echo_desc, "Bidi");
    ck_assert_str_eq(a, "/test.Echo/Bidi");
    ck_assert_ptr_eq(rpc_path(&echo_desc, "Bidi"), a);
}
END_TEST

/* ---- quiet waits (rpc_quiet) ---------------------------------------------
 * The server runs in a child process here (forked in main, before this
 * process starts gRPC), so that no thread of this process polls but the
 * client's own once the tests before have stopped their servers; gRPC's
 * backup poller is off (main), so a quiet wait that nobody polls for would
 * never end. */

static pid_t server_child = -1;
static int server_child_port;

/* The child's handlers: as unary_h, bidi_h and park_h, without check's
 * asserts (check reports to its runner, not from a child). */
static void child_unary_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    const Flame__V1__Result *req = (const Flame__V1__Result *)m;
    Flame__V1__Result r = result(req->return_code + 1, NULL);
    rpc_call_reply(call, &r.base);
}

static void child_bidi_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    if (!m) {
        rpc_call_finish(call, RPC_OK, "%s", "");
        return;
    }
    Flame__V1__Result r = result(((const Flame__V1__Result *)m)->return_code * 2, NULL);
    rpc_call_send(call, &r.base);
}

static void child_park_h(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    /* no answer: the client's cancel ends the call */
}

static int child_authorize(rpc_call *call, const ProtobufCMessage *req, char *message,
                           size_t size, void *ctx)
{
    return RPC_OK;
}

static const rpc_method child_table[] = {
    { "Unary", RPC_KIND_UNARY, child_unary_h },
    { "Bidi", RPC_KIND_BIDI, child_bidi_h },
    { "Park", RPC_KIND_UNARY, child_park_h },
};

/* The child: serves test.Echo on loopback until its parent dies. */
static void fork_server_child(void)
{
    int fds[2];
    if (pipe(fds) != 0 || (server_child = fork()) < 0) {
        perror("fork_server_child");
        exit(1);
    }
    if (server_child == 0) {
        close(fds[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        rpc_service svc = { &echo_desc, child_table, FL_ARRAY_LEN(child_table) };
        rpc_server_options o = RPC_SERVER_OPTIONS_INIT;
        o.max_message = MAX_MESSAGE;
        o.authorize = child_authorize;
        srv = rpc_server_new(&svc, 1, NULL, &o);
        int port = rpc_server_listen(srv, "127.0.0.1:0");
        if (port <= 0 || pthread_create(&srv_thread, NULL, serve, srv) != 0 ||
            write(fds[1], &port, sizeof port) != (ssize_t)sizeof port)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    if (read(fds[0], &server_child_port, sizeof server_child_port) !=
        (ssize_t)sizeof server_child_port) {
        fprintf(stderr, "the server child did not start\n");
        exit(1);
    }
    close(fds[0]);
}

static void child_server_setup(void)
{
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", server_child_port);
    ck_assert_int_eq(rpc_channel_new(&ch, target, NULL), FLAME_OK);
}

static void child_server_teardown(void)
{
    rpc_channel_free(ch);
}

START_TEST(quiet_stream_is_served_with_no_other_waiter)
{
    rpc_stream *st;
    bool was = rpc_quiet(true);
    ck_assert_int_eq(rpc_bidi_open(&st, ch, PATH("Bidi")), FLAME_OK);
    rpc_quiet(was);
    for (int i = 1; i <= 3; i++) {
        Flame__V1__Result req = result(i, NULL);
        ck_assert_int_eq(rpc_bidi_send(st, &req.base), FLAME_OK);
        ProtobufCMessage *m = NULL;
        bool idle = false;
        ck_assert_int_eq(rpc_stream_next_timed(st, RESULT, &m, 20000, &idle), FLAME_OK);
        ck_assert_msg(!idle, "a quiet read nobody polled for never ended");
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(((Flame__V1__Result *)m)->return_code, 2 * i);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_stream_free(st);
}
END_TEST

struct quiet_waiter {
    pthread_t th;
    _Atomic pid_t tid;
    rpc_cancel *cancel;
    flame_status st;
};

static void *quiet_main(void *arg)
{
    struct quiet_waiter *q = arg;
    q->tid = (pid_t)syscall(SYS_gettid);
    rpc_quiet(true);
    Flame__V1__Result req = result(0, NULL);
    ProtobufCMessage *resp = NULL;
    q->st = rpc_unary_cancellable(ch, PATH("Park"), &req.base, RESULT, &resp, 0, q->cancel);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return NULL;
}

static long thread_switches(pid_t tid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* A thread in a quiet long poll sleeps through the other threads' calls
 * (in a polling wait it takes gRPC's poller role in turns, woken for
 * about every call). */
START_TEST(quiet_waiter_sleeps_through_other_calls)
{
    struct quiet_waiter q = { .cancel = rpc_cancel_new() };
    pthread_create(&q.th, NULL, quiet_main, &q);
    Flame__V1__Result req = result(1, NULL), *resp;
    /* the first call lets the parked one arrive and its thread settle */
    ck_assert_int_eq(rpc_unary(ch, PATH("Unary"), &req.base, RESULT, (ProtobufCMessage **)&resp,
                               10000),
                     FLAME_OK);
    flame__v1__result__free_unpacked(resp, NULL);
    while (!q.tid)
        pause_ms(1);
    pause_ms(100);
    long before = thread_switches(q.tid);
    enum { CALLS = 1000 };
    for (int i = 0; i < CALLS; i++) {
        ck_assert_int_eq(rpc_unary(ch, PATH("Unary"), &req.base, RESULT,
                                   (ProtobufCMessage **)&resp, 10000),
                         FLAME_OK);
        flame__v1__result__free_unpacked(resp, NULL);
    }
    long woken = thread_switches(q.tid) - before;
    rpc_cancel_fire(q.cancel);
    pthread_join(q.th, NULL);
    rpc_cancel_free(q.cancel);
    ck_assert_int_eq(q.st, FLAME_ERR_CANCELLED);
    ck_assert_msg(woken < CALLS / 10, "the quiet waiter woke %ld times in %d calls", woken, CALLS);
}
END_TEST

int main(void)
{
    /* no backup polling: a quiet wait must be served by the watchman */
    setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "0", 1);
    fork_server_child();
    Suite *s = suite_create("rpc");
    TCase *tc = tcase_create("calls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, unary_reply);
    tcase_add_test(tc, malformed_request_never_reaches_handler);
    tcase_add_test(tc, unknown_method_is_unimplemented);
    tcase_add_test(tc, authorization_denies_before_handler);
    tcase_add_test(tc, authorization_sees_the_request);
    tcase_add_test(tc, a_denied_message_ends_a_stream_and_tells_its_owner);
    tcase_add_test(tc, server_stream);
    tcase_add_test(tc, bidi_stream);
    tcase_add_test(tc, client_stream);
    tcase_add_test(tc, parked_call_cancelled_by_client);
    tcase_add_test(tc, finish_then_cancel_has_no_callback);
    tcase_add_test(tc, ref_keeps_call_past_cancel);
    tcase_add_test(tc, max_message_is_resource_exhausted);
    tcase_add_test(tc, shutdown_completes_parked_calls);
    tcase_add_test(tc, utf8_and_field_numbers_are_checked);
    tcase_add_test(tc, send_queue_is_bounded);
    tcase_add_test(tc, paths_are_interned);
    suite_add_tcase(s, tc);
    TCase *tq = tcase_create("quiet");
    tcase_add_checked_fixture(tq, child_server_setup, child_server_teardown);
    tcase_set_timeout(tq, 60);
    tcase_add_test(tq, quiet_stream_is_served_with_no_other_waiter);
    tcase_add_test(tq, quiet_waiter_sleeps_through_other_calls);
    suite_add_tcase(s, tq);
    /* the PKI is made once, with the openssl CLI */
    const char *script = getenv("FLAME_MAKE_CERTS");
    snprintf(certs, sizeof certs, "/tmp/flame-test-rpc-certs-%d", (int)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s'", script ? script : "tests/tls/make_certs.sh", certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the test certificates: %s\n", cmd);
        return 1;
    }
    TCase *tt = tcase_create("tls");
    tcase_add_checked_fixture(tt, tls_setup, teardown);
    tcase_set_timeout(tt, 30);
    tcase_add_test(tt, tls_client_certificate_is_the_peer);
    tcase_add_test(tt, tls_without_client_certificate);
    tcase_add_test(tt, tls_handshake_refusals);
    tcase_add_test(tt, tls_certificates_reload_without_restart);
    tcase_add_test(tt, tls_bad_settings_are_config_errors);
    suite_add_tcase(s, tt);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    kill(server_child, SIGKILL);
    waitpid(server_child, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", certs);
    return failed ? 1 : 0;
}
