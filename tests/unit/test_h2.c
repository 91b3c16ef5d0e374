/* Unit tests of the host shim's HTTP/2 client (shim/h2.h) and its HPACK
 * decoder (shim/hpack.h): RFC 7541's examples, and calls against a scripted
 * server on a Unix socket that answers, fails, goes away, stalls, shuts its
 * windows and sends garbage. (A real gRPC server answers it in the interop
 * and ecosystem suites.) */
#include <check.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim/h2.h"
#include "shim/hpack.h"
#include "util/util.h"

/* ---- HPACK ---------------------------------------------------------------- */

static char got[1024];

static void collect(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    (void)arg;
    size_t n = strlen(got);
    snprintf(got + n, sizeof got - n, "%.*s=%.*s;", (int)nlen, name, (int)vlen, value);
}

static bool decode_hex(fl_hpack *h, const char *hex)
{
    uint8_t buf[512];
    size_t n = 0;
    for (const char *p = hex; *p; p++) {
        if (*p == ' ')
            continue;
        unsigned x;
        sscanf(p, "%2x", &x);
        buf[n++] = (uint8_t)x;
        p++;
    }
    got[0] = 0;
    return fl_hpack_decode(h, buf, n, collect, NULL);
}

/* RFC 7541 C.4: requests with Huffman coding, sharing one dynamic table */
START_TEST(hpack_rfc_requests)
{
    fl_hpack h;
    fl_hpack_init(&h);
    ck_assert(decode_hex(&h, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
    ck_assert_str_eq(got, ":method=GET;:scheme=http;:path=/;:authority=www.example.com;");
    ck_assert(decode_hex(&h, "8286 84be 5886 a8eb 1064 9cbf"));
    ck_assert_str_eq(got, ":method=GET;:scheme=http;:path=/;:authority=www.example.com;"
                          "cache-control=no-cache;");
    ck_assert(decode_hex(&h, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"));
    ck_assert_str_eq(got, ":method=GET;:scheme=https;:path=/index.html;"
                          ":authority=www.example.com;custom-key=custom-value;");
    ck_assert_uint_eq(h.size, 164);
    fl_hpack_clear(&h);
}
END_TEST

/* RFC 7541 C.6: responses with Huffman coding and a 256-byte table, so
 * entries are evicted */
START_TEST(hpack_rfc_responses_evict)
{
    fl_hpack h;
    fl_hpack_init(&h);
    h.max = 256;
    ck_assert(decode_hex(&h, "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 "
                             "0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae "
                             "43d3"));
    ck_assert_str_eq(got, ":status=302;cache-control=private;date=Mon, 21 Oct 2013 20:13:21 "
                          "GMT;location=https://www.example.com;");
    ck_assert(decode_hex(&h, "4883 640e ffc1 c0bf"));
    ck_assert_str_eq(got, ":status=307;cache-control=private;date=Mon, 21 Oct 2013 20:13:21 "
                          "GMT;location=https://www.example.com;");
    ck_assert(decode_hex(&h, "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff "
                             "c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af "
                             "2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 "
                             "07"));
    ck_assert_str_eq(got, ":status=200;cache-control=private;date=Mon, 21 Oct 2013 20:13:22 "
                          "GMT;location=https://www.example.com;content-encoding=gzip;"
                          "set-cookie=foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1;");
    ck_assert_uint_eq(h.size, 215);
    fl_hpack_clear(&h);
}
END_TEST

START_TEST(hpack_malformed)
{
    fl_hpack h;
    fl_hpack_init(&h);
    ck_assert(!decode_hex(&h, "80"));             /* index 0 */
    ck_assert(!decode_hex(&h, "be"));             /* an empty dynamic table's entry */
    ck_assert(!decode_hex(&h, "4185 f1e3"));      /* a string cut short */
    ck_assert(!decode_hex(&h, "0082 ffff 00"));   /* Huffman: EOS inside */
    ck_assert(!decode_hex(&h, "3fe2 1f"));        /* a size update above ours */
    ck_assert(!decode_hex(&h, "1fff ffff ffff ff")); /* an integer without end */
    ck_assert(decode_hex(&h, "3f e1 1f 3f 01 82")); /* size updates, then a field */
    ck_assert_str_eq(got, ":method=GET;");
    fl_hpack_clear(&h);
}
END_TEST

/* ---- the client against a scripted server ----------------------------------- */

enum script { S_OK, S_SPLIT, S_MANY, S_FAIL, S_GOAWAY, S_STALL, S_WINDOW, S_GARBAGE, S_CLOSE };

static int lfd;
static char sock_path[108];
static enum script script;
static _Atomic size_t server_got; /* message bytes the last call carried */

static void frame(int fd, uint8_t type, uint8_t flags, uint32_t stream, const void *p,
                  size_t len)
{
    uint8_t h[9] = { (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags,
                     (uint8_t)(stream >> 24), (uint8_t)(stream >> 16), (uint8_t)(stream >> 8),
                     (uint8_t)stream };
    ck_assert_int_eq(write(fd, h, 9), 9);
    if (len)
        ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
}

static bool read_full(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Reads a call (after the preface, once per connection) up to its
 * END_STREAM; its stream id, or 0 when the client went away. */
static uint32_t read_call(int fd, bool *preface, bool window_updates)
{
    uint8_t buf[65536];
    if (!*preface) {
        if (!read_full(fd, buf, 24))
            return 0;
        ck_assert(memcmp(buf, "PRI * HTTP/2.0", 14) == 0);
        *preface = true;
    }
    size_t got_now = 0;
    for (;;) {
        uint8_t h[9];
        if (!read_full(fd, h, 9))
            return 0;
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        uint32_t stream = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 |
                           h[8]) & 0x7fffffff;
        ck_assert_uint_le(len, sizeof buf);
        if (!read_full(fd, buf, len))
            return 0;
        if (h[3] == 0) { /* DATA */
            got_now += len;
            if (window_updates && len) {
                uint8_t inc[4] = { 0, 0, (uint8_t)(len >> 8), (uint8_t)len };
                frame(fd, 8, 0, 0, inc, 4);
                frame(fd, 8, 0, stream, inc, 4);
            }
            if (h[4] & 1) {
                server_got = got_now;
                return stream;
            }
        }
    }
}

/* A literal header field without indexing, new name. */
static size_t lit(uint8_t *p, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value);
    p[0] = 0;
    p[1] = (uint8_t)n;
    memcpy(p + 2, name, n);
    p[2 + n] = (uint8_t)v;
    memcpy(p + 3 + n, value, v);
    return 3 + n + v;
}

static void answer(int fd, uint32_t id, bool split)
{
    uint8_t hb[128], data[16] = { 0, 0, 0, 0, 4, 'p', 'o', 'n', 'g' }, tb[64];
    size_t hl = 0;
    hb[hl++] = 0x88; /* :status 200 */
    hl += lit(hb + hl, "content-type", "application/grpc");
    size_t tl = lit(tb, "grpc-status", "0");
    if (!split) {
        frame(fd, 1, 4, id, hb, hl);
        frame(fd, 0, 0, id, data, 9);
        frame(fd, 1, 5, id, tb, tl);
        return;
    }
    /* padding, priority, a header block in three pieces, a ping, a PRIORITY
     * frame and an unknown frame type in between */
    uint8_t first[64];
    first[0] = 3;                                   /* pad length */
    memset(first + 1, 0, 5);                        /* priority */
    memcpy(first + 6, hb, 4);
    memset(first + 10, 0, 3);                       /* padding */
    frame(fd, 1, 0x8 | 0x20, id, first, 13);
    frame(fd, 9, 0, id, hb + 4, 6);
    frame(fd, 9, 4, id, hb + 10, hl - 10);
    frame(fd, 6, 0, 0, "12345678", 8);
    frame(fd, 2, 0, id, "\0\0\0\0\0", 5);
    frame(fd, 0xfa, 0, id, "x", 1);
    uint8_t padded[32] = { 2 };
    memcpy(padded + 1, data, 9);
    frame(fd, 0, 0x8, id, padded, 12);
    frame(fd, 1, 5, id, tb, tl);
}

static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        bool preface = false;
        /* our SETTINGS: the default window, or a tiny one */
        uint8_t s[6] = { 0, 4, 0, 0, 0, script == S_WINDOW ? 10 : 0 };
        if (script == S_WINDOW)
            frame(fd, 4, 0, 0, s, 6);
        else
            frame(fd, 4, 0, 0, NULL, 0);
        uint32_t id;
        while ((id = read_call(fd, &preface, script == S_WINDOW))) {
            if (script == S_OK || script == S_WINDOW) {
                answer(fd, id, false);
            } else if (script == S_SPLIT) {
                answer(fd, id, true);
            } else if (script == S_MANY) {
                /* many small frames, cut anywhere by the reads (the read
                 * buffer keeps an offset into what it has) */
                for (int i = 0; i < 20000; i++)
                    frame(fd, 0xfa, 0, id, NULL, 0);
                answer(fd, id, true);
            } else if (script == S_FAIL) {
                uint8_t hb[128];
                size_t hl = 0;
                hb[hl++] = 0x88;
                hl += lit(hb + hl, "grpc-status", "12");
                hl += lit(hb + hl, "grpc-message", "no%20such method");
                frame(fd, 1, 5, id, hb, hl);
            } else if (script == S_GOAWAY) {
                uint8_t g[8] = { 0 }; /* last stream 0: the call was never seen */
                frame(fd, 7, 0, 0, g, 8);
                script = S_OK;
                break;
            } else if (script == S_GARBAGE) {
                uint8_t junk[9] = { 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1 };
                ck_assert_int_eq(write(fd, junk, 9), 9);
                script = S_OK;
                uint8_t rest[256]; /* until the client drops the connection */
                while (read(fd, rest, sizeof rest) > 0)
                    ;
                break;
            } else if (script == S_CLOSE) {
                script = S_OK;
                break;
            }
            /* S_STALL: no answer */
        }
        close(fd);
    }
}

static pthread_t server_th;

static void start_server(void)
{
    char dir[] = "/tmp/test-h2-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof sock_path, "%s/s", dir);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    pthread_create(&server_th, NULL, server, NULL);
}

static void stop_server(void)
{
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(server_th, NULL);
    unlink(sock_path);
    *strrchr(sock_path, '/') = 0;
    rmdir(sock_path);
}

static flame_status call(fl_h2 *c, size_t len, int timeout_ms, char *out)
{
    uint8_t *req = fl_calloc(1, len + 1), *resp = NULL;
    size_t rlen = 0;
    flame_status st = fl_h2_unary(c, "/flame.v1.Instance/OnTaskInvoke", req, len, &resp, &rlen,
                                  timeout_ms);
    free(req);
    if (st == FLAME_OK)
        snprintf(out, 32, "%.*s", (int)rlen, resp);
    free(resp);
    return st;
}

START_TEST(h2_calls)
{
    start_server();
    char out[32];
    fl_h2 *c = fl_h2_new(sock_path, 1 << 20);

    script = S_OK; /* several calls on one connection */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(call(c, 10, 5000, out), FLAME_OK);
        ck_assert_str_eq(out, "pong");
        ck_assert_uint_eq(server_got, 15);
    }
    script = S_SPLIT;
    ck_assert_int_eq(call(c, 0, 5000, out), FLAME_OK);
    ck_assert_str_eq(out, "pong");

    script = S_MANY;
    ck_assert_int_eq(call(c, 10, 5000, out), FLAME_OK);
    ck_assert_str_eq(out, "pong");

    script = S_FAIL; /* a gRPC error: its code and percent-decoded message */
    ck_assert_int_eq(call(c, 10, 5000, out), FLAME_ERR_UNIMPLEMENTED);
    ck_assert_str_eq(flame_error_last(), "no such method");

    script = S_GOAWAY; /* refused unseen: made again on a new connection */
    ck_assert_int_eq(call(c, 10, 5000, out), FLAME_OK);
    ck_assert_str_eq(out, "pong");

    script = S_STALL; /* no answer: the deadline */
    ck_assert_int_eq(call(c, 10, 200, out), FLAME_ERR_TIMEOUT);
    script = S_CLOSE; /* the connection ends under the call */
    ck_assert_int_eq(call(c, 10, 5000, out), FLAME_ERR_UNAVAILABLE);
    script = S_GARBAGE; /* a frame above our maximum size */
    ck_assert_int_eq(call(c, 10, 5000, out), FLAME_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(flame_error_last(), "protocol error"), "%s", flame_error_last());
    ck_assert_int_eq(call(c, 10, 5000, out), FLAME_OK); /* and a new connection works */

    fl_h2_free(c);
    c = fl_h2_new(sock_path, 1 << 20);
    script = S_WINDOW; /* a 10-byte window: the message goes as it opens */
    ck_assert_int_eq(fl_h2_connect(c, 5000), FLAME_OK);
    usleep(100000); /* its SETTINGS come before the call (else the default window) */
    ck_assert_int_eq(call(c, 100000, 10000, out), FLAME_OK);
    ck_assert_uint_eq(server_got, 100005);

    /* limits: a request over the maximum is refused before it goes */
    fl_h2_free(c);
    c = fl_h2_new(sock_path, 100);
    ck_assert_int_eq(call(c, 101, 5000, out), FLAME_ERR_RESOURCE_EXHAUSTED);
    fl_h2_free(c);
    stop_server();

    /* nobody listening */
    c = fl_h2_new("/nonexistent/socket", 100);
    ck_assert_int_eq(call(c, 1, 1000, out), FLAME_ERR_UNAVAILABLE);
    fl_h2_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("h2");
    TCase *tc = tcase_create("h2");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hpack_rfc_requests);
    tcase_add_test(tc, hpack_rfc_responses_evict);
    tcase_add_test(tc, hpack_malformed);
    tcase_add_test(tc, h2_calls);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
