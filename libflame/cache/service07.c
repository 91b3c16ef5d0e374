/* Flame 0.7's object cache protocol, flame.v1.ObjectCacheService
 * (proto/cache07.proto): Put and Patch as client streams (one header, then
 * chunks), Get as a stream of a header then chunks, Delete, GetMetadata,
 * List. It serves the same store as the Flight service (server.c), so each
 * protocol reads what the other wrote:
 * - an object is opaque bytes both ways: a 0.7 Put of bytes B is a Flight
 *   opaque object whose data is B, a 0.7 Patch is a Flight patch, and the
 *   data parts of a 0.7 Get are the Flight object's base and its patches;
 * - a 0.7 version is the number of data parts (1 + patches); the store's
 *   Flight versions (a PUT is current + 1) are not shown here;
 * - data_type: what a 0.7 Put said ("raw" for Flight objects, as flame-rs
 *   writes), kept in the store; a Patch must bring the object's type;
 * - a native Arrow table put through Flight is one part: the table as an
 *   Arrow IPC stream (schema with flame.cache.version, the batches as
 *   stored, end-of-stream), data_type "arrow.stream"; it cannot be patched.
 *
 * Threads: every handler runs on the cache server's thread (server.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache07.pb-c.h"
#include "cache/server.h"
#include "util/util.h"

/* Flame 0.7 clients send chunks of at most 1 MiB (flame-rs's
 * UPLOAD_CHUNK_SIZE); replies use the same size. */
#define CHUNK_MAX (1u << 20)
#define KEY_MAX 1024
#define DATA_TYPE_MAX 256
#define RAW_TYPE "raw"
#define ARROW_STREAM_TYPE "arrow.stream"

typedef Flame__V1__CacheWriteRequest WriteRequest;
typedef Flame__V1__CacheObjectMetadata Metadata;

static const char *type_of(const cache_obj *o)
{
    return o->native ? ARROW_STREAM_TYPE : o->data_type ? o->data_type : RAW_TYPE;
}

static uint64_t parts_of(const cache_obj *o)
{
    return 1 + (o->native ? 0 : o->n_deltas);
}

/* Sends the object's metadata (unary reply or one stream message). */
static bool send_metadata(rpc_call *call, const flame_cache_server *srv, const cache_obj *o,
                          bool unary)
{
    Metadata m = FLAME__V1__CACHE_OBJECT_METADATA__INIT;
    m.endpoint = srv->uri;
    m.key = o->key;
    m.version = parts_of(o);
    /* the bytes the store keeps: the parts' data for opaque objects, the
     * table's messages for a native one (a Get adds the stream framing) */
    m.size = o->size;
    m.creation_time = o->created_ms;
    m.data_type = (char *)type_of(o);
    if (unary) {
        rpc_call_reply(call, &m.base);
        return true;
    }
    return rpc_call_send(call, &m.base);
}

static void finish_store_error(rpc_call *call, const char *key)
{
    flame_status st = flame_error_last_code();
    if (st == FLAME_ERR_NOT_FOUND)
        rpc_call_finish(call, RPC_NOT_FOUND, "object %s not found", key);
    else
        rpc_call_finish(call, rpc_status_to_code(st), "%s", flame_error_last());
}

/* ---- Put / Patch ------------------------------------------------------------ */

typedef struct write_state {
    char *key;
    char *data_type;
    fb_builder data;
} write_state;

static void write_free(write_state *ws)
{
    if (!ws)
        return;
    free(ws->key);
    free(ws->data_type);
    fbb_free(&ws->data);
    free(ws);
}

static void write_cancelled(rpc_call *call, void *arg)
{
    write_free(arg);
    rpc_call_set_user(call, NULL);
}

static void write_end(rpc_call *call, write_state *ws)
{
    rpc_call_on_cancel(call, NULL, NULL);
    rpc_call_set_user(call, NULL);
    write_free(ws);
}

static void write_fail(rpc_call *call, write_state *ws, int code, const char *why)
{
    char copy[640]; /* why may point into ws */
    snprintf(copy, sizeof copy, "%s", why);
    write_end(call, ws);
    rpc_call_finish(call, code, "%s", copy);
}

/* The header: the key (a PUT may name `<app>/<session>`: a new object of a
 * UUIDv4 id) and the data type. */
static void write_header(rpc_call *call, const Flame__V1__CacheWriteHeader *h, bool patch)
{
    const char *name = patch ? "Patch" : "Put";
    const char *key = h->key ? h->key : "";
    const char *type = h->data_type ? h->data_type : "";
    if (strlen(key) > KEY_MAX) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "%s: key longer than %d bytes", name,
                        KEY_MAX);
        return;
    }
    if (strlen(type) > DATA_TYPE_MAX) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "%s: data_type longer than %d bytes", name,
                        DATA_TYPE_MAX);
        return;
    }
    const char *why;
    int kind = cache_key_kind(key, &why);
    if (kind != CACHE_KEY_FULL && !(kind == CACHE_KEY_PREFIX && !patch)) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "invalid key %s: %s", key,
                        why ? why : patch ? "Patch needs <app>/<session>/<object>"
                                          : "expected <app>/<session>[/<object>]");
        return;
    }
    write_state *ws = fl_calloc(1, sizeof *ws);
    if (kind == CACHE_KEY_PREFIX) {
        char id[37];
        cache_uuid4(id);
        ws->key = fl_sprintf("%s/%s", key, id);
    } else {
        ws->key = fl_strdup(key);
    }
    ws->data_type = fl_strdup(type);
    rpc_call_set_user(call, ws);
    rpc_call_on_cancel(call, write_cancelled, ws);
}

static void write_done(rpc_call *call, flame_cache_server *srv, write_state *ws, bool patch)
{
    cache_payload p = { 0 };
    p.data = ws->data.b;
    p.len = ws->data.len;
    ws->data = (fb_builder){ 0 };
    uint64_t version;
    flame_status st;
    if (patch) {
        cache_obj *o = cache_store_get(srv->store, ws->key);
        char why[640];
        int code = RPC_OK;
        if (!o && flame_error_last_code() == FLAME_ERR_NOT_FOUND) {
            code = RPC_NOT_FOUND;
            snprintf(why, sizeof why, "object %s not found for patch", ws->key);
        } else if (!o) {
            code = rpc_status_to_code(flame_error_last_code());
            snprintf(why, sizeof why, "%s", flame_error_last());
        } else if (!o->native && strcmp(type_of(o), ws->data_type) != 0) {
            code = RPC_INVALID_ARGUMENT;
            snprintf(why, sizeof why, "object %s has data_type %s, the patch %s", ws->key,
                     type_of(o), ws->data_type);
        }
        if (code != RPC_OK) {
            cache_payload_clear(&p);
            write_fail(call, ws, code, why);
            return;
        }
        st = cache_store_patch(srv->store, ws->key, &p, &version);
    } else {
        p.data_type = strcmp(ws->data_type, RAW_TYPE) == 0 ? NULL : fl_strdup(ws->data_type);
        st = cache_store_put(srv->store, ws->key, &p, &version);
    }
    if (st) {
        write_fail(call, ws, rpc_status_to_code(st), flame_error_last());
        return;
    }
    cache_obj *o = cache_store_get(srv->store, ws->key);
    write_end(call, ws);
    if (o)
        send_metadata(call, srv, o, true);
    else
        rpc_call_finish(call, RPC_INTERNAL, "%s", flame_error_last());
}

static void write_message(rpc_call *call, const ProtobufCMessage *msg, void *ctx, bool patch)
{
    flame_cache_server *srv = ctx;
    write_state *ws = rpc_call_user(call);
    const WriteRequest *r = (const void *)msg;
    const char *name = patch ? "Patch" : "Put";
    if (!r) { /* the client half-closed */
        if (!ws)
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "%s: no header", name);
        else
            write_done(call, srv, ws, patch);
        return;
    }
    switch (r->payload_case) {
    case FLAME__V1__CACHE_WRITE_REQUEST__PAYLOAD_HEADER:
        if (ws)
            write_fail(call, ws, RPC_INVALID_ARGUMENT,
                       patch ? "Patch: a second header" : "Put: a second header");
        else
            write_header(call, r->header, patch);
        return;
    case FLAME__V1__CACHE_WRITE_REQUEST__PAYLOAD_DATA:
        if (!ws) {
            rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                            "%s: data before the header (the first message must be a header)",
                            name);
            return;
        }
        if (r->data.len > CHUNK_MAX) {
            char why[128];
            snprintf(why, sizeof why, "%s: a chunk of %zu bytes; at most %u", name,
                     r->data.len, CHUNK_MAX);
            write_fail(call, ws, RPC_INVALID_ARGUMENT, why);
            return;
        }
        if (ws->data.len + r->data.len > srv->max_object) {
            char why[128];
            snprintf(why, sizeof why, "object larger than the limit of %llu bytes",
                     (unsigned long long)srv->max_object);
            write_fail(call, ws, RPC_RESOURCE_EXHAUSTED, why);
            return;
        }
        fbb_bytes(&ws->data, r->data.data, r->data.len);
        return;
    default:
        if (ws)
            write_fail(call, ws, RPC_INVALID_ARGUMENT, "a message with neither header nor data");
        else
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "%s: a message with neither header "
                            "nor data", name);
        return;
    }
}

static void put(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    write_message(call, msg, ctx, false);
}

static void patch(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    write_message(call, msg, ctx, true);
}

/* ---- Get -------------------------------------------------------------------- */

/* One data part as chunks of at most CHUNK_MAX bytes (an empty part: one
 * empty chunk). */
static bool send_part(rpc_call *call, uint64_t version, const uint8_t *data, size_t len)
{
    size_t off = 0;
    do {
        size_t n = len - off < CHUNK_MAX ? len - off : CHUNK_MAX;
        Flame__V1__CacheGetChunk c = FLAME__V1__CACHE_GET_CHUNK__INIT;
        c.version = version;
        /* data is NULL for an empty part */
        c.data = (ProtobufCBinaryData){ n, n ? (uint8_t *)data + off : NULL };
        Flame__V1__CacheGetResponse r = FLAME__V1__CACHE_GET_RESPONSE__INIT;
        r.payload_case = FLAME__V1__CACHE_GET_RESPONSE__PAYLOAD_CHUNK;
        r.chunk = &c;
        if (!rpc_call_send(call, &r.base))
            return false;
        off += n;
    } while (off < len);
    return true;
}

/* A native table as an Arrow IPC stream. */
static void native_stream(const cache_obj *o, fb_builder *out)
{
    size_t n;
    uint8_t *schema = ipc_schema_with_version(o->base.schema.header, o->base.schema.header_len,
                                              o->version, &n);
    ipc_encapsulate(out, schema, n);
    free(schema);
    for (size_t i = 0; i < o->base.n_msgs; i++) {
        ipc_encapsulate(out, o->base.msgs[i].header, o->base.msgs[i].header_len);
        fbb_bytes(out, o->base.msgs[i].body, o->base.msgs[i].body_len);
        fbb_pad(out, 8);
    }
    static const uint8_t eos[8] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
    fbb_bytes(out, eos, sizeof eos);
}

static void get(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    const Flame__V1__CacheGetRequest *r = (const void *)msg;
    const char *why;
    if (cache_key_kind(r->key, &why) != CACHE_KEY_FULL) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "invalid key %s: %s", r->key,
                        why ? why : "expected <app>/<session>/<object>");
        return;
    }
    cache_obj *o = cache_store_get(srv->store, r->key);
    if (!o) {
        finish_store_error(call, r->key);
        return;
    }
    uint64_t parts = parts_of(o);
    if (r->version > parts) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "invalid version %llu: object %s has version %llu",
                        (unsigned long long)r->version, r->key, (unsigned long long)parts);
        return;
    }
    Flame__V1__CacheGetHeader h = FLAME__V1__CACHE_GET_HEADER__INIT;
    h.version = parts;
    h.data_type = (char *)type_of(o);
    Flame__V1__CacheGetResponse hr = FLAME__V1__CACHE_GET_RESPONSE__INIT;
    hr.payload_case = FLAME__V1__CACHE_GET_RESPONSE__PAYLOAD_HEADER;
    hr.header = &h;
    if (!rpc_call_send(call, &hr.base))
        return;
    bool ok = true;
    if (r->version == 0) {
        if (o->native) {
            fb_builder s = { 0 };
            native_stream(o, &s);
            ok = send_part(call, 1, s.b, s.len);
            fbb_free(&s);
        } else {
            ok = send_part(call, 1, o->base.data, o->base.len);
        }
    }
    for (uint64_t v = r->version > 1 ? r->version : 1; ok && v < parts; v++)
        ok = send_part(call, v + 1, o->deltas[v - 1].data, o->deltas[v - 1].len);
    if (ok)
        rpc_call_finish(call, RPC_OK, "%s", "");
}

/* ---- Delete, GetMetadata, List ------------------------------------------------ */

static void delete(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    const Flame__V1__CacheDeleteRequest *r = (const void *)msg;
    flame_status st = cache_store_delete(srv->store, r->key);
    if (st) {
        rpc_call_finish(call, rpc_status_to_code(st), "%s", flame_error_last());
        return;
    }
    Flame__V1__CacheDeleteResponse resp = FLAME__V1__CACHE_DELETE_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
}

static void get_metadata(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    const Flame__V1__CacheGetMetadataRequest *r = (const void *)msg;
    const char *why;
    if (cache_key_kind(r->key, &why) != CACHE_KEY_FULL) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "invalid key %s: %s", r->key,
                        why ? why : "expected <app>/<session>/<object>");
        return;
    }
    cache_obj *o = cache_store_get(srv->store, r->key);
    if (!o)
        finish_store_error(call, r->key);
    else
        send_metadata(call, srv, o, true);
}

static void list(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    (void)msg;
    cache_obj *o;
    /* one message per object, all queued now, as ListFlights */
    for (size_t i = 0; (o = cache_store_next(srv->store, &i));)
        if (!send_metadata(call, srv, o, false))
            return;
    rpc_call_finish(call, RPC_OK, "%s", "");
}

static const rpc_method methods07[] = {
    { "Put", RPC_KIND_CLIENT_STREAM, put },
    { "Patch", RPC_KIND_CLIENT_STREAM, patch },
    { "Get", RPC_KIND_SERVER_STREAM, get },
    { "Delete", RPC_KIND_UNARY, delete },
    { "GetMetadata", RPC_KIND_UNARY, get_metadata },
    { "List", RPC_KIND_SERVER_STREAM, list },
};

const rpc_service cache07_service = {
    &flame__v1__object_cache_service__descriptor, methods07, FL_ARRAY_LEN(methods07)
};
