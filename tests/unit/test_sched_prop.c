/* Property tests of the scheduler (scheduler.h) over seeded random
 * snapshots: the policies written in the header, checked on every cycle of
 * a small simulated cluster that applies the decisions until it settles.
 *
 * Seeds 1..1000 run by default; FLAME_PROP_SEEDS=N runs seeds 1..N, and
 * FLAME_PROP_SEED=S only seed S (a failure prints its seed; add
 * FLAME_PROP_VERBOSE=1 to print each cycle of it). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/scheduler.h>

#define GB (1ULL << 30)
#define NOW 1000000
#define MAXN 6
#define MAXA 4
#define MAXS 10
#define MAXE 256
#define MAXIDS 8192
#define SETTLE_CYCLES 12

/* A cluster: the snapshot's arrays and the strings they point to. */
typedef struct world {
    flame_sched_node nodes[MAXN];
    flame_sched_application apps[MAXA];
    flame_sched_session sess[MAXS];
    flame_sched_executor ex[MAXE];
    size_t nn, na, ns, ne;
    char names[MAXN + MAXA + MAXS + 2][24];
    char ids[MAXIDS][24];             /* executor ids, never reused */
    size_t nids;
} world;

static uint64_t rng;

static uint32_t rnd(uint32_t n) /* splitmix64, uniform enough in [0, n) */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

static const char *new_id(world *w)
{
    ck_assert_uint_lt(w->nids, MAXIDS);
    snprintf(w->ids[w->nids], sizeof w->ids[0], "e%zu", w->nids);
    return w->ids[w->nids++];
}

static const char *name(world *w, size_t slot, char prefix, size_t i)
{
    snprintf(w->names[slot], sizeof w->names[0], "%c%zu", prefix, i);
    return w->names[slot];
}

static int fits(const flame_resreq *room, const flame_resreq *r)
{
    return room->cpu >= r->cpu && room->memory >= r->memory && room->gpu >= r->gpu;
}

static void sub(flame_resreq *room, const flame_resreq *r) /* saturating */
{
    room->cpu = room->cpu > r->cpu ? room->cpu - r->cpu : 0;
    room->memory = room->memory > r->memory ? room->memory - r->memory : 0;
    room->gpu = room->gpu > r->gpu ? room->gpu - r->gpu : 0;
}

static int live(const flame_sched_executor *e)
{
    return e->state != FLAME_EXECUTOR_RELEASED && e->state != FLAME_EXECUTOR_UNKNOWN;
}

static int node_of(const world *w, const char *n)
{
    for (size_t i = 0; n && i < w->nn; i++)
        if (!strcmp(w->nodes[i].name, n))
            return (int)i;
    return -1;
}

static int sess_of(const world *w, const char *id)
{
    for (size_t i = 0; id && i < w->ns; i++)
        if (!strcmp(w->sess[i].id, id))
            return (int)i;
    return -1;
}

static int app_of(const world *w, const char *a)
{
    for (size_t i = 0; a && i < w->na; i++)
        if (!strcmp(w->apps[i].name, a))
            return (int)i;
    return -1;
}

static int exec_of(const world *w, const char *id)
{
    for (size_t i = 0; id && i < w->ne; i++)
        if (!strcmp(w->ex[i].id, id))
            return (int)i;
    return -1;
}

/* Free room of node i: allocatable less its live executors. */
static flame_resreq room_of(const world *w, size_t i)
{
    flame_resreq r = w->nodes[i].allocatable;
    for (size_t k = 0; k < w->ne; k++)
        if (live(&w->ex[k]) && !strcmp(w->ex[k].node, w->nodes[i].name))
            sub(&r, &w->ex[k].resreq);
    return r;
}

static void generate(world *w, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    rng = seed;
    size_t slot = 0;
    w->nn = 1 + rnd(MAXN - 1);
    for (size_t i = 0; i < w->nn; i++) {
        uint64_t cpu = 1 + rnd(10);
        w->nodes[i] = (flame_sched_node){ name(w, slot++, 'n', i),
                                          { cpu, cpu * (1 + rnd(4)) * GB, rnd(4) ? 0 : (int32_t)rnd(3) },
                                          rnd(6) != 0 };
    }
    w->na = 1 + rnd(MAXA);
    static const int64_t delays[] = { 0, 1000, 60000 };
    for (size_t i = 0; i < w->na; i++)
        w->apps[i] = (flame_sched_application){ name(w, slot++, 'a', i), rnd(3) == 0, 1 + rnd(6),
                                                delays[rnd(3)] };
    const char *unlisted_app = name(w, slot++, 'u', 0);
    w->ns = rnd(MAXS + 1);
    for (size_t i = 0; i < w->ns; i++) {
        flame_sched_session *s = &w->sess[i];
        *s = (flame_sched_session){ name(w, slot++, 's', i),
                                    rnd(10) ? w->apps[rnd((uint32_t)w->na)].name : unlisted_app,
                                    rnd(3),
                                    { 1 + rnd(3), (1 + rnd(4)) * GB, rnd(5) ? 0 : 1 },
                                    rnd(4) ? 0 : 1 + rnd(2),
                                    rnd(3) == 0,
                                    1 + rnd(5),
                                    rnd(12),
                                    0,
                                    rnd(10) != 0,
                                    rnd(10) != 0 };
    }
    const char *gone = name(w, slot++, 'g', 0); /* a session not listed */
    static const flame_executor_state states[] = {
        FLAME_EXECUTOR_VOID,      FLAME_EXECUTOR_IDLE,      FLAME_EXECUTOR_IDLE,
        FLAME_EXECUTOR_BINDING,   FLAME_EXECUTOR_BOUND,     FLAME_EXECUTOR_BOUND,
        FLAME_EXECUTOR_BOUND,     FLAME_EXECUTOR_UNBINDING, FLAME_EXECUTOR_RELEASING,
        FLAME_EXECUTOR_RELEASED,
    };
    size_t want = rnd(24);
    for (size_t k = 0; k < want && w->ne < MAXE; k++) {
        flame_sched_executor e = { 0 };
        e.id = new_id(w);
        size_t n = rnd((uint32_t)w->nn);
        e.node = w->nodes[n].name;
        e.state = states[rnd(sizeof states / sizeof *states)];
        int s = w->ns ? (int)rnd((uint32_t)w->ns) : -1;
        int with_session = e.state == FLAME_EXECUTOR_BINDING || e.state == FLAME_EXECUTOR_BOUND ||
                           (e.state == FLAME_EXECUTOR_VOID && rnd(2));
        if (with_session && s < 0)
            e.state = FLAME_EXECUTOR_IDLE, with_session = 0;
        if (with_session) {
            e.session_id = rnd(20) ? w->sess[s].id : gone;
            e.application = w->sess[s].application;
            e.resreq = w->sess[s].resreq;
        } else {
            e.application = rnd(8) ? w->apps[rnd((uint32_t)w->na)].name : NULL;
            e.resreq = (flame_resreq){ 1 + rnd(3), (1 + rnd(4)) * GB, 0 };
        }
        e.idle_since_ms = NOW - (int64_t)rnd(120000);
        flame_resreq room = room_of(w, n);
        if (live(&e) && !fits(&room, &e.resreq))
            continue; /* nodes are never over-committed here */
        w->ex[w->ne++] = e;
    }
    /* running tasks only where executors are bound */
    for (size_t k = 0; k < w->ne; k++) {
        int s = sess_of(w, w->ex[k].session_id);
        if (s >= 0 && w->ex[k].state == FLAME_EXECUTOR_BOUND && rnd(2))
            w->sess[s].running++;
    }
    /* hints, right or missing */
    for (size_t k = 0; k < w->ne; k++) {
        if (rnd(2))
            continue;
        int n = node_of(w, w->ex[k].node), s = sess_of(w, w->ex[k].session_id);
        w->ex[k].node_hint = n >= 0 ? (uint32_t)n + 1 : 0;
        w->ex[k].session_hint = s >= 0 ? (uint32_t)s + 1 : 0;
    }
}

/* ---- one cycle ----------------------------------------------------------- */

typedef struct decision {
    flame_decision_kind kind;
    char node[24], exec[24], sess[24];
} decision;

typedef struct result {
    decision d[4 * MAXE];
    size_t n;
} result;

static flame_scheduler *sch;

static void copy_str(char *to, size_t size, const char *from)
{
    snprintf(to, size, "%s", from ? from : "");
}

static void cycle_with(flame_scheduler *with, const world *w, result *r)
{
    flame_sched_snapshot snap = FLAME_SCHED_SNAPSHOT_INIT;
    snap.nodes = w->nodes;
    snap.nodes_len = w->nn;
    snap.applications = w->apps;
    snap.applications_len = w->na;
    snap.sessions = w->sess;
    snap.sessions_len = w->ns;
    snap.executors = w->ex;
    snap.executors_len = w->ne;
    const flame_decision *d;
    size_t n;
    ck_assert_int_eq(flame_scheduler_cycle(with, &snap, NOW, &d, &n), FLAME_OK);
    ck_assert_uint_le(n, sizeof r->d / sizeof *r->d);
    for (size_t i = 0; i < n; i++) {
        memset(&r->d[i], 0, sizeof r->d[i]);
        r->d[i].kind = d[i].kind;
        copy_str(r->d[i].node, sizeof r->d[i].node, d[i].node);
        copy_str(r->d[i].exec, sizeof r->d[i].exec, d[i].executor_id);
        copy_str(r->d[i].sess, sizeof r->d[i].sess, d[i].session_id);
    }
    r->n = n;
}

static void cycle(const world *w, result *r)
{
    cycle_with(sch, w, r);
}

/* What a session wants: clamp(pending + running, min, max), 0 when closed. */
static uint32_t desired(const flame_sched_session *s)
{
    if (!s->open || !s->schedulable)
        return 0;
    uint32_t want = s->pending + s->running;
    if (want < s->min_instances)
        want = s->min_instances;
    if (s->has_max_instances && want > s->max_instances)
        want = s->max_instances;
    return want;
}

static int holds(const flame_sched_executor *e)
{
    return e->state == FLAME_EXECUTOR_BINDING || e->state == FLAME_EXECUTOR_BOUND ||
           (e->state == FLAME_EXECUTOR_VOID && e->session_id);
}

/* Executors held by session s (-1: of all sessions of application a). */
static uint32_t held(const world *w, int s, int a)
{
    uint32_t k = 0;
    for (size_t i = 0; i < w->ne; i++) {
        int x = holds(&w->ex[i]) ? sess_of(w, w->ex[i].session_id) : -1;
        if (x >= 0 && (s >= 0 ? x == s : app_of(w, w->sess[x].application) == a))
            k++;
    }
    return k;
}

static int app_full(const world *w, int s)
{
    int a = app_of(w, w->sess[s].application);
    return a >= 0 && w->apps[a].has_max_instances && held(w, -1, a) >= w->apps[a].max_instances;
}

/* Applies the decisions as a cluster would, everything done at once. */
static void apply(world *w, const result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const decision *d = &r->d[i];
        int x = exec_of(w, d->exec), s = sess_of(w, d->sess);
        switch (d->kind) {
        case FLAME_DECISION_CREATE:
            ck_assert_uint_lt(w->ne, MAXE);
            w->ex[w->ne++] = (flame_sched_executor){ new_id(w), w->nodes[node_of(w, d->node)].name,
                                                     w->sess[s].resreq, FLAME_EXECUTOR_BOUND,
                                                     w->sess[s].id, w->sess[s].application, 0 };
            break;
        case FLAME_DECISION_BIND:
            w->ex[x].state = FLAME_EXECUTOR_BOUND;
            w->ex[x].session_id = w->sess[s].id;
            w->ex[x].application = w->sess[s].application;
            break;
        case FLAME_DECISION_UNBIND:
            w->ex[x].state = FLAME_EXECUTOR_IDLE;
            w->ex[x].session_id = NULL;
            w->ex[x].idle_since_ms = NOW;
            break;
        case FLAME_DECISION_RELEASE:
            w->ex[x].state = FLAME_EXECUTOR_RELEASED;
            break;
        }
    }
    /* a task runs only on a bound executor: the others go back to pending */
    for (size_t s = 0; s < w->ns; s++) {
        uint32_t bound = 0;
        for (size_t i = 0; i < w->ne; i++)
            bound += w->ex[i].state == FLAME_EXECUTOR_BOUND && w->ex[i].session_id &&
                     !strcmp(w->ex[i].session_id, w->sess[s].id);
        if (w->sess[s].running > bound) {
            w->sess[s].pending += w->sess[s].running - bound;
            w->sess[s].running = bound;
        }
    }
}

/* ---- properties of one cycle ------------------------------------------------ */

static uint64_t seed;

#define PROP(cond, fmt, ...)                                                             \
    ck_assert_msg(cond, "seed %llu (rerun with FLAME_PROP_SEED=%llu): " fmt,             \
                  (unsigned long long)seed, (unsigned long long)seed, ##__VA_ARGS__)

/* Each decision refers to what it may act on; no executor twice. */
static void check_well_formed(const world *w, const result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const decision *d = &r->d[i];
        int x = exec_of(w, d->exec), s = sess_of(w, d->sess), n = node_of(w, d->node);
        switch (d->kind) {
        case FLAME_DECISION_CREATE:
            PROP(n >= 0 && w->nodes[n].ready, "CREATE on node '%s' (unknown or not ready)", d->node);
            PROP(s >= 0 && desired(&w->sess[s]) > 0, "CREATE for session '%s' that wants none", d->sess);
            break;
        case FLAME_DECISION_BIND:
            PROP(x >= 0 && w->ex[x].state == FLAME_EXECUTOR_IDLE, "BIND of '%s', not idle", d->exec);
            PROP(s >= 0 && desired(&w->sess[s]) > 0, "BIND to session '%s' that wants none", d->sess);
            PROP(fits(&w->ex[x].resreq, &w->sess[s].resreq), "BIND of '%s' too small for '%s'",
                 d->exec, d->sess);
            break;
        case FLAME_DECISION_UNBIND:
            PROP(x >= 0 && (w->ex[x].state == FLAME_EXECUTOR_BOUND ||
                            w->ex[x].state == FLAME_EXECUTOR_BINDING),
                 "UNBIND of '%s', not bound", d->exec);
            break;
        case FLAME_DECISION_RELEASE:
            PROP(x >= 0 && w->ex[x].state == FLAME_EXECUTOR_IDLE, "RELEASE of '%s', not idle", d->exec);
            break;
        default:
            PROP(0, "decision of kind %d", (int)d->kind);
        }
        if (d->kind != FLAME_DECISION_CREATE)
            for (size_t j = 0; j < i; j++)
                PROP(strcmp(r->d[j].exec, d->exec) != 0, "executor '%s' decided twice", d->exec);
    }
}

/* After the decisions, each node still holds its executors. */
static void check_fits(const world *after)
{
    for (size_t i = 0; i < after->nn; i++) {
        flame_resreq used = { 0, 0, 0 };
        for (size_t k = 0; k < after->ne; k++)
            if (live(&after->ex[k]) && !strcmp(after->ex[k].node, after->nodes[i].name)) {
                used.cpu += after->ex[k].resreq.cpu;
                used.memory += after->ex[k].resreq.memory;
                used.gpu += after->ex[k].resreq.gpu;
            }
        PROP(fits(&after->nodes[i].allocatable, &used), "node '%s' over-committed: %llu cpu of %llu",
             after->nodes[i].name, (unsigned long long)used.cpu,
             (unsigned long long)after->nodes[i].allocatable.cpu);
    }
}

/* A session or application that grew did not grow past its limits. */
static void check_limits(const world *before, const world *after)
{
    for (size_t s = 0; s < after->ns; s++) {
        uint32_t b = held(before, (int)s, -1), a = held(after, (int)s, -1);
        const flame_sched_session *x = &after->sess[s];
        if (a <= b)
            continue;
        PROP(a <= desired(&before->sess[s]), "session '%s' got %u executors, wants %u", x->id, a,
             desired(&before->sess[s]));
        PROP(!x->has_max_instances || a <= x->max_instances, "session '%s' has %u > max %u", x->id, a,
             x->max_instances);
    }
    for (size_t i = 0; i < after->na; i++) {
        uint32_t b = held(before, -1, (int)i), a = held(after, -1, (int)i);
        PROP(a <= b || !after->apps[i].has_max_instances || a <= after->apps[i].max_instances,
             "application '%s' has %u > max %u", after->apps[i].name, a, after->apps[i].max_instances);
    }
}

/* Was session s's application full at some point of the cycle: before
 * it, after it, or before the executors its sessions gave up? */
static int app_was_full(const world *before, const world *after, const result *r, int s)
{
    int a = app_of(after, after->sess[s].application);
    if (a < 0 || !after->apps[a].has_max_instances)
        return 0;
    uint32_t held_then = held(after, -1, a);
    for (size_t i = 0; i < r->n; i++) {
        int x = exec_of(before, r->d[i].exec), v = x >= 0 ? sess_of(before, before->ex[x].session_id) : -1;
        if (r->d[i].kind == FLAME_DECISION_UNBIND && v >= 0 &&
            app_of(before, before->sess[v].application) == a)
            held_then++;
    }
    return app_full(before, s) || held_then >= after->apps[a].max_instances;
}

/* A session below its min_instances is left so only when no ready node
 * has room for one more of its executors (or its application is full:
 * then it may only have taken one from a sibling, for the next cycle).
 * A node where an executor was unbound keeps its room for the session
 * that reclaimed it. */
static int unbound_on(const world *before, const result *r, const char *node)
{
    for (size_t i = 0; i < r->n; i++) {
        int x = exec_of(before, r->d[i].exec);
        if (r->d[i].kind == FLAME_DECISION_UNBIND && x >= 0 && !strcmp(before->ex[x].node, node))
            return 1;
    }
    return 0;
}

static void check_min_instances(const world *before, const world *after, const result *r)
{
    for (size_t s = 0; s < after->ns; s++) {
        const flame_sched_session *x = &after->sess[s];
        uint32_t min = x->min_instances;
        if (x->has_max_instances && x->max_instances < min)
            min = x->max_instances;
        if (!x->open || !x->schedulable || held(after, (int)s, -1) >= min ||
            app_was_full(before, after, r, (int)s))
            continue;
        for (size_t n = 0; n < after->nn; n++) {
            if (unbound_on(before, r, after->nodes[n].name))
                continue;
            flame_resreq room = room_of(after, n);
            /* idle executors released at the end of the cycle leave room
             * for the next one */
            for (size_t k = 0; k < after->ne; k++)
                if (k < before->ne && after->ex[k].state == FLAME_EXECUTOR_RELEASED &&
                    before->ex[k].state == FLAME_EXECUTOR_IDLE &&
                    !strcmp(after->ex[k].node, after->nodes[n].name))
                    sub(&room, &after->ex[k].resreq);
            PROP(!after->nodes[n].ready || !fits(&room, &x->resreq),
                 "session '%s' below min_instances %u while node '%s' has room", x->id, min,
                 after->nodes[n].name);
        }
    }
}

/* Room given to a session is room no session of a higher tier could have
 * used: none of them is left wanting with a resreq that fits in it. */
static void check_tiers(const world *before, const world *after, const result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const decision *d = &r->d[i];
        if (d->kind != FLAME_DECISION_CREATE && d->kind != FLAME_DECISION_BIND)
            continue;
        int low = sess_of(before, d->sess), e = exec_of(before, d->exec);
        flame_resreq given = e < 0 ? before->sess[low].resreq : before->ex[e].resreq;
        /* an idle executor of another application serves only after it is
         * released and one is created in its room: on a ready node */
        int n = e < 0 ? node_of(before, d->node) : node_of(before, before->ex[e].node);
        for (size_t h = 0; h < after->ns; h++) {
            const flame_sched_session *x = &after->sess[h];
            if (e >= 0 && strcmp(x->application, before->ex[e].application ? before->ex[e].application : "") &&
                (n < 0 || !before->nodes[n].ready))
                continue;
            if (x->priority <= before->sess[low].priority || !fits(&given, &x->resreq) ||
                held(after, (int)h, -1) >= desired(&before->sess[h]) ||
                app_was_full(before, after, r, (int)h))
                continue;
            PROP(0, "session '%s' (priority %u) got room while '%s' (priority %u) wants more",
                 d->sess, before->sess[low].priority, x->id, x->priority);
        }
    }
}

static double unit_share(const world *w, int s)
{
    flame_resreq total = { 0, 0, 0 };
    for (size_t i = 0; i < w->nn; i++)
        if (w->nodes[i].ready) {
            total.cpu += w->nodes[i].allocatable.cpu;
            total.memory += w->nodes[i].allocatable.memory;
            total.gpu += w->nodes[i].allocatable.gpu;
        }
    const flame_resreq *r = &w->sess[s].resreq;
    double share = 0, t;
    if (total.cpu && (t = (double)r->cpu / (double)total.cpu) > share)
        share = t;
    if (total.memory && (t = (double)r->memory / (double)total.memory) > share)
        share = t;
    if (total.gpu && (t = (double)r->gpu / (double)total.gpu) > share)
        share = t;
    return share;
}

/* How many executors session v could give to s: down to its
 * min_instances, and within s's tier only while its share stays at or
 * above s's share with one. */
static uint32_t could_give(const world *w, int v, int s)
{
    const flame_sched_session *x = &w->sess[v];
    uint32_t h = held(w, v, -1), k = 0;
    if (v == s || x->priority > w->sess[s].priority)
        return 0;
    if (app_full(w, s) && strcmp(x->application, w->sess[s].application) != 0)
        return 0; /* would not let s grow */
    while (h - k > x->min_instances && h - k > 0 &&
           (x->priority < w->sess[s].priority || h - k > desired(x) ||
            unit_share(w, v) * (h - k - 1) >= unit_share(w, s)))
        k++;
    return k;
}

/* Settled: a session with pending tasks and no executor is not left so
 * while a ready node could hold it in its free room, its idle executors
 * and executors of sessions of its tier (or lower) that hold more than
 * their share (one moved would leave them at or above its share). */
static void check_no_starvation(const world *w)
{
    for (size_t s = 0; s < w->ns; s++) {
        const flame_sched_session *x = &w->sess[s];
        if (!x->pending || !desired(x) || held(w, (int)s, -1))
            continue;
        for (size_t n = 0; n < w->nn; n++) {
            if (!w->nodes[n].ready || !fits(&w->nodes[n].allocatable, &x->resreq))
                continue;
            flame_resreq room = room_of(w, n);
            uint32_t given = 0;
            for (size_t i = 0; i < w->ne; i++)
                if (w->ex[i].state == FLAME_EXECUTOR_IDLE && !strcmp(w->ex[i].node, w->nodes[n].name)) {
                    room.cpu += w->ex[i].resreq.cpu;
                    room.memory += w->ex[i].resreq.memory;
                    room.gpu += w->ex[i].resreq.gpu;
                }
            for (size_t v = 0; v < w->ns; v++) {
                /* its k largest executors there */
                uint32_t k = could_give(w, (int)v, (int)s);
                int used[MAXE] = { 0 };
                for (; k; k--) {
                    int big = -1;
                    for (size_t i = 0; i < w->ne; i++) {
                        const flame_sched_executor *e = &w->ex[i];
                        if (used[i] || e->state != FLAME_EXECUTOR_BOUND || !e->session_id ||
                            strcmp(e->session_id, w->sess[v].id) || strcmp(e->node, w->nodes[n].name))
                            continue;
                        if (big < 0 || e->resreq.cpu > w->ex[big].resreq.cpu ||
                            (e->resreq.cpu == w->ex[big].resreq.cpu &&
                             e->resreq.memory > w->ex[big].resreq.memory))
                            big = (int)i;
                    }
                    if (big < 0)
                        break;
                    used[big] = 1;
                    room.cpu += w->ex[big].resreq.cpu;
                    room.memory += w->ex[big].resreq.memory;
                    room.gpu += w->ex[big].resreq.gpu;
                    given++;
                }
            }
            PROP(!fits(&room, &x->resreq) || (app_full(w, (int)s) && !given),
                 "session '%s' starves at 0 executors while node '%s' could hold it", x->id,
                 w->nodes[n].name);
        }
    }
}

/* ---- driving ------------------------------------------------------------- */

static uint64_t nseeds(void)
{
    const char *one = getenv("FLAME_PROP_SEED"), *n = getenv("FLAME_PROP_SEEDS");
    if (one)
        return 1;
    return n ? strtoull(n, NULL, 10) : 1000;
}

static uint64_t seed_at(uint64_t i)
{
    const char *one = getenv("FLAME_PROP_SEED");
    return one ? strtoull(one, NULL, 10) : i + 1;
}

static const char *kind_str[] = { "?", "CREATE", "BIND", "UNBIND", "RELEASE" };

/* FLAME_PROP_SEED=S FLAME_PROP_VERBOSE=1 prints each cycle of seed S. */
static void dump(const world *w, const result *r, int c)
{
    if (!getenv("FLAME_PROP_VERBOSE"))
        return;
    printf("-- cycle %d\n", c);
    for (size_t i = 0; i < w->nn; i++)
        printf("node %s cpu %llu mem %lluG gpu %d ready %d\n", w->nodes[i].name,
               (unsigned long long)w->nodes[i].allocatable.cpu,
               (unsigned long long)(w->nodes[i].allocatable.memory / GB), w->nodes[i].allocatable.gpu,
               w->nodes[i].ready);
    for (size_t i = 0; i < w->na; i++)
        printf("app %s max %d/%u delay %lld\n", w->apps[i].name, w->apps[i].has_max_instances,
               w->apps[i].max_instances, (long long)w->apps[i].delay_release_ms);
    for (size_t i = 0; i < w->ns; i++) {
        const flame_sched_session *x = &w->sess[i];
        printf("session %s app %s prio %u req %llu/%lluG/%d min %u max %d/%u pend %u run %u open %d sched %d "
               "held %u\n",
               x->id, x->application, x->priority, (unsigned long long)x->resreq.cpu,
               (unsigned long long)(x->resreq.memory / GB), x->resreq.gpu, x->min_instances,
               x->has_max_instances, x->max_instances, x->pending, x->running, x->open, x->schedulable,
               held(w, (int)i, -1));
    }
    for (size_t i = 0; i < w->ne; i++) {
        const flame_sched_executor *e = &w->ex[i];
        printf("exec %s node %s req %llu/%lluG/%d state %d sess %s app %s idle %lld\n", e->id, e->node,
               (unsigned long long)e->resreq.cpu, (unsigned long long)(e->resreq.memory / GB),
               e->resreq.gpu, (int)e->state, e->session_id ? e->session_id : "-",
               e->application ? e->application : "-", (long long)(NOW - e->idle_since_ms));
    }
    for (size_t i = 0; i < r->n; i++)
        printf("=> %s node %s exec %s sess %s\n", kind_str[r->d[i].kind], r->d[i].node, r->d[i].exec,
               r->d[i].sess);
}

/* Runs cycles on w, applying each, until a cycle decides nothing; checks
 * the per-cycle properties on the way. Returns the cycles it took. */
static int settle(world *w)
{
    static world before;
    static result r;
    for (int c = 1; c <= SETTLE_CYCLES; c++) {
        cycle(w, &r);
        dump(w, &r, c);
        if (!r.n)
            return c;
        before = *w;
        check_well_formed(&before, &r);
        apply(w, &r);
        check_fits(w);
        check_limits(&before, w);
        check_min_instances(&before, w, &r);
        check_tiers(&before, w, &r);
    }
    return SETTLE_CYCLES + 1;
}

static void setup(void)
{
    ck_assert_int_eq(flame_scheduler_new(&sch), FLAME_OK);
}

static void teardown(void)
{
    flame_scheduler_free(sch);
}

static world w;

START_TEST(cycles_keep_the_policies_and_settle)
{
    int worst = 0;
    for (uint64_t i = 0; i < nseeds(); i++) {
        seed = seed_at(i);
        generate(&w, seed);
        int cycles = settle(&w);
        PROP(cycles <= SETTLE_CYCLES, "still deciding after %d cycles", SETTLE_CYCLES);
        check_no_starvation(&w);
        if (cycles > worst)
            worst = cycles;
    }
    printf("scheduler properties: %llu seeds, settled within %d cycles\n",
           (unsigned long long)nseeds(), worst);
}
END_TEST

static int cmp_decision(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(decision));
}

/* Sorted, so that two results compare as sets. */
static void normalize(result *r)
{
    qsort(r->d, r->n, sizeof *r->d, cmp_decision);
}

static void shuffle(void *base, size_t n, size_t size)
{
    unsigned char tmp[sizeof(flame_sched_executor) + sizeof(flame_sched_session)];
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd((uint32_t)i);
        unsigned char *a = (unsigned char *)base + (i - 1) * size, *b = (unsigned char *)base + j * size;
        memcpy(tmp, a, size);
        memcpy(a, b, size);
        memcpy(b, tmp, size);
    }
}

START_TEST(order_of_inputs_does_not_matter)
{
    static world shuffled;
    static result a, b;
    for (uint64_t i = 0; i < nseeds(); i++) {
        seed = seed_at(i);
        generate(&w, seed);
        for (int round = 0; round < 3; round++) {
            memset(&a, 0, sizeof a);
            memset(&b, 0, sizeof b);
            cycle(&w, &a);
            shuffled = w;
            for (size_t k = 0; k < shuffled.ne; k++) /* hints would be wrong */
                shuffled.ex[k].node_hint = shuffled.ex[k].session_hint = 0;
            shuffle(shuffled.nodes, shuffled.nn, sizeof *shuffled.nodes);
            shuffle(shuffled.apps, shuffled.na, sizeof *shuffled.apps);
            shuffle(shuffled.sess, shuffled.ns, sizeof *shuffled.sess);
            shuffle(shuffled.ex, shuffled.ne, sizeof *shuffled.ex);
            cycle(&shuffled, &b);
            dump(&w, &a, round);
            dump(&shuffled, &b, round);
            normalize(&a);
            normalize(&b);
            PROP(a.n == b.n && !memcmp(a.d, b.d, a.n * sizeof *a.d),
                 "cycle %d: %zu decisions, %zu after shuffling the inputs", round, a.n, b.n);
            if (!a.n)
                break;
            apply(&w, &a);
        }
    }
}
END_TEST

/* A scheduler keeps orders from one cycle to the next (sched/order.c):
 * on every cycle, with the world changed in between (decisions applied,
 * tasks come and go, executors move in the arrays, a session goes), it
 * decides exactly as a new scheduler does, in the same order. */
START_TEST(kept_state_decides_as_a_fresh_scheduler)
{
    static result a, b;
    for (uint64_t i = 0; i < nseeds(); i++) {
        seed = seed_at(i);
        generate(&w, seed);
        for (int round = 0; round < SETTLE_CYCLES; round++) {
            flame_scheduler *fresh;
            ck_assert_int_eq(flame_scheduler_new(&fresh), FLAME_OK);
            cycle_with(sch, &w, &a);
            cycle_with(fresh, &w, &b);
            flame_scheduler_free(fresh);
            PROP(a.n == b.n && !memcmp(a.d, b.d, a.n * sizeof *a.d),
                 "cycle %d: %zu decisions with the kept state, %zu from a new scheduler", round,
                 a.n, b.n);
            apply(&w, &a);
            switch (rnd(4)) {
            case 0: /* tasks come */
                if (w.ns)
                    w.sess[rnd((uint32_t)w.ns)].pending += rnd(3);
                break;
            case 1: /* two executors swap places in the array */
                if (w.ne > 1) {
                    size_t x = rnd((uint32_t)w.ne), y = rnd((uint32_t)w.ne);
                    flame_sched_executor t = w.ex[x];
                    w.ex[x] = w.ex[y];
                    w.ex[y] = t;
                    w.ex[x].node_hint = w.ex[x].session_hint = 0;
                    w.ex[y].node_hint = w.ex[y].session_hint = 0;
                }
                break;
            case 2: /* the last session goes */
                if (w.ns > 1)
                    w.ns--;
                break;
            default:
                break;
            }
        }
    }
}
END_TEST

int main(void)
{
    Suite *su = suite_create("scheduler properties");
    TCase *tc = tcase_create("properties");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cycles_keep_the_policies_and_settle);
    tcase_add_test(tc, order_of_inputs_does_not_matter);
    tcase_add_test(tc, kept_state_decides_as_a_fresh_scheduler);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
