/* Applications: register, update, unregister, get, list (Frontend calls).
 * No state of its own: safe from any thread. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

void flame_application_spec_init(flame_application_spec *spec)
{
    if (spec)
        *spec = (flame_application_spec)FLAME_APPLICATION_SPEC_INIT;
}

/* Builds a flame.v1 ApplicationSpec pointing into the caller's spec; the
 * arrays it allocates are freed by spec_done(). */
typedef struct spec_msg {
    Flame__V1__ApplicationSpec m;
    Flame__V1__ApplicationSchema schema;
    Flame__V1__Environment *envs;
    Flame__V1__Environment **envp;
} spec_msg;

static void spec_fill(spec_msg *x, const flame_application_spec *s)
{
    memset(x, 0, sizeof *x);
    flame__v1__application_spec__init(&x->m);
    flame__v1__application_schema__init(&x->schema);
    Flame__V1__ApplicationSpec *m = &x->m;
    m->shim = (Flame__V1__Shim)s->shim;
    /* the oneof case of a proto3 optional equals its field number */
    if (s->description) { m->description = (char *)s->description; m->_description_case = 2; }
    m->labels = (char **)s->labels;
    m->n_labels = s->labels ? s->labels_len : 0;
    if (s->image) { m->image = (char *)s->image; m->_image_case = 4; }
    if (s->command) { m->command = (char *)s->command; m->_command_case = 5; }
    m->arguments = (char **)s->arguments;
    m->n_arguments = s->arguments ? s->arguments_len : 0;
    if (s->environments && s->environments_len) {
        x->envs = fl_calloc(s->environments_len, sizeof *x->envs);
        x->envp = fl_calloc(s->environments_len, sizeof *x->envp);
        for (size_t i = 0; i < s->environments_len; i++) {
            flame__v1__environment__init(&x->envs[i]);
            x->envs[i].name = (char *)(s->environments[i].name ? s->environments[i].name : "");
            x->envs[i].value = (char *)(s->environments[i].value ? s->environments[i].value : "");
            x->envp[i] = &x->envs[i];
        }
        m->environments = x->envp;
        m->n_environments = s->environments_len;
    }
    if (s->working_directory) {
        m->working_directory = (char *)s->working_directory;
        m->_working_directory_case = 8;
    }
    if (s->has_max_instances) { m->max_instances = s->max_instances; m->_max_instances_case = 9; }
    if (s->has_delay_release) { m->delay_release = s->delay_release; m->_delay_release_case = 10; }
    if (s->schema_input || s->schema_output || s->schema_common_data) {
        if (s->schema_input) { x->schema.input = (char *)s->schema_input; x->schema._input_case = 1; }
        if (s->schema_output) { x->schema.output = (char *)s->schema_output; x->schema._output_case = 2; }
        if (s->schema_common_data) {
            x->schema.common_data = (char *)s->schema_common_data;
            x->schema._common_data_case = 3;
        }
        m->schema = &x->schema;
        m->_schema_case = 11;
    }
    if (s->url) { m->url = (char *)s->url; m->_url_case = 12; }
    if (s->installer) { m->installer = (char *)s->installer; m->_installer_case = 13; }
    if (s->version >= 2 && s->sandbox)
        m->sandbox = (char *)s->sandbox;
    if (s->version >= 2 && s->network)
        m->network = (char *)s->network;
    if (s->version >= 3)
        m->sandbox_reuse = s->sandbox_reuse != 0;
    if (s->version >= 4) {
        m->stdio_mode = (char *)(s->stdio_mode ? s->stdio_mode : "");
        m->rest_url = (char *)(s->rest_url ? s->rest_url : "");
        m->rest_health = (char *)(s->rest_health ? s->rest_health : "");
    }
}

static void spec_done(spec_msg *x)
{
    free(x->envs);
    free(x->envp);
}

static flame_status app_write(flame_client *c, const char *method, const char *name,
                              const flame_application_spec *spec, int update)
{
    if (!c || !name || !spec)
        return fl_client_bad_arg(method, "client, name and spec are required");
    spec_msg x;
    spec_fill(&x, spec);
    flame_status st;
    if (update) {
        Flame__V1__UpdateApplicationRequest r = FLAME__V1__UPDATE_APPLICATION_REQUEST__INIT;
        r.name = (char *)name;
        r.application = &x.m;
        st = fl_client_call_result(c, method, &r.base);
    } else {
        Flame__V1__RegisterApplicationRequest r = FLAME__V1__REGISTER_APPLICATION_REQUEST__INIT;
        r.name = (char *)name;
        r.application = &x.m;
        st = fl_client_call_result(c, method, &r.base);
    }
    spec_done(&x);
    return st;
}

flame_status flame_application_register(flame_client *c, const char *name,
                                        const flame_application_spec *spec)
{
    return app_write(c, FE("RegisterApplication"), name, spec, 0);
}

flame_status flame_application_update(flame_client *c, const char *name,
                                      const flame_application_spec *spec)
{
    return app_write(c, FE("UpdateApplication"), name, spec, 1);
}

flame_status flame_application_unregister(flame_client *c, const char *name)
{
    if (!c || !name)
        return fl_client_bad_arg("flame_application_unregister", "client and name are required");
    Flame__V1__UnregisterApplicationRequest r = FLAME__V1__UNREGISTER_APPLICATION_REQUEST__INIT;
    r.name = (char *)name;
    return fl_client_call_result(c, FE("UnregisterApplication"), &r.base);
}

flame_status flame_application_get(flame_application **out, flame_client *c, const char *name)
{
    if (!out || !c || !name)
        return fl_client_bad_arg("flame_application_get", "out, client and name are required");
    Flame__V1__GetApplicationRequest r = FLAME__V1__GET_APPLICATION_REQUEST__INIT;
    r.name = (char *)name;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(c, FE("GetApplication"), &r.base,
                                     &flame__v1__application__descriptor, &resp);
    if (st)
        return st;
    *out = fl_application_from((Flame__V1__Application *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_application_list(flame_application ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return fl_client_bad_arg("flame_application_list", "out, count and client are required");
    Flame__V1__ListApplicationRequest r = FLAME__V1__LIST_APPLICATION_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(c, FE("ListApplication"), &r.base,
                                     &flame__v1__application_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__ApplicationList *l = (Flame__V1__ApplicationList *)resp;
    flame_application **v = fl_calloc(l->n_applications + 1, sizeof *v);
    for (size_t i = 0; i < l->n_applications; i++)
        v[i] = fl_application_from(l->applications[i]);
    *out = v;
    *count = l->n_applications;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}
