/* The flame_scheduler object: the buffers a cycle uses, kept across
 * cycles; snapshot versions and strides; the decisions. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched/internal.h"

/* Buffer k of sched with room for n + 1 elements of size bytes; zeroed
 * when zero (else the caller writes each element before reading it). */
void *sc_scratch(flame_scheduler *s, int k, size_t n, size_t size, int zero)
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

void *sc_keep(flame_scheduler *s, int k, size_t n, size_t size)
{
    size_t bytes = (n + 1) * size;
    if (s->capbuf[k] < bytes) {
        s->buf[k] = fl_realloc(s->buf[k], bytes);
        s->capbuf[k] = bytes;
    }
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

flame_status sc_view_open(view *v, const flame_sched_snapshot *in)
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

void sc_view_close(view *v)
{
    for (size_t k = 0; k < 4; k++)
        free(v->copies[k]);
}

/* The decisions at the caller's stride. */
const flame_decision *sc_decisions_out(flame_scheduler *s, size_t stride)
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

void sc_decide(flame_scheduler *s, flame_decision_kind kind, const char *node,
                   const char *exec, const char *sess)
{
    if (s->ndec == s->capdec) {
        s->capdec = s->capdec ? s->capdec * 2 : 64;
        s->dec = fl_realloc(s->dec, s->capdec * sizeof *s->dec);
    }
    s->dec[s->ndec++] = (flame_decision){ kind, node, exec, sess };
}
