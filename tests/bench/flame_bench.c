/* flame_bench: the measurements behind scripts/bench.sh. Each subcommand
 * prints one JSON object on stdout.
 *   latency N [APP]      sequential submit -> result, N tasks (us)
 *   session-create N     CreateSession round trips (us)
 *   cold-start APP       CreateSession -> first result with no executor (ms)
 *   fill N PAYLOAD       N tasks with PAYLOAD-byte inputs, all run (tasks/s)
 *   sched S N E          scheduler cycles on S sessions, N nodes, E executors (ms):
 *                        the first, then on the settled cluster full and incremental
 *   makespan N MS E [S]  S sessions (default 1) sharing E bound executors run
 *                        N tasks of MS ms each: first submit -> last outcome (s)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flame/flame.h>

#include "bench.h"

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static int die(const char *what)
{
    fprintf(stderr, "flame_bench: %s: %s\n", what, flame_error_last());
    return 1;
}

/* ---- latency: each result, as it arrives on the session's outcome
 * stream, submits the next task (no thread hand-off in between) ---- */

typedef struct lat {
    flame_session *s;
    size_t total, warm, next; /* tasks submitted so far */
    double t0;
    double *v;
    flame_status st;
} lat;

static int lat_submit(lat *l)
{
    l->t0 = now_us();
    l->next++;
    return flame_task_create(NULL, l->s, "ping", 4) == FLAME_OK ? 0 : -1;
}

static int lat_cb(const flame_task_outcome *o, size_t n, void *payload)
{
    lat *l = payload;
    double dt = now_us() - l->t0;
    if (l->next > l->warm)
        l->v[l->next - l->warm - 1] = dt;
    if (l->next >= l->total)
        return 1;
    return lat_submit(l) ? 1 : 0;
}

typedef struct lat_start {
    lat *l;
} lat_start;

static void *lat_kick(void *arg)
{
    lat *l = arg;
    /* the first task, once the stream is in place */
    struct timespec ts = { 0, 100 * 1000000 };
    nanosleep(&ts, NULL);
    lat_submit(l);
    return NULL;
}

static flame_session *open_ping(flame_client *c, const char *app)
{
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = app;
    flame_session *s = NULL;
    if (flame_session_create(&s, c, NULL, &spec))
        return NULL;
    return s;
}

static int latency(flame_client *c, size_t n, const char *app)
{
    flame_session *s = open_ping(c, app);
    if (!s)
        return die("create session");
    size_t warm = n / 10 + 10;
    lat l = { s, n + warm, warm, 0, 0, calloc(n, sizeof(double)), FLAME_OK };
    pthread_t th;
    pthread_create(&th, NULL, lat_kick, &l);
    flame_status st = flame_session_watch(s, 1, lat_cb, &l, -1);
    pthread_join(th, NULL);
    if (st)
        return die("watch");
    printf("{\"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f, \"n\": %zu}\n",
           pct(l.v, n, 50), pct(l.v, n, 99), n);
    free(l.v);
    flame_session_close(s);
    flame_session_free(s);
    return 0;
}

static int got_one(const flame_task_outcome *o, size_t n, void *payload)
{
    *(size_t *)payload += n;
    return 0;
}

/* Sequential submit -> result over one RunSession stream. */
static int latency_stream(flame_client *c, size_t n, const char *app)
{
    flame_session *s = open_ping(c, app);
    if (!s)
        return die("create session");
    flame_session_stream *st;
    if (flame_session_stream_open(&st, s))
        return die("open stream");
    size_t warm = n / 10 + 10;
    double *v = calloc(n, sizeof *v);
    flame_bytes in = { (const uint8_t *)"ping", 4 };
    for (size_t i = 0; i < n + warm; i++) {
        double t0 = now_us();
        if (flame_session_stream_submit(st, &in, 1))
            return die("submit");
        size_t got = 0;
        while (!got)
            if (flame_session_stream_next(st, got_one, &got, NULL))
                return die("next");
        if (i >= warm)
            v[i - warm] = now_us() - t0;
    }
    printf("{\"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f, \"n\": %zu}\n", pct(v, n, 50),
           pct(v, n, 99), n);
    free(v);
    flame_session_stream_close(st);
    flame_session_close(s);
    flame_session_free(s);
    return 0;
}

/* A plain unary round trip (GetSession), for reference. */
static int rtt(flame_client *c, size_t n)
{
    flame_session *s = open_ping(c, "flmping");
    if (!s)
        return die("create session");
    double *v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        double t0 = now_us();
        flame_session_info *info;
        if (flame_session_get(&info, c, flame_session_id(s)))
            return die("get session");
        v[i] = now_us() - t0;
        flame_session_info_free(info);
    }
    printf("{\"rtt_p50_us\": %.1f, \"rtt_p99_us\": %.1f, \"n\": %zu}\n", pct(v, n, 50),
           pct(v, n, 99), n);
    free(v);
    flame_session_close(s);
    flame_session_free(s);
    return 0;
}

static int session_create(flame_client *c, size_t n)
{
    double *v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        double t0 = now_us();
        flame_session *s = open_ping(c, "flmping");
        v[i] = now_us() - t0;
        if (!s)
            return die("create session");
        flame_session_close(s);
        flame_session_free(s);
    }
    printf("{\"session_create_p50_us\": %.1f, \"session_create_p99_us\": %.1f, \"n\": %zu}\n",
           pct(v, n, 50), pct(v, n, 99), n);
    free(v);
    return 0;
}

static int first_cb(const flame_task_outcome *o, size_t n, void *payload)
{
    *(int *)payload = o[0].state;
    return 1;
}

static int cold_start(flame_client *c, const char *app)
{
    /* a fresh application: no executor can be reused */
    flame_application *ping;
    if (flame_application_get(&ping, c, "flmping"))
        return die("get flmping");
    if (flame_application_register(c, app, ping->spec))
        return die("register");
    flame_application_free(ping);
    double t0 = now_us();
    flame_session *s = open_ping(c, app);
    if (!s)
        return die("create session");
    if (flame_task_create(NULL, s, NULL, 0))
        return die("create task");
    int state = -1;
    if (flame_session_watch(s, 1, first_cb, &state, 30000))
        return die("watch");
    double ms = (now_us() - t0) / 1000.0;
    printf("{\"cold_start_ms\": %.2f, \"state\": \"%s\"}\n", ms,
           flame_task_state_str((flame_task_state)state));
    flame_session_close(s);
    flame_session_free(s);
    return state == FLAME_TASK_SUCCEED ? 0 : 1;
}

typedef struct fill_w {
    size_t want, seen;
} fill_w;

static int fill_cb(const flame_task_outcome *o, size_t n, void *payload)
{
    fill_w *w = payload;
    w->seen += n;
    return w->seen >= w->want;
}

typedef struct fill_arg {
    flame_session *s;
    fill_w w;
    flame_status st;
} fill_arg;

static void *fill_watch(void *arg)
{
    fill_arg *a = arg;
    a->st = flame_session_watch(a->s, 1, fill_cb, &a->w, -1);
    return NULL;
}

static int fill(flame_client *c, size_t n, size_t payload)
{
    flame_session *s = open_ping(c, "flmping");
    if (!s)
        return die("create session");
    char *buf = malloc(payload + 1);
    memset(buf, 'x', payload);
    flame_bytes *in = calloc(n, sizeof *in);
    for (size_t i = 0; i < n; i++)
        in[i] = (flame_bytes){ (const uint8_t *)buf, payload };
    fill_arg a = { s, { n, 0 }, FLAME_OK };
    pthread_t th;
    double t0 = now_us();
    pthread_create(&th, NULL, fill_watch, &a);
    if (flame_task_create_many(s, in, n, NULL))
        return die("create tasks");
    pthread_join(th, NULL);
    double secs = (now_us() - t0) / 1e6;
    printf("{\"tasks\": %zu, \"tasks_per_s\": %.0f}\n", a.w.seen, (double)a.w.seen / secs);
    flame_session_close(s);
    flame_session_free(s);
    free(in);
    free(buf);
    return a.w.seen == n ? 0 : 1;
}

/* ---- sched: the scheduler alone, on a synthetic cluster ---- */

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The cluster the bench plays: executors' ids live in one block, so a
 * decision's id gives the executor's number; pos[number] is its place in
 * ex (or -1 once released). */
typedef struct bench_world {
    flame_sched_node *nodes;
    flame_sched_session *sess;
    flame_sched_executor *ex;
    size_t nn, ns, ne, cap;
    char *ids;                   /* cap ids of ID_LEN bytes */
    size_t nids;
    long *pos;
} bench_world;

#define ID_LEN 32

static long bench_exec(const bench_world *w, const char *id)
{
    return w->pos[(id - w->ids) / ID_LEN];
}

/* Applies decisions as the session manager would, executors created
 * bound at once; a session's new executors each take one pending task. */
static void bench_apply(bench_world *w, const flame_decision *d, size_t nd, long *sess_of_id)
{
    for (size_t i = 0; i < nd; i++) {
        long x = d[i].executor_id ? bench_exec(w, d[i].executor_id) : -1;
        long s = d[i].session_id ? sess_of_id[(d[i].session_id - w->sess[0].id) / 32] : -1;
        switch (d[i].kind) {
        case FLAME_DECISION_CREATE:
        case FLAME_DECISION_BIND:
            if (d[i].kind == FLAME_DECISION_CREATE) {
                if (w->ne == w->cap || w->nids == w->cap)
                    break;
                char *id = w->ids + w->nids * ID_LEN;
                snprintf(id, ID_LEN, "executor-%zu", w->nids % 1000000000);
                w->pos[w->nids++] = (long)w->ne;
                size_t n = 0;
                while (strcmp(w->nodes[n].name, d[i].node) != 0)
                    n++;
                x = (long)w->ne++;
                w->ex[x] = (flame_sched_executor){ id, w->nodes[n].name, w->sess[s].resreq,
                                                   FLAME_EXECUTOR_IDLE, NULL, NULL, 0,
                                                   (uint32_t)n + 1, 0 };
            }
            w->ex[x].state = FLAME_EXECUTOR_BOUND;
            w->ex[x].session_id = w->sess[s].id;
            w->ex[x].application = w->sess[s].application;
            w->ex[x].session_hint = (uint32_t)s + 1;
            if (w->sess[s].pending) {
                w->sess[s].pending--;
                w->sess[s].running++;
            }
            break;
        case FLAME_DECISION_UNBIND:
            w->ex[x].state = FLAME_EXECUTOR_IDLE;
            w->ex[x].session_id = NULL;
            w->ex[x].session_hint = 0;
            w->ex[x].idle_since_ms = 1000;
            break;
        case FLAME_DECISION_RELEASE: { /* the last one takes its place */
            w->pos[(w->ex[x].id - w->ids) / ID_LEN] = -1;
            w->ex[x] = w->ex[--w->ne];
            if ((size_t)x < w->ne)
                w->pos[(w->ex[x].id - w->ids) / ID_LEN] = x;
            break;
        }
        }
    }
}

static double median(double *v, size_t n)
{
    return pct(v, n, 50);
}

/* The first cycle on a busy cluster (the figure before cycles were
 * incremental), then the cluster settled (decisions applied until a cycle
 * decides little) and, on it: a full cycle (a new scheduler) and the
 * incremental cycle after a small change (a few sessions' tasks come and
 * go), each the median of 7; cpu time beside wall time (the machine is
 * shared). */
static int sched(size_t ns, size_t nn, size_t ne)
{
    bench_world w = { 0 };
    w.nn = nn;
    w.ns = ns;
    w.ne = ne;
    w.cap = ne * 2;
    w.nodes = calloc(nn, sizeof *w.nodes);
    w.sess = calloc(ns, sizeof *w.sess);
    w.ex = calloc(w.cap, sizeof *w.ex);
    w.ids = calloc(w.cap, ID_LEN);
    w.pos = calloc(w.cap, sizeof *w.pos);
    long *sess_of_id = calloc(ns, sizeof *sess_of_id);
    char *snames = calloc(ns, 32), *nnames = calloc(nn, 32), *anames = calloc(10, 32);
    flame_sched_application apps[10];
    for (size_t i = 0; i < 10; i++) {
        snprintf(anames + i * 32, 32, "app-%zu", i);
        apps[i] = (flame_sched_application){ anames + i * 32, 0, 0, 60000 };
    }
    for (size_t i = 0; i < nn; i++) {
        snprintf(nnames + i * 32, 32, "node-%zu", i);
        w.nodes[i] = (flame_sched_node){ nnames + i * 32, { 128, 512ULL << 30, 0 }, 1 };
    }
    for (size_t i = 0; i < ns; i++) {
        snprintf(snames + i * 32, 32, "session-%zu", i);
        sess_of_id[i] = (long)i;
        /* busy sessions: some want more than they hold */
        w.sess[i] = (flame_sched_session){ snames + i * 32, apps[i % 10].name, (uint32_t)(i % 3),
                                           { 1, 1ULL << 30, 0 }, 0, 0, 0,
                                           (uint32_t)(i % 7) * 4, 5, 1, 1 };
    }
    for (size_t i = 0; i < ne; i++) {
        char *id = w.ids + i * ID_LEN;
        snprintf(id, ID_LEN, "executor-%zu", i % 1000000000);
        w.pos[i] = (long)i;
        size_t si = i % ns;
        int idle = i % 10 == 0;
        w.ex[i] = (flame_sched_executor){ id, w.nodes[i % nn].name, { 1, 1ULL << 30, 0 },
                                          idle ? FLAME_EXECUTOR_IDLE : FLAME_EXECUTOR_BOUND,
                                          idle ? NULL : w.sess[si].id, w.sess[si].application, 0,
                                          (uint32_t)(i % nn) + 1, idle ? 0 : (uint32_t)si + 1 };
    }
    w.nids = ne;
    flame_sched_snapshot snap = FLAME_SCHED_SNAPSHOT_INIT;
    snap.nodes = w.nodes;
    snap.nodes_len = nn;
    snap.applications = apps;
    snap.applications_len = 10;
    snap.sessions = w.sess;
    snap.sessions_len = ns;
    snap.executors = w.ex;
    const flame_decision *d;
    size_t nd = 0, first_nd = 0;
    double first[7], first_cpu[7], full[7], full_cpu[7], inc[7], inc_cpu[7];
    size_t full_nd = 0, inc_nd = 0;
    for (int r = 0; r < 7; r++) { /* a new scheduler each time: nothing to reuse */
        flame_scheduler *f;
        flame_scheduler_new(&f);
        snap.executors_len = w.ne;
        double t0 = now_us(), c0 = cpu_ms();
        flame_scheduler_cycle(f, &snap, 1000, &d, &first_nd);
        first[r] = (now_us() - t0) / 1000.0;
        first_cpu[r] = cpu_ms() - c0;
        flame_scheduler_free(f);
    }
    flame_scheduler *sc;
    flame_scheduler_new(&sc);
    int cycles = 0;
    do { /* settle */
        snap.executors_len = w.ne;
        flame_scheduler_cycle(sc, &snap, 1000, &d, &nd);
        bench_apply(&w, d, nd, sess_of_id);
    } while (nd > 100 && ++cycles < 30);
    snap.executors_len = w.ne;
    flame_scheduler_cycle(sc, &snap, 1000, &d, &nd);
    /* alternately, on the same snapshot after each small change (10
     * sessions' tasks come and go): a new scheduler (the full cycle) and
     * the one kept from the cycles before (incremental); their decisions
     * must be the same */
    int differ = 0;
    for (int r = 0; r < 7; r++) {
        for (size_t k = 0; k < 10; k++) {
            flame_sched_session *s = &w.sess[(size_t)(r * 977 + k * 131) % ns];
            if (r % 2 || !s->pending)
                s->pending++;
            else
                s->pending--;
        }
        flame_scheduler *f;
        flame_scheduler_new(&f);
        const flame_decision *fd;
        double t0 = now_us(), c0 = cpu_ms();
        flame_scheduler_cycle(f, &snap, 1000, &fd, &full_nd);
        full[r] = (now_us() - t0) / 1000.0;
        full_cpu[r] = cpu_ms() - c0;
        t0 = now_us();
        c0 = cpu_ms();
        flame_scheduler_cycle(sc, &snap, 1000, &d, &inc_nd);
        inc[r] = (now_us() - t0) / 1000.0;
        inc_cpu[r] = cpu_ms() - c0;
        differ |= full_nd != inc_nd;
        for (size_t q = 0; q < inc_nd && q < full_nd; q++) /* fields: padding differs */
            differ |= fd[q].kind != d[q].kind || fd[q].node != d[q].node ||
                      fd[q].executor_id != d[q].executor_id || fd[q].session_id != d[q].session_id;
        flame_scheduler_free(f);
    }
    if (differ)
        fprintf(stderr, "flame_bench sched: the kept scheduler decided otherwise than a new one\n");
    printf("{\"sched_cycle_ms\": %.2f, \"sched_cycle_cpu_ms\": %.2f, \"decisions\": %zu, "
           "\"sched_settled_full_ms\": %.2f, \"sched_settled_full_cpu_ms\": %.2f, "
           "\"settled_decisions\": %zu, \"sched_incremental_ms\": %.2f, "
           "\"sched_incremental_cpu_ms\": %.2f, \"incremental_decisions\": %zu, "
           "\"settled_executors\": %zu, \"sessions\": %zu, \"nodes\": %zu, \"executors\": %zu}\n",
           median(first, 7), median(first_cpu, 7), first_nd, median(full, 7),
           median(full_cpu, 7), full_nd, median(inc, 7), median(inc_cpu, 7), inc_nd, w.ne, ns,
           nn, ne);
    if (differ)
        return 1;
    flame_scheduler_free(sc);
    free(w.nodes);
    free(w.sess);
    free(w.ex);
    free(w.ids);
    free(w.pos);
    free(sess_of_id);
    free(snames);
    free(nnames);
    free(anames);
    return 0;
}

/* ---- makespan: tasks that take time, on executors already bound ---- */

typedef struct mk {
    flame_session *s;
    size_t n;
    int ms;
    double t0, t1;
    flame_status st;
    size_t seen, ok;
} mk;

static int mk_cb(const flame_task_outcome *o, size_t n, void *payload)
{
    mk *m = payload;
    for (size_t i = 0; i < n; i++)
        m->ok += o[i].state == FLAME_TASK_SUCCEED;
    m->seen += n;
    return m->seen >= m->n;
}

static void *mk_run(void *arg)
{
    mk *m = arg;
    char in[64];
    int len = snprintf(in, sizeof in, "{\"duration\": %d}", m->ms);
    flame_bytes *v = calloc(m->n, sizeof *v);
    for (size_t i = 0; i < m->n; i++)
        v[i] = (flame_bytes){ (const uint8_t *)in, (size_t)len };
    uint64_t *ids = calloc(m->n, sizeof *ids);
    m->t0 = now_us();
    m->st = flame_task_create_many(m->s, v, m->n, ids);
    if (!m->st)
        m->st = flame_session_watch(m->s, ids[0], mk_cb, m, 600000);
    m->t1 = now_us();
    free(ids);
    free(v);
    return NULL;
}

/* Executors of the cluster bound to session id. */
static size_t bound_to(flame_client *c, const char *id)
{
    flame_executor_info **v;
    size_t n, k = 0;
    if (flame_executor_list(&v, &n, c))
        return 0;
    for (size_t i = 0; i < n; i++)
        k += v[i]->state == FLAME_EXECUTOR_BOUND && v[i]->session_id &&
             strcmp(v[i]->session_id, id) == 0;
    flame_executor_info_list_free(v, n);
    return k;
}

static int makespan(flame_client *c, size_t n, int ms, size_t execs, size_t nsess)
{
    mk *m = calloc(nsess, sizeof *m);
    for (size_t i = 0; i < nsess; i++) {
        flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
        spec.application = "flmping";
        spec.min_instances = (uint32_t)(execs / nsess);
        if (flame_session_create(&m[i].s, c, NULL, &spec))
            return die("create session");
        m[i].n = n;
        m[i].ms = ms;
    }
    /* every session holds its executors before the clock starts */
    for (int tries = 0;; tries++) {
        size_t ready = 0;
        for (size_t i = 0; i < nsess; i++)
            ready += bound_to(c, flame_session_id(m[i].s)) >= execs / nsess;
        if (ready == nsess)
            break;
        if (tries == 600) {
            fprintf(stderr, "flame_bench: the sessions did not get %zu executors in 60 s\n",
                    execs);
            return 1;
        }
        struct timespec ts = { 0, 100000000 };
        nanosleep(&ts, NULL);
    }
    pthread_t *th = calloc(nsess, sizeof *th);
    for (size_t i = 0; i < nsess; i++)
        pthread_create(&th[i], NULL, mk_run, &m[i]);
    double t0 = 0, t1 = 0;
    size_t ok = 0;
    int rc = 0;
    for (size_t i = 0; i < nsess; i++) {
        pthread_join(th[i], NULL);
        if (m[i].st)
            rc = die("run");
        t0 = i == 0 || m[i].t0 < t0 ? m[i].t0 : t0;
        t1 = m[i].t1 > t1 ? m[i].t1 : t1;
        ok += m[i].ok;
        flame_session_close(m[i].s);
        flame_session_free(m[i].s);
    }
    double ideal = (double)((n * nsess + execs - 1) / execs) * ms / 1000.0;
    printf("{\"makespan_s\": %.3f, \"ideal_s\": %.3f, \"tasks\": %zu, \"ms\": %d, "
           "\"executors\": %zu, \"sessions\": %zu, \"succeed\": %zu}\n",
           (t1 - t0) / 1e6, ideal, n, ms, execs, nsess, ok);
    free(th);
    free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: flame_bench latency N | session-create N | cold-start APP | "
                        "fill N PAYLOAD | sched S N E\n");
        return 2;
    }
    if (strcmp(argv[1], "sched") == 0 && argc == 5)
        return sched(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10),
                     strtoul(argv[4], NULL, 10));
    flame_client *c;
    if (flame_client_connect(&c, NULL))
        return die("connect");
    int rc = 2;
    if (strcmp(argv[1], "latency") == 0 && (argc == 3 || argc == 4))
        rc = latency(c, strtoul(argv[2], NULL, 10), argc == 4 ? argv[3] : "flmping");
    else if (strcmp(argv[1], "latency-stream") == 0 && (argc == 3 || argc == 4))
        rc = latency_stream(c, strtoul(argv[2], NULL, 10), argc == 4 ? argv[3] : "flmping");
    else if (strcmp(argv[1], "rtt") == 0 && argc == 3)
        rc = rtt(c, strtoul(argv[2], NULL, 10));
    else if (strcmp(argv[1], "session-create") == 0 && argc == 3)
        rc = session_create(c, strtoul(argv[2], NULL, 10));
    else if (strcmp(argv[1], "cold-start") == 0 && argc == 3)
        rc = cold_start(c, argv[2]);
    else if (strcmp(argv[1], "makespan") == 0 && (argc == 5 || argc == 6))
        rc = makespan(c, strtoul(argv[2], NULL, 10), atoi(argv[3]), strtoul(argv[4], NULL, 10),
                      argc == 6 ? strtoul(argv[5], NULL, 10) : 1);
    else if (strcmp(argv[1], "fill") == 0 && argc == 4)
        rc = fill(c, strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
    else
        fprintf(stderr, "flame_bench: bad arguments\n");
    flame_client_free(c);
    return rc;
}
