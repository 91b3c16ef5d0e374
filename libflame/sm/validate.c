/* The session manager's rules for every request, run by rpc/ (its validate
 * hook) after the generic checks and before any handler, so nothing
 * invalid reaches the books: identifiers are names ([A-Za-z0-9._-], see
 * fl_name_valid), a request creates at most limits.max_tasks_per_request
 * tasks (a large batch holds the engine thread for a few ms at most), and
 * task inputs and common data leave room in a reply under the maximum
 * message size; an application spec encodes back to itself (it is stored
 * re-packed). Engine thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm.h"

struct check {
    const sm_t *sm;
    bool frontend; /* a client's request (an executor's outputs are the EM's to bound) */
    char *why;
    size_t size;
};

static bool refuse(struct check *c, const ProtobufCMessageDescriptor *d,
                   const ProtobufCFieldDescriptor *f, const char *fmt, const char *what)
{
    int n = snprintf(c->why, c->size, "field %s.%s: ", d->short_name, f->name);
    if (n > 0 && (size_t)n < c->size)
        snprintf(c->why + n, c->size - (size_t)n, fmt, what);
    return false;
}

/* Fields holding an identifier, in any request message: empty (the
 * handler says whether one is needed) or a valid name. */
static bool is_id_field(const ProtobufCMessageDescriptor *d, const char *name)
{
    static const char *const ids[] = { "session_id", "task_id", "executor_id", "node_name",
                                       "application", "hostname" };
    for (size_t i = 0; i < FL_ARRAY_LEN(ids); i++)
        if (strcmp(name, ids[i]) == 0)
            return true;
    /* the name of what a request registers or looks up, or a node's */
    size_t n = strlen(d->short_name);
    return strcmp(name, "name") == 0 &&
           ((n > 7 && strcmp(d->short_name + n - 7, "Request") == 0) ||
            strcmp(d->short_name, "Metadata") == 0);
}

/* What an identifier field names, for messages. */
static const char *id_kind(const ProtobufCMessageDescriptor *d, const char *field)
{
    if (strcmp(field, "session_id") == 0)
        return "session id";
    if (strcmp(field, "task_id") == 0)
        return "task id";
    if (strcmp(field, "application") == 0 || strstr(d->short_name, "Application"))
        return "application name";
    return "node name";
}

static bool check_field(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                        const void *v, void *arg)
{
    struct check *c = arg;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (!f)
        return true;
    if (f->type == PROTOBUF_C_TYPE_STRING && is_id_field(d, f->name)) {
        const char *s = *(char *const *)v;
        const char *why;
        if (!s || !*s)
            return true;
        /* executor ids are made here ("<node>-<start>-<n>", a name and
         * ~30 bytes more) and only looked up: their length is enough */
        if (strcmp(f->name, "executor_id") == 0)
            return strlen(s) <= 300 || refuse(c, d, f, "%s", "is longer than 300 characters");
        if (!fl_name_valid(s, &why)) {
            snprintf(c->why, c->size, "invalid %s \"%.64s\": it %s (field %s.%s)",
                     id_kind(d, f->name), s, why, d->short_name, f->name);
            return false;
        }
    } else if (f->type == PROTOBUF_C_TYPE_BYTES && c->frontend) {
        const ProtobufCBinaryData *b = v;
        if (b->len > c->sm->max_task_data) {
            char what[96];
            snprintf(what, sizeof what, "%zu bytes, above the limit of %zu", b->len,
                     c->sm->max_task_data);
            return refuse(c, d, f, "%s", what);
        }
    }
    return true;
}

/* A task count above the cap, or NULL. */
static const char *too_many(const sm_t *sm, const ProtobufCMessage *req, char *buf, size_t size)
{
    uint64_t count = 0, n_inputs = 0;
    if (req->descriptor == &flame__v1__create_tasks_request__descriptor) {
        const Flame__V1__CreateTasksRequest *r = (const Flame__V1__CreateTasksRequest *)req;
        count = r->count, n_inputs = r->n_inputs;
    } else if (req->descriptor == &flame__v1__run_session_request__descriptor) {
        const Flame__V1__RunSessionRequest *r = (const Flame__V1__RunSessionRequest *)req;
        count = r->count, n_inputs = r->n_inputs;
    } else {
        return NULL;
    }
    uint64_t n = count > n_inputs ? count : n_inputs;
    if (n <= sm->max_tasks_per_request)
        return NULL;
    snprintf(buf, size, "%s %llu tasks: above the limit of %u per request "
             "(cluster.limits.max_tasks_per_request); send them in several requests",
             count > n_inputs ? "count" : "inputs", (unsigned long long)n,
             sm->max_tasks_per_request);
    return buf;
}

/* An application's spec is stored re-packed (fl_wire_app_new) and unpacked
 * again at every start: one whose re-packed bytes would not unpack is
 * refused now, not lost at the next restart. */
static bool app_spec_repacks(const ProtobufCMessage *req, char *why, size_t size)
{
    const Flame__V1__ApplicationSpec *spec = NULL;
    if (req->descriptor == &flame__v1__register_application_request__descriptor)
        spec = ((const Flame__V1__RegisterApplicationRequest *)req)->application;
    else if (req->descriptor == &flame__v1__update_application_request__descriptor)
        spec = ((const Flame__V1__UpdateApplicationRequest *)req)->application;
    if (!spec)
        return true;
    size_t len = flame__v1__application_spec__get_packed_size(spec);
    uint8_t *blob = fl_malloc(len ? len : 1);
    flame__v1__application_spec__pack(spec, blob);
    Flame__V1__ApplicationSpec *back = flame__v1__application_spec__unpack(NULL, len, blob);
    free(blob);
    if (back) {
        flame__v1__application_spec__free_unpacked(back, NULL);
        return true;
    }
    snprintf(why, size, "field %s.application: does not encode back to a valid ApplicationSpec",
             req->descriptor->short_name);
    return false;
}

int sm_validate_request(rpc_call *call, const ProtobufCMessage *req, char *why, size_t size,
                        void *ctx)
{
    const sm_t *sm = ctx;
    if (too_many(sm, req, why, size))
        return RPC_INVALID_ARGUMENT;
    if (!app_spec_repacks(req, why, size))
        return RPC_INVALID_ARGUMENT;
    struct check c = { sm, strncmp(rpc_call_method(call), "/flame.v1.Frontend/", 19) == 0, why,
                       size };
    return rpc_message_walk(req, check_field, &c) ? RPC_OK : RPC_INVALID_ARGUMENT;
}
