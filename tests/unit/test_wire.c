/* Unit tests of libflame/wire: hand-encoded fields decode with protobuf-c's
 * own unpack of the real flame.v1 messages, byte for byte as protobuf-c
 * packs them; model <-> flame.v1 conversions keep every field. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "backend.pb-c.h"
#include "shim.pb-c.h"
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

/* b holds the bytes protobuf-c makes of m: packing what it unpacked from
 * them gives them back. */
static void assert_repacks(const ProtobufCMessage *m, const fl_buf *b)
{
    size_t plen = protobuf_c_message_get_packed_size(m);
    ck_assert_uint_eq(plen, b->len);
    uint8_t *p = fl_malloc(plen ? plen : 1);
    protobuf_c_message_pack(m, p);
    ck_assert(plen == 0 || memcmp(p, b->data, plen) == 0);
    free(p);
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
    ck_assert(n == 0 || memcmp(r->task->spec->input.data, input, n) == 0);
    assert_repacks(&r->base, &b);
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
        const ProtobufCBinaryData *in = &w->tasks[i]->spec->input;
        ck_assert_uint_eq(in->len, (size_t)(i * 150));
        ck_assert(i == 0 || memcmp(in->data, inputs[i], in->len) == 0);
    }
    ck_assert(w->unbind);
    assert_repacks(&w->base, &b);
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
    assert_repacks(&o->base, &b);
    flame__v1__task_outcome__free_unpacked(o, NULL);
    fl_buf_free(&b);
    /* a negative int32: sign-extended to ten bytes */
    fl_wire_put_varint(&b, 6, (uint64_t)(int64_t)-2);
    ck_assert_uint_eq(b.len, 1 + 10);
    o = flame__v1__task_outcome__unpack(NULL, b.len, (const uint8_t *)b.data);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->return_code, -2);
    assert_repacks(&o->base, &b);
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

/* ---- pack/unpack ------------------------------------------------------- */

/* Our shims: Stdio/Rest and their ApplicationSpec fields survive the blob;
 * a stdio_mode other than frame or line is refused. */
START_TEST(app_spec_shims)
{
    Flame__V1__ApplicationSpec m = FLAME__V1__APPLICATION_SPEC__INIT;
    m.shim = FLAME__V1__SHIM__Stdio;
    m.stdio_mode = "line";
    m.rest_url = "http://h:1";
    fl_app *a = fl_wire_app_new("app", &m, 5);
    fl_app *b = fl_wire_app_unpack("app", a->blob, a->blob_len, 5);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->spec->shim, FLAME_SHIM_STDIO);
    ck_assert_str_eq(b->spec->stdio_mode, "line");
    ck_assert_int_eq(fl_app_validate("app", b->spec), FLAME_OK);
    Flame__V1__ApplicationSpec *back = flame__v1__application_spec__unpack(NULL, b->blob_len, b->blob);
    ck_assert_str_eq(back->rest_url, "http://h:1");
    flame__v1__application_spec__free_unpacked(back, NULL);
    fl_app_free(a);
    fl_app_free(b);
    m.stdio_mode = "lines";
    a = fl_wire_app_new("app", &m, 5);
    ck_assert_int_eq(fl_app_validate("app", a->spec), FLAME_ERR_INVALID_ARGUMENT);
    fl_app_free(a);
    m.stdio_mode = "";
    m.shim = 7; /* nobody's */
    a = fl_wire_app_new("app", &m, 5);
    ck_assert_int_eq(fl_app_validate("app", a->spec), FLAME_ERR_INVALID_ARGUMENT);
    fl_app_free(a);
}
END_TEST

START_TEST(app_spec_roundtrip)
{
    Flame__V1__ApplicationSpec m = FLAME__V1__APPLICATION_SPEC__INIT;
    m.shim = FLAME__V1__SHIM__Wasm;
    m._description_case = FLAME__V1__APPLICATION_SPEC___DESCRIPTION_DESCRIPTION;
    m.description = "d";
    char *labels[] = { "a", "b" };
    m.labels = labels;
    m.n_labels = 2;
    m._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    m.command = "/bin/cmd";
    char *args[] = { "-x" };
    m.arguments = args;
    m.n_arguments = 1;
    Flame__V1__Environment env = FLAME__V1__ENVIRONMENT__INIT;
    env.name = "K";
    env.value = "V";
    Flame__V1__Environment *envs[] = { &env };
    m.environments = envs;
    m.n_environments = 1;
    m._working_directory_case = FLAME__V1__APPLICATION_SPEC___WORKING_DIRECTORY_WORKING_DIRECTORY;
    m.working_directory = ""; /* set but empty stays set */
    m._max_instances_case = FLAME__V1__APPLICATION_SPEC___MAX_INSTANCES_MAX_INSTANCES;
    m.max_instances = 0;
    Flame__V1__ApplicationSchema sc = FLAME__V1__APPLICATION_SCHEMA__INIT;
    sc._output_case = FLAME__V1__APPLICATION_SCHEMA___OUTPUT_OUTPUT;
    sc.output = "{}";
    m._schema_case = FLAME__V1__APPLICATION_SPEC___SCHEMA_SCHEMA;
    m.schema = &sc;
    m._url_case = FLAME__V1__APPLICATION_SPEC___URL_URL;
    m.url = "https://u";
    fl_app *a = fl_wire_app_new("app", &m, 5);
    fl_app *b = fl_wire_app_unpack("app", a->blob, a->blob_len, 5);
    ck_assert_ptr_nonnull(b);
    fl_app *both[] = { a, b };
    for (int i = 0; i < 2; i++) {
        const fl_app_spec *s = both[i]->spec;
        ck_assert_int_eq(s->shim, FLAME_SHIM_WASM);
        ck_assert_str_eq(s->description, "d");
        ck_assert_uint_eq(s->n_labels, 2);
        ck_assert_str_eq(s->labels[1], "b");
        ck_assert_str_eq(s->command, "/bin/cmd");
        ck_assert_uint_eq(s->n_arguments, 1);
        ck_assert_str_eq(s->arguments[0], "-x");
        ck_assert_uint_eq(s->n_environments, 1);
        ck_assert_str_eq(s->environments[0].name, "K");
        ck_assert_str_eq(s->environments[0].value, "V");
        ck_assert_str_eq(s->working_directory, "");
        ck_assert(s->has_max_instances && s->max_instances == 0);
        ck_assert(!s->has_delay_release);
        ck_assert_ptr_null(s->schema_input);
        ck_assert_str_eq(s->schema_output, "{}");
        ck_assert_ptr_null(s->schema_common_data);
        ck_assert_str_eq(s->url, "https://u");
        ck_assert_ptr_null(s->image);
        ck_assert_ptr_null(s->installer);
    }
    ck_assert_ptr_null(fl_wire_app_new("app", NULL, 5));
    ck_assert_ptr_null(fl_wire_app_unpack("app", (const uint8_t *)"\xff\xff", 2, 5));
    fl_app_free(a);
    fl_app_free(b);
}
END_TEST

START_TEST(app_pack_matches_protobuf_c)
{
    /* the hand-made Application is what protobuf-c makes of the same one */
    Flame__V1__ApplicationSpec m = FLAME__V1__APPLICATION_SPEC__INIT;
    m._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    m.command = "/bin/cmd";
    fl_app *a = fl_wire_app_new("app", &m, 1234567);
    a->state = FLAME_APPLICATION_DISABLED;
    size_t n;
    uint8_t *got = fl_wire_pack_app(a, &n);
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    md.id = md.name = "app";
    Flame__V1__ApplicationStatus st = FLAME__V1__APPLICATION_STATUS__INIT;
    st.state = FLAME__V1__APPLICATION_STATE__Disabled;
    st.creation_time = 1234567;
    Flame__V1__Application want = FLAME__V1__APPLICATION__INIT;
    want.metadata = &md;
    want.spec = &m;
    want.status = &st;
    size_t wn = flame__v1__application__get_packed_size(&want);
    uint8_t *w = fl_malloc(wn);
    flame__v1__application__pack(&want, w);
    ck_assert_uint_eq(n, wn);
    ck_assert(memcmp(got, w, n) == 0);
    free(w);
    free(got);
    fl_app_free(a);
}
END_TEST

START_TEST(session_spec_view)
{
    Flame__V1__SessionSpec m = FLAME__V1__SESSION_SPEC__INIT;
    m.application = "app";
    m.min_instances = 2;
    m.priority = 9;
    fl_session_spec s;
    fl_wire_session_spec(&s, &m);
    ck_assert_str_eq(s.application, "app");
    ck_assert(!s.has_common_data && !s.has_max_instances && !s.has_resreq);
    ck_assert_uint_eq(s.min_instances, 2);
    ck_assert_uint_eq(s.priority, 9);
    Flame__V1__ResourceRequirement rr = FLAME__V1__RESOURCE_REQUIREMENT__INIT;
    rr.cpu = 3;
    rr.memory = 1 << 20;
    m._resreq_case = FLAME__V1__SESSION_SPEC___RESREQ_RESREQ;
    m.resreq = &rr;
    m._max_instances_case = FLAME__V1__SESSION_SPEC___MAX_INSTANCES_MAX_INSTANCES;
    m.max_instances = 4;
    m._common_data_case = FLAME__V1__SESSION_SPEC___COMMON_DATA_COMMON_DATA;
    m.common_data.data = (uint8_t *)"cd";
    m.common_data.len = 2;
    fl_wire_session_spec(&s, &m);
    ck_assert(s.has_resreq && s.resreq.cpu == 3 && s.resreq.memory == 1 << 20);
    ck_assert(s.has_max_instances && s.max_instances == 4);
    ck_assert(s.has_common_data && s.common_data_len == 2 && memcmp(s.common_data, "cd", 2) == 0);
}
END_TEST

START_TEST(events_roundtrip)
{
    fl_events e = { 0 }, back = { 0 };
    for (int i = 0; i < 6; i++)
        fl_events_add(&e, i, i == 4 ? "four" : NULL, 100 + i);
    size_t n;
    uint8_t *buf = fl_wire_pack_events(&e, &n);
    fl_wire_unpack_events(&back, buf, n);
    ck_assert_uint_eq(back.n, 6);
    for (uint32_t i = 0; i < 6; i++) {
        fl_event x = fl_events_get(&back, i);
        ck_assert_int_eq(x.code, (int)i);
        ck_assert_int_eq(x.time, 100 + (int64_t)i);
        if (i == 4)
            ck_assert_str_eq(x.message, "four");
        else
            ck_assert_ptr_null(x.message); /* stored without the default text */
    }
    free(buf);
    fl_events_free(&e);
    fl_events_free(&back);
}
END_TEST

START_TEST(executor_message)
{
    fl_executor *e = fl_executor_new("e1", "n1", "s-intended", "app", (flame_resreq){ 2, 64, 1 },
                                     FLAME_SHIM_HOST, 1);
    size_t n;
    uint8_t *buf = fl_wire_pack_executor(e, NULL, &n); /* Void: the session it is meant for */
    Flame__V1__Executor *m = flame__v1__executor__unpack(NULL, n, buf);
    ck_assert_str_eq(m->metadata->id, "e1");
    ck_assert_str_eq(m->spec->node, "n1");
    ck_assert_uint_eq(m->spec->resreq->cpu, 2);
    ck_assert_uint_eq(m->spec->resreq->memory, 64);
    ck_assert_int_eq(m->spec->resreq->gpu, 1);
    ck_assert_int_eq(m->status->state, FLAME__V1__EXECUTOR_STATE__ExecutorVoid);
    ck_assert_str_eq(m->status->session_id, "s-intended");
    flame__v1__executor__free_unpacked(m, NULL);
    free(buf);
    fl_executor_set_state(e, FLAME_EXECUTOR_IDLE, 2);
    buf = fl_wire_pack_executor(e, NULL, &n); /* Idle: none */
    m = flame__v1__executor__unpack(NULL, n, buf);
    ck_assert_int_eq(m->status->_session_id_case, 0);
    flame__v1__executor__free_unpacked(m, NULL);
    free(buf);
    fl_executor_set_state(e, FLAME_EXECUTOR_BINDING, 3);
    buf = fl_wire_pack_executor(e, "s-bound", &n);
    m = flame__v1__executor__unpack(NULL, n, buf);
    ck_assert_int_eq(m->status->state, FLAME__V1__EXECUTOR_STATE__ExecutorBinding);
    ck_assert_str_eq(m->status->session_id, "s-bound");
    flame__v1__executor__free_unpacked(m, NULL);
    free(buf);
    fl_executor_free(e);
}
END_TEST

START_TEST(node_roundtrip)
{
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    md.name = "n1";
    Flame__V1__NodeSpec sp = FLAME__V1__NODE_SPEC__INIT;
    sp.hostname = "host1";
    Flame__V1__ResourceRequirement cap = FLAME__V1__RESOURCE_REQUIREMENT__INIT;
    cap.cpu = 8;
    cap.memory = 1 << 30;
    Flame__V1__ResourceRequirement alloc = FLAME__V1__RESOURCE_REQUIREMENT__INIT;
    alloc.cpu = 6;
    Flame__V1__NodeInfo info = FLAME__V1__NODE_INFO__INIT;
    info.arch = "x86_64";
    info.os = "Linux";
    Flame__V1__NodeAddress ad = FLAME__V1__NODE_ADDRESS__INIT;
    ad.type = "Hostname";
    ad.address = "host1";
    Flame__V1__NodeAddress *ads[] = { &ad };
    Flame__V1__NodeStatus st = FLAME__V1__NODE_STATUS__INIT;
    st.state = FLAME__V1__NODE_STATE__NotReady; /* the session manager decides */
    st.capacity = &cap;
    st.allocatable = &alloc;
    st.info = &info;
    st.addresses = ads;
    st.n_addresses = 1;
    Flame__V1__Node m = FLAME__V1__NODE__INIT;
    m.metadata = &md;
    m.spec = &sp;
    m.status = &st;
    fl_node *n = fl_wire_node(&m, "n1");
    ck_assert_int_eq(n->state, FLAME_NODE_UNKNOWN);
    ck_assert_str_eq(n->hostname, "host1");
    ck_assert_uint_eq(n->capacity.cpu, 8);
    ck_assert_uint_eq(n->allocatable.cpu, 6);
    ck_assert_str_eq(n->os, "Linux");
    ck_assert_uint_eq(n->n_addresses, 1);
    ck_assert_int_eq(fl_node_set_state(n, FLAME_NODE_READY, 1700000000), FLAME_OK);
    size_t len;
    uint8_t *buf = fl_wire_pack_node(n, &len);
    Flame__V1__Node *r = flame__v1__node__unpack(NULL, len, buf);
    ck_assert_str_eq(r->metadata->name, "n1");
    ck_assert_str_eq(r->metadata->id, "n1");
    ck_assert_str_eq(r->spec->hostname, "host1");
    ck_assert_int_eq(r->status->state, FLAME__V1__NODE_STATE__Ready);
    ck_assert_int_eq(r->status->last_heartbeat_time, 1700000000);
    ck_assert_uint_eq(r->status->capacity->memory, 1 << 30);
    ck_assert_uint_eq(r->status->allocatable->cpu, 6);
    ck_assert_str_eq(r->status->info->arch, "x86_64");
    ck_assert_uint_eq(r->status->n_addresses, 1);
    ck_assert_str_eq(r->status->addresses[0]->address, "host1");
    flame__v1__node__free_unpacked(r, NULL);
    free(buf);
    fl_node_free(n);
    /* a node registered with nothing but its name */
    Flame__V1__Node bare = FLAME__V1__NODE__INIT;
    n = fl_wire_node(&bare, "n2");
    buf = fl_wire_pack_node(n, &len);
    r = flame__v1__node__unpack(NULL, len, buf);
    ck_assert_str_eq(r->spec->hostname, "");
    ck_assert_uint_eq(r->status->n_addresses, 0);
    flame__v1__node__free_unpacked(r, NULL);
    free(buf);
    fl_node_free(n);
}
END_TEST

static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, b);
    return b;
}

/* A 0.6 service's bare Result/TaskResult against a 0.7 service's wrapped
 * replies: field 1 a varint in one, a message in the other. */
START_TEST(instance_reply_generations)
{
    size_t n, m;
    uint8_t *b, *x;
    Flame__V1__Result r = FLAME__V1__RESULT__INIT;
    r.return_code = -1;
    r._message_case = FLAME__V1__RESULT___MESSAGE_MESSAGE;
    r.message = "no";
    b = packed(&r.base, &n);
    ck_assert(!fl_wire_reply_wrapped(b, n));
    free(b);
    Flame__V1__OnSessionEnterResponse w = FLAME__V1__ON_SESSION_ENTER_RESPONSE__INIT;
    w.result = &r;
    b = packed(&w.base, &n);
    ck_assert(fl_wire_reply_wrapped(b, n));
    free(b);
    /* attributes first on the wire: field 1 is still found */
    Flame__V1__ExecutorAttributes at = FLAME__V1__EXECUTOR_ATTRIBUTES__INIT;
    ProtobufCBinaryData key = { 4, (uint8_t *)"rs07" };
    at.n_publish = 1;
    at.publish = &key;
    Flame__V1__OnSessionEnterResponse wa = FLAME__V1__ON_SESSION_ENTER_RESPONSE__INIT;
    wa._attributes_case = FLAME__V1__ON_SESSION_ENTER_RESPONSE___ATTRIBUTES_ATTRIBUTES;
    wa.attributes = &at;
    x = packed(&wa.base, &n);
    b = packed(&w.base, &m);
    uint8_t *both = malloc(n + m);
    memcpy(both, x, n);
    memcpy(both + n, b, m);
    ck_assert(fl_wire_reply_wrapped(both, n + m));
    free(both);
    free(x);
    free(b);
    Flame__V1__TaskResult tr = FLAME__V1__TASK_RESULT__INIT;
    tr.return_code = 3;
    b = packed(&tr.base, &n);
    ck_assert(!fl_wire_reply_wrapped(b, n));
    free(b);
    Flame__V1__OnTaskInvokeResponse tw = FLAME__V1__ON_TASK_INVOKE_RESPONSE__INIT;
    tw.task_result = &tr;
    b = packed(&tw.base, &n);
    ck_assert(fl_wire_reply_wrapped(b, n));
    /* the key alone decides (the caller's unpack refuses a truncated one);
     * nothing at all is a bare reply with every field at its default */
    ck_assert(fl_wire_reply_wrapped(b, 1));
    ck_assert(!fl_wire_reply_wrapped(b, 0));
    free(b);
    static const uint8_t bad[] = { 0x0a, 0x7f, 0x01 }; /* field 1: a length past the end */
    ck_assert(fl_wire_reply_wrapped(bad, sizeof bad)); /* the type says it; unpack refuses it */
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
    tc = tcase_create("convert");
    tcase_add_test(tc, app_spec_roundtrip);
    tcase_add_test(tc, app_spec_shims);
    tcase_add_test(tc, app_pack_matches_protobuf_c);
    tcase_add_test(tc, session_spec_view);
    tcase_add_test(tc, events_roundtrip);
    tcase_add_test(tc, executor_message);
    tcase_add_test(tc, node_roundtrip);
    tcase_add_test(tc, instance_reply_generations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
