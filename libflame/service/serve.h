/* serve.h: the flame.v1 Instance server of a C service (serve.c): gRPC's
 * unary calls over HTTP/2 (prior knowledge, no TLS) on a Unix socket, in
 * one poll() loop on the caller's thread, without gRPC's runtime. Any gRPC
 * client calls it (the host shim's h2.c, grpcio, Rust's tonic).
 * Threads: fl_serve_run's caller only; the service's callbacks run on it,
 * one at a time. */
#ifndef FL_SERVICE_SERVE_H
#define FL_SERVICE_SERVE_H

#include <stddef.h>

#include "flame/service.h"

typedef struct fl_serve fl_serve;

/* Connections at once. A newcomer to a full house takes the place of the
 * one idle the longest (no call open, nothing to send); with none idle it
 * waits in the backlog. A connection that has not said its preface and
 * SETTINGS within 10 s is closed. Request bytes in flight: max_message a
 * connection, twice that for all. */
#define FL_SERVE_MAX_CONNS 8

/* Listens on the Unix socket at path (a file already there is replaced),
 * for svc (borrowed: it must outlive the server). Requests and replies
 * over max_message bytes are refused (RESOURCE_EXHAUSTED). NULL with
 * flame_error_last() set when it cannot listen. */
fl_serve *fl_serve_new(const char *path, const flame_service *svc, size_t max_message);
/* Serves until stop_fd is readable (a signalfd, a pipe), then reads what
 * it holds (so a signal is taken), sends every connection a GOAWAY and
 * closes them. Blocks. */
flame_status fl_serve_run(fl_serve *s, int stop_fd);
/* Closes the listener and unlinks its socket, if the file at path is still
 * the one it bound (a successor may have bound the path since). NULL:
 * nothing. */
void fl_serve_free(fl_serve *s);

#endif
