/* service.c: a C program serving flame.v1 Instance on the Unix socket named
 * by $FLAME_INSTANCE_ENDPOINT (the host shim's contract): flame_service_run,
 * the task result's setters, and the Instance methods (instance.h), which
 * turn the protocol's messages into a flame_service's callbacks and back;
 * serve.c carries them over HTTP/2.
 * Threads: flame_service_run blocks SIGTERM/SIGINT and serves on the
 * caller's thread (every callback of the flame_service runs on it, one at a
 * time, so a service needs no locks of its own) until one comes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "flame/service.h"
#include "instance.h"
#include "result.h"
#include "rpc/rpc.h"
#include "serve.h"
#include "util/util.h"

#include "shim.pb-c.h"

flame_status flame_task_result_set_output(flame_task_result *r, const void *data, size_t len)
{
    if (!r)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_task_result_set_output: result is NULL");
    free(r->output);
    r->output = fl_memdup(data ? data : "", len ? len : 1);
    r->output_len = len;
    r->has_output = true;
    return FLAME_OK;
}

flame_status flame_task_result_set_message(flame_task_result *r, const char *message)
{
    if (!r)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_task_result_set_message: result is NULL");
    free(r->message);
    r->message = fl_strdup(message);
    return FLAME_OK;
}

void fl_task_result_clear(flame_task_result *r)
{
    free(r->output);
    free(r->message);
    memset(r, 0, sizeof *r);
}

static void reply_result(fl_instance_reply_fn reply, void *arg, int rc, const char *message)
{
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    r.return_code = rc;
    if (message) {
        r._message_case = FLAME__V1__RESULT___MESSAGE_MESSAGE;
        r.message = (char *)message;
    }
    reply(&r.base, arg);
}

static void on_enter(const flame_service *svc, const ProtobufCMessage *m,
                     fl_instance_reply_fn reply, void *arg)
{
    const Flame__V1__SessionContext *req = (const Flame__V1__SessionContext *)m;
    flame_session_context sc = { req->session_id,
                                 req->application ? req->application->name : "",
                                 { NULL, 0 } };
    if (req->_common_data_case) {
        sc.common_data.data = req->common_data.data ? req->common_data.data : (const uint8_t *)"";
        sc.common_data.len = req->common_data.len;
    }
    char *msg = NULL;
    int rc = svc->on_session_enter ? svc->on_session_enter(&sc, &msg, svc->payload) : 0;
    reply_result(reply, arg, rc, msg);
    free(msg);
}

static void on_invoke(const flame_service *svc, const ProtobufCMessage *m,
                      fl_instance_reply_fn reply, void *arg)
{
    const Flame__V1__TaskContext *req = (const Flame__V1__TaskContext *)m;
    flame_task_context tc = { req->task_id, req->session_id, { NULL, 0 } };
    if (req->_input_case) {
        tc.input.data = req->input.data ? req->input.data : (const uint8_t *)"";
        tc.input.len = req->input.len;
    }
    flame_task_result res = { 0 };
    int rc = svc->on_task_invoke ? svc->on_task_invoke(&tc, &res, svc->payload) : 0;
    Flame__V1__TaskResult r = FLAME__V1__TASK_RESULT__INIT;
    r.return_code = rc;
    if (res.has_output) {
        r._output_case = FLAME__V1__TASK_RESULT___OUTPUT_OUTPUT;
        r.output.data = res.output;
        r.output.len = res.output_len;
    }
    if (res.message) {
        r._message_case = FLAME__V1__TASK_RESULT___MESSAGE_MESSAGE;
        r.message = res.message;
    }
    reply(&r.base, arg);
    fl_task_result_clear(&res);
}

static void on_invoke_batch(const flame_service *svc, const ProtobufCMessage *m,
                            fl_instance_reply_fn reply, void *arg)
{
    const Flame__V1__TaskContextBatch *req = (const Flame__V1__TaskContextBatch *)m;
    size_t n = req->n_tasks;
    flame_task_result *res = fl_calloc(n + 1, sizeof *res);
    Flame__V1__TaskResult *rs = fl_calloc(n + 1, sizeof *rs);
    Flame__V1__TaskResult **rp = fl_calloc(n + 1, sizeof *rp);
    flame_task_context *tc = fl_calloc(n + 1, sizeof *tc);
    flame_task_result **resp = fl_calloc(n + 1, sizeof *resp);
    int *rcs = fl_calloc(n + 1, sizeof *rcs);
    for (size_t i = 0; i < n; i++) {
        const Flame__V1__TaskContext *t = req->tasks[i];
        tc[i] = (flame_task_context){ t->task_id, t->session_id, { NULL, 0 } };
        if (t->_input_case) {
            tc[i].input.data = t->input.data ? t->input.data : (const uint8_t *)"";
            tc[i].input.len = t->input.len;
        }
        resp[i] = &res[i];
    }
    bool together = svc->version >= 2 && svc->on_task_invoke_batch;
    if (together)
        svc->on_task_invoke_batch(tc, n, rcs, resp, svc->payload);
    for (size_t i = 0; i < n; i++) {
        flame__v1__task_result__init(&rs[i]);
        rs[i].return_code = together              ? rcs[i]
                            : svc->on_task_invoke ? svc->on_task_invoke(&tc[i], &res[i], svc->payload)
                                                  : 0;
        if (res[i].has_output) {
            rs[i]._output_case = FLAME__V1__TASK_RESULT___OUTPUT_OUTPUT;
            rs[i].output.data = res[i].output;
            rs[i].output.len = res[i].output_len;
        }
        if (res[i].message) {
            rs[i]._message_case = FLAME__V1__TASK_RESULT___MESSAGE_MESSAGE;
            rs[i].message = res[i].message;
        }
        rp[i] = &rs[i];
    }
    Flame__V1__TaskResultBatch r = FLAME__V1__TASK_RESULT_BATCH__INIT;
    r.n_results = n;
    r.results = rp;
    reply(&r.base, arg);
    for (size_t i = 0; i < n; i++)
        fl_task_result_clear(&res[i]);
    free(res);
    free(rs);
    free(rp);
    free(tc);
    free(resp);
    free(rcs);
}

static void on_leave(const flame_service *svc, const ProtobufCMessage *req,
                     fl_instance_reply_fn reply, void *arg)
{
    (void)req;
    if (svc->on_session_leave)
        svc->on_session_leave(svc->payload);
    reply_result(reply, arg, 0, NULL);
}

static const struct {
    const char *path;
    const ProtobufCMessageDescriptor *input;
    void (*fn)(const flame_service *svc, const ProtobufCMessage *req, fl_instance_reply_fn reply,
               void *arg);
} methods[FL_INSTANCE_N] = {
    [FL_INSTANCE_ENTER] = { "/flame.v1.Instance/OnSessionEnter",
                            &flame__v1__session_context__descriptor, on_enter },
    [FL_INSTANCE_INVOKE] = { "/flame.v1.Instance/OnTaskInvoke",
                             &flame__v1__task_context__descriptor, on_invoke },
    [FL_INSTANCE_LEAVE] = { "/flame.v1.Instance/OnSessionLeave",
                            &flame__v1__empty_request__descriptor, on_leave },
    [FL_INSTANCE_BATCH] = { "/flame.v1.Instance/OnTaskInvokeBatch",
                            &flame__v1__task_context_batch__descriptor, on_invoke_batch },
};

int fl_instance_method_find(const char *path, size_t len)
{
    for (int m = 0; m < FL_INSTANCE_N; m++)
        if (strlen(methods[m].path) == len && memcmp(methods[m].path, path, len) == 0)
            return m;
    return -1;
}

const char *fl_instance_method_path(fl_instance_method m)
{
    return methods[m].path;
}

int fl_instance_call(const flame_service *svc, fl_instance_method m, const uint8_t *req,
                     size_t len, fl_instance_reply_fn reply, void *arg, char *why,
                     size_t why_size)
{
    ProtobufCMessage *msg = rpc_unpack(methods[m].input, len, req);
    if (!msg) {
        snprintf(why, why_size, "%s: malformed request message", methods[m].path);
        return RPC_INVALID_ARGUMENT;
    }
    char bad[160];
    if (!rpc_message_valid(msg, bad, sizeof bad)) {
        snprintf(why, why_size, "%s: %s", methods[m].path, bad);
        protobuf_c_message_free_unpacked(msg, NULL);
        return RPC_INVALID_ARGUMENT;
    }
    methods[m].fn(svc, msg, reply, arg);
    protobuf_c_message_free_unpacked(msg, NULL);
    return RPC_OK;
}

flame_status flame_service_run(const flame_service *service)
{
    if (!service)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_service_run: service is NULL");
    const char *path = getenv("FLAME_INSTANCE_ENDPOINT");
    if (!path || !*path)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "FLAME_INSTANCE_ENDPOINT is not set: run this service under a Flame "
                        "executor manager (host shim)");
    if (strncmp(path, "unix://", 7) == 0)
        path += 7;
    else if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    /* the signals end the loop through a descriptor in its poll set; they
     * stay blocked in the threads this one starts later */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return fl_error(FLAME_ERR_INTERNAL, "signalfd: %s", strerror(e));
    }
    fl_serve *srv = fl_serve_new(path, service, RPC_DEFAULT_MAX_MESSAGE);
    flame_status st = srv ? fl_serve_run(srv, sfd) : FLAME_ERR_UNAVAILABLE;
    fl_serve_free(srv);
    close(sfd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return st;
}
