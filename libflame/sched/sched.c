/* The scheduler: one pure function from a snapshot to decisions.
 * See include/flame/scheduler.h for the policies and the ABI rules. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "flame/scheduler.h"
#include "util/util.h"

typedef struct s_node {
    const flame_sched_node *n;
    flame_resreq free;
    uint32_t rank;                    /* position in name order (ties) */
} s_node;

typedef struct s_app {
    const flame_sched_application *a; /* NULL: not listed (defaults) */
    uint32_t alloc;                   /* executors held by its sessions */
    int *idle;                        /* its IDLE executors, by id */
    uint32_t nidle, capidle, next_idle;
} s_app;

/* Bounds on the work of one cycle in a full cluster: the rest waits for
 * the next cycle. */
#define MAX_RECLAIMS_PER_CYCLE 32
#define MAX_RELEASE_TRIES_PER_CYCLE 256
#define MAX_VICTIMS_TRIED 4             /* per reclaim */
#define MAX_NODES_TRIED 8               /* per reclaim */

typedef struct s_sess {
    const flame_sched_session *s;
    int app;                          /* index into apps, -1 when unknown */
    uint32_t alloc;                   /* VOID-for-it + BINDING + BOUND executors */
    uint32_t desired;
    double unit_share;                /* dominant share of one executor */
    int starving;                     /* could not be served this cycle */
    int reclaimed;                    /* took some by unbinding this cycle */
    int queued;                       /* in the heap of sessions to serve */
    int *bound;                       /* its BOUND executors (indices, ascending) */
    uint32_t nbound;
    uint32_t rank;                    /* position in id order (ties) */
    uint32_t prio;                    /* s->priority, at hand for the heap */
} s_sess;

typedef struct s_exec {
    const flame_sched_executor *e;
    int node;                         /* -1 when unknown */
    int sess;                         /* -1 when none */
    int app;                          /* -1 when none */
    int taken;                        /* decided on this cycle */
} s_exec;

/* The per-cycle arrays, kept across cycles: a cycle at scale then costs
 * no allocation and no fresh pages. */
enum {
    B_NODES, B_APPS, B_SESS, B_EXECS, B_NHEAP, B_NPOS, B_BY_NAME, B_NODE_IDLE_HEAD,
    B_IDLE_NEXT, B_NODE_BOUND_HEAD, B_BOUND_NEXT, B_BOUND, B_IDLE, B_ORDER, B_SHEAP, B_COUNT
};

struct flame_scheduler {
    flame_decision *dec;
    size_t ndec, capdec;
    unsigned char *out;               /* dec at the caller's decision stride */
    size_t capout;
    void *buf[B_COUNT];
    size_t capbuf[B_COUNT];           /* bytes */
};

/* Buffer k of sched with room for n + 1 elements of size bytes; zeroed
 * when zero (else the caller writes each element before reading it). */
static void *scratch(flame_scheduler *s, int k, size_t n, size_t size, int zero)
{
    size_t bytes = (n + 1) * size;
    if (s->capbuf[k] < bytes) {
        free(s->buf[k]);
        s->buf[k] = fl_malloc(bytes);
        s->capbuf[k] = bytes;
    }
    if (zero)
        memset(s->buf[k], 0, bytes);
    return s->buf[k];
}

/* Element sizes of snapshot version 1 (and 0): up to its last field, padded
 * as an array element. Later fields are appended after these. */
#define END_OF(T, f) (offsetof(T, f) + sizeof(((T *)0)->f))
#define PADDED(n, T) (((n) + _Alignof(T) - 1) / _Alignof(T) * _Alignof(T))
#define V1_SIZE(T, last) PADDED(END_OF(T, last), T)
static const flame_sched_snapshot v1_sizes = {
    .node_size = V1_SIZE(flame_sched_node, ready),
    .application_size = V1_SIZE(flame_sched_application, delay_release_ms),
    .session_size = V1_SIZE(flame_sched_session, schedulable),
    .executor_size = V1_SIZE(flame_sched_executor, session_hint),
    .decision_size = V1_SIZE(flame_decision, session_id),
};

void flame_sched_snapshot_init(flame_sched_snapshot *snap)
{
    *snap = (flame_sched_snapshot)FLAME_SCHED_SNAPSHOT_INIT;
}

/* The caller's snapshot with arrays of this library's element types:
 * arrays at another stride are copied, fields the caller lacks left zero. */
typedef struct view {
    flame_sched_snapshot snap;
    void *copies[4];
} view;

static const void *restride(view *v, const void *arr, size_t len, size_t stride, size_t size)
{
    if (stride == size || !len)
        return arr;
    unsigned char *to = fl_calloc(len, size);
    for (size_t i = 0; i < len; i++)
        memcpy(to + i * size, (const unsigned char *)arr + i * stride, stride < size ? stride : size);
    for (size_t k = 0; k < 4; k++)
        if (!v->copies[k]) {
            v->copies[k] = to;
            break;
        }
    return to;
}

static flame_status view_open(view *v, const flame_sched_snapshot *in)
{
    const flame_sched_snapshot *sz = in->version == 0 ? &v1_sizes : in;
    if (in->version < 0 || in->version > FLAME_SCHED_SNAPSHOT_VERSION)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_scheduler_cycle: snapshot version %d unknown",
                        in->version);
    if (sz->node_size < v1_sizes.node_size || sz->application_size < v1_sizes.application_size ||
        sz->session_size < v1_sizes.session_size || sz->executor_size < v1_sizes.executor_size ||
        sz->decision_size < v1_sizes.decision_size)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "flame_scheduler_cycle: snapshot element sizes not set "
                        "(use FLAME_SCHED_SNAPSHOT_INIT)");
    v->snap = *in;
    v->snap.nodes = restride(v, in->nodes, in->nodes_len, sz->node_size, sizeof *in->nodes);
    v->snap.applications = restride(v, in->applications, in->applications_len,
                                    sz->application_size, sizeof *in->applications);
    v->snap.sessions = restride(v, in->sessions, in->sessions_len, sz->session_size,
                                sizeof *in->sessions);
    v->snap.executors = restride(v, in->executors, in->executors_len, sz->executor_size,
                                 sizeof *in->executors);
    v->snap.decision_size = sz->decision_size;
    return FLAME_OK;
}

static void view_close(view *v)
{
    for (size_t k = 0; k < 4; k++)
        free(v->copies[k]);
}

/* The decisions at the caller's stride. */
static const flame_decision *decisions_out(flame_scheduler *s, size_t stride)
{
    if (stride == sizeof *s->dec || !s->ndec)
        return s->dec;
    if (s->capout < s->ndec * stride) {
        s->capout = s->ndec * stride;
        free(s->out);
        s->out = fl_malloc(s->capout);
    }
    memset(s->out, 0, s->ndec * stride);
    for (size_t i = 0; i < s->ndec; i++)
        memcpy(s->out + i * stride, &s->dec[i], stride < sizeof *s->dec ? stride : sizeof *s->dec);
    return (const flame_decision *)(void *)s->out;
}

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
    free(s->out);
    for (int k = 0; k < B_COUNT; k++)
        free(s->buf[k]);
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
    } else { /* saturating: a node may be over-committed for a moment
              * (executors being released), never "negative" */
        free->cpu = free->cpu > r->cpu ? free->cpu - r->cpu : 0;
        free->memory = free->memory > r->memory ? free->memory - r->memory : 0;
        free->gpu = free->gpu > r->gpu ? free->gpu - r->gpu : 0;
    }
}

static int index_of(const fl_map *m, const char *key)
{
    if (!key)
        return -1;
    void *v = fl_map_get(m, key);
    return v ? (int)((intptr_t)v - 1) : -1;
}

/* Same name: most callers share the snapshot's name pointers. */
static int same(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

typedef struct sheap sheap;

typedef struct cycle {
    flame_scheduler *sch;
    sheap *serving;                   /* phase B's heap, to requeue victims */
    const flame_sched_snapshot *snap;
    int64_t now;
    s_node *nodes;
    s_app *apps;
    s_sess *sess;
    s_exec *execs;
    size_t nn, na, ns, ne;
    flame_resreq total;
    int *nheap;                       /* node indices, most free first */
    size_t nheap_len;
    int *npos;                        /* node -> its place in nheap, or -1 */
    int *by_name;                     /* node indices in name order */
    int *node_idle_head;              /* per node: first idle executor (-1) */
    int *idle_next;                   /* per executor: next idle on its node, by id */
    int *node_bound_head;             /* per node: first bound executor (-1) */
    int *bound_next;                  /* per executor: next bound on its node */
    size_t idle_left;                 /* IDLE executors not taken yet */
    int reclaims, release_tries;
    size_t release_cursor;
    /* name -> 1 + index, built at the first lookup: with valid hints and
     * shared name pointers a cycle needs few or none */
    fl_map nm, am, sm;
    int nm_built, am_built, sm_built;
    struct {
        const char *name;
        int app;
    } app_cache[16];                  /* by name pointer: the same pointer is the same name */
    int bound_indexed;
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
    if (a->prio != b->prio)
        return a->prio > b->prio;
    double sa = share_with(a, 0), sb = share_with(b, 0);
    if (sa != sb)
        return sa < sb;
    return a->rank < b->rank;
}

/* Still to be served this cycle (perhaps held back by its application). */
static int wants(const s_sess *s)
{
    return !s->starving && s->alloc < s->desired;
}

/* A binary heap of sessions, best (tier, then share, then id) on top. */
struct sheap {
    int *v;
    size_t n;
};

static void sheap_up(cycle *c, sheap *h, size_t i)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (!better(&c->sess[h->v[i]], &c->sess[h->v[p]]))
            break;
        int t = h->v[i];
        h->v[i] = h->v[p];
        h->v[p] = t;
        i = p;
    }
}

/* Bottom-up: the hole goes down the better children to a leaf (one
 * comparison a level), then the element comes up the little it must (the
 * element sifted down is mostly a poor one). */
static void sheap_down(cycle *c, sheap *h, size_t i)
{
    if (i >= h->n)
        return;
    size_t start = i;
    int x = h->v[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1;
        if (l >= h->n)
            break;
        size_t m = r < h->n && better(&c->sess[h->v[r]], &c->sess[h->v[l]]) ? r : l;
        h->v[i] = h->v[m];
        i = m;
    }
    h->v[i] = x;
    while (i > start) {
        size_t p = (i - 1) / 2;
        if (!better(&c->sess[h->v[i]], &c->sess[h->v[p]]))
            break;
        int t = h->v[i];
        h->v[i] = h->v[p];
        h->v[p] = t;
        i = p;
    }
}

static void sheap_push(cycle *c, sheap *h, int si)
{
    c->sess[si].queued = 1;
    h->v[h->n++] = si;
    sheap_up(c, h, h->n - 1);
}

static int sheap_pop(cycle *c, sheap *h)
{
    int top = h->v[0];
    c->sess[top].queued = 0;
    h->v[0] = h->v[--h->n];
    if (h->n)
        sheap_down(c, h, 0);
    return top;
}

/* A session that lost an executor to a reclaim has a smaller share: it
 * moves up if queued, else is served again in its turn of this cycle (in
 * free room; what it gave up stays with the taker). */
static void requeue(cycle *c, s_sess *v)
{
    sheap *h = c->serving;
    int si = (int)(v - c->sess);
    if (!v->queued) {
        if (wants(v))
            sheap_push(c, h, si);
        return;
    }
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i] == si) {
            sheap_up(c, h, i);
            return;
        }
}

static int give_idle(cycle *c, s_sess *s)
{
    if (s->app < 0)
        return 0;
    s_app *a = &c->apps[s->app];
    for (uint32_t i = a->next_idle; i < a->nidle; i++) {
        s_exec *x = &c->execs[a->idle[i]];
        if (x->taken || x->node < 0) { /* for good: later sessions skip it too */
            if (i == a->next_idle)
                a->next_idle++;
            continue;
        }
        if (!fits(&x->e->resreq, &s->s->resreq))
            continue;
        if (i == a->next_idle)
            a->next_idle++;
        x->taken = 1;
        c->idle_left--;
        decide(c->sch, FLAME_DECISION_BIND, NULL, x->e->id, s->s->id);
        return 1;
    }
    return 0;
}

static int node_better(const s_node *a, const s_node *b)
{
    /* spread: most free cpu, then most free memory, then name */
    if (a->free.cpu != b->free.cpu)
        return a->free.cpu > b->free.cpu;
    if (a->free.memory != b->free.memory)
        return a->free.memory > b->free.memory;
    return a->rank < b->rank;
}

static void nheap_swap(cycle *c, size_t i, size_t j)
{
    int t = c->nheap[i];
    c->nheap[i] = c->nheap[j];
    c->nheap[j] = t;
    c->npos[c->nheap[i]] = (int)i;
    c->npos[c->nheap[j]] = (int)j;
}

/* Bottom-up, as sheap_down. */
static void nheap_down(cycle *c, size_t i)
{
    if (i >= c->nheap_len) /* nheap_build of no ready node */
        return;
    size_t start = i;
    int x = c->nheap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1;
        if (l >= c->nheap_len)
            break;
        size_t m = r < c->nheap_len &&
                   node_better(&c->nodes[c->nheap[r]], &c->nodes[c->nheap[l]]) ? r : l;
        c->nheap[i] = c->nheap[m];
        c->npos[c->nheap[i]] = (int)i;
        i = m;
    }
    c->nheap[i] = x;
    c->npos[x] = (int)i;
    while (i > start) {
        size_t p = (i - 1) / 2;
        if (!node_better(&c->nodes[c->nheap[i]], &c->nodes[c->nheap[p]]))
            break;
        nheap_swap(c, i, p);
        i = p;
    }
}

static void nheap_up(cycle *c, size_t i)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (!node_better(&c->nodes[c->nheap[i]], &c->nodes[c->nheap[p]]))
            return;
        nheap_swap(c, i, p);
        i = p;
    }
}

/* Node `node`'s free resources changed: restore the heap order. */
static void nheap_fix(cycle *c, int node)
{
    int i = c->npos[node];
    if (i < 0)
        return;
    nheap_up(c, (size_t)i);
    nheap_down(c, (size_t)c->npos[node]);
}

static void nheap_build(cycle *c)
{
    c->nheap_len = 0;
    for (size_t i = 0; i < c->nn; i++) {
        c->npos[i] = -1;
        if (c->nodes[i].n->ready) {
            c->npos[i] = (int)c->nheap_len;
            c->nheap[c->nheap_len++] = (int)i;
        }
    }
    for (size_t i = c->nheap_len / 2 + 1; i-- > 0;)
        nheap_down(c, i);
}

static int give_new(cycle *c, s_sess *s)
{
    if (!c->nheap_len)
        return 0;
    s_node *pick = &c->nodes[c->nheap[0]];
    if (!fits(&pick->free, &s->s->resreq)) {
        /* nodes are ordered by free cpu: if the top lacks cpu, all do */
        if (pick->free.cpu < s->s->resreq.cpu)
            return 0;
        /* the most free node lacks some other resource: look at all */
        pick = NULL;
        for (size_t i = 0; i < c->nheap_len; i++) {
            s_node *n = &c->nodes[c->nheap[i]];
            if (fits(&n->free, &s->s->resreq) && (!pick || node_better(n, pick)))
                pick = n;
        }
        if (!pick)
            return 0;
    }
    take(&pick->free, &s->s->resreq, -1);
    decide(c->sch, FLAME_DECISION_CREATE, pick->n->name, NULL, s->s->id);
    nheap_fix(c, (int)(pick - c->nodes));
    return 1;
}

/* An idle executor s may have released: s cannot use it (give_idle came
 * first), so one of another (or an unlisted) application, or too small. */
static int releasable(const s_exec *x, const s_sess *s)
{
    return !x->taken && (x->app < 0 || x->app != s->app || !fits(&x->e->resreq, &s->s->resreq));
}

/* Releases idle executors the session cannot use on one node until it
 * fits there; then creates its executor in their room. Nodes are
 * tried in name order from a cursor that moves on, so a full cluster costs
 * little; idle executors go in id order: the order of the snapshot's
 * arrays does not matter. */
static int give_by_release(cycle *c, s_sess *s)
{
    if (!c->idle_left || c->release_tries >= MAX_RELEASE_TRIES_PER_CYCLE)
        return 0;
    c->release_tries++;
    for (size_t step = 0; step < c->nn; step++) {
        size_t at = (c->release_cursor + step) % c->nn;
        int i = c->by_name[at];
        s_node *n = &c->nodes[i];
        if (!n->n->ready)
            continue;
        flame_resreq room = n->free;
        for (int j = c->node_idle_head[i]; j >= 0; j = c->idle_next[j])
            if (releasable(&c->execs[j], s))
                take(&room, &c->execs[j].e->resreq, +1);
        if (!fits(&room, &s->s->resreq))
            continue;
        for (int j = c->node_idle_head[i]; j >= 0 && !fits(&n->free, &s->s->resreq);
             j = c->idle_next[j]) {
            s_exec *x = &c->execs[j];
            if (releasable(x, s)) {
                x->taken = 1;
                c->idle_left--;
                take(&n->free, &x->e->resreq, +1);
                decide(c->sch, FLAME_DECISION_RELEASE, NULL, x->e->id, NULL);
            }
        }
        take(&n->free, &s->s->resreq, -1);
        decide(c->sch, FLAME_DECISION_CREATE, n->n->name, NULL, s->s->id);
        c->release_cursor = at;
        nheap_fix(c, i);
        return 1;
    }
    return 0;
}

/* May v give up an executor to s? Never below its min_instances; yes
 * when it holds more than it can use, or is of a lower tier, or of s's
 * tier with a share that stays at or above s's after the move. */
static int may_give(const s_sess *v, const s_sess *s)
{
    if (v == s || v->alloc <= v->s->min_instances || v->alloc == 0)
        return 0;
    if (v->alloc > v->desired)
        return 1;
    if (v->prio != s->prio)
        return v->prio < s->prio;
    return share_with(v, -1) >= share_with(s, +1) && share_with(v, -1) > share_with(s, 0);
}

/* Whom to take from first: the lowest tier, then the largest share. */
static int better_victim(const s_sess *v, const s_sess *than)
{
    if (v->prio != than->prio)
        return v->prio < than->prio;
    if (share_with(v, 0) != share_with(than, 0))
        return share_with(v, 0) > share_with(than, 0);
    return v->rank < than->rank;
}

/* Better victims first; of one victim, the largest executors first (the
 * fewest unbound to make room), then by id. */
static int cmp_victim_exec(const void *a, const void *b, void *cv)
{
    const cycle *c = cv;
    const s_exec *x = &c->execs[*(const int *)a], *y = &c->execs[*(const int *)b];
    if (x->sess != y->sess)
        return better_victim(&c->sess[x->sess], &c->sess[y->sess]) ? -1 : 1;
    const flame_resreq *p = &x->e->resreq, *q = &y->e->resreq;
    if (p->cpu != q->cpu)
        return p->cpu > q->cpu ? -1 : 1;
    if (p->memory != q->memory)
        return p->memory > q->memory ? -1 : 1;
    if (p->gpu != q->gpu)
        return p->gpu > q->gpu ? -1 : 1;
    return strcmp(x->e->id, y->e->id);
}

/* Per node, its bound executors: built at the first reclaim of a cycle
 * (most cycles have none). */
static void index_bound(cycle *c)
{
    if (c->bound_indexed)
        return;
    c->bound_indexed = 1;
    c->node_bound_head = scratch(c->sch, B_NODE_BOUND_HEAD, c->nn, sizeof *c->node_bound_head, 0);
    c->bound_next = scratch(c->sch, B_BOUND_NEXT, c->ne, sizeof *c->bound_next, 0);
    for (size_t i = 0; i < c->nn; i++)
        c->node_bound_head[i] = -1;
    for (size_t i = 0; i < c->ne; i++) {
        s_exec *x = &c->execs[i];
        if (x->e->state == FLAME_EXECUTOR_BOUND && x->sess >= 0 && x->node >= 0) {
            c->bound_next[i] = c->node_bound_head[x->node];
            c->node_bound_head[x->node] = (int)i;
        }
    }
}

/* Unbinds, on one node, executors whose sessions may give them up (better
 * victims first; when need_app >= 0, one of that application first) until
 * s fits there with the idle executors it could release; nothing when it
 * would still not fit: unbinding what cannot make room would only churn. */
static int reclaim_on(cycle *c, s_sess *s, int node, int need_app)
{
    flame_resreq room = c->nodes[node].free;
    for (int j = c->node_idle_head[node]; j >= 0; j = c->idle_next[j])
        if (releasable(&c->execs[j], s))
            take(&room, &c->execs[j].e->resreq, +1);
    size_t n = 0;
    for (int j = c->node_bound_head[node]; j >= 0; j = c->bound_next[j])
        if (!c->execs[j].taken && may_give(&c->sess[c->execs[j].sess], s))
            n++;
    int *cand = fl_malloc((n + 1) * sizeof *cand);
    n = 0;
    for (int j = c->node_bound_head[node]; j >= 0; j = c->bound_next[j])
        if (!c->execs[j].taken && may_give(&c->sess[c->execs[j].sess], s))
            cand[n++] = j;
    qsort_r(cand, n, sizeof *cand, cmp_victim_exec, c);
    if (need_app >= 0) { /* one of them first: s's application is full */
        size_t f = 0;
        while (f < n && c->sess[c->execs[cand[f]].sess].app != need_app)
            f++;
        if (f == n) {
            free(cand);
            return 0;
        }
        int first = cand[f];
        memmove(cand + 1, cand, f * sizeof *cand);
        cand[0] = first;
    }
    size_t planned = 0;
    for (size_t i = 0; i < n && (!fits(&room, &s->s->resreq) || !planned); i++) {
        s_exec *y = &c->execs[cand[i]];
        if (!may_give(&c->sess[y->sess], s)) /* gave enough already */
            continue;
        c->sess[y->sess].alloc--;
        take(&room, &y->e->resreq, +1);
        cand[planned++] = cand[i];
    }
    int ok = planned && fits(&room, &s->s->resreq);
    if (ok) {
        /* what s will use next cycle is not handed out to others in this
         * one: the idle executors it will release and the node's room */
        for (int j = c->node_idle_head[node]; j >= 0; j = c->idle_next[j])
            if (releasable(&c->execs[j], s)) {
                c->execs[j].taken = 1;
                c->idle_left--;
            }
        flame_resreq *f = &c->nodes[node].free;
        take(&room, &s->s->resreq, -1);
        f->cpu = f->cpu < room.cpu ? f->cpu : room.cpu;
        f->memory = f->memory < room.memory ? f->memory : room.memory;
        f->gpu = f->gpu < room.gpu ? f->gpu : room.gpu;
        nheap_fix(c, node);
    }
    for (size_t i = 0; i < planned; i++) {
        s_exec *y = &c->execs[cand[i]];
        s_sess *v = &c->sess[y->sess];
        if (!ok) {
            v->alloc++;
            continue;
        }
        y->taken = 1;
        if (v->app >= 0)
            c->apps[v->app].alloc--;
        decide(c->sch, FLAME_DECISION_UNBIND, NULL, y->e->id, NULL);
        requeue(c, v);
    }
    free(cand);
    return ok;
}

static int cmp_node_rank(const void *a, const void *b, void *cv)
{
    const cycle *c = cv;
    uint32_t x = c->nodes[*(const int *)a].rank, y = c->nodes[*(const int *)b].rank;
    return x < y ? -1 : x > y;
}

/* Takes executors from sessions that may give them up to s (of its
 * application only, when that is full): the best victims first, on each of
 * their ready nodes that can hold s, in name order. */
static void reclaim_room(cycle *c, s_sess *s, int same_app)
{
    index_bound(c);
    /* the best victims, in one pass: a try that fails changes nothing, so
     * the order of the rest stays */
    s_sess *best[MAX_VICTIMS_TRIED];
    size_t nbest = 0;
    for (size_t i = 0; i < c->ns; i++) {
        s_sess *v = &c->sess[i];
        if (!v->nbound || (same_app && v->app != s->app) || !may_give(v, s) ||
            (nbest == MAX_VICTIMS_TRIED && !better_victim(v, best[nbest - 1])))
            continue;
        size_t at = nbest < MAX_VICTIMS_TRIED ? nbest++ : nbest - 1;
        for (; at > 0 && better_victim(v, best[at - 1]); at--)
            best[at] = best[at - 1];
        best[at] = v;
    }
    int tries = 0;
    for (size_t ntried = 0; ntried < nbest && tries < MAX_NODES_TRIED && !s->reclaimed; ntried++) {
        s_sess *victim = best[ntried];
        int *nodes = fl_malloc(victim->nbound * sizeof *nodes);
        size_t nn = 0;
        for (uint32_t k = 0; k < victim->nbound; k++) {
            const s_exec *x = &c->execs[victim->bound[k]];
            if (!x->taken && x->node >= 0 && c->nodes[x->node].n->ready &&
                fits(&c->nodes[x->node].n->allocatable, &s->s->resreq))
                nodes[nn++] = x->node;
        }
        qsort_r(nodes, nn, sizeof *nodes, cmp_node_rank, c);
        for (size_t k = 0; k < nn && tries < MAX_NODES_TRIED; k++) {
            if (k && nodes[k] == nodes[k - 1])
                continue;
            tries++;
            if (reclaim_on(c, s, nodes[k], same_app ? s->app : -1)) {
                s->reclaimed = 1;
                if (same_app) /* one slot of the application is s's, next cycle */
                    c->apps[s->app].alloc++;
                break;
            }
        }
        free(nodes);
    }
}

/* A starving s may take executors from sessions that may give them up. */
static void reclaim(cycle *c, s_sess *s)
{
    if (c->reclaims >= MAX_RECLAIMS_PER_CYCLE)
        return;
    c->reclaims++;
    reclaim_room(c, s, 0);
}

/* s is held back only by its application's max_instances: it may take
 * from sessions of its application that may give up executors, if it can
 * then run: on the executor (one it can reuse first, then the smallest
 * id), in free room or on an idle executor, or in room made on one node. */
static void reclaim_in_app(cycle *c, s_sess *s)
{
    if (c->reclaims >= MAX_RECLAIMS_PER_CYCLE)
        return;
    c->reclaims++;
    /* free room, or an idle executor of its own it could reuse */
    int free_room = 0;
    for (size_t i = 0; i < c->nheap_len && !free_room; i++)
        free_room = fits(&c->nodes[c->nheap[i]].free, &s->s->resreq);
    const s_app *a = &c->apps[s->app];
    for (uint32_t i = a->next_idle; i < a->nidle && !free_room; i++) {
        const s_exec *x = &c->execs[a->idle[i]];
        free_room = !x->taken && x->node >= 0 && fits(&x->e->resreq, &s->s->resreq);
    }
    s_sess *victim = NULL;
    s_exec *pick = NULL;
    for (size_t i = 0; i < c->ns; i++) {
        s_sess *v = &c->sess[i];
        if (v->app != s->app || !v->nbound || !may_give(v, s) || (victim && !better_victim(v, victim)))
            continue;
        s_exec *best = NULL;
        int best_reuse = 0;
        for (uint32_t k = 0; k < v->nbound; k++) {
            s_exec *x = &c->execs[v->bound[k]];
            int reuse = fits(&x->e->resreq, &s->s->resreq);
            if (x->taken || (!reuse && !free_room))
                continue;
            if (!best || reuse > best_reuse || (reuse == best_reuse && strcmp(x->e->id, best->e->id) < 0)) {
                best = x;
                best_reuse = reuse;
            }
        }
        if (best) {
            victim = v;
            pick = best;
        }
    }
    if (!pick) {
        reclaim_room(c, s, 1);
        return;
    }
    /* the application's slot stays counted: it is s's, next cycle */
    pick->taken = 1;
    victim->alloc--;
    s->reclaimed = 1;
    decide(c->sch, FLAME_DECISION_UNBIND, NULL, pick->e->id, NULL);
    requeue(c, victim);
}

static int cmp_node_name(const void *a, const void *b, void *nodes)
{
    const flame_sched_node *n = nodes;
    return strcmp(n[*(const int *)a].name, n[*(const int *)b].name);
}

static int cmp_session_id(const void *a, const void *b, void *sessions)
{
    const flame_sched_session *s = sessions;
    return strcmp(s[*(const int *)a].id, s[*(const int *)b].id);
}

static void push_int(int **v, uint32_t *n, uint32_t *cap, int x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = fl_realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = x;
}

static int cmp_exec_id(const void *a, const void *b, void *execs)
{
    const flame_sched_executor *e = execs;
    return strcmp(e[*(const int *)a].id, e[*(const int *)b].id);
}

static int node_index(cycle *c, const char *name)
{
    if (!name)
        return -1;
    if (!c->nm_built) {
        c->nm_built = 1;
        for (size_t i = 0; i < c->nn; i++)
            fl_map_put(&c->nm, c->snap->nodes[i].name, (void *)(intptr_t)(i + 1));
    }
    return index_of(&c->nm, name);
}

static int session_index(cycle *c, const char *id)
{
    if (!id)
        return -1;
    if (!c->sm_built) {
        c->sm_built = 1;
        for (size_t i = 0; i < c->ns; i++)
            fl_map_put(&c->sm, c->snap->sessions[i].id, (void *)(intptr_t)(i + 1));
    }
    return index_of(&c->sm, id);
}

static int app_index(cycle *c, const char *name)
{
    if (!name)
        return -1;
    size_t k = ((uintptr_t)name >> 4) % (sizeof c->app_cache / sizeof c->app_cache[0]);
    if (c->app_cache[k].name == name)
        return c->app_cache[k].app;
    if (!c->am_built) {
        c->am_built = 1;
        for (size_t i = 0; i < c->na; i++)
            fl_map_put(&c->am, c->snap->applications[i].name, (void *)(intptr_t)(i + 1));
    }
    c->app_cache[k].name = name;
    c->app_cache[k].app = index_of(&c->am, name);
    return c->app_cache[k].app;
}

static void prepare(cycle *c)
{
    const flame_sched_snapshot *sn = c->snap;
    int *idle = scratch(c->sch, B_IDLE, c->ne, sizeof *idle, 0);
    for (size_t i = 0; i < c->nn; i++) {
        c->nodes[i].n = &sn->nodes[i];
        c->nodes[i].free = sn->nodes[i].allocatable;
        if (sn->nodes[i].ready)
            take(&c->total, &sn->nodes[i].allocatable, +1);
    }
    for (size_t i = 0; i < c->na; i++)
        c->apps[i].a = &sn->applications[i];
    for (size_t i = 0; i < c->ns; i++) {
        const flame_sched_session *s = &sn->sessions[i];
        s_sess *x = &c->sess[i];
        x->s = s;
        x->prio = s->priority;
        x->app = app_index(c, s->application);
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
        *x = (s_exec){ .e = e };
        if (e->node_hint && e->node_hint <= c->nn && e->node &&
            same(sn->nodes[e->node_hint - 1].name, e->node))
            x->node = (int)e->node_hint - 1;
        else
            x->node = node_index(c, e->node);
        if (e->session_hint && e->session_hint <= c->ns && e->session_id &&
            same(sn->sessions[e->session_hint - 1].id, e->session_id))
            x->sess = (int)e->session_hint - 1;
        else
            x->sess = session_index(c, e->session_id);
        /* most executors serve their session's application: skip a lookup */
        if (x->sess >= 0 && (!e->application || same(e->application, c->sess[x->sess].s->application)))
            x->app = c->sess[x->sess].app;
        else
            x->app = app_index(c, e->application);
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
        if (e->state == FLAME_EXECUTOR_BOUND && x->sess >= 0)
            c->sess[x->sess].nbound++;
        if (e->state == FLAME_EXECUTOR_IDLE && x->node >= 0)
            idle[c->idle_left++] = (int)i;
    }
    /* each session's bound executors, in one array */
    int *bound = scratch(c->sch, B_BOUND, c->ne, sizeof *bound, 0);
    size_t at = 0;
    for (size_t i = 0; i < c->ns; i++) {
        c->sess[i].bound = bound + at;
        at += c->sess[i].nbound;
        c->sess[i].nbound = 0;
    }
    for (size_t i = 0; i < c->ne; i++) {
        const s_exec *x = &c->execs[i];
        if (x->e->state == FLAME_EXECUTOR_BOUND && x->sess >= 0) {
            s_sess *y = &c->sess[x->sess];
            y->bound[y->nbound++] = (int)i;
        }
    }
    /* ties between nodes go by name, between sessions by id: rank once */
    int *norder = c->by_name;
    for (size_t i = 0; i < c->nn; i++)
        norder[i] = (int)i;
    qsort_r(norder, c->nn, sizeof *norder, cmp_node_name, (void *)sn->nodes);
    for (size_t i = 0; i < c->nn; i++)
        c->nodes[norder[i]].rank = (uint32_t)i;
    int *order = scratch(c->sch, B_ORDER, c->ns, sizeof *order, 0);
    for (size_t i = 0; i < c->ns; i++)
        order[i] = (int)i;
    qsort_r(order, c->ns, sizeof *order, cmp_session_id, (void *)sn->sessions);
    for (size_t i = 0; i < c->ns; i++)
        c->sess[order[i]].rank = (uint32_t)i;
    /* idle executors are handed out in id order (per application and per
     * node): deterministic */
    qsort_r(idle, c->idle_left, sizeof *idle, cmp_exec_id, (void *)sn->executors);
    for (size_t k = c->idle_left; k-- > 0;) {
        int node = c->execs[idle[k]].node;
        c->idle_next[idle[k]] = c->node_idle_head[node];
        c->node_idle_head[node] = idle[k];
    }
    for (size_t k = 0; k < c->idle_left; k++) {
        s_app *a = c->execs[idle[k]].app >= 0 ? &c->apps[c->execs[idle[k]].app] : NULL;
        if (a)
            push_int(&a->idle, &a->nidle, &a->capidle, idle[k]);
    }
}

flame_status flame_scheduler_cycle(flame_scheduler *sch, const flame_sched_snapshot *in,
                                   int64_t now_ms, const flame_decision **decisions,
                                   size_t *count)
{
    if (!sch || !in || !decisions || !count)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_scheduler_cycle: NULL argument");
    view v = { 0 };
    flame_status st = view_open(&v, in);
    if (st != FLAME_OK)
        return st;
    const flame_sched_snapshot *snap = &v.snap;
    sch->ndec = 0;
    cycle c = { 0 };
    c.sch = sch;
    c.snap = snap;
    c.now = now_ms;
    c.nn = snap->nodes_len;
    c.na = snap->applications_len;
    c.ns = snap->sessions_len;
    c.ne = snap->executors_len;
    c.nodes = scratch(sch, B_NODES, c.nn, sizeof *c.nodes, 0);
    c.apps = scratch(sch, B_APPS, c.na, sizeof *c.apps, 1);
    c.sess = scratch(sch, B_SESS, c.ns, sizeof *c.sess, 1);
    c.execs = scratch(sch, B_EXECS, c.ne, sizeof *c.execs, 0);
    c.nheap = scratch(sch, B_NHEAP, c.nn, sizeof *c.nheap, 0);
    c.npos = scratch(sch, B_NPOS, c.nn, sizeof *c.npos, 0);
    c.by_name = scratch(sch, B_BY_NAME, c.nn, sizeof *c.by_name, 0);
    c.node_idle_head = scratch(sch, B_NODE_IDLE_HEAD, c.nn, sizeof *c.node_idle_head, 0);
    for (size_t i = 0; i <= c.nn; i++)
        c.node_idle_head[i] = -1;
    c.idle_next = scratch(sch, B_IDLE_NEXT, c.ne, sizeof *c.idle_next, 0);
    prepare(&c);

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
    sheap h = { scratch(sch, B_SHEAP, c.ns, sizeof(int), 0), 0 };
    c.serving = &h;
    for (size_t i = 0; i < c.ns; i++)
        if (wants(&c.sess[i]))
            sheap_push(&c, &h, (int)i);
    nheap_build(&c);
    while (h.n) {
        /* s stays on top while it is given an executor (nothing else
         * moves in the heap then): one sift instead of a pop and a push */
        s_sess *s = &c.sess[h.v[0]];
        if (!wants(s)) {
            sheap_pop(&c, &h);
            continue;
        }
        if (app_full(&c, s)) {
            sheap_pop(&c, &h);
            if (!s->reclaimed)
                reclaim_in_app(&c, s);
            s->starving = 1;
            continue;
        }
        if (give_idle(&c, s) || give_new(&c, s) || give_by_release(&c, s)) {
            s->alloc++;
            if (s->app >= 0)
                c.apps[s->app].alloc++;
            if (wants(s))
                sheap_down(&c, &h, 0);
            else
                sheap_pop(&c, &h);
            continue;
        }
        sheap_pop(&c, &h);
        if (!s->reclaimed)
            reclaim(&c, s);
        s->starving = 1;
    }

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

    fl_map_free(&c.nm);
    fl_map_free(&c.am);
    fl_map_free(&c.sm);
    for (size_t i = 0; i < c.na; i++)
        free(c.apps[i].idle);
    view_close(&v);
    *decisions = decisions_out(sch, snap->decision_size);
    *count = sch->ndec;
    return FLAME_OK;
}
