/* The built-in applications, registered at start-up when absent. */
#include <stdlib.h>

#include "sm.h"

static void builtin(sm_t *sm, const char *name, const char *description, const char *command)
{
    if (fl_map_get(&sm->apps, name))
        return;
    Flame__V1__ApplicationSpec spec = FLAME__V1__APPLICATION_SPEC__INIT;
    spec.shim = FLAME__V1__SHIM__Host;
    spec._description_case = FLAME__V1__APPLICATION_SPEC___DESCRIPTION_DESCRIPTION;
    spec.description = (char *)description;
    spec._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    spec.command = (char *)command;
    fl_app *a = fl_wire_app_new(name, &spec, fl_now_ms());
    fl_map_put(&sm->apps, a->name, a);
    fl_store_put_app(sm->store, a);
}

void sm_register_builtins(sm_t *sm)
{
    builtin(sm, "flmping",
            "The built-in ping service: input {\"duration\": ms, \"memory\": bytes}; "
            "answers with the executor's host",
            "flmping-service");
    builtin(sm, "flmexec",
            "The built-in script runner: input {\"language\": \"shell\"|\"python\", "
            "\"code\": str, \"input\": bytes?}; answers with the script's stdout",
            "flmexec-service");
}
