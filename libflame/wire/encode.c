/* Hand encoders for the protobuf wire format: fields appended to a message
 * being built in an fl_buf. The session manager uses them to wrap bytes it
 * already has packed (a task, a stored application spec) without unpacking
 * them into protobuf-c structs first. */
#include "wire.h"

static void put_raw_varint(fl_buf *b, uint64_t v)
{
    uint8_t x[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        x[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    fl_buf_add(b, x, n);
}

static void put_tag(fl_buf *b, uint32_t field, int wire_type)
{
    put_raw_varint(b, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

void fl_wire_put_varint(fl_buf *b, uint32_t field, uint64_t v)
{
    put_tag(b, field, 0);
    put_raw_varint(b, v);
}

void fl_wire_put_bool(fl_buf *b, uint32_t field, bool v)
{
    fl_wire_put_varint(b, field, v ? 1 : 0);
}

void fl_wire_put_bytes(fl_buf *b, uint32_t field, const void *data, size_t len)
{
    put_tag(b, field, 2);
    put_raw_varint(b, len);
    if (len)
        fl_buf_add(b, data, len);
}
