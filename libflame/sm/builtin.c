/* The built-in applications, exactly Flame's three (common/src/lib.rs
 * default_applications) with Flame's fields, registered at start-up when
 * absent: an application of the same name already in the store (a previous
 * start's, or an admin's) is left as it is.
 *
 * Flame's defaults for them: shim Host, max_instances 1000000,
 * delay_release 60 s. Commands name ${FLAME_HOME}/bin/...: the executor
 * manager expands them (a node without that file runs the program of the
 * same name from its own bin directory, see shim/host.c).
 *
 * Our one addition: flmexec runs scripts nobody reviewed (an LLM's,
 * typically), so it is pinned to the process sandbox rather than left to
 * the node's default, which an admin may set to none, and its network is
 * off. A microVM flmexec is an application an admin registers
 * (examples/flmexec-microvm.yaml, `sandbox: microvm`). */
#include "sm.h"

#define BUILTIN_MAX_INSTANCES 1000000
#define BUILTIN_DELAY_RELEASE 60 /* seconds */

static const char flmexec_input_schema[] =
    "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
    "\"properties\":{"
    "\"language\":{\"type\":\"string\",\"description\":\"The language of the script, "
    "e.g. python or shell.\"},"
    "\"code\":{\"type\":\"string\",\"description\":\"The code of the script.\"},"
    "\"input\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},"
    "\"description\":\"The input of the script, as bytes.\"}},"
    "\"required\":[\"language\",\"code\"]}";

static const char flmexec_output_schema[] =
    "{\"type\":\"string\",\"description\":\"The output of the script in UTF-8.\"}";

typedef struct builtin_app {
    const char *name;
    const char *description; /* NULL: none */
    const char *command;
    const char *const *arguments; /* NULL-terminated, or NULL */
    const char *url;
    const char *installer;
    const char *schema_input, *schema_output;
    const char *sandbox; /* our extension; NULL: the node's default */
} builtin_app;

static const char *const flmrun_arguments[] = {
    "run", "--python", "python${FLAME_PYTHON_VERSION}", "python", "-m", "flamepy.runner.runpy",
    NULL
};

static const builtin_app builtins[] = {
    { .name = "flmexec",
      .description = "The Flame Executor application, which is used to run scripts.",
      .command = "${FLAME_HOME}/bin/flmexec-service",
      .schema_input = flmexec_input_schema,
      .schema_output = flmexec_output_schema,
      .sandbox = "process" },
    { .name = "flmping",
      .command = "${FLAME_HOME}/bin/flmping-service",
      .url = "file://${FLAME_HOME}/bin/flmping-service" },
    { .name = "flmrun",
      .description = "The Flame Runner application for executing customized Python "
                     "applications.",
      .command = "${FLAME_HOME}/bin/uv",
      .arguments = flmrun_arguments,
      .installer = "python" },
};

static void builtin(sm_t *sm, const builtin_app *b)
{
    if (sm_app_get(sm, b->name))
        return;
    Flame__V1__ApplicationSpec spec = FLAME__V1__APPLICATION_SPEC__INIT;
    Flame__V1__ApplicationSchema schema = FLAME__V1__APPLICATION_SCHEMA__INIT;
    spec.shim = FLAME__V1__SHIM__Host;
    if (b->description) {
        spec._description_case = FLAME__V1__APPLICATION_SPEC___DESCRIPTION_DESCRIPTION;
        spec.description = (char *)b->description;
    }
    spec._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    spec.command = (char *)b->command;
    size_t nargs = 0;
    while (b->arguments && b->arguments[nargs])
        nargs++;
    spec.n_arguments = nargs;
    spec.arguments = (char **)b->arguments;
    spec._max_instances_case = FLAME__V1__APPLICATION_SPEC___MAX_INSTANCES_MAX_INSTANCES;
    spec.max_instances = BUILTIN_MAX_INSTANCES;
    spec._delay_release_case = FLAME__V1__APPLICATION_SPEC___DELAY_RELEASE_DELAY_RELEASE;
    spec.delay_release = BUILTIN_DELAY_RELEASE;
    if (b->url) {
        spec._url_case = FLAME__V1__APPLICATION_SPEC___URL_URL;
        spec.url = (char *)b->url;
    }
    if (b->installer) {
        spec._installer_case = FLAME__V1__APPLICATION_SPEC___INSTALLER_INSTALLER;
        spec.installer = (char *)b->installer;
    }
    if (b->schema_input || b->schema_output) {
        schema._input_case = FLAME__V1__APPLICATION_SCHEMA___INPUT_INPUT;
        schema.input = (char *)b->schema_input;
        schema._output_case = FLAME__V1__APPLICATION_SCHEMA___OUTPUT_OUTPUT;
        schema.output = (char *)b->schema_output;
        spec._schema_case = FLAME__V1__APPLICATION_SPEC___SCHEMA_SCHEMA;
        spec.schema = &schema;
    }
    if (b->sandbox) {
        spec.sandbox = (char *)b->sandbox;
        spec.network = "none";
    }
    if (sm_app_register(sm, b->name, fl_wire_app_new(b->name, &spec, fl_now_ms())))
        fl_log(FL_LOG_ERROR, "sm", "built-in application %s: %s", b->name, flame_error_last());
}

void sm_register_builtins(sm_t *sm)
{
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        builtin(sm, &builtins[i]);
}
