/* flame_scheduler_cycle: executors of closed sessions back (A), sessions
 * served best first (B), idle executors past their delay released (C).
 * See include/flame/scheduler.h for the policies and the ABI rules. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

flame_status flame_scheduler_cycle(flame_scheduler *sch, const flame_sched_snapshot *in,
                                   int64_t now_ms, const flame_decision **decisions,
                                   size_t *count)
{
    if (!sch || !in || !decisions || !count)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_scheduler_cycle: NULL argument");
    view v = { 0 };
    flame_status st = sc_view_open(&v, in);
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
    c.nodes = sc_scratch(sch, B_NODES, c.nn, sizeof *c.nodes, 0);
    c.apps = sc_scratch(sch, B_APPS, c.na, sizeof *c.apps, 1);
    c.sess = sc_scratch(sch, B_SESS, c.ns, sizeof *c.sess, 1);
    c.execs = sc_scratch(sch, B_EXECS, c.ne, sizeof *c.execs, 0);
    c.nheap = sc_scratch(sch, B_NHEAP, c.nn, sizeof *c.nheap, 0);
    c.npos = sc_scratch(sch, B_NPOS, c.nn, sizeof *c.npos, 0);
    c.by_name = sc_keep(sch, B_BY_NAME, c.nn, sizeof *c.by_name);
    c.node_idle_head = sc_scratch(sch, B_NODE_IDLE_HEAD, c.nn, sizeof *c.node_idle_head, 0);
    for (size_t i = 0; i <= c.nn; i++)
        c.node_idle_head[i] = -1;
    c.idle_next = sc_scratch(sch, B_IDLE_NEXT, c.ne, sizeof *c.idle_next, 0);
    c.phase_a = sc_scratch(sch, B_PHASE_A, c.ne, sizeof *c.phase_a, 0);
    c.phase_c = sc_scratch(sch, B_PHASE_C, c.ne, sizeof *c.phase_c, 0);
    sc_prepare(&c);

    /* A: executors of closed, unschedulable or unknown sessions go back. */
    for (size_t k = 0; k < c.nphase_a; k++) {
        s_exec *x = &c.execs[c.phase_a[k]];
        x->taken = 1;
        if (x->sess >= 0) {
            c.sess[x->sess].alloc--;
            if (c.sess[x->sess].app >= 0)
                c.apps[c.sess[x->sess].app].alloc--;
        }
        sc_decide(sch, FLAME_DECISION_UNBIND, NULL, x->e->id, NULL);
    }

    /* B: hand out executors, best tier and smallest share first. */
    sheap h = { sc_scratch(sch, B_SHEAP, c.ns, sizeof(int), 0), 0 };
    c.serving = &h;
    /* heapified at once (O(n)): a heap's top is the best whatever its
     * shape, so the sessions come out in the same order as pushed one by one */
    for (size_t i = 0; i < c.ns; i++)
        if (wants(&c.sess[i])) {
            c.sess[i].queued = 1;
            h.v[h.n++] = (int)i;
        }
    for (size_t i = h.n / 2; i-- > 0;)
        sc_sheap_down(&c, &h, i);
    sc_nheap_build(&c);
    uint64_t min_cpu = UINT64_MAX; /* of every session: the least any asks for */
    for (size_t i = 0; i < c.ns; i++)
        if (c.sess[i].s->resreq.cpu < min_cpu)
            min_cpu = c.sess[i].s->resreq.cpu;
    while (h.n) {
        /* In a full cluster most of the heap starves: once no idle
         * executor is left (to bind or release), no reclaim is left, and
         * the node with the most free cpu lacks the least any session asks
         * for (free room only shrinks from then on), no session can be
         * given anything more this cycle: the rest is not looked at. */
        if (!c.idle_left && c.reclaims >= MAX_RECLAIMS_PER_CYCLE && min_cpu > 0 &&
            (!c.nheap_len || c.nodes[c.nheap[0]].free.cpu < min_cpu))
            break;
        /* s stays on top while it is given an executor (nothing else
         * moves in the heap then): one sift instead of a pop and a push */
        s_sess *s = &c.sess[h.v[0]];
        if (!wants(s)) {
            sc_sheap_pop(&c, &h);
            continue;
        }
        if (app_full(&c, s)) {
            sc_sheap_pop(&c, &h);
            if (!s->reclaimed)
                sc_reclaim_in_app(&c, s);
            s->starving = 1;
            continue;
        }
        if (sc_give_idle(&c, s) || sc_give_new(&c, s) || sc_give_by_release(&c, s)) {
            s->alloc++;
            if (s->app >= 0)
                c.apps[s->app].alloc++;
            if (wants(s))
                sc_sheap_down(&c, &h, 0);
            else
                sc_sheap_pop(&c, &h);
            continue;
        }
        sc_sheap_pop(&c, &h);
        if (!s->reclaimed)
            sc_reclaim(&c, s);
        s->starving = 1;
    }

    /* C: idle executors past their delay_release go. */
    for (size_t k = 0; k < c.nphase_c; k++) {
        s_exec *x = &c.execs[c.phase_c[k]];
        if (!x->taken && now_ms - x->e->idle_since_ms >= delay_of(&c, x->app)) {
            x->taken = 1;
            sc_decide(sch, FLAME_DECISION_RELEASE, NULL, x->e->id, NULL);
        }
    }

    fl_map_free(&c.nm);
    fl_map_free(&c.am);
    fl_map_free(&c.sm);
    for (size_t i = 0; i < c.na; i++)
        free(c.apps[i].idle);
    sc_view_close(&v);
    *decisions = sc_decisions_out(sch, snap->decision_size);
    *count = sch->ndec;
    return FLAME_OK;
}
