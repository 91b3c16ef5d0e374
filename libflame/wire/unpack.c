/* flame.v1 -> model: the plain structs of libflame/model from the messages
 * clients and executor managers send, and from what the store kept. */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static char *opt_str(int present, const char *s)
{
    return present ? fl_strdup(s ? s : "") : NULL;
}

static char **copy_strv(char *const *v, size_t n)
{
    if (!n)
        return NULL;
    char **c = fl_calloc(n, sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i] = fl_strdup(v[i] ? v[i] : "");
    return c;
}

static fl_app_spec *app_spec(const Flame__V1__ApplicationSpec *m)
{
    fl_app_spec *s = fl_calloc(1, sizeof *s);
    s->shim = (int)m->shim;
    s->description = opt_str(m->_description_case, m->description);
    s->labels = copy_strv(m->labels, m->n_labels);
    s->n_labels = m->n_labels;
    s->image = opt_str(m->_image_case, m->image);
    s->command = opt_str(m->_command_case, m->command);
    s->arguments = copy_strv(m->arguments, m->n_arguments);
    s->n_arguments = m->n_arguments;
    if (m->n_environments) {
        s->environments = fl_calloc(m->n_environments, sizeof *s->environments);
        s->n_environments = m->n_environments;
        for (size_t i = 0; i < m->n_environments; i++) {
            const Flame__V1__Environment *e = m->environments[i];
            s->environments[i].name = fl_strdup(e->name ? e->name : "");
            s->environments[i].value = fl_strdup(e->value ? e->value : "");
        }
    }
    s->working_directory = opt_str(m->_working_directory_case, m->working_directory);
    s->has_max_instances = m->_max_instances_case != 0;
    s->max_instances = m->max_instances;
    s->has_delay_release = m->_delay_release_case != 0;
    s->delay_release = m->delay_release;
    if (m->_schema_case && m->schema) {
        const Flame__V1__ApplicationSchema *sc = m->schema;
        s->schema_input = opt_str(sc->_input_case, sc->input);
        s->schema_output = opt_str(sc->_output_case, sc->output);
        s->schema_common_data = opt_str(sc->_common_data_case, sc->common_data);
    }
    s->url = opt_str(m->_url_case, m->url);
    s->installer = opt_str(m->_installer_case, m->installer);
    s->sandbox = opt_str(m->sandbox && m->sandbox[0], m->sandbox);
    s->network = opt_str(m->network && m->network[0], m->network);
    s->owner = opt_str(m->owner && m->owner[0], m->owner);
    s->sandbox_reuse = m->sandbox_reuse;
    s->stdio_mode = opt_str(m->stdio_mode && m->stdio_mode[0], m->stdio_mode);
    return s;
}

fl_app *fl_wire_app_new(const char *name, const Flame__V1__ApplicationSpec *m, int64_t ctime)
{
    if (!m)
        return NULL;
    size_t len = flame__v1__application_spec__get_packed_size(m);
    uint8_t *blob = fl_malloc(len ? len : 1);
    flame__v1__application_spec__pack(m, blob);
    fl_app *a = fl_app_new(name, app_spec(m), blob, len, ctime);
    free(blob);
    return a;
}

fl_app *fl_wire_app_unpack(const char *name, const uint8_t *blob, size_t len, int64_t ctime)
{
    Flame__V1__ApplicationSpec *m = flame__v1__application_spec__unpack(NULL, len, blob);
    if (!m)
        return NULL;
    fl_app *a = fl_app_new(name, app_spec(m), blob, len, ctime);
    flame__v1__application_spec__free_unpacked(m, NULL);
    return a;
}

void fl_wire_session_spec(fl_session_spec *out, const Flame__V1__SessionSpec *m)
{
    memset(out, 0, sizeof *out);
    out->application = m->application;
    out->has_common_data = m->_common_data_case != 0;
    out->common_data = m->common_data.data;
    out->common_data_len = m->common_data.len;
    out->min_instances = m->min_instances;
    out->has_max_instances = m->_max_instances_case != 0;
    out->max_instances = m->max_instances;
    out->priority = m->priority;
    out->batch_size = m->batch_size;
    out->n_tokens = m->n_tokens;
    for (size_t i = 0; i < m->n_tokens && i < FL_MAX_TOKENS; i++) {
        out->tokens[2 * i] = m->tokens[i]->key;
        out->tokens[2 * i + 1] = m->tokens[i]->value;
    }
    if (m->_resreq_case && m->resreq) {
        out->has_resreq = true;
        out->resreq = (flame_resreq){ m->resreq->cpu, m->resreq->memory, m->resreq->gpu };
    }
}

bool fl_wire_unpack_events(fl_events *e, const uint8_t *data, size_t len)
{
    Flame__V1__TaskStatus *ts = flame__v1__task_status__unpack(NULL, len, data);
    if (!ts)
        return false;
    for (size_t i = 0; i < ts->n_events; i++) {
        Flame__V1__Event *ev = ts->events[i];
        fl_events_add(e, ev->code, ev->_message_case ? ev->message : NULL, ev->creation_time);
    }
    flame__v1__task_status__free_unpacked(ts, NULL);
    return true;
}

static flame_resreq resreq(const Flame__V1__ResourceRequirement *r)
{
    return r ? (flame_resreq){ r->cpu, r->memory, r->gpu } : (flame_resreq){ 0, 0, 0 };
}

fl_node *fl_wire_node(const Flame__V1__Node *m, const char *name)
{
    fl_node *n = fl_node_new(name);
    n->hostname = fl_strdup(m->spec && m->spec->hostname ? m->spec->hostname : "");
    const Flame__V1__NodeStatus *st = m->status;
    if (!st)
        return n;
    n->capacity = resreq(st->capacity);
    n->allocatable = resreq(st->allocatable);
    if (st->info) {
        n->arch = fl_strdup(st->info->arch);
        n->os = fl_strdup(st->info->os);
    }
    if (st->n_addresses) {
        n->addresses = fl_calloc(st->n_addresses, sizeof *n->addresses);
        n->n_addresses = st->n_addresses;
        for (size_t i = 0; i < st->n_addresses; i++) {
            n->addresses[i].type = fl_strdup(st->addresses[i]->type);
            n->addresses[i].address = fl_strdup(st->addresses[i]->address);
        }
    }
    return n;
}

/* One varint at *p (< end); false when truncated or too long. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

bool fl_wire_reply_wrapped(const uint8_t *data, size_t len)
{
    const uint8_t *p = data, *end = data + len;
    uint64_t key, n;
    while (p < end && get_varint(&p, end, &key)) {
        unsigned type = (unsigned)(key & 7);
        if (key >> 3 == 1)
            return type == 2;
        switch (type) {
        case 0: if (!get_varint(&p, end, &n)) return false; break;
        case 1: if ((size_t)(end - p) < 8) return false; p += 8; break;
        case 5: if ((size_t)(end - p) < 4) return false; p += 4; break;
        case 2:
            if (!get_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return false;
            p += n;
            break;
        default: return false;
        }
    }
    return false;
}
