/* flame-executor-manager: main() + arguments -> libflame's executor.h. */
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
            "Usage: flame-executor-manager [--config FILE] [--endpoint URL] [--work-dir DIR]\n"
            "                              [--node NAME] [--resources cpu=N,mem=SIZE]\n"
            "                              [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
            "\n"
            "Runs the executors of one node for a Flame session manager.\n"
            "  -c, --config FILE       Flame's cluster YAML (cluster.endpoint)\n"
            "  -e, --endpoint URL      the session manager (overrides the config)\n"
            "  -w, --work-dir DIR      executor directories, sockets and logs (default $FLAME_HOME/work)\n"
            "  -n, --node NAME         the node name (default: the host name)\n"
            "  -r, --resources SPEC    what executors may use (default: the machine's CPUs and memory)\n"
            "  -T, --task-timeout SEC  fail a task whose service does not answer in SEC seconds\n"
            "                          and restart the service (default: no limit)\n"
            "      --tls-ca FILE       for an https:// endpoint: the CA that verifies the\n"
            "                          session manager (default: cluster.tls.ca_file, else\n"
            "                          $FLAME_CA_FILE, else the system's roots)\n"
            "      --tls-cert FILE     the node's certificate, presented to the session manager\n"
            "      --tls-key FILE      and its key (default: $FLAME_CERT_FILE, $FLAME_KEY_FILE;\n"
            "                          never cluster.tls.cert_file/key_file, the server's)\n"
            "      --sandbox LEVEL     the sandbox of applications that name none: none,\n"
            "                          process or microvm (default process)\n"
            "      --sandbox-allow LIST  the levels this node runs, comma-separated (default\n"
            "                          all); other applications' binds fail saying so\n"
            "      --sandbox-uids A-B  the uids/gids of process-level executors, one each\n"
            "                          (default 100000-165535)\n"
            "      --microvm-accel A   the microvm level's accelerator: kvm (default) or tcg\n"
            "                          (emulation, slow; only when chosen, never a fallback)\n"
            "      --microvm-image DIR its kernel and initramfs (scripts/microvm-image.sh; default\n"
            "                          $FLAME_MICROVM_IMAGE, else ~/.cache/flame/microvm/current)\n"
            "      --microvm-pool N    VMs kept booted per application (default 0)\n"
            "      --warm-pool N       idle executors with their next session's service\n"
            "                          started ahead, per application (default\n"
            "                          executors.warm_pool, else 2; 0: none)\n"
            "      --metrics [HOST:]PORT  serve /metrics, /healthz and /readyz there (HOST\n"
            "                          default 127.0.0.1; plain HTTP; overrides\n"
            "                          metrics.executor_manager)\n"
            "      --log-format text|json  log lines as text (default) or JSON (log.format)\n"
            "  -h, --help              show this help\n"
            "  -V, --version           show the version\n");
}

int main(int argc, char **argv)
{
    umask(077); /* what the daemon creates (database, work, logs, sockets) is its user's */
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "endpoint", required_argument, NULL, 'e' },
        { "work-dir", required_argument, NULL, 'w' },
        { "node", required_argument, NULL, 'n' },
        { "resources", required_argument, NULL, 'r' },
        { "task-timeout", required_argument, NULL, 'T' },
        { "tls-ca", required_argument, NULL, 1 },
        { "tls-cert", required_argument, NULL, 2 },
        { "tls-key", required_argument, NULL, 3 },
        { "sandbox", required_argument, NULL, 4 },
        { "sandbox-allow", required_argument, NULL, 5 },
        { "sandbox-uids", required_argument, NULL, 6 },
        { "microvm-accel", required_argument, NULL, 7 },
        { "microvm-image", required_argument, NULL, 8 },
        { "microvm-pool", required_argument, NULL, 9 },
        { "warm-pool", required_argument, NULL, 10 },
        { "metrics", required_argument, NULL, 20 },
        { "log-format", required_argument, NULL, 21 },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    flame_executor_options o = FLAME_EXECUTOR_OPTIONS_INIT;
    const char *metrics_flag = NULL, *log_format = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:e:w:n:r:T:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config_file = optarg; break;
        case 'e': o.endpoint = optarg; break;
        case 'w': o.work_dir = optarg; break;
        case 'n': o.node_name = optarg; break;
        case 'r':
            o.has_resources = 1;
            o.resources = (flame_resreq){ 1, 1ULL << 30, 0 };
            if (flame_resreq_parse(&o.resources, optarg) != FLAME_OK) {
                fprintf(stderr, "flame-executor-manager: %s\n", flame_error_last());
                return 2;
            }
            break;
        case 'T': {
            char *end;
            double sec = strtod(optarg, &end);
            if (*end || sec <= 0) {
                fprintf(stderr, "flame-executor-manager: --task-timeout takes seconds > 0\n");
                return 2;
            }
            o.task_timeout_ms = (int)(sec * 1000);
            break;
        }
        case 1: o.tls_ca_file = optarg; break;
        case 2: o.tls_cert_file = optarg; break;
        case 3: o.tls_key_file = optarg; break;
        case 4: o.sandbox_default = optarg; break;
        case 5: o.sandbox_allow = optarg; break;
        case 6: {
            unsigned a, b;
            char extra;
            if (sscanf(optarg, "%u-%u%c", &a, &b, &extra) != 2 || b < a) {
                fprintf(stderr, "flame-executor-manager: --sandbox-uids takes FIRST-LAST\n");
                return 2;
            }
            o.sandbox_uid_first = a;
            o.sandbox_uid_count = b - a + 1;
            break;
        }
        case 7: o.microvm_accel = optarg; break;
        case 8: o.microvm_image = optarg; break;
        case 9: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 0 || n > 64) {
                fprintf(stderr, "flame-executor-manager: --microvm-pool takes 0..64\n");
                return 2;
            }
            o.microvm_pool = (int)n;
            break;
        }
        case 10: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 0 || n > 256) {
                fprintf(stderr, "flame-executor-manager: --warm-pool takes 0..256\n");
                return 2;
            }
            o.warm_pool = n ? (int)n : -1;
            break;
        }
        case 20: metrics_flag = optarg; break;
        case 21: log_format = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("flame-executor-manager %s\n", flame_version()); return 0;
        default: usage(stderr); return 2;
        }
    }
    daemon_ctx d;
    int rc = daemon_prepare(&d, "flame-executor-manager", o.config_file, "executor_manager",
                            log_format, metrics_flag);
    if (rc)
        return rc;
    flame_executor_manager *em;
    flame_status st = flame_executor_manager_start(&em, &o);
    if (st != FLAME_OK)
        return daemon_fail(&d, st);
    printf("flame-executor-manager running node %s\n", flame_executor_manager_node(em));
    if ((rc = daemon_metrics(&d, flame_executor_manager_healthy, flame_executor_manager_ready,
                             em))) {
        flame_executor_manager_stop(em);
        return rc;
    }
    daemon_wait(&d);
    flame_executor_manager_stop(em);
    return 0;
}
