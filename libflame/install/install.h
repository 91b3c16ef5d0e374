/* Installing an application before an executor enters one of its sessions:
 * an installer is given the application (its url, installer name, command
 * and working directory) and the executor manager's work directory, and
 * returns what to run and where, or an error that fails the bind with a
 * message.
 *
 * Installers: "none" (the application is already on the node; nothing to
 * do). The install issue's installers (python via uv, binary; URLs fetched
 * from file, http(s) or the cache) plug in as further rows of the table in
 * install.c and in fl_installer_for().
 *
 * Threads: installers keep no shared state; any thread may install. */
#ifndef FL_INSTALL_H
#define FL_INSTALL_H

#include "flame/error.h"

/* What an installer is given. */
typedef struct fl_install_request {
    const char *application;
    const char *url;               /* the package, or NULL */
    const char *installer;         /* the application's installer name, or NULL */
    const char *command;           /* the application's command, or NULL */
    const char *working_directory; /* the application's, or NULL */
    const char *work_dir;          /* the executor manager's: installs go below */
} fl_install_request;

/* What to run once installed (malloc'ed; fl_installation_clear frees). */
typedef struct fl_installation {
    char *command;           /* NULL: none */
    char *working_directory; /* NULL: the shim picks one of its own */
} fl_installation;

typedef struct fl_installer {
    const char *name;
    /* Fills out (zeroed on entry). On error *message gets a malloc'ed
     * reason (or stays NULL: fl_install then says which installer failed). */
    flame_status (*install)(const fl_install_request *req, fl_installation *out,
                            char **message);
} fl_installer;

/* The installer an application needs. Every application gets "none" today:
 * its url and installer, if any, reach the service as before. */
const fl_installer *fl_installer_for(const fl_install_request *req);

/* Runs an installer. FLAME_OK: out says what to run. An error: out is
 * empty and *message says why (malloc'ed). */
flame_status fl_install(const fl_installer *in, const fl_install_request *req,
                        fl_installation *out, char **message);

void fl_installation_clear(fl_installation *inst);

#endif
