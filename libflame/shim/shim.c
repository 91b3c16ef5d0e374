/* Choosing a shim: a table from the application's declared shim to the
 * constructor that hosts it. Threads: no state; any thread. */
#include <string.h>

#include "shim.h"
#include "util/util.h"

#include "types.pb-c.h"

#define INPROC_PREFIX "inproc:"

static fl_shim *host_new(const flame_service *svc)
{
    return fl_shim_host_new();
}

typedef struct shim_kind {
    const char *name;
    int shim; /* the Flame__V1__Shim it serves; -1: chosen by the service */
    fl_shim *(*create)(const flame_service *svc);
} shim_kind;

static const shim_kind kinds[] = {
    { "inproc", -1, fl_shim_inproc_new },
    { "host", FLAME__V1__SHIM__Host, host_new },
    { "stdio", FLAME__V1__SHIM__Stdio, fl_shim_stdio_new },
    { "rest", FLAME__V1__SHIM__Rest, fl_shim_rest_new },
};

static const shim_kind *kind_named(const char *name)
{
    for (size_t i = 0; i < FL_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

static const shim_kind *kind_for(int shim)
{
    for (size_t i = 0; i < FL_ARRAY_LEN(kinds); i++)
        if (kinds[i].shim == shim)
            return &kinds[i];
    return NULL;
}

flame_status fl_shim_new(fl_shim **out, const fl_shim_choice *c, char **message)
{
    *out = NULL;
    *message = NULL;
    const char *cmd = c->command ? c->command : "";
    bool want_builtin = strncmp(cmd, INPROC_PREFIX, strlen(INPROC_PREFIX)) == 0;
    const char *builtin = want_builtin ? cmd + strlen(INPROC_PREFIX) : NULL;
    const flame_service *svc = c->service;
    if (!svc && want_builtin)
        svc = flame_builtin_service(builtin);
    const shim_kind *k = svc ? kind_named("inproc") : kind_for(c->shim);
    if (!k) {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(&flame__v1__shim__descriptor, c->shim);
        *message = v ? fl_sprintf("this executor has no %s runtime", v->name)
                     : fl_sprintf("this executor has no runtime for shim %d", c->shim);
        return FLAME_ERR_UNIMPLEMENTED;
    }
    if (want_builtin && !svc) {
        *message = fl_sprintf("no built-in service named \"%s\"", builtin);
        return FLAME_ERR_NOT_FOUND;
    }
    *out = k->create(svc);
    return FLAME_OK;
}
