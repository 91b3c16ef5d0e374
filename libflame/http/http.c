/* The metrics server: /metrics, /healthz and /readyz over libmicrohttpd
 * (include/flame/metrics.h), and the process's own figures (memory, open
 * files, uptime, build).
 *
 * Threads and locks: libmicrohttpd runs one internal polling thread per
 * server; every request is answered on it. The probes are called there
 * (they read their daemon's atomics or take its locks briefly); the
 * registry (util/metrics.c) locks itself. flame_metrics_stop() joins it. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "flame/metrics.h"
#include "flame/server.h"
#include "flame/version.h"
#include "util/metrics.h"
#include "util/util.h"

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_MAX_CONNECTIONS 32
/* A request's headers must fit here (else 431); a scrape needs < 1 KiB. */
#define CONNECTION_MEMORY (32u << 10)
#define CONNECTION_TIMEOUT_S 10

struct flame_metrics_server {
    struct MHD_Daemon *d;
    int port;
    char *daemon;
    flame_probe_fn healthy, ready;
    void *ctx;
};

/* ---- the process's figures ------------------------------------------------ */

static int64_t start_ms;
static char build_daemon[64];

/* libflame is loaded with the process: its start, near enough */
__attribute__((constructor)) static void note_start(void)
{
    start_ms = fl_now_ms();
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static void collect_process(void *ctx)
{
    (void)ctx;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    fl_gauge_set(fl_gauge("flame_process_resident_memory_bytes", "Resident memory of the process.",
                          NULL),
                 (double)rss * (double)sysconf(_SC_PAGESIZE));
    fl_gauge_set(fl_gauge("flame_process_open_fds", "Open file descriptors of the process.", NULL),
                 count_fds());
    fl_gauge_set(fl_gauge("flame_process_uptime_seconds", "Seconds since the process started.",
                          NULL),
                 (double)(fl_now_ms() - start_ms) / 1000.0);
}

static void process_init(void)
{
    fl_gauge_set(fl_gauge("flame_process_start_time_seconds",
                          "Unix time the process started.", NULL),
                 (double)start_ms / 1000.0);
    fl_gauge_set(fl_gauge("flame_build_info", "Always 1; the labels say which build runs.",
                          "version", flame_version(), "daemon", build_daemon, NULL),
                 1);
    fl_metrics_on_collect(collect_process, NULL);
}

char *flame_metrics_text(void)
{
    fl_buf b = { 0 };
    fl_metrics_render(&b);
    return fl_buf_detach(&b);
}

/* ---- requests --------------------------------------------------------------- */

static mhd_result answer(struct MHD_Connection *conn, unsigned code, const char *type, char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    mhd_result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    fl_counter_add(fl_counter("flame_http_requests_total", "HTTP requests to the metrics "
                              "server, by answer.", "code", code == 200   ? "200"
                                                          : code == 404 ? "404"
                                                          : code == 405 ? "405"
                                                                        : "503",
                              NULL),
                   1);
    return ret;
}

static mhd_result probe(struct MHD_Connection *conn, flame_probe_fn fn, void *ctx,
                        const char *ok)
{
    char why[512] = "";
    if (!fn || fn(ctx, why, sizeof why))
        return answer(conn, MHD_HTTP_OK, "text/plain; charset=utf-8", fl_sprintf("%s\n", ok));
    return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                  fl_sprintf("%s\n", *why ? why : "not ready"));
}

static int healthy_ok(void *arg, char *why, size_t size)
{
    flame_metrics_server *s = arg;
    return !s->healthy || s->healthy(s->ctx, why, size);
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    flame_metrics_server *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        /* answered before any body is read: libmicrohttpd closes the
         * connection after it rather than reading an upload nobody wants */
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                      fl_sprintf("only GET and HEAD\n"));
    if (strcmp(url, "/metrics") == 0)
        return answer(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                      flame_metrics_text());
    if (strcmp(url, "/healthz") == 0)
        return probe(conn, healthy_ok, s, "ok");
    if (strcmp(url, "/readyz") == 0) {
        char why[512] = "";
        if (!healthy_ok(s, why, sizeof why))
            return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                          fl_sprintf("%s\n", why));
        return probe(conn, s->ready, s->ctx, "ready");
    }
    return answer(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
                  fl_sprintf("not found; try /metrics, /healthz or /readyz\n"));
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    fl_log(FL_LOG_DEBUG, "http", "%s", msg);
}

/* ---- life cycle --------------------------------------------------------------- */

/* "[HOST:]PORT", "[V6]:PORT" or "http://HOST:PORT" into a socket address. */
static flame_status parse_address(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                                  bool *loopback)
{
    const char *a = text;
    if (strncmp(a, "http://", 7) == 0)
        a += 7;
    char host[256];
    const char *port;
    const char *colon = strrchr(a, ':');
    if (!colon) {
        snprintf(host, sizeof host, "%s", DEFAULT_HOST);
        port = a;
    } else if ((size_t)(colon - a) >= sizeof host) {
        return fl_error(FLAME_ERR_CONFIG, "metrics address \"%s\": host too long", text);
    } else {
        memcpy(host, a, (size_t)(colon - a));
        host[colon - a] = 0;
        port = colon + 1;
        if (host[0] == '[') {
            size_t n = strlen(host);
            if (n < 2 || host[n - 1] != ']')
                return fl_error(FLAME_ERR_CONFIG, "metrics address \"%s\": bad [IPv6] host", text);
            memmove(host, host + 1, n - 2);
            host[n - 2] = 0;
        }
        if (!host[0])
            snprintf(host, sizeof host, "%s", DEFAULT_HOST);
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535)
        return fl_error(FLAME_ERR_CONFIG, "metrics address \"%s\": the port must be 0..65535",
                        text);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "%s", DEFAULT_HOST);
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    char ps[8];
    snprintf(ps, sizeof ps, "%ld", p);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return fl_error(FLAME_ERR_CONFIG, "metrics address \"%s\": the host must be an IP "
                        "address or localhost", text);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET)
        *loopback = (ntohl(((struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    else
        *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ss)->sin6_addr);
    return FLAME_OK;
}

void flame_metrics_options_init(flame_metrics_options *opts)
{
    *opts = (flame_metrics_options)FLAME_METRICS_OPTIONS_INIT;
}

flame_status flame_metrics_start(flame_metrics_server **out, const flame_metrics_options *opts)
{
    *out = NULL;
    if (!opts || opts->version < 1 || !opts->address)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "metrics: no address given");
    struct sockaddr_storage ss;
    socklen_t sl;
    bool loopback = false;
    flame_status st = parse_address(opts->address, &ss, &sl, &loopback);
    if (st)
        return st;
    (void)sl;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (opts->daemon && !build_daemon[0]) /* the first server's name labels the build */
        snprintf(build_daemon, sizeof build_daemon, "%s", opts->daemon);
    pthread_once(&once, process_init);
    flame_metrics_server *s = fl_calloc(1, sizeof *s);
    s->daemon = fl_strdup(opts->daemon ? opts->daemon : "flame");
    s->healthy = opts->healthy;
    s->ready = opts->ready;
    s->ctx = opts->probe_ctx;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned max = opts->max_connections > 0 ? (unsigned)opts->max_connections
                                              : DEFAULT_MAX_CONNECTIONS;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, max,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_END);
    if (!s->d) {
        free(s->daemon);
        free(s);
        return fl_error(FLAME_ERR_UNAVAILABLE, "metrics: cannot listen on %s (in use, or not an "
                        "address of this machine)", opts->address);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    if (loopback)
        fl_log(FL_LOG_INFO, "http", "%s: metrics on loopback port %d (%s): /metrics /healthz "
               "/readyz", s->daemon, s->port, opts->address);
    else
        fl_log(FL_LOG_WARN, "http", "%s: metrics on %s (port %d), NOT loopback: plain HTTP "
               "without authentication, readable by anyone who reaches the port", s->daemon,
               opts->address, s->port);
    *out = s;
    return FLAME_OK;
}

int flame_metrics_port(const flame_metrics_server *s)
{
    return s ? s->port : -1;
}

void flame_metrics_stop(flame_metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s->daemon);
    free(s);
}

/* ---- a daemon's flags and config ------------------------------------------------ */

flame_status flame_operations_config(const char *config_file, const char *key,
                                     const char *log_format, const char *metrics_flag,
                                     char **address)
{
    *address = NULL;
    flame_cluster_config *cfg = NULL;
    flame_status st = config_file ? flame_cluster_config_load(&cfg, config_file) : FLAME_OK;
    if (st)
        return st;
    const char *fmt = log_format ? log_format : cfg && cfg->log_format ? cfg->log_format : "text";
    if ((st = flame_log_set_format(fmt))) {
        flame_cluster_config_free(cfg);
        return fl_error(FLAME_ERR_CONFIG, "--log-format %s: expected text or json", fmt);
    }
    const char *a = metrics_flag;
    if (!a && cfg)
        a = strcmp(key, "session_manager") == 0    ? cfg->metrics_session_manager
            : strcmp(key, "executor_manager") == 0 ? cfg->metrics_executor_manager
            : strcmp(key, "object_cache") == 0     ? cfg->metrics_object_cache
                                                   : NULL;
    if (a && *a) { /* a bad address stops the daemon before it starts */
        struct sockaddr_storage ss;
        socklen_t sl;
        bool loopback;
        if ((st = parse_address(a, &ss, &sl, &loopback))) {
            flame_cluster_config_free(cfg);
            return st;
        }
        *address = fl_strdup(a);
    }
    flame_cluster_config_free(cfg);
    return FLAME_OK;
}
