/* service.h: a C program serving flame.v1 Instance on the Unix socket named
 * by $FLAME_INSTANCE_ENDPOINT (the host shim's contract).
 * Threads: flame_service_run blocks SIGTERM/SIGINT, starts one thread that
 * runs the rpc server (every callback of the flame_service runs on it, one
 * at a time, so a service needs no locks of its own), and waits for the
 * signal on the caller's thread; then it shuts the server down and joins. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/service.h"
#include "instance.h"
#include "result.h"
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

static void reply_result(rpc_call *call, int rc, const char *message)
{
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    r.return_code = rc;
    if (message) {
        r._message_case = FLAME__V1__RESULT___MESSAGE_MESSAGE;
        r.message = (char *)message;
    }
    rpc_call_reply(call, &r.base);
}

static void on_enter(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    const flame_service *svc = ctx;
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
    reply_result(call, rc, msg);
    free(msg);
}

static void on_invoke(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    const flame_service *svc = ctx;
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
    rpc_call_reply(call, &r.base);
    fl_task_result_clear(&res);
}

static void on_invoke_batch(rpc_call *call, const ProtobufCMessage *m, void *ctx)
{
    const flame_service *svc = ctx;
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
    rpc_call_reply(call, &r.base);
    for (size_t i = 0; i < n; i++)
        fl_task_result_clear(&res[i]);
    free(res);
    free(rs);
    free(rp);
    free(tc);
    free(resp);
    free(rcs);
}

static void on_leave(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    const flame_service *svc = ctx;
    if (svc->on_session_leave)
        svc->on_session_leave(svc->payload);
    reply_result(call, 0, NULL);
}

static const rpc_method instance_methods[] = {
    { "OnSessionEnter", RPC_KIND_UNARY, on_enter },
    { "OnTaskInvoke", RPC_KIND_UNARY, on_invoke },
    { "OnSessionLeave", RPC_KIND_UNARY, on_leave },
    { "OnTaskInvokeBatch", RPC_KIND_UNARY, on_invoke_batch },
};
const rpc_service fl_instance_service = {
    &flame__v1__instance__descriptor, instance_methods, FL_ARRAY_LEN(instance_methods)
};

static void *serve(void *arg)
{
    rpc_server_run(arg);
    return NULL;
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
    unlink(path);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    rpc_server *srv = rpc_server_new(&fl_instance_service, 1, (void *)service, NULL);
    char *addr = fl_sprintf("unix:%s", path);
    int port = rpc_server_listen(srv, addr);
    free(addr);
    if (port < 0) {
        rpc_server_free(srv);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return fl_error(FLAME_ERR_UNAVAILABLE, "cannot listen on %s", path);
    }
    pthread_t th;
    pthread_create(&th, NULL, serve, srv);
    int sig;
    sigwait(&set, &sig);
    rpc_server_shutdown(srv);
    pthread_join(th, NULL);
    rpc_server_free(srv);
    unlink(path);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return FLAME_OK;
}
