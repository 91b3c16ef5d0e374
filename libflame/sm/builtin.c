/* The built-in applications, registered at start-up when absent. */
#include "sm.h"

static void builtin(sm_t *sm, const char *name, const char *description, const char *command)
{
    if (sm_app_get(sm, name))
        return;
    Flame__V1__ApplicationSpec spec = FLAME__V1__APPLICATION_SPEC__INIT;
    spec.shim = FLAME__V1__SHIM__Host;
    spec._description_case = FLAME__V1__APPLICATION_SPEC___DESCRIPTION_DESCRIPTION;
    spec.description = (char *)description;
    spec._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    spec.command = (char *)command;
    if (sm_app_register(sm, name, fl_wire_app_new(name, &spec, fl_now_ms())))
        fl_log(FL_LOG_ERROR, "sm", "built-in application %s: %s", name, flame_error_last());
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
