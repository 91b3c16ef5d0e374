/* libFuzzer target: the flame.v1 decoders and our conversions (wire/).
 * The first byte picks a message type (every request, response and
 * sub-message of Frontend, Backend and Instance), the rest is the message.
 * What rpc_unpack accepts must survive the copy paths: re-packed, it
 * unpacks again to the same bytes; as an application spec, a node or task
 * events it converts to the model and back to messages that unpack. The
 * hand encoders (wire/encode.c) must write what protobuf-c reads back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc.h"
#include "wire/wire.h"

#include "backend.pb-c.h"
#include "frontend.pb-c.h"
#include "shim.pb-c.h"

#define MAX_TYPES 128

static const ProtobufCMessageDescriptor *types[MAX_TYPES];
static size_t n_types;

static void add_type(const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < n_types; i++)
        if (types[i] == d)
            return;
    if (n_types == MAX_TYPES)
        abort();
    types[n_types++] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
            add_type(d->fields[i].descriptor);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const ProtobufCServiceDescriptor *svcs[] = { &flame__v1__frontend__descriptor,
                                                 &flame__v1__backend__descriptor,
                                                 &flame__v1__instance__descriptor };
    for (size_t s = 0; s < FL_ARRAY_LEN(svcs); s++)
        for (unsigned i = 0; i < svcs[s]->n_methods; i++) {
            add_type(svcs[s]->methods[i].input);
            add_type(svcs[s]->methods[i].output);
        }
    return 0;
}

#define CHECK(cond, what)                                                           \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz_wire: %s: %s\n", d->name, what);                  \
            abort();                                                                \
        }                                                                           \
    } while (0)

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len + 1);
    if (protobuf_c_message_pack(m, b) != *len)
        abort();
    return b;
}

static bool unpacks(const ProtobufCMessageDescriptor *d, const uint8_t *b, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, b);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return m != NULL;
}

/* The conversions to the model and back of the types that have one. */
static void convert(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m,
                    const uint8_t *data, size_t size)
{
    size_t len;
    uint8_t *b;
    if (d == &flame__v1__application_spec__descriptor) {
        fl_app *a = fl_wire_app_new("fz", (const Flame__V1__ApplicationSpec *)m, 1);
        fl_app_validate("fz", a->spec);
        b = fl_wire_pack_app(a, &len);
        CHECK(unpacks(&flame__v1__application__descriptor, b, len), "packed app does not unpack");
        free(b);
        fl_app *back = fl_wire_app_unpack("fz", a->blob, a->blob_len, 1);
        CHECK(back, "stored app spec does not unpack");
        fl_app_free(back);
        fl_app_free(a);
    } else if (d == &flame__v1__node__descriptor) {
        fl_node *n = fl_wire_node((const Flame__V1__Node *)m, "fz");
        b = fl_wire_pack_node(n, &len);
        CHECK(unpacks(&flame__v1__node__descriptor, b, len), "packed node does not unpack");
        free(b);
        fl_node_free(n);
    } else if (d == &flame__v1__task_status__descriptor) {
        fl_events e = { 0 };
        fl_wire_unpack_events(&e, data, size);
        b = fl_wire_pack_events(&e, &len);
        CHECK(unpacks(d, b, len), "packed events do not unpack");
        free(b);
        fl_events_free(&e);
    } else if (d == &flame__v1__session_spec__descriptor) {
        fl_session_spec s;
        fl_wire_session_spec(&s, (const Flame__V1__SessionSpec *)m);
    }
}

/* The hand encoders write a TaskOutcome from the input's bytes. */
static void encoders(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *d = &flame__v1__task_outcome__descriptor;
    uint64_t id = 0;
    int32_t rc = 0;
    memcpy(&id, data, size < 8 ? size : 8);
    if (size > 8)
        memcpy(&rc, data + 8, size - 8 < 4 ? size - 8 : 4);
    fl_buf b = { 0 };
    fl_wire_put_varint(&b, 1, id);
    fl_wire_put_varint(&b, 6, (uint64_t)(int64_t)rc);
    fl_wire_put_bytes(&b, 3, data, size);
    fl_wire_put_bool(&b, 7, true); /* unknown to TaskOutcome: kept aside */
    Flame__V1__TaskOutcome *o =
        flame__v1__task_outcome__unpack(NULL, b.len, (const uint8_t *)b.data);
    CHECK(o, "hand-encoded message does not unpack");
    CHECK(o->task_id == id && o->return_code == rc, "hand-encoded varints read back wrong");
    CHECK(o->_output_case && o->output.len == size && (!size || !memcmp(o->output.data, data, size)),
          "hand-encoded bytes read back wrong");
    flame__v1__task_outcome__free_unpacked(o, NULL);
    fl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] == 0xff) {
        encoders(data + 1, size - 1);
        return 0;
    }
    const ProtobufCMessageDescriptor *d = types[data[0] % n_types];
    data++, size--;
    ProtobufCMessage *m = rpc_unpack(d, size, data); /* as every peer's message */
    if (!m)
        return 0;
    size_t len, len2;
    uint8_t *b = pack(m, &len);
    ProtobufCMessage *again = protobuf_c_message_unpack(d, NULL, len, b);
    CHECK(again, "accepted, re-packed, then refused (the copy path would see NULL)");
    uint8_t *b2 = pack(again, &len2);
    CHECK(len == len2 && !memcmp(b, b2, len), "re-packing is not a fixed point");
    convert(d, m, data, size);
    free(b);
    free(b2);
    protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
