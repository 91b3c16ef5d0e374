/* Flame in C — writing an application (service) in C.
 *
 * A service gets on_session_enter once per session, on_task_invoke per task,
 * on_session_leave at the end. It runs either as a host-shim process
 * (flame_service_run serves flame.v1 Instance on $FLAME_INSTANCE_ENDPOINT) or
 * in-process (executor.h). Implemented by the execution issue; this header
 * fixes the API.
 */
#ifndef FLAME_SERVICE_H
#define FLAME_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a service sees of its session (valid during the callback only). */
typedef struct flame_session_context {
    const char *session_id;
    const char *application;
    flame_bytes common_data;    /* data == NULL: unset */
} flame_session_context;

typedef struct flame_task_context {
    const char *task_id;
    const char *session_id;
    flame_bytes input;          /* data == NULL: unset */
} flame_task_context;

/* A task's result: output (copied by the library after the callback) or a
 * failure message. Set through flame_task_result_set_* in the callback. */
typedef struct flame_task_result flame_task_result;

#define FLAME_SERVICE_VERSION 2

typedef struct flame_service {
    int version;                 /* FLAME_SERVICE_VERSION */
    /* Return 0 to accept the session; non-zero refuses it (message via
     * message_out, a malloc'ed string the library frees, may stay NULL). */
    int (*on_session_enter)(const flame_session_context *ctx, char **message_out, void *payload);
    /* Return 0 for success (output set with flame_task_result_set_output),
     * non-zero for failure (message set with flame_task_result_set_message). */
    int (*on_task_invoke)(const flame_task_context *ctx, flame_task_result *result, void *payload);
    void (*on_session_leave)(void *payload);
    void *payload;
    /* Version 2, optional (NULL: on_task_invoke per task): runs the n tasks
     * of one OnTaskInvokeBatch at once, setting rcs[i] and results[i] as
     * on_task_invoke would (a service that can overlap them, e.g. by
     * pipelining them to another process). */
    void (*on_task_invoke_batch)(const flame_task_context *tasks, size_t n, int *rcs,
                                 flame_task_result **results, void *payload);
} flame_service;

/* Copies len bytes as the task's output. */
flame_status flame_task_result_set_output(flame_task_result *result, const void *data, size_t len);
/* Copies a NUL-terminated message (the failure reason). */
flame_status flame_task_result_set_message(flame_task_result *result, const char *message);

/* A service built into libflame, by name ("flmping"), or NULL. Static;
 * never free. An application whose command is "inproc:NAME" runs it inside
 * the executor manager (no child process, no socket hop). */
const flame_service *flame_builtin_service(const char *name);

/* Serves the service over the Instance protocol on the Unix socket named by
 * $FLAME_INSTANCE_ENDPOINT until SIGTERM or SIGINT (the executor manager
 * sends SIGTERM after OnSessionLeave), then unlinks the socket. Blocks; the
 * callbacks run on the calling thread, one at a time. It blocks SIGTERM and
 * SIGINT in the calling thread only: a service that starts threads of its
 * own before calling it should block them in those threads too (else the
 * signal may end the process at once). FLAME_ERR_INVALID_ARGUMENT: no
 * $FLAME_INSTANCE_ENDPOINT; FLAME_ERR_UNAVAILABLE: cannot listen there
 * (flame_error_last() says why: a path too long, bind failed);
 * FLAME_ERR_INTERNAL: the signal or poll machinery failed. */
flame_status flame_service_run(const flame_service *service);

#ifdef __cplusplus
}
#endif

#endif
