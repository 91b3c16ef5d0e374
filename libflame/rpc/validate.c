/* Checks every unpacked request before its handler sees it, from the
 * message's descriptor alone: protobuf-c accepts what proto3 forbids (a
 * string that is not UTF-8, a field numbered 0 written as a non-canonical
 * varint), and either would be stored, then break every other client
 * (grpcio refuses to decode such a reply) or the next re-pack.
 * Threads: no state; safe from any thread. */
#include <stdio.h>
#include <string.h>

#include "rpc.h"

/* The longest valid UTF-8 prefix of s ends before the returned offset's
 * byte; returns (size_t)-1 when all of s is valid. Overlong forms,
 * surrogates and code points above U+10FFFF are invalid (RFC 3629). */
size_t rpc_utf8_invalid_at(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += len;
    }
    return (size_t)-1;
}

/* Largest field number protobuf allows (2^29 - 1). */
#define MAX_FIELD_NUMBER 536870911u

/* Whether field f of m is set and its value lives at the field's offset
 * (a member of a oneof other than the chosen one shares that memory). */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
    return true;
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

static bool walk(const ProtobufCMessage *m, int depth, rpc_field_visit visit, void *arg)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* our messages are not recursive; a deep tree is not one of ours */
    if (depth > 32 || !visit(m, NULL, NULL, arg))
        return false;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        size_t n = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            base = *(char *const *)base;
        } else if (!field_present(m, f)) {
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            const void *v = base + k * value_size(f);
            if (!visit(m, f, v, arg))
                return false;
            const ProtobufCMessage *sub =
                f->type == PROTOBUF_C_TYPE_MESSAGE ? *(ProtobufCMessage *const *)v : NULL;
            if (sub && !walk(sub, depth + 1, visit, arg))
                return false;
        }
    }
    return true;
}

bool rpc_message_walk(const ProtobufCMessage *m, rpc_field_visit visit, void *arg)
{
    return walk(m, 0, visit, arg);
}

struct why {
    char *buf;
    size_t size;
};

static bool generic_check(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                          const void *v, void *arg)
{
    struct why *w = arg;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (!f) { /* entering m: its unknown fields */
        for (unsigned i = 0; i < m->n_unknown_fields; i++) {
            uint32_t tag = m->unknown_fields[i].tag;
            if (tag == 0 || tag > MAX_FIELD_NUMBER) {
                snprintf(w->buf, w->size, "message %s: invalid field number %u", d->short_name,
                         tag);
                return false;
            }
        }
        return true;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *)v;
        if (s && rpc_utf8_invalid_at((const uint8_t *)s, strlen(s)) != (size_t)-1) {
            snprintf(w->buf, w->size, "field %s.%s: not valid UTF-8", d->short_name, f->name);
            return false;
        }
    }
    return true;
}

bool rpc_message_valid(const ProtobufCMessage *m, char *why, size_t size)
{
    struct why w = { why, size };
    *why = 0;
    if (rpc_message_walk(m, generic_check, &w))
        return true;
    if (!*why)
        snprintf(why, size, "message %s: nested too deeply", m->descriptor->short_name);
    return false;
}
