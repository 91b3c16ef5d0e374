/* Unit tests of a C service's Instance server (service/serve.h): our HTTP/2
 * client (shim/h2.h) and a raw one written here call it over a Unix socket
 * in a temporary directory: the four methods, an answer larger than the
 * client's windows, several streams on one connection, the errors (unknown
 * method, oversized, compressed, malformed requests, too many streams), a
 * client sending garbage, and two connections at once. (grpcio calls it in
 * tests/interop/test_instance_server.py.) */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "flame/service.h"
#include "service/serve.h"
#include "shim/h2.h"
#include "shim/h2wire.h"
#include "shim/hpack.h"
#include "util/util.h"

#include "shim.pb-c.h"

#define MAX_MESSAGE (1u << 20) /* the server's, in these tests */

/* ---- the service ---------------------------------------------------------- */

static atomic_int left;

static int enter(const flame_session_context *ctx, char **message, void *payload)
{
    (void)payload;
    if (strcmp(ctx->session_id, "no") == 0) {
        *message = fl_strdup("refused: no");
        return 1;
    }
    return 0;
}

/* "big:N": N bytes of output; task "fail": a failure; else an echo */
static int invoke(const flame_task_context *ctx, flame_task_result *r, void *payload)
{
    (void)payload;
    if (strcmp(ctx->task_id, "fail") == 0) {
        flame_task_result_set_message(r, "it failed");
        return 3;
    }
    if (ctx->input.data && ctx->input.len > 4 && memcmp(ctx->input.data, "big:", 4) == 0) {
        char num[24]; /* the input is not NUL-terminated */
        snprintf(num, sizeof num, "%.*s", (int)(ctx->input.len - 4), ctx->input.data + 4);
        size_t n = (size_t)atol(num);
        uint8_t *out = fl_malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            out[i] = (uint8_t)(i * 7);
        flame_task_result_set_output(r, out, n);
        free(out);
    } else if (ctx->input.data) {
        flame_task_result_set_output(r, ctx->input.data, ctx->input.len);
    }
    return 0;
}

static void leave(void *payload)
{
    (void)payload;
    left++;
}

static const flame_service svc = { FLAME_SERVICE_VERSION, enter, invoke, leave, NULL, NULL };

/* ---- the server on a thread ------------------------------------------------- */

static char dir[64], sock_path[108];
static fl_serve *srv;
static int stop_pipe[2];
static pthread_t th;
static flame_status run_status;

static void *run(void *arg)
{
    (void)arg;
    run_status = fl_serve_run(srv, stop_pipe[0]);
    return NULL;
}

static void start(void)
{
    snprintf(dir, sizeof dir, "/tmp/test-serve-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", dir);
    srv = fl_serve_new(sock_path, &svc, MAX_MESSAGE);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pipe(stop_pipe), 0);
    pthread_create(&th, NULL, run, NULL);
}

static void stop(void)
{
    ck_assert_int_eq(write(stop_pipe[1], "x", 1), 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(run_status, FLAME_OK);
    fl_serve_free(srv);
    struct stat st;
    ck_assert_int_ne(stat(sock_path, &st), 0); /* the socket is gone */
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    rmdir(dir);
}

/* ---- calls through shim/h2.h ------------------------------------------------ */

static flame_status call(fl_h2 *c, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out)
{
    size_t len = req ? protobuf_c_message_get_packed_size(req) : 0;
    uint8_t *buf = fl_malloc(len + 1), *resp = NULL;
    if (req)
        protobuf_c_message_pack(req, buf);
    size_t rlen = 0;
    flame_status st = fl_h2_unary(c, method, buf, len, &resp, &rlen, 10000);
    free(buf);
    if (st == FLAME_OK && out) {
        *out = protobuf_c_message_unpack(out_desc, NULL, rlen, resp);
        ck_assert_ptr_nonnull(*out);
    }
    free(resp);
    return st;
}

static Flame__V1__TaskResult *invoke_call(fl_h2 *c, const char *task_id, const char *input)
{
    Flame__V1__TaskContext tc = FLAME__V1__TASK_CONTEXT__INIT;
    tc.task_id = (char *)task_id;
    tc.session_id = (char *)"s1";
    if (input) {
        tc._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
        tc.input.data = (uint8_t *)input;
        tc.input.len = strlen(input);
    }
    ProtobufCMessage *out = NULL;
    ck_assert_int_eq(call(c, "/flame.v1.Instance/OnTaskInvoke", &tc.base,
                          &flame__v1__task_result__descriptor, &out),
                     FLAME_OK);
    return (Flame__V1__TaskResult *)out;
}

static void check_echo(fl_h2 *c, const char *input)
{
    Flame__V1__TaskResult *r = invoke_call(c, "t", input);
    ck_assert_int_eq(r->return_code, 0);
    ck_assert_int_eq(r->_output_case, FLAME__V1__TASK_RESULT___OUTPUT_OUTPUT);
    ck_assert_uint_eq(r->output.len, strlen(input));
    ck_assert(!*input || memcmp(r->output.data, input, strlen(input)) == 0);
    flame__v1__task_result__free_unpacked(r, NULL);
}

static bool big_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 7))
            return false;
    return true;
}

START_TEST(serve_methods)
{
    start();
    fl_h2 *c = fl_h2_new(sock_path, 4 * MAX_MESSAGE);

    Flame__V1__ApplicationContext app = FLAME__V1__APPLICATION_CONTEXT__INIT;
    app.name = (char *)"app";
    Flame__V1__SessionContext sc = FLAME__V1__SESSION_CONTEXT__INIT;
    sc.session_id = (char *)"s1";
    sc.application = &app;
    ProtobufCMessage *out;
    ck_assert_int_eq(call(c, "/flame.v1.Instance/OnSessionEnter", &sc.base,
                          &flame__v1__result__descriptor, &out),
                     FLAME_OK);
    Flame__V1__Result *res = (Flame__V1__Result *)out;
    ck_assert_int_eq(res->return_code, 0);
    ck_assert_int_eq(res->_message_case, 0);
    protobuf_c_message_free_unpacked(out, NULL);
    sc.session_id = (char *)"no"; /* refused, with the service's message */
    ck_assert_int_eq(call(c, "/flame.v1.Instance/OnSessionEnter", &sc.base,
                          &flame__v1__result__descriptor, &out),
                     FLAME_OK);
    res = (Flame__V1__Result *)out;
    ck_assert_int_eq(res->return_code, 1);
    ck_assert_str_eq(res->message, "refused: no");
    protobuf_c_message_free_unpacked(out, NULL);

    check_echo(c, "ping");
    check_echo(c, "");
    Flame__V1__TaskResult *r = invoke_call(c, "t", NULL); /* no input: no output */
    ck_assert_int_eq(r->_output_case, 0);
    flame__v1__task_result__free_unpacked(r, NULL);
    r = invoke_call(c, "fail", "x");
    ck_assert_int_eq(r->return_code, 3);
    ck_assert_str_eq(r->message, "it failed");
    flame__v1__task_result__free_unpacked(r, NULL);
    /* an answer of many frames (the peer's SETTINGS_MAX_FRAME_SIZE) */
    r = invoke_call(c, "t", "big:300000");
    ck_assert_uint_eq(r->output.len, 300000);
    ck_assert(big_ok(r->output.data, r->output.len));
    flame__v1__task_result__free_unpacked(r, NULL);

    Flame__V1__TaskContext t[3], *tp[3];
    const char *ids[3] = { "a", "fail", "c" };
    for (int i = 0; i < 3; i++) {
        flame__v1__task_context__init(&t[i]);
        t[i].task_id = (char *)ids[i];
        t[i].session_id = (char *)"s1";
        t[i]._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
        t[i].input.data = (uint8_t *)ids[i];
        t[i].input.len = strlen(ids[i]);
        tp[i] = &t[i];
    }
    Flame__V1__TaskContextBatch b = FLAME__V1__TASK_CONTEXT_BATCH__INIT;
    b.n_tasks = 3;
    b.tasks = tp;
    ck_assert_int_eq(call(c, "/flame.v1.Instance/OnTaskInvokeBatch", &b.base,
                          &flame__v1__task_result_batch__descriptor, &out),
                     FLAME_OK);
    Flame__V1__TaskResultBatch *rb = (Flame__V1__TaskResultBatch *)out;
    ck_assert_uint_eq(rb->n_results, 3);
    ck_assert_int_eq(rb->results[0]->return_code, 0);
    ck_assert_uint_eq(rb->results[0]->output.len, 1);
    ck_assert_int_eq(rb->results[1]->return_code, 3);
    ck_assert_str_eq(rb->results[1]->message, "it failed");
    ck_assert(memcmp(rb->results[2]->output.data, "c", 1) == 0);
    protobuf_c_message_free_unpacked(out, NULL);

    Flame__V1__EmptyRequest e = FLAME__V1__EMPTY_REQUEST__INIT;
    ck_assert_int_eq(call(c, "/flame.v1.Instance/OnSessionLeave", &e.base,
                          &flame__v1__result__descriptor, &out),
                     FLAME_OK);
    protobuf_c_message_free_unpacked(out, NULL);
    ck_assert_int_eq(left, 1);

    /* errors, each on the same connection, which keeps working */
    ck_assert_int_eq(call(c, "/flame.v1.Instance/Nope", &e.base, NULL, NULL),
                     FLAME_ERR_UNIMPLEMENTED);
    ck_assert_msg(strstr(flame_error_last(), "unknown method /flame.v1.Instance/Nope"), "%s",
                  flame_error_last());
    ck_assert_int_eq(call(c, "/flame.v1.Frontend/OnTaskInvoke", &e.base, NULL, NULL),
                     FLAME_ERR_UNIMPLEMENTED);
    uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };
    uint8_t *resp = NULL;
    size_t rlen;
    ck_assert_int_eq(fl_h2_unary(c, "/flame.v1.Instance/OnTaskInvoke", junk, sizeof junk, &resp,
                                 &rlen, 10000),
                     FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(flame_error_last(), "malformed"), "%s", flame_error_last());
    /* a request over the server's maximum (the client's is larger) */
    size_t n = 2 * MAX_MESSAGE;
    uint8_t *bigreq = fl_calloc(1, n);
    ck_assert_int_eq(fl_h2_unary(c, "/flame.v1.Instance/OnTaskInvoke", bigreq, n, &resp, &rlen,
                                 10000),
                     FLAME_ERR_RESOURCE_EXHAUSTED);
    ck_assert_msg(strstr(flame_error_last(), "exceeds the maximum message size"), "%s",
                  flame_error_last());
    free(bigreq);
    /* an answer over the server's maximum */
    Flame__V1__TaskContext tc = FLAME__V1__TASK_CONTEXT__INIT;
    tc.task_id = (char *)"t";
    tc.session_id = (char *)"s1";
    tc._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
    tc.input.data = (uint8_t *)"big:2000000";
    tc.input.len = strlen("big:2000000");
    ck_assert_int_eq(call(c, "/flame.v1.Instance/OnTaskInvoke", &tc.base, NULL, NULL),
                     FLAME_ERR_RESOURCE_EXHAUSTED);
    check_echo(c, "still here");

    fl_h2_free(c);
    stop();
}
END_TEST

/* ---- a raw client ----------------------------------------------------------- */

typedef struct answer {
    int http, grpc;
    int hfirst;             /* the first byte of its first header block (-1: none) */
    bool headers, ended, reset;
    uint32_t rst;
    uint8_t *body;
    size_t blen;
} answer;

typedef struct raw {
    int fd;
    fl_hpack dec;
    answer ans[128];        /* by (stream - 1) / 2 */
    bool pong, goaway, eof;
    uint32_t goaway_code;
    size_t data_in;         /* DATA bytes received, not given back */
} raw;

static void raw_write(raw *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(r->fd, b, n);
        ck_assert_int_gt(w, 0);
        b += w;
        n -= (size_t)w;
    }
}

static void raw_frame(raw *r, uint8_t type, uint8_t flags, uint32_t stream, const void *p,
                      size_t len)
{
    uint8_t h[9];
    fl_h2_frame_head(h, len, type, flags, stream);
    raw_write(r, h, 9);
    if (len)
        raw_write(r, p, len);
}

/* Connects, and sends the preface with settings (pairs of id, value). */
static raw *raw_open(const uint32_t *settings, size_t n)
{
    raw *r = fl_calloc(1, sizeof *r);
    fl_hpack_init(&r->dec);
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    if (!settings)
        return r;
    raw_write(r, FL_H2_PREFACE, FL_H2_PREFACE_LEN);
    uint8_t s[60];
    for (size_t i = 0; i < n; i++) {
        s[6 * i] = 0;
        s[6 * i + 1] = (uint8_t)settings[2 * i];
        fl_h2_put32(s + 6 * i + 2, settings[2 * i + 1]);
    }
    raw_frame(r, FL_H2_SETTINGS, 0, 0, s, 6 * n);
    return r;
}

static void raw_close(raw *r)
{
    close(r->fd);
    fl_hpack_clear(&r->dec);
    for (size_t i = 0; i < FL_ARRAY_LEN(r->ans); i++)
        free(r->ans[i].body);
    free(r);
}

/* A request's HEADERS (flags added) and its message's DATA (END_STREAM),
 * in one write; flag: the message prefix's first byte. */
static void raw_request(raw *r, uint32_t id, const char *path, const ProtobufCMessage *m,
                        uint8_t flag)
{
    uint8_t buf[1024];
    uint8_t *p = buf + 9;
    *p++ = 0x83; /* :method POST */
    *p++ = 0x86; /* :scheme http */
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 4), path);
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 31), "application/grpc");
    size_t hl = (size_t)(p - (buf + 9));
    fl_h2_frame_head(buf, hl, FL_H2_HEADERS, FL_END_HEADERS, id);
    size_t n = protobuf_c_message_get_packed_size(m);
    ck_assert_uint_lt(9 + hl + 9 + 5 + n, sizeof buf);
    fl_h2_frame_head(p, 5 + n, FL_H2_DATA, FL_END_STREAM, id);
    p[9] = flag;
    fl_h2_put32(p + 10, (uint32_t)n);
    protobuf_c_message_pack(m, p + 14);
    raw_write(r, buf, (size_t)(p + 14 + n - buf));
}

static void on_hfield(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    answer *a = arg;
    (void)vlen;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0)
        a->http = atoi(value);
    else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0)
        a->grpc = atoi(value);
}

/* Reads and handles one frame (waiting at most 20 s); false at the end. */
static bool raw_next(raw *r)
{
    uint8_t h[9];
    static uint8_t p[1 << 24];
    size_t got = 0;
    while (got < 9) {
        struct pollfd pf = { r->fd, POLLIN, 0 };
        ck_assert_int_eq(poll(&pf, 1, 20000), 1);
        ssize_t n = read(r->fd, h + got, 9 - got);
        if (n <= 0) {
            r->eof = true;
            return false;
        }
        got += (size_t)n;
    }
    size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    for (got = 0; got < len;) {
        ssize_t n = read(r->fd, p + got, len - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    uint32_t id = fl_h2_get32(h + 5) & 0x7fffffffu;
    answer *a = id ? &r->ans[((id - 1) / 2) % FL_ARRAY_LEN(r->ans)] : NULL;
    switch (h[3]) {
    case FL_H2_HEADERS:
        ck_assert(h[4] & FL_END_HEADERS); /* the server never needs CONTINUATION */
        if (!a->headers)
            a->hfirst = len ? p[0] : -1;
        ck_assert(fl_hpack_decode(&r->dec, p, len, on_hfield, a));
        a->headers = true;
        a->ended |= h[4] & FL_END_STREAM;
        break;
    case FL_H2_DATA:
        ck_assert(!a->ended);
        a->body = fl_realloc(a->body, a->blen + len + 1);
        memcpy(a->body + a->blen, p, len);
        a->blen += len;
        r->data_in += len;
        break;
    case FL_H2_RST_STREAM:
        a->reset = true;
        a->rst = fl_h2_get32(p);
        break;
    case FL_H2_PING:
        r->pong |= (h[4] & FL_ACK) != 0;
        break;
    case FL_H2_GOAWAY:
        r->goaway = true;
        r->goaway_code = fl_h2_get32(p + 4);
        break;
    default:
        break;
    }
    return true;
}

/* Reads until stream id ended or was reset. */
static answer *raw_wait(raw *r, uint32_t id)
{
    answer *a = &r->ans[(id - 1) / 2];
    while (!a->ended && !a->reset)
        ck_assert(raw_next(r));
    return a;
}

static Flame__V1__TaskContext task(const char *input)
{
    Flame__V1__TaskContext tc = FLAME__V1__TASK_CONTEXT__INIT;
    tc.task_id = (char *)"t";
    tc.session_id = (char *)"s1";
    tc._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
    tc.input.data = (uint8_t *)input;
    tc.input.len = strlen(input);
    return tc;
}

/* An answer larger than the client's windows (1000 bytes per stream, the
 * default 65535 for the connection) goes as they open; the connection is
 * read meanwhile (a PING is answered) and other streams are answered. */
START_TEST(serve_windows)
{
    start();
    const uint32_t settings[] = { FL_H2_SETTINGS_INITIAL_WINDOW_SIZE, 1000 };
    raw *r = raw_open(settings, 1);
    Flame__V1__TaskContext big = task("big:200000");
    raw_request(r, 1, "/flame.v1.Instance/OnTaskInvoke", &big.base, 0);
    answer *a = &r->ans[0];
    while (a->blen < 1000) /* the stream's window: then it waits */
        ck_assert(raw_next(r));
    ck_assert_uint_eq(a->blen, 1000);
    raw_frame(r, FL_H2_PING, 0, 0, "12345678", 8);
    Flame__V1__TaskContext small = task("hello");
    raw_request(r, 3, "/flame.v1.Instance/OnTaskInvoke", &small.base, 0);
    uint8_t inc[4];
    answer *b = raw_wait(r, 3);
    ck_assert_int_eq(b->grpc, 0);
    ck_assert(r->pong);
    ck_assert(!a->ended);
    /* open the windows as the bytes come: the connection's too */
    while (!a->ended) {
        if (r->data_in >= 1000) {
            fl_h2_put32(inc, (uint32_t)r->data_in);
            raw_frame(r, FL_H2_WINDOW_UPDATE, 0, 0, inc, 4);
            raw_frame(r, FL_H2_WINDOW_UPDATE, 0, 1, inc, 4);
            r->data_in = 0;
        }
        ck_assert(raw_next(r));
    }
    ck_assert_int_eq(a->http, 200);
    ck_assert_int_eq(a->grpc, 0);
    ck_assert_uint_eq(fl_h2_get32(a->body + 1), a->blen - 5);
    Flame__V1__TaskResult *tr =
        flame__v1__task_result__unpack(NULL, a->blen - 5, a->body + 5);
    ck_assert_ptr_nonnull(tr);
    ck_assert_uint_eq(tr->output.len, 200000);
    ck_assert(big_ok(tr->output.data, tr->output.len));
    flame__v1__task_result__free_unpacked(tr, NULL);
    raw_close(r);
    stop();
}
END_TEST

/* Several streams in one write are all answered; the errors of a stream
 * leave the others be; past SETTINGS_MAX_CONCURRENT_STREAMS a stream is
 * refused. */
START_TEST(serve_streams)
{
    start();
    const uint32_t settings[] = { FL_H2_SETTINGS_ENABLE_PUSH, 0 };
    raw *r = raw_open(settings, 1);
    Flame__V1__TaskContext tc = task("x");
    raw_request(r, 1, "/flame.v1.Instance/OnTaskInvoke", &tc.base, 0);
    raw_request(r, 3, "/flame.v1.Instance/OnTaskInvoke", &tc.base, 1); /* compressed */
    raw_request(r, 5, "/flame.v1.Instance/Unknown", &tc.base, 0);
    raw_request(r, 7, "/flame.v1.Instance/OnTaskInvoke", &tc.base, 0);
    ck_assert_int_eq(raw_wait(r, 1)->grpc, 0);
    ck_assert_int_eq(raw_wait(r, 3)->grpc, 12);
    ck_assert_int_eq(raw_wait(r, 5)->grpc, 12);
    ck_assert_int_eq(raw_wait(r, 7)->grpc, 0);
    Flame__V1__TaskResult *tr =
        flame__v1__task_result__unpack(NULL, r->ans[3].blen - 5, r->ans[3].body + 5);
    ck_assert_ptr_nonnull(tr);
    ck_assert_uint_eq(tr->output.len, 1);
    ck_assert_int_eq(tr->output.data[0], 'x');
    flame__v1__task_result__free_unpacked(tr, NULL);

    /* 100 streams whose requests never end, then one more */
    uint8_t hb[64], *p = hb;
    *p++ = 0x83;
    *p++ = 0x86;
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 4), "/flame.v1.Instance/OnTaskInvoke");
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 31), "application/grpc");
    for (uint32_t id = 9; id < 9 + 2 * 101; id += 2)
        raw_frame(r, FL_H2_HEADERS, FL_END_HEADERS, id, hb, (size_t)(p - hb));
    answer *last = raw_wait(r, 9 + 2 * 100);
    ck_assert(last->reset);
    ck_assert_uint_eq(last->rst, FL_H2_REFUSED_STREAM);
    /* the client gives up on one: a new stream fits again */
    uint8_t code[4];
    fl_h2_put32(code, FL_H2_CANCEL);
    raw_frame(r, FL_H2_RST_STREAM, 0, 9, code, 4);
    raw_request(r, 9 + 2 * 101, "/flame.v1.Instance/OnTaskInvoke", &tc.base, 0);
    ck_assert_int_eq(raw_wait(r, 9 + 2 * 101)->grpc, 0);
    /* a stream id used again is ignored; an even one ends the connection */
    raw_request(r, 5, "/flame.v1.Instance/OnTaskInvoke", &tc.base, 0);
    raw_frame(r, FL_H2_HEADERS, FL_END_HEADERS, 4, hb, (size_t)(p - hb)); /* even */
    while (raw_next(r))
        ;
    ck_assert(r->goaway);
    ck_assert_uint_eq(r->goaway_code, FL_H2_PROTOCOL_ERROR);
    raw_close(r);
    stop();
}
END_TEST

/* Garbage ends its own connection only; connections are served side by
 * side, an idle one holding nobody up. */
START_TEST(serve_connections)
{
    start();
    fl_h2 *c1 = fl_h2_new(sock_path, MAX_MESSAGE), *c2 = fl_h2_new(sock_path, MAX_MESSAGE);
    check_echo(c1, "one");
    raw *idle = raw_open(NULL, 0); /* connected, says nothing */
    raw *bad = raw_open(NULL, 0);
    raw_write(bad, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    while (raw_next(bad))
        ;
    ck_assert(bad->eof);
    raw_close(bad);
    /* a valid preface, then a frame over our SETTINGS_MAX_FRAME_SIZE */
    const uint32_t settings[] = { FL_H2_SETTINGS_MAX_FRAME_SIZE, 16384 };
    bad = raw_open(settings, 1);
    uint8_t h[9];
    fl_h2_frame_head(h, 1 << 20, FL_H2_DATA, 0, 1);
    raw_write(bad, h, 9);
    while (raw_next(bad))
        ;
    ck_assert(bad->goaway);
    ck_assert_uint_eq(bad->goaway_code, FL_H2_FRAME_SIZE_ERROR);
    raw_close(bad);
    /* a broken header block (an index past the tables) */
    bad = raw_open(settings, 1);
    raw_frame(bad, FL_H2_HEADERS, FL_END_HEADERS, 1, "\xff\x7f", 2);
    while (raw_next(bad))
        ;
    ck_assert_uint_eq(bad->goaway_code, FL_H2_COMPRESSION_ERROR);
    raw_close(bad);
    for (int i = 0; i < 5; i++) {
        check_echo(c1, "one");
        check_echo(c2, "two");
    }
    raw_close(idle);
    check_echo(c2, "after");
    fl_h2_free(c1);
    fl_h2_free(c2);
    stop();
}
END_TEST

/* A full house of idle connections: a newcomer takes the place of the one
 * idle the longest. A client that shrinks HPACK's table hears so at the
 * start of its first header block (RFC 7541 4.2). */
START_TEST(serve_crowd)
{
    start();
    raw *idle[FL_SERVE_MAX_CONNS];
    const uint32_t no_table[] = { FL_H2_SETTINGS_HEADER_TABLE_SIZE, 0 };
    for (int i = 0; i < FL_SERVE_MAX_CONNS; i++) {
        idle[i] = raw_open(no_table, 1);
        uint8_t ping[8] = { 0 }; /* answered: the server took the connection */
        raw_frame(idle[i], FL_H2_PING, 0, 0, ping, 8);
        while (!idle[i]->pong)
            ck_assert(raw_next(idle[i]));
    }
    /* the last one asks: answered, the table update first */
    Flame__V1__TaskContext tc = task("hi");
    raw *last = idle[FL_SERVE_MAX_CONNS - 1];
    raw_request(last, 1, "/flame.v1.Instance/OnTaskInvoke", &tc.base, 0);
    answer *a = raw_wait(last, 1);
    ck_assert_int_eq(a->grpc, 0);
    ck_assert_int_eq(a->hfirst, 0x20);
    /* a newcomer is served: the oldest idle one made room */
    fl_h2 *c = fl_h2_new(sock_path, MAX_MESSAGE);
    check_echo(c, "room");
    while (raw_next(idle[0]))
        ;
    ck_assert(idle[0]->eof);
    fl_h2_free(c);
    for (int i = 0; i < FL_SERVE_MAX_CONNS; i++)
        raw_close(idle[i]);
    stop();
}
END_TEST

/* A successor that bound the same path keeps its socket when the server
 * before it ends. */
START_TEST(serve_leaves_a_successors_socket)
{
    snprintf(dir, sizeof dir, "/tmp/test-serve-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", dir);
    fl_serve *old = fl_serve_new(sock_path, &svc, MAX_MESSAGE);
    ck_assert_ptr_nonnull(old);
    fl_serve *next = fl_serve_new(sock_path, &svc, MAX_MESSAGE); /* replaces the file */
    ck_assert_ptr_nonnull(next);
    fl_serve_free(old);
    struct stat st;
    ck_assert_int_eq(stat(sock_path, &st), 0);
    fl_serve_free(next);
    ck_assert_int_ne(stat(sock_path, &st), 0);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("serve");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, serve_methods);
    tcase_add_test(tc, serve_windows);
    tcase_add_test(tc, serve_streams);
    tcase_add_test(tc, serve_connections);
    tcase_add_test(tc, serve_crowd);
    tcase_add_test(tc, serve_leaves_a_successors_socket);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
