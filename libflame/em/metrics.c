/* The executor manager's metrics and probes: its executors by life-cycle
 * step, binds and their failures, the time of shim calls; /healthz and
 * /readyz (include/flame/metrics.h).
 *
 * Threads: em_metrics_* are called from executor threads (atomics only);
 * the probes from the metrics server's thread (they take em->mu briefly,
 * as em.h allows anyone). */
#include <pthread.h>
#include <stdio.h>

#include "em.h"
#include "flame/metrics.h"
#include "util/metrics.h"

static struct {
    fl_series *steps[EM_METRICS_N_STEPS], *binds_ok, *binds_failed, *shim[3];
    fl_series *warm[EM_WARM_N_EVENTS], *warm_ready, *warm_memory;
} m;

static void init(void)
{
    /* exec.c's em_state, in its order */
    static const char *names[EM_METRICS_N_STEPS] = { "register", "bind", "enter", "run",
                                                     "leave", "unbind", "release" };
    for (int i = 0; i < EM_METRICS_N_STEPS; i++)
        m.steps[i] = fl_gauge("flame_em_executors", "Executors of this executor manager, by "
                              "step of their life cycle.", "state", names[i], NULL);
    m.binds_ok = fl_counter("flame_em_binds_total", "Binds of an executor to a session, by "
                            "result (failed: the service or its installation did not start).",
                            "result", "ok", NULL);
    m.binds_failed = fl_counter("flame_em_binds_total", "", "result", "failed", NULL);
    static const char *ops[3] = { "enter", "invoke", "invoke_batch" };
    for (int i = 0; i < 3; i++)
        m.shim[i] = fl_histogram("flame_em_shim_call_seconds", "Time of calls into a service "
                                 "through its shim, by operation (enter: install and start).",
                                 fl_metrics_latency_buckets, fl_metrics_latency_nbuckets, "op",
                                 ops[i], NULL);
    static const char *ev[EM_WARM_N_EVENTS] = { "started", "taken", "exited", "failed" };
    for (int i = 0; i < EM_WARM_N_EVENTS; i++)
        m.warm[i] = fl_counter("flame_em_warm_events_total", i ? "" : "Service processes of "
                               "the warm pool, by event (started ahead, taken by a session, "
                               "exited while waiting, failed to start).", "event", ev[i], NULL);
    m.warm_ready = fl_gauge("flame_em_warm_processes", "Service processes started ahead and "
                            "waiting for a session.", NULL);
    m.warm_memory = fl_gauge("flame_em_warm_memory_bytes", "Memory (RSS) of the warm pool's "
                             "processes, taken off the node's allocatable.", NULL);
}

static void ensure(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init);
}

void em_metrics_step(int from, int to)
{
    ensure();
    if (from >= 0 && from < EM_METRICS_N_STEPS)
        fl_gauge_add(m.steps[from], -1);
    if (to >= 0 && to < EM_METRICS_N_STEPS)
        fl_gauge_add(m.steps[to], 1);
}

void em_metrics_bind(bool ok)
{
    ensure();
    fl_counter_add(ok ? m.binds_ok : m.binds_failed, 1);
}

void em_metrics_shim(int op, int64_t ns)
{
    ensure();
    fl_histogram_observe(m.shim[op], (double)ns / 1e9);
}

/* ---- probes ----------------------------------------------------------------- */

int flame_executor_manager_healthy(void *arg, char *why, size_t size)
{
    flame_executor_manager *em = arg;
    if (atomic_load(&em->node_done)) {
        snprintf(why, size, "the node thread has ended");
        return 0;
    }
    /* the node loop beats at least every heartbeat (connected) or backoff
     * step (not): ten missed in a row (and at least 15 s) is stuck */
    int64_t last = atomic_load(&em->alive_ns);
    int64_t bound = (int64_t)(em->heartbeat_ms * 10 > 15000 ? em->heartbeat_ms * 10 : 15000)
                    * 1000000;
    int64_t age = fl_mono_ns() - last;
    if (!last || age > bound) {
        snprintf(why, size, "the node loop last moved %.1f s ago (stuck?)",
                 last ? (double)age / 1e9 : -1.0);
        return 0;
    }
    return 1;
}

int flame_executor_manager_ready(void *arg, char *why, size_t size)
{
    flame_executor_manager *em = arg;
    if (!flame_executor_manager_healthy(arg, why, size))
        return 0;
    pthread_mutex_lock(&em->mu);
    bool connected = em->watch != NULL;
    pthread_mutex_unlock(&em->mu);
    if (!connected) {
        snprintf(why, size, "node %s is not registered with the session manager at %s "
                 "(connecting)", em->node, em->endpoint);
        return 0;
    }
    return 1;
}

void em_metrics_warm(int event)
{
    ensure();
    fl_counter_add(m.warm[event], 1);
}

void em_metrics_warm_gauges(unsigned ready, uint64_t memory)
{
    ensure();
    fl_gauge_set(m.warm_ready, (double)ready);
    fl_gauge_set(m.warm_memory, (double)memory);
}
