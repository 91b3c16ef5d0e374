/* flame.v1 Backend: executor managers -> session manager. The methods are
 * routed here; the executor life cycle behind them comes with the
 * execution issue, until then each answers UNIMPLEMENTED with a message
 * naming the method. */
#include "sm.h"

static void not_yet(rpc_call *call, const uint8_t *data, size_t len, void *ctx)
{
    rpc_call_finish(call, RPC_UNIMPLEMENTED,
                    "%s: executors are not supported by this session manager yet",
                    rpc_call_method(call));
}

#define BE(name) "/flame.v1.Backend/" name

const rpc_method sm_backend_methods[] = {
    { BE("RegisterNode"), RPC_KIND_UNARY, not_yet },
    { BE("SyncNode"), RPC_KIND_UNARY, not_yet },
    { BE("ReleaseNode"), RPC_KIND_UNARY, not_yet },
    { BE("WatchNode"), RPC_KIND_BIDI, not_yet },
    { BE("RegisterExecutor"), RPC_KIND_UNARY, not_yet },
    { BE("UnregisterExecutor"), RPC_KIND_UNARY, not_yet },
    { BE("BindExecutor"), RPC_KIND_UNARY, not_yet },
    { BE("BindExecutorCompleted"), RPC_KIND_UNARY, not_yet },
    { BE("UnbindExecutor"), RPC_KIND_UNARY, not_yet },
    { BE("UnbindExecutorCompleted"), RPC_KIND_UNARY, not_yet },
    { BE("LaunchTask"), RPC_KIND_UNARY, not_yet },
    { BE("CompleteTask"), RPC_KIND_UNARY, not_yet },
};
const size_t sm_backend_methods_len = FL_ARRAY_LEN(sm_backend_methods);
