/* The client core behind client.h, split by concern: this file holds the
 * connection and the call helpers the others use; app.c, session.c, task.c,
 * watch.c, stream.c, map.c and cluster.c the calls of client.h; convert.c
 * the protobuf -> public struct conversions; resume.c the stream that
 * survives a session-manager restart. A flame_client is immutable after
 * connect, so every call may run on any thread (rpc/ owns the locking). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "config/endpoint.h"
#include "internal.h"
#include "util/util.h"

flame_status fl_client_bad_arg(const char *fn, const char *what)
{
    return fl_error(FLAME_ERR_INVALID_ARGUMENT, "%s: %s", fn, what);
}

void flame_client_options_init(flame_client_options *opts)
{
    if (opts)
        *opts = (flame_client_options)FLAME_CLIENT_OPTIONS_INIT;
}

/* ---- connection --------------------------------------------------------- */

flame_status flame_client_connect(flame_client **out, const flame_client_options *opts)
{
    if (!out)
        return fl_client_bad_arg("flame_client_connect", "out is NULL");
    flame_client_options o = FLAME_CLIENT_OPTIONS_INIT;
    if (opts)
        o = *opts;
    fl_endpoint ep;
    flame_status st = fl_endpoint_resolve(&ep, o.endpoint);
    if (st)
        return st;
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.max_message = o.max_message_size;
    if (ep.tls) { /* the scheme decides, as in flamepy */
        co.tls.enabled = true;
        co.tls.ca_file = o.tls_ca_file ? o.tls_ca_file : ep.ca_file;
        co.tls.cert_file = o.tls_cert_file ? o.tls_cert_file : ep.cert_file;
        co.tls.key_file = o.tls_key_file ? o.tls_key_file : ep.key_file;
    }
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

/* Calls that change nothing when repeated (OpenSession returns the
 * session its lost first try created; CloseSession is idempotent): a
 * session-manager restart (UNAVAILABLE once the client has reached it;
 * before that it is a wrong endpoint, said at once) is ridden out by
 * trying again until the call's deadline. */
static bool repeatable(const char *method)
{
    static const char *const names[] = {
        "GetSession", "OpenSession", "CloseSession", "GetTask", "GetApplication", "GetNode",
        "ListApplication", "ListSession", "ListExecutor", "ListNodes",
    };
    const char *m = strrchr(method, '/');
    m = m ? m + 1 : method;
    for (size_t i = 0; i < FL_ARRAY_LEN(names); i++)
        if (strcmp(m, names[i]) == 0)
            return true;
    return false;
}

flame_status fl_client_call(flame_client *c, const char *method, const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
    int64_t end = fl_mono_ns() + (int64_t)c->timeout_ms * 1000000;
    for (int backoff_ms = 50;; backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2) {
        int64_t left_ms = (end - fl_mono_ns()) / 1000000;
        flame_status st = rpc_unary(c->ch, method, req, desc, resp, left_ms > 1 ? (int)left_ms : 1);
        if (st != FLAME_ERR_UNAVAILABLE) /* an answer, error or not */
            atomic_store(&c->reached, true);
        if (st != FLAME_ERR_UNAVAILABLE || !atomic_load(&c->reached) || !repeatable(method) ||
            left_ms <= backoff_ms)
            return st;
        struct timespec ts = { backoff_ms / 1000, (long)(backoff_ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
    }
}

flame_status fl_client_call_result(flame_client *c, const char *method,
                                   const ProtobufCMessage *req)
{
    ProtobufCMessage *resp;
    flame_status st = fl_client_call(c, method, req, &flame__v1__result__descriptor, &resp);
    if (st)
        return st;
    Flame__V1__Result *r = (Flame__V1__Result *)resp;
    if (r->return_code != 0)
        st = fl_error(FLAME_ERR_INTERNAL, "%s: %s", method,
                      r->_message_case ? r->message : "failed");
    protobuf_c_message_free_unpacked(resp, NULL);
    return st;
}
