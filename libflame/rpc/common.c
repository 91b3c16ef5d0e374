/* Shared pieces of the rpc layer: init, codes, byte buffers, method paths.
 * Threads: everything here may be called from any thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/log.h>

#include "rpc_internal.h"
#include "util/util.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* What a refused TLS handshake most likely means, by OpenSSL's reason. */
static const char *handshake_hint(const char *m)
{
    if (strstr(m, "peer did not return a certificate"))
        return " (the client presented no certificate; mutual TLS requires one)";
    if (strstr(m, "wrong version number") || strstr(m, "http request"))
        return " (the peer speaks plaintext: use an https:// endpoint and a CA)";
    if (strstr(m, "certificate verify failed"))
        return " (the peer's certificate does not verify against the CA: another CA, "
               "expired, or not yet valid)";
    if (strstr(m, "unknown ca") || strstr(m, "bad certificate") ||
        strstr(m, "certificate expired"))
        return " (the peer refused our certificate)";
    return "";
}

/* gRPC logs through fl_log, in the format of ours. A refused TLS handshake
 * is said plainly: the client is only told "Socket closed" or "Ssl
 * handshake failed", and gRPC does not tell the server's code at all.
 * Runs on any gRPC thread (fl_log is thread-safe). */
static void grpc_log(gpr_log_func_args *a)
{
    const char *m = a->message;
    const char *fatal = strstr(m, "Handshake failed with fatal error ");
    if (fatal) {
        fatal += strlen("Handshake failed with fatal error ");
        fl_log(FL_LOG_WARN, "rpc", "TLS handshake refused: %s%s", fatal, handshake_hint(m));
        return;
    }
    int level = a->severity == GPR_LOG_SEVERITY_ERROR  ? FL_LOG_ERROR
                : a->severity == GPR_LOG_SEVERITY_INFO ? FL_LOG_INFO
                                                       : FL_LOG_DEBUG;
    fl_log(level, "grpc", "%s (%s:%d)", m, a->file, a->line);
}

static void do_init(void)
{
    gpr_set_log_function(grpc_log);
    grpc_init();
}

void rpc_init(void)
{
    pthread_once(&init_once, do_init);
}

flame_status rpc_code_to_status(int code)
{
    switch (code) {
    case RPC_OK: return FLAME_OK;
    case RPC_CANCELLED: return FLAME_ERR_CANCELLED;
    case RPC_INVALID_ARGUMENT: return FLAME_ERR_INVALID_ARGUMENT;
    case RPC_DEADLINE_EXCEEDED: return FLAME_ERR_TIMEOUT;
    case RPC_NOT_FOUND: return FLAME_ERR_NOT_FOUND;
    case RPC_ALREADY_EXISTS: return FLAME_ERR_ALREADY_EXISTS;
    case RPC_RESOURCE_EXHAUSTED: return FLAME_ERR_RESOURCE_EXHAUSTED;
    case RPC_FAILED_PRECONDITION: return FLAME_ERR_FAILED_PRECONDITION;
    case RPC_UNIMPLEMENTED: return FLAME_ERR_UNIMPLEMENTED;
    case RPC_UNAVAILABLE: return FLAME_ERR_UNAVAILABLE;
    case RPC_PERMISSION_DENIED: return FLAME_ERR_PERMISSION_DENIED;
    case RPC_UNAUTHENTICATED: return FLAME_ERR_UNAUTHENTICATED;
    default: return FLAME_ERR_INTERNAL;
    }
}

int rpc_status_to_code(flame_status s)
{
    switch (s) {
    case FLAME_OK: return RPC_OK;
    case FLAME_ERR_INVALID_ARGUMENT:
    case FLAME_ERR_CONFIG: return RPC_INVALID_ARGUMENT;
    case FLAME_ERR_NOT_FOUND: return RPC_NOT_FOUND;
    case FLAME_ERR_ALREADY_EXISTS: return RPC_ALREADY_EXISTS;
    case FLAME_ERR_FAILED_PRECONDITION: return RPC_FAILED_PRECONDITION;
    case FLAME_ERR_UNAVAILABLE: return RPC_UNAVAILABLE;
    case FLAME_ERR_TIMEOUT: return RPC_DEADLINE_EXCEEDED;
    case FLAME_ERR_CANCELLED: return RPC_CANCELLED;
    case FLAME_ERR_RESOURCE_EXHAUSTED: return RPC_RESOURCE_EXHAUSTED;
    case FLAME_ERR_UNIMPLEMENTED: return RPC_UNIMPLEMENTED;
    case FLAME_ERR_PERMISSION_DENIED: return RPC_PERMISSION_DENIED;
    case FLAME_ERR_UNAUTHENTICATED: return RPC_UNAUTHENTICATED;
    default: return RPC_INTERNAL;
    }
}

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg)
{
    size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    grpc_slice s = grpc_slice_malloc(n);
    if (n)
        protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_byte_buffer *rpc_bytes(const uint8_t *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_slice rpc_flatten(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return s;
}

char *rpc_slice_str(grpc_slice s)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    char *p = malloc(n + 1);
    if (!p)
        abort();
    memcpy(p, GRPC_SLICE_START_PTR(s), n);
    p[n] = 0;
    return p;
}

void rpc_size_args(grpc_arg *args, size_t max_message)
{
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)max_message;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)max_message;
}

/* Interned method paths, one array per service descriptor, kept for the
 * life of the process (gRPC holds registered paths by pointer). The list
 * only grows and an entry is complete before it is published, so readers
 * need no lock; writers take paths_mu. */
struct service_paths {
    const ProtobufCServiceDescriptor *desc;
    char **paths; /* by method index */
    struct service_paths *next;
};

static pthread_mutex_t paths_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct service_paths *) paths_list;

static struct service_paths *find_paths(const ProtobufCServiceDescriptor *service)
{
    struct service_paths *sp = atomic_load(&paths_list);
    while (sp && sp->desc != service)
        sp = sp->next;
    return sp;
}

const char *rpc_path(const ProtobufCServiceDescriptor *service, const char *method)
{
    const ProtobufCMethodDescriptor *m =
        protobuf_c_service_descriptor_get_method_by_name(service, method);
    if (!m) {
        fl_log(FL_LOG_ERROR, "rpc", "service %s has no method %s", service->name, method);
        abort();
    }
    size_t idx = (size_t)(m - service->methods);
    struct service_paths *sp = find_paths(service);
    if (!sp) {
        pthread_mutex_lock(&paths_mu);
        if (!(sp = find_paths(service))) {
            sp = fl_calloc(1, sizeof *sp);
            sp->desc = service;
            sp->paths = fl_calloc(service->n_methods, sizeof *sp->paths);
            for (unsigned i = 0; i < service->n_methods; i++)
                sp->paths[i] = fl_sprintf("/%s/%s", service->name, service->methods[i].name);
            sp->next = atomic_load(&paths_list);
            atomic_store(&paths_list, sp);
        }
        pthread_mutex_unlock(&paths_mu);
    }
    return sp->paths[idx];
}

/* protobuf-c reads a field number written as a non-canonical varint (0x80
 * 0x00 is field 0) and keeps it as an unknown field, but writes it back
 * canonically, which it then refuses: a copy path (pack, then unpack)
 * would get NULL. No valid message has field 0. */
static bool fields_valid(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return false;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *p = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)p;
            for (size_t j = 0; j < n; j++)
                if (v[j] && !fields_valid(v[j]))
                    return false;
        } else {
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
                continue;
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
            if (sub && !fields_valid(sub))
                return false;
        }
    }
    return true;
}

ProtobufCMessage *rpc_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                             const uint8_t *data)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m && !fields_valid(m)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}
