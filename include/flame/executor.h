/* Flame in C — the executor manager as a library.
 *
 * Registers its node with a session manager, keeps the WatchNode stream and
 * runs executors through pluggable shims. Implemented by the execution
 * issue; this header fixes the API.
 */
#ifndef FLAME_EXECUTOR_H
#define FLAME_EXECUTOR_H

#include "error.h"
#include "service.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flame_executor_manager flame_executor_manager;

#define FLAME_EXECUTOR_OPTIONS_VERSION 1

typedef struct flame_executor_options {
    int version;                 /* FLAME_EXECUTOR_OPTIONS_VERSION */
    const char *config_file;     /* Flame's cluster YAML, or NULL */
    const char *endpoint;        /* session manager, default http://127.0.0.1:8080 */
    const char *work_dir;        /* per-executor directories and logs */
} flame_executor_options;

#define FLAME_EXECUTOR_OPTIONS_INIT { FLAME_EXECUTOR_OPTIONS_VERSION, NULL, NULL, NULL }

#ifdef __cplusplus
}
#endif

#endif
