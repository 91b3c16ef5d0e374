/* The heaps of a cycle: sessions to serve (tier, then share, then id) and
 * ready nodes by free room (spread). */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

/* Element i climbs while better than its parent, no higher than index top
 * (0 for a push; the start of a sift-down for its final climb). */
static void sheap_up(cycle *c, sheap *h, size_t i, size_t top)
{
    while (i > top) {
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
void sc_sheap_down(cycle *c, sheap *h, size_t i)
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
    sheap_up(c, h, i, start);
}

void sc_sheap_push(cycle *c, sheap *h, int si)
{
    c->sess[si].queued = 1;
    h->v[h->n++] = si;
    sheap_up(c, h, h->n - 1, 0);
}

int sc_sheap_pop(cycle *c, sheap *h)
{
    int top = h->v[0];
    c->sess[top].queued = 0;
    h->v[0] = h->v[--h->n];
    if (h->n)
        sc_sheap_down(c, h, 0);
    return top;
}

/* A session that lost an executor to a reclaim has a smaller share: it
 * moves up if queued, else is served again in its turn of this cycle (in
 * free room; what it gave up stays with the taker). */
void sc_requeue(cycle *c, s_sess *v)
{
    sheap *h = c->serving;
    int si = (int)(v - c->sess);
    if (!v->queued) {
        if (wants(v))
            sc_sheap_push(c, h, si);
        return;
    }
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i] == si) {
            sheap_up(c, h, i, 0);
            return;
        }
}

int sc_node_better(const s_node *a, const s_node *b)
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

/* As sheap_up. */
static void nheap_up(cycle *c, size_t i, size_t top)
{
    while (i > top) {
        size_t p = (i - 1) / 2;
        if (!sc_node_better(&c->nodes[c->nheap[i]], &c->nodes[c->nheap[p]]))
            return;
        nheap_swap(c, i, p);
        i = p;
    }
}

/* Bottom-up, as sc_sheap_down. */
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
                   sc_node_better(&c->nodes[c->nheap[r]], &c->nodes[c->nheap[l]]) ? r : l;
        c->nheap[i] = c->nheap[m];
        c->npos[c->nheap[i]] = (int)i;
        i = m;
    }
    c->nheap[i] = x;
    c->npos[x] = (int)i;
    nheap_up(c, i, start);
}

/* Node `node`'s free resources changed: restore the heap order. */
void sc_nheap_fix(cycle *c, int node)
{
    int i = c->npos[node];
    if (i < 0)
        return;
    nheap_up(c, (size_t)i, 0);
    nheap_down(c, (size_t)c->npos[node]);
}

void sc_nheap_build(cycle *c)
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
