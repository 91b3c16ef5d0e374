/* Flame in C — the one error convention.
 *
 * Every fallible function returns a flame_status: FLAME_OK (0) or a negative
 * code from this enum. On failure it also sets a thread-local message that
 * flame_error_last() returns. The values are frozen: new codes are only ever
 * appended.
 */
#ifndef FLAME_ERROR_H
#define FLAME_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum flame_status {
    FLAME_OK = 0,
    FLAME_ERR_INVALID_ARGUMENT = -1,  /* bad input from the caller */
    FLAME_ERR_NOT_FOUND = -2,         /* unknown application/session/task */
    FLAME_ERR_ALREADY_EXISTS = -3,    /* duplicate name or id */
    FLAME_ERR_FAILED_PRECONDITION = -4, /* illegal in the current state */
    FLAME_ERR_UNAVAILABLE = -5,       /* cannot reach the server */
    FLAME_ERR_TIMEOUT = -6,           /* a deadline or wait timeout passed */
    FLAME_ERR_CANCELLED = -7,         /* the call or watch was cancelled */
    FLAME_ERR_RESOURCE_EXHAUSTED = -8, /* too large, or out of capacity */
    FLAME_ERR_UNIMPLEMENTED = -9,     /* the peer does not know the call */
    FLAME_ERR_NOMEM = -10,            /* out of memory */
    FLAME_ERR_IO = -11,               /* file or storage error */
    FLAME_ERR_CONFIG = -12,           /* bad configuration file */
    FLAME_ERR_INTERNAL = -13,         /* anything else */
    FLAME_ERR_TASK_FAILED = -14,      /* the task ran and failed */
    FLAME_ERR_PERMISSION_DENIED = -15, /* the caller's role may not do this */
    FLAME_ERR_UNAUTHENTICATED = -16   /* who the caller is could not be established */
} flame_status;

/* The message of the last failure on this thread ("" when none). The string
 * is owned by the library and valid until the next flame_* call on this
 * thread. Never NULL. Thread-safe (thread-local). */
const char *flame_error_last(void);

/* The code of the last failure on this thread (FLAME_OK when none). */
flame_status flame_error_last_code(void);

/* Clears this thread's last error. */
void flame_error_clear(void);

/* A static, human-readable name for a status code, e.g. "NOT_FOUND". */
const char *flame_status_str(flame_status status);

#ifdef __cplusplus
}
#endif

#endif
