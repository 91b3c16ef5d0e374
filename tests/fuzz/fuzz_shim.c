/* libFuzzer target: the flame.v1 Instance methods of a C service (the shim
 * messages the executor manager sends: OnSessionEnter, OnTaskInvoke,
 * OnTaskInvokeBatch, OnSessionLeave; service/instance.h), in process, as a
 * script of calls (inject_driver.h) against a service that echoes its
 * input. The script drives rpc/'s dispatch, so the methods are served here
 * through a small rpc_service of this file (a C service serves them with
 * service/serve.c, which fuzz_serve.c covers). */
#include <stdlib.h>
#include <string.h>

#include "flame/service.h"
#include "inject_driver.h"
#include "service/instance.h"
#include "util/util.h"

#include "shim.pb-c.h"

static int enter(const flame_session_context *ctx, char **message, void *payload)
{
    /* a refusal with a message when the session id says so */
    if (ctx->session_id[0] == 'x')
        *message = fl_strdup(ctx->session_id);
    return ctx->session_id[0] == 'x';
}

static int invoke(const flame_task_context *ctx, flame_task_result *r, void *payload)
{
    if (ctx->input.data)
        flame_task_result_set_output(r, ctx->input.data, ctx->input.len);
    if (ctx->task_id[0] == 'x') {
        flame_task_result_set_message(r, ctx->session_id);
        return 1;
    }
    return 0;
}

static flame_service svc = { FLAME_SERVICE_VERSION, enter, invoke, NULL, NULL };

static void reply(const ProtobufCMessage *m, void *call)
{
    rpc_call_reply(call, m);
}

/* rpc/ unpacked the request: packed again, it goes to the method as the
 * bytes a client sent */
static void serve(rpc_call *call, const ProtobufCMessage *req, fl_instance_method m)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = fl_malloc(len + 1);
    protobuf_c_message_pack(req, buf);
    char why[200];
    int code = fl_instance_call(&svc, m, buf, len, reply, call, why, sizeof why);
    if (code != RPC_OK)
        rpc_call_finish(call, code, "%s", why);
    free(buf);
}

static void on_enter(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    serve(call, req, FL_INSTANCE_ENTER);
}

static void on_invoke(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    serve(call, req, FL_INSTANCE_INVOKE);
}

static void on_leave(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    serve(call, req, FL_INSTANCE_LEAVE);
}

static void on_batch(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    serve(call, req, FL_INSTANCE_BATCH);
}

static const rpc_method instance_methods[] = {
    { "OnSessionEnter", RPC_KIND_UNARY, on_enter },
    { "OnTaskInvoke", RPC_KIND_UNARY, on_invoke },
    { "OnSessionLeave", RPC_KIND_UNARY, on_leave },
    { "OnTaskInvokeBatch", RPC_KIND_UNARY, on_batch },
};
static const rpc_service instance = { &flame__v1__instance__descriptor, instance_methods,
                                      FL_ARRAY_LEN(instance_methods) };
static fuzz_server fs;
static fuzz_method methods[8];
static size_t n_methods;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    fs.srv = rpc_server_new(&instance, 1, &svc, NULL);
    n_methods = fuzz_methods(&instance, 1, methods, FL_ARRAY_LEN(methods));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_drive(&fs, methods, n_methods, data, size);
    return 0;
}
