/* libFuzzer target: the flame.v1 Instance server of a C service (the shim
 * messages the executor manager sends: OnSessionEnter, OnTaskInvoke,
 * OnTaskInvokeBatch, OnSessionLeave), in process, as a script of calls
 * (inject_driver.h) against a service that echoes its input. */
#include <string.h>

#include "flame/service.h"
#include "inject_driver.h"
#include "service/instance.h"
#include "util/util.h"

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
static fuzz_server fs;
static fuzz_method methods[8];
static size_t n_methods;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    fs.srv = rpc_server_new(&fl_instance_service, 1, &svc, NULL);
    n_methods = fuzz_methods(&fl_instance_service, 1, methods, FL_ARRAY_LEN(methods));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_drive(&fs, methods, n_methods, data, size);
    return 0;
}
