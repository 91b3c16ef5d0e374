/* The host shim's HTTP/2 client (h2.h): one connection, one call at a time,
 * all on the caller's thread. A call is one write (HEADERS and the message's
 * DATA, when the peer's windows take it) and reads until its trailers. We
 * give the peer windows of 2^31-1 bytes, so it never waits on a
 * WINDOW_UPDATE of ours (one per 1 GiB on the connection).
 * Threads: see h2.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "h2.h"
#include "h2wire.h"
#include "hpack.h"
#include "rpc/rpc.h"
#include "util/util.h"

#define OUR_MAX_FRAME FL_H2_DEFAULT_FRAME /* SETTINGS_MAX_FRAME_SIZE: the default */
#define OUR_WINDOW FL_H2_MAX_WINDOW      /* what we let the peer send */

/* how a read of frames ended */
enum { IO_OK, IO_TIMEOUT, IO_CLOSED, IO_BROKEN };

struct fl_h2 {
    char *path;
    size_t max_message;
    int fd;                 /* -1: not connected */
    fl_hpack dec;
    uint32_t next_id;
    bool goaway;            /* the peer is going away: no new calls here */
    uint32_t goaway_last;   /* the last stream it will answer */
    uint32_t max_frame;     /* the peer's SETTINGS_MAX_FRAME_SIZE */
    int64_t init_window;    /* the peer's SETTINGS_INITIAL_WINDOW_SIZE */
    int64_t send_window;    /* the connection's, for our DATA */
    uint64_t recv_unacked;  /* DATA bytes received not given back yet */
    uint8_t *rbuf;          /* read; from roff on, not handled yet */
    size_t roff, rlen, rcap;
    uint8_t *hdr;           /* a header block waiting for its CONTINUATION */
    size_t hlen;
    uint32_t hdr_stream;
    uint8_t hdr_flags;
    bool in_headers;
    char why[160];          /* a broken connection's reason */
    bool wrote_none;        /* the last write_iov failed before its first byte */
    bool expect_wait;       /* a call just went out: its answer cannot be there yet */
};

/* The call in flight. */
typedef struct h2call {
    uint32_t id;
    int64_t send_window;
    bool headers_seen, ended, reset, refused, too_big;
    uint32_t rst_code;
    int http_status;
    int grpc_status;        /* -1: none came */
    char *grpc_message;
    uint8_t *body;
    size_t blen, bcap;
} h2call;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll()'s timeout until the deadline (-1: none). */
static int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t l = deadline - mono_ms();
    return l <= 0 ? 0 : l > 60000 ? 60000 : (int)l;
}

fl_h2 *fl_h2_new(const char *path, size_t max_message)
{
    fl_h2 *c = fl_calloc(1, sizeof *c);
    c->path = fl_strdup(path);
    c->max_message = max_message;
    c->fd = -1;
    return c;
}

static void disconnect(fl_h2 *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    fl_hpack_clear(&c->dec);
    free(c->rbuf);
    c->rbuf = NULL;
    c->roff = c->rlen = c->rcap = 0;
    free(c->hdr);
    c->hdr = NULL;
    c->hlen = 0;
    c->in_headers = false;
}

void fl_h2_free(fl_h2 *c)
{
    if (!c)
        return;
    disconnect(c);
    free(c->path);
    free(c);
}

/* Writes all of iov (advancing it) before the deadline. */
static int write_iov(fl_h2 *c, struct iovec *iov, int n, int64_t deadline)
{
    c->wrote_none = true;
    while (n > 0) {
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd p = { c->fd, POLLOUT, 0 };
            int r = poll(&p, 1, left_ms(deadline));
            if (r == 0 && deadline >= 0 && mono_ms() >= deadline)
                return IO_TIMEOUT;
            continue;
        }
        if (w < 0) {
            snprintf(c->why, sizeof c->why, "write: %s", strerror(errno));
            return IO_CLOSED;
        }
        c->wrote_none = false;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return IO_OK;
}

static int write_buf(fl_h2 *c, const void *p, size_t len, int64_t deadline)
{
    struct iovec iov = { (void *)p, len };
    return write_iov(c, &iov, 1, deadline);
}

static int send_window_update(fl_h2 *c, uint32_t stream, uint32_t inc, int64_t deadline)
{
    uint8_t f[13];
    fl_h2_frame_head(f, 4, FL_H2_WINDOW_UPDATE, 0, stream);
    fl_h2_put32(f + 9, inc);
    return write_buf(c, f, sizeof f, deadline);
}

flame_status fl_h2_connect(fl_h2 *c, int timeout_ms)
{
    if (c->fd >= 0)
        return FLAME_OK;
    int64_t deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : -1;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(c->path) >= sizeof a.sun_path)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "socket path too long: %s", c->path);
    memcpy(a.sun_path, c->path, strlen(c->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fl_error(FLAME_ERR_UNAVAILABLE, "socket: %s", strerror(errno));
    /* a listening Unix socket whose backlog is full says EAGAIN: retry */
    while (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if ((errno == EAGAIN || errno == EINTR) && left_ms(deadline) != 0) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
            continue;
        }
        int e = errno;
        close(fd);
        return fl_error(FLAME_ERR_UNAVAILABLE, "cannot connect to %s: %s", c->path, strerror(e));
    }
    c->fd = fd;
    fl_hpack_init(&c->dec);
    c->next_id = 1;
    c->goaway = false;
    c->max_frame = 16384;
    c->init_window = 65535;
    c->send_window = 65535;
    c->recv_unacked = 0;
    /* the preface, our SETTINGS (no push; streams may send 2^31-1 bytes)
     * and the connection's window opened as wide */
    uint8_t buf[FL_H2_PREFACE_LEN + 9 + 12 + 13];
    memcpy(buf, FL_H2_PREFACE, FL_H2_PREFACE_LEN);
    uint8_t *p = buf + FL_H2_PREFACE_LEN;
    fl_h2_frame_head(p, 12, FL_H2_SETTINGS, 0, 0);
    p[9] = 0, p[10] = 2, fl_h2_put32(p + 11, 0);               /* ENABLE_PUSH */
    p[15] = 0, p[16] = 4, fl_h2_put32(p + 17, OUR_WINDOW);     /* INITIAL_WINDOW_SIZE */
    p += 21;
    fl_h2_frame_head(p, 4, FL_H2_WINDOW_UPDATE, 0, 0);
    fl_h2_put32(p + 9, OUR_WINDOW - 65535);
    if (write_buf(c, buf, sizeof buf, deadline) != IO_OK) {
        flame_status st = fl_error(FLAME_ERR_UNAVAILABLE, "cannot talk to %s: %s", c->path,
                                   c->why[0] ? c->why : "timed out");
        disconnect(c);
        return st;
    }
    return FLAME_OK;
}

/* Reads what the socket has (waiting until the deadline for something). */
static int read_more(fl_h2 *c, int64_t deadline)
{
    /* what was handled goes once a read, not once a frame: a service
     * sending many small frames costs a copy of each byte, not of the
     * buffer per frame */
    if (c->roff) {
        memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
        c->rlen -= c->roff;
        c->roff = 0;
    }
    if (c->rcap - c->rlen < OUR_MAX_FRAME + 9) {
        c->rcap = c->rlen + 2 * (OUR_MAX_FRAME + 9);
        c->rbuf = fl_realloc(c->rbuf, c->rcap);
    }
    if (c->expect_wait) { /* wait first: saves a recv() that finds nothing */
        c->expect_wait = false;
        struct pollfd p = { c->fd, POLLIN, 0 };
        if (poll(&p, 1, left_ms(deadline)) == 0 && deadline >= 0 && mono_ms() >= deadline)
            return IO_TIMEOUT;
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (r > 0) {
            c->rlen += (size_t)r;
            return IO_OK;
        }
        if (r == 0) {
            snprintf(c->why, sizeof c->why, "the service closed the connection");
            return IO_CLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            snprintf(c->why, sizeof c->why, "read: %s", strerror(errno));
            return IO_CLOSED;
        }
        struct pollfd p = { c->fd, POLLIN, 0 };
        int n = poll(&p, 1, left_ms(deadline));
        if (n == 0 && deadline >= 0 && mono_ms() >= deadline)
            return IO_TIMEOUT;
    }
}

static int broken(fl_h2 *c, const char *why)
{
    snprintf(c->why, sizeof c->why, "HTTP/2 protocol error from the service: %s", why);
    return IO_BROKEN;
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* One decoded header field of the call's response or trailers. */
static void on_field(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    h2call *k = arg;
    if (!k)
        return;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        k->http_status = atoi(value);
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        k->grpc_status = atoi(value);
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(k->grpc_message);
        /* percent-encoded (gRPC's HTTP/2 protocol) */
        char *m = fl_malloc(vlen + 1);
        size_t j = 0;
        for (size_t i = 0; i < vlen; i++) {
            int hi = i + 2 < vlen ? hexval(value[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(value[i + 2]) : -1;
            if (value[i] == '%' && lo >= 0) {
                m[j++] = (char)(hi << 4 | lo);
                i += 2;
            } else {
                m[j++] = value[i];
            }
        }
        m[j] = 0;
        k->grpc_message = m;
    }
}

static int header_block(fl_h2 *c, h2call *k, uint32_t stream, uint8_t flags, const uint8_t *p,
                        size_t len)
{
    h2call *mine = k && stream == k->id ? k : NULL;
    /* every block goes through the decoder: its table is the connection's */
    if (!fl_hpack_decode(&c->dec, p, len, on_field, mine))
        return broken(c, "malformed header block");
    if (mine) {
        mine->headers_seen = true;
        if (flags & FL_END_STREAM)
            mine->ended = true;
    }
    return IO_OK;
}

/* An acknowledgement: when the peer is gone, what it sent before is still
 * read (a GOAWAY that lets the call be made again, the call's answer). */
static int control(fl_h2 *c, const uint8_t *f, size_t len, int64_t deadline)
{
    int r = write_buf(c, f, len, deadline);
    return r == IO_CLOSED ? IO_OK : r;
}

static int on_settings(fl_h2 *c, h2call *k, uint8_t flags, const uint8_t *p, size_t len,
                       int64_t deadline)
{
    if (flags & FL_ACK)
        return IO_OK;
    if (len % 6)
        return broken(c, "SETTINGS of a bad length");
    for (size_t i = 0; i < len; i += 6) {
        unsigned id = (unsigned)p[i] << 8 | p[i + 1];
        uint32_t v = fl_h2_get32(p + i + 2);
        if (id == 4) { /* INITIAL_WINDOW_SIZE: open streams move by the change */
            if (v > 0x7fffffffu)
                return broken(c, "window too large");
            if (k)
                k->send_window += (int64_t)v - c->init_window;
            c->init_window = v;
        } else if (id == 5) {
            if (v < 16384 || v > 16777215)
                return broken(c, "bad SETTINGS_MAX_FRAME_SIZE");
            c->max_frame = v;
        }
    }
    uint8_t ack[9];
    fl_h2_frame_head(ack, 0, FL_H2_SETTINGS, FL_ACK, 0);
    return control(c, ack, sizeof ack, deadline);
}

/* Handles one frame. */
static int on_frame(fl_h2 *c, h2call *k, uint8_t type, uint8_t flags, uint32_t stream,
                    const uint8_t *p, size_t len, int64_t deadline)
{
    if (c->in_headers && (type != FL_H2_CONTINUATION || stream != c->hdr_stream))
        return broken(c, "a header block interrupted");
    switch (type) {
    case FL_H2_DATA: {
        if (!stream)
            return broken(c, "DATA on stream 0");
        c->recv_unacked += len;
        if (c->recv_unacked >= OUR_WINDOW / 2) {
            int r = send_window_update(c, 0, (uint32_t)c->recv_unacked, deadline);
            if (r != IO_OK)
                return r;
            c->recv_unacked = 0;
        }
        size_t pad = 0;
        if (flags & FL_PADDED) {
            if (len < 1 || (size_t)p[0] + 1 > len)
                return broken(c, "bad padding");
            pad = p[0];
            p++;
            len -= 1 + pad;
        }
        if (!k || stream != k->id || k->ended)
            return IO_OK;
        if (k->blen + len > c->max_message + 5) {
            k->too_big = true;
        } else if (len) {
            if (k->blen + len > k->bcap) {
                k->bcap = (k->blen + len) * 2;
                k->body = fl_realloc(k->body, k->bcap);
            }
            memcpy(k->body + k->blen, p, len);
            k->blen += len;
        }
        if (flags & FL_END_STREAM)
            k->ended = true;
        return IO_OK;
    }
    case FL_H2_HEADERS: {
        if (!stream)
            return broken(c, "HEADERS on stream 0");
        size_t skip = 0, pad = 0;
        if (flags & FL_PADDED) {
            if (len < 1)
                return broken(c, "bad padding");
            pad = p[0];
            skip = 1;
        }
        if (flags & FL_PRIORITY)
            skip += 5;
        if (skip + pad > len)
            return broken(c, "bad padding");
        p += skip;
        len -= skip + pad;
        if (flags & FL_END_HEADERS)
            return header_block(c, k, stream, flags, p, len);
        c->hdr = fl_realloc(c->hdr, len ? len : 1);
        memcpy(c->hdr, p, len);
        c->hlen = len;
        c->hdr_stream = stream;
        c->hdr_flags = flags;
        c->in_headers = true;
        return IO_OK;
    }
    case FL_H2_CONTINUATION: {
        if (!c->in_headers)
            return broken(c, "CONTINUATION out of place");
        if (c->hlen + len > FL_H2_MAX_HEADER_BLOCK)
            return broken(c, "header block too large");
        c->hdr = fl_realloc(c->hdr, c->hlen + len + 1);
        memcpy(c->hdr + c->hlen, p, len);
        c->hlen += len;
        if (!(flags & FL_END_HEADERS))
            return IO_OK;
        c->in_headers = false;
        return header_block(c, k, stream, c->hdr_flags, c->hdr, c->hlen);
    }
    case FL_H2_RST_STREAM:
        if (len != 4)
            return broken(c, "RST_STREAM of a bad length");
        if (k && stream == k->id && !k->ended) {
            k->reset = true;
            k->rst_code = fl_h2_get32(p);
            k->refused = k->rst_code == FL_H2_REFUSED_STREAM;
        }
        return IO_OK;
    case FL_H2_SETTINGS:
        if (stream)
            return broken(c, "SETTINGS on a stream");
        return on_settings(c, k, flags, p, len, deadline);
    case FL_H2_PUSH_PROMISE:
        return broken(c, "PUSH_PROMISE (push is off)");
    case FL_H2_PING: {
        if (len != 8)
            return broken(c, "PING of a bad length");
        if (flags & FL_ACK)
            return IO_OK;
        uint8_t pong[17];
        fl_h2_frame_head(pong, 8, FL_H2_PING, FL_ACK, 0);
        memcpy(pong + 9, p, 8);
        return control(c, pong, sizeof pong, deadline);
    }
    case FL_H2_GOAWAY:
        if (len < 8)
            return broken(c, "GOAWAY of a bad length");
        c->goaway = true;
        c->goaway_last = fl_h2_get32(p) & 0x7fffffffu;
        if (k && k->id > c->goaway_last && !k->ended)
            k->refused = true; /* never seen: safe to make again */
        return IO_OK;
    case FL_H2_WINDOW_UPDATE: {
        if (len != 4)
            return broken(c, "WINDOW_UPDATE of a bad length");
        int64_t inc = fl_h2_get32(p) & 0x7fffffffu;
        if (!stream)
            c->send_window += inc;
        else if (k && stream == k->id)
            k->send_window += inc;
        return IO_OK;
    }
    default: /* PRIORITY, and types we do not know: ignored (RFC 9113 5.5) */
        return IO_OK;
    }
}

/* Handles the next frame, reading until one is complete or the deadline
 * (-1: none). */
static int next_frame(fl_h2 *c, h2call *k, int64_t deadline)
{
    for (;;) {
        size_t have = c->rlen - c->roff;
        if (have >= 9) {
            const uint8_t *f = c->rbuf + c->roff;
            size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
            if (len > OUR_MAX_FRAME)
                return broken(c, "frame larger than SETTINGS_MAX_FRAME_SIZE");
            if (have >= 9 + len) {
                c->roff += 9 + len;
                if (c->roff == c->rlen)
                    c->roff = c->rlen = 0;
                return on_frame(c, k, f[3], f[4], fl_h2_get32(f + 5) & 0x7fffffffu, f + 9, len,
                                deadline);
            }
        }
        int r = read_more(c, deadline);
        if (r != IO_OK)
            return r;
    }
}

/* Whether the connection can take a call. What the peer sent since the
 * last one (SETTINGS, PING, a GOAWAY) is read with the next call's answer:
 * a call it will not see is made again (GOAWAY, or a write that found it
 * gone), so an idle connection needs no read of its own. */
static bool idle_ok(fl_h2 *c)
{
    return c->fd >= 0 && !c->goaway && c->next_id < 0x7ffffff0u;
}

/* The request's header block (no indexing: the peer's table stays empty). */
static size_t request_headers(uint8_t *buf, const char *method, int timeout_ms)
{
    uint8_t *p = buf;
    *p++ = 0x83; /* :method POST */
    *p++ = 0x86; /* :scheme http */
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 4), method);          /* :path */
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 1), "localhost");     /* :authority */
    p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 31), "application/grpc");
    *p++ = 0;
    p = fl_hpack_put_str(p, "te");
    p = fl_hpack_put_str(p, "trailers");
    if (timeout_ms > 0) {
        char t[24];
        if (timeout_ms <= 99999999)
            snprintf(t, sizeof t, "%dm", timeout_ms);
        else
            snprintf(t, sizeof t, "%dS", timeout_ms / 1000);
        *p++ = 0;
        p = fl_hpack_put_str(p, "grpc-timeout");
        p = fl_hpack_put_str(p, t);
    }
    return (size_t)(p - buf);
}

/* Sends the call's HEADERS and its message, as far as the windows allow
 * at a time (reading the peer's frames while they are shut). */
static int send_request(fl_h2 *c, h2call *k, const char *method, const uint8_t *req, size_t len,
                        int timeout_ms, int64_t deadline)
{
    uint8_t *hb = fl_malloc(160 + strlen(method));
    size_t hlen = request_headers(hb + 9, method, timeout_ms);
    if (hlen > c->max_frame) {
        free(hb);
        snprintf(c->why, sizeof c->why, "method name too long");
        return IO_BROKEN;
    }
    fl_h2_frame_head(hb, hlen, FL_H2_HEADERS, FL_END_HEADERS, k->id);
    uint8_t prefix[5] = { 0 };
    fl_h2_put32(prefix + 1, (uint32_t)len);
    size_t total = 5 + len, sent = 0;
    bool first = true, hb_first = true;
    int r = IO_OK;
    while (r == IO_OK && (first || sent < total)) {
        int64_t win = c->send_window < k->send_window ? c->send_window : k->send_window;
        size_t chunk = total - sent;
        if (chunk > c->max_frame)
            chunk = c->max_frame;
        if ((int64_t)chunk > win)
            chunk = win > 0 ? (size_t)win : 0;
        if (!chunk && !first) { /* shut: wait for the peer's WINDOW_UPDATE */
            r = next_frame(c, k, deadline);
            if (r == IO_OK && (k->ended || k->reset || k->refused))
                break; /* it answered (an error) before reading it all */
            continue;
        }
        uint8_t dh[9];
        struct iovec iov[4];
        int n = 0;
        if (first) {
            iov[n++] = (struct iovec){ hb, 9 + hlen };
            first = false;
        }
        if (chunk) {
            fl_h2_frame_head(dh, chunk, FL_H2_DATA, sent + chunk == total ? FL_END_STREAM : 0, k->id);
            iov[n++] = (struct iovec){ dh, 9 };
            size_t pre = sent < 5 ? (5 - sent < chunk ? 5 - sent : chunk) : 0;
            if (pre)
                iov[n++] = (struct iovec){ prefix + sent, pre };
            if (chunk > pre)
                iov[n++] = (struct iovec){ (uint8_t *)req + (sent + pre - 5), chunk - pre };
        }
        r = write_iov(c, iov, n, deadline);
        if (r == IO_CLOSED && c->wrote_none && hb_first) /* gone before it saw any */
            k->refused = true;
        hb_first = false;
        sent += chunk;
        c->send_window -= (int64_t)chunk;
        k->send_window -= (int64_t)chunk;
    }
    free(hb);
    return r;
}

static void send_rst(fl_h2 *c, uint32_t stream)
{
    uint8_t f[13];
    fl_h2_frame_head(f, 4, FL_H2_RST_STREAM, 0, stream);
    fl_h2_put32(f + 9, FL_H2_CANCEL);
    write_buf(c, f, sizeof f, mono_ms() + 100);
}

/* The reply of a call that ended, or its error. */
static flame_status finish(fl_h2 *c, h2call *k, const char *method, uint8_t **resp,
                           size_t *resp_len)
{
    if (k->reset) {
        return fl_error(k->rst_code == FL_H2_CANCEL ? FLAME_ERR_CANCELLED : FLAME_ERR_UNAVAILABLE,
                        "%s: the service reset the call (HTTP/2 error %u)", method,
                        (unsigned)k->rst_code);
    }
    if (k->too_big)
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED,
                        "%s: the reply exceeds the maximum message size of %zu bytes", method,
                        c->max_message);
    if (k->grpc_status < 0) {
        if (k->http_status != 200)
            return fl_error(FLAME_ERR_UNAVAILABLE, "%s: the service answered HTTP status %d",
                            method, k->http_status);
        return fl_error(FLAME_ERR_INTERNAL, "%s: the service's answer has no grpc-status",
                        method);
    }
    if (k->grpc_status != 0) {
        const char *d = k->grpc_message ? k->grpc_message : "";
        flame_status st = rpc_code_to_status(k->grpc_status);
        if (k->grpc_status == RPC_DEADLINE_EXCEEDED)
            return fl_error(st, "%s: deadline exceeded%s%s", method, *d ? ": " : "", d);
        return fl_error(st, "%s", *d ? d : flame_status_str(st));
    }
    if (k->blen < 5)
        return fl_error(FLAME_ERR_INTERNAL, "%s: empty response", method);
    if (k->body[0] != 0)
        return fl_error(FLAME_ERR_INTERNAL, "%s: a compressed reply (none was asked for)", method);
    size_t n = fl_h2_get32(k->body + 1);
    if (n != k->blen - 5)
        return fl_error(FLAME_ERR_INTERNAL, "%s: the reply is not one message", method);
    *resp = fl_malloc(n ? n : 1);
    memcpy(*resp, k->body + 5, n);
    *resp_len = n;
    return FLAME_OK;
}

/* One attempt; *again when the peer refused it unseen (make it again on a
 * new connection). */
static flame_status attempt(fl_h2 *c, const char *method, const uint8_t *req, size_t len,
                            uint8_t **resp, size_t *resp_len, int timeout_ms, int64_t deadline,
                            bool *again)
{
    *again = false;
    if (!idle_ok(c))
        disconnect(c);
    flame_status st = fl_h2_connect(c, timeout_ms > 0 ? left_ms(deadline) + 1 : 0);
    if (st)
        return st;
    c->why[0] = 0;
    h2call k = { .id = c->next_id, .send_window = c->init_window, .grpc_status = -1 };
    c->next_id += 2;
    int r = send_request(c, &k, method, req, len, timeout_ms, deadline);
    c->expect_wait = true;
    while (r == IO_OK && !k.ended && !k.reset && !k.refused)
        r = next_frame(c, &k, deadline);
    if ((r == IO_OK || r == IO_CLOSED) && k.refused && !k.ended) {
        *again = true;
        st = fl_error(FLAME_ERR_UNAVAILABLE, "%s: the service refused the call", method);
        if (c->goaway || r == IO_CLOSED)
            disconnect(c);
    } else if (r == IO_OK) {
        st = finish(c, &k, method, resp, resp_len);
    } else if (r == IO_TIMEOUT) {
        send_rst(c, k.id);
        st = fl_error(FLAME_ERR_TIMEOUT, "%s: deadline exceeded", method);
    } else {
        st = fl_error(FLAME_ERR_UNAVAILABLE, "%s: %s", method, c->why);
        disconnect(c);
    }
    free(k.body);
    free(k.grpc_message);
    return st;
}

flame_status fl_h2_unary(fl_h2 *c, const char *method, const uint8_t *req, size_t len,
                         uint8_t **resp, size_t *resp_len, int timeout_ms)
{
    *resp = NULL;
    *resp_len = 0;
    if (len > c->max_message)
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED,
                        "%s: request of %zu bytes exceeds the maximum message size of %zu bytes",
                        method, len, c->max_message);
    int64_t deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : -1;
    bool again;
    flame_status st = attempt(c, method, req, len, resp, resp_len, timeout_ms, deadline, &again);
    if (again)
        st = attempt(c, method, req, len, resp, resp_len, timeout_ms, deadline, &again);
    return st;
}
