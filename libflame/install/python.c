/* The python installer (Flame's appmgr python installer): the package is
 * extracted to src/ and `uv pip install`ed into deps/ for the application's
 * Python version; the service gets deps and src on PYTHONPATH. Without a
 * url only the base environment is set. Threads: see install.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "install.h"
#include "sandbox/spawn.h"
#include "util/util.h"

extern char **environ;

#define UV_TIMEOUT_S 900

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

void fl_install_base_env(fl_installation *out, const char *home, const char *pyver)
{
    fl_installation_var(out, "FLAME_PYTHON_VERSION", pyver, FL_ENV_DEFAULT);
    char *sp = fl_sprintf("%s/lib/python%s/site-packages", home, pyver);
    if (is_dir(sp)) {
        fl_installation_var(out, "PYTHONPATH", sp, FL_ENV_PREPEND);
        fl_installation_var(out, "LD_LIBRARY_PATH", sp, FL_ENV_PREPEND);
    }
    free(sp);
}

/* uv: $FLAME_HOME/bin/uv, else the first on PATH; NULL if none. */
static char *find_uv(const char *home)
{
    char *p = fl_sprintf("%s/bin/uv", home);
    if (access(p, X_OK) == 0)
        return p;
    free(p);
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        p = fl_sprintf("%.*s/uv", (int)n, path);
        if (n && access(p, X_OK) == 0)
            return p;
        free(p);
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Directories holding a .so under dir, depth <= 4, ':'-joined onto *acc. */
static void so_dirs(const char *dir, int depth, char **acc)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    bool has_so = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *p = fl_sprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 4)
            so_dirs(p, depth + 1, acc);
        else if (S_ISREG(st.st_mode) && (strstr(e->d_name, ".so.") || 
                                         (strlen(e->d_name) > 3 &&
                                          strcmp(e->d_name + strlen(e->d_name) - 3, ".so") == 0)))
            has_so = true;
        free(p);
    }
    closedir(d);
    if (has_so) {
        char *n = *acc ? fl_sprintf("%s:%s", *acc, dir) : fl_strdup(dir);
        free(*acc);
        *acc = n;
    }
}

/* Runs uv in src, its output appended to log; bounded by UV_TIMEOUT_S. */
static flame_status run_uv(const char *uv, const char *pyver, const char *src, const char *deps,
                           const char *uv_cache, const char *log, char **message)
{
    char *python = fl_sprintf("python%s", pyver);
    char *const argv[] = { (char *)uv, "pip", "install", "--link-mode=copy", "--python", python,
                           "--target", (char *)deps, ".", NULL };
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = fl_calloc(n + 2, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "UV_CACHE_DIR=", 13) != 0)
            envp[k++] = environ[i];
    char *cache_env = fl_sprintf("UV_CACHE_DIR=%s", uv_cache);
    envp[k++] = cache_env;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addchdir_np(&fa, src);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int err = posix_spawn(&pid, uv, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(envp);
    free(cache_env);
    flame_status st = FLAME_OK;
    if (err) {
        *message = fl_sprintf("cannot run %s: %s", uv, strerror(err));
        free(python);
        return FLAME_ERR_INTERNAL;
    }
    int status = 0;
    time_t deadline = time(NULL) + UV_TIMEOUT_S;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        if (time(NULL) > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            *message = fl_sprintf("uv pip install did not finish within %d s (log: %s)",
                                  UV_TIMEOUT_S, log);
            free(python);
            return FLAME_ERR_TIMEOUT;
        }
        struct timespec ts = { 0, 50 * 1000000 };
        nanosleep(&ts, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *how = fl_exit_text(status);
        *message = fl_sprintf("uv pip install --python %s failed: it %s (log: %s)", python, how,
                              log);
        free(how);
        st = FLAME_ERR_INTERNAL;
    }
    free(python);
    return st;
}

static bool has_project(const char *src)
{
    static const char *const files[] = { "pyproject.toml", "setup.py", "setup.cfg" };
    for (int i = 0; i < 3; i++) {
        char *p = fl_sprintf("%s/%s", src, files[i]);
        bool ok = access(p, F_OK) == 0;
        free(p);
        if (ok)
            return true;
    }
    return false;
}

static flame_status python_install(const fl_install_request *req, fl_installation *out,
                                   char **message)
{
    char *home = fl_install_flame_home(req);
    char *pyver = fl_python_version(home, req->app_env);
    out->command = fl_strdup(req->command);
    out->working_directory = req->working_directory && req->working_directory[0]
                                 ? fl_strdup(req->working_directory)
                                 : NULL;
    flame_status st = FLAME_OK;
    if (!req->url || !req->url[0]) {
        fl_install_base_env(out, home, pyver);
        goto done;
    }
    fl_release rel;
    st = fl_release_prepare(req, "python", pyver, &rel, message);
    char *deps = fl_sprintf("%s/deps", rel.dir ? rel.dir : "");
    char *uv_cache = fl_sprintf("%s/data/cache/uv", home);
    if (!st && !rel.installed) {
        char *uv = find_uv(home);
        char *log_dir = fl_sprintf("%s/logs/install", home);
        char *log = fl_sprintf("%s/%s.log", log_dir, req->application);
        if (!has_project(rel.src)) {
            *message = fl_sprintf("the package %s has no pyproject.toml, setup.py or setup.cfg",
                                  req->url);
            st = FLAME_ERR_INVALID_ARGUMENT;
        } else if (!uv) {
            *message = fl_sprintf("uv was found neither as %s/bin/uv nor on PATH", home);
            st = FLAME_ERR_NOT_FOUND;
        } else if (fl_mkdir_p(log_dir) != 0 || fl_mkdir_p(uv_cache) != 0) {
            *message = fl_sprintf("cannot create %s or %s: %s", log_dir, uv_cache,
                                  strerror(errno));
            st = FLAME_ERR_IO;
        } else {
            fl_rm_rf(deps);
            st = run_uv(uv, pyver, rel.src, deps, uv_cache, log, message);
        }
        if (!st)
            st = fl_release_done(&rel, message);
        free(uv);
        free(log_dir);
        free(log);
    }
    if (!st) {
        char *sp = fl_sprintf("%s/lib/python%s/site-packages", home, pyver);
        char *pp = is_dir(sp) ? fl_sprintf("%s:%s:%s", deps, rel.src, sp)
                              : fl_sprintf("%s:%s", deps, rel.src);
        fl_installation_var(out, "PYTHONPATH", pp, FL_ENV_PREPEND);
        char *ld = NULL;
        so_dirs(deps, 1, &ld);
        if (ld)
            fl_installation_var(out, "LD_LIBRARY_PATH", ld, FL_ENV_PREPEND);
        char *bin = fl_sprintf("%s/bin", deps);
        if (is_dir(bin))
            fl_installation_var(out, "PATH", bin, FL_ENV_PREPEND);
        char *pip_cache = fl_sprintf("%s/data/cache/pip", home);
        fl_installation_var(out, "UV_CACHE_DIR", uv_cache, FL_ENV_DEFAULT);
        fl_installation_var(out, "PIP_CACHE_DIR", pip_cache, FL_ENV_DEFAULT);
        fl_installation_var(out, "FLAME_PYTHON_VERSION", pyver, FL_ENV_DEFAULT);
        out->release_dir = fl_strdup(rel.dir);
        free(sp);
        free(pp);
        free(ld);
        free(bin);
        free(pip_cache);
    }
    free(deps);
    free(uv_cache);
    fl_release_clear(&rel);
done:
    free(home);
    free(pyver);
    return st;
}

const fl_installer fl_installer_python = { "python", python_install };
