/* Sessions: create, open, attach, close, get, list, delete (Frontend
 * calls), and the session handle. A handle is immutable after creation:
 * safe from any thread. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

void flame_session_spec_init(flame_session_spec *spec)
{
    if (spec)
        *spec = (flame_session_spec)FLAME_SESSION_SPEC_INIT;
}

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
    flame_status st = fl_client_call(c, method, req, &flame__v1__session__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__Session *m = (Flame__V1__Session *)resp;
    if (id_out)
        *id_out = fl_strdup(m->metadata ? m->metadata->id : "");
    if (info_out)
        *info_out = fl_session_info_from(m);
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}

flame_status flame_session_create(flame_session **out, flame_client *c, const char *session_id,
                                  const flame_session_spec *spec)
{
    if (!out || !c || !spec || !spec->application)
        return fl_client_bad_arg("flame_session_create",
                                 "out, client and spec->application are required");
    session_spec_msg x;
    session_spec_fill(&x, spec);
    Flame__V1__CreateSessionRequest r = FLAME__V1__CREATE_SESSION_REQUEST__INIT;
    char made[256];
    if (!session_id || !*session_id) { /* never an empty id: Flame would store it */
        fl_client_session_id(made, sizeof made, spec->application);
        session_id = made;
    }
    r.session_id = (char *)session_id;
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
        return fl_client_bad_arg("flame_session_open", "out, client and a session id are required");
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
        return fl_client_bad_arg("flame_session_attach",
                                 "out, client and a session id are required");
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
        return fl_client_bad_arg("flame_session_close", "session is NULL");
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
        return fl_client_bad_arg("flame_session_get", "out, client and id are required");
    Flame__V1__GetSessionRequest r = FLAME__V1__GET_SESSION_REQUEST__INIT;
    r.session_id = (char *)id;
    return session_call(out, NULL, c, FE("GetSession"), &r.base);
}

flame_status flame_session_delete(flame_client *c, const char *id)
{
    if (!c || !id)
        return fl_client_bad_arg("flame_session_delete", "client and id are required");
    Flame__V1__DeleteSessionRequest r = FLAME__V1__DELETE_SESSION_REQUEST__INIT;
    r.session_id = (char *)id;
    return session_call(NULL, NULL, c, FE("DeleteSession"), &r.base);
}

flame_status flame_session_list(flame_session_info ***out, size_t *count, flame_client *c)
{
    if (!out || !count || !c)
        return fl_client_bad_arg("flame_session_list", "out, count and client are required");
    Flame__V1__ListSessionRequest r = FLAME__V1__LIST_SESSION_REQUEST__INIT;
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(c, FE("ListSession"), &r.base,
                                     &flame__v1__session_list__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__SessionList *l = (Flame__V1__SessionList *)resp;
    flame_session_info **v = fl_calloc(l->n_sessions + 1, sizeof *v);
    for (size_t i = 0; i < l->n_sessions; i++)
        v[i] = fl_session_info_from(l->sessions[i]);
    *out = v;
    *count = l->n_sessions;
    protobuf_c_message_free_unpacked(resp, NULL);
    return FLAME_OK;
}
