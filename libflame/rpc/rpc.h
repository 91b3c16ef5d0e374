/* The rpc layer: the only code in the tree that touches grpc_* directly.
 *
 * Server: one completion queue polled by the thread that calls
 * rpc_server_run(); every handler and hook runs on that thread, so the
 * owner's state needs no locks. Calls are dispatched by method path from a
 * table built from protoc-c service descriptors; unknown paths get
 * UNIMPLEMENTED. rpc/ unpacks each request before the handler, frees it
 * after, and asks the authorization hook first. A handler either answers at once
 * or parks the call and answers later (rpc_call_on_cancel tells it when the
 * peer went away first).
 *
 * Client: blocking unary calls, server, client and bidi streams, each on its
 * own pluck queue, so a channel is safe to use from many threads at once.
 *
 * Credentials for both sides are made in one place (credentials.c).
 */
#ifndef FL_RPC_H
#define FL_RPC_H

#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "flame/error.h"

/* gRPC status codes (same numbers as grpc_status_code). */
enum {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
};

#define RPC_DEFAULT_MAX_MESSAGE (64u << 20)

/* Maps between gRPC codes and flame_status. */
flame_status rpc_code_to_status(int code);
int rpc_status_to_code(flame_status status);

/* TLS settings of a server or channel (paths to PEM files). Nothing set:
 * plaintext.
 * Servers: cert_file + key_file (required), ca_file verifies client
 * certificates: requested and verified when presented, or required with
 * mutual. Without ca_file no client certificate is asked for. The files
 * are re-read when they change (new handshakes use the new ones).
 * Channels: TLS when enabled or any file is set; ca_file verifies the
 * server (NULL: gRPC's default roots); cert_file + key_file: the client
 * certificate presented. */
typedef struct rpc_tls {
    const char *cert_file;
    const char *key_file;
    const char *ca_file;
    bool mutual;  /* servers: a client certificate is required */
    bool enabled; /* channels: TLS even with no file set */
} rpc_tls;
#define RPC_TLS_INIT { NULL, NULL, NULL, false, false }

/* Whether tls asks for TLS at all. */
bool rpc_tls_enabled(const rpc_tls *tls);
void rpc_tls_copy(rpc_tls *dst, const rpc_tls *src); /* deep copy */
void rpc_tls_clear(rpc_tls *tls);                    /* frees a copy */

/* Reads and checks the files of tls (PEM, the key matches the certificate,
 * what a server needs is there). FLAME_ERR_CONFIG naming the setting and
 * the file: "cert_file: /etc/flame/server.crt: No such file or directory";
 * callers prefix it with where the setting came from. Nothing set: OK. */
flame_status rpc_tls_check(const rpc_tls *tls, bool server);

/* protobuf_c_message_unpack, minus what protobuf-c accepts but cannot
 * re-pack into bytes it accepts again (an unknown field numbered 0): every
 * message from a peer goes through here, so a copy of one (pack, unpack)
 * never yields NULL. NULL when malformed. */
ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                             const uint8_t *data);

/* Stable "/package.Service/Method" for a method of a protoc-c service
 * descriptor (the one place client paths are spelled; gRPC keeps the
 * pointer, so the string lives as long as the process). A method the
 * descriptor lacks is a programming error: logged, then abort(). */
const char *rpc_path(const ProtobufCServiceDescriptor *service, const char *method);

/* ---- server ------------------------------------------------------------ */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef enum rpc_kind {
    RPC_KIND_UNARY,         /* one request, one response */
    RPC_KIND_SERVER_STREAM, /* one request, a stream of responses */
    RPC_KIND_CLIENT_STREAM, /* a stream of requests, one response */
    RPC_KIND_BIDI           /* streams both ways */
} rpc_kind;

/* req: the request, unpacked by rpc/ with the method's input descriptor;
 * owned by rpc/ and freed right after the handler returns (copy what you
 * keep). CLIENT_STREAM and BIDI: called for every message, then once with
 * req == NULL when the client half-closes. A malformed message never
 * reaches the handler: rpc/ answers INVALID_ARGUMENT
 * "<path>: malformed request message" itself. */
typedef void (*rpc_handler)(rpc_call *call, const ProtobufCMessage *req, void *ctx);

typedef struct rpc_method {
    const char *name; /* "CreateTask", as in the .proto */
    rpc_kind kind;
    rpc_handler handler;
} rpc_method;

typedef struct rpc_service {
    const ProtobufCServiceDescriptor *desc;
    const rpc_method *methods;
    size_t n_methods;
} rpc_service;

typedef struct rpc_server_hooks {
    void (*flush)(void *ctx); /* before the loop would block: commit + reply */
    void (*tick)(void *ctx);  /* every tick_ms */
    int tick_ms;
    void *ctx;
} rpc_server_hooks;

/* Decides whether a call may go on; runs on the server thread. First once
 * per call with req == NULL, before any request is read (who is calling:
 * rpc_call_is_tls, rpc_call_peer_cert; may they call this method); then
 * with every request message, unpacked, right before the handler gets it
 * (may they touch what it names; refused on an open stream, its owner hears
 * of it through rpc_call_on_cancel). Return
 * RPC_OK to let it through, or a code (RPC_PERMISSION_DENIED,
 * RPC_UNAUTHENTICATED...) to finish the call with it and the message
 * written into message (message_size bytes; left empty: "permission
 * denied"). */
typedef int (*rpc_authorize_fn)(rpc_call *call, const ProtobufCMessage *req, char *message,
                                size_t message_size, void *ctx);

/* The owner's own checks of a request, after rpc/'s generic ones (valid
 * UTF-8 in every string, valid field numbers: rpc_message_valid) and
 * before the handler; same contract as rpc_authorize_fn (RPC_OK, or a code
 * and a message: the call is finished with it, the handler never runs). */
typedef int (*rpc_validate_fn)(rpc_call *call, const ProtobufCMessage *req, char *message,
                               size_t message_size, void *ctx);

/* What one peer may hold of the server. 0 in any field: its default. */
typedef struct rpc_limits {
    size_t max_send_queue_bytes;   /* per call, queued and not yet sent; default 16 MiB */
    size_t max_send_queue_msgs;    /* per call; default 4096 */
    int max_concurrent_streams;    /* per connection; default 1000 (parked calls count) */
    int handshake_timeout_ms;      /* connection set-up; default 10 s */
    int idle_timeout_ms;           /* a connection without calls is closed; default 5 min */
    int keepalive_ms;              /* pings to find dead peers; default 60 s (timeout 20 s) */
    int shutdown_grace_ms;         /* rpc_server_shutdown waits this long for calls; default 2 s */
} rpc_limits;

#define RPC_SERVER_OPTIONS_VERSION 1
typedef struct rpc_server_options {
    int version;
    size_t max_message;         /* bytes, both ways; 0: RPC_DEFAULT_MAX_MESSAGE */
    rpc_server_hooks hooks;
    rpc_tls tls;                /* copied by rpc_server_new */
    rpc_authorize_fn authorize; /* NULL: every call is allowed */
    void *authorize_ctx;
    rpc_validate_fn validate;   /* NULL: rpc/'s generic checks only */
    void *validate_ctx;
    rpc_limits limits;
    /* After a turn with work, the loop polls this long without sleeping
     * before it blocks (0: never): the answer to what it just sent often
     * comes within tens of microseconds, and a thread that sleeps is woken
     * by an interrupt from another CPU (in a VM, an exit to the host). */
    int busy_poll_us;
} rpc_server_options;
/* The session manager's busy polling unless cluster.busy_poll says. */
#define RPC_BUSY_POLL_US_DEFAULT 50
#define RPC_SERVER_OPTIONS_INIT { RPC_SERVER_OPTIONS_VERSION, 0, { NULL, NULL, 0, NULL }, \
                                  RPC_TLS_INIT, NULL, NULL, NULL, NULL, { 0 }, 0 }

/* Builds the dispatch table from the services (path "/" + desc->name + "/"
 * + method name); the tables may be freed once this returns. ctx is passed
 * to every handler. opts may be NULL. A method name missing from its
 * descriptor is a programming error: logged, then abort(). */
rpc_server *rpc_server_new(const rpc_service *services, size_t n_services, void *ctx,
                           const rpc_server_options *opts);
/* Binds addr ("host:port" or "unix:PATH"; port 0 picks one) and starts the
 * server. Returns the bound port, or -1 with flame_error_last() set. */
int rpc_server_listen(rpc_server *srv, const char *addr);
/* Serves until rpc_server_shutdown(); returns when every call is gone. */
void rpc_server_run(rpc_server *srv);
/* Thread-safe: asks the loop to stop (open calls are cancelled). */
void rpc_server_shutdown(rpc_server *srv);
/* Asks the loop for a flush at mono_ns (fl_mono_ns) at the latest, even if
 * no call comes (the earliest of several asks wins). Loop thread only. */
void rpc_server_wake_at(rpc_server *srv, int64_t mono_ns);
/* Thread-safe, for health probes: 1 while the loop turns (it did within
 * 15 s and is not stopping); else 0 with why. */
int rpc_server_probe(const rpc_server *srv, char *why, size_t size);
void rpc_server_free(rpc_server *srv);

/* Server-thread only. Unary: reply with msg (NULL: empty) and status OK. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg);
/* Reply with already packed bytes. */
void rpc_call_reply_packed(rpc_call *call, const uint8_t *data, size_t len);
/* Ends the call with a status and a one-line message (after queued sends).
 * A stream's last message and its status go out in one batch (a message is
 * held until the end of the loop turn for that), so they reach the peer
 * together. */
void rpc_call_finish(rpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Streams: queue one message. Returns false when the call is gone. A call
 * whose queue would pass rpc_limits' bounds (its reader fell behind) is
 * cancelled instead: the peer gets RESOURCE_EXHAUSTED, the queue is freed
 * at once and the on_cancel callback runs before this returns false. */
bool rpc_call_send(rpc_call *call, const ProtobufCMessage *msg);
bool rpc_call_send_packed(rpc_call *call, const uint8_t *data, size_t len);
/* Calls fn once, on the server thread (a later loop turn), when the call's
 * queue has drained to at most low_water bytes and a quarter of
 * rpc_limits.max_send_queue_msgs messages (so a chunk of up to that many
 * messages always fits). A producer that can wait (a listing) queues a
 * chunk, registers, and resumes here, so a slow reader never makes it build
 * more. When the call ends first, fn is still called once, with
 * rpc_call_alive() false (maybe from inside a send): it must then only free
 * what it holds. */
void rpc_call_on_drain(rpc_call *call, size_t low_water, void (*fn)(rpc_call *call, void *arg),
                       void *arg);
/* Called once if the peer cancels, sends a malformed or refused message on
 * a stream (rpc/ then ends the call), or the server stops, before the call
 * is finished; after it the owner must forget the call. */
void rpc_call_on_cancel(rpc_call *call, void (*fn)(rpc_call *call, void *arg), void *arg);
/* Called once when the call is over for good, however it ended (finished
 * by its owner, also with an error somebody else queued for it; cancelled;
 * refused), after the drain and cancel callbacks: an owner whose state
 * outlives its own answers (a watch) lets go of the call here. fn NULL:
 * none. */
void rpc_call_on_end(rpc_call *call, void (*fn)(rpc_call *call, void *arg), void *arg);
/* Keeps the call's memory alive across events (sends on a dead call are
 * dropped); every ref needs an unref. */
void rpc_call_ref(rpc_call *call);
void rpc_call_unref(rpc_call *call);
void rpc_call_set_user(rpc_call *call, void *user);
void *rpc_call_user(const rpc_call *call);
bool rpc_call_alive(const rpc_call *call);
/* "/flame.v1.Frontend/CreateTask" */
const char *rpc_call_method(const rpc_call *call);
rpc_kind rpc_call_kind(const rpc_call *call);
/* The subject common name of the client's verified certificate, or NULL
 * (no certificate, or plaintext). Owned by the call. */
const char *rpc_call_peer_identity(const rpc_call *call);
/* The PEM of the client's verified certificate (gRPC's "x509_pem_cert"),
 * or NULL (no certificate, or plaintext). Owned by the call. */
const char *rpc_call_peer_cert(const rpc_call *call);
/* Whether the call came over TLS. */
bool rpc_call_is_tls(const rpc_call *call);
/* What the authorization hook learned about the caller, kept with the call
 * (apart from rpc_call_user, which is the handler's); release (may be
 * NULL) is called on it when the call is freed. */
void rpc_call_set_auth(rpc_call *call, void *auth, void (*release)(void *auth));
void *rpc_call_auth(const rpc_call *call);

/* validate.c: rpc/'s generic checks, from the descriptor alone: every
 * string (nested, repeated, the chosen member of a oneof) is UTF-8, and
 * every unknown field has a valid number (1 .. 2^29-1). false with a
 * reason ("field Node.name: not valid UTF-8") in why. */
bool rpc_message_valid(const ProtobufCMessage *msg, char *why, size_t why_size);
/* Visits every message of a tree (f NULL: entering m) and every value
 * present in it (v points at the field's storage: char ** for a string,
 * ProtobufCBinaryData * for bytes, ProtobufCMessage ** for a message, the
 * number itself otherwise; each element of a repeated field in turn).
 * Stops at the first false visit and returns false; false too beyond 32
 * levels of nesting. */
typedef bool (*rpc_field_visit)(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                                const void *v, void *arg);
bool rpc_message_walk(const ProtobufCMessage *msg, rpc_field_visit visit, void *arg);
/* Offset of the first byte of s that is not valid UTF-8, (size_t)-1 if
 * none. */
size_t rpc_utf8_invalid_at(const uint8_t *s, size_t n);

/* ---- client ------------------------------------------------------------ */

typedef struct rpc_channel rpc_channel;
typedef struct rpc_stream rpc_stream;

#define RPC_CHANNEL_OPTIONS_VERSION 1
typedef struct rpc_channel_options {
    int version;
    size_t max_message; /* bytes, both ways; 0: RPC_DEFAULT_MAX_MESSAGE */
    rpc_tls tls;
} rpc_channel_options;
#define RPC_CHANNEL_OPTIONS_INIT { RPC_CHANNEL_OPTIONS_VERSION, 0, RPC_TLS_INIT }

/* target: "host:port" or "unix:PATH"; opts may be NULL. Connects lazily:
 * fails only on bad options (FLAME_ERR_CONFIG for TLS files that cannot be
 * read or are not PEM, see rpc_tls_check). Calls on a channel are
 * thread-safe. */
flame_status rpc_channel_new(rpc_channel **out, const char *target,
                             const rpc_channel_options *opts);
void rpc_channel_free(rpc_channel *ch);
/* Connects the channel now rather than at its first call (channels connect
 * lazily), waiting up to timeout_ms; true once it is ready. */
bool rpc_channel_connect(rpc_channel *ch, int timeout_ms);

/* Quiet waits, for threads that wait long for rare messages (a watch, a
 * long poll). Calls and streams this thread starts while quiet wait on a
 * queue that does not poll the process's sockets, so they do not take the
 * poller's role from (and are not woken for the messages of) the threads on
 * the hot path; whichever thread polls serves them, and a thread of the rpc
 * layer polls for them when no other thread has waited for 10 ms. Needs
 * gRPC's epoll1 engine (its default on Linux): with GRPC_POLL_STRATEGY set
 * to another, waits stay polling (logged once). Returns the previous
 * setting (per thread; off by default). */
bool rpc_quiet(bool on);

/* Lets another thread cancel a blocking call (rpc_unary_cancellable).
 * Firing is sticky: later calls with it fail at once with CANCELLED. */
typedef struct rpc_cancel rpc_cancel;
rpc_cancel *rpc_cancel_new(void);
void rpc_cancel_fire(rpc_cancel *c);
void rpc_cancel_free(rpc_cancel *c);

/* A blocking unary call. On success *resp is a new message (free with
 * protobuf_c_message_free_unpacked). timeout_ms <= 0: no deadline. */
flame_status rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                       int timeout_ms);

/* As rpc_unary; cancel (may be NULL) lets another thread abort it. */
flame_status rpc_unary_cancellable(rpc_channel *ch, const char *method,
                                   const ProtobufCMessage *req,
                                   const ProtobufCMessageDescriptor *resp_desc,
                                   ProtobufCMessage **resp, int timeout_ms, rpc_cancel *cancel);

/* A server stream: open, then next() until it yields *msg == NULL (clean
 * end) or an error. cancel() may be called from any thread. */
flame_status rpc_stream_open(rpc_stream **out, rpc_channel *ch, const char *method,
                             const ProtobufCMessage *req, int timeout_ms);
flame_status rpc_stream_next(rpc_stream *st, const ProtobufCMessageDescriptor *desc,
                             ProtobufCMessage **msg);
/* As next(), but once timeout_ms (>= 0) pass without a message it
 * returns FLAME_OK with *msg NULL and *idle true, and leaves the stream
 * as it was: the read stays posted and the next call of either picks it
 * up. *idle is false otherwise (idle may be NULL with timeout_ms < 0). */
flame_status rpc_stream_next_timed(rpc_stream *st, const ProtobufCMessageDescriptor *desc,
                                   ProtobufCMessage **msg, int timeout_ms, bool *idle);
void rpc_stream_cancel(rpc_stream *st);
/* A bidirectional stream: open (no deadline), then send() from one thread
 * while next() reads on another. */
flame_status rpc_bidi_open(rpc_stream **out, rpc_channel *ch, const char *method);
flame_status rpc_bidi_send(rpc_stream *st, const ProtobufCMessage *msg);
/* send() and next_timed() in one: where no read is posted yet, the message
 * and the read go in one batch, so that the flow-control update gRPC owes
 * for the last message read rides in the send's write instead of a write
 * (and a wakeup of the peer) of its own. The sender must also be the only
 * reader here, and no other thread may send on the stream until this call
 * has returned a message or the end (after an idle return, the send may
 * still be in flight: the next send must come from a later call of this
 * function or of next_timed). */
flame_status rpc_bidi_send_next(rpc_stream *st, const ProtobufCMessage *msg,
                                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                                int timeout_ms, bool *idle);
/* Half-closes: the peer sees the end of our messages; next() goes on. */
flame_status rpc_bidi_close_send(rpc_stream *st);
/* A client stream: open (timeout_ms <= 0: no deadline), send() any number
 * of messages, then finish(): half-closes and waits for the one reply
 * (*resp: a new message, free with protobuf_c_message_free_unpacked). A
 * send fails (FLAME_ERR_UNAVAILABLE) once the server has answered early;
 * finish() then returns the server's status. Free the stream with
 * rpc_stream_free either way. */
flame_status rpc_client_stream_open(rpc_stream **out, rpc_channel *ch, const char *method,
                                    int timeout_ms);
flame_status rpc_client_stream_send(rpc_stream *st, const ProtobufCMessage *msg);
flame_status rpc_client_stream_finish(rpc_stream *st, const ProtobufCMessageDescriptor *resp_desc,
                                      ProtobufCMessage **resp);
void rpc_stream_free(rpc_stream *st);

/* The gRPC status code of the last call that failed on this thread
 * (RPC_OK if none has); finer than the flame_status it was mapped to. */
int rpc_last_code(void);

/* Sends raw bytes as a unary request; used by tests to send garbage. */
flame_status rpc_unary_raw(rpc_channel *ch, const char *method, const uint8_t *data,
                           size_t len, uint8_t **resp, size_t *resp_len, int timeout_ms);

#endif
