/* The authorization hook rpc/ runs before a request reaches its handler:
 * who is calling (the identity of the connection's certificate, cached by
 * its PEM; revocation checked on every call), may that role call the method,
 * and, with the request in hand, is the object it names theirs.
 *
 * Threads: the rpc loop's thread only (auth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "util/util.h"

/* Distinct certificates remembered; past it the cache starts over. */
#define CACHE_MAX 1024
/* How often the CRL file is looked at. */
#define CRL_CHECK_MS 1000

struct fl_auth {
    fl_policy *policy;
    fl_crl *crl;
    fl_role anonymous_role;
    fl_auth_lookup lookup;
    fl_map cache; /* PEM -> fl_identity (one ref each) */
};

/* What the hook attaches to a call. */
typedef struct auth_call {
    fl_identity *id;
    const fl_rule *rule;
} auth_call;

static fl_identity local_identity = { FL_IDENTITY_LOCAL, FL_ROLE_ADMIN, "", -1 };
static fl_identity anonymous_identity = { FL_IDENTITY_ANONYMOUS, FL_ROLE_USER, "", -1 };

static void cache_clear(fl_auth *a)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(&a->cache, &it, NULL, &v))
        fl_identity_unref(v);
    fl_map_free(&a->cache);
}

flame_status fl_auth_new(fl_auth **out, const fl_auth_options *opts,
                         const ProtobufCServiceDescriptor *const *services, size_t n_services)
{
    if (opts->anonymous_role != FL_ROLE_NONE && opts->anonymous_role != FL_ROLE_USER)
        return fl_error(FLAME_ERR_CONFIG, "cluster.auth.anonymous_role: %s is not allowed "
                        "(none or user)", fl_role_name(opts->anonymous_role));
    fl_auth *a = fl_calloc(1, sizeof *a);
    a->anonymous_role = opts->anonymous_role;
    a->lookup = opts->lookup;
    flame_status st = fl_policy_new(&a->policy, services, n_services);
    if (!st && opts->crl_file)
        st = fl_crl_open(&a->crl, opts->crl_file, opts->ca_file);
    if (st) {
        fl_auth_free(a);
        return st;
    }
    *out = a;
    return FLAME_OK;
}

void fl_auth_free(fl_auth *a)
{
    if (!a)
        return;
    cache_clear(a);
    fl_crl_free(a->crl);
    fl_policy_free(a->policy);
    free(a);
}

static int revoked(const fl_auth *a, const fl_identity *id, char *msg, size_t size)
{
    if (!fl_crl_revoked(a->crl, id->serial))
        return RPC_OK;
    snprintf(msg, size, "certificate of %s (serial %s) is revoked", id->name, id->serial);
    return RPC_UNAUTHENTICATED;
}

int fl_auth_identify(fl_auth *a, bool tls, const char *pem, fl_identity **out, char *msg,
                     size_t size)
{
    if (!tls) {
        *out = &local_identity;
        return RPC_OK;
    }
    if (!pem) {
        if (a->anonymous_role == FL_ROLE_NONE) {
            snprintf(msg, size, "a client certificate is required (cluster.auth.anonymous_role "
                     "is none)");
            return RPC_UNAUTHENTICATED;
        }
        *out = &anonymous_identity;
        return RPC_OK;
    }
    fl_identity *id = fl_map_get(&a->cache, pem);
    if (!id) {
        fl_identity parsed;
        if (fl_identity_from_pem(&parsed, pem)) {
            snprintf(msg, size, "%s", flame_error_last());
            return RPC_UNAUTHENTICATED;
        }
        if (a->cache.len >= CACHE_MAX)
            cache_clear(a);
        id = fl_memdup(&parsed, sizeof parsed);
        id->refs = 1;
        fl_map_put(&a->cache, pem, id);
    }
    fl_crl_refresh(a->crl, CRL_CHECK_MS);
    int code = revoked(a, id, msg, size);
    if (code)
        return code;
    fl_identity_ref(id);
    *out = id;
    return RPC_OK;
}

static void release_call(void *p)
{
    auth_call *ac = p;
    fl_identity_unref(ac->id);
    free(ac);
}

int fl_auth_authorize(rpc_call *call, const ProtobufCMessage *req, char *msg, size_t size,
                      void *ctx)
{
    fl_auth *a = ctx;
    int code;
    if (!req) { /* a new call: who, and may they call this at all */
        fl_identity *id;
        code = fl_auth_identify(a, rpc_call_is_tls(call), rpc_call_peer_cert(call), &id, msg, size);
        if (code)
            goto denied;
        auth_call *ac = fl_calloc(1, sizeof *ac);
        ac->id = id;
        ac->rule = fl_policy_rule(a->policy, rpc_call_method(call));
        rpc_call_set_auth(call, ac, release_call);
        if (!ac->rule) { /* rpc/ and the policy disagree: closed, never open */
            snprintf(msg, size, "%s has no authorization rule", rpc_call_method(call));
            code = RPC_PERMISSION_DENIED;
        } else {
            code = fl_policy_check_method(ac->rule, id, msg, size);
        }
    } else {
        const auth_call *ac = rpc_call_auth(call);
        /* a stream's later messages too: a revocation cuts open streams
         * (RunSession, ExecutorStream, WatchNode) at their next message */
        fl_crl_refresh(a->crl, CRL_CHECK_MS);
        code = revoked(a, ac->id, msg, size);
        if (!code)
            code = fl_policy_check_request(ac->rule, ac->id, req, &a->lookup, msg, size);
    }
    if (!code)
        return RPC_OK;
denied:
    fl_log(FL_LOG_INFO, "auth", "%s denied: %s", rpc_call_method(call), msg);
    return code;
}

const fl_identity *fl_auth_call_identity(const rpc_call *call)
{
    const auth_call *ac = rpc_call_auth(call);
    return ac ? ac->id : NULL;
}
