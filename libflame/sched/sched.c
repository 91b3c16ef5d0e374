/* The scheduler: one pure function from a snapshot to decisions.
 * See include/flame/scheduler.h for the policies. */
#include <stdlib.h>
#include <string.h>

#include "flame/scheduler.h"
#include "util/util.h"

typedef struct s_node {
    const flame_sched_node *n;
    flame_resreq free;
} s_node;

typedef struct s_app {
    const flame_sched_application *a; /* NULL: not listed (defaults) */
    uint32_t alloc;                   /* executors held by its sessions */
} s_app;

typedef struct s_sess {
    const flame_sched_session *s;
    int app;                          /* index into apps, -1 when unknown */
    uint32_t alloc;                   /* VOID-for-it + BINDING + BOUND executors */
    uint32_t desired;
    double unit_share;                /* dominant share of one executor */
    int starving;                     /* could not be served this cycle */
    int reclaimed;                    /* took one by unbinding this cycle */
} s_sess;

typedef struct s_exec {
    const flame_sched_executor *e;
    int node;                         /* -1 when unknown */
    int sess;                         /* -1 when none */
    int app;                          /* -1 when none */
    int taken;                        /* decided on this cycle */
} s_exec;

struct flame_scheduler {
    flame_decision *dec;
    size_t ndec, capdec;
};

flame_status flame_scheduler_new(flame_scheduler **out)
{
    if (!out)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_scheduler_new: out is NULL");
    *out = fl_calloc(1, sizeof **out);
    return FLAME_OK;
}

void flame_scheduler_free(flame_scheduler *s)
{
    if (!s)
        return;
    free(s->dec);
    free(s);
}

static void decide(flame_scheduler *s, flame_decision_kind kind, const char *node,
                   const char *exec, const char *sess)
{
    if (s->ndec == s->capdec) {
        s->capdec = s->capdec ? s->capdec * 2 : 64;
        s->dec = fl_realloc(s->dec, s->capdec * sizeof *s->dec);
    }
    s->dec[s->ndec++] = (flame_decision){ kind, node, exec, sess };
}

static int fits(const flame_resreq *free, const flame_resreq *r)
{
    return free->cpu >= r->cpu && free->memory >= r->memory && free->gpu >= r->gpu;
}

static void take(flame_resreq *free, const flame_resreq *r, int sign)
{
    if (sign > 0) {
        free->cpu += r->cpu;
        free->memory += r->memory;
        free->gpu += r->gpu;
    } else {
        free->cpu -= r->cpu;
        free->memory -= r->memory;
        free->gpu -= r->gpu;
    }
}

static int index_of(const fl_map *m, const char *key)
{
    if (!key)
        return -1;
    void *v = fl_map_get(m, key);
    return v ? (int)((intptr_t)v - 1) : -1;
}

typedef struct cycle {
    flame_scheduler *sch;
    const flame_sched_snapshot *snap;
    int64_t now;
    s_node *nodes;
    s_app *apps;
    s_sess *sess;
    s_exec *execs;
    size_t nn, na, ns, ne;
    flame_resreq total;
} cycle;

static int64_t delay_of(const cycle *c, int app)
{
    if (app >= 0 && c->apps[app].a)
        return c->apps[app].a->delay_release_ms;
    return 60000;
}

static int app_full(const cycle *c, const s_sess *s)
{
    if (s->app < 0 || !c->apps[s->app].a || !c->apps[s->app].a->has_max_instances)
        return 0;
    return c->apps[s->app].alloc >= c->apps[s->app].a->max_instances;
}

static double share_with(const s_sess *s, int64_t delta)
{
    return s->unit_share * (double)((int64_t)s->alloc + delta);
}

/* Orders sessions: tier (priority desc), then dominant share (asc), then id. */
static int better(const s_sess *a, const s_sess *b)
{
    if (a->s->priority != b->s->priority)
        return a->s->priority > b->s->priority;
    double sa = share_with(a, 0), sb = share_with(b, 0);
    if (sa != sb)
        return sa < sb;
    return strcmp(a->s->id, b->s->id) < 0;
}

static int wants(const cycle *c, const s_sess *s)
{
    return !s->starving && s->alloc < s->desired && !app_full(c, s);
}

/* The best session that still wants an executor (linear scan: the number of
 * sessions that want one is small next to the executors handed out). */
static s_sess *next_session(cycle *c, int **list, size_t *n)
{
    s_sess *best = NULL;
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        s_sess *s = &c->sess[(*list)[i]];
        if (!wants(c, s))
            continue;
        (*list)[w++] = (*list)[i];
        if (!best || better(s, best))
            best = s;
    }
    *n = w;
    return best;
}

static int give_idle(cycle *c, s_sess *s)
{
    s_exec *pick = NULL;
    for (size_t i = 0; i < c->ne; i++) {
        s_exec *x = &c->execs[i];
        if (x->taken || x->e->state != FLAME_EXECUTOR_IDLE || x->app != s->app || x->node < 0)
            continue;
        if (!fits(&x->e->resreq, &s->s->resreq))
            continue;
        if (!pick || strcmp(x->e->id, pick->e->id) < 0)
            pick = x;
    }
    if (!pick)
        return 0;
    pick->taken = 1;
    decide(c->sch, FLAME_DECISION_BIND, NULL, pick->e->id, s->s->id);
    return 1;
}

static int node_better(const s_node *a, const s_node *b)
{
    /* spread: most free cpu, then most free memory, then name */
    if (a->free.cpu != b->free.cpu)
        return a->free.cpu > b->free.cpu;
    if (a->free.memory != b->free.memory)
        return a->free.memory > b->free.memory;
    return strcmp(a->n->name, b->n->name) < 0;
}

static int give_new(cycle *c, s_sess *s)
{
    s_node *pick = NULL;
    for (size_t i = 0; i < c->nn; i++) {
        s_node *n = &c->nodes[i];
        if (!n->n->ready || !fits(&n->free, &s->s->resreq))
            continue;
        if (!pick || node_better(n, pick))
            pick = n;
    }
    if (!pick)
        return 0;
    take(&pick->free, &s->s->resreq, -1);
    decide(c->sch, FLAME_DECISION_CREATE, pick->n->name, NULL, s->s->id);
    return 1;
}

/* Releases idle executors of other applications on one node until the
 * session fits there; then creates its executor in their room. */
static int give_by_release(cycle *c, s_sess *s)
{
    for (size_t i = 0; i < c->nn; i++) {
        s_node *n = &c->nodes[i];
        if (!n->n->ready)
            continue;
        flame_resreq room = n->free;
        for (size_t j = 0; j < c->ne; j++) {
            s_exec *x = &c->execs[j];
            if (!x->taken && x->node == (int)i && x->e->state == FLAME_EXECUTOR_IDLE &&
                x->app != s->app)
                take(&room, &x->e->resreq, +1);
        }
        if (!fits(&room, &s->s->resreq))
            continue;
        for (size_t j = 0; j < c->ne && !fits(&n->free, &s->s->resreq); j++) {
            s_exec *x = &c->execs[j];
            if (!x->taken && x->node == (int)i && x->e->state == FLAME_EXECUTOR_IDLE &&
                x->app != s->app) {
                x->taken = 1;
                take(&n->free, &x->e->resreq, +1);
                decide(c->sch, FLAME_DECISION_RELEASE, NULL, x->e->id, NULL);
            }
        }
        take(&n->free, &s->s->resreq, -1);
        decide(c->sch, FLAME_DECISION_CREATE, n->n->name, NULL, s->s->id);
        return 1;
    }
    return 0;
}

/* Unbinds one executor from a session that may give it up to s. */
static void reclaim(cycle *c, s_sess *s)
{
    s_sess *victim = NULL;
    for (size_t i = 0; i < c->ns; i++) {
        s_sess *v = &c->sess[i];
        if (v == s || v->alloc <= v->s->min_instances || v->alloc == 0)
            continue;
        int ok;
        if (v->alloc > v->desired)
            ok = 1; /* more than it can use */
        else if (v->s->priority != s->s->priority)
            ok = v->s->priority < s->s->priority;
        else
            ok = share_with(v, -1) >= share_with(s, +1) && share_with(v, -1) > share_with(s, 0);
        if (!ok)
            continue;
        if (!victim || v->s->priority < victim->s->priority ||
            (v->s->priority == victim->s->priority &&
             (share_with(v, 0) > share_with(victim, 0) ||
              (share_with(v, 0) == share_with(victim, 0) && strcmp(v->s->id, victim->s->id) < 0))))
            victim = v;
    }
    if (!victim)
        return;
    s_exec *pick = NULL;
    for (size_t i = 0; i < c->ne; i++) {
        s_exec *x = &c->execs[i];
        if (x->taken || x->sess != victim - c->sess || x->e->state != FLAME_EXECUTOR_BOUND)
            continue;
        if (!pick || strcmp(x->e->id, pick->e->id) < 0)
            pick = x;
    }
    if (!pick)
        return;
    pick->taken = 1;
    victim->alloc--;
    if (victim->app >= 0)
        c->apps[victim->app].alloc--;
    s->reclaimed = 1;
    decide(c->sch, FLAME_DECISION_UNBIND, NULL, pick->e->id, NULL);
}

static void prepare(cycle *c, fl_map *nm, fl_map *am, fl_map *sm)
{
    const flame_sched_snapshot *sn = c->snap;
    for (size_t i = 0; i < c->nn; i++) {
        c->nodes[i].n = &sn->nodes[i];
        c->nodes[i].free = sn->nodes[i].allocatable;
        fl_map_put(nm, sn->nodes[i].name, (void *)(intptr_t)(i + 1));
        if (sn->nodes[i].ready)
            take(&c->total, &sn->nodes[i].allocatable, +1);
    }
    for (size_t i = 0; i < c->na; i++) {
        c->apps[i].a = &sn->applications[i];
        fl_map_put(am, sn->applications[i].name, (void *)(intptr_t)(i + 1));
    }
    for (size_t i = 0; i < c->ns; i++) {
        const flame_sched_session *s = &sn->sessions[i];
        s_sess *x = &c->sess[i];
        x->s = s;
        x->app = index_of(am, s->application);
        fl_map_put(sm, s->id, (void *)(intptr_t)(i + 1));
        uint64_t want = (uint64_t)s->pending + s->running;
        if (want < s->min_instances)
            want = s->min_instances;
        if (s->has_max_instances && want > s->max_instances)
            want = s->max_instances;
        x->desired = s->open && s->schedulable ? (uint32_t)want : 0;
        double share = 0, t;
        if (c->total.cpu && (t = (double)s->resreq.cpu / (double)c->total.cpu) > share)
            share = t;
        if (c->total.memory && (t = (double)s->resreq.memory / (double)c->total.memory) > share)
            share = t;
        if (c->total.gpu > 0 && (t = (double)s->resreq.gpu / (double)c->total.gpu) > share)
            share = t;
        x->unit_share = share > 0 ? share : 1e-9;
    }
    for (size_t i = 0; i < c->ne; i++) {
        const flame_sched_executor *e = &sn->executors[i];
        s_exec *x = &c->execs[i];
        x->e = e;
        x->node = index_of(nm, e->node);
        x->sess = index_of(sm, e->session_id);
        x->app = index_of(am, e->application);
        if (x->app < 0 && x->sess >= 0)
            x->app = c->sess[x->sess].app;
        if (e->state == FLAME_EXECUTOR_RELEASED || e->state == FLAME_EXECUTOR_UNKNOWN)
            continue;
        if (x->node >= 0)
            take(&c->nodes[x->node].free, &e->resreq, -1);
        int holds = e->state == FLAME_EXECUTOR_BINDING || e->state == FLAME_EXECUTOR_BOUND ||
                    (e->state == FLAME_EXECUTOR_VOID && x->sess >= 0);
        if (holds && x->sess >= 0) {
            c->sess[x->sess].alloc++;
            if (c->sess[x->sess].app >= 0)
                c->apps[c->sess[x->sess].app].alloc++;
        }
    }
}

flame_status flame_scheduler_cycle(flame_scheduler *sch, const flame_sched_snapshot *snap,
                                   int64_t now_ms, const flame_decision **decisions,
                                   size_t *count)
{
    if (!sch || !snap || !decisions || !count)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_scheduler_cycle: NULL argument");
    sch->ndec = 0;
    cycle c = { 0 };
    c.sch = sch;
    c.snap = snap;
    c.now = now_ms;
    c.nn = snap->nodes_len;
    c.na = snap->applications_len;
    c.ns = snap->sessions_len;
    c.ne = snap->executors_len;
    c.nodes = fl_calloc(c.nn + 1, sizeof *c.nodes);
    c.apps = fl_calloc(c.na + 1, sizeof *c.apps);
    c.sess = fl_calloc(c.ns + 1, sizeof *c.sess);
    c.execs = fl_calloc(c.ne + 1, sizeof *c.execs);
    fl_map nm = { 0 }, am = { 0 }, smap = { 0 };
    prepare(&c, &nm, &am, &smap);

    /* A: executors of closed, unschedulable or unknown sessions go back. */
    for (size_t i = 0; i < c.ne; i++) {
        s_exec *x = &c.execs[i];
        if (x->e->state != FLAME_EXECUTOR_BOUND && x->e->state != FLAME_EXECUTOR_BINDING)
            continue;
        if (x->sess < 0 || !c.sess[x->sess].s->open || !c.sess[x->sess].s->schedulable) {
            x->taken = 1;
            if (x->sess >= 0) {
                c.sess[x->sess].alloc--;
                if (c.sess[x->sess].app >= 0)
                    c.apps[c.sess[x->sess].app].alloc--;
            }
            decide(sch, FLAME_DECISION_UNBIND, NULL, x->e->id, NULL);
        }
    }

    /* B: hand out executors, best tier and smallest share first. */
    int *list = fl_calloc(c.ns + 1, sizeof *list);
    size_t nl = 0;
    for (size_t i = 0; i < c.ns; i++)
        if (wants(&c, &c.sess[i]))
            list[nl++] = (int)i;
    s_sess *s;
    while ((s = next_session(&c, &list, &nl)) != NULL) {
        if (give_idle(&c, s) || give_new(&c, s) || give_by_release(&c, s)) {
            s->alloc++;
            if (s->app >= 0)
                c.apps[s->app].alloc++;
            continue;
        }
        if (!s->reclaimed)
            reclaim(&c, s);
        s->starving = 1;
    }
    free(list);

    /* C: idle executors past their delay_release go. */
    for (size_t i = 0; i < c.ne; i++) {
        s_exec *x = &c.execs[i];
        if (x->taken || x->e->state != FLAME_EXECUTOR_IDLE)
            continue;
        if (now_ms - x->e->idle_since_ms >= delay_of(&c, x->app)) {
            x->taken = 1;
            decide(sch, FLAME_DECISION_RELEASE, NULL, x->e->id, NULL);
        }
    }

    fl_map_free(&nm);
    fl_map_free(&am);
    fl_map_free(&smap);
    free(c.nodes);
    free(c.apps);
    free(c.sess);
    free(c.execs);
    *decisions = sch->dec;
    *count = sch->ndec;
    return FLAME_OK;
}
