/* libFuzzer target: what a C service's Instance server
 * (libflame/service/serve.c) reads from a client, which is untrusted. The
 * source is included here (its exported functions get other names), so one
 * connection's handling is driven without the poll loop: the client's bytes
 * go into the client's end of a socketpair, as fast as the server reads
 * them, and are then shut; the server's end is read, handled and answered
 * until the connection ends, which it must (a client that has finished
 * leaves nothing to wait for). Every byte the server writes is read as a
 * client would: frames no larger than the largest frame size the client
 * allowed, the server's SETTINGS first, header blocks that decode, never
 * needing CONTINUATION, on odd streams the client opened. The connection's
 * bounds (streams, buffered requests, header block) are checked at every
 * step. The service echoes (a task or session id starting with 'x' fails).
 * Byte 0 picks the mode:
 * - bit 0: a small maximum message (64 bytes, else 1 MiB);
 * - bit 1: records, each made into a request by the target (the fuzzer
 *   then works on the messages): method(1) flags(1) len(2, little endian)
 *   payload(len); method % 5 picks OnSessionEnter, OnTaskInvoke,
 *   OnSessionLeave, OnTaskInvokeBatch or an unknown one; flags: bit 0 the
 *   compressed flag, bit 1 the DATA split in two frames, bit 2 no
 *   END_STREAM, bit 3 a PING before it;
 * - else the client's bytes as they are, after the preface (bit 2: without
 *   it). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* the library (linked whole) has these functions too: this copy's get
 * other names */
#define fl_serve_new fuzz_serve_new
#define fl_serve_run fuzz_serve_run
#define fl_serve_free fuzz_serve_free
#include "../../libflame/service/serve.c"

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

/* ---- the service ------------------------------------------------------------- */

static int enter(const flame_session_context *ctx, char **message, void *payload)
{
    (void)payload;
    if (ctx->session_id[0] == 'x')
        *message = fl_strdup(ctx->session_id);
    return ctx->session_id[0] == 'x';
}

static int invoke(const flame_task_context *ctx, flame_task_result *r, void *payload)
{
    (void)payload;
    if (ctx->input.data)
        flame_task_result_set_output(r, ctx->input.data, ctx->input.len);
    if (ctx->task_id[0] == 'x') {
        flame_task_result_set_message(r, ctx->session_id);
        return 1;
    }
    return 0;
}

static void invoke_batch(const flame_task_context *tasks, size_t n, int *rcs,
                         flame_task_result **results, void *payload)
{
    for (size_t i = 0; i < n; i++)
        rcs[i] = invoke(&tasks[i], results[i], payload);
}

static void leave(void *payload)
{
    (void)payload;
}

static const flame_service svc = { FLAME_SERVICE_VERSION, enter, invoke, leave, NULL,
                                   invoke_batch };

/* ---- the client's reading of the answers -------------------------------------- */

typedef struct reader {
    uint8_t *buf;
    size_t len, cap;
    bool first;             /* a frame came */
    fl_hpack dec;
    uint32_t max_frame;     /* the largest SETTINGS_MAX_FRAME_SIZE the server saw */
} reader;

static void on_answer_field(void *arg, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    (void)arg, (void)name, (void)nlen, (void)value, (void)vlen;
}

static void read_answers(reader *rd, int fd, const sconn *c)
{
    for (;;) {
        if (rd->cap - rd->len < 65536) {
            rd->cap = rd->len + 131072;
            rd->buf = fl_realloc(rd->buf, rd->cap);
        }
        ssize_t r = read(fd, rd->buf + rd->len, rd->cap - rd->len);
        if (r <= 0)
            break;
        rd->len += (size_t)r;
    }
    if (c->max_frame > rd->max_frame)
        rd->max_frame = c->max_frame;
    size_t off = 0;
    while (rd->len - off >= 9) {
        const uint8_t *f = rd->buf + off;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        if (rd->len - off < 9 + len)
            break;
        uint8_t type = f[3], flags = f[4];
        uint32_t id = fl_h2_get32(f + 5) & 0x7fffffffu;
        check(len <= rd->max_frame, "a frame over the client's maximum size");
        check(rd->first || (type == FL_H2_SETTINGS && !(flags & FL_ACK)),
              "the server's first frame is not its SETTINGS");
        rd->first = true;
        if (type == FL_H2_HEADERS || type == FL_H2_DATA) {
            check(id & 1 && id <= c->last_id, "an answer on a stream the client did not open");
        }
        if (type == FL_H2_HEADERS) {
            check(flags & FL_END_HEADERS, "a header block that needs CONTINUATION");
            check(fl_hpack_decode(&rd->dec, f + 9, len, on_answer_field, NULL),
                  "a header block that does not decode");
        }
        check(type != FL_H2_CONTINUATION && type != FL_H2_PUSH_PROMISE, "a frame we never send");
        off += 9 + len;
    }
    memmove(rd->buf, rd->buf + off, rd->len - off);
    rd->len -= off;
}

/* ---- the client's bytes --------------------------------------------------------- */

static void add(fl_buf *b, const void *p, size_t n)
{
    fl_buf_add(b, p, n);
}

static void add_frame(fl_buf *b, uint8_t type, uint8_t flags, uint32_t id, const void *p,
                      size_t len)
{
    uint8_t h[9];
    fl_h2_frame_head(h, len, type, flags, id);
    add(b, h, 9);
    if (len)
        add(b, p, len);
}

/* Mode records: requests made from them. */
static void records(fl_buf *b, const uint8_t *p, size_t n)
{
    static const char *paths[] = { "/flame.v1.Instance/OnSessionEnter",
                                   "/flame.v1.Instance/OnTaskInvoke",
                                   "/flame.v1.Instance/OnSessionLeave",
                                   "/flame.v1.Instance/OnTaskInvokeBatch",
                                   "/flame.v1.Instance/Unknown" };
    add_frame(b, FL_H2_SETTINGS, 0, 0, NULL, 0);
    uint32_t id = 1;
    while (n >= 4) {
        uint8_t method = p[0] % 5, flags = p[1];
        size_t len = (size_t)p[2] | (size_t)p[3] << 8;
        p += 4;
        n -= 4;
        if (len > n)
            len = n;
        if (flags & 8)
            add_frame(b, FL_H2_PING, 0, 0, "pingpong", 8);
        uint8_t hb[128], *q = hb;
        *q++ = 0x83;
        *q++ = 0x86;
        q = fl_hpack_put_str(fl_hpack_put_int(q, 4, 0, 4), paths[method]);
        q = fl_hpack_put_str(fl_hpack_put_int(q, 4, 0, 31), "application/grpc");
        add_frame(b, FL_H2_HEADERS, FL_END_HEADERS, id, hb, (size_t)(q - hb));
        uint8_t pre[5] = { flags & 1 };
        fl_h2_put32(pre + 1, (uint32_t)len);
        uint8_t *msg = fl_malloc(5 + len);
        memcpy(msg, pre, 5);
        memcpy(msg + 5, p, len);
        uint8_t end = flags & 4 ? 0 : FL_END_STREAM;
        size_t total = 5 + len, at = 0;
        if (flags & 2) {
            add_frame(b, FL_H2_DATA, 0, id, msg, total / 2);
            at = total / 2;
        }
        while (at < total) {
            size_t k = total - at > 16384 ? 16384 : total - at;
            add_frame(b, FL_H2_DATA, at + k == total ? end : 0, id, msg + at, k);
            at += k;
        }
        free(msg);
        p += len;
        n -= len;
        id += 2;
    }
}

/* ---- one run ---------------------------------------------------------------------- */

static void run(uint8_t mode, const uint8_t *data, size_t size)
{
    fl_buf in = { 0 };
    if (mode & 2) {
        add(&in, FL_H2_PREFACE, FL_H2_PREFACE_LEN);
        records(&in, data, size);
    } else {
        if (!(mode & 4))
            add(&in, FL_H2_PREFACE, FL_H2_PREFACE_LEN);
        add(&in, data, size);
    }
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
          "socketpair");
    fl_serve srv = { .lfd = -1, .svc = &svc, .max_message = mode & 1 ? 64 : 1u << 20 };
    sconn *c = conn_new(&srv, sv[0]);
    reader rd = { .max_frame = FL_H2_DEFAULT_FRAME };
    fl_hpack_init(&rd.dec);
    size_t off = 0;
    bool shut = false;
    for (int step = 0; !c->dead; step++) {
        check(step < 100000, "the connection never ends");
        if (off < in.len) {
            ssize_t w = write(sv[1], in.data + off, in.len - off);
            if (w > 0)
                off += (size_t)w;
        }
        if (off == in.len && !shut) {
            shutdown(sv[1], SHUT_WR);
            shut = true;
        }
        if (!c->eof && wpending(c) < OUT_HIGH)
            conn_read(c);
        conn_progress(c);
        check(c->nst <= MAX_STREAMS, "more streams than the maximum");
        check(c->req_bytes <= srv.max_message, "requests buffered over the maximum");
        check(c->hlen <= FL_H2_MAX_HEADER_BLOCK, "a header block over the maximum");
        size_t buffered = 0;
        for (size_t i = 0; i < c->nst; i++)
            buffered += c->st[i]->bcap;
        check(buffered <= srv.max_message, "request bytes held over the maximum");
        read_answers(&rd, sv[1], c);
    }
    conn_close(c);
    read_answers(&rd, sv[1], &(sconn){ .last_id = UINT32_MAX, .max_frame = rd.max_frame });
    close(sv[1]);
    fl_hpack_clear(&rd.dec);
    free(rd.buf);
    free(in.data);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fl_log_set_level(FL_LOG_ERROR + 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    run(data[0], data + 1, size - 1);
    return 0;
}
