/* The thread-local last error and the public error/version functions. */
#include <stdio.h>
#include <string.h>

#include "flame/error.h"
#include "flame/version.h"
#include "util.h"

static _Thread_local char last_msg[1024];
static _Thread_local flame_status last_code;

flame_status fl_verror(flame_status status, const char *fmt, va_list ap)
{
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    /* keep it one line */
    for (char *p = last_msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    last_code = status;
    return status;
}

flame_status fl_error(flame_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fl_verror(status, fmt, ap);
    va_end(ap);
    return status;
}

const char *flame_error_last(void)
{
    return last_msg;
}

flame_status flame_error_last_code(void)
{
    return last_code;
}

void flame_error_clear(void)
{
    last_msg[0] = 0;
    last_code = FLAME_OK;
}

const char *flame_status_str(flame_status s)
{
    switch (s) {
    case FLAME_OK: return "OK";
    case FLAME_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case FLAME_ERR_NOT_FOUND: return "NOT_FOUND";
    case FLAME_ERR_ALREADY_EXISTS: return "ALREADY_EXISTS";
    case FLAME_ERR_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case FLAME_ERR_UNAVAILABLE: return "UNAVAILABLE";
    case FLAME_ERR_TIMEOUT: return "TIMEOUT";
    case FLAME_ERR_CANCELLED: return "CANCELLED";
    case FLAME_ERR_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case FLAME_ERR_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case FLAME_ERR_NOMEM: return "NOMEM";
    case FLAME_ERR_IO: return "IO";
    case FLAME_ERR_CONFIG: return "CONFIG";
    case FLAME_ERR_INTERNAL: return "INTERNAL";
    case FLAME_ERR_TASK_FAILED: return "TASK_FAILED";
    case FLAME_ERR_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case FLAME_ERR_UNAUTHENTICATED: return "UNAUTHENTICATED";
    }
    return "UNKNOWN";
}

const char *flame_version(void)
{
    return FLAME_VERSION;
}

int flame_version_number(void)
{
    return FLAME_VERSION_NUMBER;
}
