/* The orders that break ties (nodes by name, sessions by id, idle
 * executors by id), kept from one cycle to the next: a cycle checks the
 * last order in one pass and sorts again only what changed. An order kept
 * is the one a fresh sort gives, because it is checked strictly sorted
 * (names and ids are distinct; where they are not, a fresh sort is done,
 * as on a first cycle). */
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

static int strictly_sorted(const int *idx, size_t n, sc_cmp cmp, void *arg)
{
    for (size_t i = 1; i < n; i++)
        if (cmp(&idx[i - 1], &idx[i], arg) >= 0)
            return 0;
    return 1;
}

static void sort_fresh(int *idx, size_t n, sc_cmp cmp, void *arg)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = (int)i;
    qsort_r(idx, n, sizeof *idx, cmp, arg);
}

void sc_order(int *idx, size_t n, size_t *last_n, sc_cmp cmp, void *arg)
{
    if (n != *last_n || !strictly_sorted(idx, n, cmp, arg))
        sort_fresh(idx, n, cmp, arg);
    *last_n = n;
}

/* idle[0..n): the idle executors in index order (c->execs[j].idle set).
 * On return, sorted by id: the last cycle's sorted list with those no
 * longer idle taken out, merged with the new ones sorted alone. */
void sc_order_idle(cycle *c, int *idle, size_t n, sc_cmp cmp, void *arg)
{
    flame_scheduler *s = c->sch;
    int *last = sc_keep(s, B_IDLE_SORTED, c->ne, sizeof *last);
    size_t kept = 0, fresh = 0;
    for (size_t k = 0; k < s->idle_sorted_n; k++) {
        int j = last[k];
        if ((size_t)j < c->ne && c->execs[j].idle == 1) {
            c->execs[j].idle = 2;
            last[kept++] = j;
        }
    }
    int *add = sc_scratch(s, B_IDLE_ADDED, n, sizeof *add, 0);
    for (size_t k = 0; k < n; k++)
        if (c->execs[idle[k]].idle == 1)
            add[fresh++] = idle[k];
    if (fresh > 1)
        qsort_r(add, fresh, sizeof *add, cmp, arg);
    size_t a = 0, b = 0, o = 0;
    while (a < kept || b < fresh)
        idle[o++] = b == fresh || (a < kept && cmp(&last[a], &add[b], arg) < 0) ? last[a++]
                                                                              : add[b++];
    if (!strictly_sorted(idle, n, cmp, arg)) { /* moved executors, or ids alike */
        for (size_t k = 0, m = 0; k < c->ne && m < n; k++)
            if (c->execs[k].idle)
                idle[m++] = (int)k;
        qsort_r(idle, n, sizeof *idle, cmp, arg);
    }
    memcpy(last, idle, n * sizeof *idle);
    s->idle_sorted_n = n;
}
