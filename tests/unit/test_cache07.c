/* Flame 0.7's cache protocol (flame.v1.ObjectCacheService, cache/service07.c)
 * with our rpc client against a cache server on a free port: Put/Patch
 * streams, Get's parts and chunks, GetMetadata, List, Delete, the stream
 * errors, and the same object through the Flight client of flame/cache.h. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache07.pb-c.h"
#include "flame/cache.h"
#include "rpc/rpc.h"
#include "util/util.h"

#define MiB (1u << 20)

static char dir[128];
static flame_cache_server *srv;
static rpc_channel *ch;
static char target[64];

static const char *path(const char *method)
{
    return rpc_path(&flame__v1__object_cache_service__descriptor, method);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/flame-test-cache07-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    flame_cache_server_options so = FLAME_CACHE_SERVER_OPTIONS_INIT;
    so.endpoint = "grpc://127.0.0.1:0";
    so.storage = dir;
    so.max_object_size = 8 * MiB;
    ck_assert_int_eq(flame_cache_server_start(&srv, &so), FLAME_OK);
    snprintf(target, sizeof target, "127.0.0.1:%d", flame_cache_server_port(srv));
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    co.max_message = 16 * MiB;
    ck_assert_int_eq(rpc_channel_new(&ch, target, &co), FLAME_OK);
}

static void teardown(void)
{
    rpc_channel_free(ch);
    flame_cache_server_stop(srv);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* One write stream: `headers` copies of the header (0: none), then data in
 * chunks of 1 MiB. Returns the status; *md the reply (free it) on success. */
static flame_status write07(const char *method, const char *key, const char *type,
                            const void *data, size_t len, int headers,
                            Flame__V1__CacheObjectMetadata **md)
{
    rpc_stream *st;
    ck_assert_int_eq(rpc_client_stream_open(&st, ch, path(method), 30000), FLAME_OK);
    Flame__V1__CacheWriteHeader h = FLAME__V1__CACHE_WRITE_HEADER__INIT;
    h.key = (char *)key;
    h.data_type = (char *)type;
    Flame__V1__CacheWriteRequest hr = FLAME__V1__CACHE_WRITE_REQUEST__INIT;
    hr.payload_case = FLAME__V1__CACHE_WRITE_REQUEST__PAYLOAD_HEADER;
    hr.header = &h;
    for (int i = 0; i < headers; i++)
        rpc_client_stream_send(st, &hr.base);
    for (size_t off = 0; off < len; off += MiB) {
        Flame__V1__CacheWriteRequest c = FLAME__V1__CACHE_WRITE_REQUEST__INIT;
        c.payload_case = FLAME__V1__CACHE_WRITE_REQUEST__PAYLOAD_DATA;
        c.data = (ProtobufCBinaryData){ len - off < MiB ? len - off : MiB,
                                        (uint8_t *)data + off };
        if (rpc_client_stream_send(st, &c.base))
            break; /* the server answered early */
    }
    ProtobufCMessage *resp = NULL;
    flame_status s = rpc_client_stream_finish(st, &flame__v1__cache_object_metadata__descriptor,
                                              &resp);
    rpc_stream_free(st);
    *md = (Flame__V1__CacheObjectMetadata *)resp;
    return s;
}

/* A Get's parts concatenated into out (each part preceded by "|<version>:"). */
static flame_status get07(const char *key, uint64_t version, uint64_t *hv, char **type,
                          fl_buf *out, size_t *n_chunks)
{
    Flame__V1__CacheGetRequest r = FLAME__V1__CACHE_GET_REQUEST__INIT;
    r.key = (char *)key;
    r.version = version;
    rpc_stream *st;
    flame_status s = rpc_stream_open(&st, ch, path("Get"), &r.base, 30000);
    if (s)
        return s;
    ProtobufCMessage *m;
    uint64_t last = 0;
    *n_chunks = 0;
    bool first = true;
    while ((s = rpc_stream_next(st, &flame__v1__cache_get_response__descriptor, &m)) == FLAME_OK &&
           m) {
        Flame__V1__CacheGetResponse *g = (void *)m;
        if (first) {
            ck_assert_int_eq(g->payload_case, FLAME__V1__CACHE_GET_RESPONSE__PAYLOAD_HEADER);
            *hv = g->header->version;
            *type = fl_strdup(g->header->data_type);
            first = false;
        } else {
            ck_assert_int_eq(g->payload_case, FLAME__V1__CACHE_GET_RESPONSE__PAYLOAD_CHUNK);
            ck_assert_uint_le(g->chunk->data.len, MiB);
            if (g->chunk->version != last)
                fl_buf_printf(out, "|%llu:", (unsigned long long)g->chunk->version);
            last = g->chunk->version;
            fl_buf_add(out, g->chunk->data.data, g->chunk->data.len);
            (*n_chunks)++;
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rpc_stream_free(st);
    return s;
}

START_TEST(put_patch_get)
{
    Flame__V1__CacheObjectMetadata *md;
    ck_assert_int_eq(write07("Put", "app/ssn", "t1", "base", 4, 1, &md), FLAME_OK);
    ck_assert_uint_eq(md->version, 1);
    ck_assert_uint_eq(md->size, 4);
    ck_assert_str_eq(md->data_type, "t1");
    ck_assert_str_eq(md->endpoint, flame_cache_server_uri(srv));
    ck_assert_uint_eq(strlen(md->key), strlen("app/ssn/") + 36);
    char *key = fl_strdup(md->key);
    protobuf_c_message_free_unpacked(&md->base, NULL);

    size_t big = 2 * MiB + 5;
    char *data = fl_malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    ck_assert_int_eq(write07("Patch", key, "t1", data, big, 1, &md), FLAME_OK);
    ck_assert_uint_eq(md->version, 2);
    ck_assert_uint_eq(md->size, 4 + big);
    protobuf_c_message_free_unpacked(&md->base, NULL);

    uint64_t hv;
    char *type;
    fl_buf b = { 0 };
    size_t n;
    ck_assert_int_eq(get07(key, 0, &hv, &type, &b, &n), FLAME_OK);
    ck_assert_uint_eq(hv, 2);
    ck_assert_str_eq(type, "t1");
    ck_assert_uint_eq(n, 1 + 3); /* "base", then the patch in 3 chunks */
    ck_assert_uint_eq(b.len, strlen("|1:base|2:") + big);
    ck_assert(memcmp(b.data, "|1:base|2:", 10) == 0);
    ck_assert(memcmp(b.data + 10, data, big) == 0);
    free(type);
    fl_buf_free(&b);
    ck_assert_int_eq(get07(key, 2, &hv, &type, &b, &n), FLAME_OK);
    ck_assert_uint_eq(n, 0);
    free(type);
    ck_assert_int_eq(get07(key, 3, &hv, &type, &b, &n), FLAME_ERR_INVALID_ARGUMENT);

    /* the Flight client of flame/cache.h reads the same object */
    char ep[80];
    snprintf(ep, sizeof ep, "grpc://%s", target);
    void *all;
    size_t len;
    ck_assert_int_eq(flame_cache_get(ep, key, NULL, &all, &len), FLAME_OK);
    ck_assert_uint_eq(len, 4 + big);
    ck_assert(memcmp(all, "base", 4) == 0 && memcmp((char *)all + 4, data, big) == 0);
    free(all);
    /* and its patch is the third part */
    flame_cache *c;
    ck_assert_int_eq(flame_cache_connect(&c, ep, NULL), FLAME_OK);
    flame_cache_ref ref;
    ck_assert_int_eq(flame_cache_patch(c, key, "!", 1, &ref), FLAME_OK);
    flame_cache_ref_clear(&ref);
    ck_assert_int_eq(get07(key, 2, &hv, &type, &b, &n), FLAME_OK);
    ck_assert_uint_eq(hv, 3);
    ck_assert_uint_eq(b.len, 4);
    ck_assert(memcmp(b.data, "|3:!", 4) == 0);
    free(type);
    fl_buf_free(&b);
    flame_cache_close(c);
    free(data);
    free(key);
}
END_TEST

START_TEST(metadata_list_delete)
{
    Flame__V1__CacheObjectMetadata *md;
    const char *keys[] = { "app/s1/a", "app/s1/b", "app/s2/c", "other/s/d" };
    for (size_t i = 0; i < FL_ARRAY_LEN(keys); i++) {
        ck_assert_int_eq(write07("Put", keys[i], "raw", "xyz", 3, 1, &md), FLAME_OK);
        protobuf_c_message_free_unpacked(&md->base, NULL);
    }
    Flame__V1__CacheGetMetadataRequest gm = FLAME__V1__CACHE_GET_METADATA_REQUEST__INIT;
    gm.key = "app/s2/c";
    ProtobufCMessage *resp;
    ck_assert_int_eq(rpc_unary(ch, path("GetMetadata"), &gm.base,
                               &flame__v1__cache_object_metadata__descriptor, &resp, 30000),
                     FLAME_OK);
    md = (void *)resp;
    ck_assert_str_eq(md->key, "app/s2/c");
    ck_assert_uint_eq(md->size, 3);
    ck_assert_str_eq(md->data_type, "raw");
    ck_assert_int_gt(md->creation_time, 0);
    protobuf_c_message_free_unpacked(resp, NULL);

    Flame__V1__CacheDeleteRequest d = FLAME__V1__CACHE_DELETE_REQUEST__INIT;
    d.key = "app/*";
    ck_assert_int_eq(rpc_unary(ch, path("Delete"), &d.base,
                               &flame__v1__cache_delete_response__descriptor, &resp, 30000),
                     FLAME_OK);
    protobuf_c_message_free_unpacked(resp, NULL);
    ck_assert_int_eq(rpc_unary(ch, path("GetMetadata"), &gm.base,
                               &flame__v1__cache_object_metadata__descriptor, &resp, 30000),
                     FLAME_ERR_NOT_FOUND);

    Flame__V1__CacheListRequest l = FLAME__V1__CACHE_LIST_REQUEST__INIT;
    rpc_stream *st;
    ck_assert_int_eq(rpc_stream_open(&st, ch, path("List"), &l.base, 30000), FLAME_OK);
    size_t n = 0;
    ProtobufCMessage *m;
    while (rpc_stream_next(st, &flame__v1__cache_object_metadata__descriptor, &m) == FLAME_OK &&
           m) {
        ck_assert_str_eq(((Flame__V1__CacheObjectMetadata *)m)->key, "other/s/d");
        protobuf_c_message_free_unpacked(m, NULL);
        n++;
    }
    rpc_stream_free(st);
    ck_assert_uint_eq(n, 1);
    d.key = "../x";
    ck_assert_int_eq(rpc_unary(ch, path("Delete"), &d.base,
                               &flame__v1__cache_delete_response__descriptor, &resp, 30000),
                     FLAME_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(stream_errors)
{
    Flame__V1__CacheObjectMetadata *md = NULL;
    /* data before the header, two headers, no header, a bad key, too big */
    ck_assert_int_eq(write07("Put", "a/b/c", "raw", "x", 1, 0, &md), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(write07("Put", "a/b/c", "raw", NULL, 0, 2, &md), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(write07("Put", "a/b/c", "raw", NULL, 0, 0, &md), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(write07("Put", "a/../c", "raw", "x", 1, 1, &md), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(write07("Patch", "a/b", "raw", "x", 1, 1, &md), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(write07("Patch", "a/b/none", "raw", "x", 1, 1, &md), FLAME_ERR_NOT_FOUND);
    size_t big = 9 * MiB;
    char *data = fl_calloc(1, big);
    ck_assert_int_eq(write07("Put", "a/b/c", "raw", data, big, 1, &md),
                     FLAME_ERR_RESOURCE_EXHAUSTED);
    free(data);
    ck_assert_ptr_null(md);
    /* the server is still fine */
    ck_assert_int_eq(write07("Put", "a/b/c", "raw", NULL, 0, 1, &md), FLAME_OK);
    ck_assert_uint_eq(md->size, 0);
    protobuf_c_message_free_unpacked(&md->base, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache07");
    TCase *tc = tcase_create("cache07");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, put_patch_get);
    tcase_add_test(tc, metadata_list_delete);
    tcase_add_test(tc, stream_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
