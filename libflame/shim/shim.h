/* Shims: how an executor hosts an application's code for one session.
 * Threads: a shim is used by one executor thread at a time. */
#ifndef FL_SHIM_H
#define FL_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/executor.h"
#include "flame/service.h"
#include "service/result.h"

/* What a shim needs to enter a session. */
typedef struct fl_shim_session {
    const char *executor_id;
    const char *session_id;
    const char *application;
    const void *app_spec;       /* const Flame__V1__ApplicationSpec * */
    const char *command;        /* what to run (the installation's or the
                                 * application's command), or NULL */
    const char *working_directory; /* where to run it; NULL: a directory of
                                    * the shim's own */
    flame_bytes common_data;
    const char *endpoint;       /* FLAME_ENDPOINT for the service */
    const char *ca_file;        /* FLAME_CA_FILE for the service (TLS), or NULL */
    const char *work_dir;       /* per-executor directories live below */
    const char *log_dir;
    const char *bin_dir;        /* where built-in service programs live */
    int task_timeout_ms;        /* 0: none */
    const char *sandbox;        /* the level its service runs at (sandbox/spawn.h) */
    const char *network;        /* "none" (NULL) or "host" */
    uint64_t cpus, memory;      /* the session's resreq: the sandbox's limits; 0: none */
    const void *session_spec;   /* const Flame__V1__SessionSpec * (tokens, batch_size), or NULL */
    const struct fl_installation *installation; /* its variables and release
                                                 * directory (install.h), or NULL */
    const char *cache_endpoint; /* FLAME_CACHE_ENDPOINT for the service, or NULL */
    const char *slot;           /* names the service's directory and socket
                                 * instead of executor_id (a service started
                                 * ahead, em/pool.c), or NULL */
} fl_shim_session;

typedef struct fl_shim fl_shim;

typedef struct fl_shim_ops {
    const char *name;
    /* Starts the service and enters the session. On failure *message gets
     * a malloc'ed reason. */
    flame_status (*enter)(fl_shim *sh, const fl_shim_session *ctx, char **message);
    /* Runs one task. Returns FLAME_OK when the service answered (rc and
     * result set); an error when the service is gone (crashed), with
     * *message saying so: the caller restarts it with enter(). */
    flame_status (*invoke)(fl_shim *sh, const flame_task_context *task, int *rc,
                           flame_task_result *result, char **message);
    /* Optional: runs n tasks in one call. FLAME_OK: every rcs[i]/results[i]
     * is set. FLAME_ERR_UNIMPLEMENTED: the service cannot (use invoke).
     * Another error: the service is gone; no result is known. */
    flame_status (*invoke_batch)(fl_shim *sh, const flame_task_context *tasks, size_t n,
                                 int *rcs, flame_task_result *results, char **message);
    /* Leaves the session and stops the service (bounded in time). */
    void (*leave)(fl_shim *sh);
    void (*free)(fl_shim *sh);
    /* Optional: leaves the session but keeps the service (and its sandbox)
     * running, for enter() of the next session of the same application to
     * use (sandbox reuse, em/exec.c). false: it could not, and left and
     * stopped as leave() does. */
    bool (*leave_keep)(fl_shim *sh);
    /* Optional (warm starts, em/pool.c): starts the service ctx describes
     * without entering a session (ctx->session_id is not read), for a
     * later enter() of one session to use; free() stops it. */
    flame_status (*prestart)(fl_shim *sh, const fl_shim_session *ctx, char **message);
    /* With prestart: the pid of the service started and not entered, while
     * it runs; 0 once it has exited (reaped). */
    int (*warm_pid)(fl_shim *sh);
} fl_shim_ops;

struct fl_shim {
    const fl_shim_ops *ops;
};

fl_shim *fl_shim_host_new(void);
fl_shim *fl_shim_inproc_new(const flame_service *service);
/* The stdio and REST shims (bridge.c): the host shim running flame-shim,
 * which speaks to the application's program over its stdin/stdout or HTTP. */
fl_shim *fl_shim_stdio_new(const flame_service *unused);
fl_shim *fl_shim_rest_new(const flame_service *unused);

/* What picks an application's shim. */
typedef struct fl_shim_choice {
    int shim;                     /* the application's Flame__V1__Shim */
    const char *command;          /* its command, or NULL */
    const flame_service *service; /* the embedding program's service for it, or NULL */
} fl_shim_choice;

/* Creates the shim an application runs in: inproc when the embedding
 * program serves it or its command is "inproc:NAME" (a built-in service),
 * else the one for its declared shim (table in shim.c). On error *message
 * gets a malloc'ed reason: FLAME_ERR_UNIMPLEMENTED for a shim this executor
 * does not have, FLAME_ERR_NOT_FOUND for an unknown built-in. */
flame_status fl_shim_new(fl_shim **out, const fl_shim_choice *c, char **message);

#endif
