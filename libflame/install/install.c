/* The install step: picks the installer, shares one result per release
 * between executors, and prepares release directories (fetch, extract) for
 * the installers of python.c and binary.c. Threads: see install.h; `mu`
 * guards `releases`, `cv` wakes those waiting for an install in progress. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install.h"
#include "util/util.h"

extern const fl_installer fl_installer_python, fl_installer_binary;

/* The application is on the node already: run its own command in its own
 * working directory. */
static flame_status none_install(const fl_install_request *req, fl_installation *out,
                                 char **message)
{
    out->command = req->command ? fl_strdup(req->command) : NULL;
    out->working_directory = req->working_directory && req->working_directory[0]
                                 ? fl_strdup(req->working_directory)
                                 : NULL;
    return FLAME_OK;
}

static const fl_installer none_installer = { "none", none_install };

const fl_installer *fl_installer_for(const fl_install_request *req, char **message)
{
    *message = NULL;
    if (!req->installer || !req->installer[0])
        return &none_installer;
    if (strcasecmp(req->installer, "python") == 0)
        return &fl_installer_python;
    if (strcasecmp(req->installer, "binary") == 0)
        return &fl_installer_binary;
    *message = fl_sprintf("Unknown installer type: %s. Supported types: binary, python",
                          req->installer);
    return NULL;
}

/* ---- one result per release ----------------------------------------------- */

typedef struct release {
    char key[65];
    bool done;
    flame_status st;
    char *message;
    fl_installation inst;
    struct release *next;
} release;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static release *releases;

static void copy_installation(fl_installation *to, const fl_installation *from)
{
    memset(to, 0, sizeof *to);
    to->command = fl_strdup(from->command);
    to->working_directory = fl_strdup(from->working_directory);
    to->release_dir = fl_strdup(from->release_dir);
    for (size_t i = 0; i < from->vars_len; i++)
        fl_installation_var(to, from->vars[i].name, from->vars[i].value, from->vars[i].mode);
}

/* The release key of a request, or false when nothing is fetched (no url:
 * only the base environment, nothing worth remembering). */
static bool release_key(char key[65], const fl_installer *in, const fl_install_request *req)
{
    if (in == &none_installer || !req->url || !req->url[0])
        return false;
    char *home = fl_install_flame_home(req);
    char *pyver = in == &fl_installer_python ? fl_python_version(home, req->app_env) : NULL;
    fl_release_hash(key, req->application, in->name, req->url, pyver);
    free(pyver);
    free(home);
    return true;
}

flame_status fl_install(const fl_installer *in, const fl_install_request *req,
                        fl_installation *out, char **message)
{
    memset(out, 0, sizeof *out);
    *message = NULL;
    char key[65];
    release *r = NULL;
    if (release_key(key, in, req)) {
        pthread_mutex_lock(&mu);
        for (r = releases; r && strcmp(r->key, key) != 0; r = r->next)
            ;
        if (r) {
            while (!r->done)
                pthread_cond_wait(&cv, &mu);
            flame_status st = r->st;
            if (st)
                *message = fl_strdup(r->message);
            else
                copy_installation(out, &r->inst);
            pthread_mutex_unlock(&mu);
            return st;
        }
        r = fl_calloc(1, sizeof *r);
        memcpy(r->key, key, sizeof key);
        r->next = releases;
        releases = r;
        pthread_mutex_unlock(&mu);
    }
    flame_status st = in->install(req, out, message);
    if (st) {
        fl_installation_clear(out);
        if (!*message)
            *message = fl_sprintf("installer %s failed for application %s", in->name,
                                  req->application);
    }
    if (r) {
        pthread_mutex_lock(&mu);
        r->st = st;
        if (st)
            r->message = fl_strdup(*message);
        else
            copy_installation(&r->inst, out);
        r->done = true;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
    return st;
}

void fl_installation_var(fl_installation *inst, const char *name, const char *value,
                         fl_env_mode mode)
{
    inst->vars = fl_realloc(inst->vars, (inst->vars_len + 1) * sizeof *inst->vars);
    inst->vars[inst->vars_len++] = (fl_install_var){ fl_strdup(name), fl_strdup(value), mode };
}

void fl_installation_clear(fl_installation *inst)
{
    free(inst->command);
    free(inst->working_directory);
    free(inst->release_dir);
    for (size_t i = 0; i < inst->vars_len; i++) {
        free(inst->vars[i].name);
        free(inst->vars[i].value);
    }
    free(inst->vars);
    memset(inst, 0, sizeof *inst);
}

/* ---- release directories ---------------------------------------------------- */

flame_status fl_release_prepare(const fl_install_request *req, const char *installer,
                                const char *pyver, fl_release *rel, char **message)
{
    memset(rel, 0, sizeof *rel);
    rel->lock_fd = -1;
    rel->home = fl_install_flame_home(req);
    char hash[65];
    fl_release_hash(hash, req->application, installer, req->url, pyver);
    rel->dir = fl_sprintf("%s/data/apps/%s/releases/%s", rel->home, req->application, hash);
    rel->src = fl_sprintf("%s/src", rel->dir);
    if (fl_mkdir_p(rel->dir) != 0) {
        *message = fl_sprintf("cannot create the release directory %s: %s", rel->dir,
                              strerror(errno));
        return FLAME_ERR_IO;
    }
    /* another executor manager sharing FLAME_HOME installs it at most once */
    char *lock = fl_sprintf("%s/.lock", rel->dir);
    rel->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(lock);
    if (rel->lock_fd < 0 || flock(rel->lock_fd, LOCK_EX) != 0) {
        *message = fl_sprintf("cannot lock the release directory %s: %s", rel->dir,
                              strerror(errno));
        return FLAME_ERR_IO;
    }
    char *done = fl_sprintf("%s/.installed", rel->dir);
    rel->installed = access(done, F_OK) == 0;
    free(done);
    if (rel->installed)
        return FLAME_OK;
    char *name = fl_url_file_name(req->url);
    if (!name) {
        *message = fl_sprintf("the package URL %s names no file", req->url);
        return FLAME_ERR_INVALID_ARGUMENT;
    }
    char *dl_dir = fl_sprintf("%s/download", rel->dir);
    char *pkg = fl_sprintf("%s/%s", dl_dir, name);
    free(name);
    flame_status st = FLAME_OK;
    if (fl_mkdir_p(dl_dir) != 0) {
        *message = fl_sprintf("cannot create %s: %s", dl_dir, strerror(errno));
        st = FLAME_ERR_IO;
    } else if (access(pkg, F_OK) != 0) {
        st = fl_fetch(req->url, pkg, req->cache_ca_file, message);
    }
    if (!st) {
        char *rm = fl_sprintf("%s/src", rel->dir);
        fl_rm_rf(rm); /* what a crashed install left */
        free(rm);
        st = fl_extract(pkg, rel->src, message);
    }
    free(dl_dir);
    free(pkg);
    return st;
}

flame_status fl_release_done(fl_release *rel, char **message)
{
    fl_make_readable(rel->dir);
    char *done = fl_sprintf("%s/.installed", rel->dir);
    int fd = open(done, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    free(done);
    if (fd < 0) {
        *message = fl_sprintf("cannot finish the release %s: %s", rel->dir, strerror(errno));
        return FLAME_ERR_IO;
    }
    close(fd);
    rel->installed = true;
    return FLAME_OK;
}

void fl_release_clear(fl_release *rel)
{
    if (rel->lock_fd >= 0)
        close(rel->lock_fd); /* drops the flock */
    free(rel->home);
    free(rel->dir);
    free(rel->src);
    memset(rel, 0, sizeof *rel);
    rel->lock_fd = -1;
}
