/* Unit tests of libflame/wire: hand-encoded fields decode with protobuf-c's
 * own unpack of the real flame.v1 messages, byte for byte as protobuf-c
 * packs them. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "backend.pb-c.h"
#include "wire/wire.h"

/* A Task whose input is n bytes of a pattern, packed by protobuf-c. */
static uint8_t *packed_task(size_t n, size_t *len, uint8_t **input)
{
    uint8_t *in = fl_malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(i * 7 + 3);
    Flame__V1__TaskSpec spec = FLAME__V1__TASK_SPEC__INIT;
    spec.session_id = "s1";
    spec._input_case = FLAME__V1__TASK_SPEC___INPUT_INPUT;
    spec.input.data = in;
    spec.input.len = n;
    Flame__V1__Task t = FLAME__V1__TASK__INIT;
    t.spec = &spec;
    *len = flame__v1__task__get_packed_size(&t);
    uint8_t *buf = fl_malloc(*len);
    flame__v1__task__pack(&t, buf);
    *input = in;
    return buf;
}

/* LaunchTaskResponse{task} by hand, for a task of input size n: lengths
 * that take one, two and three varint bytes. */
static void launch_response_roundtrip(size_t n)
{
    size_t tlen;
    uint8_t *input;
    uint8_t *task = packed_task(n, &tlen, &input);
    fl_buf b = { 0 };
    fl_wire_put_bytes(&b, 1, task, tlen);
    Flame__V1__LaunchTaskResponse *r =
        flame__v1__launch_task_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->_task_case, FLAME__V1__LAUNCH_TASK_RESPONSE___TASK_TASK);
    ck_assert_str_eq(r->task->spec->session_id, "s1");
    ck_assert_uint_eq(r->task->spec->input.len, n);
    ck_assert(memcmp(r->task->spec->input.data, input, n) == 0);
    /* the same bytes as protobuf-c makes of the message */
    size_t plen = flame__v1__launch_task_response__get_packed_size(r);
    ck_assert_uint_eq(plen, b.len);
    uint8_t *p = fl_malloc(plen);
    flame__v1__launch_task_response__pack(r, p);
    ck_assert(memcmp(p, b.data, plen) == 0);
    free(p);
    flame__v1__launch_task_response__free_unpacked(r, NULL);
    fl_buf_free(&b);
    free(task);
    free(input);
}

START_TEST(bytes_lengths)
{
    launch_response_roundtrip(0);
    launch_response_roundtrip(100);   /* length < 128: one byte */
    launch_response_roundtrip(200);   /* > 127: two bytes */
    launch_response_roundtrip(20000); /* > 16383: three bytes */
}
END_TEST

START_TEST(empty_payload)
{
    /* an empty sub-message is present, not absent */
    fl_buf b = { 0 };
    fl_wire_put_bytes(&b, 1, NULL, 0);
    ck_assert_uint_eq(b.len, 2);
    Flame__V1__LaunchTaskResponse *r =
        flame__v1__launch_task_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->_task_case, FLAME__V1__LAUNCH_TASK_RESPONSE___TASK_TASK);
    ck_assert_ptr_null(r->task->spec);
    flame__v1__launch_task_response__free_unpacked(r, NULL);
    fl_buf_free(&b);
}
END_TEST

START_TEST(repeated_and_bool)
{
    /* ExecutorWork{tasks: 3, unbind: true}, as the session manager streams it */
    fl_buf b = { 0 };
    uint8_t *tasks[3], *inputs[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        tasks[i] = packed_task((size_t)(i * 150), &lens[i], &inputs[i]);
        fl_wire_put_bytes(&b, 1, tasks[i], lens[i]);
    }
    fl_wire_put_bool(&b, 2, true);
    Flame__V1__ExecutorWork *w =
        flame__v1__executor_work__unpack(NULL, b.len, (const uint8_t *)b.data);
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_eq(w->n_tasks, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(w->tasks[i]->spec->input.len, (size_t)(i * 150));
        ck_assert(memcmp(w->tasks[i]->spec->input.data, inputs[i], (size_t)(i * 150)) == 0);
    }
    ck_assert(w->unbind);
    size_t plen = flame__v1__executor_work__get_packed_size(w);
    ck_assert_uint_eq(plen, b.len);
    uint8_t *p = fl_malloc(plen);
    flame__v1__executor_work__pack(w, p);
    ck_assert(memcmp(p, b.data, plen) == 0);
    free(p);
    flame__v1__executor_work__free_unpacked(w, NULL);
    /* the bare unbind the scheduler sends: {0x10, 0x01} */
    fl_buf_free(&b);
    fl_wire_put_bool(&b, 2, true);
    ck_assert_uint_eq(b.len, 2);
    ck_assert_int_eq((uint8_t)b.data[0], 0x10);
    ck_assert_int_eq((uint8_t)b.data[1], 0x01);
    fl_buf_free(&b);
    for (int i = 0; i < 3; i++) {
        free(tasks[i]);
        free(inputs[i]);
    }
}
END_TEST

START_TEST(varints)
{
    /* TaskOutcome's scalar fields, one of them wider than 32 bits */
    fl_buf b = { 0 };
    fl_wire_put_varint(&b, 1, 1ULL << 40);
    fl_wire_put_varint(&b, 2, FLAME__V1__TASK_STATE__Failed);
    fl_wire_put_varint(&b, 5, 1700000000123ULL);
    fl_wire_put_varint(&b, 6, 300);
    Flame__V1__TaskOutcome *o =
        flame__v1__task_outcome__unpack(NULL, b.len, (const uint8_t *)b.data);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(o->task_id, 1ULL << 40);
    ck_assert_int_eq(o->state, FLAME__V1__TASK_STATE__Failed);
    ck_assert_int_eq(o->completion_time, 1700000000123LL);
    ck_assert_int_eq(o->return_code, 300);
    size_t plen = flame__v1__task_outcome__get_packed_size(o);
    ck_assert_uint_eq(plen, b.len);
    uint8_t *p = fl_malloc(plen);
    flame__v1__task_outcome__pack(o, p);
    ck_assert(memcmp(p, b.data, plen) == 0);
    free(p);
    flame__v1__task_outcome__free_unpacked(o, NULL);
    fl_buf_free(&b);
}
END_TEST

START_TEST(high_field_numbers)
{
    /* fields above 15 take a tag of two bytes (above 2047, three);
     * protobuf-c keeps fields it does not know as unknown fields */
    fl_buf b = { 0 };
    fl_wire_put_bytes(&b, 16, "abc", 3);
    fl_wire_put_varint(&b, 2048, 77);
    fl_wire_put_bool(&b, 100000, true);
    Flame__V1__LaunchTaskResponse *r =
        flame__v1__launch_task_response__unpack(NULL, b.len, (const uint8_t *)b.data);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->_task_case, 0);
    ck_assert_uint_eq(r->base.n_unknown_fields, 3);
    const ProtobufCMessageUnknownField *u = r->base.unknown_fields;
    ck_assert_uint_eq(u[0].tag, 16);
    ck_assert_int_eq(u[0].wire_type, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    ck_assert_uint_eq(u[0].len, 4); /* protobuf-c keeps the length prefix */
    ck_assert_int_eq(u[0].data[0], 3);
    ck_assert(memcmp(u[0].data + 1, "abc", 3) == 0);
    ck_assert_uint_eq(u[1].tag, 2048);
    ck_assert_int_eq(u[1].wire_type, PROTOBUF_C_WIRE_TYPE_VARINT);
    ck_assert_uint_eq(u[1].len, 1);
    ck_assert_int_eq(u[1].data[0], 77);
    ck_assert_uint_eq(u[2].tag, 100000);
    ck_assert_int_eq(u[2].wire_type, PROTOBUF_C_WIRE_TYPE_VARINT);
    ck_assert_int_eq(u[2].data[0], 1);
    /* tag bytes: 16 -> 2, 2048 -> 3, 100000 -> 3 */
    ck_assert_uint_eq(b.len, (2 + 1 + 3) + (3 + 1) + (3 + 1));
    flame__v1__launch_task_response__free_unpacked(r, NULL);
    fl_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("encode");
    tcase_add_test(tc, bytes_lengths);
    tcase_add_test(tc, empty_payload);
    tcase_add_test(tc, repeated_and_bool);
    tcase_add_test(tc, varints);
    tcase_add_test(tc, high_field_numbers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
