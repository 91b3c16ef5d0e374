/* flame_session_map: many inputs submitted in one batch, their outcomes
 * collected in input order (what Python's Session.map and Go's Map are).
 * Built on flame_task_create_many and flame_session_watch; the state of a
 * call lives on its stack, so calls may run on many threads at once. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

typedef struct task_index {
    uint64_t id;            /* the task of inputs[index] */
    size_t index;
} task_index;

typedef struct map_run {
    task_index *by_id;      /* sorted by id */
    flame_task_outcome *out;
    size_t n, left;
} map_run;

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = ((const task_index *)a)->id, y = ((const task_index *)b)->id;
    return x < y ? -1 : x > y;
}

/* The input index of task id, or n when it is not one of ours. */
static size_t index_of(const map_run *m, uint64_t id)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t x = m->by_id[mid].id;
        if (x == id)
            return m->by_id[mid].index;
        if (x < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return m->n;
}

static int collect(const flame_task_outcome *o, size_t n, void *payload)
{
    map_run *m = payload;
    for (size_t i = 0; i < n; i++) {
        size_t k = index_of(m, o[i].task_id);
        if (k == m->n || m->out[k].task_id) /* not ours, or already seen */
            continue;
        flame_task_outcome *r = &m->out[k];
        *r = o[i];
        if (o[i].output.data) {
            uint8_t *p = fl_malloc(o[i].output.len + 1);
            if (o[i].output.len)
                memcpy(p, o[i].output.data, o[i].output.len);
            p[o[i].output.len] = 0; /* convenient for text outputs */
            r->output.data = p;
        }
        r->message = fl_strdup(o[i].message);
        m->left--;
    }
    return m->left == 0;
}

void flame_task_outcome_list_free(flame_task_outcome *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free((void *)v[i].output.data);
        free((char *)v[i].message);
    }
    free(v);
}

flame_status flame_session_map(flame_task_outcome **out, flame_session *s,
                               const flame_bytes *inputs, size_t n, int timeout_ms)
{
    if (!out || !s)
        return fl_client_bad_arg("flame_session_map", "out and session are required");
    if (!n) {
        *out = NULL;
        return FLAME_OK;
    }
    uint64_t *ids = fl_calloc(n, sizeof *ids);
    flame_status st = flame_task_create_many(s, inputs, n, ids);
    if (st) {
        free(ids);
        return st;
    }
    /* one call's ids are consecutive, but another client's tasks may come
     * between two calls: look each outcome up by id */
    map_run m = { fl_calloc(n, sizeof *m.by_id), fl_calloc(n, sizeof *m.out), n, n };
    for (size_t i = 0; i < n; i++)
        m.by_id[i] = (task_index){ ids[i], i };
    free(ids);
    qsort(m.by_id, n, sizeof *m.by_id, cmp_id);
    st = flame_session_watch(s, m.by_id[0].id, collect, &m, timeout_ms);
    if (!st && m.left)
        st = fl_error(FLAME_ERR_CANCELLED,
                      "flame_session_map: the session ended before %zu of its %zu tasks did",
                      m.left, n);
    free(m.by_id);
    if (st) {
        flame_task_outcome_list_free(m.out, n);
        return st;
    }
    *out = m.out;
    return FLAME_OK;
}
