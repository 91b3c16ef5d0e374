/* Tasks: create one or many, get, list, wait (Frontend calls). No state
 * of its own: safe from any thread. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

int flame_task_state_is_terminal(flame_task_state s)
{
    return s == FLAME_TASK_SUCCEED || s == FLAME_TASK_FAILED || s == FLAME_TASK_CANCELLED;
}

flame_status flame_task_create(flame_task **out, flame_session *s, const void *input, size_t len)
{
    if (!s)
        return fl_client_bad_arg("flame_task_create", "session is NULL");
    Flame__V1__TaskSpec spec = FLAME__V1__TASK_SPEC__INIT;
    spec.session_id = s->id;
    if (input) {
        spec._input_case = FLAME__V1__TASK_SPEC___INPUT_INPUT;
        spec.input.data = (uint8_t *)input;
        spec.input.len = len;
    }
    Flame__V1__CreateTaskRequest r = FLAME__V1__CREATE_TASK_REQUEST__INIT;
    r.task = &spec;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(s->client, FE("CreateTask"), &r.base,
                                     &flame__v1__task__descriptor, &resp);
    if (st)
        return st;
    if (out)
        *out = fl_task_from((Flame__V1__Task *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

#define CREATE_MANY_BYTES (1u << 20) /* per call */
#define CREATE_MANY_TASKS 1024 /* the server's default cluster.limits.max_tasks_per_request */

flame_status flame_task_create_many(flame_session *s, const flame_bytes *inputs, size_t n,
                                    uint64_t *ids)
{
    if (!s)
        return fl_client_bad_arg("flame_task_create_many", "session is NULL");
    ProtobufCBinaryData *bins = inputs ? fl_calloc(CREATE_MANY_TASKS, sizeof *bins) : NULL;
    size_t done = 0;
    flame_status st = FLAME_OK;
    while (done < n && !st) {
        Flame__V1__CreateTasksRequest r = FLAME__V1__CREATE_TASKS_REQUEST__INIT;
        r.session_id = s->id;
        size_t k = 0, bytes = 0;
        if (inputs) {
            /* tasks without input cannot ride in `inputs`: send them alone */
            if (!inputs[done].data) {
                for (; done + k < n && k < CREATE_MANY_TASKS && !inputs[done + k].data; k++)
                    ;
                r.count = (uint32_t)k;
            } else {
                for (; done + k < n && k < CREATE_MANY_TASKS && inputs[done + k].data; k++) {
                    if (k && bytes + inputs[done + k].len > CREATE_MANY_BYTES)
                        break;
                    bins[k].data = (uint8_t *)inputs[done + k].data;
                    bins[k].len = inputs[done + k].len;
                    bytes += inputs[done + k].len + 8;
                }
                r.n_inputs = k;
                r.inputs = bins;
            }
        } else {
            k = n - done < CREATE_MANY_TASKS ? n - done : CREATE_MANY_TASKS;
            r.count = (uint32_t)k;
        }
        ProtobufCMessage *resp;
        st = fl_client_call(s->client, FE("CreateTasks"), &r.base,
                            &flame__v1__create_tasks_response__descriptor, &resp);
        if (st == FLAME_ERR_UNIMPLEMENTED && done == 0) { /* Flame's own server */
            free(bins);
            return fl_client_create_each(s, inputs, n, ids);
        }
        if (st)
            break;
        Flame__V1__CreateTasksResponse *cr = (Flame__V1__CreateTasksResponse *)resp;
        for (size_t i = 0; ids && i < k; i++)
            ids[done + i] = cr->first_task_id + i;
        protobuf_c_message_free_unpacked(resp, NULL);
        done += k;
    }
    free(bins);
    return st;
}

flame_status flame_task_get(flame_task **out, flame_session *s, const char *task_id)
{
    if (!out || !s || !task_id)
        return fl_client_bad_arg("flame_task_get", "out, session and task id are required");
    Flame__V1__GetTaskRequest r = FLAME__V1__GET_TASK_REQUEST__INIT;
    r.session_id = s->id;
    r.task_id = (char *)task_id;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(s->client, FE("GetTask"), &r.base,
                                     &flame__v1__task__descriptor, &resp);
    if (st)
        return st;
    *out = fl_task_from((Flame__V1__Task *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_task_list(flame_task ***out, size_t *count, flame_session *s)
{
    if (!out || !count || !s)
        return fl_client_bad_arg("flame_task_list", "out, count and session are required");
    Flame__V1__ListTaskRequest r = FLAME__V1__LIST_TASK_REQUEST__INIT;
    r.session_id = s->id;
    rpc_stream *st;
    flame_status rc = rpc_stream_open(&st, s->client->ch, FE("ListTask"), &r.base,
                                      s->client->timeout_ms);
    if (rc)
        return rc;
    flame_task **v = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        ProtobufCMessage *m;
        rc = rpc_stream_next(st, &flame__v1__task__descriptor, &m);
        if (rc || !m)
            break;
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 64;
            v = fl_realloc(v, cap * sizeof *v);
        }
        v[n++] = fl_task_from((Flame__V1__Task *)m);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_stream_free(st);
    if (rc) {
        flame_task_list_free(v, n);
        return rc;
    }
    if (!v)
        v = fl_calloc(1, sizeof *v);
    *out = v;
    *count = n;
    return FLAME_OK;
}

static int keep_last(const flame_task *t, void *payload)
{
    flame_task **last = payload;
    if (flame_task_state_is_terminal(t->state))
        *last = fl_task_copy(t); /* the callback's task dies after the call */
    return 0;
}

flame_status flame_task_wait(flame_task **out, flame_session *s, const char *task_id,
                             int timeout_ms)
{
    if (!out)
        return fl_client_bad_arg("flame_task_wait", "out is NULL");
    flame_task *last = NULL;
    flame_status st = flame_task_watch(s, task_id, keep_last, &last, timeout_ms);
    if (st) {
        flame_task_free(last);
        return st;
    }
    *out = last;
    return FLAME_OK;
}
