/* libFuzzer target: what the host shim's HTTP/2 client (libflame/shim/h2.c)
 * and its HPACK decoder (libflame/shim/hpack.c) read from a service process,
 * which is untrusted. Both sources are included here (their functions get
 * other names), so the target can check the decoder's table and route the
 * client's writes. Byte 0 picks the mode:
 * - odd: HPACK. The rest is header blocks, each a length byte and its bytes,
 *   decoded in order with one dynamic table (as a connection keeps it), once
 *   with the full 4096-byte table and once with a small one (byte 1). After
 *   each block the table's books must add up and stay within its size; every
 *   field decoded is encoded again (Huffman, no indexing) and must decode to
 *   the same bytes.
 * - even: HTTP/2. Bits 1-2: the number of calls (1..4), bit 3: a small
 *   maximum message (16 bytes, else 1 MiB), bits 4-5: the request's size
 *   (0, 10, 100 or 70000 bytes: past the peer's first window). The rest is
 *   what the service sends, written before the calls on the service's end
 *   of a real Unix socket connection and then shut, so a run never waits:
 *   the client reads to the end of it. A real listener takes the first
 *   connect and is closed then, so a call made again after a GOAWAY finds
 *   nobody at once. The client's writes go to the socket; when it is full,
 *   the service's end is drained (no thread). Calls have a 50 ms deadline. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* the library (linked whole) has these functions too: this copy's get
 * other names */
#define fl_hpack_init fuzz_hpack_init
#define fl_hpack_decode fuzz_hpack_decode
#define fl_hpack_clear fuzz_hpack_clear
#define fl_hpack_put_int fuzz_hpack_put_int
#define fl_hpack_put_str fuzz_hpack_put_str
#define fl_h2_new fuzz_h2_new
#define fl_h2_connect fuzz_h2_connect
#define fl_h2_unary fuzz_h2_unary
#define fl_h2_free fuzz_h2_free
#define sendmsg fuzz_sendmsg
#define poll fuzz_poll
static ssize_t fuzz_sendmsg(int fd, const struct msghdr *m, int flags);
static int fuzz_poll(struct pollfd *fds, nfds_t n, int timeout);
#include "../../libflame/shim/h2.c"
#include "../../libflame/shim/hpack.c"
#undef sendmsg
#undef poll

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

/* ---- HPACK ------------------------------------------------------------------ */

#define MAX_FIELDS 64

typedef struct fields {
    uint8_t buf[1 << 16]; /* the fields as literals without indexing, Huffman-coded */
    size_t len, n;
    bool full;
    char *name[MAX_FIELDS], *value[MAX_FIELDS]; /* the second pass: what came back */
    size_t nlen[MAX_FIELDS], vlen[MAX_FIELDS];
} fields;

static uint8_t *huff_encode(uint8_t *p, const char *s, size_t n)
{
    uint64_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << hp_huff[(uint8_t)s[i]].bits | hp_huff[(uint8_t)s[i]].code;
        bits += hp_huff[(uint8_t)s[i]].bits;
        while (bits >= 8) {
            bits -= 8;
            *p++ = (uint8_t)(acc >> bits);
        }
    }
    if (bits) /* padding: the EOS code's first bits, all ones */
        *p++ = (uint8_t)(acc << (8 - bits) | ((1u << (8 - bits)) - 1));
    return p;
}

static size_t huff_len(const char *s, size_t n)
{
    size_t bits = 0;
    for (size_t i = 0; i < n; i++)
        bits += hp_huff[(uint8_t)s[i]].bits;
    return (bits + 7) / 8;
}

/* fl_hpack_fn of the first pass: touches the bytes, encodes the field again */
static void on_hpack_field(void *arg, const char *name, size_t nlen, const char *value,
                           size_t vlen)
{
    fields *f = arg;
    size_t sum = 0;
    for (size_t i = 0; i < nlen; i++)
        sum += (uint8_t)name[i];
    for (size_t i = 0; i < vlen; i++)
        sum += (uint8_t)value[i];
    (void)sum;
    size_t hn = huff_len(name, nlen), hv = huff_len(value, vlen);
    if (f->full || f->n == MAX_FIELDS || f->len + 1 + 2 * 6 + hn + hv > sizeof f->buf) {
        f->full = true;
        return;
    }
    uint8_t *p = f->buf + f->len;
    *p++ = 0; /* literal without indexing, a new name */
    p = fl_hpack_put_int(p, 7, 0x80, hn);
    p = huff_encode(p, name, nlen);
    p = fl_hpack_put_int(p, 7, 0x80, hv);
    p = huff_encode(p, value, vlen);
    f->len = (size_t)(p - f->buf);
    f->n++;
}

/* fl_hpack_fn of the second pass: keeps the fields */
static void on_again(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    fields *f = arg;
    if (f->n++ >= MAX_FIELDS)
        return;
    f->name[f->n - 1] = fl_memdup(name, nlen + 1);
    f->value[f->n - 1] = fl_memdup(value, vlen + 1);
    f->nlen[f->n - 1] = nlen;
    f->vlen[f->n - 1] = vlen;
}

static void check_table(const fl_hpack *h)
{
    size_t size = 0;
    for (size_t i = 0; i < h->n; i++) {
        check(h->v[i].name[h->v[i].nlen] == 0 && h->v[i].value[h->v[i].vlen] == 0,
              "a table entry without its NUL");
        size += h->v[i].nlen + h->v[i].vlen + 32;
    }
    check(size == h->size, "the table's size is not its entries'");
    check(h->size <= h->max && h->max <= FL_HPACK_TABLE_SIZE, "the table exceeds its size");
    check(h->n <= h->cap, "more entries than room");
}

/* Decodes the blocks of p (n bytes) on a table of max bytes, and on a twin
 * table in step with it whose fields are kept: every block's fields,
 * Huffman-coded again, must decode to the same. */
static void hpack_run(const uint8_t *p, size_t n, size_t max)
{
    fl_hpack h, twin;
    fl_hpack_init(&h);
    fl_hpack_init(&twin);
    h.max = twin.max = max;
    fields *f = fl_calloc(1, sizeof *f), *mine = fl_calloc(1, sizeof *mine);
    size_t at = 0;
    while (at < n) {
        size_t len = p[at++];
        if (len > n - at)
            len = n - at;
        f->len = f->n = 0;
        f->full = false;
        bool ok = fl_hpack_decode(&h, p + at, len, on_hpack_field, f);
        mine->n = 0;
        bool ok2 = fl_hpack_decode(&twin, p + at, len, on_again, mine);
        check(ok == ok2, "two tables in step disagree");
        if (ok) {
            check_table(&h);
            if (!f->full) {
                /* the re-encoded block gives back the fields */
                fields *g = fl_calloc(1, sizeof *g);
                fl_hpack fresh;
                fl_hpack_init(&fresh);
                check(fl_hpack_decode(&fresh, f->buf, f->len, on_again, g),
                      "a re-encoded block refused");
                check(g->n == f->n && g->n == mine->n && fresh.n == 0,
                      "re-encoded fields lost or indexed");
                for (size_t i = 0; i < g->n; i++)
                    check(g->nlen[i] == mine->nlen[i] &&
                              memcmp(g->name[i], mine->name[i], g->nlen[i]) == 0 &&
                              g->vlen[i] == mine->vlen[i] &&
                              memcmp(g->value[i], mine->value[i], g->vlen[i]) == 0,
                          "a field changed by Huffman coding it again");
                for (size_t i = 0; i < g->n; i++)
                    free(g->name[i]), free(g->value[i]);
                fl_hpack_clear(&fresh);
                free(g);
            }
        }
        for (size_t i = 0; i < mine->n && i < MAX_FIELDS; i++)
            free(mine->name[i]), free(mine->value[i]);
        if (!ok)
            break; /* the connection is dropped with its table */
        at += len;
    }
    fl_hpack_clear(&h);
    fl_hpack_clear(&twin);
    free(f);
    free(mine);
}

/* ---- HTTP/2 ----------------------------------------------------------------- */

static char sock_path[108];
static int peer_fd = -1; /* the service's end of the connection */

/* Drains what the client wrote to the service's end; whether any was there. */
static bool drain(void)
{
    char buf[65536];
    bool any = false;
    while (peer_fd >= 0 && read(peer_fd, buf, sizeof buf) > 0)
        any = true;
    return any;
}

/* h2.c's sendmsg: the socket's, draining the service's end when it is full
 * (the client never waits on a service that reads nothing) */
static ssize_t fuzz_sendmsg(int fd, const struct msghdr *m, int flags)
{
    for (;;) {
        ssize_t w = sendmsg(fd, m, flags | MSG_DONTWAIT);
        if (w < 0 && errno == EAGAIN && drain())
            continue;
        return w;
    }
}

/* h2.c's poll: the service's bytes are all there and its end is shut, and
 * the client's writes are drained, so whatever the client waits for is
 * ready at once: a wait is a finding (a call that hangs until its
 * deadline on a service that sent everything) */
static int fuzz_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    (void)timeout;
    int r = poll(fds, n, 0);
    check(r != 0, "a call waited for a service that had shut");
    return r;
}

/* A listener at sock_path for one connection: its fd. */
static int listen_once(void)
{
    unlink(sock_path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
    check(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0,
          "cannot listen");
    return lfd;
}

static void h2_run(uint8_t mode, const uint8_t *p, size_t n)
{
    static const size_t req_sizes[] = { 0, 10, 100, 70000 };
    int calls = 1 + (mode >> 1 & 3);
    size_t max_message = mode & 8 ? 16 : 1u << 20;
    size_t req_len = req_sizes[mode >> 4 & 3];
    int lfd = listen_once();
    fl_h2 *c = fl_h2_new(sock_path, max_message);
    check(fl_h2_connect(c, 1000) == FLAME_OK, "cannot connect");
    peer_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    check(peer_fd >= 0, "accept");
    close(lfd); /* a connection made again finds nobody */
    /* the service's whole answer, then its end shut */
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(peer_fd, p + off, n - off);
        check(w > 0, "cannot write the service's bytes");
        off += (size_t)w;
    }
    shutdown(peer_fd, SHUT_WR);
    uint8_t *req = fl_calloc(1, req_len + 1);
    for (int i = 0; i < calls; i++) {
        uint8_t *resp = NULL;
        size_t rlen = 0;
        flame_status st = fl_h2_unary(c, "/flame.v1.Instance/OnTaskInvoke", req, req_len, &resp,
                                      &rlen, 50);
        if (st == FLAME_OK) {
            check(resp != NULL && rlen <= max_message, "a reply over the maximum");
            size_t sum = 0;
            for (size_t j = 0; j < rlen; j++)
                sum += resp[j];
            (void)sum;
        } else {
            check(resp == NULL && rlen == 0, "a reply with an error");
        }
        free(resp);
        if (c->fd < 0)
            break; /* dropped: the rest would only find nobody */
    }
    free(req);
    fl_h2_free(c);
    close(peer_fd);
    peer_fd = -1;
}

static void cleanup(void)
{
    unlink(sock_path);
    *strrchr(sock_path, '/') = 0;
    rmdir(sock_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fl_log_set_level(FL_LOG_ERROR + 1);
    char dir[] = "/tmp/fuzz-h2-XXXXXX";
    check(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(sock_path, sizeof sock_path, "%s/s", dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (data[0] & 1) {
        hpack_run(data + 2, size - 2, FL_HPACK_TABLE_SIZE);
        hpack_run(data + 2, size - 2, (size_t)data[1] * 2); /* 0..510 bytes */
    } else {
        h2_run(data[0], data + 1, size - 1);
    }
    return 0;
}
