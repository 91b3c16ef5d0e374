/* Session start, as a client sees it (scripts/bench_start.sh):
 *
 *   flame_start_bench APP N GAP_MS [INPUT]
 *
 * N times: CreateSession of APP, one task (INPUT, default "ping"), the time
 * until its outcome arrives on the session's outcome stream; then the
 * session is closed and the next starts GAP_MS later (a pool refills in
 * the gap, as it would between an agent's sessions). Prints one JSON line:
 * the samples, p50/p99/min/max in ms and how many tasks succeeded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flame/flame.h>

#include "bench.h"

static double now_ms(void)
{
    return now_us() / 1e3;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static int first_cb(const flame_task_outcome *o, size_t n, void *payload)
{
    *(int *)payload = o[0].state;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: flame_start_bench APP N GAP_MS [INPUT]\n");
        return 2;
    }
    const char *app = argv[1], *input = argc == 5 ? argv[4] : "ping";
    size_t n = strtoul(argv[2], NULL, 10);
    long gap = strtol(argv[3], NULL, 10);
    if (!n)
        return 2;
    flame_client *c;
    if (flame_client_connect(&c, NULL)) {
        fprintf(stderr, "flame_start_bench: connect: %s\n", flame_error_last());
        return 1;
    }
    double *v = calloc(n, sizeof *v);
    size_t ok = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
        spec.application = app;
        flame_session *s = NULL;
        int state = -1;
        double t0 = now_ms();
        if (flame_session_create(&s, c, NULL, &spec) ||
            flame_task_create(NULL, s, input, strlen(input)) ||
            flame_session_watch(s, 1, first_cb, &state, 120000)) {
            fprintf(stderr, "flame_start_bench: session %zu: %s\n", i, flame_error_last());
            rc = 1;
            if (s)
                flame_session_free(s);
            break;
        }
        v[i] = now_ms() - t0;
        ok += state == FLAME_TASK_SUCCEED;
        flame_session_close(s);
        flame_session_free(s);
        if (gap > 0) {
            struct timespec ts = { gap / 1000, (gap % 1000) * 1000000 };
            nanosleep(&ts, NULL);
        }
    }
    if (!rc) {
        printf("{\"samples_ms\": [");
        for (size_t i = 0; i < n; i++)
            printf("%s%.3f", i ? ", " : "", v[i]);
        qsort(v, n, sizeof *v, cmp_double);
        printf("], \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"min_ms\": %.2f, \"max_ms\": %.2f, "
               "\"n\": %zu, \"succeed\": %zu}\n",
               pct(v, n, 50), pct(v, n, 99), v[0], v[n - 1], n, ok);
    }
    free(v);
    flame_client_free(c);
    return rc ? rc : ok == n ? 0 : 1;
}
