/* The stdio and REST shims, executor side: the host shim runs flame-shim
 * (daemons/shim/, found next to the executor manager) inside the session's
 * sandbox, with the application's command and arguments after "--";
 * flame-shim serves flame.v1 Instance to us and speaks to the program over
 * its stdin/stdout (stdio) or HTTP (rest). So the program gets the sandbox,
 * environment, log file, restarts and installers the host shim gives any
 * service, and needs no Flame SDK.
 * Threads: a shim is used by one executor thread at a time. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "util/util.h"

#include "types.pb-c.h"

#define BRIDGE_PROGRAM "flame-shim"

typedef struct bridge_shim {
    fl_shim base;
    fl_shim *host;
    bool rest;
} bridge_shim;

/* The directory of a Python venv the program lives in (bin/../pyvenv.cfg),
 * or NULL: flame-shim puts its bin on the program's PATH, and naming it
 * shows it (read-only) inside the sandbox. */
static char *venv_of(const char *command)
{
    if (!command || command[0] != '/')
        return NULL;
    char *d = fl_strdup(command);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(d, '/');
        if (!slash || slash == d) {
            free(d);
            return NULL;
        }
        *slash = 0;
    }
    char *cfg = fl_sprintf("%s/pyvenv.cfg", d);
    bool is = access(cfg, R_OK) == 0;
    free(cfg);
    if (!is) {
        free(d);
        return NULL;
    }
    return d;
}

/* The installation of the program a symlink names (a venv's python is a
 * link to its base interpreter, which may live under a private home, e.g.
 * pyenv's): the directory above the real file's bin/, or NULL when the
 * command is no link to elsewhere. Naming it to flame-shim (--see) shows it
 * read-only inside the sandbox. */
static char *real_prefix(const char *command)
{
    if (!command || command[0] != '/')
        return NULL;
    char *real = realpath(command, NULL);
    if (!real || strcmp(real, command) == 0) {
        free(real);
        return NULL;
    }
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(real, '/');
        if (!slash || slash == real) {
            free(real);
            return NULL;
        }
        *slash = 0;
    }
    return real;
}

static flame_status bridge_enter(fl_shim *sh, const fl_shim_session *ctx, char **message)
{
    bridge_shim *b = (bridge_shim *)sh;
    *message = NULL;
    const Flame__V1__ApplicationSpec *spec = ctx->app_spec;
    bool has_cmd = ctx->command && ctx->command[0];
    const char *url = spec->rest_url && spec->rest_url[0] ? spec->rest_url : NULL;
    if (!has_cmd && !(b->rest && url)) {
        *message = fl_sprintf("application %s has no command to run%s", ctx->application,
                              b->rest ? " and no rest_url" : "");
        return FLAME_ERR_FAILED_PRECONDITION;
    }
    char *owned[4] = { 0 };
    size_t max = spec->n_arguments + 16, n = 0;
    char **args = fl_calloc(max, sizeof *args);
    args[n++] = b->rest ? "rest" : "stdio";
    if (ctx->task_timeout_ms > 0) {
        /* flame-shim gives up first, fails the task and restarts the
         * program, so the session keeps its flame-shim */
        args[n++] = "--timeout-ms";
        args[n++] = owned[0] = fl_sprintf("%d", ctx->task_timeout_ms - ctx->task_timeout_ms / 10);
    }
    if (!b->rest && spec->stdio_mode && strcmp(spec->stdio_mode, "line") == 0)
        args[n++] = "--line";
    if (b->rest && url) {
        args[n++] = "--url";
        args[n++] = (char *)url;
    }
    if (b->rest && spec->rest_health && spec->rest_health[0]) {
        args[n++] = "--health";
        args[n++] = spec->rest_health;
    }
    if (has_cmd && (owned[1] = venv_of(ctx->command))) {
        args[n++] = "--venv";
        args[n++] = owned[1];
    }
    if (has_cmd && (owned[2] = real_prefix(ctx->command))) {
        args[n++] = "--see";
        args[n++] = owned[2];
    }
    if (has_cmd) {
        args[n++] = "--";
        args[n++] = (char *)ctx->command;
        for (size_t i = 0; i < spec->n_arguments; i++)
            args[n++] = spec->arguments[i];
    }
    Flame__V1__ApplicationSpec as = *spec;
    as.arguments = args;
    as.n_arguments = n;
    fl_shim_session c = *ctx;
    c.app_spec = &as;
    c.command = BRIDGE_PROGRAM;
    flame_status st = b->host->ops->enter(b->host, &c, message);
    for (size_t i = 0; i < FL_ARRAY_LEN(owned); i++)
        free(owned[i]);
    free(args);
    return st;
}

static flame_status bridge_invoke(fl_shim *sh, const flame_task_context *task, int *rc,
                                  flame_task_result *result, char **message)
{
    bridge_shim *b = (bridge_shim *)sh;
    return b->host->ops->invoke(b->host, task, rc, result, message);
}

static flame_status bridge_invoke_batch(fl_shim *sh, const flame_task_context *tasks, size_t n,
                                        int *rcs, flame_task_result *results, char **message)
{
    bridge_shim *b = (bridge_shim *)sh;
    return b->host->ops->invoke_batch(b->host, tasks, n, rcs, results, message);
}

static void bridge_leave(fl_shim *sh)
{
    bridge_shim *b = (bridge_shim *)sh;
    b->host->ops->leave(b->host);
}

static void bridge_free(fl_shim *sh)
{
    bridge_shim *b = (bridge_shim *)sh;
    b->host->ops->free(b->host);
    free(b);
}

static const fl_shim_ops stdio_ops = {
    .name = "stdio",
    .enter = bridge_enter,
    .invoke = bridge_invoke,
    .invoke_batch = bridge_invoke_batch,
    .leave = bridge_leave,
    .free = bridge_free,
};

static const fl_shim_ops rest_ops = {
    .name = "rest",
    .enter = bridge_enter,
    .invoke = bridge_invoke,
    .invoke_batch = bridge_invoke_batch,
    .leave = bridge_leave,
    .free = bridge_free,
};

static fl_shim *bridge_new(bool rest)
{
    bridge_shim *b = fl_calloc(1, sizeof *b);
    b->base.ops = rest ? &rest_ops : &stdio_ops;
    b->host = fl_shim_host_new();
    b->rest = rest;
    return &b->base;
}

fl_shim *fl_shim_stdio_new(const flame_service *unused)
{
    return bridge_new(false);
}

fl_shim *fl_shim_rest_new(const flame_service *unused)
{
    return bridge_new(true);
}
