/* The rpc layer: the only code in the tree that touches grpc_* directly.
 *
 * Server: one completion queue polled by the thread that calls
 * rpc_server_run(); every handler and hook runs on that thread, so the
 * owner's state needs no locks. Calls are dispatched by method path from a
 * table; unknown paths get UNIMPLEMENTED. A handler either answers at once
 * or parks the call and answers later (rpc_call_on_cancel tells it when the
 * peer went away first).
 *
 * Client: blocking unary calls and server streams, each on its own pluck
 * queue, so a channel is safe to use from many threads at once.
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
};

#define RPC_DEFAULT_MAX_MESSAGE (64u << 20)

/* Maps between gRPC codes and flame_status. */
flame_status rpc_code_to_status(int code);
int rpc_status_to_code(flame_status status);

/* ---- server ------------------------------------------------------------ */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef enum rpc_kind {
    RPC_KIND_UNARY,         /* one request, one response */
    RPC_KIND_SERVER_STREAM, /* one request, a stream of responses */
    RPC_KIND_BIDI           /* streams both ways */
} rpc_kind;

/* Called with each request message (for BIDI: every message, then
 * data == NULL when the client half-closes). */
typedef void (*rpc_handler)(rpc_call *call, const uint8_t *data, size_t len, void *ctx);

typedef struct rpc_method {
    const char *path;       /* "/flame.v1.Frontend/CreateTask" */
    rpc_kind kind;
    rpc_handler handler;
} rpc_method;

typedef struct rpc_server_hooks {
    void (*flush)(void *ctx); /* before the loop would block: commit + reply */
    void (*tick)(void *ctx);  /* every tick_ms */
    int tick_ms;
    void *ctx;
} rpc_server_hooks;

rpc_server *rpc_server_new(const rpc_method *methods, size_t n_methods, void *ctx,
                           size_t max_message, const rpc_server_hooks *hooks);
/* Binds addr ("host:port"; port 0 picks one) and starts the server.
 * Returns the bound port, or -1 with flame_error_last() set. */
int rpc_server_listen(rpc_server *srv, const char *addr);
/* Serves until rpc_server_shutdown(); returns when every call is gone. */
void rpc_server_run(rpc_server *srv);
/* Thread-safe: asks the loop to stop (open calls are cancelled). */
void rpc_server_shutdown(rpc_server *srv);
void rpc_server_free(rpc_server *srv);

/* Server-thread only. Unary: reply with msg (NULL: empty) and status OK. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg);
/* Reply with already packed bytes. */
void rpc_call_reply_packed(rpc_call *call, const uint8_t *data, size_t len);
/* In a handler (call, data, len in scope): unpacks the request into var,
 * or answers INVALID_ARGUMENT and returns. */
#define RPC_UNPACK(type, fn, var)                                                              \
    type *var = fn##__unpack(NULL, len, data);                                                 \
    if (!var) {                                                                                \
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "%s: malformed request message",          \
                        rpc_call_method(call));                                               \
        return;                                                                                \
    }

/* Ends the call with a status and a one-line message (after queued sends). */
void rpc_call_finish(rpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Streams: queue one message. Returns false when the call is gone. */
bool rpc_call_send(rpc_call *call, const ProtobufCMessage *msg);
bool rpc_call_send_packed(rpc_call *call, const uint8_t *data, size_t len);
/* Called once if the peer cancels (or the server stops) before the call is
 * finished; after it the owner must forget the call. */
void rpc_call_on_cancel(rpc_call *call, void (*fn)(rpc_call *call, void *arg), void *arg);
/* Keeps the call's memory alive across events (sends on a dead call are
 * dropped); every ref needs an unref. */
void rpc_call_ref(rpc_call *call);
void rpc_call_unref(rpc_call *call);
void rpc_call_set_user(rpc_call *call, void *user);
void *rpc_call_user(const rpc_call *call);
bool rpc_call_alive(const rpc_call *call);
const char *rpc_call_method(const rpc_call *call);

/* ---- client ------------------------------------------------------------ */

typedef struct rpc_channel rpc_channel;
typedef struct rpc_stream rpc_stream;

/* target: "host:port". */
rpc_channel *rpc_channel_new(const char *target, size_t max_message);
void rpc_channel_free(rpc_channel *ch);

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
void rpc_stream_cancel(rpc_stream *st);
/* A bidirectional stream: open (no deadline), then send() from one thread
 * while next() reads on another. */
flame_status rpc_bidi_open(rpc_stream **out, rpc_channel *ch, const char *method);
flame_status rpc_bidi_send(rpc_stream *st, const ProtobufCMessage *msg);
/* Half-closes: the peer sees the end of our messages; next() goes on. */
flame_status rpc_bidi_close_send(rpc_stream *st);
void rpc_stream_free(rpc_stream *st);

/* Sends raw bytes as a unary request; used by tests to send garbage. */
flame_status rpc_unary_raw(rpc_channel *ch, const char *method, const uint8_t *data,
                           size_t len, uint8_t **resp, size_t *resp_len, int timeout_ms);

#endif
