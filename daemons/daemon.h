/* What the daemon mains (flame-session-manager, flame-executor-manager,
 * flame-object-cache) share after their flags: the operations settings (log
 * format, metrics address), the signals, the metrics server, the wait for a
 * stop signal and the exit codes (2: a configuration error, 1: another
 * failure). Compiled into each daemon: it uses only libflame's public API
 * (libflame.so exports nothing else). Threads: main's only. */
#ifndef FLAME_DAEMON_H
#define FLAME_DAEMON_H

#include <signal.h>

#include <flame/flame.h>
#include <flame/metrics.h>

typedef struct daemon_ctx {
    const char *name;      /* "flame-session-manager": messages, the metrics' daemon */
    char *metrics_addr;    /* from --metrics or metrics.<key>; NULL: none */
    flame_metrics_server *metrics;
    sigset_t signals;      /* SIGINT, SIGTERM, SIGHUP: blocked, taken by daemon_wait */
} daemon_ctx;

/* Reads the config file's log format and metrics.<key> (flags win), then
 * blocks the stop signals and ignores SIGPIPE and SIGXFSZ (a peer gone, a
 * file size limit: errors the daemon reports, not its death). 0, or the
 * exit code after saying why. */
int daemon_prepare(daemon_ctx *d, const char *name, const char *config_file, const char *key,
                   const char *log_format, const char *metrics_flag);

/* "<name>: <the last error>" on stderr; the exit code for st. Frees what
 * daemon_prepare kept. */
int daemon_fail(daemon_ctx *d, flame_status st);

/* The daemon started: serves /metrics, /healthz and /readyz when asked
 * (healthy and ready probe ctx; ready may be NULL). 0, or the exit code
 * after saying why (then the caller stops the daemon). */
int daemon_metrics(daemon_ctx *d, flame_probe_fn healthy, flame_probe_fn ready, void *ctx);

/* Flushes stdout, waits for a stop signal, says so and stops the metrics
 * server; then the caller stops the daemon. */
void daemon_wait(daemon_ctx *d);

#endif
