/* A cycle's view of the snapshot: indices by name (hints first), ranks
 * for ties, what each node has free and each session and application
 * holds, the idle and bound executors. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

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

void sc_prepare(cycle *c)
{
    const flame_sched_snapshot *sn = c->snap;
    int *idle = sc_scratch(c->sch, B_IDLE, c->ne, sizeof *idle, 0);
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
        if ((e->state == FLAME_EXECUTOR_BOUND || e->state == FLAME_EXECUTOR_BINDING) &&
            (x->sess < 0 || !c->sess[x->sess].s->open || !c->sess[x->sess].s->schedulable))
            c->phase_a[c->nphase_a++] = (int)i;
        if (e->state == FLAME_EXECUTOR_IDLE)
            c->phase_c[c->nphase_c++] = (int)i;
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
        if (e->state == FLAME_EXECUTOR_IDLE && x->node >= 0) {
            x->idle = 1;
            idle[c->idle_left++] = (int)i;
        }
    }
    /* each session's bound executors, in one array */
    int *bound = sc_scratch(c->sch, B_BOUND, c->ne, sizeof *bound, 0);
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
    /* ties between nodes go by name, between sessions by id: ranked in the
     * orders kept from the last cycle when they still hold */
    int *norder = c->by_name;
    sc_order(norder, c->nn, &c->sch->nodes_sorted_n, cmp_node_name, (void *)sn->nodes);
    for (size_t i = 0; i < c->nn; i++)
        c->nodes[norder[i]].rank = (uint32_t)i;
    int *order = sc_keep(c->sch, B_ORDER, c->ns, sizeof *order);
    sc_order(order, c->ns, &c->sch->sessions_sorted_n, cmp_session_id, (void *)sn->sessions);
    for (size_t i = 0; i < c->ns; i++)
        c->sess[order[i]].rank = (uint32_t)i;
    /* idle executors are handed out in id order (per application and per
     * node): deterministic */
    sc_order_idle(c, idle, c->idle_left, cmp_exec_id, (void *)sn->executors);
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
