/* Installing an application before an executor enters one of its sessions
 * (Flame's executor_manager/src/appmgr/): an installer is given the
 * application (its url, installer name, command, working directory and
 * environments) and returns what to run, where, and the variables its
 * service needs, or an error that fails the bind (return code 10).
 *
 * Installers (the application's `installer`, case-insensitive):
 *   none set  nothing is installed: the application is on the node already;
 *   "python"  the package (url) is fetched into a release directory,
 *             extracted to src/ and `uv pip install`ed into deps/ (python.c);
 *   "binary"  the package is fetched and extracted to src/ (binary.c).
 * Anything else fails with Flame's text "Unknown installer type: X.
 * Supported types: binary, python". An installer without a url only sets
 * the base environment (FLAME_PYTHON_VERSION, the node's site-packages).
 *
 * Release directories: $FLAME_HOME/data/apps/<app>/releases/<sha256>/ with
 * download/, src/ and (python) deps/; the hash is Flame's (release.c). One
 * install per release key per process: later binds reuse the result, and a
 * failed install stays failed (its message is repeated) until the node
 * restarts or the application changes (a new key).
 *
 * Threads: any executor thread may install; the release table is guarded
 * by a lock of install.c, and one release is installed by one thread while
 * the others wait for its result. */
#ifndef FL_INSTALL_H
#define FL_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

#include "flame/error.h"

/* What an installer is given. */
typedef struct fl_install_request {
    const char *application;
    const char *url;               /* the package, or NULL */
    const char *installer;         /* the application's installer name, or NULL */
    const char *command;           /* the application's command, or NULL */
    const char *working_directory; /* the application's, or NULL */
    const char *work_dir;          /* the executor manager's */
    char *const *app_env;          /* the application's environments, "NAME=value"
                                    * (already expanded), NULL-terminated; or NULL */
    const char *flame_home;        /* NULL: $FLAME_HOME, else ~/.flame */
    const char *cache_ca_file;     /* grpcs:// downloads: the cache's CA, or NULL */
} fl_install_request;

/* How an installer variable joins the service's environment. */
typedef enum fl_env_mode {
    FL_ENV_PREPEND, /* PATH, PYTHONPATH, LD_LIBRARY_PATH: before the app's/EM's value */
    FL_ENV_DEFAULT, /* set only when the application and the EM do not */
} fl_env_mode;

typedef struct fl_install_var {
    char *name, *value;
    fl_env_mode mode;
} fl_install_var;

/* What to run once installed (malloc'ed; fl_installation_clear frees). */
typedef struct fl_installation {
    char *command;           /* NULL: none */
    char *working_directory; /* NULL: the shim picks one of its own */
    char *release_dir;       /* the release directory, or NULL (a sandbox shows it) */
    fl_install_var *vars;
    size_t vars_len;
} fl_installation;

typedef struct fl_installer {
    const char *name;
    /* Fills out (zeroed on entry). On error *message gets a malloc'ed
     * reason (or stays NULL: fl_install then says which installer failed). */
    flame_status (*install)(const fl_install_request *req, fl_installation *out,
                            char **message);
} fl_installer;

/* The installer an application needs; NULL with *message (malloc'ed) for
 * an unknown installer name. */
const fl_installer *fl_installer_for(const fl_install_request *req, char **message);

/* Runs an installer. FLAME_OK: out says what to run. An error: out is
 * empty and *message says why (malloc'ed). */
flame_status fl_install(const fl_installer *in, const fl_install_request *req,
                        fl_installation *out, char **message);

void fl_installation_clear(fl_installation *inst);

/* ---- shared by the installers (install.c, release.c, fetch.c, archive.c) -- */

/* Adds a variable (copies name and value). */
void fl_installation_var(fl_installation *inst, const char *name, const char *value,
                         fl_env_mode mode);

/* The value of NAME in a "NAME=value" list, or NULL. */
const char *fl_env_lookup(char *const *env, const char *name);

/* $FLAME_HOME as installers use it: req->flame_home, $FLAME_HOME, ~/.flame. */
char *fl_install_flame_home(const fl_install_request *req);

/* Flame's release hash (hex sha256, 64 chars + NUL into out) over the
 * application, installer, url and Python version (NULL: absent). Each field:
 * its label, 0x00, then 0x01 + the u64 big-endian length + the bytes, or a
 * single 0x00 when absent. */
void fl_release_hash(char out[65], const char *app, const char *installer, const char *url,
                     const char *python_version);

/* The Python version for an application: its FLAME_PYTHON_VERSION (a
 * "python" prefix stripped), else the newest $FLAME_HOME/lib/python<v>/
 * site-packages, else "3.12". malloc'ed. */
char *fl_python_version(const char *flame_home, char *const *app_env);

/* Fetches url (file://, http(s)://, grpc(s)://host[:9090]/<key>) to path.
 * At most FL_FETCH_MAX_BYTES; http(s) within 300 s. */
#define FL_FETCH_MAX_BYTES (4LL << 30)
flame_status fl_fetch(const char *url, const char *path, const char *cache_ca_file,
                      char **message);

/* Extracts a .tar.gz, .tgz or .zip archive into dir (created). Members with
 * an absolute path or a ".." component, and links leading out of dir, make
 * the whole archive refused. */
flame_status fl_extract(const char *archive, const char *dir, char **message);

/* A release directory being installed (install.c). fl_release_prepare
 * locks it (flock: executor managers sharing FLAME_HOME), and unless an
 * earlier install finished (installed), fetches the package into download/
 * (reused when there) and extracts it to src/. The installer then adds its
 * part and calls fl_release_done (which makes the release readable by all
 * and marks it installed); fl_release_clear unlocks. */
typedef struct fl_release {
    char *home; /* $FLAME_HOME */
    char *dir;  /* $FLAME_HOME/data/apps/<app>/releases/<hash> */
    char *src;  /* dir/src */
    int lock_fd;
    bool installed;
} fl_release;

flame_status fl_release_prepare(const fl_install_request *req, const char *installer,
                                const char *pyver, fl_release *rel, char **message);
flame_status fl_release_done(fl_release *rel, char **message);
void fl_release_clear(fl_release *rel);

/* The base environment of an installer without a package (python.c):
 * FLAME_PYTHON_VERSION, and $FLAME_HOME/lib/python<v>/site-packages on
 * PYTHONPATH and LD_LIBRARY_PATH when it exists. */
void fl_install_base_env(fl_installation *out, const char *home, const char *pyver);

/* chmod a+rX over a tree (no link followed): a release is read by
 * sandboxed services under uids of their own, whatever the manager's
 * umask was when it was made. */
void fl_make_readable(const char *path);

/* Removes a directory tree (no symbolic link is followed). */
void fl_rm_rf(const char *path);

/* Creates a directory and its parents (0755). 0 or -1 with errno. */
int fl_mkdir_p(const char *path);

/* The last segment of a URL's path (the download's file name), malloc'ed;
 * NULL if it has none or it is "." or "..". */
char *fl_url_file_name(const char *url);

/* ---- variable expansion (expand.c) --------------------------------------- */

/* Flame's $VAR / ${VAR} expansion (shellexpand): each name is looked up in
 * first, then in second ("NAME=value" lists, NULL-terminated; either may be
 * NULL); an unknown variable is left as written. malloc'ed. */
char *fl_expand_vars(const char *s, char *const *first, char *const *second);

#endif
