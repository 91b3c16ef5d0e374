/* libFuzzer target: the session manager's every request decoder and
 * handler, in process. A fresh engine per input runs the input as a script
 * of Frontend and Backend calls (inject_driver.h), so state-dependent paths
 * are reached: applications, sessions, tasks, nodes and the executor life
 * cycle, and restarts. Storage `none` (fuzz_sm), or with -DFUZZ_SQLITE
 * (fuzz_sm_sqlite) a database in /dev/shm, so a restart restores what the
 * script stored. Executor ids are made deterministic ("<node>-0-<n>") so
 * a corpus entry can name them. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "inject_driver.h"
#include "sm/sm.h"

static fuzz_method methods[64];
static size_t n_methods;
static char storage[128] = "none";
static sm_t *sm;

static void start(fuzz_server *fs)
{
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    o.storage = storage;
    if (sm_start_inproc(&sm, &o, NULL)) {
        fprintf(stderr, "fuzz_sm: cannot start: %s\n", flame_error_last());
        abort();
    }
    sm->started_ms = 0;
    fs->srv = sm->rpc;
}

static void restart(fuzz_server *fs)
{
    sm_stop_inproc(sm);
    start(fs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    const rpc_service services[] = { sm_frontend_service, sm_backend_service };
    n_methods = fuzz_methods(services, 2, methods, FL_ARRAY_LEN(methods));
#ifdef FUZZ_SQLITE
    snprintf(storage, sizeof storage, "sqlite:///dev/shm/flame-fuzz-%d.db", (int)getpid());
#endif
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_server fs = { NULL, restart };
    start(&fs);
    fuzz_drive(&fs, methods, n_methods, data, size);
    sm_stop_inproc(sm);
#ifdef FUZZ_SQLITE
    static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < FL_ARRAY_LEN(suffix); i++) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", storage + 9, suffix[i]);
        unlink(path);
    }
#endif
    return 0;
}
