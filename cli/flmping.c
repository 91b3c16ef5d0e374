/* flmping: run N tasks of the built-in flmping application and report
 * (Flame's flmping), written only against client.h. The lines on stdout are
 * Flame's, byte for byte (scripts parse them); the progress bar goes to
 * stderr and only to a terminal.
 * Threads: the outcomes are watched on a thread of their own (watcher) while
 * the main thread submits; watch_state is the watcher's until it is joined. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <flame/flame.h>

#include <cjson/cJSON.h>

#include "progress.h"
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

typedef struct watch_state {
    flame_session *s;
    size_t want, seen;
    long ok, failed;
    int perf;
    cli_progress bar;
    char *states;    /* by task id - 1 */
    char **outputs;  /* by task id - 1 (not with -p) */
    flame_status status;
    char error[1024]; /* the core's errors carry the session's events */
} watch_state;

/* The flmping service answers {"hostname", "duration" (ms), "memory"
 * (bytes)}; Flame's client shows it as below. Other output is shown as text. */
static void format_output(char *buf, size_t n, const flame_bytes *b)
{
    cJSON *o = b->data ? cJSON_ParseWithLength((const char *)b->data, b->len) : NULL;
    cJSON *h = cJSON_GetObjectItem(o, "hostname"), *d = cJSON_GetObjectItem(o, "duration"),
          *m = cJSON_GetObjectItem(o, "memory");
    if (cJSON_IsString(h) && cJSON_IsNumber(d) && cJSON_IsNumber(m)) {
        char size[32];
        cli_byte_size(size, sizeof size, m->valuedouble > 0 ? (uint64_t)m->valuedouble : 0);
        snprintf(buf, n, "Completed on <%s> in <%.0f> milliseconds with <%s> memory",
                 h->valuestring, d->valuedouble, size);
    } else {
        cli_format_bytes(buf, n, b);
    }
    cJSON_Delete(o);
}

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
            char out[512];
            if (o[i].state == FLAME_TASK_SUCCEED)
                format_output(out, sizeof out, &o[i].output);
            else
                snprintf(out, sizeof out, "%s", o[i].message ? o[i].message : "-");
            w->outputs[k] = strdup(out);
        }
        w->seen++;
    }
    cli_progress_update(&w->bar, w->seen);
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

/* "<app>-<6 letters or digits>", as our session manager names sessions. */
static void session_name(char *buf, size_t n, const char *app)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char suffix[7];
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char r[6] = { 0 };
    if (!f || fread(r, 1, sizeof r, f) != sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long x = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16);
        for (int i = 0; i < 6; i++, x /= 36)
            r[i] = (unsigned char)(x % 36);
    }
    if (f)
        fclose(f);
    for (int i = 0; i < 6; i++)
        suffix[i] = alnum[r[i] % 36];
    suffix[6] = 0;
    snprintf(buf, n, "%s-%s", app, suffix);
}

/* A failed task's Output as Flame's client shows it: "code <c>: msg" with
 * the code of the task's last event. */
static void failure_output(flame_session *s, const char *id, char **out)
{
    flame_task *t;
    if (flame_task_get(&t, s, id) != FLAME_OK)
        return;
    if (!t->events_len) {
        flame_task_free(t);
        return;
    }
    const flame_event *e = &t->events[t->events_len - 1];
    char buf[512];
    snprintf(buf, sizeof buf, "code <%d>: %s", e->code,
             e->message ? e->message : (*out ? *out : ""));
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    free(*out);
    *out = strdup(buf);
    flame_task_free(t);
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
    flame_resreq rr = { 1, 0, 0 };
    if (resreq && flame_resreq_parse(&rr, resreq)) {
        fprintf(stderr, "flmping: -r: %s\n", flame_error_last());
        return 2;
    }
    flame_client_options co = FLAME_CLIENT_OPTIONS_INIT;
    co.endpoint = endpoint;
    flame_client *client;
    if (flame_client_connect(&client, &co))
        return fail("connect");
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = app;
    spec.priority = (uint32_t)priority;
    spec.has_resreq = resreq != NULL;
    spec.resreq = rr;
    if (common) {
        spec.common_data.data = (const uint8_t *)common;
        spec.common_data.len = strlen(common);
    }
    /* Flame does not name sessions, its clients do: so does flmping */
    char sid[128];
    double t0 = cli_now_ms();
    flame_session *s;
    flame_status st;
    int tries = 0;
    do { /* a name taken already (1 in 36^6) gets another */
        session_name(sid, sizeof sid, app);
        st = flame_session_create(&s, client, sid, &spec);
    } while (st == FLAME_ERR_ALREADY_EXISTS && ++tries < 3);
    if (st) {
        flame_client_free(client);
        return fail("create session");
    }
    double t1 = cli_now_ms();
    char count[32];
    cli_human_count(count, sizeof count, (uint64_t)ntasks);
    printf("Session <%s> was created in <%.0f ms>, start to run <%s> tasks in the session:\n\n",
           flame_session_id(s), t1 - t0, count);
    fflush(stdout);

    char input[128];
    int ilen = 0;
    if (duration >= 0 || memory)
        ilen = snprintf(input, sizeof input, "{\"duration\": %ld, \"memory\": %llu}",
                        duration > 0 ? duration : 0, (unsigned long long)memory);
    /* the outcomes stream runs on its own thread while the tasks go in */
    watch_state w = { .s = s, .want = (size_t)ntasks, .perf = perf,
                      .states = calloc((size_t)ntasks + 1, sizeof(char)),
                      .outputs = perf ? NULL : calloc((size_t)ntasks + 1, sizeof(char *)) };
    if (!w.states || (!perf && !w.outputs)) {
        fprintf(stderr, "flmping: out of memory for %ld tasks\n", ntasks);
        return 1;
    }
    cli_progress_start(&w.bar, (uint64_t)ntasks);
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
    cli_progress_done(&w.bar);
    if (!rc && w.status != FLAME_OK) {
        fprintf(stderr, "flmping: watch: %s\n", w.error);
        rc = 1;
    }
    double t2 = cli_now_ms();
    long ok = w.ok, failed = w.failed;
    cli_table table;
    static const char *hdr[] = { "Session", "Task", "State", "Output" };
    cli_table_init(&table, 4, hdr);
    for (long i = 0; i < ntasks && !perf && !rc; i++) {
        char id[32];
        snprintf(id, sizeof id, "%ld", i + 1);
        if (w.states[i] == FLAME_TASK_FAILED)
            failure_output(s, id, &w.outputs[i]);
        const char *row[] = { flame_session_id(s), id,
                              flame_task_state_str((flame_task_state)w.states[i]),
                              w.outputs[i] ? w.outputs[i] : "-" };
        cli_table_row(&table, row);
    }
    if (!rc && perf) {
        double secs = (t2 - t1) / 1000.0;
        static const char line[] = "============================================================";
        printf("\n%s\nBENCHMARK RESULTS\n%s\n", line, line);
        printf("%-17s%.2fs\n", "Duration:", secs);
        printf("%-17s%ld/%ld\n", "Succeeded:", ok, ntasks);
        printf("%-17s%ld\n", "Failed:", failed);
        printf("%-17s%.2f tasks/sec\n", "Throughput:", secs > 0 ? (double)ntasks / secs : 0.0);
        printf("%s\n\n", line);
    } else if (!rc) {
        cli_table_print_comfy(&table);
        printf("\n\n<%s> tasks was completed in <%.0f ms>.\n\n", count, t2 - t1);
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
