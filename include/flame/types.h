/* Flame in C — plain types shared by the public headers. */
#ifndef FLAME_TYPES_H
#define FLAME_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Wire enums: values equal flame.v1's. */
typedef enum flame_session_state {
    FLAME_SESSION_OPEN = 0,
    FLAME_SESSION_CLOSED = 1,
    /* Flame 0.7: suspended by a client (its executors unbinding, then
     * none); ResumeSession opens it again. */
    FLAME_SESSION_SUSPENDING = 2,
    FLAME_SESSION_SUSPENDED = 3
} flame_session_state;

typedef enum flame_task_state {
    FLAME_TASK_PENDING = 0,
    FLAME_TASK_RUNNING = 1,
    FLAME_TASK_SUCCEED = 2,
    FLAME_TASK_FAILED = 3,
    FLAME_TASK_CANCELLED = 4
} flame_task_state;

/* Session event codes beside the task states (a task's event code is its
 * new state): 1001 and 1002 are Flame's; 1003 is ours. A session whose
 * latest such event is 1002 or 1003 gets no executor, and the client's
 * waits end with FLAME_ERR_FAILED_PRECONDITION naming the event. */
enum {
    FLAME_EVENT_BIND_FAILED = 1001,   /* an executor failed to enter the session */
    FLAME_EVENT_RETRY_LIMIT = 1002,   /* too many bind failures in a row */
    FLAME_EVENT_UNSCHEDULABLE = 1003  /* no node can ever fit its resreq */
};

typedef enum flame_shim {
    FLAME_SHIM_HOST = 0,
    FLAME_SHIM_WASM = 1,
    FLAME_SHIM_CRI = 3, /* Flame 0.7 */
    FLAME_SHIM_STDIO = 1001, /* ours: stdin/stdout framing (README: Shims) */
    FLAME_SHIM_REST = 1002   /* ours: an HTTP service */
} flame_shim;

typedef enum flame_application_state {
    FLAME_APPLICATION_ENABLED = 0,
    FLAME_APPLICATION_DISABLED = 1
} flame_application_state;

typedef enum flame_executor_state {
    FLAME_EXECUTOR_UNKNOWN = 0,
    FLAME_EXECUTOR_VOID = 1,
    FLAME_EXECUTOR_IDLE = 2,
    FLAME_EXECUTOR_BINDING = 3,
    FLAME_EXECUTOR_BOUND = 4,
    FLAME_EXECUTOR_UNBINDING = 5,
    FLAME_EXECUTOR_RELEASING = 6,
    FLAME_EXECUTOR_RELEASED = 7
} flame_executor_state;

typedef enum flame_node_state {
    FLAME_NODE_UNKNOWN = 0,
    FLAME_NODE_READY = 1,
    FLAME_NODE_NOT_READY = 2
} flame_node_state;

/* The small structs below are values: embedded in other structs and passed
 * in arrays, so their layout is frozen (a new field means a new type). */

/* Resources: whole CPUs, bytes of memory, GPUs. */
typedef struct flame_resreq {
    uint64_t cpu;
    uint64_t memory;
    int32_t gpu;
} flame_resreq;

/* A byte string that is not NUL-terminated. */
typedef struct flame_bytes {
    const uint8_t *data;
    size_t len;
} flame_bytes;

typedef struct flame_env {
    const char *name;
    const char *value;
} flame_env;

/* An event: code (a task state number, or 1001/1002 for session binding
 * failures), optional message (NULL when unset), time in Unix ms. */
typedef struct flame_event {
    int32_t code;
    const char *message;
    int64_t creation_time;
} flame_event;

/* Parses "cpu=1,mem=2g,gpu=0" (k/m/g/t powers of 1024; "memory" also
 * accepted). Keys not given are left as they are in *out. */
int flame_resreq_parse(flame_resreq *out, const char *text);

/* Name of a state, as Flame prints it ("Open", "Pending", "Succeed", ...).
 * Static strings. */
const char *flame_session_state_str(flame_session_state s);
const char *flame_task_state_str(flame_task_state s);
const char *flame_executor_state_str(flame_executor_state s);
const char *flame_shim_str(flame_shim s);
const char *flame_node_state_str(flame_node_state s);

#ifdef __cplusplus
}
#endif

#endif
