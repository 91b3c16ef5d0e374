/* A scheduling cycle: a snapshot of nodes, applications, sessions and
 * executors for the pure scheduler (sched/), and its decisions applied
 * through the executors' life cycle and the nodes' launchers. */
#include <stdlib.h>
#include <string.h>

#include "sm.h"

static void apply(sm_t *sm, const flame_decision *d)
{
    sm_exec *e = sm_exec_get(sm, d->executor_id);
    switch (d->kind) {
    case FLAME_DECISION_CREATE: {
        sm_node *n = sm_node_get(sm, d->node);
        sm_session *ss = sm_session_get(sm, d->session_id);
        if (n && ss && n->launcher->ready(n))
            sm_exec_create(sm, n, ss);
        break;
    }
    case FLAME_DECISION_BIND: {
        sm_session *ss = sm_session_get(sm, d->session_id);
        if (e && ss)
            sm_exec_bind(sm, e, ss);
        break;
    }
    case FLAME_DECISION_UNBIND:
        if (e)
            sm_exec_unbind(sm, e);
        break;
    case FLAME_DECISION_RELEASE:
        if (e)
            sm_exec_release(sm, e);
        break;
    }
}

static int64_t delay_release_ms(const fl_app *a)
{
    return a && a->spec->has_delay_release ? a->spec->delay_release * 1000 : 60000;
}

/* No executor manager here runs Wasm or CRI: such sessions get no
 * executor, and check_unfit tells them why (event 1003 naming the shim). */
static bool wasm_app(sm_t *sm, const char *name)
{
    fl_app *a = sm_app_get(sm, name);
    return a && (a->spec->shim == FLAME_SHIM_WASM || a->spec->shim == FLAME_SHIM_CRI);
}

/* How many executors of s's resreq all the nodes together could hold. */
static uint64_t gang_room(sm_t *sm, const fl_session *s)
{
    const flame_resreq *r = &s->resreq;
    uint64_t n = 0;
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        const flame_resreq *a = &((sm_node *)v)->node->allocatable;
        uint64_t f = UINT64_MAX;
        if (r->cpu)
            f = a->cpu / r->cpu;
        if (r->memory && a->memory / r->memory < f)
            f = a->memory / r->memory;
        if (r->gpu > 0 && (uint64_t)(a->gpu > 0 ? a->gpu : 0) / (uint64_t)r->gpu < f)
            f = (uint64_t)(a->gpu > 0 ? a->gpu : 0) / (uint64_t)r->gpu;
        n += f == UINT64_MAX ? s->batch_size : f;
    }
    return n;
}

/* Has the session ever been told no node fits it (event 1003)? */
static bool told_unfit(const fl_session *s)
{
    for (uint32_t i = s->events.n; i-- > 0;)
        if (fl_events_get(&s->events, i).code == FLAME_EVENT_UNSCHEDULABLE)
            return true;
    return false;
}

/* How long a session with work waits for a first node before it is told
 * there is none (an executor manager that restarts comes back sooner). */
#define NO_NODE_GRACE_MS 30000

/* A session with work and no executor that no registered node could ever
 * hold (its application's shim is one no executor manager runs, or its
 * resreq is larger than every node's allocatable), or that has
 * waited NO_NODE_GRACE_MS with no node registered at all, waits for ever:
 * it gets event 1003 saying so, once, and clients stop waiting on it
 * (client/). */
static void check_unfit(sm_t *sm, sm_session *ss, int64_t now)
{
    fl_session *s = ss->s;
    if (s->state != FLAME_SESSION_OPEN || !s->counts[FLAME_TASK_PENDING] || ss->held ||
        told_unfit(s))
        return;
    char *msg;
    if (wasm_app(sm, s->app)) {
        fl_app *a = sm_app_get(sm, s->app);
        msg = fl_sprintf("No node can run session %s: its application %s uses the %s shim, "
                         "which no executor manager of this cluster runs (they run Host, "
                         "Stdio and Rest services)",
                         s->id, s->app, flame_shim_str((flame_shim)a->spec->shim));
    } else if (s->batch_size > 1 && s->has_max && s->max_instances < s->batch_size) {
        msg = fl_sprintf("No node can run session %s: its batch_size (gang) is %u executors "
                         "and its max_instances only %u", s->id, s->batch_size,
                         s->max_instances);
    } else if (s->batch_size > 1 && sm->nodes.len && gang_room(sm, s) < s->batch_size) {
        msg = fl_sprintf("No node can run session %s: its batch_size (gang) is %u executors of "
                         "cpu=%llu, mem=%llu bytes, gpu=%d and all the nodes together hold "
                         "only %llu", s->id, s->batch_size, (unsigned long long)s->resreq.cpu,
                         (unsigned long long)s->resreq.memory, (int)s->resreq.gpu,
                         (unsigned long long)gang_room(sm, s));
    } else if (!sm->nodes.len) {
        if (now - s->ctime < NO_NODE_GRACE_MS || now - sm->nodes_seen_ms < NO_NODE_GRACE_MS)
            return;
        msg = fl_sprintf("No node can run session %s: no executor manager has registered a "
                         "node for %d s (start flame-executor-manager against this session "
                         "manager)", s->id, NO_NODE_GRACE_MS / 1000);
    } else {
        const flame_resreq *r = &s->resreq;
        size_t it = 0;
        void *v;
        const fl_node *big = NULL;
        while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
            const flame_resreq *a = &((sm_node *)v)->node->allocatable;
            if (a->cpu >= r->cpu && a->memory >= r->memory && a->gpu >= r->gpu)
                return;
            if (!big || a->cpu > big->allocatable.cpu)
                big = ((sm_node *)v)->node;
        }
        msg = fl_sprintf("No node can run session %s: it asks for cpu=%llu, mem=%llu bytes, "
                         "gpu=%d per executor, and the largest node, %s, has cpu=%llu, "
                         "mem=%llu bytes, gpu=%d",
                         s->id, (unsigned long long)r->cpu, (unsigned long long)r->memory,
                         (int)r->gpu, big->name, (unsigned long long)big->allocatable.cpu,
                         (unsigned long long)big->allocatable.memory, (int)big->allocatable.gpu);
    }
    sm_journal_session_bind(sm, ss);
    fl_events_add(&s->events, FLAME_EVENT_UNSCHEDULABLE, msg, now);
    fl_log(FL_LOG_WARN, "sm", "%s", msg);
    free(msg);
    fl_store_put_session(sm->store, s);
}

/* ---- gangs (Flame 0.7's SessionSpec.batch_size) ---------------------------
 * A session with batch_size k > 1 is bound only k executors at a time: the
 * scheduler is asked for a multiple of k (its work, min and max rounded),
 * and its BIND decisions of a cycle are applied only as far as they make
 * the executors it holds a multiple of k; the rest stay idle (free for any
 * session, asked for again next cycle), so a gang never holds part of
 * itself and two gangs cannot hold each other's half. */
static uint32_t round_up(uint64_t n, uint32_t k)
{
    uint64_t r = (n + k - 1) / k * k;
    return r > UINT32_MAX ? UINT32_MAX / k * k : (uint32_t)r;
}

static void gang_wants(flame_sched_session *x, uint32_t k)
{
    if (k <= 1)
        return;
    uint64_t work = (uint64_t)x->pending + x->running;
    if (work)
        x->pending = round_up(work, k) - x->running;
    x->min_instances = round_up(x->min_instances, k);
    if (x->has_max_instances)
        x->max_instances = x->max_instances / k * k;
    if (x->has_max_instances && !x->max_instances)
        x->schedulable = 0; /* check_unfit says why */
}

/* How many of this cycle's BIND decisions each gang session may take:
 * allowed[hint - 1]; UINT32_MAX for a session that is no gang. */
static uint32_t *gang_allowed(sm_t *sm, const flame_decision *d, size_t nd, size_t ns)
{
    uint32_t *held = fl_calloc(ns + 1, sizeof *held), *binds = fl_calloc(ns + 1, sizeof *binds);
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        if (e->sess && e->sess->sched_hint && e->sess->sched_hint <= ns &&
            (e->ex->state == FLAME_EXECUTOR_BINDING || e->ex->state == FLAME_EXECUTOR_BOUND))
            held[e->sess->sched_hint - 1]++;
    }
    for (size_t i = 0; i < nd; i++) {
        sm_session *ss = d[i].kind == FLAME_DECISION_BIND ? sm_session_get(sm, d[i].session_id)
                                                          : NULL;
        if (ss && ss->sched_hint && ss->sched_hint <= ns)
            binds[ss->sched_hint - 1]++;
    }
    for (sm_session *ss = sm->first; ss; ss = ss->next) {
        if (!ss->sched_hint || ss->sched_hint > ns)
            continue;
        uint32_t i = ss->sched_hint - 1, k = ss->s->batch_size;
        if (k <= 1) {
            binds[i] = UINT32_MAX;
            continue;
        }
        uint64_t total = (uint64_t)held[i] + binds[i], whole = total / k * k;
        binds[i] = whole > held[i] ? (uint32_t)(whole - held[i]) : 0;
    }
    free(held);
    return binds;
}

void sm_sched_run(sm_t *sm)
{
    sm->sched_dirty = false;
    sm->sched_soft = false;
    sm->sched_last_ns = fl_mono_ns();
    size_t nn = sm->nodes.len, na = sm->apps.len, ns = sm->sessions.len, ne = sm->execs.len;
    flame_sched_node *nodes = fl_calloc(nn + 1, sizeof *nodes);
    flame_sched_application *apps = fl_calloc(na + 1, sizeof *apps);
    flame_sched_session *sess = fl_calloc(ns + 1, sizeof *sess);
    flame_sched_executor *ex = fl_calloc(ne + 1, sizeof *ex);
    size_t it = 0, k = 0;
    void *v;
    while (fl_map_next(&sm->nodes, &it, NULL, &v)) {
        sm_node *n = v;
        n->sched_hint = (uint32_t)k + 1;
        nodes[k++] = (flame_sched_node){ n->node->name, n->node->allocatable,
                                         n->launcher->ready(n) };
    }
    nn = k;
    it = k = 0;
    while (fl_map_next(&sm->apps, &it, NULL, &v)) {
        fl_app *a = v;
        apps[k++] = (flame_sched_application){ a->name, a->spec->has_max_instances,
                                               a->spec->max_instances, delay_release_ms(a) };
    }
    k = 0;
    for (sm_session *ss = sm->first; ss; ss = ss->next)
        ss->held = false;
    it = 0;
    while (fl_map_next(&sm->execs, &it, NULL, &v))
        if (((sm_exec *)v)->sess)
            ((sm_exec *)v)->sess->held = true;
    for (sm_session *ss = sm->first; ss; ss = ss->next) {
        fl_session *s = ss->s;
        ss->sched_hint = 0;
        sm_session_suspend_check(sm, ss);
        /* closed sessions matter only while executors still hold them */
        if (s->state != FLAME_SESSION_OPEN && !s->counts[FLAME_TASK_RUNNING] && !ss->held)
            continue;
        ss->sched_hint = (uint32_t)k + 1;
        sess[k] = (flame_sched_session){
            s->id, s->app, s->priority, s->resreq, s->min_instances, s->has_max, s->max_instances,
            (uint32_t)s->counts[FLAME_TASK_PENDING], (uint32_t)s->counts[FLAME_TASK_RUNNING],
            s->state == FLAME_SESSION_OPEN, !s->unschedulable && !wasm_app(sm, s->app) };
        gang_wants(&sess[k++], s->batch_size);
    }
    ns = k;
    it = k = 0;
    const char *last_node = NULL;
    uint32_t last_hint = 0;
    while (fl_map_next(&sm->execs, &it, NULL, &v)) {
        sm_exec *e = v;
        const char *sid = e->sess ? e->sess->s->id
                          : e->ex->state == FLAME_EXECUTOR_VOID ? e->ex->intended : NULL;
        /* executors sit on few nodes: look a node up once per run of them */
        if (!last_node || strcmp(last_node, e->ex->node) != 0) {
            sm_node *n = sm_node_get(sm, e->ex->node);
            last_node = e->ex->node;
            last_hint = n ? n->sched_hint : 0;
        }
        ex[k++] = (flame_sched_executor){ e->ex->id, e->ex->node, e->ex->resreq,
                                          (flame_executor_state)e->ex->state, sid, e->ex->app,
                                          e->ex->idle_since, last_hint,
                                          e->sess ? e->sess->sched_hint : 0 };
    }
    flame_sched_snapshot snap = FLAME_SCHED_SNAPSHOT_INIT;
    snap.nodes = nodes;
    snap.nodes_len = nn;
    snap.applications = apps;
    snap.applications_len = na;
    snap.sessions = sess;
    snap.sessions_len = ns;
    snap.executors = ex;
    snap.executors_len = k;
    const flame_decision *d;
    size_t nd;
    if (flame_scheduler_cycle(sm->sched, &snap, fl_now_ms(), &d, &nd) == FLAME_OK) {
        uint32_t *allowed = gang_allowed(sm, d, nd, ns);
        /* decisions point into the snapshot: copy the strings first, since
         * applying one may free an executor */
        for (size_t i = 0; i < nd; i++) {
            flame_decision x = d[i];
            if (x.kind == FLAME_DECISION_BIND) {
                sm_session *ss = sm_session_get(sm, x.session_id);
                uint32_t *left = ss && ss->sched_hint && ss->sched_hint <= ns
                                     ? &allowed[ss->sched_hint - 1] : NULL;
                if (left && *left != UINT32_MAX) {
                    if (!*left)
                        continue; /* the rest of its gang is not there yet */
                    (*left)--;
                }
            }
            char *node = fl_strdup(x.node), *exid = fl_strdup(x.executor_id),
                 *sid = fl_strdup(x.session_id);
            x.node = node;
            x.executor_id = exid;
            x.session_id = sid;
            apply(sm, &x);
            free(node);
            free(exid);
            free(sid);
        }
        free(allowed);
    }
    free(nodes);
    free(apps);
    free(sess);
    free(ex);
    int64_t now = fl_now_ms();
    if (sm->nodes.len || !sm->nodes_seen_ms)
        sm->nodes_seen_ms = now; /* the first cycle: a start counts as a node seen */
    for (sm_session *ss = sm->first; ss; ss = ss->next)
        check_unfit(sm, ss, now);
    sm_provide(sm);
    sm_metrics_cycle(fl_mono_ns() - sm->sched_last_ns);
}
