/* Nothing waits silently for ever: a wait that hears nothing for a while
 * asks the session manager whether the session can run at all, and ends
 * with the session's own event when it cannot (event 1002: its binds keep
 * failing; 1003: no node can fit it). Used by every wait path of the core
 * (resume.c, stream.c), so the CLIs and bindings get it for free. No
 * state: safe from any thread. */
#include <string.h>

#include "internal.h"
#include "util/util.h"

flame_status fl_session_stuck(flame_client *c, const char *session_id)
{
    if (!c || !session_id || !*session_id)
        return FLAME_OK;
    Flame__V1__GetSessionRequest r = FLAME__V1__GET_SESSION_REQUEST__INIT;
    r.session_id = (char *)session_id;
    ProtobufCMessage *resp;
    /* no answer (a restart, a deleted session) is for the wait itself to
     * see: only a clear "cannot run" ends it here */
    int timeout_ms = c->timeout_ms < 10000 ? c->timeout_ms : 10000;
    if (rpc_unary(c->ch, FE("GetSession"), &r.base, &flame__v1__session__descriptor, &resp,
                  timeout_ms))
        return FLAME_OK;
    const Flame__V1__Session *s = (const Flame__V1__Session *)resp;
    const Flame__V1__SessionStatus *st = s->status;
    flame_status rc = FLAME_OK;
    /* a session at work (something runs) or with nothing to wait for is
     * not stuck; otherwise an event saying it gets no executor decides
     * (binds already under way when 1002 came may add 1001s after it) */
    if (st && st->state == FLAME__V1__SESSION_STATE__Open && st->pending > 0 && st->running == 0) {
        const Flame__V1__Event *why = NULL, *bind = NULL;
        for (size_t i = st->n_events; i-- > 0 && !(why && bind);) {
            const Flame__V1__Event *e = st->events[i];
            if (e->code == FLAME_EVENT_BIND_FAILED && !bind)
                bind = e;
            else if (e->code == FLAME_EVENT_RETRY_LIMIT || e->code == FLAME_EVENT_UNSCHEDULABLE)
                why = e;
        }
        const char *msg = why && why->_message_case ? why->message : "";
        if (why && why->code == FLAME_EVENT_RETRY_LIMIT)
            rc = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                          "session %s cannot run: %s (event %d); the last failure: %s",
                          session_id, msg, why->code,
                          bind && bind->_message_case ? bind->message : "unknown");
        else if (why)
            rc = fl_error(FLAME_ERR_FAILED_PRECONDITION, "session %s cannot run: %s (event %d)",
                          session_id, msg, why->code);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

flame_status flame_session_check(flame_session *s)
{
    if (!s)
        return fl_client_bad_arg("flame_session_check", "session is NULL");
    return fl_session_stuck(s->client, s->id);
}
