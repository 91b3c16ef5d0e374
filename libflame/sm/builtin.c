/* The built-in applications, registered at start-up when absent.
 *
 * flmexec runs scripts nobody reviewed (an LLM's, typically): it is pinned
 * to a sandbox level rather than left to the node's default, which an admin
 * may set to none, and its network is off. flmexec-microvm is the same
 * service in a microVM (flmexec --sandbox microvm); on a node without the
 * microvm level its sessions fail to bind with a message saying why. */
#include "sm.h"

static void builtin(sm_t *sm, const char *name, const char *description, const char *command,
                    const char *sandbox)
{
    if (sm_app_get(sm, name))
        return;
    Flame__V1__ApplicationSpec spec = FLAME__V1__APPLICATION_SPEC__INIT;
    spec.shim = FLAME__V1__SHIM__Host;
    spec._description_case = FLAME__V1__APPLICATION_SPEC___DESCRIPTION_DESCRIPTION;
    spec.description = (char *)description;
    spec._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    spec.command = (char *)command;
    if (sandbox) {
        spec.sandbox = (char *)sandbox;
        spec.network = "none";
    }
    if (sm_app_register(sm, name, fl_wire_app_new(name, &spec, fl_now_ms())))
        fl_log(FL_LOG_ERROR, "sm", "built-in application %s: %s", name, flame_error_last());
}

void sm_register_builtins(sm_t *sm)
{
    builtin(sm, "flmping",
            "The built-in ping service: input {\"duration\": ms, \"memory\": bytes}; "
            "answers with the executor's host",
            "flmping-service", NULL);
    builtin(sm, "flmexec",
            "The built-in script runner: input {\"language\": \"shell\"|\"python\", "
            "\"code\": str, \"input\": bytes?, \"time_limit\": s?, \"memory_limit\": size?}; "
            "answers with the script's stdout; runs in the process sandbox, no network",
            "flmexec-service", "process");
    builtin(sm, "flmexec-microvm",
            "The built-in script runner in a microVM (as flmexec, sandbox microvm, no network)",
            "flmexec-service", "microvm");
}
