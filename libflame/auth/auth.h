/* auth/: who is calling, and may they do what they ask.
 *
 * identity.c  the identity of a caller: from the verified client
 *             certificate (Subject CN = name, OU = role), anonymous TLS
 *             clients (cluster.auth.anonymous_role), plaintext loopback
 *             clients (`local`, admin)
 * crl.c       the revoked serials of cluster.tls.crl_file, reloaded when
 *             the file changes
 * policy.c    one rule per flame.v1 method (the roles that may call it and
 *             the ownership check it needs), checked complete against the
 *             service descriptors at start
 * hook.c      the rpc/ authorization hook over the three
 *
 * rpc/ owns TLS and hands over the peer's verified certificate; auth/
 * decides. The session manager owns the books, so ownership (whose session,
 * which node runs an executor) is asked of it through fl_auth_lookup.
 *
 * Threads: an fl_auth and the identities it hands out belong to the thread
 * of the rpc loop (the session manager's engine thread); nothing is locked.
 * fl_identity_from_pem, fl_role_* and the fl_policy_* checks are pure and
 * thread-safe.
 */
#ifndef FL_AUTH_H
#define FL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "flame/error.h"
#include "rpc/rpc.h"

/* Roles, as bits so that a rule can allow several. */
typedef enum fl_role {
    FL_ROLE_NONE = 0,
    FL_ROLE_USER = 1 << 0,
    FL_ROLE_NODE = 1 << 1,
    FL_ROLE_ADMIN = 1 << 2,
} fl_role;

/* "admin", "node", "user", "none". */
const char *fl_role_name(fl_role role);
/* The role named s ("none" included); -1 for anything else. */
int fl_role_parse(const char *s);

/* X.509 bounds CN at 64 characters; a serial at 20 bytes. */
#define FL_IDENTITY_NAME_MAX 64
#define FL_IDENTITY_SERIAL_MAX 40

/* The plaintext (loopback) identity and the anonymous TLS one. Client
 * certificates may not take these names. */
#define FL_IDENTITY_LOCAL "local"
#define FL_IDENTITY_ANONYMOUS "anonymous"

typedef struct fl_identity {
    char name[FL_IDENTITY_NAME_MAX + 1];
    fl_role role;
    char serial[FL_IDENTITY_SERIAL_MAX + 1]; /* upper-case hex; "" without a certificate */
    int refs;                                /* < 0: static, never freed */
} fl_identity;

/* Reads the identity inside a client certificate (PEM): CN is the name, OU
 * the role (admin, node or user). FLAME_ERR_UNAUTHENTICATED with a message
 * naming what is wrong (unreadable PEM, no CN, a reserved name, no role or
 * another one, e.g. a server certificate). Fills *out (refs 0). */
flame_status fl_identity_from_pem(fl_identity *out, const char *pem);

/* Identities handed to calls are counted; unref at 0 frees. */
void fl_identity_ref(fl_identity *id);
void fl_identity_unref(fl_identity *id);

/* ---- revocation (crl.c) -------------------------------------------------- */
typedef struct fl_crl fl_crl;

/* Loads a PEM X509 CRL. ca_file (may be NULL): the CA certificates (PEM),
 * one of which must have signed it. FLAME_ERR_CONFIG naming
 * cluster.tls.crl_file when it cannot be read, parsed or verified. */
flame_status fl_crl_open(fl_crl **out, const char *crl_file, const char *ca_file);
/* Reloads the file when it changed (checked at most every check_ms; 0:
 * every time). A file that fails to load keeps the old list (logged): a
 * half-written CRL must not un-revoke anything. */
void fl_crl_refresh(fl_crl *crl, int check_ms);
/* Is the serial (upper-case hex as in fl_identity) revoked? */
bool fl_crl_revoked(const fl_crl *crl, const char *serial);
void fl_crl_free(fl_crl *crl);

/* ---- the policy table (policy.c) ------------------------------------------ */

/* What a rule checks beyond the caller's role. */
typedef enum fl_own {
    FL_OWN_NONE,     /* the role is enough */
    FL_OWN_SESSION,  /* the request names a session: users only their own */
    FL_OWN_NODE,     /* the request names a node: nodes only themselves */
    FL_OWN_EXECUTOR, /* the request names an executor: nodes only their own */
} fl_own;

typedef struct fl_rule {
    const char *service;  /* "flame.v1.Frontend" */
    const char *method;   /* "CloseSession" */
    unsigned roles;       /* fl_role bits that may call it */
    fl_own own;
    const char *field;    /* input field naming the object: "session_id",
                           * "task.session_id"; "a|b": the first non-empty */
    const char *verb;     /* for messages: "close", "register"... */
    const char *why;      /* for method-level denials (may be NULL) */
} fl_rule;

/* Answers ownership questions from the owner of the books. Both return NULL
 * when there is no such object (the handler then says NOT_FOUND). */
typedef struct fl_auth_lookup {
    /* The owner of a session ("": admins only, e.g. sessions from before
     * owners were recorded). */
    const char *(*session_owner)(void *ctx, const char *session_id);
    /* The node an executor runs on. */
    const char *(*executor_node)(void *ctx, const char *executor_id);
    void *ctx;
} fl_auth_lookup;

typedef struct fl_policy fl_policy;

/* The table for these services: every method of every descriptor must have
 * exactly one rule whose field names string fields of its input, else
 * FLAME_ERR_INTERNAL naming the method (a method without a rule never runs
 * open). */
flame_status fl_policy_new(fl_policy **out, const ProtobufCServiceDescriptor *const *services,
                           size_t n_services);
void fl_policy_free(fl_policy *p);
/* The rule of "/flame.v1.Frontend/CloseSession", or NULL. Only rules from
 * here may be given to fl_policy_check_request. */
const fl_rule *fl_policy_rule(const fl_policy *p, const char *path);
/* Every rule of the built-in table, n in *n (tests, README). */
const fl_rule *fl_policy_rules(size_t *n);

/* May id call the method at all? RPC_OK, or RPC_PERMISSION_DENIED with a
 * message naming the identity and the method. */
int fl_policy_check_method(const fl_rule *r, const fl_identity *id, char *msg, size_t size);
/* May id make this request (ownership)? req: the unpacked input of the
 * rule's method. RPC_OK, or RPC_PERMISSION_DENIED with a message such as
 * `user "bob" may not close session "alice-x1" (owned by "alice")`. */
int fl_policy_check_request(const fl_rule *r, const fl_identity *id, const ProtobufCMessage *req,
                            const fl_auth_lookup *lk, char *msg, size_t size);

/* ---- the whole: identify, then check (hook.c) ----------------------------- */
typedef struct fl_auth fl_auth;

typedef struct fl_auth_options {
    const char *crl_file;   /* NULL: nothing is revoked */
    const char *ca_file;    /* verifies the CRL (NULL: not verified) */
    fl_role anonymous_role; /* FL_ROLE_NONE or FL_ROLE_USER */
    fl_auth_lookup lookup;
} fl_auth_options;

/* FLAME_ERR_CONFIG (a bad CRL, an anonymous role other than none/user) or
 * FLAME_ERR_INTERNAL (a method without a rule). */
flame_status fl_auth_new(fl_auth **out, const fl_auth_options *opts,
                         const ProtobufCServiceDescriptor *const *services, size_t n_services);
void fl_auth_free(fl_auth *a);

/* The identity of a caller; a new reference on *out. tls false: plaintext
 * (loopback only), the identity `local`, admin. pem NULL on TLS: anonymous
 * (UNAUTHENTICATED when the anonymous role is none). RPC_OK or
 * RPC_UNAUTHENTICATED with the message. */
int fl_auth_identify(fl_auth *a, bool tls, const char *pem, fl_identity **out, char *msg,
                     size_t size);

/* The rpc_server_options.authorize hook (ctx: the fl_auth). With req NULL
 * (a new call) it identifies the caller, attaches the identity to the call
 * and checks the method; with a request it checks ownership. */
int fl_auth_authorize(rpc_call *call, const ProtobufCMessage *req, char *msg, size_t size,
                      void *ctx);
/* The identity the hook attached to a call (never NULL for a call that
 * reached its handler through the hook). */
const fl_identity *fl_auth_call_identity(const rpc_call *call);

#endif
