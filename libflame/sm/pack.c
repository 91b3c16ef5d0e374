/* Building flame.v1 messages from the model and the executors' books:
 * tasks, outcomes, sessions, applications, executors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

uint8_t *sm_pack_task(const fl_session *s, const fl_task *t, size_t *len)
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
    Flame__V1__TaskStatus st = FLAME__V1__TASK_STATUS__INIT;
    st.state = (Flame__V1__TaskState)t->state;
    st.creation_time = t->ctime;
    if (t->etime) {
        st._completion_time_case = FLAME__V1__TASK_STATUS___COMPLETION_TIME_COMPLETION_TIME;
        st.completion_time = t->etime;
    }
    Flame__V1__Event *evs;
    st.events = fl_events_to_pb(&t->events, &evs, true);
    st.n_events = t->events.n;
    Flame__V1__Task m = FLAME__V1__TASK__INIT;
    m.metadata = &md;
    m.spec = &spec;
    m.status = &st;
    *len = flame__v1__task__get_packed_size(&m);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    flame__v1__task__pack(&m, buf);
    free(evs);
    free(st.events);
    return buf;
}

void sm_fill_session(Flame__V1__Session *m, const fl_session *s)
{
    flame__v1__session__init(m);
    Flame__V1__Metadata *md = fl_malloc(sizeof *md);
    flame__v1__metadata__init(md);
    md->id = s->id;
    md->name = s->id;
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
    spec->priority = s->priority;
    Flame__V1__ResourceRequirement *rr = fl_malloc(sizeof *rr);
    flame__v1__resource_requirement__init(rr);
    rr->cpu = s->resreq.cpu;
    rr->memory = s->resreq.memory;
    rr->gpu = s->resreq.gpu;
    spec->_resreq_case = FLAME__V1__SESSION_SPEC___RESREQ_RESREQ;
    spec->resreq = rr;
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
    st->events = fl_events_to_pb(&s->events, &evs, true);
    st->n_events = s->events.n;
    m->metadata = md;
    m->spec = spec;
    m->status = st;
}

void sm_fill_session_done(Flame__V1__Session *m)
{
    if (m->status->events) {
        free(m->status->events[0]); /* the block of Event structs */
        free(m->status->events);
    }
    free(m->status);
    free(m->spec->resreq);
    free(m->spec);
    free(m->metadata);
}

uint8_t *sm_pack_session(const fl_session *s, size_t *len)
{
    Flame__V1__Session m;
    sm_fill_session(&m, s);
    *len = flame__v1__session__get_packed_size(&m);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    flame__v1__session__pack(&m, buf);
    sm_fill_session_done(&m);
    return buf;
}

void sm_fill_app(Flame__V1__Application *m, const fl_app *a)
{
    flame__v1__application__init(m);
    Flame__V1__Metadata *md = fl_malloc(sizeof *md);
    flame__v1__metadata__init(md);
    md->id = a->name;
    md->name = a->name;
    Flame__V1__ApplicationStatus *st = fl_malloc(sizeof *st);
    flame__v1__application_status__init(st);
    st->state = (Flame__V1__ApplicationState)a->state;
    st->creation_time = a->ctime;
    m->metadata = md;
    m->spec = a->spec;
    m->status = st;
}

void sm_fill_app_done(Flame__V1__Application *m)
{
    free(m->metadata);
    free(m->status);
}

uint8_t *sm_pack_app(const fl_app *a, size_t *len)
{
    Flame__V1__Application m;
    sm_fill_app(&m, a);
    *len = flame__v1__application__get_packed_size(&m);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    flame__v1__application__pack(&m, buf);
    sm_fill_app_done(&m);
    return buf;
}

uint8_t *sm_pack_outcome(const fl_task *t, size_t *len)
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
    *len = flame__v1__task_outcome__get_packed_size(&o);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    flame__v1__task_outcome__pack(&o, buf);
    return buf;
}

void sm_fill_executor(Flame__V1__Executor *m, const sm_exec *e)
{
    flame__v1__executor__init(m);
    Flame__V1__Metadata *md = fl_malloc(sizeof *md);
    flame__v1__metadata__init(md);
    md->id = e->id;
    md->name = e->id;
    Flame__V1__ExecutorSpec *sp = fl_malloc(sizeof *sp);
    flame__v1__executor_spec__init(sp);
    sp->node = e->node;
    Flame__V1__ResourceRequirement *rr = fl_malloc(sizeof *rr);
    flame__v1__resource_requirement__init(rr);
    rr->cpu = e->resreq.cpu;
    rr->memory = e->resreq.memory;
    rr->gpu = e->resreq.gpu;
    sp->resreq = rr;
    sp->shim = (Flame__V1__Shim)e->shim;
    Flame__V1__ExecutorStatus *st = fl_malloc(sizeof *st);
    flame__v1__executor_status__init(st);
    st->state = (Flame__V1__ExecutorState)e->state;
    const char *sid = e->sess ? e->sess->s->id : e->state == FLAME_EXECUTOR_VOID ? e->intended : NULL;
    if (sid) {
        st->_session_id_case = FLAME__V1__EXECUTOR_STATUS___SESSION_ID_SESSION_ID;
        st->session_id = (char *)sid;
    }
    m->metadata = md;
    m->spec = sp;
    m->status = st;
}

void sm_fill_executor_done(Flame__V1__Executor *m)
{
    free(m->metadata);
    free(m->spec->resreq);
    free(m->spec);
    free(m->status);
}

uint8_t *sm_pack_executor(const sm_exec *e, size_t *len)
{
    Flame__V1__Executor m;
    sm_fill_executor(&m, e);
    *len = flame__v1__executor__get_packed_size(&m);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    flame__v1__executor__pack(&m, buf);
    sm_fill_executor_done(&m);
    return buf;
}
