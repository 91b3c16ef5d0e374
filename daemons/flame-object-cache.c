/* flame-object-cache: main() + arguments -> libflame's cache.h server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <flame/cache.h>
#include <flame/metrics.h>
#include <flame/version.h>

#include "daemon.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: flame-object-cache [--config FILE] [--endpoint URL] [--storage URL]\n"
            "                          [--tls-cert FILE --tls-key FILE [--tls-ca FILE [--mtls]]]\n"
            "\n"
            "Serves Flame's object cache for a Flame cluster: Arrow Flight (Flame 0.6,\n"
            "flamepy) and flame.v1.ObjectCacheService (Flame 0.7, flame-rs) on one port.\n"
            "  -c, --config FILE     Flame's cluster YAML (its cache: section)\n"
            "  -e, --endpoint URL    listen on URL (overrides cache.endpoint), e.g.\n"
            "                        grpc://127.0.0.1:9090; grpcs:// serves TLS\n"
            "  -s, --storage URL     fs://DIR, file://DIR, DIR or none (overrides cache.storage\n"
            "                        and FLAME_CACHE_STORAGE)\n"
            "      --max-memory N    bytes kept in memory, e.g. 1G (cache.eviction.max_memory)\n"
            "      --max-objects N   objects kept in memory (cache.eviction.max_objects)\n"
            "      --max-object-size N\n"
            "                        bytes of one object (default 1G)\n"
            "      --advertise HOST  the host put in object references\n"
            "      --tls-cert FILE   certificate for grpcs:// (cache.tls.cert_file)\n"
            "      --tls-key FILE    and its private key (cache.tls.key_file)\n"
            "      --tls-ca FILE     CA of client certificates (cache.tls.ca_file)\n"
            "      --mtls            require client certificates signed by it\n"
            "      --metrics [HOST:]PORT\n"
            "                        serve /metrics, /healthz and /readyz there (HOST default\n"
            "                        127.0.0.1; plain HTTP; overrides metrics.object_cache)\n"
            "      --log-format text|json\n"
            "                        log lines as text (default) or JSON objects (log.format)\n"
            "  -h, --help            show this help\n"
            "  -V, --version         show the version\n");
}

static int size_arg(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = *end == 'k' || *end == 'K' ? 10 : *end == 'm' || *end == 'M' ? 20
              : *end == 'g' || *end == 'G' ? 30 : 0;
    if (shift)
        end++;
    if (end == s || *end || *s == '-') {
        fprintf(stderr, "flame-object-cache: bad size \"%s\" (e.g. 512M, 1G)\n", s);
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

int main(int argc, char **argv)
{
    umask(077);
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "storage", required_argument, NULL, 's' },
        { "tls-cert", required_argument, NULL, 1 },
        { "tls-key", required_argument, NULL, 2 },
        { "tls-ca", required_argument, NULL, 3 },
        { "mtls", no_argument, NULL, 4 },
        { "max-memory", required_argument, NULL, 5 },
        { "max-objects", required_argument, NULL, 6 },
        { "max-object-size", required_argument, NULL, 7 },
        { "advertise", required_argument, NULL, 8 },
        { "metrics", required_argument, NULL, 20 },
        { "log-format", required_argument, NULL, 21 },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    flame_cache_server_options o = FLAME_CACHE_SERVER_OPTIONS_INIT;
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
        case 5: if (size_arg(optarg, &o.max_memory)) return 2; break;
        case 6: if (size_arg(optarg, &o.max_objects)) return 2; break;
        case 7: if (size_arg(optarg, &o.max_object_size)) return 2; break;
        case 8: o.advertise_host = optarg; break;
        case 20: metrics_flag = optarg; break;
        case 21: log_format = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("flame-object-cache %s\n", flame_version()); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flame-object-cache: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    daemon_ctx d;
    int rc = daemon_prepare(&d, "flame-object-cache", o.config_file, "object_cache",
                            log_format, metrics_flag);
    if (rc)
        return rc;
    flame_cache_server *srv;
    flame_status st = flame_cache_server_start(&srv, &o);
    if (st != FLAME_OK)
        return daemon_fail(&d, st);
    printf("flame-object-cache listening on port %d (%s)\n", flame_cache_server_port(srv),
           flame_cache_server_uri(srv));
    if ((rc = daemon_metrics(&d, flame_object_cache_healthy, NULL, srv))) {
        flame_cache_server_stop(srv);
        return rc;
    }
    daemon_wait(&d);
    flame_cache_server_stop(srv);
    return 0;
}
