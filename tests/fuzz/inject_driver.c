/* The request-sequence driver of the server fuzz targets (inject_driver.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inject_driver.h"
#include "rpc/inject.h"

#define N_SLOTS 8

struct slot {
    rpc_call *call;
    const fuzz_method *m;
};

struct drive {
    struct slot slots[N_SLOTS];
    const fuzz_method *methods;
    size_t n;
    bool check_utf8;
};

size_t fuzz_methods(const rpc_service *services, size_t n_services, fuzz_method *out,
                    size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n_services; i++)
        for (size_t j = 0; j < services[i].n_methods && k < max; j++) {
            const ProtobufCServiceDescriptor *d = services[i].desc;
            out[k].path = rpc_path(d, services[i].methods[j].name);
            out[k].output =
                protobuf_c_service_descriptor_get_method_by_name(d, services[i].methods[j].name)
                    ->output;
            k++;
        }
    return k;
}

static bool utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s++;
        int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && c < 0xC2) || (n == 3 && c > 0xF4))
            return false;
        unsigned cp = c & (0x3F >> n);
        for (int i = 0; i < n; i++, s++) {
            if ((*s & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (*s & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
    }
    return true;
}

/* Every string of m (and its sub-messages) is UTF-8, as proto3 requires. */
static bool strings_valid(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *p = (const char *)m + f->offset;
        size_t n = 1;
        void *const *v = (void *const *)p;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            v = *(void *const *const *)p;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
                continue;
        }
        for (size_t j = 0; j < n; j++) {
            if (!v[j])
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING ? !utf8_valid(v[j]) : !strings_valid(v[j]))
                return false;
        }
    }
    return true;
}

static void check_answer(void *arg, rpc_call *call, const uint8_t *data, size_t len, bool final,
                         int code, const char *details)
{
    struct drive *dr = arg;
    const fuzz_method *m = NULL;
    for (size_t i = 0; i < dr->n && !m; i++)
        if (strcmp(dr->methods[i].path, rpc_call_method(call)) == 0)
            m = &dr->methods[i];
    if (!data || !m)
        return;
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->output, NULL, len, data);
    if (!msg) {
        fprintf(stderr, "fuzz: %s answered %zu bytes that are no %s\n", m->path, len,
                m->output->name);
        abort();
    }
    if (dr->check_utf8 && !strings_valid(msg)) {
        fprintf(stderr, "fuzz: %s answered a %s with a string that is not UTF-8\n", m->path,
                m->output->name);
        abort();
    }
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void end_slot(struct slot *s)
{
    if (s->call)
        rpc_inject_end(s->call);
    s->call = NULL;
}

void fuzz_drive(fuzz_server *fs, const fuzz_method *methods, size_t n, const uint8_t *data,
                size_t size)
{
    rpc_server *srv = fs->srv;
    struct drive dr = { .methods = methods, .n = n,
                        .check_utf8 = getenv("FUZZ_UTF8") && atoi(getenv("FUZZ_UTF8")) };
    rpc_inject_set_sink(srv, check_answer, &dr);
    size_t at = 0;
    while (at + 4 <= size) {
        uint8_t op = data[at], mi = data[at + 1];
        size_t len = (size_t)data[at + 2] | (size_t)data[at + 3] << 8;
        at += 4;
        if (len > size - at)
            len = size - at;
        const uint8_t *payload = data + at;
        at += len;
        struct slot *s = &dr.slots[(op >> 3) % N_SLOTS];
        switch (op % 8) {
        case 0: case 1: case 2:
            end_slot(s);
            s->m = &methods[mi % n];
            s->call = rpc_inject_open(srv, s->m->path);
            rpc_inject_message(s->call, payload, len);
            break;
        case 3:
            if (s->call)
                rpc_inject_message(s->call, payload, len);
            break;
        case 4:
            if (s->call)
                rpc_inject_message(s->call, NULL, 0);
            break;
        case 5:
            end_slot(s);
            break;
        case 6:
            rpc_inject_tick(srv);
            break;
        default:
            if (!fs->restart)
                break;
            rpc_inject_flush(srv);
            for (int i = 0; i < N_SLOTS; i++)
                end_slot(&dr.slots[i]);
            rpc_inject_flush(srv);
            fs->restart(fs);
            srv = fs->srv;
            rpc_inject_set_sink(srv, check_answer, &dr);
            break;
        }
        if (!(op & 0x80))
            rpc_inject_flush(srv);
    }
    rpc_inject_flush(srv);
    for (int i = 0; i < N_SLOTS; i++)
        end_slot(&dr.slots[i]);
    rpc_inject_flush(srv);
    rpc_inject_set_sink(srv, NULL, NULL);
}
