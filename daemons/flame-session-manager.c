/* flame-session-manager: main() + arguments -> libflame's server.h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <flame/flame.h>

#include "daemon.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: flame-session-manager [--config FILE] [--endpoint URL] [--storage URL]\n"
            "                             [--tls-cert FILE --tls-key FILE [--tls-ca FILE [--mtls]]]\n"
            "                             [--insecure]\n"
            "\n"
            "Serves flame.v1 (Frontend and Backend) for a Flame cluster.\n"
            "  -c, --config FILE     Flame's cluster YAML (cluster: {name, endpoint, storage, tls, ...})\n"
            "  -e, --endpoint URL    listen on URL (overrides cluster.endpoint), e.g. http://127.0.0.1:8080\n"
            "  -s, --storage URL     sqlite://PATH or none (overrides cluster.storage)\n"
            "      --tls-cert FILE   serve TLS with this certificate (cluster.tls.cert_file)\n"
            "      --tls-key FILE    and its private key (cluster.tls.key_file)\n"
            "      --tls-ca FILE     verify client certificates with this CA (cluster.tls.ca_file)\n"
            "      --mtls            require client certificates (cluster.tls.mutual: true)\n"
            "      --tls-crl FILE    revoked certificates (cluster.tls.crl_file)\n"
            "      --anonymous-role none|user\n"
            "                        role of TLS clients without a certificate\n"
            "                        (cluster.auth.anonymous_role)\n"
            "      --insecure        allow a non-loopback endpoint without TLS: every client\n"
            "                        that reaches it is admin (logged at WARN on every start)\n"
            "      --metrics [HOST:]PORT\n"
            "                        serve /metrics, /healthz and /readyz there (HOST default\n"
            "                        127.0.0.1; plain HTTP; overrides metrics.session_manager)\n"
            "      --log-format text|json\n"
            "                        log lines as text (default) or JSON objects (log.format)\n"
            "  -h, --help            show this help\n"
            "  -V, --version         show the version\n");
}

int main(int argc, char **argv)
{
    umask(077); /* what the daemon creates (database, work, logs, sockets) is its user's */
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "storage", required_argument, NULL, 's' },
        { "tls-cert", required_argument, NULL, 1 },
        { "tls-key", required_argument, NULL, 2 },
        { "tls-ca", required_argument, NULL, 3 },
        { "mtls", no_argument, NULL, 4 },
        { "tls-crl", required_argument, NULL, 5 },
        { "anonymous-role", required_argument, NULL, 6 },
        { "insecure", no_argument, NULL, 'I' },
        { "metrics", required_argument, NULL, 20 },
        { "log-format", required_argument, NULL, 21 },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    const char *metrics_flag = NULL, *log_format = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:e:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config_file = optarg; break;
        case 'e': o.endpoint = optarg; break;
        case 's': o.storage = optarg; break;
        case 1: o.tls_cert_file = optarg; break;
        case 2: o.tls_key_file = optarg; break;
        case 3: o.tls_ca_file = optarg; break;
        case 4: o.tls_mutual = 1; break;
        case 5: o.tls_crl_file = optarg; break;
        case 6: o.auth_anonymous_role = optarg; break;
        case 'I': o.insecure = 1; break;
        case 20: metrics_flag = optarg; break;
        case 21: log_format = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("flame-session-manager %s\n", flame_version()); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flame-session-manager: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    daemon_ctx d;
    int rc = daemon_prepare(&d, "flame-session-manager", o.config_file, "session_manager",
                            log_format, metrics_flag);
    if (rc)
        return rc;
    flame_session_manager *sm;
    flame_status st = flame_session_manager_start(&sm, &o);
    if (st != FLAME_OK)
        return daemon_fail(&d, st);
    printf("flame-session-manager listening on port %d\n", flame_session_manager_port(sm));
    if ((rc = daemon_metrics(&d, flame_session_manager_healthy, flame_session_manager_ready,
                             sm))) {
        flame_session_manager_stop(sm);
        return rc;
    }
    daemon_wait(&d);
    flame_session_manager_stop(sm);
    return 0;
}
