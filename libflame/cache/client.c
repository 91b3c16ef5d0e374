/* The object cache's C client (include/flame/cache.h): DoPut, DoGet and
 * DoAction DELETE of Arrow Flight with opaque data, BSON ObjectRefs.
 *
 * Threads: a flame_cache is immutable after connect; rpc/ makes its channel
 * safe to use from several threads at once. */
#include <bson/bson.h>
#include <stdlib.h>
#include <string.h>

#include "Flight.pb-c.h"
#include "cache/endpoint.h"
#include "cache/ipc.h"
#include "flame/cache.h"
#include "rpc/rpc.h"
#include "util/util.h"

struct flame_cache {
    rpc_channel *ch;
    int timeout_ms;
    size_t max_message;
};

#define SVC (&arrow__flight__protocol__flight_service__descriptor)

void flame_cache_options_init(flame_cache_options *opts)
{
    if (opts)
        *opts = (flame_cache_options)FLAME_CACHE_OPTIONS_INIT;
}

void flame_cache_ref_clear(flame_cache_ref *ref)
{
    if (!ref)
        return;
    free(ref->endpoint);
    free(ref->key);
    *ref = (flame_cache_ref){ NULL, NULL, 0 };
}

flame_status flame_cache_ref_encode(const flame_cache_ref *ref, void **data, size_t *len)
{
    if (!ref || !ref->endpoint || !ref->key || !data || !len)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_ref_encode: missing argument");
    bson_t b;
    bson_init(&b);
    BSON_APPEND_UTF8(&b, "endpoint", ref->endpoint);
    BSON_APPEND_UTF8(&b, "key", ref->key);
    BSON_APPEND_INT64(&b, "version", ref->version);
    *len = b.len;
    *data = fl_memdup(bson_get_data(&b), b.len);
    bson_destroy(&b);
    return FLAME_OK;
}

flame_status flame_cache_ref_decode(flame_cache_ref *ref, const void *data, size_t len)
{
    if (!ref || !data)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_ref_decode: missing argument");
    bson_t b;
    bson_iter_t it;
    flame_cache_ref r = { NULL, NULL, -1 };
    if (!bson_init_static(&b, data, len) || !bson_validate(&b, BSON_VALIDATE_NONE, NULL) ||
        !bson_iter_init(&it, &b))
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "not a BSON ObjectRef");
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "endpoint") == 0 && BSON_ITER_HOLDS_UTF8(&it) && !r.endpoint)
            r.endpoint = fl_strdup(bson_iter_utf8(&it, NULL));
        else if (strcmp(k, "key") == 0 && BSON_ITER_HOLDS_UTF8(&it) && !r.key)
            r.key = fl_strdup(bson_iter_utf8(&it, NULL));
        else if (strcmp(k, "version") == 0 && (BSON_ITER_HOLDS_INT64(&it) ||
                                               BSON_ITER_HOLDS_INT32(&it)))
            r.version = bson_iter_as_int64(&it);
    }
    if (!r.endpoint || !r.key || r.version < 0) {
        flame_cache_ref_clear(&r);
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "not a BSON ObjectRef {endpoint, key, "
                        "version}");
    }
    *ref = r;
    return FLAME_OK;
}

flame_status flame_cache_connect(flame_cache **out, const char *endpoint,
                                 const flame_cache_options *opts)
{
    flame_cache_options o = FLAME_CACHE_OPTIONS_INIT;
    if (opts)
        o = *opts;
    if (!out)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_connect: out is NULL");
    if (!endpoint)
        endpoint = getenv("FLAME_CACHE_ENDPOINT");
    if (!endpoint || !*endpoint)
        endpoint = FL_CACHE_DEFAULT_ENDPOINT;
    fl_cache_endpoint ep;
    flame_status st = fl_cache_endpoint_parse(&ep, endpoint);
    if (st)
        return st;
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.max_message = o.max_message ? o.max_message : (size_t)1 << 30;
    const char *ca = o.ca_file ? o.ca_file : getenv("FLAME_CA_FILE");
    if (ep.tls) {
        co.tls.enabled = true;
        co.tls.ca_file = ca && *ca ? ca : NULL;
    }
    flame_cache *c = fl_calloc(1, sizeof *c);
    c->timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 300000;
    c->max_message = co.max_message;
    st = rpc_channel_new(&c->ch, ep.target, &co);
    fl_cache_endpoint_clear(&ep);
    if (st) {
        free(c);
        return st;
    }
    *out = c;
    return FLAME_OK;
}

void flame_cache_close(flame_cache *c)
{
    if (!c)
        return;
    rpc_channel_free(c->ch);
    free(c);
}

/* DoPut of one opaque value; descriptor: a path or a PATCH command. */
static flame_status put(flame_cache *c, const char *key, bool patch, const void *data, size_t len,
                        flame_cache_ref *ref)
{
    if (!c || !key || (!data && len) || !ref)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_%s: missing argument",
                        patch ? "patch" : "put");
    Arrow__Flight__Protocol__FlightDescriptor d = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__INIT;
    char *cmd = NULL, *path[1] = { (char *)key };
    if (patch) {
        cmd = fl_sprintf("PATCH:%s", key);
        d.type = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__DESCRIPTOR_TYPE__CMD;
        d.cmd = (ProtobufCBinaryData){ strlen(cmd), (uint8_t *)cmd };
    } else {
        d.type = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__DESCRIPTOR_TYPE__PATH;
        d.n_path = 1;
        d.path = path;
    }
    fb_builder schema;
    ipc_opaque_schema(&schema, false);
    ipc_msg batch;
    ipc_opaque_batch(&batch, 0, NULL, data, len, false);
    Arrow__Flight__Protocol__FlightData first = ARROW__FLIGHT__PROTOCOL__FLIGHT_DATA__INIT,
                                        second = ARROW__FLIGHT__PROTOCOL__FLIGHT_DATA__INIT;
    first.flight_descriptor = &d;
    first.data_header = (ProtobufCBinaryData){ schema.len, schema.b };
    second.data_header = (ProtobufCBinaryData){ batch.header_len, batch.header };
    second.data_body = (ProtobufCBinaryData){ batch.body_len, batch.body };
    rpc_stream *st = NULL;
    ProtobufCMessage *resp = NULL;
    flame_status s = rpc_client_stream_open(&st, c->ch, rpc_path(SVC, "DoPut"), c->timeout_ms);
    if (!s) {
        /* a send refused: the server answered early; finish says why */
        if (!rpc_client_stream_send(st, &first.base))
            rpc_client_stream_send(st, &second.base);
        s = rpc_client_stream_finish(st, &arrow__flight__protocol__put_result__descriptor, &resp);
    }
    rpc_stream_free(st);
    fbb_free(&schema);
    ipc_msg_clear(&batch);
    free(cmd);
    if (s)
        return s;
    Arrow__Flight__Protocol__PutResult *r = (void *)resp;
    s = flame_cache_ref_decode(ref, r->app_metadata.data, r->app_metadata.len);
    protobuf_c_message_free_unpacked(resp, NULL);
    return s;
}

flame_status flame_cache_put(flame_cache *c, const char *key_or_prefix, const void *data,
                             size_t len, flame_cache_ref *ref)
{
    return put(c, key_or_prefix, false, data, len, ref);
}

flame_status flame_cache_patch(flame_cache *c, const char *key, const void *data, size_t len,
                               flame_cache_ref *ref)
{
    return put(c, key, true, data, len, ref);
}

void flame_cache_object_clear(flame_cache_object *obj)
{
    if (!obj)
        return;
    free(obj->base);
    for (size_t i = 0; i < obj->n_patches; i++)
        free(obj->patches[i].data);
    free(obj->patches);
    memset(obj, 0, sizeof *obj);
}

static flame_status take_row(void *arg, uint64_t version, const char *kind, size_t kind_len,
                             const uint8_t *data, size_t len)
{
    flame_cache_object *o = arg;
    bool base = !kind || (kind_len == 4 && memcmp(kind, "base", 4) == 0);
    if (!base && !(kind_len == 5 && memcmp(kind, "patch", 5) == 0))
        return fl_error(FLAME_ERR_INTERNAL, "cache reply: unknown row kind");
    if (base && !o->has_base && o->n_patches == 0) {
        o->has_base = 1;
        o->base_version = version;
        o->base = fl_memdup(data, len ? len : 1);
        o->base_len = len;
    } else if (base) {
        return fl_error(FLAME_ERR_INTERNAL, "cache reply: a base row after the first row");
    } else {
        o->patches = fl_realloc(o->patches, (o->n_patches + 1) * sizeof *o->patches);
        o->patches[o->n_patches++] = (flame_cache_patch_data){ version,
                                                               fl_memdup(data, len ? len : 1),
                                                               len };
    }
    o->version = version > o->version ? version : o->version;
    return FLAME_OK;
}

flame_status flame_cache_fetch(flame_cache *c, const char *key, uint64_t known_version,
                               flame_cache_object *out)
{
    if (!c || !key || !out)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_fetch: missing argument");
    memset(out, 0, sizeof *out);
    char *ticket = fl_sprintf("%s:%llu", key, (unsigned long long)known_version);
    Arrow__Flight__Protocol__Ticket t = ARROW__FLIGHT__PROTOCOL__TICKET__INIT;
    t.ticket = (ProtobufCBinaryData){ strlen(ticket), (uint8_t *)ticket };
    rpc_stream *st = NULL;
    flame_status s = rpc_stream_open(&st, c->ch, rpc_path(SVC, "DoGet"), &t.base, c->timeout_ms);
    ipc_schema_info si;
    bool have_schema = false;
    uint64_t total = 0;
    while (!s) {
        ProtobufCMessage *m = NULL;
        if ((s = rpc_stream_next(st, &arrow__flight__protocol__flight_data__descriptor, &m)) || !m)
            break;
        Arrow__Flight__Protocol__FlightData *d = (void *)m;
        ipc_msg msg = { d->data_header.data, d->data_header.len, d->data_body.data,
                        d->data_body.len };
        total += msg.body_len;
        if (!msg.header_len) {
            /* app_metadata only */
        } else if (!have_schema) {
            if ((s = ipc_schema_parse(msg.header, msg.header_len, &si)) == FLAME_OK &&
                si.native)
                s = fl_error(FLAME_ERR_INVALID_ARGUMENT, "%s is a native Arrow table, not "
                             "opaque data", key);
            have_schema = true;
        } else if (total > c->max_message) {
            s = fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "%s: larger than %zu bytes", key,
                         c->max_message);
        } else {
            s = ipc_rows(&si, &msg, c->max_message, take_row, out);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_stream_free(st);
    free(ticket);
    if (!s && !have_schema)
        s = fl_error(FLAME_ERR_INTERNAL, "%s: the reply has no schema", key);
    if (s) {
        flame_cache_object_clear(out);
        return s;
    }
    if (!out->has_base && out->n_patches == 0) {
        out->not_modified = 1;
        out->version = known_version;
    }
    return FLAME_OK;
}

flame_status flame_cache_delete(flame_cache *c, const char *pattern)
{
    if (!c || !pattern)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_delete: missing argument");
    Arrow__Flight__Protocol__Action a = ARROW__FLIGHT__PROTOCOL__ACTION__INIT;
    a.type = "DELETE";
    a.body = (ProtobufCBinaryData){ strlen(pattern), (uint8_t *)pattern };
    rpc_stream *st = NULL;
    flame_status s = rpc_stream_open(&st, c->ch, rpc_path(SVC, "DoAction"), &a.base,
                                     c->timeout_ms);
    ProtobufCMessage *m = NULL;
    while (!s && !(s = rpc_stream_next(st, &arrow__flight__protocol__result__descriptor, &m)) && m)
        protobuf_c_message_free_unpacked(m, NULL);
    rpc_stream_free(st);
    return s;
}

flame_status flame_cache_get(const char *url_or_endpoint, const char *key, const char *ca_file,
                             void **data, size_t *len)
{
    if (!url_or_endpoint || !data || !len)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_cache_get: missing argument");
    fl_cache_endpoint ep;
    flame_status s = fl_cache_endpoint_parse(&ep, url_or_endpoint);
    if (s)
        return s;
    char *k = fl_strdup(key ? key : ep.path);
    char *endpoint = fl_sprintf("%s://%s", ep.tls ? "grpcs" : "grpc", ep.target);
    fl_cache_endpoint_clear(&ep);
    flame_cache *c = NULL;
    flame_cache_object o;
    flame_cache_options opts = FLAME_CACHE_OPTIONS_INIT;
    opts.ca_file = ca_file;
    if (!*k)
        s = fl_error(FLAME_ERR_INVALID_ARGUMENT, "%s: no object key", url_or_endpoint);
    if (!s)
        s = flame_cache_connect(&c, endpoint, &opts);
    if (!s)
        s = flame_cache_fetch(c, k, 0, &o);
    flame_cache_close(c);
    free(endpoint);
    free(k);
    if (s)
        return s;
    fl_buf b = { 0 };
    fl_buf_add(&b, o.base, o.base_len);
    for (size_t i = 0; i < o.n_patches; i++)
        fl_buf_add(&b, o.patches[i].data, o.patches[i].len);
    *len = b.len;
    *data = fl_buf_detach(&b);
    flame_cache_object_clear(&o);
    return FLAME_OK;
}
