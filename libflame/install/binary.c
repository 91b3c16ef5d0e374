/* The binary installer (Flame's appmgr binary installer): the package is
 * extracted to src/, and the service finds its programs and libraries
 * there (FLAME_APP_DIR, PATH, LD_LIBRARY_PATH). Without a url only the base
 * environment is set. Threads: see install.h. */
#include <stdlib.h>
#include <sys/stat.h>

#include "install.h"
#include "util/util.h"

static flame_status binary_install(const fl_install_request *req, fl_installation *out,
                                   char **message)
{
    out->command = fl_strdup(req->command);
    out->working_directory = req->working_directory && req->working_directory[0]
                                 ? fl_strdup(req->working_directory)
                                 : NULL;
    char *home = fl_install_flame_home(req);
    flame_status st = FLAME_OK;
    if (!req->url || !req->url[0]) {
        char *pyver = fl_python_version(home, req->app_env);
        fl_install_base_env(out, home, pyver);
        free(pyver);
        free(home);
        return FLAME_OK;
    }
    fl_release rel;
    st = fl_release_prepare(req, "binary", NULL, &rel, message);
    if (!st && !rel.installed)
        st = fl_release_done(&rel, message);
    if (!st) {
        char *path = fl_sprintf("%s/bin:%s", rel.src, rel.src);
        char *lib = fl_sprintf("%s/lib", rel.src);
        struct stat sb;
        char *ld = stat(lib, &sb) == 0 ? fl_sprintf("%s/libs:%s", rel.src, lib)
                                       : fl_sprintf("%s/libs", rel.src);
        fl_installation_var(out, "FLAME_APP_DIR", rel.src, FL_ENV_DEFAULT);
        fl_installation_var(out, "PATH", path, FL_ENV_PREPEND);
        fl_installation_var(out, "LD_LIBRARY_PATH", ld, FL_ENV_PREPEND);
        out->release_dir = fl_strdup(rel.dir);
        free(path);
        free(lib);
        free(ld);
    }
    fl_release_clear(&rel);
    free(home);
    return st;
}

const fl_installer fl_installer_binary = { "binary", binary_install };
