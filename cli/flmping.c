/* flmping: run N tasks of the built-in flmping application and report
 * (Flame's flmping), written only against client.h. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flame/flame.h>

#include "table.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: flmping [options]\n"
            "\n"
            "Runs tasks of the built-in flmping application and shows their results.\n"
            "  -t, --task-num N        number of tasks (default 10)\n"
            "  -c, --common-data TEXT  the session's common data\n"
            "  -d, --duration MS       each task sleeps MS milliseconds\n"
            "  -m, --memory SIZE       each task touches SIZE bytes (k/m/g suffixes)\n"
            "  -p, --perf              print benchmark figures instead of the table\n"
            "  -P, --priority N        the session's priority\n"
            "  -r, --resreq SPEC       the session's resources, e.g. cpu=1,mem=1g\n"
            "  -a, --app NAME          the application (default flmping)\n"
            "      --endpoint URL      the session manager\n"
            "  -h, --help              show this help\n"
            "  -V, --version           show the version\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct watch_state {
    flame_session *s;
    size_t want, seen;
    long ok, failed;
    int perf;
    char *states;    /* by task id - 1 */
    char **outputs;  /* by task id - 1 (not with -p) */
    flame_status status;
    char error[1024]; /* the core's errors carry the session's events */
} watch_state;

static int on_outcomes(const flame_task_outcome *o, size_t n, void *payload)
{
    watch_state *w = payload;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)o[i].task_id - 1;
        if (k >= w->want)
            continue;
        w->states[k] = (char)o[i].state;
        if (o[i].state == FLAME_TASK_SUCCEED)
            w->ok++;
        else
            w->failed++;
        if (w->outputs) {
            char out[256];
            if (o[i].state == FLAME_TASK_SUCCEED)
                cli_format_bytes(out, sizeof out, &o[i].output);
            else
                snprintf(out, sizeof out, "%s", o[i].message ? o[i].message : "-");
            w->outputs[k] = strdup(out);
        }
        w->seen++;
    }
    return w->seen >= w->want;
}

static void *watcher(void *arg)
{
    watch_state *w = arg;
    w->status = flame_session_watch(w->s, 1, on_outcomes, w, -1);
    if (w->status != FLAME_OK)
        snprintf(w->error, sizeof w->error, "%s", flame_error_last());
    else if (w->seen < w->want)
        snprintf(w->error, sizeof w->error, "the session ended with %zu of %zu tasks done",
                 w->seen, w->want), w->status = FLAME_ERR_INTERNAL;
    return NULL;
}

static int fail(const char *what)
{
    fprintf(stderr, "flmping: %s: %s\n", what, flame_error_last());
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "task-num", required_argument, NULL, 't' }, { "common-data", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' }, { "memory", required_argument, NULL, 'm' },
        { "perf", no_argument, NULL, 'p' },           { "priority", required_argument, NULL, 'P' },
        { "resreq", required_argument, NULL, 'r' },   { "app", required_argument, NULL, 'a' },
        { "endpoint", required_argument, NULL, 'E' }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },        { NULL, 0, NULL, 0 },
    };
    long ntasks = 10, duration = -1, priority = 0;
    uint64_t memory = 0;
    int perf = 0;
    const char *common = NULL, *resreq = NULL, *endpoint = NULL, *app = "flmping";
    int c;
    while ((c = getopt_long(argc, argv, "t:c:d:m:pP:r:a:hV", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 't':
            ntasks = strtol(optarg, &end, 10);
            if (*end || ntasks < 0) {
                fprintf(stderr, "flmping: -t takes a number of tasks\n");
                return 2;
            }
            break;
        case 'c': common = optarg; break;
        case 'd':
            duration = strtol(optarg, &end, 10);
            if (*end || duration < 0) {
                fprintf(stderr, "flmping: -d takes milliseconds\n");
                return 2;
            }
            break;
        case 'm': {
            flame_resreq r = { 0, 0, 0 };
            char spec[96];
            snprintf(spec, sizeof spec, "mem=%s", optarg);
            if (flame_resreq_parse(&r, spec) != FLAME_OK) {
                fprintf(stderr, "flmping: -m takes a size like 64m\n");
                return 2;
            }
            memory = r.memory;
            break;
        }
        case 'p': perf = 1; break;
        case 'P':
            priority = strtol(optarg, &end, 10);
            if (*end || priority < 0) {
                fprintf(stderr, "flmping: -P takes a priority >= 0\n");
                return 2;
            }
            break;
        case 'r': resreq = optarg; break;
        case 'a': app = optarg; break;
        case 'E': endpoint = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("flmping %s\n", flame_version()); return 0;
        default: usage(stderr); return 2;
        }
    }
    flame_client_options co = FLAME_CLIENT_OPTIONS_INIT;
    co.endpoint = endpoint;
    flame_client *client;
    if (flame_client_connect(&client, &co))
        return fail("connect");
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = app;
    spec.priority = (uint32_t)priority;
    if (common) {
        spec.common_data.data = (const uint8_t *)common;
        spec.common_data.len = strlen(common);
    }
    if (resreq) {
        spec.has_resreq = 1;
        spec.resreq = (flame_resreq){ 1, 0, 0 };
        if (flame_resreq_parse(&spec.resreq, resreq)) {
            flame_client_free(client);
            return fail("--resreq");
        }
    }
    double t0 = now_ms();
    flame_session *s;
    if (flame_session_create(&s, client, NULL, &spec)) {
        flame_client_free(client);
        return fail("create session");
    }
    double t1 = now_ms();
    printf("Session <%s> was created in %.0f ms, start to run %ld tasks in the session:\n",
           flame_session_id(s), t1 - t0, ntasks);
    fflush(stdout);

    char input[128];
    int ilen = 0;
    if (duration >= 0 || memory)
        ilen = snprintf(input, sizeof input, "{\"duration\": %ld, \"memory\": %llu}",
                        duration > 0 ? duration : 0, (unsigned long long)memory);
    /* the outcomes stream runs on its own thread while the tasks go in */
    watch_state w = { s, (size_t)ntasks, 0, 0, 0, perf,
                      calloc((size_t)ntasks + 1, sizeof(char)),
                      perf ? NULL : calloc((size_t)ntasks + 1, sizeof(char *)), FLAME_OK, "" };
    pthread_t th;
    if (ntasks)
        pthread_create(&th, NULL, watcher, &w);
    int rc = 0;
    flame_bytes *inputs = NULL;
    if (ilen) {
        inputs = calloc((size_t)ntasks + 1, sizeof *inputs);
        for (long i = 0; i < ntasks; i++)
            inputs[i] = (flame_bytes){ (const uint8_t *)input, (size_t)ilen };
    }
    if (ntasks && flame_task_create_many(s, inputs, (size_t)ntasks, NULL) != FLAME_OK) {
        rc = fail("create tasks");
        flame_session_close(s); /* ends the watch */
    }
    free(inputs);
    if (ntasks)
        pthread_join(th, NULL);
    if (!rc && w.status != FLAME_OK) {
        fprintf(stderr, "flmping: watch: %s\n", w.error);
        rc = 1;
    }
    long ok = w.ok, failed = w.failed;
    cli_table table;
    static const char *hdr[] = { "Session", "Task", "State", "Output" };
    cli_table_init(&table, 4, hdr);
    for (long i = 0; i < ntasks && !perf && !rc; i++) {
        char id[32];
        snprintf(id, sizeof id, "%ld", i + 1);
        const char *row[] = { flame_session_id(s), id,
                              flame_task_state_str((flame_task_state)w.states[i]),
                              w.outputs[i] ? w.outputs[i] : "-" };
        cli_table_row(&table, row);
    }
    double t2 = now_ms();
    if (!rc) {
        if (perf) {
            double secs = (t2 - t1) / 1000.0;
            printf("\nBENCHMARK RESULTS\n");
            printf("  Duration:    %.0f ms\n", t2 - t1);
            printf("  Succeeded:   %ld\n", ok);
            printf("  Failed:      %ld\n", failed);
            printf("  Throughput:  %.1f tasks/sec\n", secs > 0 ? (double)ok / secs : 0.0);
        } else {
            printf("\n");
            cli_table_print(&table);
            printf("\n");
        }
        printf("%ld tasks was completed in %.0f ms.\n", ok + failed, t2 - t1);
    }
    cli_table_free(&table);
    for (long i = 0; w.outputs && i < ntasks; i++)
        free(w.outputs[i]);
    free(w.outputs);
    free(w.states);
    if (flame_session_close(s) && !rc)
        rc = fail("close session");
    flame_session_free(s);
    flame_client_free(client);
    return rc ? rc : failed ? 1 : 0;
}
