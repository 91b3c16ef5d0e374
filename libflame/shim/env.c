/* The service environment (env.h). Threads: pure. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "install/install.h"
#include "util/util.h"

#include "types.pb-c.h"

extern char **environ;

/* A "NAME=value" list being built; a later set of a name replaces it. */
typedef struct envlist {
    char **v;
    size_t n;
} envlist;

static ssize_t find(const envlist *l, const char *name)
{
    size_t k = strlen(name);
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], name, k) == 0 && l->v[i][k] == '=')
            return (ssize_t)i;
    return -1;
}

static void set(envlist *l, const char *name, const char *value)
{
    char *e = fl_sprintf("%s=%s", name, value);
    ssize_t i = find(l, name);
    if (i >= 0) {
        free(l->v[i]);
        l->v[i] = e;
        return;
    }
    l->v = fl_realloc(l->v, (l->n + 2) * sizeof *l->v);
    l->v[l->n++] = e;
    l->v[l->n] = NULL;
}

static const char *get(const envlist *l, const char *name)
{
    ssize_t i = find(l, name);
    return i >= 0 ? l->v[i] + strlen(name) + 1 : NULL;
}

/* The manager's variables a service never inherits: its TLS identity. */
static bool private_var(const char *entry)
{
    return strncmp(entry, "FLAME_CERT_FILE=", 16) == 0 ||
           strncmp(entry, "FLAME_KEY_FILE=", 15) == 0;
}

void fl_service_env_build(fl_service_env *out, const fl_shim_session *ctx, const char *sock,
                          const char *home, const char *tmp_dir)
{
    const Flame__V1__ApplicationSpec *spec = ctx->app_spec;
    envlist l = { 0 };
    for (size_t i = 0; i < spec->n_environments; i++) {
        char *v = fl_expand_vars(spec->environments[i]->value, environ, NULL);
        set(&l, spec->environments[i]->name, v);
        free(v);
    }
    const char *rust_log = getenv("RUST_LOG");
    if (!get(&l, "RUST_LOG"))
        set(&l, "RUST_LOG", rust_log && *rust_log ? rust_log : "info");
    if (!get(&l, "FLAME_LOG"))
        set(&l, "FLAME_LOG", rust_log && *rust_log ? rust_log : "info");
    set(&l, "FLAME_INSTANCE_ENDPOINT", sock);
    set(&l, "FLAME_EXECUTOR_ID", ctx->executor_id);
    set(&l, "FLAME_ENDPOINT", ctx->endpoint ? ctx->endpoint : "");
    if (ctx->ca_file)
        set(&l, "FLAME_CA_FILE", ctx->ca_file);
    if (ctx->cache_endpoint && ctx->cache_endpoint[0])
        set(&l, "FLAME_CACHE_ENDPOINT", ctx->cache_endpoint);
    const char *em_home = getenv("HOME");
    if (home || em_home)
        set(&l, "HOME", home ? home : em_home);
    const fl_installation *inst = ctx->installation;
    for (size_t i = 0; inst && i < inst->vars_len; i++) {
        const fl_install_var *v = &inst->vars[i];
        const char *cur = get(&l, v->name);
        if (!cur && v->mode == FL_ENV_PREPEND)
            cur = getenv(v->name);
        if (v->mode == FL_ENV_DEFAULT) {
            if (!cur)
                set(&l, v->name, v->value);
        } else if (cur && *cur) {
            char *joined = fl_sprintf("%s:%s", v->value, cur);
            set(&l, v->name, joined);
            free(joined);
        } else {
            set(&l, v->name, v->value);
        }
    }
    /* a process-sandboxed service's tool caches are in its own directory:
     * the node's ($FLAME_HOME/data/cache, the manager's own) are read-only
     * inside, and `uv run` (flmrun's command) writes its cache even when it
     * has nothing to install. The application's own setting wins. (Not for
     * a microVM: its pool matches services by environment, and a path of
     * the executor's would make every one differ.) */
    static const char *const caches[][2] = { { "UV_CACHE_DIR", "uv" },
                                             { "PIP_CACHE_DIR", "pip" } };
    bool process_box = home && ctx->sandbox && strcmp(ctx->sandbox, "process") == 0;
    for (size_t i = 0; process_box && i < FL_ARRAY_LEN(caches); i++) {
        bool own = false;
        for (size_t j = 0; j < spec->n_environments; j++)
            own = own || strcmp(spec->environments[j]->name, caches[i][0]) == 0;
        if (!own) {
            char *dir = fl_sprintf("%s/.cache/%s", home, caches[i][1]);
            set(&l, caches[i][0], dir);
            free(dir);
        }
    }
    if (tmp_dir) {
        fl_mkdir_p(tmp_dir);
        set(&l, "TMPDIR", tmp_dir);
        set(&l, "TMP", tmp_dir);
        set(&l, "TEMP", tmp_dir);
    }

    /* the command and arguments, expanded against the launch env first */
    const char *cmd = ctx->command ? ctx->command : "";
    out->command = fl_expand_vars(cmd, l.v, environ);
    out->argv = fl_calloc(spec->n_arguments + 2, sizeof *out->argv);
    out->argv[0] = fl_strdup(out->command);
    for (size_t i = 0; i < spec->n_arguments; i++)
        out->argv[i + 1] = fl_expand_vars(spec->arguments[i], l.v, environ);

    /* the process's whole environment: the manager's, overridden */
    size_t n = 0;
    while (environ[n])
        n++;
    out->envp = fl_calloc(n + l.n + 1, sizeof *out->envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        char name[256];
        if (len >= sizeof name || private_var(environ[i]))
            continue;
        memcpy(name, environ[i], len);
        name[len] = 0;
        if (find(&l, name) < 0)
            out->envp[k++] = fl_strdup(environ[i]);
    }
    for (size_t i = 0; i < l.n; i++)
        out->envp[k++] = l.v[i];
    free(l.v);
}

static char *search(const char *name, const char *bin_dir, const char *path)
{
    if (bin_dir) {
        char *p = fl_sprintf("%s/%s", bin_dir, name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char *p = fl_sprintf("%.*s/%s", (int)n, path, name);
        if (n && access(p, X_OK) == 0)
            return p;
        free(p);
        path += n + (path[n] == ':');
    }
    return NULL;
}

char *fl_service_resolve(const fl_service_env *e, const char *written, const char *bin_dir)
{
    const char *cmd = e->command;
    if (!cmd || !cmd[0])
        return NULL;
    const char *path = fl_env_lookup(e->envp, "PATH");
    if (!strchr(cmd, '/'))
        return search(cmd, bin_dir, path);
    if (access(cmd, X_OK) == 0)
        return fl_strdup(cmd);
    const char *rest = strncmp(written, "${FLAME_HOME}/bin/", 18) == 0 ? written + 18
                       : strncmp(written, "$FLAME_HOME/bin/", 16) == 0 ? written + 16
                                                                        : NULL;
    if (rest && *rest && !strchr(rest, '/'))
        return search(rest, bin_dir, path);
    return fl_strdup(cmd); /* spawning says it is not there */
}

void fl_service_env_clear(fl_service_env *e)
{
    for (size_t i = 0; e->envp && e->envp[i]; i++)
        free(e->envp[i]);
    free(e->envp);
    for (size_t i = 0; e->argv && e->argv[i]; i++)
        free(e->argv[i]);
    free(e->argv);
    free(e->command);
    memset(e, 0, sizeof *e);
}
