/* Flame in C — what operators see: the metrics and health endpoints of a
 * daemon, its probes, and the log format.
 *
 * A metrics server is a small HTTP/1.1 server (libmicrohttpd) on threads of
 * its own serving, to GET (and HEAD) only:
 *   /metrics  every metric of the process, Prometheus text format 0.0.4
 *   /healthz  200 "ok" while the process is alive and its loops tick, else 503
 *   /readyz   200 "ready" when the daemon can do its work, else 503 and why
 * Connections, request header sizes and time per connection are bounded;
 * other methods get 405. It speaks plain HTTP: bind it to loopback (the
 * default host) or to an address only the scrapers reach. */
#ifndef FLAME_METRICS_H
#define FLAME_METRICS_H

#include <stddef.h>

#include "error.h"
#include "executor.h"
#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A probe: 1 when healthy/ready; 0 with why (NUL-terminated, at most size
 * bytes) when not. Called on the server's threads. */
typedef int (*flame_probe_fn)(void *ctx, char *why, size_t size);

#define FLAME_METRICS_OPTIONS_VERSION 1

typedef struct flame_metrics_options {
    int version;            /* FLAME_METRICS_OPTIONS_VERSION */
    /* "[HOST:]PORT" or "http://HOST:PORT"; HOST defaults to 127.0.0.1 (an
     * IPv4 or IPv6 literal, or "localhost"); PORT 0 picks a free one. */
    const char *address;
    const char *daemon;     /* its name, for flame_build_info and the logs */
    flame_probe_fn healthy; /* NULL: always healthy */
    flame_probe_fn ready;   /* NULL: ready when healthy */
    void *probe_ctx;
    int max_connections;    /* at once; default 32 */
} flame_metrics_options;

#define FLAME_METRICS_OPTIONS_INIT { FLAME_METRICS_OPTIONS_VERSION, NULL, NULL, NULL, NULL, \
    NULL, 0 }

/* Sets *opts to FLAME_METRICS_OPTIONS_INIT of this library (for callers
 * that cannot use the macro, e.g. bindings). */
void flame_metrics_options_init(flame_metrics_options *opts);

typedef struct flame_metrics_server flame_metrics_server;

/* Binds the address and serves. FLAME_ERR_CONFIG for a bad address,
 * FLAME_ERR_UNAVAILABLE when it cannot be bound (the message says why).
 * A non-loopback host is logged at WARN: the endpoints are plain and
 * unauthenticated. */
flame_status flame_metrics_start(flame_metrics_server **out, const flame_metrics_options *opts);
/* The TCP port bound (useful with port 0). */
int flame_metrics_port(const flame_metrics_server *s);
/* Stops serving (bounded: open connections are closed) and frees s. NULL
 * is a no-op. */
void flame_metrics_stop(flame_metrics_server *s);

/* The text exposition of every metric of this process (malloc'ed; free()). */
char *flame_metrics_text(void);

/* Probes of the daemons (flame_probe_fn, ctx: the daemon). */
int flame_session_manager_healthy(void *sm, char *why, size_t size);
int flame_session_manager_ready(void *sm, char *why, size_t size);
int flame_executor_manager_healthy(void *em, char *why, size_t size);
int flame_executor_manager_ready(void *em, char *why, size_t size);
/* The object cache (flame/cache.h's server): healthy and ready while its
 * loop serves. */
int flame_object_cache_healthy(void *srv, char *why, size_t size);

/* Log lines on stderr: "text" (the default: "<time> <LEVEL> <module>:
 * message") or "json" (one object per line: time, level, module, msg).
 * FLAME_ERR_INVALID_ARGUMENT for another name. */
flame_status flame_log_set_format(const char *format);

/* For a daemon's main: applies the log format (log_format, else the config
 * file's log.format, else text) and sets *address (malloc'ed; NULL: serve
 * no metrics) to metrics_flag, else the config file's metrics.<key> (key:
 * "session_manager", "executor_manager" or "object_cache"). config_file
 * NULL: flags only. FLAME_ERR_CONFIG naming the key on bad input (a bad
 * address or format too); FLAME_ERR_IO when the file cannot be read. */
flame_status flame_operations_config(const char *config_file, const char *key,
                                     const char *log_format, const char *metrics_flag,
                                     char **address);

#ifdef __cplusplus
}
#endif

#endif
