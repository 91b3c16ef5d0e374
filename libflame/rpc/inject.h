/* In-process injection into a server's dispatch, for the fuzz targets and
 * tests (tests/fuzz/): a fake call takes the path a network call takes
 * (method lookup, authorization hook, unpack, handler, replies) without a
 * socket. Internal to the tree; never exported.
 *
 * Threads: the caller is the server's thread, so the server must not be
 * running rpc_server_run() (never listen on it). End every injected call
 * before rpc_server_free(). */
#ifndef FL_RPC_INJECT_H
#define FL_RPC_INJECT_H

#include "rpc.h"

/* What an injected call sends: a message (data, len; data NULL: none) and,
 * when final, the status it ends with (details NULL or "" for OK). */
typedef void (*rpc_inject_sink)(void *arg, rpc_call *call, const uint8_t *data, size_t len,
                                bool final, int code, const char *details);

/* fn NULL: what injected calls send is dropped (the default). */
void rpc_inject_set_sink(rpc_server *srv, rpc_inject_sink fn, void *arg);
/* A new call on path, as if a client had opened it: an unknown path is
 * finished UNIMPLEMENTED, a refused one with the hook's code. The call is
 * held until rpc_inject_end(). */
rpc_call *rpc_inject_open(rpc_server *srv, const char *path);
/* The client sends a request message (data NULL: half-closes). Ignored
 * once the call has ended, or a unary call has had its one message. */
void rpc_inject_message(rpc_call *call, const uint8_t *data, size_t len);
/* The client goes away (a call still open is cancelled); drops the hold. */
void rpc_inject_end(rpc_call *call);
/* The server loop's hooks: the flush after a batch of calls, the tick. */
void rpc_inject_flush(rpc_server *srv);
void rpc_inject_tick(rpc_server *srv);

#endif
