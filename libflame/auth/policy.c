/* The authorization matrix: one rule per flame.v1 method, the roles that
 * may call it and the ownership check it needs. The table is checked
 * against the service descriptors when the server starts: a method without
 * a rule, or a rule naming a field its request does not have, is a startup
 * failure, never an open door.
 *
 * Threads: the table is immutable once built; the checks are pure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "util/util.h"

#define FE "flame.v1.Frontend"
#define BE "flame.v1.Backend"
#define ANY (FL_ROLE_ADMIN | FL_ROLE_USER)
#define NODES (FL_ROLE_ADMIN | FL_ROLE_NODE)
#define ADMIN FL_ROLE_ADMIN

/* users write only sandboxed applications of their own: the handlers check
 * the level and the owner (sm/frontend.c) */
static const char apps_why[] = "applications are registered, updated and unregistered by admins "
                               "and by users (their own, sandboxed)";
static const char cluster_why[] = "the cluster's nodes and executors are for admins";
static const char backend_why[] = "the Backend is for executor managers (role node)";
static const char frontend_why[] = "a node certificate speaks only the Backend";

static const fl_rule rules[] = {
    /* Frontend: applications */
    { FE, "RegisterApplication", ANY, FL_OWN_NONE, NULL, "register", apps_why },
    { FE, "UnregisterApplication", ANY, FL_OWN_NONE, NULL, "unregister", apps_why },
    { FE, "UpdateApplication", ANY, FL_OWN_NONE, NULL, "update", apps_why },
    /* environments are hidden from non-admins by the handlers */
    { FE, "GetApplication", ANY, FL_OWN_NONE, NULL, "get", frontend_why },
    { FE, "ListApplication", ANY, FL_OWN_NONE, NULL, "list", frontend_why },
    /* Frontend: the cluster */
    { FE, "ListExecutor", ADMIN, FL_OWN_NONE, NULL, "list", cluster_why },
    { FE, "ListNodes", ADMIN, FL_OWN_NONE, NULL, "list", cluster_why },
    { FE, "GetNode", ADMIN, FL_OWN_NONE, NULL, "get", cluster_why },
    /* Frontend: sessions (the creator owns one; ListSession shows a user
     * only theirs, filtered by the handler) */
    { FE, "CreateSession", ANY, FL_OWN_NONE, NULL, "create", frontend_why },
    { FE, "ListSession", ANY, FL_OWN_NONE, NULL, "list", frontend_why },
    { FE, "DeleteSession", ANY, FL_OWN_SESSION, "session_id", "delete", frontend_why },
    { FE, "OpenSession", ANY, FL_OWN_SESSION, "session_id", "open", frontend_why },
    { FE, "CloseSession", ANY, FL_OWN_SESSION, "session_id", "close", frontend_why },
    { FE, "GetSession", ANY, FL_OWN_SESSION, "session_id", "get", frontend_why },
    /* Frontend: tasks, in sessions of one's own */
    { FE, "CreateTask", ANY, FL_OWN_SESSION, "task.session_id", "create tasks in", frontend_why },
    { FE, "GetTask", ANY, FL_OWN_SESSION, "session_id", "read tasks of", frontend_why },
    { FE, "WatchTask", ANY, FL_OWN_SESSION, "session_id", "watch tasks of", frontend_why },
    { FE, "ListTask", ANY, FL_OWN_SESSION, "session_id", "list tasks of", frontend_why },
    { FE, "CreateTasks", ANY, FL_OWN_SESSION, "session_id", "create tasks in", frontend_why },
    { FE, "WatchSession", ANY, FL_OWN_SESSION, "session_id", "watch", frontend_why },
    { FE, "RunSession", ANY, FL_OWN_SESSION, "session_id", "run tasks in", frontend_why },
    /* Frontend: Flame 0.7's generation, as their 0.6 counterparts */
    { FE, "ListApplications", ANY, FL_OWN_NONE, NULL, "list", frontend_why },
    { FE, "ListExecutors", ADMIN, FL_OWN_NONE, NULL, "list", cluster_why },
    { FE, "ListSessions", ANY, FL_OWN_NONE, NULL, "list", frontend_why },
    { FE, "ListTasks", ANY, FL_OWN_SESSION, "session_id", "list tasks of", frontend_why },
    { FE, "WatchTasks", ANY, FL_OWN_SESSION, "session_id", "watch tasks of", frontend_why },
    { FE, "SuspendSession", ANY, FL_OWN_SESSION, "session_id", "suspend", frontend_why },
    { FE, "ResumeSession", ANY, FL_OWN_SESSION, "session_id", "resume", frontend_why },
    /* Backend: a node speaks for itself and its executors */
    { BE, "RegisterNode", NODES, FL_OWN_NODE, "node.metadata.name|node.spec.hostname",
      "register", backend_why },
    { BE, "SyncNode", NODES, FL_OWN_NODE, "node.metadata.name|node.spec.hostname", "sync",
      backend_why },
    { BE, "ReleaseNode", NODES, FL_OWN_NODE, "node_name", "release", backend_why },
    { BE, "WatchNode", NODES, FL_OWN_NODE, "heartbeat.node_name", "watch", backend_why },
    { BE, "RegisterExecutor", NODES, FL_OWN_EXECUTOR, "executor_id", "register", backend_why },
    { BE, "UnregisterExecutor", NODES, FL_OWN_EXECUTOR, "executor_id", "unregister", backend_why },
    { BE, "BindExecutor", NODES, FL_OWN_EXECUTOR, "executor_id", "bind", backend_why },
    { BE, "BindExecutorCompleted", NODES, FL_OWN_EXECUTOR, "executor_id", "complete the bind of",
      backend_why },
    { BE, "UnbindExecutor", NODES, FL_OWN_EXECUTOR, "executor_id", "unbind", backend_why },
    { BE, "UnbindExecutorCompleted", NODES, FL_OWN_EXECUTOR, "executor_id",
      "complete the unbind of", backend_why },
    { BE, "LaunchTask", NODES, FL_OWN_EXECUTOR, "executor_id", "launch tasks on", backend_why },
    { BE, "CompleteTask", NODES, FL_OWN_EXECUTOR, "executor_id", "complete tasks of", backend_why },
    { BE, "ExecutorStream", NODES, FL_OWN_EXECUTOR, "executor_id", "stream work of", backend_why },
};

#define MAX_ALTS 2
#define MAX_DEPTH 3

/* A rule with its field path resolved against the request's descriptor. */
typedef struct compiled {
    fl_rule rule; /* first: fl_policy_rule hands out &c->rule */
    const ProtobufCFieldDescriptor *path[MAX_ALTS][MAX_DEPTH];
    int depth[MAX_ALTS];
    int n_alts;
} compiled;

struct fl_policy {
    compiled *rules;
    size_t n;
    fl_map by_path; /* "/flame.v1.Frontend/CloseSession" -> compiled */
};

const fl_rule *fl_policy_rules(size_t *n)
{
    *n = FL_ARRAY_LEN(rules);
    return rules;
}

static const fl_rule *find_rule(const char *service, const char *method)
{
    const fl_rule *found = NULL;
    for (size_t i = 0; i < FL_ARRAY_LEN(rules); i++)
        if (!strcmp(rules[i].service, service) && !strcmp(rules[i].method, method)) {
            if (found)
                return NULL; /* two rules: as bad as none */
            found = &rules[i];
        }
    return found;
}

/* Resolves "a.b|c" against desc: string fields reached through singular
 * message fields. */
static flame_status compile_field(compiled *c, const ProtobufCMessageDescriptor *desc,
                                  const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save_alt = NULL;
    for (char *alt = strtok_r(buf, "|", &save_alt); alt; alt = strtok_r(NULL, "|", &save_alt)) {
        if (c->n_alts == MAX_ALTS)
            return FLAME_ERR_INTERNAL;
        const ProtobufCMessageDescriptor *d = desc;
        int k = 0;
        char *save = NULL;
        for (char *name = strtok_r(alt, ".", &save); name; name = strtok_r(NULL, ".", &save)) {
            const ProtobufCFieldDescriptor *f =
                d ? protobuf_c_message_descriptor_get_field_by_name(d, name) : NULL;
            if (!f || k == MAX_DEPTH || f->label == PROTOBUF_C_LABEL_REPEATED)
                return FLAME_ERR_INTERNAL;
            c->path[c->n_alts][k++] = f;
            d = f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
        }
        if (!k || c->path[c->n_alts][k - 1]->type != PROTOBUF_C_TYPE_STRING)
            return FLAME_ERR_INTERNAL;
        c->depth[c->n_alts++] = k;
    }
    return c->n_alts ? FLAME_OK : FLAME_ERR_INTERNAL;
}

flame_status fl_policy_new(fl_policy **out, const ProtobufCServiceDescriptor *const *services,
                           size_t n_services)
{
    fl_policy *p = fl_calloc(1, sizeof *p);
    size_t total = 0;
    for (size_t i = 0; i < n_services; i++)
        total += services[i]->n_methods;
    p->rules = fl_calloc(total ? total : 1, sizeof *p->rules);
    for (size_t i = 0; i < n_services; i++) {
        const ProtobufCServiceDescriptor *sd = services[i];
        for (unsigned j = 0; j < sd->n_methods; j++) {
            const ProtobufCMethodDescriptor *md = &sd->methods[j];
            const fl_rule *r = find_rule(sd->name, md->name);
            compiled *c = &p->rules[p->n];
            flame_status st = r ? FLAME_OK : FLAME_ERR_INTERNAL;
            if (r) {
                c->rule = *r;
                if (r->own != FL_OWN_NONE || r->field)
                    st = r->own != FL_OWN_NONE && r->field ? compile_field(c, md->input, r->field)
                                                           : FLAME_ERR_INTERNAL;
            }
            if (st) {
                fl_policy_free(p);
                return fl_error(FLAME_ERR_INTERNAL,
                                r ? "authorization rule of %s/%s: field \"%s\" is not a string "
                                    "field of its request"
                                  : "%s/%s has no authorization rule (exactly one): add it to "
                                    "libflame/auth/policy.c%s",
                                sd->name, md->name, r && r->field ? r->field : "");
            }
            char *path = fl_sprintf("/%s/%s", sd->name, md->name);
            fl_map_put(&p->by_path, path, c);
            free(path);
            p->n++;
        }
    }
    *out = p;
    return FLAME_OK;
}

void fl_policy_free(fl_policy *p)
{
    if (!p)
        return;
    fl_map_free(&p->by_path);
    free(p->rules);
    free(p);
}

const fl_rule *fl_policy_rule(const fl_policy *p, const char *path)
{
    compiled *c = fl_map_get(&p->by_path, path);
    return c ? &c->rule : NULL;
}

static const char *short_service(const char *service)
{
    const char *dot = strrchr(service, '.');
    return dot ? dot + 1 : service;
}

int fl_policy_check_method(const fl_rule *r, const fl_identity *id, char *msg, size_t size)
{
    if (r->roles & id->role)
        return RPC_OK;
    snprintf(msg, size, "%s \"%s\" may not call %s.%s%s%s", fl_role_name(id->role), id->name,
             short_service(r->service), r->method, r->why ? ": " : "", r->why ? r->why : "");
    return RPC_PERMISSION_DENIED;
}

/* A field of m (NULL when unset, or a sub-message is absent). */
static const void *field_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(base + f->quantifier_offset) != f->id)
        return NULL;
    return *(const void *const *)(base + f->offset);
}

/* The object a request names: the first non-empty alternative, or NULL. */
static const char *named(const compiled *c, const ProtobufCMessage *req)
{
    for (int a = 0; a < c->n_alts; a++) {
        const void *v = req;
        for (int k = 0; k < c->depth[a] && v; k++)
            v = field_ptr(v, c->path[a][k]);
        if (v && *(const char *)v)
            return v;
    }
    return NULL;
}

int fl_policy_check_request(const fl_rule *r, const fl_identity *id, const ProtobufCMessage *req,
                            const fl_auth_lookup *lk, char *msg, size_t size)
{
    if (r->own == FL_OWN_NONE || id->role == FL_ROLE_ADMIN || !req)
        return RPC_OK;
    const compiled *c = (const compiled *)r;
    const char *object = named(c, req);
    if (!object)
        return RPC_OK; /* nothing named: the handler refuses it */
    const char *role = fl_role_name(id->role);
    switch (r->own) {
    case FL_OWN_SESSION: {
        const char *owner = lk->session_owner(lk->ctx, object);
        if (!owner || (id->role == FL_ROLE_USER && !strcmp(owner, id->name)))
            return RPC_OK;
        if (*owner)
            snprintf(msg, size, "%s \"%s\" may not %s session \"%s\" (owned by \"%s\")", role,
                     id->name, r->verb, object, owner);
        else
            snprintf(msg, size, "%s \"%s\" may not %s session \"%s\" (created before owners were "
                     "recorded: admins only)", role, id->name, r->verb, object);
        return RPC_PERMISSION_DENIED;
    }
    case FL_OWN_NODE:
        if (id->role == FL_ROLE_NODE && !strcmp(object, id->name))
            return RPC_OK;
        snprintf(msg, size, "%s \"%s\" may not %s node \"%s\": a node speaks only for itself", role,
                 id->name, r->verb, object);
        return RPC_PERMISSION_DENIED;
    case FL_OWN_EXECUTOR: {
        const char *node = lk->executor_node(lk->ctx, object);
        if (!node || (id->role == FL_ROLE_NODE && !strcmp(node, id->name)))
            return RPC_OK;
        snprintf(msg, size, "%s \"%s\" may not %s executor \"%s\" (on node \"%s\")", role,
                 id->name, r->verb, object, node);
        return RPC_PERMISSION_DENIED;
    }
    default:
        return RPC_OK;
    }
}
