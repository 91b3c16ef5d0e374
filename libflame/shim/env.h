/* A service process's environment, command and arguments (Flame's
 * shims/host_shim.rs), built from the executor manager's own environment,
 * the application and its installation.
 *
 * The launch environment: the application's environments (expanded against
 * the manager's environment), RUST_LOG and FLAME_LOG (the manager's
 * RUST_LOG, or info) unless the application sets them, FLAME_INSTANCE_ENDPOINT,
 * FLAME_EXECUTOR_ID, FLAME_ENDPOINT, FLAME_CA_FILE and FLAME_CACHE_ENDPOINT
 * (when known), HOME, the installation's variables (PATH, PYTHONPATH and
 * LD_LIBRARY_PATH prepended to the launch or the manager's value, others
 * only when absent), and TMPDIR, TMP and TEMP. The process gets the
 * manager's environment (without its TLS identity) overridden by the launch
 * environment. The command and the arguments have $VAR and ${VAR} expanded,
 * the launch environment first, then the manager's; unknown variables stay
 * as written. Threads: pure. */
#ifndef FL_SHIM_ENV_H
#define FL_SHIM_ENV_H

#include <stdbool.h>

#include "shim.h"

typedef struct fl_service_env {
    char **envp;   /* NULL-terminated; every string malloc'ed */
    char *command; /* the expanded command */
    char **argv;   /* NULL-terminated: the command as written (expanded), then the arguments */
} fl_service_env;

/* home: HOME for the service (NULL: the manager's); tmp_dir: TMPDIR and
 * friends (created). */
void fl_service_env_build(fl_service_env *out, const fl_shim_session *ctx, const char *sock,
                          const char *home, const char *tmp_dir);

/* Where the (expanded) command is: with a '/', as is, unless it was written
 * ${FLAME_HOME}/bin/NAME (or $FLAME_HOME/bin/NAME) and is not there: then
 * NAME, as a command without a '/' is looked for: in bin_dir, then on the
 * launch environment's PATH. NULL if not found. malloc'ed. */
char *fl_service_resolve(const fl_service_env *e, const char *written, const char *bin_dir);

void fl_service_env_clear(fl_service_env *e);

#endif
