/* flame.v1 messages -> the public structs of client.h, and the *_free
 * functions of those structs. Everything returned here is a deep copy the
 * caller owns, except fl_outcome_view(). No state, no threads. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

#define OPT_STR(m, f) ((m)->_##f##_case ? fl_strdup((m)->f) : NULL)

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

static const char **copy_strs(char **src, size_t n)
{
    if (!n)
        return NULL;
    const char **v = fl_calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = fl_strdup(src[i]);
    return v;
}

static void free_strs(const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i]);
    free((void *)v);
}

static flame_resreq resreq_from(const Flame__V1__ResourceRequirement *r)
{
    return r ? (flame_resreq){ r->cpu, r->memory, r->gpu } : (flame_resreq){ 0, 0, 0 };
}

/* ---- tasks -------------------------------------------------------------- */

flame_task *fl_task_from(const Flame__V1__Task *m)
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

flame_task *fl_task_copy(const flame_task *t)
{
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
    return c;
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

flame_task_outcome fl_outcome_view(const Flame__V1__TaskOutcome *m)
{
    flame_task_outcome o = { m->task_id, (flame_task_state)m->state, { NULL, 0 },
                             m->_message_case ? m->message : NULL, m->completion_time };
    if (m->_output_case) {
        o.output.data = m->output.data ? m->output.data : (const uint8_t *)"";
        o.output.len = m->output.len;
    }
    return o;
}

/* ---- sessions ----------------------------------------------------------- */

flame_session_info *fl_session_info_from(const Flame__V1__Session *m)
{
    flame_session_info *s = fl_calloc(1, sizeof *s);
    s->id = fl_strdup(m->metadata ? m->metadata->id : "");
    flame_session_spec *spec = fl_calloc(1, sizeof *spec);
    s->spec = spec;
    spec->version = FLAME_SESSION_SPEC_VERSION;
    if (m->spec) {
        const Flame__V1__SessionSpec *sp = m->spec;
        spec->application = fl_strdup(sp->application);
        spec->common_data = copy_bytes(sp->_common_data_case, sp->common_data);
        spec->min_instances = sp->min_instances;
        spec->has_max_instances = sp->_max_instances_case != 0;
        spec->max_instances = sp->max_instances;
        spec->priority = sp->priority;
        spec->batch_size = sp->batch_size;
        if (sp->_resreq_case && sp->resreq) {
            spec->has_resreq = 1;
            spec->resreq = resreq_from(sp->resreq);
        }
    } else {
        spec->application = fl_strdup("");
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
    free((char *)s->spec->application);
    free((void *)s->spec->common_data.data);
    free((void *)s->spec);
    free_events(s->events, s->events_len);
    free(s);
}

void flame_session_info_list_free(flame_session_info **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        flame_session_info_free(v[i]);
    free(v);
}

/* ---- applications ------------------------------------------------------- */

flame_application *fl_application_from(const Flame__V1__Application *m)
{
    flame_application *a = fl_calloc(1, sizeof *a);
    a->name = fl_strdup(m->metadata ? m->metadata->name : "");
    if (m->status) {
        a->state = (flame_application_state)m->status->state;
        a->creation_time = m->status->creation_time;
    }
    flame_application_spec *s = fl_calloc(1, sizeof *s);
    a->spec = s;
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
    s->sandbox = sp->sandbox && sp->sandbox[0] ? fl_strdup(sp->sandbox) : NULL;
    s->network = sp->network && sp->network[0] ? fl_strdup(sp->network) : NULL;
    s->sandbox_reuse = sp->sandbox_reuse;
    s->stdio_mode = sp->stdio_mode && sp->stdio_mode[0] ? fl_strdup(sp->stdio_mode) : NULL;
    s->rest_url = sp->rest_url && sp->rest_url[0] ? fl_strdup(sp->rest_url) : NULL;
    s->rest_health = sp->rest_health && sp->rest_health[0] ? fl_strdup(sp->rest_health) : NULL;
    return a;
}

static void application_spec_free(flame_application_spec *s)
{
    if (!s)
        return;
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
    free((char *)s->sandbox);
    free((char *)s->network);
    free((char *)s->stdio_mode);
    free((char *)s->rest_url);
    free((char *)s->rest_health);
    free(s);
}

void flame_application_free(flame_application *a)
{
    if (!a)
        return;
    free((char *)a->name);
    application_spec_free((flame_application_spec *)a->spec);
    free(a);
}

void flame_application_list_free(flame_application **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        flame_application_free(v[i]);
    free(v);
}

/* ---- executors and nodes ------------------------------------------------ */

flame_executor_info *fl_executor_info_from(const Flame__V1__Executor *e)
{
    flame_executor_info *x = fl_calloc(1, sizeof *x);
    x->id = fl_strdup(e->metadata ? e->metadata->id : "");
    x->node = fl_strdup(e->spec ? e->spec->node : "");
    if (e->spec && e->spec->resreq)
        x->resreq = resreq_from(e->spec->resreq);
    x->shim = e->spec ? (flame_shim)e->spec->shim : FLAME_SHIM_HOST;
    if (e->status) {
        x->state = (flame_executor_state)e->status->state;
        x->session_id = e->status->_session_id_case ? fl_strdup(e->status->session_id) : NULL;
    }
    return x;
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

flame_node_info *fl_node_info_from(const Flame__V1__Node *n)
{
    flame_node_info *x = fl_calloc(1, sizeof *x);
    x->name = fl_strdup(n->metadata ? n->metadata->name : "");
    x->hostname = fl_strdup(n->spec ? n->spec->hostname : "");
    if (n->status) {
        x->state = (flame_node_state)n->status->state;
        x->capacity = resreq_from(n->status->capacity);
        x->allocatable = resreq_from(n->status->allocatable);
        x->arch = fl_strdup(n->status->info ? n->status->info->arch : "");
        x->os = fl_strdup(n->status->info ? n->status->info->os : "");
        x->last_heartbeat_time = n->status->last_heartbeat_time;
    } else {
        x->arch = fl_strdup("");
        x->os = fl_strdup("");
    }
    return x;
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
