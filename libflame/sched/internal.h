/* The scheduler's insides, shared by the files of sched/ (one job each):
 *   scheduler.c  the flame_scheduler object: buffers kept across cycles,
 *                snapshot versions and strides, the decisions
 *   prepare.c    a cycle's view of the snapshot: indices, ranks, what each
 *                node has free, what each session and application holds
 *   order.c      the orders for ties, kept from one cycle to the next
 *   heap.c       the heaps: sessions to serve, nodes by free room
 *   give.c       giving a session an executor: idle, new, or in room
 *                made by releasing idle executors
 *   reclaim.c    taking executors back for a starving session
 *   cycle.c      flame_scheduler_cycle: the phases
 * Not thread-safe: a flame_scheduler is used by one thread at a time. */
#ifndef FL_SCHED_INTERNAL_H
#define FL_SCHED_INTERNAL_H

#include <stdint.h>
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
    int idle;                         /* in the idle lists (order.c marks 2) */
} s_exec;

/* The per-cycle arrays, kept across cycles: a cycle at scale then costs
 * no allocation and no fresh pages. */
enum {
    B_NODES, B_APPS, B_SESS, B_EXECS, B_NHEAP, B_NPOS, B_BY_NAME, B_NODE_IDLE_HEAD,
    B_IDLE_NEXT, B_NODE_BOUND_HEAD, B_BOUND_NEXT, B_BOUND, B_IDLE, B_ORDER, B_SHEAP,
    B_IDLE_SORTED, B_IDLE_ADDED, B_PHASE_A, B_PHASE_C, B_COUNT
};

struct flame_scheduler {
    flame_decision *dec;
    size_t ndec, capdec;
    unsigned char *out;               /* dec at the caller's decision stride */
    size_t capout;
    void *buf[B_COUNT];
    size_t capbuf[B_COUNT];           /* bytes */
    /* the orders kept in B_BY_NAME, B_ORDER, B_IDLE_SORTED (order.c) */
    size_t nodes_sorted_n, sessions_sorted_n, idle_sorted_n;
};

/* The caller's snapshot with arrays of this library's element types:
 * arrays at another stride are copied, fields the caller lacks left zero. */
typedef struct view {
    flame_sched_snapshot snap;
    void *copies[4];
} view;

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
    int *phase_a;                     /* BOUND or BINDING for a closed, unschedulable or
                                       * unknown session, in index order */
    int *phase_c;                     /* IDLE, in index order */
    size_t nphase_a, nphase_c;
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

/* A binary heap of sessions, best (tier, then share, then id) on top. */
struct sheap {
    int *v;
    size_t n;
};

static inline int fits(const flame_resreq *free, const flame_resreq *r)
{
    return free->cpu >= r->cpu && free->memory >= r->memory && free->gpu >= r->gpu;
}

static inline void take(flame_resreq *free, const flame_resreq *r, int sign)
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

static inline int index_of(const fl_map *m, const char *key)
{
    if (!key)
        return -1;
    void *v = fl_map_get(m, key);
    return v ? (int)((intptr_t)v - 1) : -1;
}

/* Same name: most callers share the snapshot's name pointers. */
static inline int same(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

static inline double share_with(const s_sess *s, int64_t delta)
{
    return s->unit_share * (double)((int64_t)s->alloc + delta);
}

/* Orders sessions: tier (priority desc), then dominant share (asc), then id. */
static inline int better(const s_sess *a, const s_sess *b)
{
    if (a->prio != b->prio)
        return a->prio > b->prio;
    double sa = share_with(a, 0), sb = share_with(b, 0);
    if (sa != sb)
        return sa < sb;
    return a->rank < b->rank;
}

/* Still to be served this cycle (perhaps held back by its application). */
static inline int wants(const s_sess *s)
{
    return !s->starving && s->alloc < s->desired;
}


static inline int64_t delay_of(const cycle *c, int app)
{
    if (app >= 0 && c->apps[app].a)
        return c->apps[app].a->delay_release_ms;
    return 60000;
}

static inline int app_full(const cycle *c, const s_sess *s)
{
    if (s->app < 0 || !c->apps[s->app].a || !c->apps[s->app].a->has_max_instances)
        return 0;
    return c->apps[s->app].alloc >= c->apps[s->app].a->max_instances;
}

/* An idle executor s may have released: s cannot use it (give_idle came
 * first), so one of another (or an unlisted) application, or too small. */
static inline int sc_releasable(const s_exec *x, const s_sess *s)
{
    return !x->taken && (x->app < 0 || x->app != s->app || !fits(&x->e->resreq, &s->s->resreq));
}


/* scheduler.c */
void *sc_scratch(flame_scheduler *s, int k, size_t n, size_t size, int zero);
void sc_decide(flame_scheduler *s, flame_decision_kind kind, const char *node, const char *exec,
               const char *sess);
flame_status sc_view_open(view *v, const flame_sched_snapshot *in);
void sc_view_close(view *v);
const flame_decision *sc_decisions_out(flame_scheduler *s, size_t stride);

/* Buffer k like sc_scratch, its content kept when it grows. */
void *sc_keep(flame_scheduler *s, int k, size_t n, size_t size);

/* order.c */
typedef int (*sc_cmp)(const void *, const void *, void *);
/* idx[0..n) sorted by cmp: the last cycle's order when it still is. */
void sc_order(int *idx, size_t n, size_t *last_n, sc_cmp cmp, void *arg);
void sc_order_idle(cycle *c, int *idle, size_t n, sc_cmp cmp, void *arg);

/* prepare.c: fills the cycle's arrays from c->snap */
void sc_prepare(cycle *c);

/* heap.c */
void sc_sheap_push(cycle *c, sheap *h, int si);
int sc_sheap_pop(cycle *c, sheap *h);
void sc_sheap_down(cycle *c, sheap *h, size_t i);
void sc_requeue(cycle *c, s_sess *v);
int sc_node_better(const s_node *a, const s_node *b);
void sc_nheap_build(cycle *c);
void sc_nheap_fix(cycle *c, int node);

/* give.c: 1 when s got an executor (its decisions made) */
int sc_give_idle(cycle *c, s_sess *s);
int sc_give_new(cycle *c, s_sess *s);
int sc_give_by_release(cycle *c, s_sess *s);

/* reclaim.c */
void sc_reclaim(cycle *c, s_sess *s);
void sc_reclaim_in_app(cycle *c, s_sess *s);

#endif
