/* The session manager's metrics and probes: per tick a snapshot of the
 * books (sessions, tasks, executors and nodes by state), per finished task
 * its counters and latencies, per cycle and commit their time; and the
 * /healthz and /readyz answers (include/flame/metrics.h).
 *
 * Threads: sm_metrics_* run on the engine thread (they read the books);
 * the probes run on the metrics server's thread and read only sm's
 * atomics. The series are the process's (util/metrics.h), found once. */
#include <pthread.h>
#include <stdio.h>

#include "flame/metrics.h"
#include "sm.h"
#include "util/metrics.h"

#define N_TASK_STATES 5
#define N_EXEC_STATES 8
#define N_NODE_STATES 3

static struct {
    fl_series *sessions[2], *tasks[N_TASK_STATES], *execs[N_EXEC_STATES], *nodes[N_NODE_STATES];
    fl_series *done[N_TASK_STATES], *latency, *run, *cycle, *commit, *commit_failed;
} m;

static const char *lower(const char *s, char *buf, size_t size)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++)
        buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    buf[i] = 0;
    return buf;
}

static void init(void)
{
    char b[32];
    for (int i = 0; i < 2; i++)
        m.sessions[i] = fl_gauge("flame_sessions", "Sessions by state.", "state",
                                 lower(flame_session_state_str(i), b, sizeof b), NULL);
    for (int i = 0; i < N_TASK_STATES; i++) {
        lower(flame_task_state_str(i), b, sizeof b);
        m.tasks[i] = fl_gauge("flame_tasks", "Tasks by state (of sessions in the books).",
                              "state", b, NULL);
        if (fl_task_terminal(i))
            m.done[i] = fl_counter("flame_tasks_total", "Tasks that reached a final state since "
                                   "the start, by that state.", "state", b, NULL);
    }
    for (int i = 0; i < N_EXEC_STATES; i++)
        m.execs[i] = fl_gauge("flame_executors", "Executors by state.", "state",
                              lower(flame_executor_state_str(i), b, sizeof b), NULL);
    for (int i = 0; i < N_NODE_STATES; i++)
        m.nodes[i] = fl_gauge("flame_nodes", "Nodes by state.", "state",
                              lower(flame_node_state_str(i), b, sizeof b), NULL);
    const double *lb = fl_metrics_latency_buckets;
    size_t nb = fl_metrics_latency_nbuckets;
    m.latency = fl_histogram("flame_task_latency_seconds", "Time from a task's creation to its "
                             "completion (succeed or failed).", lb, nb, NULL);
    m.run = fl_histogram("flame_task_run_seconds", "Time a task ran: from its last start on an "
                         "executor to its completion.", lb, nb, NULL);
    m.cycle = fl_histogram("flame_scheduler_cycle_seconds", "Time of one scheduling cycle "
                           "(snapshot, decisions, applying them).", lb, nb, NULL);
    m.commit = fl_histogram("flame_store_commit_seconds", "Time of one commit of a batch to "
                            "the store.", lb, nb, NULL);
    m.commit_failed = fl_counter("flame_store_commit_failures_total", "Commits that failed "
                                 "(their batch was undone).", NULL);
}

static void ensure(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init);
}

void sm_metrics_tick(sm_t *sm)
{
    ensure();
    atomic_store(&sm->tick_ns, fl_mono_ns());
    int64_t sessions[2] = { 0 }, tasks[N_TASK_STATES] = { 0 }, execs[N_EXEC_STATES] = { 0 },
            nodes[N_NODE_STATES] = { 0 };
    for (sm_session *ss = sm->first; ss; ss = ss->next) {
        sessions[ss->s->state == FLAME_SESSION_CLOSED]++;
        for (int i = 0; i < N_TASK_STATES; i++)
            tasks[i] += ss->s->counts[i];
    }
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        int st = ((sm_exec *)v)->ex->state;
        execs[st >= 0 && st < N_EXEC_STATES ? st : 0]++;
    }
    it = 0;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        int st = ((sm_node *)v)->node->state;
        nodes[st >= 0 && st < N_NODE_STATES ? st : 0]++;
    }
    for (int i = 0; i < 2; i++)
        fl_gauge_set(m.sessions[i], (double)sessions[i]);
    for (int i = 0; i < N_TASK_STATES; i++)
        fl_gauge_set(m.tasks[i], (double)tasks[i]);
    for (int i = 0; i < N_EXEC_STATES; i++)
        fl_gauge_set(m.execs[i], (double)execs[i]);
    for (int i = 0; i < N_NODE_STATES; i++)
        fl_gauge_set(m.nodes[i], (double)nodes[i]);
}

void sm_metrics_task_done(const fl_task *t)
{
    ensure();
    if (t->state >= N_TASK_STATES || !m.done[t->state])
        return;
    fl_counter_add(m.done[t->state], 1);
    if (t->state != FLAME_TASK_SUCCEED && t->state != FLAME_TASK_FAILED)
        return; /* a cancelled task never ran */
    fl_histogram_observe(m.latency, (double)(t->etime - t->ctime) / 1000.0);
    for (uint32_t i = t->events.n; i-- > 0;) {
        fl_event e = fl_events_get(&t->events, i);
        if (e.code == FLAME_TASK_RUNNING) {
            fl_histogram_observe(m.run, (double)(t->etime - e.time) / 1000.0);
            break;
        }
    }
}

void sm_metrics_cycle(int64_t ns)
{
    ensure();
    fl_histogram_observe(m.cycle, (double)ns / 1e9);
}

void sm_metrics_commit(int64_t ns, bool failed)
{
    ensure();
    fl_histogram_observe(m.commit, (double)ns / 1e9);
    if (failed)
        fl_counter_add(m.commit_failed, 1);
}

/* ---- probes ----------------------------------------------------------------- */

int flame_session_manager_healthy(void *arg, char *why, size_t size)
{
    sm_t *sm = arg;
    int64_t last = atomic_load(&sm->tick_ns);
    /* the engine ticks every schedule interval; ten missed in a row (and
     * at least 15 s) means it is stuck, not busy */
    int64_t bound = (int64_t)(sm->schedule_interval_ms * 10 > 15000 ? sm->schedule_interval_ms * 10
                                                                     : 15000) * 1000000;
    if (!last) {
        snprintf(why, size, "the engine has not ticked yet");
        return 0;
    }
    int64_t age = fl_mono_ns() - last;
    if (age > bound) {
        snprintf(why, size, "the engine last ticked %.1f s ago (stuck?)", (double)age / 1e9);
        return 0;
    }
    return 1;
}

int flame_session_manager_ready(void *arg, char *why, size_t size)
{
    sm_t *sm = arg;
    if (!atomic_load(&sm->serving)) {
        snprintf(why, size, "the session manager is starting or stopping");
        return 0;
    }
    return flame_session_manager_healthy(arg, why, size);
}
