/* Every answer the session manager gives: replies, stream messages and call
 * ends are queued during a batch and go out in order once the batch is
 * committed, so what a client saw acknowledged is on disk. The only sm file
 * that answers calls through rpc/. Engine thread only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sm.h"

static void defer(sm_t *sm, rpc_call *call, int kind, int code, char *msg, uint8_t *data,
                  size_t len)
{
    if (sm->n_out == sm->cap_out) {
        sm->cap_out = sm->cap_out ? sm->cap_out * 2 : 64;
        sm->out = fl_realloc(sm->out, sm->cap_out * sizeof *sm->out);
    }
    rpc_call_ref(call);
    sm->out[sm->n_out++] = (sm_out){ call, kind, code, msg, data, len };
}

static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    protobuf_c_message_pack(msg, buf);
    return buf;
}

void sm_reply(sm_t *sm, rpc_call *call, uint8_t *data, size_t len)
{
    defer(sm, call, OUT_REPLY, 0, NULL, data, len);
}

void sm_reply_msg(sm_t *sm, rpc_call *call, const ProtobufCMessage *msg)
{
    size_t n;
    uint8_t *buf = pack(msg, &n);
    defer(sm, call, OUT_REPLY, 0, NULL, buf, n);
}

void sm_reply_result(sm_t *sm, rpc_call *call)
{
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    sm_reply_msg(sm, call, &r.base);
}

void sm_reply_error(sm_t *sm, rpc_call *call, flame_status st)
{
    defer(sm, call, OUT_FINISH, rpc_status_to_code(st), fl_strdup(flame_error_last()), NULL, 0);
}

void sm_send(sm_t *sm, rpc_call *call, uint8_t *data, size_t len)
{
    defer(sm, call, OUT_SEND, 0, NULL, data, len);
}

void sm_push(sm_t *sm, rpc_call *call, uint8_t *data, size_t len)
{
    defer(sm, call, OUT_PUSH, 0, NULL, data, len);
}

void sm_push_msg(sm_t *sm, rpc_call *call, const ProtobufCMessage *msg)
{
    size_t n;
    uint8_t *buf = pack(msg, &n);
    defer(sm, call, OUT_PUSH, 0, NULL, buf, n);
}

static char *vformat(const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    return fl_strdup(buf);
}

void sm_finish(sm_t *sm, rpc_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    defer(sm, call, OUT_FINISH, code, vformat(fmt, ap), NULL, 0);
    va_end(ap);
}

void sm_on_drain(sm_t *sm, rpc_call *call, size_t low_water, void (*fn)(rpc_call *, void *),
                 void *arg)
{
    defer(sm, call, OUT_DRAIN, 0, NULL, NULL, low_water);
    sm->out[sm->n_out - 1].fn = fn;
    sm->out[sm->n_out - 1].arg = arg;
}

void sm_close(sm_t *sm, rpc_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    defer(sm, call, OUT_CLOSE, code, vformat(fmt, ap), NULL, 0);
    va_end(ap);
}

void sm_reply_fail(sm_t *sm, const char *why)
{
    for (size_t i = 0; i < sm->n_out; i++) {
        sm_out *o = &sm->out[i];
        if (o->kind != OUT_REPLY && o->kind != OUT_SEND && o->kind != OUT_FINISH)
            continue;
        /* the first failed answer ends the call; rpc drops the rest */
        free(o->data);
        free(o->msg);
        *o = (sm_out){ o->call, OUT_FINISH, RPC_INTERNAL,
                       fl_sprintf("storage commit failed: %s", why), NULL, 0 };
    }
}

void sm_reply_flush(sm_t *sm)
{
    /* a drain callback may queue more answers meanwhile (sm->out grows):
     * each entry is copied out first, and the new ones go out in this pass */
    for (size_t i = 0; i < sm->n_out; i++) {
        sm_out o = sm->out[i];
        if (o.kind == OUT_REPLY)
            rpc_call_reply_packed(o.call, o.data, o.len);
        else if (o.kind == OUT_SEND || o.kind == OUT_PUSH)
            rpc_call_send_packed(o.call, o.data, o.len);
        else if (o.kind == OUT_DRAIN)
            rpc_call_on_drain(o.call, o.len, o.fn, o.arg);
        else
            rpc_call_finish(o.call, o.code, "%s", o.msg ? o.msg : "");
        rpc_call_unref(o.call);
        free(o.data);
        free(o.msg);
    }
    sm->n_out = 0;
}
