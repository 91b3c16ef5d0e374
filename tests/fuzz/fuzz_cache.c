/* libFuzzer target: the object cache server in process, both protocols on
 * one store, as a script of calls (inject_driver.h): Arrow Flight (DoPut
 * with schemas and batches, PATCH, DoGet of versions, GetFlightInfo,
 * ListFlights, GetSchema, DoAction DELETE) and Flame 0.7's
 * ObjectCacheService (Put and Patch as a header and chunks, Get, Delete,
 * GetMetadata, List). The store keeps files in /dev/shm, so a restart
 * (op 7: the store is opened again) reads back every object the script
 * stored; small limits (256 KiB
 * an object, 1 MiB and 16 objects in memory) reach the size checks and the
 * eviction. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cache/server.h"
#include "inject_driver.h"
#include "install/install.h"
#include "util/util.h"

static fuzz_method methods[32];
static size_t n_methods;
static char root[128];
static flame_cache_server srv;

/* The store: opened per input, and again on a restart (op 7) from what it
 * wrote. The rpc server is made once: every injected call has ended
 * between inputs and at a restart, and making gRPC's server (its event
 * engine) per input costs most of the time and stalls on a loaded machine. */
static void open_store(void)
{
    cache_store_options so = { root, true, 1u << 20, 16, 256u << 10 };
    if (cache_store_open(&srv.store, &so)) {
        fprintf(stderr, "fuzz_cache: cannot open the store: %s\n", flame_error_last());
        abort();
    }
    srv.max_object = so.max_object;
}

static void restart(fuzz_server *fs)
{
    cache_store_close(srv.store);
    open_store();
}

static void remove_root(void)
{
    fl_rm_rf(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    const rpc_service services[] = { cache_flight_service, cache07_service };
    n_methods = fuzz_methods(services, 2, methods, FL_ARRAY_LEN(methods));
    snprintf(root, sizeof root, "/dev/shm/flame-fuzz-cache-%d", (int)getpid());
    static char uri[] = "grpc://127.0.0.1:9090";
    srv.uri = uri;
    rpc_server_options ro = RPC_SERVER_OPTIONS_INIT;
    ro.max_message = (256u << 10) + (1u << 20);
    srv.rpc = rpc_server_new(services, FL_ARRAY_LEN(services), &srv, &ro);
    atexit(remove_root);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_server fs = { srv.rpc, restart };
    fl_rm_rf(root);
    open_store();
    fuzz_drive(&fs, methods, n_methods, data, size);
    cache_store_close(srv.store);
    srv.store = NULL;
    return 0;
}
