/* libFuzzer target: the session manager's every request decoder and
 * handler, in process. A fresh engine (storage `none`) per input runs the
 * input as a script of Frontend and Backend calls (inject_driver.h), so
 * state-dependent paths are reached: applications, sessions, tasks, nodes
 * and the executor life cycle. Executor ids are made deterministic
 * ("<node>-0-<n>") so a corpus entry can name them. */
#include <stdlib.h>

#include "inject_driver.h"
#include "sm/sm.h"

static fuzz_method methods[64];
static size_t n_methods;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    const rpc_service services[] = { sm_frontend_service, sm_backend_service };
    n_methods = fuzz_methods(services, 2, methods, FL_ARRAY_LEN(methods));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    o.storage = "none";
    sm_t *sm;
    if (sm_start_inproc(&sm, &o, NULL))
        abort();
    sm->started_ms = 0;
    fuzz_drive(sm->rpc, methods, n_methods, data, size);
    sm_stop_inproc(sm);
    return 0;
}
