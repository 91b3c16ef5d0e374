/* The host shim: runs the application's command as a child process (its own
 * process group, working directory, environment and log file, started by the
 * spawner of sandbox/) and talks flame.v1 Instance to it over a Unix socket,
 * with unary calls made on the executor's own thread (h2.h).
 * Threads: a shim is used by one executor thread at a time. */
#include <dlfcn.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rpc/rpc.h"
#include "env.h"
#include "h2.h"
#include "relay.h"
#include "install/install.h"
#include "sandbox/spawn.h"
#include "shim.h"
#include "util/util.h"
#include "wire/wire.h"

#include "shim.pb-c.h"

#define LISTEN_TIMEOUT_MS 30000
#define ENTER_TIMEOUT_MS 60000
#define LEAVE_TIMEOUT_MS 10000
#define TERM_GRACE_MS 3000

#define INSTANCE(name) rpc_path(&flame__v1__instance__descriptor, name)

/* A unary call with req packed; *resp: the reply's bytes. */
static flame_status packed_call(fl_h2 *ch, const char *method, const ProtobufCMessage *req,
                                uint8_t **resp, size_t *rlen, int timeout_ms)
{
    uint8_t small[512];
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = len <= sizeof small ? small : fl_malloc(len);
    protobuf_c_message_pack(req, buf);
    flame_status st = fl_h2_unary(ch, method, buf, len, resp, rlen, timeout_ms);
    if (buf != small)
        free(buf);
    return st;
}

/* A unary call whose reply is a desc. */
static flame_status message_call(fl_h2 *ch, const char *method, const ProtobufCMessage *req,
                                 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                                 int timeout_ms)
{
    uint8_t *resp;
    size_t rlen;
    flame_status st = packed_call(ch, method, req, &resp, &rlen, timeout_ms);
    if (st)
        return st;
    *out = rpc_unpack(desc, rlen, resp);
    free(resp);
    if (!*out)
        return fl_error(FLAME_ERR_INTERNAL, "%s: malformed response", method);
    return FLAME_OK;
}

/* An Instance call whose reply a 0.6 service sends bare (bare) and a 0.7
 * one wrapped (wrapped, its field 1 the bare message; fl_wire_reply_wrapped
 * tells them apart). *top: what to free; *inner: the bare reply in it (an
 * empty one when a wrapped reply has none; NULL with an error). */
static flame_status instance_call(fl_h2 *ch, const char *method, const ProtobufCMessage *req,
                                  const ProtobufCMessageDescriptor *bare,
                                  const ProtobufCMessageDescriptor *wrapped,
                                  ProtobufCMessage **top, const ProtobufCMessage **inner,
                                  int timeout_ms)
{
    *top = NULL;
    *inner = NULL;
    uint8_t *resp;
    size_t rlen;
    flame_status st = packed_call(ch, method, req, &resp, &rlen, timeout_ms);
    if (st)
        return st;
    bool is_wrapped = fl_wire_reply_wrapped(resp, rlen);
    *top = rpc_unpack(is_wrapped ? wrapped : bare, rlen, resp);
    free(resp);
    if (!*top)
        return fl_error(FLAME_ERR_INTERNAL, "%s: the service's reply is not a %s", method,
                        (is_wrapped ? wrapped : bare)->name);
    if (!is_wrapped) {
        *inner = *top;
        return FLAME_OK;
    }
    /* field 1 of both wrappers is the bare reply */
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(wrapped, 1);
    *inner = *(const ProtobufCMessage **)((const char *)*top + f->offset);
    if (!*inner) { /* wrapped without one: an empty (successful) reply */
        protobuf_c_message_free_unpacked(*top, NULL);
        *top = rpc_unpack(bare, 0, (const uint8_t *)"");
        *inner = *top;
    }
    return FLAME_OK;
}

typedef struct host_shim {
    fl_shim base;
    fl_process proc;     /* the service process */
    char *sock;
    char *dir;           /* per-executor directory we made (removed at the end) */
    char *sock_dir;      /* a sandboxed service's socket directory, when not dir */
    char *root_dir;      /* the mount point of a sandbox's root */
    char *log;
    fl_h2 *ch;           /* to the service's socket */
    int task_timeout_ms;
    bool no_batch;       /* the service answered OnTaskInvokeBatch with UNIMPLEMENTED */
    bool kept;           /* left a session with its service kept (leave_keep) */
    fl_relay *relay;     /* the object cache inside its sandbox (network none) */
} host_shim;

static atomic_uint sock_seq;
static char *short_dir; /* a private directory for sockets whose path is too long */
static pthread_once_t short_once = PTHREAD_ONCE_INIT;

static void make_short_dir(void)
{
    char tmpl[] = "/tmp/flame-XXXXXX"; /* mkdtemp: 0700, a name nobody could take first */
    short_dir = fl_strdup(mkdtemp(tmpl) ? tmpl : "/tmp");
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

/* Removes the per-executor directory (ours, small) and what the service
 * left in it. */
static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool reap(host_shim *h, bool block)
{
    return fl_process_reap(&h->proc, block);
}

static void stop_process(host_shim *h)
{
    fl_process_stop(&h->proc, TERM_GRACE_MS);
}

static void cleanup(host_shim *h)
{
    fl_h2_free(h->ch);
    h->ch = NULL;
    stop_process(h);
    fl_relay_stop(h->relay);
    h->relay = NULL;
    if (h->sock) {
        unlink(h->sock);
        free(h->sock);
        h->sock = NULL;
    }
    if (h->dir) {
        rm_rf(h->dir);
        free(h->dir);
        h->dir = NULL;
    }
    if (h->sock_dir) {
        rm_rf(h->sock_dir);
        free(h->sock_dir);
        h->sock_dir = NULL;
    }
    free(h->root_dir); /* the spawner removed the directory */
    h->root_dir = NULL;
    free(h->log);
    h->log = NULL;
}

/* A list of malloc'ed strings, NULL-terminated. */
typedef struct fl_strv {
    char **v;
    size_t n;
} fl_strv;

static void strv_add(fl_strv *s, char *str)
{
    s->v = fl_realloc(s->v, (s->n + 2) * sizeof *s->v);
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

static void fl_strv_clear(fl_strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (fl_strv){ 0 };
}

/* An absolute path the service names: a directory as is, a file's
 * directory; never "/" or a top-level directory (/etc, /root, /tmp, ...):
 * one argument must not show the host's whole tree. */
static void add_path_of(fl_strv *s, const char *p)
{
    struct stat st;
    if (!p || p[0] != '/' || stat(p, &st) != 0)
        return;
    char *d = fl_strdup(p);
    if (!S_ISDIR(st.st_mode))
        *strrchr(d, '/') = 0;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = 0;
    const char *second = d[0] ? strchr(d + 1, '/') : NULL;
    if (second && second[1])
        strv_add(s, d);
    else
        free(d);
}

/* A Python venv at dir (if it is one) and the installation its
 * interpreter links to (pyvenv.cfg's home, e.g. a pyenv version), unless
 * that is the system's own (/usr but /usr/local, shown anyway). */
static void add_venv(fl_strv *ro, const char *dir)
{
    char *cfg = fl_sprintf("%s/pyvenv.cfg", dir);
    FILE *f = dir[0] == '/' ? fopen(cfg, "r") : NULL;
    free(cfg);
    if (!f)
        return;
    add_path_of(ro, dir);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "home", 4) != 0)
            continue;
        char *v = strchr(line, '=');
        if (!v)
            break;
        v += 1 + strspn(v + 1, " \t");
        v[strcspn(v, "\r\n")] = 0;
        char *slash = strrchr(v, '/'); /* home is the bin dir: its parent */
        if (slash && slash != v)
            *slash = 0;
        bool system = strcmp(v, "/usr") == 0 ||
                      (strncmp(v, "/usr/", 5) == 0 && strncmp(v, "/usr/local", 10) != 0);
        if (v[0] == '/' && !system && strcmp(v, "/") != 0)
            add_path_of(ro, v);
        break;
    }
    fclose(f);
}

/* What a sandboxed service sees read-only beside the system's library
 * directories: the application's own directory (its program's, its
 * working_directory, the paths its arguments name), the Flame library and
 * its PYTHONPATH and LD_LIBRARY_PATH. */
static void sandbox_paths(fl_strv *ro, const char *cmd, char *const *argv, char *const *envp,
                          const fl_shim_session *ctx)
{
    add_path_of(ro, cmd);
    /* a program that is a link (a venv's python) needs its target's
     * installation: the target's directory, and its prefix when that is a
     * bin/ (lib/pythonX.Y beside it) */
    char *real = realpath(cmd, NULL);
    if (real && strcmp(real, cmd) != 0) {
        *strrchr(real, '/') = 0;
        size_t n = strlen(real);
        if (n > 4 && strcmp(real + n - 4, "/bin") == 0)
            real[n - 4] = 0;
        add_path_of(ro, real);
    }
    free(real);
    /* a program in a Python venv needs the venv (pyvenv.cfg, site-packages) */
    char *venv = fl_sprintf("%s", cmd);
    for (int up = 0; up < 2 && strrchr(venv, '/'); up++)
        *strrchr(venv, '/') = 0;
    add_venv(ro, venv);
    free(venv);
    /* and so does one the service is told to use (uv run takes it) */
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], "VIRTUAL_ENV=", 12) == 0)
            add_venv(ro, envp[i] + 12);
    if (ctx->working_directory && ctx->working_directory[0])
        add_path_of(ro, ctx->working_directory);
    for (size_t i = 1; argv[i]; i++)
        add_path_of(ro, argv[i]);
    /* the Flame library this node runs: services built with it link it */
    Dl_info self;
    if (dladdr((void *)sandbox_paths, &self) && self.dli_fname)
        add_path_of(ro, self.dli_fname);
    for (size_t i = 0; envp[i]; i++) {
        size_t skip = strncmp(envp[i], "PYTHONPATH=", 11) == 0        ? 11
                      : strncmp(envp[i], "LD_LIBRARY_PATH=", 16) == 0 ? 16
                                                                      : 0;
        if (!skip)
            continue;
        const char *p = envp[i] + skip;
        while (*p) {
            size_t n = strcspn(p, ":");
            char *one = fl_sprintf("%.*s", (int)n, p);
            add_path_of(ro, one);
            free(one);
            p += n + (p[n] == ':');
        }
    }
    if (ctx->ca_file) /* the file only: keys may live beside it */
        strv_add(ro, fl_strdup(ctx->ca_file));
    if (ctx->installation && ctx->installation->release_dir) /* its package */
        strv_add(ro, fl_strdup(ctx->installation->release_dir));
}

static bool can_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static flame_status spawn(host_shim *h, const fl_shim_session *ctx, char **message)
{
    const char *command = ctx->command;
    if (!command || !command[0]) {
        *message = fl_sprintf("application %s has no command to run", ctx->application);
        return FLAME_ERR_FAILED_PRECONDITION;
    }
    /* directories: the application's working_directory, or one of ours; a
     * sandboxed service always has one of ours (its only writable place
     * beside /tmp) and its socket in a directory of its own */
    bool boxed = ctx->sandbox && strcmp(ctx->sandbox, "none") != 0;
    const char *slot = ctx->slot ? ctx->slot : ctx->executor_id;
    bool has_wd = ctx->working_directory && ctx->working_directory[0];
    if (!has_wd || boxed) {
        h->dir = fl_sprintf("%s/%s", ctx->work_dir, slot);
        mkdir(h->dir, 0700);
    }
    const char *cwd = has_wd ? ctx->working_directory : h->dir;
    char *sock = boxed ? fl_sprintf("%s/service.sock", h->dir)
                       : fl_sprintf("%s/%s.sock", ctx->work_dir, slot);
    if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        free(sock);
        pthread_once(&short_once, make_short_dir);
        unsigned n = atomic_fetch_add(&sock_seq, 1);
        if (boxed) {
            h->sock_dir = fl_sprintf("%s/%u", short_dir, n);
            mkdir(h->sock_dir, 0700);
            sock = fl_sprintf("%s/s", h->sock_dir);
        } else {
            sock = fl_sprintf("%s/%u.sock", short_dir, n);
        }
    }
    h->sock = sock;
    unlink(sock);
    h->log = fl_sprintf("%s/%s.log", ctx->log_dir, ctx->executor_id);

    /* a sandboxed service has its HOME in its own directory (the host's is
     * not inside) and a private /tmp as TMPDIR (the same for every executor:
     * a microVM pool matches services by their environment); others share
     * a TMPDIR per application */
    char *tmp = boxed ? fl_strdup("/tmp")
                      : fl_sprintf("%s/apps/%s/tmp", ctx->work_dir, ctx->application);
    fl_service_env se;
    fl_service_env_build(&se, ctx, sock, boxed ? h->dir : NULL, tmp);
    free(tmp);
    char *cmd = fl_service_resolve(&se, command, ctx->bin_dir);
    if (!cmd) {
        *message = fl_sprintf("command \"%s\" of application %s was not found", se.command,
                              ctx->application);
        fl_service_env_clear(&se);
        return FLAME_ERR_NOT_FOUND;
    }
    char **argv = se.argv, **envp = se.envp;
    fl_strv ro = { 0 };
    if (boxed) {
        sandbox_paths(&ro, cmd, argv, envp, ctx);
        h->root_dir = fl_sprintf("%s/%s.root", ctx->work_dir, slot);
    }
    const char *rw[] = { h->dir, h->sock_dir, NULL };

    fl_spawn_spec ss = {
        .path = cmd,
        .argv = argv,
        .envp = envp,
        .cwd = cwd,
        .log_file = h->log,
        .new_group = true,
        /* if the executor's thread dies with its manager (kill -9), so
         * does the service */
        .parent_death_signal = SIGKILL,
        .sandbox = ctx->sandbox,
        .name = slot,
        .root_dir = h->root_dir,
        .network = ctx->network,
        .ro_paths = (const char *const *)ro.v,
        .rw_dirs = rw,
        .cpus = ctx->cpus,
        .memory = ctx->memory,
    };
    flame_status st = fl_spawn(&h->proc, &ss);
    fl_strv_clear(&ro);
    fl_service_env_clear(&se);
    if (st) {
        *message = fl_strdup(flame_error_last());
        free(cmd);
        return st;
    }
    /* the default network of a process sandbox (the application names
     * none): no network but the object cache, through a relay (relay.h);
     * an explicit "none" (flmexec's untrusted scripts) has not even that */
    bool net_default = !ctx->network || !ctx->network[0];
    if (boxed && net_default && strcmp(ctx->sandbox, "process") == 0 && ctx->cache_endpoint &&
        ctx->cache_endpoint[0] && fl_relay_start(&h->relay, h->proc.pid, ctx->cache_endpoint))
        fl_log(FL_LOG_WARN, "shim", "executor %s: no object cache inside its sandbox: %s",
               ctx->executor_id, flame_error_last());
    /* wait (bounded) for it to listen */
    int waited = 0;
    while (!can_connect(sock)) {
        if (reap(h, false)) {
            int status = h->proc.status;
            char *how = fl_exit_text(status);
            if (WIFEXITED(status) && WEXITSTATUS(status) == FL_SPAWN_EXIT_CHDIR)
                *message = fl_sprintf("cannot enter the working directory %s", cwd);
            else if (WIFEXITED(status) && WEXITSTATUS(status) == FL_SPAWN_EXIT_SANDBOX)
                *message = fl_sprintf("the %s sandbox of %s could not be set up (its log "
                                      "says why: %s)", ctx->sandbox, cmd, h->log);
            else
                *message = fl_sprintf("service %s %s before listening on %s (its log: %s)", cmd,
                                      how, sock, h->log);
            free(how);
            free(cmd);
            return FLAME_ERR_UNAVAILABLE;
        }
        if (waited >= LISTEN_TIMEOUT_MS) {
            *message = fl_sprintf("service %s did not listen on %s within %d s (its log: %s)",
                                  cmd, sock, LISTEN_TIMEOUT_MS / 1000, h->log);
            free(cmd);
            return FLAME_ERR_TIMEOUT;
        }
        msleep(waited < 100 ? 2 : 10);
        waited += waited < 100 ? 2 : 10;
    }
    free(cmd);
    h->ch = fl_h2_new(sock, RPC_DEFAULT_MAX_MESSAGE);
    return FLAME_OK;
}

static flame_status host_enter(fl_shim *sh, const fl_shim_session *ctx, char **message)
{
    host_shim *h = (host_shim *)sh;
    *message = NULL;
    /* the service kept from the last session, if it still runs */
    bool reuse = h->kept && h->ch && !reap(h, false);
    h->kept = false;
    h->task_timeout_ms = ctx->task_timeout_ms;
    flame_status st = FLAME_OK;
    if (!reuse) {
        cleanup(h);
        h->no_batch = false;
        st = spawn(h, ctx, message);
    }
    if (st) {
        cleanup(h);
        return st;
    }
    const Flame__V1__ApplicationSpec *spec = ctx->app_spec;
    Flame__V1__ApplicationContext app = FLAME__V1__APPLICATION_CONTEXT__INIT;
    app.name = (char *)ctx->application;
    app.shim = spec->shim;
    app._image_case = spec->_image_case ? FLAME__V1__APPLICATION_CONTEXT___IMAGE_IMAGE : 0;
    app.image = spec->image;
    app._command_case = spec->_command_case ? FLAME__V1__APPLICATION_CONTEXT___COMMAND_COMMAND : 0;
    app.command = spec->command;
    app._working_directory_case = spec->_working_directory_case
                                      ? FLAME__V1__APPLICATION_CONTEXT___WORKING_DIRECTORY_WORKING_DIRECTORY
                                      : 0;
    app.working_directory = spec->working_directory;
    app._url_case = spec->_url_case ? FLAME__V1__APPLICATION_CONTEXT___URL_URL : 0;
    app.url = spec->url;
    app._installer_case = spec->_installer_case ? FLAME__V1__APPLICATION_CONTEXT___INSTALLER_INSTALLER : 0;
    app.installer = spec->installer;
    Flame__V1__SessionContext sc = FLAME__V1__SESSION_CONTEXT__INIT;
    sc.session_id = (char *)ctx->session_id;
    sc.application = &app;
    if (ctx->common_data.data) {
        sc._common_data_case = FLAME__V1__SESSION_CONTEXT___COMMON_DATA_COMMON_DATA;
        sc.common_data.data = (uint8_t *)ctx->common_data.data;
        sc.common_data.len = ctx->common_data.len;
    }
    /* Flame 0.7's fields (a 0.6 service skips them) */
    const Flame__V1__SessionSpec *ss = ctx->session_spec;
    sc.batch_size = ss && ss->batch_size ? ss->batch_size : 1;
    size_t ntok = ss ? ss->n_tokens : 0;
    Flame__V1__SessionContext__TokensEntry *tok = fl_calloc(ntok + 1, sizeof *tok);
    Flame__V1__SessionContext__TokensEntry **tokp = fl_calloc(ntok + 1, sizeof *tokp);
    for (size_t i = 0; i < ntok; i++) {
        flame__v1__session_context__tokens_entry__init(&tok[i]);
        tok[i].key = ss->tokens[i]->key;
        tok[i].value = ss->tokens[i]->value;
        tokp[i] = &tok[i];
    }
    sc.n_tokens = ntok;
    sc.tokens = tokp;
    ProtobufCMessage *resp;
    const ProtobufCMessage *inner;
    st = instance_call(h->ch, INSTANCE("OnSessionEnter"), &sc.base, &flame__v1__result__descriptor,
                       &flame__v1__on_session_enter_response__descriptor, &resp, &inner,
                       ENTER_TIMEOUT_MS);
    free(tok);
    free(tokp);
    if (st) {
        *message = fl_sprintf("OnSessionEnter failed: %s", flame_error_last());
        cleanup(h);
        return st;
    }
    const Flame__V1__Result *r = (const Flame__V1__Result *)inner;
    if (r->return_code != 0) {
        *message = fl_sprintf("OnSessionEnter returned %d: %s", r->return_code,
                              r->_message_case ? r->message : "(no message)");
        st = FLAME_ERR_FAILED_PRECONDITION;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    if (st)
        cleanup(h);
    return st;
}

static flame_status host_invoke(fl_shim *sh, const flame_task_context *task, int *rc,
                                flame_task_result *result, char **message)
{
    host_shim *h = (host_shim *)sh;
    *message = NULL;
    if (!h->ch) {
        *message = fl_strdup("the service is not running");
        return FLAME_ERR_UNAVAILABLE;
    }
    Flame__V1__TaskContext tc = FLAME__V1__TASK_CONTEXT__INIT;
    tc.task_id = (char *)task->task_id;
    tc.session_id = (char *)task->session_id;
    if (task->input.data) {
        tc._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
        tc.input.data = (uint8_t *)task->input.data;
        tc.input.len = task->input.len;
    }
    ProtobufCMessage *resp;
    const ProtobufCMessage *inner;
    flame_status st = instance_call(h->ch, INSTANCE("OnTaskInvoke"), &tc.base,
                                    &flame__v1__task_result__descriptor,
                                    &flame__v1__on_task_invoke_response__descriptor, &resp, &inner,
                                    h->task_timeout_ms);
    if (st == FLAME_ERR_TIMEOUT && !reap(h, false)) {
        *message = fl_sprintf("timed out: the service did not answer task %s within %d ms; it "
                              "was stopped and the session goes on with a new service process",
                              task->task_id, h->task_timeout_ms);
        stop_process(h);
        return FLAME_ERR_TIMEOUT;
    }
    if (st) {
        /* did it die? give it a moment to be reaped */
        for (int i = 0; i < 50 && !reap(h, false); i++)
            msleep(10);
        if (h->proc.reaped) {
            char *how = fl_exit_text(h->proc.status);
            *message = fl_sprintf("the service process %s while running task %s (its log: %s)",
                                  how, task->task_id, h->log);
            free(how);
        } else {
            *message = fl_sprintf("the service failed to answer task %s: %s", task->task_id,
                                  flame_error_last());
        }
        return FLAME_ERR_UNAVAILABLE;
    }
    const Flame__V1__TaskResult *r = (const Flame__V1__TaskResult *)inner;
    *rc = r->return_code;
    if (r->_output_case)
        flame_task_result_set_output(result, r->output.data, r->output.len);
    if (r->_message_case)
        flame_task_result_set_message(result, r->message);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

static flame_status host_invoke_batch(fl_shim *sh, const flame_task_context *tasks, size_t n,
                                      int *rcs, flame_task_result *results, char **message)
{
    host_shim *h = (host_shim *)sh;
    *message = NULL;
    if (h->no_batch || !h->ch)
        return FLAME_ERR_UNIMPLEMENTED;
    Flame__V1__TaskContext *tc = fl_calloc(n, sizeof *tc);
    Flame__V1__TaskContext **tp = fl_calloc(n, sizeof *tp);
    for (size_t i = 0; i < n; i++) {
        flame__v1__task_context__init(&tc[i]);
        tc[i].task_id = (char *)tasks[i].task_id;
        tc[i].session_id = (char *)tasks[i].session_id;
        if (tasks[i].input.data) {
            tc[i]._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
            tc[i].input.data = (uint8_t *)tasks[i].input.data;
            tc[i].input.len = tasks[i].input.len;
        }
        tp[i] = &tc[i];
    }
    Flame__V1__TaskContextBatch b = FLAME__V1__TASK_CONTEXT_BATCH__INIT;
    b.n_tasks = n;
    b.tasks = tp;
    ProtobufCMessage *resp;
    int timeout = h->task_timeout_ms > 0 ? h->task_timeout_ms * (int)(n < 1000 ? n : 1000) : 0;
    flame_status st = message_call(h->ch, INSTANCE("OnTaskInvokeBatch"), &b.base,
                                   &flame__v1__task_result_batch__descriptor, &resp, timeout);
    free(tc);
    free(tp);
    if (st == FLAME_ERR_UNIMPLEMENTED) {
        h->no_batch = true;
        return st;
    }
    if (st) {
        *message = fl_sprintf("the service failed a batch of %zu tasks: %s", n, flame_error_last());
        stop_process(h);
        return FLAME_ERR_UNAVAILABLE;
    }
    Flame__V1__TaskResultBatch *r = (Flame__V1__TaskResultBatch *)resp;
    if (r->n_results != n) {
        *message = fl_sprintf("the service answered %zu results for %zu tasks", r->n_results, n);
        protobuf_c_message_free_unpacked(resp, NULL);
        stop_process(h);
        return FLAME_ERR_INTERNAL;
    }
    for (size_t i = 0; i < n; i++) {
        const Flame__V1__TaskResult *x = r->results[i];
        rcs[i] = x->return_code;
        if (x->_output_case)
            flame_task_result_set_output(&results[i], x->output.data, x->output.len);
        if (x->_message_case)
            flame_task_result_set_message(&results[i], x->message);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

/* OnSessionLeave; true when the service answered and still runs. */
static bool session_leave(host_shim *h)
{
    if (!h->ch || reap(h, false))
        return false;
    Flame__V1__EmptyRequest e = FLAME__V1__EMPTY_REQUEST__INIT;
    ProtobufCMessage *resp;
    if (message_call(h->ch, INSTANCE("OnSessionLeave"), &e.base, &flame__v1__result__descriptor,
                     &resp, LEAVE_TIMEOUT_MS) != FLAME_OK)
        return false;
    protobuf_c_message_free_unpacked(resp, NULL);
    return !reap(h, false);
}

static void host_leave(fl_shim *sh)
{
    host_shim *h = (host_shim *)sh;
    session_leave(h);
    h->kept = false;
    cleanup(h);
}

static bool host_leave_keep(fl_shim *sh)
{
    host_shim *h = (host_shim *)sh;
    h->kept = session_leave(h);
    if (!h->kept)
        cleanup(h);
    return h->kept;
}

/* A service started ahead is entered as a kept one is: host_enter finds
 * it running (or, if it died since, starts a new one). */
static flame_status host_prestart(fl_shim *sh, const fl_shim_session *ctx, char **message)
{
    host_shim *h = (host_shim *)sh;
    *message = NULL;
    cleanup(h);
    h->no_batch = false;
    flame_status st = spawn(h, ctx, message);
    if (st)
        cleanup(h);
    else /* connected ahead too: the session's first call finds it ready */
        fl_h2_connect(h->ch, LISTEN_TIMEOUT_MS);
    h->kept = st == FLAME_OK;
    return st;
}

static int host_warm_pid(fl_shim *sh)
{
    host_shim *h = (host_shim *)sh;
    return h->ch && h->proc.pid && !reap(h, false) ? (int)h->proc.pid : 0;
}

static void host_free(fl_shim *sh)
{
    host_shim *h = (host_shim *)sh;
    cleanup(h);
    free(h);
}

static const fl_shim_ops host_ops = { "host", host_enter, host_invoke, host_invoke_batch,
                                      host_leave, host_free, host_leave_keep, host_prestart,
                                      host_warm_pid };

fl_shim *fl_shim_host_new(void)
{
    host_shim *h = fl_calloc(1, sizeof *h);
    h->base.ops = &host_ops;
    return &h->base;
}
