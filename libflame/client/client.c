/* The client core behind client.h: flame.v1 Frontend calls made blocking
 * and converted to the public structs. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "config/endpoint.h"
#include "rpc/rpc.h"
#include "util/util.h"

#include "frontend.pb-c.h"

struct flame_client {
    rpc_channel *ch;
    char *endpoint;
    int timeout_ms;
};

struct flame_session {
    flame_client *client;
    char *id;
};

#define FE(name) rpc_path(&flame__v1__frontend__descriptor, name)

static flame_status bad_arg(const char *fn, const char *what)
{
    return fl_error(FLAME_ERR_INVALID_ARGUMENT, "%s: %s", fn, what);
}

/* ---- connection --------------------------------------------------------- */

flame_status flame_client_connect(flame_client **out, const flame_client_options *opts)
{
    if (!out)
        return bad_arg("flame_client_connect", "out is NULL");
    flame_client_options o = FLAME_CLIENT_OPTIONS_INIT;
    if (opts)
        o = *opts;
    fl_endpoint ep;
    flame_status st = fl_endpoint_resolve(&ep, o.endpoint);
    if (st)
        return st;
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.max_message = o.max_message_size;
    rpc_channel *ch;
    st = rpc_channel_new(&ch, ep.target, &co);
    if (st) {
        fl_endpoint_clear(&ep);
        return st;
    }
    flame_client *c = fl_calloc(1, sizeof *c);
    c->endpoint = ep.url;
    ep.url = NULL;
    c->timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 30000;
    c->ch = ch;
    fl_endpoint_clear(&ep);
    *out = c;
    return FLAME_OK;
}

void flame_client_free(flame_client *c)
{
    if (!c)
        return;
    rpc_channel_free(c->ch);
    free(c->endpoint);
    free(c);
}

const char *flame_client_endpoint(const flame_client *c)
{
    return c ? c->endpoint : NULL;
}

static flame_status call(flame_client *c, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
    return rpc_unary(c->ch, method, req, desc, resp, c->timeout_ms);
}

static flame_status call_result(flame_client *c, const char *method, const ProtobufCMessage *req)
{
    ProtobufCMessage *resp;
    flame_status st = call(c, method, req, &flame__v1__result__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__Result *r = (Flame__V1__Result *)resp;
    if (r->return_code != 0)
        st = fl_error(FLAME_ERR_INTERNAL, "%s: %s", method,
                      r->_message_case ? r->message : "failed");
    protobuf_c_message_free_unpacked(resp, NULL);
    return st;
}

/* ---- conversions -------------------------------------------------------- */

static flame_event *copy_events(Flame__V1__Event **ev, size_t n)
{
    if (!n)
        return NULL;
    flame_event *e = fl_calloc(n, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        e[i].code = ev[i]->code;
        e[i].message = ev[i]->_message_case ? fl_strdup(ev[i]->message) : NULL;
        e[i].creation_time = ev[i]->creation_time;
    }
    return e;
}

static void free_events(const flame_event *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)e[i].message);
    free((void *)e);
}

static flame_bytes copy_bytes(int has, ProtobufCBinaryData b)
{
    flame_bytes r = { NULL, 0 };
    if (has) {
        uint8_t *p = fl_malloc(b.len + 1);
        if (b.len)
            memcpy(p, b.data, b.len);
        p[b.len] = 0; /* convenient for text outputs */
        r.data = p;
        r.len = b.len;
    }
    return r;
}

static flame_task *task_from(const Flame__V1__Task *m)
{
    flame_task *t = fl_calloc(1, sizeof *t);
    t->id = fl_strdup(m->metadata ? m->metadata->id : "");
    if (m->spec) {
        t->session_id = fl_strdup(m->spec->session_id);
        t->input = copy_bytes(m->spec->_input_case, m->spec->input);
        t->output = copy_bytes(m->spec->_output_case, m->spec->output);
    } else {
        t->session_id = fl_strdup("");
    }
    if (m->status) {
        t->state = (flame_task_state)m->status->state;
        t->creation_time = m->status->creation_time;
        t->completion_time = m->status->_completion_time_case ? m->status->completion_time : 0;
        t->events = copy_events(m->status->events, m->status->n_events);
        t->events_len = m->status->n_events;
        for (size_t i = t->events_len; i > 0; i--)
            if (t->events[i - 1].message) {
                t->message = t->events[i - 1].message;
                break;
            }
    }
    return t;
}

void flame_task_free(flame_task *t)
{
    if (!t)
        return;
    free((char *)t->id);
    free((char *)t->session_id);
    free((void *)t->input.data);
    free((void *)t->output.data);
    free_events(t->events, t->events_len);
    free(t);
}

void flame_task_list_free(flame_task **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        flame_task_free(v[i]);
    free(v);
}

static flame_session_info *session_from(const Flame__V1__Session *m)
{
    flame_session_info *s = fl_calloc(1, sizeof *s);
    s->id = fl_strdup(m->metadata ? m->metadata->id : "");
    s->spec.version = FLAME_SESSION_SPEC_VERSION;
    if (m->spec) {
        const Flame__V1__SessionSpec *sp = m->spec;
        s->spec.application = fl_strdup(sp->application);
        s->spec.common_data = copy_bytes(sp->_common_data_case, sp->common_data);
        s->spec.min_instances = sp->min_instances;
        s->spec.has_max_instances = sp->_max_instances_case != 0;
        s->spec.max_instances = sp->max_instances;
        s->spec.priority = sp->priority;
        s->spec.batch_size = sp->batch_size;
        if (sp->_resreq_case && sp->resreq) {
            s->spec.has_resreq = 1;
            s->spec.resreq = (flame_resreq){ sp->resreq->cpu, sp->resreq->memory, sp->resreq->gpu };
        }
    } else {
        s->spec.application = fl_strdup("");
    }
    if (m->status) {
        const Flame__V1__SessionStatus *st = m->status;
        s->state = (flame_session_state)st->state;
        s->creation_time = st->creation_time;
        s->completion_time = st->_completion_time_case ? st->completion_time : 0;
        s->pending = st->pending;
        s->running = st->running;
        s->succeed = st->succeed;
        s->failed = st->failed;
        s->cancelled = st->cancelled;
        s->events = copy_events(st->events, st->n_events);
        s->events_len = st->n_events;
    }
    return s;
}

void flame_session_info_free(flame_session_info *s)
{
    if (!s)
        return;
    free((char *)s->id);
    free((char *)s->spec.application);
    free((void *)s->spec.common_data.data);
    free_events(s->events, s->events_len);
    free(s);
}

void flame_session_info_list_free(flame_session_info **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        flame_session_info_free(v[i]);
    free(v);
}

static const char **copy_strs(char **src, size_t n)
{
    if (!n)
        return NULL;
    const char **v = fl_calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = fl_strdup(src[i]);
    return v;
}

#define OPT_STR(m, f) ((m)->_##f##_case ? fl_strdup((m)->f) : NULL)

static flame_application *app_from(const Flame__V1__Application *m)
{
    flame_application *a = fl_calloc(1, sizeof *a);
    a->name = fl_strdup(m->metadata ? m->metadata->name : "");
    if (m->status) {
        a->state = (flame_application_state)m->status->state;
        a->creation_time = m->status->creation_time;
    }
    flame_application_spec *s = &a->spec;
    s->version = FLAME_APPLICATION_SPEC_VERSION;
    const Flame__V1__ApplicationSpec *sp = m->spec;
    if (!sp)
        return a;
    s->shim = (flame_shim)sp->shim;
    s->description = OPT_STR(sp, description);
    s->labels = copy_strs(sp->labels, sp->n_labels);
    s->labels_len = sp->n_labels;
    s->image = OPT_STR(sp, image);
    s->command = OPT_STR(sp, command);
    s->arguments = copy_strs(sp->arguments, sp->n_arguments);
    s->arguments_len = sp->n_arguments;
    if (sp->n_environments) {
        flame_env *e = fl_calloc(sp->n_environments, sizeof *e);
        for (size_t i = 0; i < sp->n_environments; i++) {
            e[i].name = fl_strdup(sp->environments[i]->name);
            e[i].value = fl_strdup(sp->environments[i]->value);
        }
        s->environments = e;
        s->environments_len = sp->n_environments;
    }
    s->working_directory = OPT_STR(sp, working_directory);
    s->has_max_instances = sp->_max_instances_case != 0;
    s->max_instances = sp->max_instances;
    s->has_delay_release = sp->_delay_release_case != 0;
    s->delay_release = sp->delay_release;
    if (sp->_schema_case && sp->schema) {
        s->schema_input = OPT_STR(sp->schema, input);
        s->schema_output = OPT_STR(sp->schema, output);
        s->schema_common_data = OPT_STR(sp->schema, common_data);
    }
    s->url = OPT_STR(sp, url);
    s->installer = OPT_STR(sp, installer);
    return a;
}

static void free_strs(const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i]);
    free((void *)v);
}

void flame_application_free(flame_application *a)
{
    if (!a)
        return;
    flame_application_spec *s = &a->spec;
    free((char *)a->name);
    free((char *)s->description);
    free_strs(s->labels, s->labels_len);
    free((char *)s->image);
    free((char *)s->command);
    free_strs(s->arguments, s->arguments_len);
    for (size_t i = 0; i < s->environments_len; i++) {
        free((char *)s->environments[i].name);
        free((char *)s->environments[i].value);
    }
    free((void *)s->environments);
    free((char *)s->working_directory);
    free((char *)s->schema_input);
    free((char *)s->schema_output);
    free((char *)s->schema_common_data);
    free((char *)s->url);
    free((char *)s->installer);
    free(a);
}

void flame_application_list_free(flame_application **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        flame_application_free(v[i]);
    free(v);
}

/* ---- applications ------------------------------------------------------- */

/* Builds a flame.v1 ApplicationSpec pointing into the caller's spec; the
 * arrays it allocates are freed by spec_done(). */
typedef struct spec_msg {
    Flame__V1__ApplicationSpec m;
    Flame__V1__ApplicationSchema schema;
    Flame__V1__Environment *envs;
    Flame__V1__Environment **envp;
} spec_msg;

#define SET_OPT_STR(m, f, v)                                                                    \
    do {                                                                                        \
        if (v) {                                                                                \
            (m)->f = (char *)(v);                                                               \
            (m)->_##f##_case = 1;                                                               \
        }                                                                                       \
    } while (0)

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
        return bad_arg(method, "client, name and spec are required");
    spec_msg x;
    spec_fill(&x, spec);
    flame_status st;
    if (update) {
        Flame__V1__UpdateApplicationRequest r = FLAME__V1__UPDATE_APPLICATION_REQUEST__INIT;
        r.name = (char *)name;
        r.application = &x.m;
        st = call_result(c, method, &r.base);
    } else {
        Flame__V1__RegisterApplicationRequest r = FLAME__V1__REGISTER_APPLICATION_REQUEST__INIT;
        r.name = (char *)name;
        r.application = &x.m;
        st = call_result(c, method, &r.base);
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
        return bad_arg("flame_application_unregister", "client and name are required");
    Flame__V1__UnregisterApplicationRequest r = FLAME__V1__UNREGISTER_APPLICATION_REQUEST__INIT;
    r.name = (char *)name;
    return call_result(c, FE("UnregisterApplication"), &r.base);
}

flame_status flame_application_get(flame_application **out, flame_client *c, const char *name)
{
    if (!out || !c || !name)
        return bad_arg("flame_application_get", "out, client and name are required");
    Flame__V1__GetApplicationRequest r = FLAME__V1__GET_APPLICATION_REQUEST__INIT;
    r.name = (char *)name;
    ProtobufCMessage *resp;
    flame_status st = call(c, FE("GetApplication"), &r.base, &flame__v1__application__descriptor, &resp);
    if (st)
        return st;
    *out = app_from((Flame__V1__Application *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_application_list(flame_application ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return bad_arg("flame_application_list", "out, count and client are required");
    Flame__V1__ListApplicationRequest r = FLAME__V1__LIST_APPLICATION_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = call(c, FE("ListApplication"), &r.base,
                           &flame__v1__application_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__ApplicationList *l = (Flame__V1__ApplicationList *)resp;
    flame_application **v = fl_calloc(l->n_applications + 1, sizeof *v);
    for (size_t i = 0; i < l->n_applications; i++)
        v[i] = app_from(l->applications[i]);
    *out = v;
    *count = l->n_applications;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

/* ---- sessions ----------------------------------------------------------- */

typedef struct session_spec_msg {
    Flame__V1__SessionSpec m;
    Flame__V1__ResourceRequirement rr;
} session_spec_msg;

static void session_spec_fill(session_spec_msg *x, const flame_session_spec *s)
{
    flame__v1__session_spec__init(&x->m);
    flame__v1__resource_requirement__init(&x->rr);
    x->m.application = (char *)(s->application ? s->application : "");
    if (s->common_data.data) {
        x->m._common_data_case = FLAME__V1__SESSION_SPEC___COMMON_DATA_COMMON_DATA;
        x->m.common_data.data = (uint8_t *)s->common_data.data;
        x->m.common_data.len = s->common_data.len;
    }
    x->m.min_instances = s->min_instances;
    if (s->has_max_instances) {
        x->m._max_instances_case = FLAME__V1__SESSION_SPEC___MAX_INSTANCES_MAX_INSTANCES;
        x->m.max_instances = s->max_instances;
    }
    x->m.priority = s->priority;
    x->m.batch_size = s->batch_size ? s->batch_size : 1;
    if (s->has_resreq) {
        x->rr.cpu = s->resreq.cpu;
        x->rr.memory = s->resreq.memory;
        x->rr.gpu = s->resreq.gpu;
        x->m._resreq_case = FLAME__V1__SESSION_SPEC___RESREQ_RESREQ;
        x->m.resreq = &x->rr;
    }
}

static flame_session *session_handle(flame_client *c, const char *id)
{
    flame_session *s = fl_calloc(1, sizeof *s);
    s->client = c;
    s->id = fl_strdup(id);
    return s;
}

static flame_status session_call(flame_session_info **info_out, char **id_out, flame_client *c,
                                 const char *method, const ProtobufCMessage *req)
{
    ProtobufCMessage *resp;
    flame_status st = call(c, method, req, &flame__v1__session__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__Session *m = (Flame__V1__Session *)resp;
    if (id_out)
        *id_out = fl_strdup(m->metadata ? m->metadata->id : "");
    if (info_out)
        *info_out = session_from(m);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_session_create(flame_session **out, flame_client *c, const char *session_id,
                                  const flame_session_spec *spec)
{
    if (!out || !c || !spec || !spec->application)
        return bad_arg("flame_session_create", "out, client and spec->application are required");
    session_spec_msg x;
    session_spec_fill(&x, spec);
    Flame__V1__CreateSessionRequest r = FLAME__V1__CREATE_SESSION_REQUEST__INIT;
    r.session_id = (char *)(session_id ? session_id : "");
    r.session = &x.m;
    char *id;
    flame_status st = session_call(NULL, &id, c, FE("CreateSession"), &r.base);
    if (st)
        return st;
    *out = session_handle(c, id);
    free(id);
    return FLAME_OK;
}

flame_status flame_session_open(flame_session **out, flame_client *c, const char *session_id,
                                const flame_session_spec *spec)
{
    if (!out || !c || !session_id || !*session_id)
        return bad_arg("flame_session_open", "out, client and a session id are required");
    session_spec_msg x;
    Flame__V1__OpenSessionRequest r = FLAME__V1__OPEN_SESSION_REQUEST__INIT;
    r.session_id = (char *)session_id;
    if (spec) {
        session_spec_fill(&x, spec);
        r._session_case = FLAME__V1__OPEN_SESSION_REQUEST___SESSION_SESSION;
        r.session = &x.m;
    }
    char *id;
    flame_status st = session_call(NULL, &id, c, FE("OpenSession"), &r.base);
    if (st)
        return st;
    *out = session_handle(c, id);
    free(id);
    return FLAME_OK;
}

flame_status flame_session_attach(flame_session **out, flame_client *c, const char *session_id)
{
    if (!out || !c || !session_id || !*session_id)
        return bad_arg("flame_session_attach", "out, client and a session id are required");
    *out = session_handle(c, session_id);
    return FLAME_OK;
}

const char *flame_session_id(const flame_session *s)
{
    return s ? s->id : NULL;
}

flame_status flame_session_close(flame_session *s)
{
    if (!s)
        return bad_arg("flame_session_close", "session is NULL");
    Flame__V1__CloseSessionRequest r = FLAME__V1__CLOSE_SESSION_REQUEST__INIT;
    r.session_id = s->id;
    return session_call(NULL, NULL, s->client, FE("CloseSession"), &r.base);
}

void flame_session_free(flame_session *s)
{
    if (!s)
        return;
    free(s->id);
    free(s);
}

flame_status flame_session_get(flame_session_info **out, flame_client *c, const char *id)
{
    if (!out || !c || !id)
        return bad_arg("flame_session_get", "out, client and id are required");
    Flame__V1__GetSessionRequest r = FLAME__V1__GET_SESSION_REQUEST__INIT;
    r.session_id = (char *)id;
    return session_call(out, NULL, c, FE("GetSession"), &r.base);
}

flame_status flame_session_delete(flame_client *c, const char *id)
{
    if (!c || !id)
        return bad_arg("flame_session_delete", "client and id are required");
    Flame__V1__DeleteSessionRequest r = FLAME__V1__DELETE_SESSION_REQUEST__INIT;
    r.session_id = (char *)id;
    return session_call(NULL, NULL, c, FE("DeleteSession"), &r.base);
}

flame_status flame_session_list(flame_session_info ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return bad_arg("flame_session_list", "out, count and client are required");
    Flame__V1__ListSessionRequest r = FLAME__V1__LIST_SESSION_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = call(c, FE("ListSession"), &r.base, &flame__v1__session_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__SessionList *l = (Flame__V1__SessionList *)resp;
    flame_session_info **v = fl_calloc(l->n_sessions + 1, sizeof *v);
    for (size_t i = 0; i < l->n_sessions; i++)
        v[i] = session_from(l->sessions[i]);
    *out = v;
    *count = l->n_sessions;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

/* ---- tasks -------------------------------------------------------------- */

int flame_task_state_is_terminal(flame_task_state s)
{
    return s == FLAME_TASK_SUCCEED || s == FLAME_TASK_FAILED || s == FLAME_TASK_CANCELLED;
}

flame_status flame_task_create(flame_task **out, flame_session *s, const void *input, size_t len)
{
    if (!s)
        return bad_arg("flame_task_create", "session is NULL");
    Flame__V1__TaskSpec spec = FLAME__V1__TASK_SPEC__INIT;
    spec.session_id = s->id;
    if (input) {
        spec._input_case = FLAME__V1__TASK_SPEC___INPUT_INPUT;
        spec.input.data = (uint8_t *)input;
        spec.input.len = len;
    }
    Flame__V1__CreateTaskRequest r = FLAME__V1__CREATE_TASK_REQUEST__INIT;
    r.task = &spec;
    ProtobufCMessage *resp;
    flame_status st = call(s->client, FE("CreateTask"), &r.base, &flame__v1__task__descriptor, &resp);
    if (st)
        return st;
    if (out)
        *out = task_from((Flame__V1__Task *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

#define CREATE_MANY_BYTES (1u << 20) /* per call */
#define CREATE_MANY_TASKS 8192

flame_status flame_task_create_many(flame_session *s, const flame_bytes *inputs, size_t n,
                                    uint64_t *ids)
{
    if (!s)
        return bad_arg("flame_task_create_many", "session is NULL");
    ProtobufCBinaryData *bins = inputs ? fl_calloc(CREATE_MANY_TASKS, sizeof *bins) : NULL;
    size_t done = 0;
    flame_status st = FLAME_OK;
    while (done < n && !st) {
        Flame__V1__CreateTasksRequest r = FLAME__V1__CREATE_TASKS_REQUEST__INIT;
        r.session_id = s->id;
        size_t k = 0, bytes = 0;
        if (inputs) {
            /* tasks without input cannot ride in `inputs`: send them alone */
            if (!inputs[done].data) {
                for (; done + k < n && k < CREATE_MANY_TASKS && !inputs[done + k].data; k++)
                    ;
                r.count = (uint32_t)k;
            } else {
                for (; done + k < n && k < CREATE_MANY_TASKS && inputs[done + k].data; k++) {
                    if (k && bytes + inputs[done + k].len > CREATE_MANY_BYTES)
                        break;
                    bins[k].data = (uint8_t *)inputs[done + k].data;
                    bins[k].len = inputs[done + k].len;
                    bytes += inputs[done + k].len + 8;
                }
                r.n_inputs = k;
                r.inputs = bins;
            }
        } else {
            k = n - done < CREATE_MANY_TASKS ? n - done : CREATE_MANY_TASKS;
            r.count = (uint32_t)k;
        }
        ProtobufCMessage *resp;
        st = call(s->client, FE("CreateTasks"), &r.base, &flame__v1__create_tasks_response__descriptor,
                  &resp);
        if (st)
            break;
        Flame__V1__CreateTasksResponse *cr = (Flame__V1__CreateTasksResponse *)resp;
        for (size_t i = 0; ids && i < k; i++)
            ids[done + i] = cr->first_task_id + i;
        protobuf_c_message_free_unpacked(resp, NULL);
        done += k;
    }
    free(bins);
    return st;
}

/* Sleeps before a reconnection; doubles *backoff_ms up to 1 s. */
static void backoff_sleep(int *backoff_ms)
{
    struct timespec ts = { *backoff_ms / 1000, (long)(*backoff_ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
    *backoff_ms = *backoff_ms * 2 > 1000 ? 1000 : *backoff_ms * 2;
}

/* Outcomes already given to the callback (a watch that reconnects after a
 * session-manager restart is sent them again). */
typedef struct seen_set {
    uint64_t base;
    uint8_t *bits;
    size_t nbytes;
} seen_set;

static bool seen_test_and_set(seen_set *x, uint64_t id)
{
    if (id < x->base)
        return true;
    uint64_t k = id - x->base;
    if (k / 8 >= x->nbytes) {
        size_t n = x->nbytes ? x->nbytes : 1024;
        while (k / 8 >= n)
            n *= 2;
        x->bits = fl_realloc(x->bits, n);
        memset(x->bits + x->nbytes, 0, n - x->nbytes);
        x->nbytes = n;
    }
    bool was = x->bits[k / 8] & (1u << (k % 8));
    x->bits[k / 8] |= (uint8_t)(1u << (k % 8));
    return was;
}

flame_status flame_session_watch(flame_session *s, uint64_t from_task_id,
                                 flame_session_watch_cb cb, void *payload, int timeout_ms)
{
    if (!s || !cb)
        return bad_arg("flame_session_watch", "session and callback are required");
    Flame__V1__WatchSessionRequest r = FLAME__V1__WATCH_SESSION_REQUEST__INIT;
    r.session_id = s->id;
    r.from_task_id = from_task_id ? from_task_id : 1;
    int64_t deadline = timeout_ms >= 0 ? fl_mono_ns() + (int64_t)timeout_ms * 1000000 : 0;
    seen_set seen = { r.from_task_id, NULL, 0 };
    flame_task_outcome *v = NULL;
    size_t cap = 0;
    flame_status rc;
    int backoff_ms = 50;
    for (;;) {
        int left = 0;
        if (deadline) {
            int64_t ns = deadline - fl_mono_ns();
            if (ns <= 0) {
                rc = fl_error(FLAME_ERR_TIMEOUT, "WatchSession: deadline exceeded");
                break;
            }
            left = (int)(ns / 1000000) + 1;
        }
        rpc_stream *st = NULL;
        rc = rpc_stream_open(&st, s->client->ch, FE("WatchSession"), &r.base, left);
        bool stopped = false, got_any = false;
        while (!rc) {
            ProtobufCMessage *m;
            rc = rpc_stream_next(st, &flame__v1__task_outcomes__descriptor, &m);
            if (rc || !m)
                break;
            got_any = true;
            Flame__V1__TaskOutcomes *o = (Flame__V1__TaskOutcomes *)m;
            if (o->n_outcomes > cap) {
                cap = o->n_outcomes;
                v = fl_realloc(v, cap * sizeof *v);
            }
            size_t k = 0;
            for (size_t i = 0; i < o->n_outcomes; i++) {
                const Flame__V1__TaskOutcome *x = o->outcomes[i];
                if (seen_test_and_set(&seen, x->task_id))
                    continue;
                v[k] = (flame_task_outcome){ x->task_id, (flame_task_state)x->state, { NULL, 0 },
                                             x->_message_case ? x->message : NULL,
                                             x->completion_time };
                if (x->_output_case) {
                    v[k].output.data = x->output.data ? x->output.data : (const uint8_t *)"";
                    v[k].output.len = x->output.len;
                }
                k++;
            }
            int stop = k ? cb(v, k, payload) : 0;
            protobuf_c_message_free_unpacked(m, NULL);
            if (stop) {
                rpc_stream_cancel(st);
                stopped = true;
                break;
            }
        }
        if (st)
            rpc_stream_free(st);
        if (stopped || rc == FLAME_OK)
            break;
        /* the session manager went away (a restart): come back and resume;
         * what was reported is not reported twice */
        if (rc != FLAME_ERR_UNAVAILABLE && rc != FLAME_ERR_INTERNAL)
            break;
        if (got_any)
            backoff_ms = 50;
        backoff_sleep(&backoff_ms);
    }
    free(v);
    free(seen.bits);
    return rc;
}

struct flame_session_stream {
    flame_session *s;
    rpc_stream *st;
    bool first;
    uint64_t acked;
    flame_task_outcome *v;
    size_t cap;
};

flame_status flame_session_stream_open(flame_session_stream **out, flame_session *s)
{
    if (!out || !s)
        return bad_arg("flame_session_stream_open", "out and session are required");
    flame_session_stream *x = fl_calloc(1, sizeof *x);
    x->s = s;
    flame_status st = rpc_bidi_open(&x->st, s->client->ch, FE("RunSession"));
    if (st) {
        free(x);
        return st;
    }
    /* the first message names the session and creates nothing */
    Flame__V1__RunSessionRequest r = FLAME__V1__RUN_SESSION_REQUEST__INIT;
    r.session_id = s->id;
    if ((st = rpc_bidi_send(x->st, &r.base))) {
        rpc_stream_free(x->st);
        free(x);
        return st;
    }
    *out = x;
    return FLAME_OK;
}

flame_status flame_session_stream_submit(flame_session_stream *x, const flame_bytes *inputs,
                                         size_t n)
{
    if (!x)
        return bad_arg("flame_session_stream_submit", "stream is NULL");
    Flame__V1__RunSessionRequest r = FLAME__V1__RUN_SESSION_REQUEST__INIT;
    ProtobufCBinaryData one, *bins = NULL;
    bool all_inputs = inputs != NULL;
    for (size_t i = 0; inputs && i < n; i++)
        all_inputs = all_inputs && inputs[i].data;
    if (all_inputs) {
        bins = n == 1 ? &one : fl_calloc(n, sizeof *bins);
        for (size_t i = 0; i < n; i++) {
            bins[i].data = (uint8_t *)inputs[i].data;
            bins[i].len = inputs[i].len;
        }
        r.n_inputs = n;
        r.inputs = bins;
    } else if (!inputs) {
        r.count = (uint32_t)n;
    } else {
        return bad_arg("flame_session_stream_submit", "mixing tasks with and without input");
    }
    flame_status st = rpc_bidi_send(x->st, &r.base);
    if (bins != &one)
        free(bins);
    return st;
}

flame_status flame_session_stream_next(flame_session_stream *x, flame_session_watch_cb cb,
                                       void *payload, uint64_t *acked_upto)
{
    if (!x)
        return bad_arg("flame_session_stream_next", "stream is NULL");
    ProtobufCMessage *m;
    flame_status st = rpc_stream_next(x->st, &flame__v1__task_outcomes__descriptor, &m);
    if (st)
        return st;
    if (!m)
        return fl_error(FLAME_ERR_CANCELLED, "RunSession: the stream has ended");
    Flame__V1__TaskOutcomes *o = (Flame__V1__TaskOutcomes *)m;
    if (o->created_count && o->created_first + o->created_count - 1 > x->acked)
        x->acked = o->created_first + o->created_count - 1;
    if (acked_upto)
        *acked_upto = x->acked;
    if (o->n_outcomes && cb) {
        if (o->n_outcomes > x->cap) {
            x->cap = o->n_outcomes;
            x->v = fl_realloc(x->v, x->cap * sizeof *x->v);
        }
        for (size_t i = 0; i < o->n_outcomes; i++) {
            const Flame__V1__TaskOutcome *y = o->outcomes[i];
            x->v[i] = (flame_task_outcome){ y->task_id, (flame_task_state)y->state, { NULL, 0 },
                                            y->_message_case ? y->message : NULL,
                                            y->completion_time };
            if (y->_output_case) {
                x->v[i].output.data = y->output.data ? y->output.data : (const uint8_t *)"";
                x->v[i].output.len = y->output.len;
            }
        }
        cb(x->v, o->n_outcomes, payload);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return FLAME_OK;
}

void flame_session_stream_close(flame_session_stream *x)
{
    if (!x)
        return;
    rpc_bidi_close_send(x->st);
    rpc_stream_cancel(x->st);
    rpc_stream_free(x->st);
    free(x->v);
    free(x);
}

flame_status flame_task_get(flame_task **out, flame_session *s, const char *task_id)
{
    if (!out || !s || !task_id)
        return bad_arg("flame_task_get", "out, session and task id are required");
    Flame__V1__GetTaskRequest r = FLAME__V1__GET_TASK_REQUEST__INIT;
    r.session_id = s->id;
    r.task_id = (char *)task_id;
    ProtobufCMessage *resp;
    flame_status st = call(s->client, FE("GetTask"), &r.base, &flame__v1__task__descriptor, &resp);
    if (st)
        return st;
    *out = task_from((Flame__V1__Task *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_task_list(flame_task ***out, size_t *count, flame_session *s)
{
    if (!out || !count || !s)
        return bad_arg("flame_task_list", "out, count and session are required");
    Flame__V1__ListTaskRequest r = FLAME__V1__LIST_TASK_REQUEST__INIT;
    r.session_id = s->id;
    rpc_stream *st;
    flame_status rc = rpc_stream_open(&st, s->client->ch, FE("ListTask"), &r.base,
                                      s->client->timeout_ms);
    if (rc)
        return rc;
    flame_task **v = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        ProtobufCMessage *m;
        rc = rpc_stream_next(st, &flame__v1__task__descriptor, &m);
        if (rc || !m)
            break;
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 64;
            v = fl_realloc(v, cap * sizeof *v);
        }
        v[n++] = task_from((Flame__V1__Task *)m);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_stream_free(st);
    if (rc) {
        flame_task_list_free(v, n);
        return rc;
    }
    if (!v)
        v = fl_calloc(1, sizeof *v);
    *out = v;
    *count = n;
    return FLAME_OK;
}

flame_status flame_task_watch(flame_session *s, const char *task_id, flame_task_watch_cb cb,
                              void *payload, int timeout_ms)
{
    if (!s || !task_id || !cb)
        return bad_arg("flame_task_watch", "session, task id and callback are required");
    Flame__V1__WatchTaskRequest r = FLAME__V1__WATCH_TASK_REQUEST__INIT;
    r.session_id = s->id;
    r.task_id = (char *)task_id;
    int64_t deadline = timeout_ms >= 0 ? fl_mono_ns() + (int64_t)timeout_ms * 1000000 : 0;
    int backoff_ms = 50;
    flame_status rc;
    for (;;) {
        int left = 0;
        if (deadline) {
            int64_t ns = deadline - fl_mono_ns();
            if (ns <= 0)
                return fl_error(FLAME_ERR_TIMEOUT, "WatchTask: deadline exceeded for task %s",
                                task_id);
            left = (int)(ns / 1000000) + 1;
        }
        rpc_stream *st = NULL;
        rc = rpc_stream_open(&st, s->client->ch, FE("WatchTask"), &r.base, left);
        bool done = false;
        while (!rc) {
            ProtobufCMessage *m;
            rc = rpc_stream_next(st, &flame__v1__task__descriptor, &m);
            if (rc)
                break;
            if (!m) {
                rc = fl_error(FLAME_ERR_INTERNAL,
                              "WatchTask: the stream ended before task %s finished", task_id);
                break;
            }
            flame_task *t = task_from((Flame__V1__Task *)m);
            protobuf_c_message_free_unpacked(m, NULL);
            int stop = cb(t, payload);
            int terminal = flame_task_state_is_terminal(t->state);
            flame_task_free(t);
            backoff_ms = 50;
            if (terminal) {
                done = true;
                break;
            }
            if (stop) {
                rc = fl_error(FLAME_ERR_CANCELLED, "watch of task %s stopped by the callback",
                              task_id);
                break;
            }
        }
        if (st)
            rpc_stream_free(st);
        if (done)
            return FLAME_OK;
        /* the session manager went away (a restart): watch again; the
         * callback sees the task's current state once more */
        if (rc != FLAME_ERR_UNAVAILABLE && rc != FLAME_ERR_INTERNAL)
            return rc;
        backoff_sleep(&backoff_ms);
    }
}

static int keep_last(const flame_task *t, void *payload)
{
    flame_task **last = payload;
    if (flame_task_state_is_terminal(t->state)) {
        /* copy: the callback's task dies after the call */
        flame_task *c = fl_calloc(1, sizeof *c);
        *c = *t;
        c->id = fl_strdup(t->id);
        c->session_id = fl_strdup(t->session_id);
        c->input.data = t->input.data ? fl_memdup(t->input.data, t->input.len + 1) : NULL;
        c->output.data = t->output.data ? fl_memdup(t->output.data, t->output.len + 1) : NULL;
        flame_event *ev = t->events_len ? fl_calloc(t->events_len, sizeof *ev) : NULL;
        c->message = NULL;
        for (size_t i = 0; i < t->events_len; i++) {
            ev[i] = t->events[i];
            ev[i].message = fl_strdup(t->events[i].message);
            if (t->events[i].message == t->message)
                c->message = ev[i].message;
        }
        c->events = ev;
        *last = c;
    }
    return 0;
}

flame_status flame_task_wait(flame_task **out, flame_session *s, const char *task_id,
                             int timeout_ms)
{
    if (!out)
        return bad_arg("flame_task_wait", "out is NULL");
    flame_task *last = NULL;
    flame_status st = flame_task_watch(s, task_id, keep_last, &last, timeout_ms);
    if (st) {
        flame_task_free(last);
        return st;
    }
    *out = last;
    return FLAME_OK;
}

/* ---- executors and nodes ------------------------------------------------ */

flame_status flame_executor_list(flame_executor_info ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return bad_arg("flame_executor_list", "out, count and client are required");
    Flame__V1__ListExecutorRequest r = FLAME__V1__LIST_EXECUTOR_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = call(c, FE("ListExecutor"), &r.base, &flame__v1__executor_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__ExecutorList *l = (Flame__V1__ExecutorList *)resp;
    flame_executor_info **v = fl_calloc(l->n_executors + 1, sizeof *v);
    for (size_t i = 0; i < l->n_executors; i++) {
        const Flame__V1__Executor *e = l->executors[i];
        flame_executor_info *x = fl_calloc(1, sizeof *x);
        x->id = fl_strdup(e->metadata ? e->metadata->id : "");
        x->node = fl_strdup(e->spec ? e->spec->node : "");
        if (e->spec && e->spec->resreq)
            x->resreq = (flame_resreq){ e->spec->resreq->cpu, e->spec->resreq->memory,
                                        e->spec->resreq->gpu };
        x->shim = e->spec ? (flame_shim)e->spec->shim : FLAME_SHIM_HOST;
        if (e->status) {
            x->state = (flame_executor_state)e->status->state;
            x->session_id = e->status->_session_id_case ? fl_strdup(e->status->session_id) : NULL;
        }
        v[i] = x;
    }
    *out = v;
    *count = l->n_executors;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

void flame_executor_info_list_free(flame_executor_info **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free((char *)v[i]->id);
        free((char *)v[i]->node);
        free((char *)v[i]->session_id);
        free(v[i]);
    }
    free(v);
}

static flame_resreq rr_from(const Flame__V1__ResourceRequirement *r)
{
    return r ? (flame_resreq){ r->cpu, r->memory, r->gpu } : (flame_resreq){ 0, 0, 0 };
}

flame_status flame_node_list(flame_node_info ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return bad_arg("flame_node_list", "out, count and client are required");
    Flame__V1__ListNodesRequest r = FLAME__V1__LIST_NODES_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = call(c, FE("ListNodes"), &r.base, &flame__v1__node_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__NodeList *l = (Flame__V1__NodeList *)resp;
    flame_node_info **v = fl_calloc(l->n_nodes + 1, sizeof *v);
    for (size_t i = 0; i < l->n_nodes; i++) {
        const Flame__V1__Node *n = l->nodes[i];
        flame_node_info *x = fl_calloc(1, sizeof *x);
        x->name = fl_strdup(n->metadata ? n->metadata->name : "");
        x->hostname = fl_strdup(n->spec ? n->spec->hostname : "");
        if (n->status) {
            x->state = (flame_node_state)n->status->state;
            x->capacity = rr_from(n->status->capacity);
            x->allocatable = rr_from(n->status->allocatable);
            x->arch = fl_strdup(n->status->info ? n->status->info->arch : "");
            x->os = fl_strdup(n->status->info ? n->status->info->os : "");
            x->last_heartbeat_time = n->status->last_heartbeat_time;
        } else {
            x->arch = fl_strdup("");
            x->os = fl_strdup("");
        }
        v[i] = x;
    }
    *out = v;
    *count = l->n_nodes;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

void flame_node_info_list_free(flame_node_info **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free((char *)v[i]->name);
        free((char *)v[i]->hostname);
        free((char *)v[i]->arch);
        free((char *)v[i]->os);
        free(v[i]);
    }
    free(v);
}
