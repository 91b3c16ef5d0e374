/* The object cache server: Arrow Flight's FlightService over rpc/, as
 * Flame's object_cache (DoPut with PATCH:<key>, DoGet <key>[:<version>],
 * GetFlightInfo, ListFlights, GetSchema, ListActions, DoAction DELETE;
 * Handshake, DoExchange and PollFlightInfo are UNIMPLEMENTED: rpc/ answers
 * methods without a handler so).
 *
 * Flame 0.7's ObjectCacheService (service07.c) is served on the same port.
 *
 * Threads: one, the server's (rpc_server_run): every handler and the store
 * run there; start/stop are called from the owner's thread. */
#include <arpa/inet.h>
#include <bson/bson.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "Flight.pb-c.h"
#include "cache/endpoint.h"
#include "cache/server.h"
#include "flame/cache.h"
#include "flame/server.h"
#include "rpc/rpc.h"
#include "util/util.h"

typedef Arrow__Flight__Protocol__FlightData FlightData;
typedef Arrow__Flight__Protocol__FlightDescriptor FlightDescriptor;

void flame_cache_server_options_init(flame_cache_server_options *opts)
{
    *opts = (flame_cache_server_options)FLAME_CACHE_SERVER_OPTIONS_INIT;
}

/* ---- replies ------------------------------------------------------------- */

static void send_header(rpc_call *call, const uint8_t *header, size_t len, const uint8_t *body,
                        size_t body_len)
{
    FlightData d = ARROW__FLIGHT__PROTOCOL__FLIGHT_DATA__INIT;
    d.data_header = (ProtobufCBinaryData){ len, (uint8_t *)header };
    d.data_body = (ProtobufCBinaryData){ body_len, (uint8_t *)body };
    rpc_call_send(call, &d.base);
}

static void send_reply_schema(rpc_call *call)
{
    fb_builder b;
    ipc_opaque_schema(&b, true);
    send_header(call, b.b, b.len, NULL, 0);
    fbb_free(&b);
}

static void send_row(rpc_call *call, uint64_t version, const char *kind, const uint8_t *data,
                     size_t len)
{
    ipc_msg m;
    ipc_opaque_batch(&m, version, kind, data, len, false);
    send_header(call, m.header, m.header_len, m.body, m.body_len);
    ipc_msg_clear(&m);
}

static int code_of(flame_status st)
{
    return rpc_status_to_code(st);
}

/* ---- DoGet ---------------------------------------------------------------- */

/* "<key>" or "<key>:<version>" */
static char *parse_ticket(const ProtobufCBinaryData *t, uint64_t *version)
{
    char *s = fl_strndup((const char *)t->data, t->len);
    *version = 0;
    char *colon = strrchr(s, ':');
    if (colon && colon[1]) {
        char *end;
        unsigned long long v = strtoull(colon + 1, &end, 10);
        if (!*end && colon[1] >= '0' && colon[1] <= '9') {
            *version = v;
            *colon = 0;
        }
    }
    return s;
}

/* Deltas after v are exactly v+1 .. o->version. */
static bool patches_after(const cache_obj *o, uint64_t v, size_t *first)
{
    size_t i = 0;
    while (i < o->n_deltas && o->deltas[i].version <= v)
        i++;
    *first = i;
    for (size_t j = i; j < o->n_deltas; j++)
        if (o->deltas[j].version != v + 1 + (j - i))
            return false;
    return i < o->n_deltas && o->deltas[o->n_deltas - 1].version == o->version;
}

static void do_get(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    const Arrow__Flight__Protocol__Ticket *t = (const void *)msg;
    uint64_t v;
    char *key = parse_ticket(&t->ticket, &v);
    const char *why;
    if (cache_key_kind(key, &why) != CACHE_KEY_FULL) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "invalid key %s: %s", key,
                        why ? why : "expected <app>/<session>/<object>");
        free(key);
        return;
    }
    cache_obj *o = cache_store_get(srv->store, key);
    if (!o) {
        flame_status st = flame_error_last_code();
        if (st == FLAME_ERR_NOT_FOUND)
            rpc_call_finish(call, RPC_NOT_FOUND, "object %s not found", key);
        else
            rpc_call_finish(call, code_of(st), "%s", flame_error_last());
        free(key);
        return;
    }
    size_t first;
    if (v != 0 && v == o->version) { /* not modified */
        send_reply_schema(call);
    } else if (o->native) {
        size_t n;
        uint8_t *schema = ipc_schema_with_version(o->base.schema.header,
                                                  o->base.schema.header_len, o->version, &n);
        send_header(call, schema, n, NULL, 0);
        free(schema);
        for (size_t i = 0; i < o->base.n_msgs; i++)
            send_header(call, o->base.msgs[i].header, o->base.msgs[i].header_len,
                        o->base.msgs[i].body, o->base.msgs[i].body_len);
    } else if (v != 0 && o->base_version <= v && v < o->version && patches_after(o, v, &first)) {
        send_reply_schema(call);
        for (size_t i = first; i < o->n_deltas; i++)
            send_row(call, o->deltas[i].version, "patch", o->deltas[i].data, o->deltas[i].len);
    } else {
        send_reply_schema(call);
        send_row(call, o->base_version, "base", o->base.data, o->base.len);
        for (size_t i = 0; i < o->n_deltas; i++)
            send_row(call, o->deltas[i].version, "patch", o->deltas[i].data, o->deltas[i].len);
    }
    rpc_call_finish(call, RPC_OK, "%s", "");
    free(key);
}

/* ---- DoPut ----------------------------------------------------------------- */

typedef struct put_state {
    char *key;
    bool patch;
    bool have_schema;
    ipc_schema_info si;
    cache_payload p;
    fb_builder data;
    uint64_t total;
    size_t cap_msgs;
    bool has_version;
    uint64_t first_version;
} put_state;

static void put_free(put_state *ps)
{
    if (!ps)
        return;
    free(ps->key);
    cache_payload_clear(&ps->p);
    fbb_free(&ps->data);
    free(ps);
}

static void put_cancelled(rpc_call *call, void *arg)
{
    put_free(arg);
    rpc_call_set_user(call, NULL);
}

static void put_fail(rpc_call *call, put_state *ps, int code, const char *why)
{
    rpc_call_on_cancel(call, NULL, NULL);
    rpc_call_set_user(call, NULL);
    put_free(ps);
    rpc_call_finish(call, code, "%s", why);
}

void cache_uuid4(char out[37])
{
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++) /* never short for 16 bytes; belt and braces */
            r[i] = (uint8_t)(fl_mono_ns() >> (i % 8));
    r[6] = (r[6] & 0x0f) | 0x40;
    r[8] = (r[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
             r[13], r[14], r[15]);
}

/* The key a descriptor names: PATH elements joined with '/' (or, for a
 * CMD, "PATCH:<key>"). NULL with *why on error. */
static char *descriptor_key(const FlightDescriptor *d, bool *patch, char *why, size_t why_size)
{
    *patch = false;
    if (d->type == ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__DESCRIPTOR_TYPE__CMD ||
        (d->n_path == 0 && d->cmd.len)) {
        if (d->cmd.len < 6 || memcmp(d->cmd.data, "PATCH:", 6) != 0) {
            snprintf(why, why_size, "unsupported command; expected PATCH:<key>");
            return NULL;
        }
        *patch = true;
        return fl_strndup((const char *)d->cmd.data + 6, d->cmd.len - 6);
    }
    fl_buf b = { 0 };
    for (size_t i = 0; i < d->n_path; i++) {
        if (i)
            fl_buf_add(&b, "/", 1);
        fl_buf_add(&b, d->path[i], strlen(d->path[i]));
    }
    if (!b.len) {
        fl_buf_free(&b); /* empty path elements */
        snprintf(why, why_size, "the descriptor names no key");
        return NULL;
    }
    return fl_buf_detach(&b);
}

static void put_first(rpc_call *call, flame_cache_server *srv, const FlightData *d)
{
    char why[512];
    if (!d->flight_descriptor) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "DoPut: the first message has no descriptor");
        return;
    }
    bool patch;
    char *key = descriptor_key(d->flight_descriptor, &patch, why, sizeof why);
    if (!key) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "%s", why);
        return;
    }
    const char *kwhy;
    int kind = cache_key_kind(key, &kwhy);
    if (kind != CACHE_KEY_FULL && !(kind == CACHE_KEY_PREFIX && !patch)) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "invalid key %s: %s", key,
                        kwhy ? kwhy : patch ? "PATCH needs <app>/<session>/<object>"
                                            : "expected <app>/<session>[/<object>]");
        free(key);
        return;
    }
    if (kind == CACHE_KEY_PREFIX) {
        char id[37];
        cache_uuid4(id);
        char *full = fl_sprintf("%s/%s", key, id);
        free(key);
        key = full;
    }
    put_state *ps = fl_calloc(1, sizeof *ps);
    ps->key = key;
    ps->patch = patch;
    rpc_call_set_user(call, ps);
    rpc_call_on_cancel(call, put_cancelled, ps);
}

static void put_message(rpc_call *call, flame_cache_server *srv, put_state *ps,
                        const FlightData *d)
{
    if (!d->data_header.len)
        return; /* app_metadata only */
    ipc_msg m = { d->data_header.data, d->data_header.len, d->data_body.data, d->data_body.len };
    int64_t body_len;
    int type = ipc_message_type(m.header, m.header_len, &body_len);
    if (type < 0 || (uint64_t)body_len != m.body_len) {
        put_fail(call, ps, RPC_INVALID_ARGUMENT, "DoPut: malformed Arrow IPC message");
        return;
    }
    if (!ps->have_schema) {
        if (type != IPC_SCHEMA) {
            put_fail(call, ps, RPC_INVALID_ARGUMENT, "DoPut: the first message is not a schema");
            return;
        }
        if (ipc_schema_parse(m.header, m.header_len, &ps->si)) {
            put_fail(call, ps, RPC_INVALID_ARGUMENT, flame_error_last());
            return;
        }
        if (ps->patch && ps->si.native) {
            put_fail(call, ps, RPC_INVALID_ARGUMENT, "PATCH takes opaque data (version, data)");
            return;
        }
        ps->have_schema = true;
        ps->p.native = ps->si.native;
        if (ps->si.native)
            ps->p.schema = (ipc_msg){ fl_memdup(m.header, m.header_len), m.header_len, NULL, 0 };
        return;
    }
    ps->total += m.header_len + m.body_len;
    if (ps->total > srv->max_object) {
        char why[128];
        snprintf(why, sizeof why, "object larger than the limit of %llu bytes",
                 (unsigned long long)srv->max_object);
        put_fail(call, ps, RPC_RESOURCE_EXHAUSTED, why);
        return;
    }
    if (type == IPC_SCHEMA) {
        put_fail(call, ps, RPC_INVALID_ARGUMENT, "DoPut: a second schema");
        return;
    }
    if (ps->si.native) { /* kept verbatim */
        if (ps->p.n_msgs == ps->cap_msgs) {
            ps->cap_msgs = ps->cap_msgs ? ps->cap_msgs * 2 : 8;
            ps->p.msgs = fl_realloc(ps->p.msgs, ps->cap_msgs * sizeof *ps->p.msgs);
        }
        ps->p.msgs[ps->p.n_msgs++] = (ipc_msg){ fl_memdup(m.header, m.header_len), m.header_len,
                                                fl_memdup(m.body, m.body_len), m.body_len };
        return;
    }
    flame_status st = type == IPC_RECORD_BATCH
        ? ipc_opaque_rows(&ps->si, &m, srv->max_object, &ps->data, &ps->has_version,
                          &ps->first_version)
        : fl_error(FLAME_ERR_INVALID_ARGUMENT, "DoPut: dictionaries in opaque data");
    if (st)
        put_fail(call, ps, code_of(st), flame_error_last());
}

static void put_done(rpc_call *call, flame_cache_server *srv, put_state *ps)
{
    if (!ps->have_schema) {
        put_fail(call, ps, RPC_INVALID_ARGUMENT, "DoPut: no schema");
        return;
    }
    if (!ps->p.native) {
        ps->p.data = ps->data.b;
        ps->p.len = ps->data.len;
        ps->data = (fb_builder){ 0 };
    }
    uint64_t version;
    flame_status st = ps->patch ? cache_store_patch(srv->store, ps->key, &ps->p, &version)
                                : cache_store_put(srv->store, ps->key, &ps->p, &version);
    if (st) {
        put_fail(call, ps, code_of(st), flame_error_last());
        return;
    }
    bson_t b;
    bson_init(&b);
    BSON_APPEND_UTF8(&b, "endpoint", srv->uri);
    BSON_APPEND_UTF8(&b, "key", ps->key);
    BSON_APPEND_INT64(&b, "version", (int64_t)version);
    Arrow__Flight__Protocol__PutResult r = ARROW__FLIGHT__PROTOCOL__PUT_RESULT__INIT;
    r.app_metadata = (ProtobufCBinaryData){ b.len, (uint8_t *)bson_get_data(&b) };
    rpc_call_send(call, &r.base);
    bson_destroy(&b);
    rpc_call_on_cancel(call, NULL, NULL);
    rpc_call_set_user(call, NULL);
    put_free(ps);
    rpc_call_finish(call, RPC_OK, "%s", "");
}

static void do_put(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    put_state *ps = rpc_call_user(call);
    const FlightData *d = (const void *)msg;
    if (!ps) {
        if (!d) {
            rpc_call_finish(call, RPC_INVALID_ARGUMENT, "DoPut: no data");
            return;
        }
        put_first(call, srv, d);
        if (!(ps = rpc_call_user(call)))
            return;
    }
    if (d)
        put_message(call, srv, ps, d);
    else
        put_done(call, srv, ps);
}

/* ---- metadata RPCs --------------------------------------------------------- */

static void fill_info(flame_cache_server *srv, Arrow__Flight__Protocol__FlightInfo *fi,
                      Arrow__Flight__Protocol__FlightEndpoint *ep,
                      Arrow__Flight__Protocol__FlightEndpoint **eps,
                      Arrow__Flight__Protocol__Ticket *t, Arrow__Flight__Protocol__Location *loc,
                      Arrow__Flight__Protocol__Location **locs, FlightDescriptor *d,
                      const char **path, const char *key)
{
    t->ticket = (ProtobufCBinaryData){ strlen(key), (uint8_t *)key };
    d->type = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__DESCRIPTOR_TYPE__PATH;
    d->n_path = 1;
    d->path = (char **)path;
    path[0] = key;
    fi->flight_descriptor = d;
    loc->uri = srv->uri;
    locs[0] = loc;
    ep->ticket = t;
    ep->n_location = 1;
    ep->location = locs;
    eps[0] = ep;
    fi->n_endpoint = 1;
    fi->endpoint = eps;
    fi->total_records = -1;
    fi->total_bytes = -1;
}

static void get_flight_info(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    const FlightDescriptor *d = (const void *)msg;
    char why[256];
    bool patch;
    char *key = descriptor_key(d, &patch, why, sizeof why);
    const char *kwhy = NULL;
    if (!key || patch || cache_key_kind(key, &kwhy) != CACHE_KEY_FULL) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, "invalid key %s: %s", key ? key : "",
                        !key ? why : kwhy ? kwhy : "expected <app>/<session>/<object>");
        free(key);
        return;
    }
    Arrow__Flight__Protocol__FlightInfo fi = ARROW__FLIGHT__PROTOCOL__FLIGHT_INFO__INIT;
    Arrow__Flight__Protocol__FlightEndpoint ep = ARROW__FLIGHT__PROTOCOL__FLIGHT_ENDPOINT__INIT,
                                            *eps[1];
    Arrow__Flight__Protocol__Ticket t = ARROW__FLIGHT__PROTOCOL__TICKET__INIT;
    Arrow__Flight__Protocol__Location loc = ARROW__FLIGHT__PROTOCOL__LOCATION__INIT, *locs[1];
    FlightDescriptor fd = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__INIT;
    const char *path[1];
    fill_info(srv, &fi, &ep, eps, &t, &loc, locs, &fd, path, key);
    fb_builder schema = { 0 };
    cache_obj *o = cache_store_get(srv->store, key); /* a file a client wrote is found here */
    if (o && o->native) {
        size_t n;
        uint8_t *h = ipc_schema_with_version(o->base.schema.header, o->base.schema.header_len,
                                             o->version, &n);
        ipc_encapsulate(&schema, h, n);
        free(h);
        fi.schema = (ProtobufCBinaryData){ schema.len, schema.b };
    }
    rpc_call_reply(call, &fi.base);
    fbb_free(&schema);
    free(key);
}

static void list_flights(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    cache_obj *o;
    /* one message per object, all queued now (the call's send limit is the
     * object limit, see start) */
    for (size_t i = 0; (o = cache_store_next(srv->store, &i));) {
        Arrow__Flight__Protocol__FlightInfo fi = ARROW__FLIGHT__PROTOCOL__FLIGHT_INFO__INIT;
        Arrow__Flight__Protocol__FlightEndpoint ep = ARROW__FLIGHT__PROTOCOL__FLIGHT_ENDPOINT__INIT,
                                                *eps[1];
        Arrow__Flight__Protocol__Ticket t = ARROW__FLIGHT__PROTOCOL__TICKET__INIT;
        Arrow__Flight__Protocol__Location loc = ARROW__FLIGHT__PROTOCOL__LOCATION__INIT, *locs[1];
        FlightDescriptor fd = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__INIT;
        const char *path[1];
        fill_info(srv, &fi, &ep, eps, &t, &loc, locs, &fd, path, o->key);
        fi.total_bytes = (int64_t)o->size;
        if (!rpc_call_send(call, &fi.base))
            return;
    }
    rpc_call_finish(call, RPC_OK, "%s", "");
}

static void get_schema(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    fb_builder h, b = { 0 };
    ipc_opaque_schema(&h, true);
    ipc_encapsulate(&b, h.b, h.len);
    Arrow__Flight__Protocol__SchemaResult r = ARROW__FLIGHT__PROTOCOL__SCHEMA_RESULT__INIT;
    r.schema = (ProtobufCBinaryData){ b.len, b.b };
    rpc_call_reply(call, &r.base);
    fbb_free(&h);
    fbb_free(&b);
}

static void list_actions(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    Arrow__Flight__Protocol__ActionType a = ARROW__FLIGHT__PROTOCOL__ACTION_TYPE__INIT;
    a.type = "DELETE";
    a.description = "Delete objects by key, <app>/<session> prefix or <app>/*";
    rpc_call_send(call, &a.base);
    rpc_call_finish(call, RPC_OK, "%s", "");
}

static void do_action(rpc_call *call, const ProtobufCMessage *msg, void *ctx)
{
    flame_cache_server *srv = ctx;
    const Arrow__Flight__Protocol__Action *a = (const void *)msg;
    if (strcmp(a->type, "DELETE") != 0) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "Unknown action type: %s. Only DELETE is supported.", a->type);
        return;
    }
    char *key = fl_strndup((const char *)a->body.data, a->body.len);
    flame_status st = cache_store_delete(srv->store, key);
    free(key);
    if (st) {
        rpc_call_finish(call, code_of(st), "%s", flame_error_last());
        return;
    }
    Arrow__Flight__Protocol__Result r = ARROW__FLIGHT__PROTOCOL__RESULT__INIT;
    r.body = (ProtobufCBinaryData){ 2, (uint8_t *)"OK" };
    rpc_call_send(call, &r.base);
    rpc_call_finish(call, RPC_OK, "%s", "");
}

static const rpc_method methods[] = {
    { "ListFlights", RPC_KIND_SERVER_STREAM, list_flights },
    { "GetFlightInfo", RPC_KIND_UNARY, get_flight_info },
    { "GetSchema", RPC_KIND_UNARY, get_schema },
    { "DoGet", RPC_KIND_SERVER_STREAM, do_get },
    { "DoPut", RPC_KIND_BIDI, do_put },
    { "DoAction", RPC_KIND_SERVER_STREAM, do_action },
    { "ListActions", RPC_KIND_SERVER_STREAM, list_actions },
};

const rpc_service cache_flight_service = {
    &arrow__flight__protocol__flight_service__descriptor, methods, FL_ARRAY_LEN(methods)
};

/* ---- start/stop ------------------------------------------------------------ */

/* The first IPv4 of an interface whose name matches pattern (or, pattern
 * NULL, of any non-loopback one); false when none. */
static bool interface_ip(const char *pattern, char *out, size_t size)
{
    regex_t re;
    if (pattern && regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    struct ifaddrs *ifs = NULL, *i;
    bool found = false;
    if (getifaddrs(&ifs) == 0) {
        for (i = ifs; i && !found; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                continue;
            if (pattern ? regexec(&re, i->ifa_name, 0, NULL, 0) != 0
                        : (i->ifa_flags & IFF_LOOPBACK) != 0)
                continue;
            found = inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr,
                              out, (socklen_t)size) != NULL;
        }
        freeifaddrs(ifs);
    }
    if (pattern)
        regfree(&re);
    return found;
}

static void *serve(void *arg)
{
    flame_cache_server *srv = arg;
    rpc_server_run(srv->rpc);
    return NULL;
}

static void server_free(flame_cache_server *srv)
{
    if (srv->rpc)
        rpc_server_free(srv->rpc);
    cache_store_close(srv->store);
    free(srv->uri);
    free(srv);
}

flame_status flame_cache_server_start(flame_cache_server **out,
                                      const flame_cache_server_options *opts)
{
    flame_cache_server_options o = FLAME_CACHE_SERVER_OPTIONS_INIT;
    if (opts)
        o = *opts;
    flame_cluster_config *cfg = NULL;
    flame_status st = flame_cluster_config_load(&cfg, o.config_file);
    if (st)
        return st;
    const char *endpoint = o.endpoint ? o.endpoint : cfg->cache_endpoint;
    const char *storage = o.storage ? o.storage : cfg->cache_storage;
    const char *policy = o.eviction_policy ? o.eviction_policy : cfg->cache_eviction_policy;
    rpc_tls tls = RPC_TLS_INIT;
    tls.cert_file = o.tls_cert_file ? o.tls_cert_file : cfg->cache_tls_cert_file;
    tls.key_file = o.tls_key_file ? o.tls_key_file : cfg->cache_tls_key_file;
    tls.ca_file = o.tls_ca_file ? o.tls_ca_file : cfg->cache_tls_ca_file;
    tls.mutual = o.tls_mutual != 0;
    fl_cache_endpoint ep;
    flame_cache_server *srv = fl_calloc(1, sizeof *srv);
    srv->max_object = o.max_object_size ? o.max_object_size : 1ull << 30;
    if (fl_cache_endpoint_parse(&ep, endpoint)) {
        st = cache_error_wrap(FLAME_ERR_CONFIG, "cache.endpoint");
        goto fail;
    }
    if (strcmp(policy, "lru") != 0 && strcmp(policy, "none") != 0) {
        st = fl_error(FLAME_ERR_CONFIG, "cache.eviction.policy: %s: expected lru or none", policy);
        goto fail_ep;
    }
    if (ep.tls) {
        if (!tls.cert_file || !tls.key_file) {
            st = fl_error(FLAME_ERR_CONFIG, "cache.tls: a grpcs:// endpoint needs cert_file and "
                          "key_file");
            goto fail_ep;
        }
        if ((st = rpc_tls_check(&tls, true))) {
            st = cache_error_wrap(st, "cache.tls");
            goto fail_ep;
        }
    } else {
        tls = (rpc_tls)RPC_TLS_INIT; /* TLS if and only if grpcs, as Flame */
    }
    char *root = cache_storage_root(storage);
    cache_store_options so = { root, strcmp(policy, "lru") == 0,
                               o.max_memory ? o.max_memory : cfg->cache_max_memory,
                               o.max_objects ? o.max_objects : cfg->cache_max_objects,
                               srv->max_object };
    st = cache_store_open(&srv->store, &so);
    free(root);
    if (st)
        goto fail_ep;
    /* both protocols on one port, over one store */
    rpc_service svc[] = { cache_flight_service, cache07_service };
    rpc_server_options ro = RPC_SERVER_OPTIONS_INIT;
    /* one object travels in one message; a reply holds an object */
    ro.max_message = (size_t)srv->max_object + (1u << 20);
    ro.limits.max_send_queue_bytes = 2 * ro.max_message;
    ro.limits.max_send_queue_msgs = 1u << 20;
    ro.tls = tls;
    srv->rpc = rpc_server_new(svc, FL_ARRAY_LEN(svc), srv, &ro);
    srv->port = rpc_server_listen(srv->rpc, ep.target);
    if (srv->port < 0) {
        char where[300];
        snprintf(where, sizeof where, "cache: cannot listen on %s", ep.target);
        st = cache_error_wrap(FLAME_ERR_UNAVAILABLE, where);
        goto fail_ep;
    }
    char host[64];
    const char *h = o.advertise_host;
    if (!h && cfg->cache_network_interface && interface_ip(cfg->cache_network_interface, host,
                                                            sizeof host))
        h = host;
    if (!h && (strcmp(ep.host, "0.0.0.0") == 0 || strcmp(ep.host, "::") == 0))
        h = interface_ip(NULL, host, sizeof host) ? host : "127.0.0.1";
    if (!h)
        h = ep.host;
    srv->uri = strchr(h, ':') ? fl_sprintf("%s://[%s]:%d", ep.tls ? "grpc+tls" : "grpc", h, srv->port)
                              : fl_sprintf("%s://%s:%d", ep.tls ? "grpc+tls" : "grpc", h, srv->port);
    fl_log(FL_LOG_INFO, "cache", "serving %s (storage %s, eviction %s)", srv->uri,
           storage && *storage ? storage : "none", policy);
    fl_cache_endpoint_clear(&ep);
    flame_cluster_config_free(cfg);
    if (pthread_create(&srv->thread, NULL, serve, srv) != 0) {
        server_free(srv);
        return fl_error(FLAME_ERR_INTERNAL, "cache: cannot start the server thread");
    }
    *out = srv;
    return FLAME_OK;
fail_ep:
    fl_cache_endpoint_clear(&ep);
fail:
    flame_cluster_config_free(cfg);
    server_free(srv);
    return st;
}

int flame_cache_server_port(const flame_cache_server *srv)
{
    return srv->port;
}

const char *flame_cache_server_uri(const flame_cache_server *srv)
{
    return srv->uri;
}

void flame_cache_server_stop(flame_cache_server *srv)
{
    if (!srv)
        return;
    rpc_server_shutdown(srv->rpc);
    pthread_join(srv->thread, NULL);
    server_free(srv);
}

/* The /healthz and /readyz probe (flame/metrics.h): serving once started,
 * while its rpc loop turns. */
int flame_object_cache_healthy(void *srv, char *why, size_t size)
{
    return rpc_server_probe(((flame_cache_server *)srv)->rpc, why, size);
}
