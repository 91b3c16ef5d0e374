/* The install step and its one installer today, "none". Threads: see
 * install.h. */
#include <stdlib.h>
#include <string.h>

#include "install.h"
#include "util/util.h"

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

const fl_installer *fl_installer_for(const fl_install_request *req)
{
    return &none_installer;
}

flame_status fl_install(const fl_installer *in, const fl_install_request *req,
                        fl_installation *out, char **message)
{
    memset(out, 0, sizeof *out);
    *message = NULL;
    flame_status st = in->install(req, out, message);
    if (st) {
        fl_installation_clear(out);
        if (!*message)
            *message = fl_sprintf("installer %s failed for application %s", in->name,
                                  req->application);
    }
    return st;
}

void fl_installation_clear(fl_installation *inst)
{
    free(inst->command);
    free(inst->working_directory);
    memset(inst, 0, sizeof *inst);
}
