/* Giving a session one executor: an idle one of its application, a new
 * one in free room, or a new one in room made by releasing idle ones. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

int sc_give_idle(cycle *c, s_sess *s)
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
        sc_decide(c->sch, FLAME_DECISION_BIND, NULL, x->e->id, s->s->id);
        return 1;
    }
    return 0;
}

int sc_give_new(cycle *c, s_sess *s)
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
            if (fits(&n->free, &s->s->resreq) && (!pick || sc_node_better(n, pick)))
                pick = n;
        }
        if (!pick)
            return 0;
    }
    take(&pick->free, &s->s->resreq, -1);
    sc_decide(c->sch, FLAME_DECISION_CREATE, pick->n->name, NULL, s->s->id);
    sc_nheap_fix(c, (int)(pick - c->nodes));
    return 1;
}

/* Releases idle executors the session cannot use on one node until it
 * fits there; then creates its executor in their room. Nodes are
 * tried in name order from a cursor that moves on, so a full cluster costs
 * little; idle executors go in id order: the order of the snapshot's
 * arrays does not matter. */
int sc_give_by_release(cycle *c, s_sess *s)
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
            if (sc_releasable(&c->execs[j], s))
                take(&room, &c->execs[j].e->resreq, +1);
        if (!fits(&room, &s->s->resreq))
            continue;
        for (int j = c->node_idle_head[i]; j >= 0 && !fits(&n->free, &s->s->resreq);
             j = c->idle_next[j]) {
            s_exec *x = &c->execs[j];
            if (sc_releasable(x, s)) {
                x->taken = 1;
                c->idle_left--;
                take(&n->free, &x->e->resreq, +1);
                sc_decide(c->sch, FLAME_DECISION_RELEASE, NULL, x->e->id, NULL);
            }
        }
        take(&n->free, &s->s->resreq, -1);
        sc_decide(c->sch, FLAME_DECISION_CREATE, n->n->name, NULL, s->s->id);
        c->release_cursor = at;
        sc_nheap_fix(c, i);
        return 1;
    }
    return 0;
}
