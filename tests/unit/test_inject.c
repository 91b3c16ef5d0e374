/* rpc/inject.h: calls fed into a server's dispatch in process take the
 * network's path (method lookup, authorization, unpack, handler, replies,
 * cancel), plus the regressions the fuzzers found in that path. One thread:
 * the test is the server's thread (the server never listens). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/inject.h"
#include "util/util.h"

#include "backend.pb-c.h"
#include "types.pb-c.h"

#define RESULT &flame__v1__result__descriptor
static const ProtobufCMethodDescriptor methods_desc[] = {
    { "Bidi", RESULT, RESULT }, { "Unary", RESULT, RESULT },
};
static const unsigned by_name[] = { 0, 1 };
static const ProtobufCServiceDescriptor desc = {
    PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC, "test.Inject", "Inject", "Test__Inject", "test",
    FL_ARRAY_LEN(methods_desc), methods_desc, by_name,
};

static int handled, half_closed, forgotten, flushes;
static rpc_call *parked;

/* What the calls sent, in order: one char per event ('m' message, or the
 * final status code as 'A' + code). */
static char sent[64];

static void sink(void *arg, rpc_call *call, const uint8_t *data, size_t len, bool final, int code,
                 const char *details)
{
    size_t n = strlen(sent);
    if (data && n < sizeof sent - 1)
        sent[n++] = 'm';
    if (final && n < sizeof sent - 1)
        sent[n++] = (char)('A' + code);
}

static void forget(rpc_call *call, void *arg)
{
    forgotten++;
    parked = NULL;
}

static void unary(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    handled++;
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    r.return_code = ((const Flame__V1__Result *)req)->return_code + 1;
    rpc_call_reply(call, &r.base);
}

/* Parks the stream at its first message and echoes every message. */
static void bidi(rpc_call *call, const ProtobufCMessage *req, void *ctx)
{
    if (!req) {
        half_closed++;
        rpc_call_on_cancel(call, NULL, NULL);
        parked = NULL;
        rpc_call_finish(call, RPC_OK, "done");
        return;
    }
    handled++;
    if (!parked) {
        parked = call;
        rpc_call_on_cancel(call, forget, NULL);
    }
    rpc_call_send(call, req);
}

static int deny_unary(rpc_call *call, const ProtobufCMessage *req, char *msg, size_t size,
                      void *ctx)
{
    if (strstr(rpc_call_method(call), "Unary"))
        return RPC_PERMISSION_DENIED;
    return RPC_OK;
}

static void flush(void *ctx)
{
    flushes++;
}

static rpc_server *server(rpc_authorize_fn authorize)
{
    static const rpc_method table[] = {
        { "Bidi", RPC_KIND_BIDI, bidi },
        { "Unary", RPC_KIND_UNARY, unary },
    };
    rpc_service svc = { &desc, table, FL_ARRAY_LEN(table) };
    rpc_server_options o = RPC_SERVER_OPTIONS_INIT;
    o.authorize = authorize;
    o.hooks.flush = flush;
    rpc_server *srv = rpc_server_new(&svc, 1, NULL, &o);
    rpc_inject_set_sink(srv, sink, NULL);
    handled = half_closed = forgotten = flushes = 0;
    parked = NULL;
    memset(sent, 0, sizeof sent);
    return srv;
}

static size_t packed(int rc, uint8_t *buf)
{
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    r.return_code = rc;
    return flame__v1__result__pack(&r, buf);
}

START_TEST(unary_goes_through_handler)
{
    rpc_server *srv = server(NULL);
    uint8_t buf[16];
    rpc_call *c = rpc_inject_open(srv, rpc_path(&desc, "Unary"));
    rpc_inject_message(c, buf, packed(4, buf));
    rpc_inject_message(c, buf, packed(5, buf)); /* a unary call has one message */
    rpc_inject_end(c);
    ck_assert_int_eq(handled, 1);
    ck_assert_str_eq(sent, "mA");
    rpc_inject_flush(srv);
    ck_assert_int_eq(flushes, 1);
    rpc_server_free(srv);
}
END_TEST

START_TEST(unknown_malformed_and_denied)
{
    rpc_server *srv = server(deny_unary);
    rpc_call *c = rpc_inject_open(srv, "/test.Inject/Nope");
    rpc_inject_message(c, (const uint8_t *)"", 0);
    rpc_inject_end(c);
    c = rpc_inject_open(srv, rpc_path(&desc, "Unary"));
    rpc_inject_message(c, (const uint8_t *)"", 0);
    rpc_inject_end(c);
    c = rpc_inject_open(srv, rpc_path(&desc, "Bidi"));
    rpc_inject_message(c, (const uint8_t *)"\xff", 1);
    rpc_inject_end(c);
    ck_assert_int_eq(handled, 0);
    char want[] = { 'A' + RPC_UNIMPLEMENTED, 'A' + RPC_PERMISSION_DENIED,
                    'A' + RPC_INVALID_ARGUMENT, 0 };
    ck_assert_str_eq(sent, want);
    rpc_server_free(srv);
}
END_TEST

START_TEST(stream_half_close_and_cancel)
{
    rpc_server *srv = server(NULL);
    uint8_t buf[16];
    size_t n = packed(1, buf);
    rpc_call *c = rpc_inject_open(srv, rpc_path(&desc, "Bidi"));
    rpc_inject_message(c, buf, n);
    rpc_inject_message(c, buf, n);
    rpc_inject_message(c, NULL, 0);
    rpc_inject_end(c);
    ck_assert_int_eq(handled, 2);
    ck_assert_int_eq(half_closed, 1);
    ck_assert_str_eq(sent, "mmA");
    /* the client goes away while the stream is parked */
    c = rpc_inject_open(srv, rpc_path(&desc, "Bidi"));
    rpc_inject_message(c, buf, n);
    rpc_inject_end(c);
    ck_assert_int_eq(forgotten, 1);
    rpc_server_free(srv);
}
END_TEST

/* fuzz_sm: a malformed second message on a parked RunSession ended the call
 * without telling its owner, who kept (and later used) the freed call. */
START_TEST(malformed_message_on_parked_stream_tells_owner)
{
    rpc_server *srv = server(NULL);
    uint8_t buf[16];
    rpc_call *c = rpc_inject_open(srv, rpc_path(&desc, "Bidi"));
    rpc_inject_message(c, buf, packed(1, buf));
    ck_assert_ptr_eq(parked, c);
    rpc_inject_message(c, (const uint8_t *)"\x0c", 1);
    ck_assert_int_eq(forgotten, 1);
    ck_assert_ptr_null(parked);
    char want[] = { 'm', 'A' + RPC_INVALID_ARGUMENT, 0 };
    ck_assert_str_eq(sent, want);
    rpc_inject_end(c);
    ck_assert_int_eq(forgotten, 1);
    rpc_server_free(srv);
}
END_TEST

/* fuzz_wire: protobuf-c reads field number 0 written as a non-canonical
 * varint, keeps it as an unknown field and writes it back as bytes it then
 * refuses; rpc/ refuses it at once, at any depth. */
START_TEST(field_zero_is_malformed)
{
    ck_assert_ptr_null(rpc_unpack(RESULT, 3, (const uint8_t *)"\x80\x00\x00"));
    /* RegisterNodeRequest{node{metadata{name}, field 0}}: the 22 bytes */
    static const uint8_t node[] = "\x0a\x14\x0a\x0f\x12\x0dnode-12345678\x80\x00\x01";
    ck_assert_uint_eq(sizeof node - 1, 22);
    ck_assert_ptr_null(rpc_unpack(&flame__v1__register_node_request__descriptor, 22, node));
    ProtobufCMessage *m = rpc_unpack(RESULT, 2, (const uint8_t *)"\x08\x05");
    ck_assert_ptr_nonnull(m);
    protobuf_c_message_free_unpacked(m, NULL);
}
END_TEST

int main(void)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    Suite *s = suite_create("inject");
    TCase *tc = tcase_create("inject");
    tcase_add_test(tc, unary_goes_through_handler);
    tcase_add_test(tc, unknown_malformed_and_denied);
    tcase_add_test(tc, stream_half_close_and_cancel);
    tcase_add_test(tc, malformed_message_on_parked_stream_tells_owner);
    tcase_add_test(tc, field_zero_is_malformed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
