/* Model -> flame.v1: the messages the session manager sends and stores,
 * built from the plain structs of libflame/model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* A message packed into a malloc'ed buffer. */
static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, buf);
    return buf;
}

Flame__V1__Event **fl_wire_events(const fl_events *e, Flame__V1__Event **block, bool with_defaults)
{
    *block = NULL;
    if (!e->n)
        return NULL;
    Flame__V1__Event *ev = fl_calloc(e->n, sizeof *ev);
    Flame__V1__Event **evp = fl_calloc(e->n, sizeof *evp);
    for (uint32_t i = 0; i < e->n; i++) {
        fl_event x = fl_events_get(e, i);
        flame__v1__event__init(&ev[i]);
        ev[i].code = x.code;
        ev[i].creation_time = x.time;
        const char *m = x.message;
        if (!m && with_defaults)
            m = fl_event_default_message(x.code);
        if (m) {
            ev[i]._message_case = FLAME__V1__EVENT___MESSAGE_MESSAGE;
            ev[i].message = (char *)m;
        }
        evp[i] = &ev[i];
    }
    *block = ev;
    return evp;
}

uint8_t *fl_wire_pack_events(const fl_events *e, size_t *len)
{
    Flame__V1__TaskStatus ts = FLAME__V1__TASK_STATUS__INIT;
    Flame__V1__Event *ev;
    Flame__V1__Event **evp = fl_wire_events(e, &ev, false);
    ts.n_events = e->n;
    ts.events = evp;
    uint8_t *buf = pack_msg(&ts.base, len);
    free(ev);
    free(evp);
    return buf;
}

static Flame__V1__ResourceRequirement *new_resreq(flame_resreq r)
{
    Flame__V1__ResourceRequirement *rr = fl_malloc(sizeof *rr);
    flame__v1__resource_requirement__init(rr);
    rr->cpu = r.cpu;
    rr->memory = r.memory;
    rr->gpu = r.gpu;
    return rr;
}

static Flame__V1__Metadata *new_metadata(const char *id)
{
    Flame__V1__Metadata *md = fl_malloc(sizeof *md);
    flame__v1__metadata__init(md);
    md->id = (char *)id;
    md->name = (char *)id;
    return md;
}

uint8_t *fl_wire_affinity_pack(const ProtobufCBinaryData *keys, size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += 4 + keys[i].len;
    *len = total;
    if (!total)
        return NULL;
    uint8_t *b = fl_malloc(total), *p = b;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)keys[i].len;
        p[0] = (uint8_t)k;
        p[1] = (uint8_t)(k >> 8);
        p[2] = (uint8_t)(k >> 16);
        p[3] = (uint8_t)(k >> 24);
        if (k)
            memcpy(p + 4, keys[i].data, k);
        p += 4 + k;
    }
    return b;
}

uint8_t *fl_wire_pack_task(const fl_session *s, const fl_task *t, size_t *len)
{
    char id[16];
    snprintf(id, sizeof id, "%u", t->id);
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    md.id = id;
    md.name = id;
    Flame__V1__TaskSpec spec = FLAME__V1__TASK_SPEC__INIT;
    spec.session_id = s->id;
    if (t->has_input) {
        spec._input_case = FLAME__V1__TASK_SPEC___INPUT_INPUT;
        spec.input.data = t->input;
        spec.input.len = t->input_len;
    }
    if (t->has_output) {
        spec._output_case = FLAME__V1__TASK_SPEC___OUTPUT_OUTPUT;
        spec.output.data = t->output;
        spec.output.len = t->output_len;
    }
    ProtobufCBinaryData aff[FL_MAX_AFFINITY];
    size_t off = 0, klen;
    const uint8_t *key;
    while (spec.n_affinity < FL_MAX_AFFINITY &&
           fl_affinity_next(t->affinity, t->affinity_len, &off, &key, &klen)) {
        aff[spec.n_affinity].data = (uint8_t *)key;
        aff[spec.n_affinity++].len = klen;
    }
    spec.affinity = aff;
    Flame__V1__TaskStatus st = FLAME__V1__TASK_STATUS__INIT;
    st.state = (Flame__V1__TaskState)t->state;
    st.creation_time = t->ctime;
    if (t->etime) {
        st._completion_time_case = FLAME__V1__TASK_STATUS___COMPLETION_TIME_COMPLETION_TIME;
        st.completion_time = t->etime;
    }
    Flame__V1__Event *evs;
    st.events = fl_wire_events(&t->events, &evs, true);
    st.n_events = t->events.n;
    Flame__V1__Task m = FLAME__V1__TASK__INIT;
    m.metadata = &md;
    m.spec = &spec;
    m.status = &st;
    uint8_t *buf = pack_msg(&m.base, len);
    free(evs);
    free(st.events);
    return buf;
}

void fl_wire_fill_session(Flame__V1__Session *m, const fl_session *s)
{
    flame__v1__session__init(m);
    Flame__V1__SessionSpec *spec = fl_malloc(sizeof *spec);
    flame__v1__session_spec__init(spec);
    spec->application = s->app;
    if (s->has_common_data) {
        spec->_common_data_case = FLAME__V1__SESSION_SPEC___COMMON_DATA_COMMON_DATA;
        spec->common_data.data = s->common_data;
        spec->common_data.len = s->common_data_len;
    }
    spec->min_instances = s->min_instances;
    if (s->has_max) {
        spec->_max_instances_case = FLAME__V1__SESSION_SPEC___MAX_INSTANCES_MAX_INSTANCES;
        spec->max_instances = s->max_instances;
    }
    spec->batch_size = s->batch_size ? s->batch_size : 1;
    if (s->n_tokens) { /* one block of entries, as the events */
        Flame__V1__SessionSpec__TokensEntry *e = fl_calloc(s->n_tokens, sizeof *e);
        spec->tokens = fl_calloc(s->n_tokens, sizeof *spec->tokens);
        for (uint32_t i = 0; i < s->n_tokens; i++) {
            flame__v1__session_spec__tokens_entry__init(&e[i]);
            e[i].key = s->tokens[2 * i];
            e[i].value = s->tokens[2 * i + 1];
            spec->tokens[i] = &e[i];
        }
        spec->n_tokens = s->n_tokens;
    }
    spec->priority = s->priority;
    spec->_resreq_case = FLAME__V1__SESSION_SPEC___RESREQ_RESREQ;
    spec->resreq = new_resreq(s->resreq);
    Flame__V1__SessionStatus *st = fl_malloc(sizeof *st);
    flame__v1__session_status__init(st);
    st->state = (Flame__V1__SessionState)s->state;
    st->creation_time = s->ctime;
    if (s->etime) {
        st->_completion_time_case = FLAME__V1__SESSION_STATUS___COMPLETION_TIME_COMPLETION_TIME;
        st->completion_time = s->etime;
    }
    st->pending = s->counts[FLAME_TASK_PENDING];
    st->running = s->counts[FLAME_TASK_RUNNING];
    st->succeed = s->counts[FLAME_TASK_SUCCEED];
    st->failed = s->counts[FLAME_TASK_FAILED];
    st->cancelled = s->counts[FLAME_TASK_CANCELLED];
    Flame__V1__Event *evs;
    st->events = fl_wire_events(&s->events, &evs, true);
    st->n_events = s->events.n;
    m->metadata = new_metadata(s->id);
    m->spec = spec;
    m->status = st;
}

void fl_wire_fill_session_done(Flame__V1__Session *m)
{
    if (m->status->events) {
        free(m->status->events[0]); /* the block of Event structs */
        free(m->status->events);
    }
    free(m->status);
    if (m->spec->n_tokens) {
        free(m->spec->tokens[0]);
        free(m->spec->tokens);
    }
    free(m->spec->resreq);
    free(m->spec);
    free(m->metadata);
}

uint8_t *fl_wire_pack_session(const fl_session *s, size_t *len)
{
    Flame__V1__Session m;
    fl_wire_fill_session(&m, s);
    uint8_t *buf = pack_msg(&m.base, len);
    fl_wire_fill_session_done(&m);
    return buf;
}

/* Application{metadata, spec, status} by hand around the stored spec
 * bytes: the same bytes protobuf-c would make, without unpacking them. */
uint8_t *fl_wire_pack_app(const fl_app *a, size_t *len)
{
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    md.id = a->name;
    md.name = a->name;
    Flame__V1__ApplicationStatus st = FLAME__V1__APPLICATION_STATUS__INIT;
    st.state = (Flame__V1__ApplicationState)a->state;
    st.creation_time = a->ctime;
    fl_buf b = { 0 };
    size_t n;
    uint8_t *x = pack_msg(&md.base, &n);
    fl_wire_put_bytes(&b, 1, x, n);
    free(x);
    fl_wire_put_bytes(&b, 2, a->blob, a->blob_len);
    x = pack_msg(&st.base, &n);
    fl_wire_put_bytes(&b, 3, x, n);
    free(x);
    *len = b.len;
    return (uint8_t *)fl_buf_detach(&b);
}

/* The outcome of a finished task, as WatchSession and RunSession report it. */
uint8_t *fl_wire_pack_outcome(const fl_task *t, size_t *len)
{
    Flame__V1__TaskOutcome o = FLAME__V1__TASK_OUTCOME__INIT;
    o.task_id = t->id;
    o.state = (Flame__V1__TaskState)t->state;
    o.completion_time = t->etime;
    if (t->has_output) {
        o._output_case = FLAME__V1__TASK_OUTCOME___OUTPUT_OUTPUT;
        o.output.data = t->output;
        o.output.len = t->output_len;
    }
    if (t->state != FLAME_TASK_SUCCEED) {
        o.return_code = 1;
        const char *m = t->events.n ? fl_events_get(&t->events, t->events.n - 1u).message : NULL;
        if (!m)
            m = fl_event_default_message(t->state);
        if (m) {
            o._message_case = FLAME__V1__TASK_OUTCOME___MESSAGE_MESSAGE;
            o.message = (char *)m;
        }
    }
    uint8_t *buf = pack_msg(&o.base, len);
    return buf;
}

void fl_wire_fill_executor(Flame__V1__Executor *m, const fl_executor *e, const char *session_id)
{
    flame__v1__executor__init(m);
    Flame__V1__ExecutorSpec *sp = fl_malloc(sizeof *sp);
    flame__v1__executor_spec__init(sp);
    sp->node = e->node;
    sp->resreq = new_resreq(e->resreq);
    sp->shim = (Flame__V1__Shim)e->shim;
    sp->application = e->app ? e->app : (char *)"";
    Flame__V1__ExecutorStatus *st = fl_malloc(sizeof *st);
    flame__v1__executor_status__init(st);
    st->state = (Flame__V1__ExecutorState)e->state;
    if (!session_id && e->state == FLAME_EXECUTOR_VOID)
        session_id = e->intended;
    if (session_id) {
        st->_session_id_case = FLAME__V1__EXECUTOR_STATUS___SESSION_ID_SESSION_ID;
        st->session_id = (char *)session_id;
    }
    m->metadata = new_metadata(e->id);
    m->spec = sp;
    m->status = st;
}

void fl_wire_fill_executor_done(Flame__V1__Executor *m)
{
    free(m->metadata);
    free(m->spec->resreq);
    free(m->spec);
    free(m->status);
}

uint8_t *fl_wire_pack_executor(const fl_executor *e, const char *session_id, size_t *len)
{
    Flame__V1__Executor m;
    fl_wire_fill_executor(&m, e, session_id);
    uint8_t *buf = pack_msg(&m.base, len);
    fl_wire_fill_executor_done(&m);
    return buf;
}

void fl_wire_fill_node(Flame__V1__Node *m, const fl_node *n)
{
    flame__v1__node__init(m);
    Flame__V1__NodeSpec *sp = fl_malloc(sizeof *sp);
    flame__v1__node_spec__init(sp);
    sp->hostname = n->hostname ? n->hostname : (char *)"";
    Flame__V1__NodeInfo *info = fl_malloc(sizeof *info);
    flame__v1__node_info__init(info);
    info->arch = n->arch ? n->arch : (char *)"";
    info->os = n->os ? n->os : (char *)"";
    /* one block of address messages, and the pointers to them */
    size_t na = n->n_addresses;
    Flame__V1__NodeAddress *addr = na ? fl_calloc(na, sizeof *addr) : NULL;
    Flame__V1__NodeAddress **addrp = na ? fl_calloc(na, sizeof *addrp) : NULL;
    for (size_t i = 0; i < na; i++) {
        flame__v1__node_address__init(&addr[i]);
        addr[i].type = n->addresses[i].type ? n->addresses[i].type : (char *)"";
        addr[i].address = n->addresses[i].address ? n->addresses[i].address : (char *)"";
        addrp[i] = &addr[i];
    }
    Flame__V1__NodeStatus *st = fl_malloc(sizeof *st);
    flame__v1__node_status__init(st);
    st->state = (Flame__V1__NodeState)n->state;
    st->capacity = new_resreq(n->capacity);
    st->allocatable = new_resreq(n->allocatable);
    st->info = info;
    st->n_addresses = na;
    st->addresses = addrp;
    st->last_heartbeat_time = n->last_heartbeat;
    m->metadata = new_metadata(n->name);
    m->spec = sp;
    m->status = st;
}

void fl_wire_fill_node_done(Flame__V1__Node *m)
{
    Flame__V1__NodeStatus *st = m->status;
    if (st->n_addresses)
        free(st->addresses[0]); /* the block of messages */
    free(st->addresses);
    free(st->capacity);
    free(st->allocatable);
    free(st->info);
    free(st);
    free(m->spec);
    free(m->metadata);
}

uint8_t *fl_wire_pack_node(const fl_node *n, size_t *len)
{
    Flame__V1__Node m;
    fl_wire_fill_node(&m, n);
    uint8_t *buf = pack_msg(&m.base, len);
    fl_wire_fill_node_done(&m);
    return buf;
}

uint8_t *fl_wire_pack_app_public(const fl_app *a, size_t *len)
{
    fl_app view = *a;
    uint8_t *blob = NULL;
    Flame__V1__ApplicationSpec *sp =
        a->blob_len ? flame__v1__application_spec__unpack(NULL, a->blob_len, a->blob) : NULL;
    if (a->blob_len && !sp) {
        view.blob_len = 0; /* what cannot be filtered is not shown */
    } else if (sp && sp->n_environments) {
        size_t n_env = sp->n_environments;
        sp->n_environments = 0;
        view.blob_len = flame__v1__application_spec__get_packed_size(sp);
        view.blob = blob = fl_malloc(view.blob_len ? view.blob_len : 1);
        flame__v1__application_spec__pack(sp, blob);
        sp->n_environments = n_env; /* freed with the rest */
    }
    if (sp)
        flame__v1__application_spec__free_unpacked(sp, NULL);
    uint8_t *out = fl_wire_pack_app(&view, len);
    free(blob);
    return out;
}
