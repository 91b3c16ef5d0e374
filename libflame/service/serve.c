/* serve.c: the Instance server of a C service (serve.h), the mirror image
 * of the host shim's client (shim/h2.c): HTTP/2 (RFC 9113) and gRPC's
 * unary calls, in one poll() loop.
 * A connection's read is handled whole (every complete frame in it), then
 * the calls it completed are answered, each answer one run of frames
 * (HEADERS, DATA packed in place, trailers) in the connection's write
 * buffer, and the buffer goes out in one send: poll wakes, one read, the
 * handler, one write. We give the peer windows of 2^31-1 bytes, so it never
 * waits on us; its windows bound what we send, and an answer waiting for
 * one keeps the rest while the connection's frames are still read.
 * Bounds: a connection holds at most MAX_STREAMS streams, request messages
 * of max_message bytes together, header blocks of FL_H2_MAX_HEADER_BLOCK,
 * and about OUT_HIGH bytes of answers queued (plus one answer): past that
 * it is neither read nor answered until the peer takes what waits. A
 * protocol error ends its connection only (GOAWAY, close).
 * Threads: fl_serve_run's caller only (serve.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "instance.h"
#include "rpc/rpc.h"
#include "serve.h"
#include "shim/h2wire.h"
#include "shim/hpack.h"
#include "util/util.h"

#define MAX_CONNS FL_SERVE_MAX_CONNS /* the host shim uses one (and may reconnect) */
#define PREFACE_MS 10000       /* a connection says its preface and SETTINGS within */
#define ACCEPT_PAUSE_MS 100    /* out of descriptors: the listener rests that long */
#define MAX_STREAMS 100        /* our SETTINGS_MAX_CONCURRENT_STREAMS */
#define OUR_MAX_FRAME FL_H2_DEFAULT_FRAME
#define READ_CHUNK (64u << 10)
#define OUT_HIGH (1u << 20)    /* queued answer bytes that stop reading and answering */
#define MAX_TEXT 512           /* bytes of a grpc-message we send */
#define PATH_KEEP 96           /* bytes of a :path kept for its error */
#define TRAILER_ROOM (128 + 3 * MAX_TEXT) /* a trailers-only frame's block, at most */

/* A call: its request as it comes, then its answer while it waits for
 * window. */
typedef struct sstream {
    uint32_t id;
    int method;             /* fl_instance_method; -1: not ours */
    bool post, grpc_type;   /* :method POST; content-type application/grpc* */
    char path[PATH_KEEP];
    bool end_in;            /* the client's END_STREAM came */
    uint8_t pre[5];         /* the request message's prefix */
    size_t npre;
    uint8_t *body;          /* the message, want bytes (reserved on the connection) */
    size_t blen, bcap, want;
    int64_t send_window;
    uint8_t *out;           /* an answer waiting for window: DATA out[ooff..olen), trailers */
    size_t olen, ooff;
} sstream;

typedef struct sconn {
    int fd;
    fl_serve *srv;
    fl_hpack dec;
    uint8_t *rbuf;          /* read; from roff on, not handled yet */
    size_t roff, rlen, rcap;
    bool preface, settings; /* the client's preface; its first frame, a SETTINGS */
    uint8_t *hdr;           /* a header block waiting for its CONTINUATION */
    size_t hlen;
    uint32_t hdr_stream;
    uint8_t hdr_flags;
    bool in_headers;
    uint32_t max_frame;     /* the peer's SETTINGS_MAX_FRAME_SIZE */
    int64_t init_window;    /* the peer's SETTINGS_INITIAL_WINDOW_SIZE */
    int64_t send_window;    /* the connection's, for our DATA */
    uint64_t recv_unacked;  /* DATA bytes received not given back yet */
    uint32_t last_id;       /* the highest stream the client opened */
    sstream *st[MAX_STREAMS]; /* open streams, oldest first */
    size_t nst;
    size_t req_bytes;       /* request messages' lengths the streams reserved */
    size_t out_wait;        /* answer bytes waiting for window */
    uint8_t *wbuf;          /* to send: from woff to wlen */
    size_t woff, wlen, wcap;
    bool table_update;      /* the peer shrank HPACK's table: say ours is empty */
    int64_t born_ms;        /* accepted then (the preface's deadline) */
    int64_t used_ms;        /* it last read or wrote a byte then */
    bool eof;               /* the client sent all it will */
    bool dead;              /* close it (after one last try to send what waits) */
} sconn;

struct fl_serve {
    int lfd;
    char *path;
    const flame_service *svc;
    size_t max_message;
    sconn *conns[MAX_CONNS];
    size_t nconns;
    size_t req_bytes;       /* every connection's reserved request bytes */
    int64_t accept_after;   /* mono ms: the listener rests until then */
    dev_t sock_dev;         /* the socket file bound (unlinked at the end only */
    ino_t sock_ino;         /* if it is still ours: a successor may have bound the path) */
};

static int64_t now_ms(void)
{
    return fl_mono_ns() / 1000000;
}

/* ---- the write buffer ------------------------------------------------------ */

static size_t wpending(const sconn *c)
{
    return c->wlen - c->woff;
}

/* Room for n more bytes at c->wbuf + c->wlen. */
static uint8_t *wreserve(sconn *c, size_t n)
{
    if (c->wcap - c->wlen < n && c->woff) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    if (c->wcap - c->wlen < n) {
        size_t want = c->wlen + n;
        c->wcap = want < 8192 ? 16384 : want + want / 2;
        c->wbuf = fl_realloc(c->wbuf, c->wcap);
    }
    return c->wbuf + c->wlen;
}

static void put_frame(sconn *c, uint8_t type, uint8_t flags, uint32_t stream, const void *p,
                      size_t len)
{
    uint8_t *w = wreserve(c, 9 + len);
    fl_h2_frame_head(w, len, type, flags, stream);
    if (len)
        memcpy(w + 9, p, len);
    c->wlen += 9 + len;
}

static void put_u32(sconn *c, uint8_t type, uint32_t stream, uint32_t v)
{
    uint8_t b[4];
    fl_h2_put32(b, v);
    put_frame(c, type, 0, stream, b, 4);
}

/* Sends what waits, as far as the socket takes it; true when all went. */
static bool flush(sconn *c)
{
    while (wpending(c)) {
        ssize_t w = send(c->fd, c->wbuf + c->woff, wpending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            c->woff += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return false;
        c->dead = true; /* the peer is gone: what waits goes nowhere */
        c->woff = c->wlen = 0;
        return false;
    }
    c->woff = c->wlen = 0;
    if (c->wcap > 2 * OUT_HIGH) { /* a large answer's buffer is not kept */
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    return true;
}

/* A connection error (5.4.1): GOAWAY, and the connection is closed. */
static bool conn_fail(sconn *c, uint32_t code, const char *why)
{
    if (c->dead)
        return false;
    size_t n = strlen(why);
    uint8_t g[8 + 96];
    if (n > sizeof g - 8)
        n = sizeof g - 8;
    fl_h2_put32(g, c->last_id);
    fl_h2_put32(g + 4, code);
    memcpy(g + 8, why, n);
    put_frame(c, FL_H2_GOAWAY, 0, 0, g, 8 + n);
    c->dead = true;
    fl_log(FL_LOG_DEBUG, "service", "HTTP/2 protocol error from a client: %s", why);
    return false;
}

/* ---- answers --------------------------------------------------------------- */

/* :status and content-type, without indexing (our encoder keeps no table). */
static uint8_t *head_fields(uint8_t *p, int http)
{
    if (http == 200) {
        *p++ = 0x88; /* :status 200, static */
    } else {
        char s[12];
        snprintf(s, sizeof s, "%d", http);
        p = fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 8), s);
    }
    return fl_hpack_put_str(fl_hpack_put_int(p, 4, 0, 31), "application/grpc");
}

/* grpc-status, and grpc-message percent-encoded (gRPC's HTTP/2 protocol). */
static uint8_t *status_fields(uint8_t *p, int code, const char *msg)
{
    char s[12];
    snprintf(s, sizeof s, "%d", code);
    *p++ = 0;
    p = fl_hpack_put_str(fl_hpack_put_str(p, "grpc-status"), s);
    if (msg && *msg) {
        char enc[3 * MAX_TEXT + 1];
        size_t j = 0;
        for (size_t i = 0; msg[i] && i < MAX_TEXT; i++) {
            unsigned char ch = (unsigned char)msg[i];
            if (ch < 0x20 || ch > 0x7e || ch == '%')
                j += (size_t)snprintf(enc + j, 4, "%%%02X", ch);
            else
                enc[j++] = (char)ch;
        }
        enc[j] = 0;
        *p++ = 0;
        p = fl_hpack_put_str(fl_hpack_put_str(p, "grpc-message"), enc);
    }
    return p;
}

/* A header block's first byte, when the peer lowered SETTINGS_HEADER_TABLE_SIZE:
 * a dynamic table size update to 0 (RFC 7541 4.2; our encoder keeps none). */
static uint8_t *table_update(sconn *c, uint8_t *p)
{
    if (c->table_update) {
        *p++ = 0x20;
        c->table_update = false;
    }
    return p;
}

static void put_headers(sconn *c, uint32_t id)
{
    uint8_t *w = wreserve(c, 9 + 64);
    size_t n = (size_t)(head_fields(table_update(c, w + 9), 200) - (w + 9));
    fl_h2_frame_head(w, n, FL_H2_HEADERS, FL_END_HEADERS, id);
    c->wlen += 9 + n;
}

/* The trailers (after HEADERS), or with http a trailers-only answer. */
static void put_trailers(sconn *c, uint32_t id, int http, int code, const char *msg)
{
    uint8_t *w = wreserve(c, 9 + TRAILER_ROOM);
    uint8_t *p = table_update(c, w + 9);
    p = http ? head_fields(p, http) : p;
    size_t n = (size_t)(status_fields(p, code, msg) - (w + 9));
    fl_h2_frame_head(w, n, FL_H2_HEADERS, FL_END_STREAM | FL_END_HEADERS, id);
    c->wlen += 9 + n;
}

static sstream *find(const sconn *c, uint32_t id)
{
    for (size_t i = 0; i < c->nst; i++)
        if (c->st[i]->id == id)
            return c->st[i];
    return NULL;
}

static void stream_free(sconn *c, sstream *s)
{
    for (size_t i = 0; i < c->nst; i++)
        if (c->st[i] == s) {
            memmove(c->st + i, c->st + i + 1, (c->nst - i - 1) * sizeof *c->st);
            c->nst--;
            break;
        }
    c->req_bytes -= s->want;
    c->srv->req_bytes -= s->want;
    c->out_wait -= s->olen - s->ooff;
    free(s->body);
    free(s->out);
    free(s);
}

/* Ends a call with an error, at once (trailers-only); a client still
 * sending is told to stop (8.1: RST_STREAM NO_ERROR after the answer). */
static void answer_error(sconn *c, sstream *s, int http, int code, const char *msg)
{
    put_trailers(c, s->id, http, code, msg);
    if (!s->end_in)
        put_u32(c, FL_H2_RST_STREAM, s->id, FL_H2_NO_ERROR);
    stream_free(c, s);
}

typedef struct reply_ctx {
    sconn *c;
    sstream *s;
    int code;               /* RPC_OK, or why the reply cannot go */
    char msg[128];
} reply_ctx;

/* fl_instance_reply_fn: the answer, packed where it goes. */
static void on_reply(const ProtobufCMessage *m, void *arg)
{
    reply_ctx *r = arg;
    sconn *c = r->c;
    sstream *s = r->s;
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > c->srv->max_message) {
        r->code = RPC_RESOURCE_EXHAUSTED;
        snprintf(r->msg, sizeof r->msg,
                 "the reply of %zu bytes exceeds the maximum message size of %zu bytes", n,
                 c->srv->max_message);
        return;
    }
    put_headers(c, s->id);
    size_t total = 5 + n;
    int64_t win = c->send_window < s->send_window ? c->send_window : s->send_window;
    if ((int64_t)total <= win && total <= c->max_frame) { /* the common case: one DATA */
        uint8_t *w = wreserve(c, 9 + total + 9 + TRAILER_ROOM);
        fl_h2_frame_head(w, total, FL_H2_DATA, 0, s->id);
        w[9] = 0;
        fl_h2_put32(w + 10, (uint32_t)n);
        protobuf_c_message_pack(m, w + 14);
        c->wlen += 9 + total;
        c->send_window -= (int64_t)total;
        s->send_window -= (int64_t)total;
        put_trailers(c, s->id, 0, RPC_OK, NULL);
        return;
    }
    s->out = fl_malloc(total);
    s->out[0] = 0;
    fl_h2_put32(s->out + 1, (uint32_t)n);
    protobuf_c_message_pack(m, s->out + 5);
    s->olen = total;
    c->out_wait += total;
}

/* Answers a call whose request is complete. */
static void answer(sconn *c, sstream *s)
{
    const char *path = fl_instance_method_path(s->method);
    char why[200];
    if (s->npre < 5 || s->blen < s->want) {
        snprintf(why, sizeof why, "%s: %s", path,
                 s->npre ? "the request message is cut short" : "no request message");
        answer_error(c, s, 200, RPC_INVALID_ARGUMENT, why);
        return;
    }
    reply_ctx r = { c, s, RPC_OK, "" };
    int code = fl_instance_call(c->srv->svc, s->method, s->body ? s->body : (const uint8_t *)"",
                                s->blen, on_reply, &r, why, sizeof why);
    free(s->body); /* the request is done with */
    s->body = NULL;
    c->req_bytes -= s->want;
    c->srv->req_bytes -= s->want;
    s->want = s->blen = 0;
    if (code != RPC_OK)
        answer_error(c, s, 200, code, why);
    else if (r.code != RPC_OK)
        answer_error(c, s, 200, r.code, r.msg);
    else if (!s->out)
        stream_free(c, s); /* all of it went in the write buffer */
}

/* Answers the complete calls, oldest first, while little waits to go. */
static void dispatch(sconn *c)
{
    for (size_t i = 0; i < c->nst && !c->dead;) {
        sstream *s = c->st[i];
        if (!s->end_in || s->out) {
            i++;
            continue;
        }
        if (wpending(c) + c->out_wait >= OUT_HIGH)
            return;
        answer(c, s);
        if (i < c->nst && c->st[i] == s)
            i++;
    }
}

/* Moves answers waiting for window into the write buffer, as the windows
 * (and OUT_HIGH) allow; an answer all sent gets its trailers. */
static void pump(sconn *c)
{
    for (size_t i = 0; i < c->nst;) {
        sstream *s = c->st[i];
        while (s->out && s->ooff < s->olen && wpending(c) < OUT_HIGH) {
            int64_t win = c->send_window < s->send_window ? c->send_window : s->send_window;
            size_t chunk = s->olen - s->ooff;
            if (chunk > c->max_frame)
                chunk = c->max_frame;
            if ((int64_t)chunk > win)
                chunk = win > 0 ? (size_t)win : 0;
            if (!chunk)
                break;
            put_frame(c, FL_H2_DATA, 0, s->id, s->out + s->ooff, chunk);
            s->ooff += chunk;
            c->out_wait -= chunk;
            c->send_window -= (int64_t)chunk;
            s->send_window -= (int64_t)chunk;
        }
        if (s->out && s->ooff == s->olen) {
            put_trailers(c, s->id, 0, RPC_OK, NULL);
            stream_free(c, s);
            continue;
        }
        i++;
    }
}

/* Answers and sends what it can; a connection whose client has finished
 * is dead once nothing waits to go. */
static void conn_progress(sconn *c)
{
    while (!c->dead) {
        dispatch(c);
        pump(c);
        if (!wpending(c) || !flush(c))
            break;
    }
    if (c->eof && !wpending(c))
        c->dead = true;
}

/* ---- requests -------------------------------------------------------------- */

/* One decoded field of a request's header block. */
static void on_field(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    sstream *s = arg;
    if (!s)
        return;
    if (nlen == 7 && memcmp(name, ":method", 7) == 0) {
        s->post = vlen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (nlen == 5 && memcmp(name, ":path", 5) == 0) {
        s->method = fl_instance_method_find(value, vlen);
        snprintf(s->path, sizeof s->path, "%.*s", (int)(vlen < PATH_KEEP ? vlen : PATH_KEEP - 1),
                 value);
    } else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
        s->grpc_type = vlen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                       (vlen == 16 || value[16] == '+' || value[16] == ';');
    }
}

static bool header_block(sconn *c, uint32_t id, uint8_t flags, const uint8_t *p, size_t len)
{
    sstream *s = find(c, id);
    if (!s && !(id & 1))
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "a stream id that is even");
    bool fresh = !s && id > c->last_id;
    sstream *ns = NULL;
    if (fresh && c->nst < MAX_STREAMS) {
        ns = fl_calloc(1, sizeof *ns);
        ns->id = id;
        ns->method = -1;
        ns->send_window = c->init_window;
    }
    /* every block goes through the decoder: its table is the connection's */
    if (!fl_hpack_decode(&c->dec, p, len, on_field, ns)) {
        free(ns);
        return conn_fail(c, FL_H2_COMPRESSION_ERROR, "a malformed header block");
    }
    if (!fresh) {
        if (!s)
            return true; /* a stream we ended: what was in flight is ignored */
        /* the request's trailers */
        if (s->end_in || !(flags & FL_END_STREAM))
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "HEADERS in the middle of a request");
        s->end_in = true;
        return true;
    }
    c->last_id = id;
    if (!ns) {
        put_u32(c, FL_H2_RST_STREAM, id, FL_H2_REFUSED_STREAM);
        return true;
    }
    c->st[c->nst++] = ns;
    ns->end_in = flags & FL_END_STREAM;
    if (!ns->post) {
        answer_error(c, ns, 405, RPC_UNIMPLEMENTED, "the HTTP method must be POST");
    } else if (!ns->grpc_type) {
        answer_error(c, ns, 415, RPC_INTERNAL, "the content-type must be application/grpc");
    } else if (ns->method < 0) {
        char why[PATH_KEEP + 32];
        snprintf(why, sizeof why, "unknown method %s", ns->path[0] ? ns->path : "(no :path)");
        answer_error(c, ns, 200, RPC_UNIMPLEMENTED, why);
    }
    return true;
}

/* A request's DATA payload; false when it ended the call (an error). */
static bool stream_data(sconn *c, sstream *s, const uint8_t *p, size_t len)
{
    size_t max = c->srv->max_message;
    char why[160];
    if (s->npre < 5) {
        size_t k = 5 - s->npre < len ? 5 - s->npre : len;
        memcpy(s->pre + s->npre, p, k);
        s->npre += k;
        p += k;
        len -= k;
        if (s->npre < 5)
            return true;
        size_t n = fl_h2_get32(s->pre + 1);
        if (s->pre[0] != 0) {
            answer_error(c, s, 200, RPC_UNIMPLEMENTED,
                         "compressed messages are not supported (no grpc-accept-encoding)");
            return false;
        }
        if (n > max) {
            snprintf(why, sizeof why,
                     "request of %zu bytes exceeds the maximum message size of %zu bytes", n, max);
            answer_error(c, s, 200, RPC_RESOURCE_EXHAUSTED, why);
            return false;
        }
        bool conn_full = c->req_bytes + n > max;
        if (conn_full || c->srv->req_bytes + n > 2 * max) { /* all connections: 2 messages */
            snprintf(why, sizeof why, "the requests in flight on this %s exceed %zu bytes",
                     conn_full ? "connection" : "service", conn_full ? max : 2 * max);
            answer_error(c, s, 200, RPC_RESOURCE_EXHAUSTED, why);
            return false;
        }
        s->want = n;
        c->req_bytes += n;
        c->srv->req_bytes += n;
    }
    if (!len)
        return true;
    if (s->blen + len > s->want) {
        answer_error(c, s, 200, RPC_INVALID_ARGUMENT, "a unary call carries one message");
        return false;
    }
    if (s->blen + len > s->bcap) { /* grows as it comes, not by what the prefix claims */
        size_t cap = s->bcap ? s->bcap * 2 : 4096;
        if (cap < s->blen + len)
            cap = s->blen + len;
        s->bcap = cap < s->want ? cap : s->want;
        s->body = fl_realloc(s->body, s->bcap);
    }
    memcpy(s->body + s->blen, p, len);
    s->blen += len;
    return true;
}

static bool on_settings(sconn *c, uint8_t flags, const uint8_t *p, size_t len)
{
    if (flags & FL_ACK)
        return len ? conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload") : true;
    if (len % 6)
        return conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "SETTINGS of a bad length");
    for (size_t i = 0; i < len; i += 6) {
        unsigned id = (unsigned)p[i] << 8 | p[i + 1];
        uint32_t v = fl_h2_get32(p + i + 2);
        if (id == FL_H2_SETTINGS_ENABLE_PUSH && v > 1) {
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "bad SETTINGS_ENABLE_PUSH");
        } else if (id == FL_H2_SETTINGS_INITIAL_WINDOW_SIZE) {
            if (v > FL_H2_MAX_WINDOW)
                return conn_fail(c, FL_H2_FLOW_CONTROL_ERROR, "window too large");
            for (size_t k = 0; k < c->nst; k++) /* open streams move by the change */
                c->st[k]->send_window += (int64_t)v - c->init_window;
            c->init_window = v;
        } else if (id == FL_H2_SETTINGS_MAX_FRAME_SIZE) {
            if (v < 16384 || v > 16777215)
                return conn_fail(c, FL_H2_PROTOCOL_ERROR, "bad SETTINGS_MAX_FRAME_SIZE");
            c->max_frame = v;
        } else if (id == FL_H2_SETTINGS_HEADER_TABLE_SIZE && v < FL_HPACK_TABLE_SIZE) {
            c->table_update = true; /* said in our next header block */
        }
    }
    c->settings = true;
    put_frame(c, FL_H2_SETTINGS, FL_ACK, 0, NULL, 0);
    return true;
}

static bool on_window_update(sconn *c, uint32_t stream, const uint8_t *p, size_t len)
{
    if (len != 4)
        return conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "WINDOW_UPDATE of a bad length");
    int64_t inc = fl_h2_get32(p) & 0x7fffffffu;
    if (!inc)
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "a WINDOW_UPDATE of 0");
    if (!stream) {
        c->send_window += inc;
        if (c->send_window > FL_H2_MAX_WINDOW)
            return conn_fail(c, FL_H2_FLOW_CONTROL_ERROR, "the connection's window overflows");
        return true;
    }
    if (stream > c->last_id)
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
    sstream *s = find(c, stream);
    if (s) {
        s->send_window += inc;
        if (s->send_window > FL_H2_MAX_WINDOW) {
            put_u32(c, FL_H2_RST_STREAM, stream, FL_H2_FLOW_CONTROL_ERROR);
            stream_free(c, s);
        }
    }
    return true;
}

static bool on_data(sconn *c, uint8_t flags, uint32_t stream, const uint8_t *p, size_t len)
{
    if (!stream || stream > c->last_id)
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "DATA on a stream not open");
    c->recv_unacked += len;
    if (c->recv_unacked >= FL_H2_MAX_WINDOW / 2) {
        put_u32(c, FL_H2_WINDOW_UPDATE, 0, (uint32_t)c->recv_unacked);
        c->recv_unacked = 0;
    }
    if (flags & FL_PADDED) {
        if (len < 1 || (size_t)p[0] + 1 > len)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "bad padding");
        len -= 1 + (size_t)p[0];
        p++;
    }
    sstream *s = find(c, stream);
    if (!s || s->end_in)
        return true; /* a stream we ended, or one past its END_STREAM: ignored */
    if (len && !stream_data(c, s, p, len))
        return true;
    if (flags & FL_END_STREAM)
        s->end_in = true;
    return true;
}

static bool on_headers(sconn *c, uint8_t flags, uint32_t stream, const uint8_t *p, size_t len)
{
    if (!stream)
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "HEADERS on stream 0");
    size_t skip = 0, pad = 0;
    if (flags & FL_PADDED) {
        if (len < 1)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "bad padding");
        pad = p[0];
        skip = 1;
    }
    if (flags & FL_PRIORITY)
        skip += 5;
    if (skip + pad > len)
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "bad padding");
    p += skip;
    len -= skip + pad;
    if (flags & FL_END_HEADERS)
        return header_block(c, stream, flags, p, len);
    c->hdr = fl_realloc(c->hdr, len ? len : 1);
    memcpy(c->hdr, p, len);
    c->hlen = len;
    c->hdr_stream = stream;
    c->hdr_flags = flags;
    c->in_headers = true;
    return true;
}

static bool on_frame(sconn *c, uint8_t type, uint8_t flags, uint32_t stream, const uint8_t *p,
                     size_t len)
{
    if (c->in_headers && (type != FL_H2_CONTINUATION || stream != c->hdr_stream))
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "a header block interrupted");
    if (!c->settings && (type != FL_H2_SETTINGS || (flags & FL_ACK)))
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "the client's preface lacks its SETTINGS");
    switch (type) {
    case FL_H2_DATA:
        return on_data(c, flags, stream, p, len);
    case FL_H2_HEADERS:
        return on_headers(c, flags, stream, p, len);
    case FL_H2_CONTINUATION:
        if (!c->in_headers)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "CONTINUATION out of place");
        if (c->hlen + len > FL_H2_MAX_HEADER_BLOCK)
            return conn_fail(c, FL_H2_ENHANCE_YOUR_CALM, "header block too large");
        c->hdr = fl_realloc(c->hdr, c->hlen + len + 1);
        memcpy(c->hdr + c->hlen, p, len);
        c->hlen += len;
        if (!(flags & FL_END_HEADERS))
            return true;
        c->in_headers = false;
        return header_block(c, stream, c->hdr_flags, c->hdr, c->hlen);
    case FL_H2_PRIORITY:
        if (!stream)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "PRIORITY on stream 0");
        return len == 5 ? true : conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "PRIORITY of a bad length");
    case FL_H2_RST_STREAM: {
        if (!stream || stream > c->last_id)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "RST_STREAM on a stream not open");
        if (len != 4)
            return conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "RST_STREAM of a bad length");
        sstream *s = find(c, stream);
        if (s) /* the client gave up on it: no answer */
            stream_free(c, s);
        return true;
    }
    case FL_H2_SETTINGS:
        if (stream)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "SETTINGS on a stream");
        return on_settings(c, flags, p, len);
    case FL_H2_PUSH_PROMISE:
        return conn_fail(c, FL_H2_PROTOCOL_ERROR, "PUSH_PROMISE from a client");
    case FL_H2_PING:
        if (stream)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "PING on a stream");
        if (len != 8)
            return conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "PING of a bad length");
        if (!(flags & FL_ACK))
            put_frame(c, FL_H2_PING, FL_ACK, 0, p, 8);
        return true;
    case FL_H2_GOAWAY:
        /* the client opens nothing more: what it opened is still answered,
         * and it closes the connection */
        if (stream)
            return conn_fail(c, FL_H2_PROTOCOL_ERROR, "GOAWAY on a stream");
        return len >= 8 ? true : conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "GOAWAY of a bad length");
    case FL_H2_WINDOW_UPDATE:
        return on_window_update(c, stream, p, len);
    default: /* types we do not know: ignored (5.5) */
        return true;
    }
}

/* Handles every complete frame read. */
static void conn_frames(sconn *c)
{
    while (!c->dead) {
        size_t have = c->rlen - c->roff;
        const uint8_t *f = c->rbuf + c->roff;
        if (!c->preface) {
            size_t k = have < FL_H2_PREFACE_LEN ? have : FL_H2_PREFACE_LEN;
            if (memcmp(f, FL_H2_PREFACE, k) != 0) {
                conn_fail(c, FL_H2_PROTOCOL_ERROR, "not an HTTP/2 client preface");
                break;
            }
            if (k < FL_H2_PREFACE_LEN)
                break;
            c->roff += FL_H2_PREFACE_LEN;
            c->preface = true;
            continue;
        }
        if (have < 9)
            break;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        if (len > OUR_MAX_FRAME) {
            conn_fail(c, FL_H2_FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE");
            break;
        }
        if (have < 9 + len)
            break;
        c->roff += 9 + len;
        on_frame(c, f[3], f[4], fl_h2_get32(f + 5) & 0x7fffffffu, f + 9, len);
    }
    if (c->roff == c->rlen)
        c->roff = c->rlen = 0;
}

/* One read, and the frames it completed. */
static void conn_read(sconn *c)
{
    if (c->roff) {
        memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
        c->rlen -= c->roff;
        c->roff = 0;
    }
    if (c->rcap - c->rlen < READ_CHUNK) {
        c->rcap = c->rlen + READ_CHUNK;
        c->rbuf = fl_realloc(c->rbuf, c->rcap);
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
    if (r > 0)
        c->rlen += (size_t)r;
    else if (r == 0)
        c->eof = true;
    else if (errno != EAGAIN && errno != EINTR)
        c->eof = c->dead = true;
    conn_frames(c);
}

/* ---- connections and the loop ---------------------------------------------- */

static sconn *conn_new(fl_serve *srv, int fd)
{
    sconn *c = fl_calloc(1, sizeof *c);
    c->fd = fd;
    c->srv = srv;
    c->born_ms = c->used_ms = now_ms();
    fl_hpack_init(&c->dec);
    c->max_frame = FL_H2_DEFAULT_FRAME;
    c->init_window = FL_H2_DEFAULT_WINDOW;
    c->send_window = FL_H2_DEFAULT_WINDOW;
    /* our SETTINGS (the server's preface) and the connection's window
     * opened as wide as the streams' */
    uint8_t s[12];
    s[0] = 0, s[1] = FL_H2_SETTINGS_MAX_CONCURRENT_STREAMS, fl_h2_put32(s + 2, MAX_STREAMS);
    s[6] = 0, s[7] = FL_H2_SETTINGS_INITIAL_WINDOW_SIZE, fl_h2_put32(s + 8, FL_H2_MAX_WINDOW);
    put_frame(c, FL_H2_SETTINGS, 0, 0, s, sizeof s);
    put_u32(c, FL_H2_WINDOW_UPDATE, 0, FL_H2_MAX_WINDOW - FL_H2_DEFAULT_WINDOW);
    return c;
}

/* Sends what waits if the socket takes it at once, and frees. */
static void conn_close(sconn *c)
{
    if (wpending(c))
        flush(c);
    close(c->fd);
    while (c->nst)
        stream_free(c, c->st[c->nst - 1]);
    fl_hpack_clear(&c->dec);
    free(c->rbuf);
    free(c->hdr);
    free(c->wbuf);
    free(c);
}

fl_serve *fl_serve_new(const char *path, const flame_service *svc, size_t max_message)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path) {
        fl_error(FLAME_ERR_INVALID_ARGUMENT, "socket path too long: %s", path);
        return NULL;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        fl_error(FLAME_ERR_UNAVAILABLE, "cannot listen on %s: %s", path, strerror(e));
        return NULL;
    }
    fl_serve *s = fl_calloc(1, sizeof *s);
    s->lfd = fd;
    s->path = fl_strdup(path);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        s->sock_dev = sb.st_dev;
        s->sock_ino = sb.st_ino;
    }
    s->svc = svc;
    s->max_message = max_message;
    return s;
}

/* The connection a newcomer may take the place of when all are taken: the
 * one idle the longest with no call open and nothing to send. */
static sconn *evictable(const fl_serve *s)
{
    sconn *best = NULL;
    for (size_t i = 0; i < s->nconns; i++) {
        sconn *c = s->conns[i];
        if (!c->nst && !wpending(c) && (!best || c->used_ms < best->used_ms))
            best = c;
    }
    return best;
}

static void on_accept(fl_serve *s)
{
    for (;;) {
        sconn *old = s->nconns < MAX_CONNS ? NULL : evictable(s);
        if (s->nconns >= MAX_CONNS && !old)
            return; /* the rest wait in the backlog */
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /* the newcomer stays in the backlog and the listener readable:
             * rest it rather than spin on it */
            fl_log(FL_LOG_WARN, "service", "accept: %s; new connections wait %d ms",
                   strerror(errno), ACCEPT_PAUSE_MS);
            s->accept_after = now_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        if (fd < 0)
            return; /* none waits */
        if (old) {
            for (size_t i = 0; i < s->nconns; i++)
                if (s->conns[i] == old)
                    s->conns[i] = s->conns[--s->nconns];
            conn_close(old);
        }
        sconn *c = conn_new(s, fd);
        s->conns[s->nconns++] = c;
        flush(c);
    }
}

flame_status fl_serve_run(fl_serve *s, int stop_fd)
{
    struct pollfd pf[2 + MAX_CONNS];
    sconn *who[2 + MAX_CONNS];
    for (;;) {
        int64_t now = now_ms(), wake = -1; /* poll's bound: the next deadline */
        for (size_t i = 0; i < s->nconns; i++) {
            sconn *c = s->conns[i];
            if (c->preface && c->settings)
                continue;
            if (now >= c->born_ms + PREFACE_MS)
                c->dead = true; /* said nothing of HTTP/2 in time */
            else if (wake < 0 || c->born_ms + PREFACE_MS < wake)
                wake = c->born_ms + PREFACE_MS;
        }
        nfds_t n = 0;
        pf[n++] = (struct pollfd){ stop_fd, POLLIN, 0 };
        nfds_t li = 0;
        if (now < s->accept_after) {
            if (wake < 0 || s->accept_after < wake)
                wake = s->accept_after;
        } else if (s->nconns < MAX_CONNS || evictable(s)) {
            /* a full house of busy connections leaves newcomers in the backlog */
            li = n;
            pf[n++] = (struct pollfd){ s->lfd, POLLIN, 0 };
        }
        nfds_t first = n;
        for (size_t i = 0; i < s->nconns; i++) {
            sconn *c = s->conns[i];
            short ev = 0;
            if (!c->eof && wpending(c) < OUT_HIGH)
                ev |= POLLIN;
            if (wpending(c))
                ev |= POLLOUT;
            who[n] = c;
            pf[n++] = (struct pollfd){ c->fd, ev, 0 };
        }
        bool reap = false;
        for (size_t i = 0; i < s->nconns; i++)
            reap |= s->conns[i]->dead;
        int timeout = reap ? 0 : wake < 0 ? -1 : (int)(wake - now);
        if (poll(pf, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            return fl_error(FLAME_ERR_INTERNAL, "poll: %s", strerror(errno));
        }
        if (pf[0].revents) {
            char buf[256]; /* a signalfd's record, or a pipe's bytes */
            (void)!read(stop_fd, buf, sizeof buf);
            break;
        }
        for (nfds_t k = first; k < n; k++) {
            sconn *c = who[k];
            short re = pf[k].revents;
            if (!re)
                continue;
            c->used_ms = now_ms();
            if ((re & (POLLIN | POLLHUP | POLLERR)) && !c->eof)
                conn_read(c);
            conn_progress(c);
        }
        size_t kept = 0;
        for (size_t i = 0; i < s->nconns; i++) {
            if (s->conns[i]->dead)
                conn_close(s->conns[i]);
            else
                s->conns[kept++] = s->conns[i];
        }
        s->nconns = kept;
        if (li && (pf[li].revents & POLLIN))
            on_accept(s);
    }
    for (size_t i = 0; i < s->nconns; i++) {
        sconn *c = s->conns[i];
        uint8_t g[8];
        fl_h2_put32(g, c->last_id);
        fl_h2_put32(g + 4, FL_H2_NO_ERROR);
        put_frame(c, FL_H2_GOAWAY, 0, 0, g, sizeof g);
        conn_close(c);
    }
    s->nconns = 0;
    return FLAME_OK;
}

void fl_serve_free(fl_serve *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nconns; i++)
        conn_close(s->conns[i]);
    close(s->lfd);
    struct stat sb;
    if (stat(s->path, &sb) == 0 && sb.st_dev == s->sock_dev && sb.st_ino == s->sock_ino)
        unlink(s->path);
    free(s->path);
    free(s);
}
