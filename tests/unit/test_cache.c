/* Unit tests of the object cache: the FlatBuffers/Arrow IPC codec
 * (cache/fb.c, cache/ipc.c), key rules and the store (cache/store.c), and
 * the server with the C client of flame/cache.h on a free port. The wire
 * format itself is checked against pyarrow in tests/ecosystem. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/endpoint.h"
#include "cache/fb.h"
#include "cache/ipc.h"
#include "cache/server.h"
#include "cache/store.h"
#include "flame/cache.h"
#include "rpc/inject.h"
#include "Flight.pb-c.h"
#include "cache07.pb-c.h"
#include "util/util.h"

static char dir[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/flame-test-cache-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(opaque_codec_round_trip)
{
    fb_builder schema;
    ipc_opaque_schema(&schema, false);
    ipc_schema_info si;
    ck_assert_int_eq(ipc_schema_parse(schema.b, schema.len, &si), FLAME_OK);
    ck_assert(si.opaque);
    ck_assert(!si.native);
    ck_assert_int_eq(si.version_col, 0);
    ck_assert_int_eq(si.data_col, 1);
    for (int zstd = 0; zstd < 2; zstd++) {
        ipc_msg m;
        static const char text[] = "hello, flame";
        ipc_opaque_batch(&m, 7, NULL, (const uint8_t *)text, strlen(text), zstd);
        int64_t bl;
        ck_assert_int_eq(ipc_message_type(m.header, m.header_len, &bl), IPC_RECORD_BATCH);
        ck_assert_uint_eq((uint64_t)bl, m.body_len);
        fb_builder out = { 0 };
        bool has = false;
        uint64_t v = 0;
        ck_assert_int_eq(ipc_opaque_rows(&si, &m, 1 << 20, &out, &has, &v), FLAME_OK);
        ck_assert(has);
        ck_assert_uint_eq(v, 7);
        ck_assert_uint_eq(out.len, strlen(text));
        ck_assert(memcmp(out.b, text, out.len) == 0);
        /* the limit holds */
        fb_builder small = { 0 };
        has = false;
        ck_assert_int_eq(ipc_opaque_rows(&si, &m, 4, &small, &has, &v),
                         FLAME_ERR_RESOURCE_EXHAUSTED);
        fbb_free(&small);
        fbb_free(&out);
        /* the file format round trip */
        fb_builder file = { 0 };
        ipc_file_write(&file, schema.b, schema.len, &m, 1);
        ck_assert(memcmp(file.b, "ARROW1", 6) == 0);
        ck_assert(memcmp(file.b + file.len - 6, "ARROW1", 6) == 0);
        ipc_msg s2, *msgs;
        size_t n;
        ck_assert_int_eq(ipc_file_read(file.b, file.len, 1 << 20, &s2, &msgs, &n), FLAME_OK);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(s2.header_len, schema.len);
        ck_assert_uint_eq(msgs[0].body_len, m.body_len);
        ipc_msg_clear(&s2);
        ipc_msg_clear(&msgs[0]);
        free(msgs);
        /* every truncation is an error, never a crash */
        for (size_t cut = 0; cut < file.len; cut += 7) {
            if (ipc_file_read(file.b, cut, 1 << 20, &s2, &msgs, &n) == FLAME_OK) {
                ipc_msg_clear(&s2);
                for (size_t i = 0; i < n; i++)
                    ipc_msg_clear(&msgs[i]);
                free(msgs);
            }
        }
        fbb_free(&file);
        ipc_msg_clear(&m);
    }
    fbb_free(&schema);
}
END_TEST

START_TEST(reply_schema_and_rows)
{
    fb_builder schema;
    ipc_opaque_schema(&schema, true);
    ipc_schema_info si;
    ck_assert_int_eq(ipc_schema_parse(schema.b, schema.len, &si), FLAME_OK);
    ck_assert(si.opaque);
    ck_assert_int_eq(si.n_cols, 3);
    ck_assert_int_eq(si.kind_col, 1);
    ipc_msg m;
    ipc_opaque_batch(&m, 3, "patch", (const uint8_t *)"xyz", 3, true);
    fb_builder out = { 0 };
    bool has = false;
    uint64_t v;
    ck_assert_int_eq(ipc_opaque_rows(&si, &m, 100, &out, &has, &v), FLAME_OK);
    ck_assert_uint_eq(v, 3);
    ck_assert_uint_eq(out.len, 3);
    fbb_free(&out);
    ipc_msg_clear(&m);
    fbb_free(&schema);
}
END_TEST

/* A native schema: the opaque one with flame.cache.* metadata added by
 * rewriting (what the server does to every native table). */
START_TEST(schema_version_rewrite)
{
    fb_builder schema;
    ipc_opaque_schema(&schema, false);
    size_t n, n2;
    uint8_t *v5 = ipc_schema_with_version(schema.b, schema.len, 5, &n);
    ck_assert_ptr_nonnull(v5);
    ipc_schema_info si;
    ck_assert_int_eq(ipc_schema_parse(v5, n, &si), FLAME_OK);
    ck_assert_uint_eq(si.version, 5);
    ck_assert(si.opaque); /* fields kept */
    uint8_t *v6 = ipc_schema_with_version(v5, n, 12345678901234ull, &n2);
    ck_assert_int_eq(ipc_schema_parse(v6, n2, &si), FLAME_OK);
    ck_assert_uint_eq(si.version, 12345678901234ull);
    ck_assert_ptr_null(ipc_schema_with_version((const uint8_t *)"junkjunkjunk", 12, 1, &n));
    free(v5);
    free(v6);
    fbb_free(&schema);
}
END_TEST

START_TEST(garbage_is_an_error)
{
    uint8_t buf[256];
    unsigned seed = 42;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        if (len >= 4 && round % 2) /* a plausible root offset */
            buf[0] = 4, buf[1] = buf[2] = buf[3] = 0;
        int64_t bl;
        ipc_schema_info si;
        (void)ipc_message_type(buf, len, &bl);
        (void)ipc_schema_parse(buf, len, &si);
        size_t n;
        free(ipc_schema_with_version(buf, len, 1, &n));
        fb_builder s;
        ipc_opaque_schema(&s, false);
        ipc_schema_parse(s.b, s.len, &si);
        ipc_msg m = { buf, len, buf, len };
        fb_builder out = { 0 };
        bool has = false;
        uint64_t v;
        (void)ipc_opaque_rows(&si, &m, 1 << 20, &out, &has, &v);
        fbb_free(&out);
        fbb_free(&s);
    }
}
END_TEST

/* fuzz_ipc's findings (tests/fuzz/corpus/fuzz_ipc/found-*): a native
 * schema without fields was accepted, then every reply of the table failed
 * to rewrite its version (a NULL schema sent); a vtable before the buffer
 * read as "no fields" and so differently once the bytes moved inside a
 * rewritten schema; a body not padded to 8 was stored and its file did
 * not read back. And fuzz_cache's (tests/fuzz/corpus/fuzz_cache/found-*). */
START_TEST(fuzz_findings)
{
    /* Message { header_type Schema, header Schema { custom_metadata
     * [{flame.cache.format: arrow-table-v1}] } }: no fields */
    fb_builder b;
    fbb_init(&b);
    fbb_slot ms[] = { { 0, 2, 4, false }, { 1, 1, IPC_SCHEMA, false }, { 2, 4, 0, true },
                      { 3, 8, 0, false } };
    size_t mpos[4];
    fbb_patch(&b, 0, fbb_table(&b, ms, 4, mpos));
    fbb_slot ss[] = { { 2, 4, 0, true } };
    size_t spos[1];
    fbb_patch(&b, mpos[2], fbb_table(&b, ss, 1, spos));
    size_t vec = fbb_vector(&b, 1, 4, 4, NULL);
    fbb_patch(&b, spos[0], vec);
    fbb_slot ks[] = { { 0, 4, 0, true }, { 1, 4, 0, true } };
    size_t kpos[2];
    fbb_patch(&b, vec + 4, fbb_table(&b, ks, 2, kpos));
    fbb_patch(&b, kpos[0], fbb_string(&b, "flame.cache.format", 18));
    fbb_patch(&b, kpos[1], fbb_string(&b, "arrow-table-v1", 14));
    int64_t bl;
    ck_assert_int_eq(ipc_message_type(b.b, b.len, &bl), IPC_SCHEMA);
    ipc_schema_info si;
    ck_assert_int_eq(ipc_schema_parse(b.b, b.len, &si), FLAME_ERR_INVALID_ARGUMENT);
    fbb_free(&b);

    /* a table whose vtable would start before the buffer: malformed */
    uint8_t t[8] = { 4, 0, 0, 0, 100, 0, 0, 0 };
    fb_reader r = { t, sizeof t, false };
    size_t root = fbr_root(&r);
    ck_assert_uint_eq(root, 4);
    ck_assert_uint_eq(fbr_field(&r, root, 0, 4), 0);
    ck_assert(r.bad);

    /* bodyLength 71: not a message */
    ipc_msg m;
    ipc_opaque_batch(&m, 1, NULL, (const uint8_t *)"x", 1, false);
    ck_assert_int_eq(ipc_message_type(m.header, m.header_len, &bl), IPC_RECORD_BATCH);
    ck_assert_int_eq(bl % 8, 0);
    fb_reader mr = { m.header, m.header_len, false };
    size_t at = fbr_field(&mr, fbr_root(&mr), 3, 8);
    ck_assert_uint_ne(at, 0);
    m.header[at] = 71;
    ck_assert_int_eq(ipc_message_type(m.header, m.header_len, &bl), -1);
    ipc_msg_clear(&m);

    /* fuzz_cache: an empty DoGet ticket or DoAction body (NULL, 0) was
     * copied with memcpy(d, NULL, 0) (UBSan) */
    char *e = fl_strndup(NULL, 0);
    ck_assert_str_eq(e, "");
    free(e);
}
END_TEST

/* A cache server of a memory store, driven by injected calls (as
 * tests/fuzz/fuzz_cache.c does). */
static void final_code(void *arg, rpc_call *call, const uint8_t *data, size_t len, bool final,
                       int code, const char *details)
{
    if (final)
        *(int *)arg = code;
}

static void inject_server(flame_cache_server *srv)
{
    *srv = (flame_cache_server){ 0 };
    cache_store_options so = { NULL, true, 1u << 20, 0, 1u << 20 };
    ck_assert_int_eq(cache_store_open(&srv->store, &so), FLAME_OK);
    srv->max_object = so.max_object;
    srv->uri = (char *)"grpc://127.0.0.1:9090";
    const rpc_service svc[] = { cache_flight_service, cache07_service };
    srv->rpc = rpc_server_new(svc, 2, srv, NULL);
}

static void inject_server_free(flame_cache_server *srv)
{
    rpc_server_free(srv->rpc);
    cache_store_close(srv->store);
}

/* One call of n messages, half-closed: its final status code. */
static int inject_call(flame_cache_server *srv, const rpc_service *svc, const char *method,
                       const ProtobufCMessage *const *msgs, size_t n)
{
    int code = -1;
    rpc_inject_set_sink(srv->rpc, final_code, &code);
    rpc_call *call = rpc_inject_open(srv->rpc, rpc_path(svc->desc, method));
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[256];
        rpc_inject_message(call, buf, protobuf_c_message_pack(msgs[i], buf));
    }
    rpc_inject_message(call, NULL, 0);
    rpc_inject_flush(srv->rpc);
    rpc_inject_end(call);
    rpc_inject_flush(srv->rpc);
    rpc_inject_set_sink(srv->rpc, NULL, NULL);
    return code;
}

/* fuzz_cache's findings (tests/fuzz/corpus/fuzz_cache/found-*): a DoPut
 * descriptor of empty path elements leaked the key buffer (ASan); an empty
 * DoGet ticket was copied from NULL, and a 0.7 Get of an empty object
 * added an offset to a NULL pointer (UBSan). */
START_TEST(server_fuzz_findings)
{
    flame_cache_server srv;
    inject_server(&srv);
    Arrow__Flight__Protocol__FlightDescriptor desc =
        ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__INIT;
    char *empty[] = { "" };
    desc.type = ARROW__FLIGHT__PROTOCOL__FLIGHT_DESCRIPTOR__DESCRIPTOR_TYPE__PATH;
    desc.path = empty;
    desc.n_path = 1;
    Arrow__Flight__Protocol__FlightData d = ARROW__FLIGHT__PROTOCOL__FLIGHT_DATA__INIT;
    d.flight_descriptor = &desc;
    const ProtobufCMessage *put[] = { &d.base };
    ck_assert_int_eq(inject_call(&srv, &cache_flight_service, "DoPut", put, 1),
                     RPC_INVALID_ARGUMENT);
    Arrow__Flight__Protocol__Ticket t = ARROW__FLIGHT__PROTOCOL__TICKET__INIT;
    const ProtobufCMessage *get[] = { &t.base };
    ck_assert_int_ne(inject_call(&srv, &cache_flight_service, "DoGet", get, 1), RPC_OK);

    Flame__V1__CacheWriteHeader h = FLAME__V1__CACHE_WRITE_HEADER__INIT;
    h.key = "app/ssn/empty";
    h.data_type = "raw";
    Flame__V1__CacheWriteRequest w = FLAME__V1__CACHE_WRITE_REQUEST__INIT;
    w.payload_case = FLAME__V1__CACHE_WRITE_REQUEST__PAYLOAD_HEADER;
    w.header = &h;
    const ProtobufCMessage *put07[] = { &w.base };
    ck_assert_int_eq(inject_call(&srv, &cache07_service, "Put", put07, 1), RPC_OK);
    Flame__V1__CacheGetRequest g = FLAME__V1__CACHE_GET_REQUEST__INIT;
    g.key = "app/ssn/empty";
    const ProtobufCMessage *get07[] = { &g.base };
    ck_assert_int_eq(inject_call(&srv, &cache07_service, "Get", get07, 1), RPC_OK);
    inject_server_free(&srv);
}
END_TEST

START_TEST(key_rules)
{
    const char *why;
    ck_assert_int_eq(cache_key_kind("a/s/o", &why), CACHE_KEY_FULL);
    ck_assert_int_eq(cache_key_kind("a/s", &why), CACHE_KEY_PREFIX);
    ck_assert_int_eq(cache_key_kind("a/shared", &why), CACHE_KEY_PREFIX);
    ck_assert_int_eq(cache_key_kind("a/*", &why), CACHE_KEY_ALL);
    static const char *bad[] = { "", "a", "a/", "/s", "a//o", "a/s/o/x", "a/*/o", "*/s",
                                 "a/s*", "a/../o", "a/s/..", "a/s/x..y", "a\\b/s", "a/s/.",
                                 "a/s/o\n" };
    for (size_t i = 0; i < FL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(cache_key_kind(bad[i], &why) == 0, "%s", bad[i]);
        ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(endpoints)
{
    fl_cache_endpoint ep;
    ck_assert_int_eq(fl_cache_endpoint_parse(&ep, "grpc://h"), FLAME_OK);
    ck_assert_str_eq(ep.target, "h:9090");
    ck_assert(!ep.tls);
    fl_cache_endpoint_clear(&ep);
    ck_assert_int_eq(fl_cache_endpoint_parse(&ep, "grpcs://10.0.0.1:1234/app/pkg/x.tgz"), FLAME_OK);
    ck_assert_str_eq(ep.target, "10.0.0.1:1234");
    ck_assert_str_eq(ep.path, "app/pkg/x.tgz");
    ck_assert(ep.tls);
    fl_cache_endpoint_clear(&ep);
    ck_assert_int_eq(fl_cache_endpoint_parse(&ep, "grpc+tls://[::1]:5"), FLAME_OK);
    ck_assert_str_eq(ep.target, "[::1]:5");
    fl_cache_endpoint_clear(&ep);
    ck_assert_int_eq(fl_cache_endpoint_parse(&ep, "ftp://h:1"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(fl_cache_endpoint_parse(&ep, "grpc://h:x"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(fl_cache_endpoint_parse(&ep, "grpc://:1"), FLAME_ERR_INVALID_ARGUMENT);
}
END_TEST

static cache_payload opaque(const char *s)
{
    cache_payload p = { 0 };
    p.data = (uint8_t *)fl_strdup(s);
    p.len = strlen(s);
    return p;
}

START_TEST(store_versions_disk_and_eviction)
{
    cache_store *s;
    cache_store_options o = { dir, true, 1 << 20, 2, 1 << 20 };
    ck_assert_int_eq(cache_store_open(&s, &o), FLAME_OK);
    uint64_t v;
    cache_payload p = opaque("base");
    ck_assert_int_eq(cache_store_put(s, "a/s/o", &p, &v), FLAME_OK);
    ck_assert_uint_eq(v, 1);
    p = opaque("d1");
    ck_assert_int_eq(cache_store_patch(s, "a/s/o", &p, &v), FLAME_OK);
    ck_assert_uint_eq(v, 2);
    p = opaque("x");
    ck_assert_int_eq(cache_store_patch(s, "a/s/missing", &p, &v), FLAME_ERR_NOT_FOUND);
    ck_assert_str_eq(flame_error_last(), "object a/s/missing not found for patch");
    /* three objects, at most two loaded: the least recent is evicted */
    p = opaque("two");
    ck_assert_int_eq(cache_store_put(s, "a/s/two", &p, &v), FLAME_OK);
    p = opaque("three");
    ck_assert_int_eq(cache_store_put(s, "a/t/three", &p, &v), FLAME_OK);
    ck_assert_uint_eq(cache_store_loaded(s), 2);
    cache_obj *obj = cache_store_get(s, "a/s/o"); /* from disk */
    ck_assert_ptr_nonnull(obj);
    ck_assert_uint_eq(obj->version, 2);
    ck_assert_uint_eq(obj->n_deltas, 1);
    ck_assert_uint_eq(obj->base.len, 4);
    ck_assert(memcmp(obj->deltas[0].data, "d1", 2) == 0);
    /* a PUT drops the deltas, the version goes on */
    p = opaque("new");
    ck_assert_int_eq(cache_store_put(s, "a/s/o", &p, &v), FLAME_OK);
    ck_assert_uint_eq(v, 3);
    cache_store_close(s);

    /* reopen: everything is loaded back */
    ck_assert_int_eq(cache_store_open(&s, &o), FLAME_OK);
    obj = cache_store_get(s, "a/s/o");
    ck_assert_ptr_nonnull(obj);
    ck_assert_uint_eq(obj->version, 3);
    ck_assert_uint_eq(obj->n_deltas, 0);
    ck_assert_int_eq(cache_store_delete(s, "a/s"), FLAME_OK);
    ck_assert_ptr_null(cache_store_get(s, "a/s/o"));
    ck_assert_int_eq(flame_error_last_code(), FLAME_ERR_NOT_FOUND);
    ck_assert_ptr_null(cache_store_get(s, "a/s/two"));
    ck_assert_ptr_nonnull(cache_store_get(s, "a/t/three"));
    ck_assert_int_eq(cache_store_delete(s, "a/*"), FLAME_OK);
    ck_assert_ptr_null(cache_store_get(s, "a/t/three"));
    ck_assert_int_eq(cache_store_delete(s, "a/../x"), FLAME_ERR_INVALID_ARGUMENT);
    cache_store_close(s);
}
END_TEST

START_TEST(server_and_client)
{
    flame_cache_server_options so = FLAME_CACHE_SERVER_OPTIONS_INIT;
    so.endpoint = "grpc://127.0.0.1:0";
    so.storage = dir;
    flame_cache_server *srv;
    ck_assert_int_eq(flame_cache_server_start(&srv, &so), FLAME_OK);
    char ep[64];
    snprintf(ep, sizeof ep, "grpc://127.0.0.1:%d", flame_cache_server_port(srv));
    flame_cache *c;
    ck_assert_int_eq(flame_cache_connect(&c, ep, NULL), FLAME_OK);
    flame_cache_ref ref, ref2;
    ck_assert_int_eq(flame_cache_put(c, "app/ssn", "hello", 5, &ref), FLAME_OK);
    ck_assert_int_eq(ref.version, 1);
    ck_assert_str_eq(ref.endpoint, flame_cache_server_uri(srv));
    ck_assert_uint_eq(strlen(ref.key), strlen("app/ssn/") + 36);
    ck_assert_int_eq(flame_cache_patch(c, ref.key, " world", 6, &ref2), FLAME_OK);
    ck_assert_int_eq(ref2.version, 2);
    flame_cache_ref_clear(&ref2);

    flame_cache_object o;
    ck_assert_int_eq(flame_cache_fetch(c, ref.key, 0, &o), FLAME_OK);
    ck_assert(o.has_base);
    ck_assert_uint_eq(o.version, 2);
    ck_assert_uint_eq(o.n_patches, 1);
    flame_cache_object_clear(&o);
    ck_assert_int_eq(flame_cache_fetch(c, ref.key, 1, &o), FLAME_OK);
    ck_assert(!o.has_base);
    ck_assert_uint_eq(o.n_patches, 1);
    ck_assert_uint_eq(o.patches[0].version, 2);
    flame_cache_object_clear(&o);
    ck_assert_int_eq(flame_cache_fetch(c, ref.key, 2, &o), FLAME_OK);
    ck_assert(o.not_modified);
    flame_cache_object_clear(&o);

    void *data;
    size_t len;
    char url[256];
    snprintf(url, sizeof url, "%s/%s", ep, ref.key);
    ck_assert_int_eq(flame_cache_get(url, NULL, NULL, &data, &len), FLAME_OK);
    ck_assert_uint_eq(len, 11);
    ck_assert(memcmp(data, "hello world", 11) == 0);
    free(data);

    /* the BSON ObjectRef round trip */
    void *bson;
    ck_assert_int_eq(flame_cache_ref_encode(&ref, &bson, &len), FLAME_OK);
    ck_assert_int_eq(flame_cache_ref_decode(&ref2, bson, len), FLAME_OK);
    ck_assert_str_eq(ref2.key, ref.key);
    ck_assert_int_eq(ref2.version, 1);
    ck_assert_int_eq(flame_cache_ref_decode(&ref2, "garbage!", 8), FLAME_ERR_INVALID_ARGUMENT);
    free(bson);
    flame_cache_ref_clear(&ref2);

    ck_assert_int_eq(flame_cache_patch(c, "app/ssn/none", "x", 1, &ref2), FLAME_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "object app/ssn/none not found for patch"));
    ck_assert_int_eq(flame_cache_put(c, "app/../x", "x", 1, &ref2), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(flame_cache_delete(c, "app/*"), FLAME_OK);
    ck_assert_int_eq(flame_cache_fetch(c, ref.key, 0, &o), FLAME_ERR_NOT_FOUND);
    flame_cache_ref_clear(&ref);
    flame_cache_close(c);
    flame_cache_server_stop(srv);
}
END_TEST

static char certs[128];

/* grpcs: the C client's downloader with the CA, and refused without it */
START_TEST(tls_get)
{
    char crt[256], key[256], ca[256], other[256];
    snprintf(crt, sizeof crt, "%s/server.crt", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    snprintf(other, sizeof other, "%s/other-ca.crt", certs);
    flame_cache_server_options so = FLAME_CACHE_SERVER_OPTIONS_INIT;
    so.endpoint = "grpcs://127.0.0.1:0";
    so.tls_cert_file = crt;
    so.tls_key_file = key;
    flame_cache_server *srv;
    ck_assert_int_eq(flame_cache_server_start(&srv, &so), FLAME_OK);
    ck_assert_ptr_nonnull(strstr(flame_cache_server_uri(srv), "grpc+tls://"));
    char ep[64], url[128];
    snprintf(ep, sizeof ep, "grpcs://127.0.0.1:%d", flame_cache_server_port(srv));
    flame_cache *c;
    flame_cache_options co = FLAME_CACHE_OPTIONS_INIT;
    co.ca_file = ca;
    ck_assert_int_eq(flame_cache_connect(&c, ep, &co), FLAME_OK);
    flame_cache_ref ref;
    ck_assert_int_eq(flame_cache_put(c, "app/pkg/x.tgz", "tls", 3, &ref), FLAME_OK);
    flame_cache_ref_clear(&ref);
    flame_cache_close(c);
    snprintf(url, sizeof url, "%s/app/pkg/x.tgz", ep);
    void *data;
    size_t len;
    ck_assert_int_eq(flame_cache_get(url, NULL, ca, &data, &len), FLAME_OK);
    ck_assert_uint_eq(len, 3);
    free(data);
    ck_assert_int_ne(flame_cache_get(url, NULL, other, &data, &len), FLAME_OK);
    /* a grpcs endpoint without a certificate does not start */
    so.tls_cert_file = NULL;
    flame_cache_server *bad = NULL;
    ck_assert_int_eq(flame_cache_server_start(&bad, &so), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "cache.tls"));
    flame_cache_server_stop(srv);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, opaque_codec_round_trip);
    tcase_add_test(tc, reply_schema_and_rows);
    tcase_add_test(tc, schema_version_rewrite);
    tcase_add_test(tc, garbage_is_an_error);
    tcase_add_test(tc, fuzz_findings);
    tcase_add_test(tc, server_fuzz_findings);
    tcase_add_test(tc, key_rules);
    tcase_add_test(tc, endpoints);
    tcase_add_test(tc, store_versions_disk_and_eviction);
    tcase_add_test(tc, server_and_client);
    suite_add_tcase(s, tc);
    const char *script = getenv("FLAME_MAKE_CERTS");
    snprintf(certs, sizeof certs, "/tmp/flame-test-cache-certs-%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s'", script ? script : "tests/tls/make_certs.sh", certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make the test certificates: %s\n", cmd);
        return 1;
    }
    TCase *tt = tcase_create("tls");
    tcase_set_timeout(tt, 60);
    tcase_add_checked_fixture(tt, setup, teardown);
    tcase_add_test(tt, tls_get);
    suite_add_tcase(s, tt);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
    if (system(cmd) != 0)
        failed++;
    return failed ? 1 : 0;
}
