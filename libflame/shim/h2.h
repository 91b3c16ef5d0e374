/* h2.h: unary gRPC calls to a service on a Unix socket, made on the
 * caller's thread: a small HTTP/2 client (prior knowledge, no TLS) that
 * writes a call's frames and reads its answer itself. The host shim's calls
 * go through it rather than through gRPC's runtime, whose calls hop between
 * the executor manager's threads (its poller, the caller) on every call.
 * Any gRPC server answers it (ours, grpcio's, Rust's h2): headers are
 * decoded in full (hpack.h), flow control, SETTINGS, PING and GOAWAY are
 * honoured.
 * Threads: a connection is used by one thread at a time. */
#ifndef FLAME_SHIM_H2_H
#define FLAME_SHIM_H2_H

#include <stddef.h>
#include <stdint.h>

#include "flame/flame.h"

typedef struct fl_h2 fl_h2;

/* A connection to the Unix socket at path (made by the first call or
 * fl_h2_connect); messages larger than max_message bytes are refused both
 * ways. */
fl_h2 *fl_h2_new(const char *path, size_t max_message);
/* Connects now, waiting at most timeout_ms (<= 0: no limit). */
flame_status fl_h2_connect(fl_h2 *c, int timeout_ms);
/* Calls method (a "/package.Service/Method" path) with the serialized
 * request; *resp (malloc'ed, never NULL on success) gets the reply's bytes.
 * timeout_ms <= 0: no deadline. Errors are the gRPC status mapped to a
 * flame_status (rpc_code_to_status), FLAME_ERR_TIMEOUT at the deadline and
 * FLAME_ERR_UNAVAILABLE when the connection fails; the message says why. */
flame_status fl_h2_unary(fl_h2 *c, const char *method, const uint8_t *req, size_t len,
                         uint8_t **resp, size_t *resp_len, int timeout_ms);
void fl_h2_free(fl_h2 *c);

#endif
