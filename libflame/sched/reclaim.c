/* Taking executors back, for a starving session, from sessions that may
 * give them up. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

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
    c->node_bound_head = sc_scratch(c->sch, B_NODE_BOUND_HEAD, c->nn, sizeof *c->node_bound_head, 0);
    c->bound_next = sc_scratch(c->sch, B_BOUND_NEXT, c->ne, sizeof *c->bound_next, 0);
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
        if (sc_releasable(&c->execs[j], s))
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
            if (sc_releasable(&c->execs[j], s)) {
                c->execs[j].taken = 1;
                c->idle_left--;
            }
        flame_resreq *f = &c->nodes[node].free;
        take(&room, &s->s->resreq, -1);
        f->cpu = f->cpu < room.cpu ? f->cpu : room.cpu;
        f->memory = f->memory < room.memory ? f->memory : room.memory;
        f->gpu = f->gpu < room.gpu ? f->gpu : room.gpu;
        sc_nheap_fix(c, node);
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
        sc_decide(c->sch, FLAME_DECISION_UNBIND, NULL, y->e->id, NULL);
        sc_requeue(c, v);
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
void sc_reclaim(cycle *c, s_sess *s)
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
void sc_reclaim_in_app(cycle *c, s_sess *s)
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
    sc_decide(c->sch, FLAME_DECISION_UNBIND, NULL, pick->e->id, NULL);
    sc_requeue(c, victim);
}
