/* Unit tests of auth/: identities read from certificates made by
 * tests/data/certs.sh (the openssl CLI, fresh each run), the CRL and its
 * reload, the policy table (complete for every flame.v1 method, closed for
 * a method without a rule) and the decisions with their messages.
 * Usage: test_auth CERTS_SH */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "config/endpoint.h"
#include "util/util.h"

#include "backend.pb-c.h"
#include "frontend.pb-c.h"
#include "shim.pb-c.h"

static const char *certs_sh;
static char dir[256];

static char *slurp(const char *name)
{
    char *path = fl_sprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    free(path);
    fl_buf b = { 0 };
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fl_buf_add(&b, chunk, n);
    fclose(f);
    return fl_buf_detach(&b);
}

static char *file_path(const char *name)
{
    return fl_sprintf("%s/%s", dir, name);
}

static void copy_file(const char *from, const char *to)
{
    char *text = slurp(from);
    char *path = file_path(to);
    char *tmp = fl_sprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(rename(tmp, path), 0); /* as an operator's tool replaces it */
    free(tmp);
    free(path);
    free(text);
}

static flame_status identity_of(fl_identity *id, const char *cert)
{
    char *pem = slurp(cert);
    flame_status st = fl_identity_from_pem(id, pem);
    free(pem);
    return st;
}

/* ---- identities ------------------------------------------------------------ */

START_TEST(identities_from_certificates)
{
    fl_identity id;
    ck_assert_int_eq(identity_of(&id, "alice.crt"), FLAME_OK);
    ck_assert_str_eq(id.name, "alice");
    ck_assert_int_eq(id.role, FL_ROLE_USER);
    ck_assert_str_eq(id.serial, "1003");
    ck_assert_int_eq(identity_of(&id, "admin.crt"), FLAME_OK);
    ck_assert_str_eq(id.name, "admin");
    ck_assert_int_eq(id.role, FL_ROLE_ADMIN);
    ck_assert_int_eq(identity_of(&id, "n1.crt"), FLAME_OK);
    ck_assert_str_eq(id.name, "n1");
    ck_assert_int_eq(id.role, FL_ROLE_NODE);
    /* the serial as `openssl x509 -serial` prints it */
    char *serial = slurp("revoked.serial");
    serial[strcspn(serial, "\n")] = 0;
    ck_assert_int_eq(identity_of(&id, "revoked.crt"), FLAME_OK);
    ck_assert_str_eq(id.serial, serial);
    free(serial);
}
END_TEST

START_TEST(certificates_without_a_client_role_are_refused)
{
    fl_identity id;
    ck_assert_int_eq(identity_of(&id, "noou.crt"), FLAME_ERR_UNAUTHENTICATED);
    ck_assert_str_eq(flame_error_last(),
                     "certificate of \"nobody\" has no role (Subject OU admin, node or user)");
    ck_assert_int_eq(identity_of(&id, "badrole.crt"), FLAME_ERR_UNAUTHENTICATED);
    ck_assert_str_eq(flame_error_last(), "certificate of \"eve\" has role \"root\"; a client needs "
                                         "admin, node or user (Subject OU)");
    ck_assert_int_eq(identity_of(&id, "server.crt"), FLAME_ERR_UNAUTHENTICATED);
    ck_assert_str_eq(flame_error_last(), "certificate of \"localhost\" has role \"server\"; a "
                                         "client needs admin, node or user (Subject OU)");
    ck_assert_int_eq(identity_of(&id, "twoou.crt"), FLAME_ERR_UNAUTHENTICATED);
    ck_assert_str_eq(flame_error_last(), "certificate of \"trudy\" has role \"(several)\"; a "
                                         "client needs admin, node or user (Subject OU)");
    ck_assert_int_eq(identity_of(&id, "local.crt"), FLAME_ERR_UNAUTHENTICATED);
    ck_assert_str_eq(flame_error_last(), "certificate of \"local\": the name is reserved");
    ck_assert_int_eq(identity_of(&id, "ca.crt"), FLAME_ERR_UNAUTHENTICATED); /* no OU */
    ck_assert_int_eq(fl_identity_from_pem(&id, "-----BEGIN CERTIFICATE-----\nxx\n"),
                     FLAME_ERR_UNAUTHENTICATED);
    ck_assert_str_eq(flame_error_last(), "the client certificate is not readable PEM");
    ck_assert_int_eq(fl_identity_from_pem(&id, ""), FLAME_ERR_UNAUTHENTICATED);
}
END_TEST

START_TEST(roles_by_name)
{
    ck_assert_int_eq(fl_role_parse("admin"), FL_ROLE_ADMIN);
    ck_assert_int_eq(fl_role_parse("node"), FL_ROLE_NODE);
    ck_assert_int_eq(fl_role_parse("user"), FL_ROLE_USER);
    ck_assert_int_eq(fl_role_parse("none"), FL_ROLE_NONE);
    ck_assert_int_eq(fl_role_parse("server"), -1);
    ck_assert_int_eq(fl_role_parse(NULL), -1);
    ck_assert_str_eq(fl_role_name(FL_ROLE_NODE), "node");
}
END_TEST

/* ---- CRL ----------------------------------------------------------------- */

START_TEST(crl_lists_revoked_serials)
{
    char *crl = file_path("crl.pem"), *ca = file_path("ca.crt");
    fl_crl *c;
    ck_assert_int_eq(fl_crl_open(&c, crl, ca), FLAME_OK);
    fl_identity rev, alice;
    ck_assert_int_eq(identity_of(&rev, "revoked.crt"), FLAME_OK);
    ck_assert_int_eq(identity_of(&alice, "alice.crt"), FLAME_OK);
    ck_assert(fl_crl_revoked(c, rev.serial));
    ck_assert(!fl_crl_revoked(c, alice.serial));
    ck_assert(!fl_crl_revoked(c, ""));
    ck_assert(!fl_crl_revoked(NULL, rev.serial));
    fl_crl_free(c);
    /* without a CA to check against it is read as it is */
    ck_assert_int_eq(fl_crl_open(&c, crl, NULL), FLAME_OK);
    ck_assert(fl_crl_revoked(c, rev.serial));
    fl_crl_free(c);
    free(crl);
    free(ca);
}
END_TEST

START_TEST(bad_crls_are_config_errors)
{
    char *other = file_path("crl-other.pem"), *ca = file_path("ca.crt");
    char *cert = file_path("alice.crt");
    fl_crl *c = NULL;
    ck_assert_int_eq(fl_crl_open(&c, other, ca), FLAME_ERR_CONFIG);
    char *want = fl_sprintf("cluster.tls.crl_file %s: not signed by the CA of "
                            "cluster.tls.ca_file (%s)", other, ca);
    ck_assert_str_eq(flame_error_last(), want);
    free(want);
    ck_assert_int_eq(fl_crl_open(&c, "/nonexistent/crl.pem", ca), FLAME_ERR_CONFIG);
    ck_assert_str_eq(flame_error_last(), "cluster.tls.crl_file /nonexistent/crl.pem: no such file");
    ck_assert_int_eq(fl_crl_open(&c, cert, ca), FLAME_ERR_CONFIG); /* a certificate, not a CRL */
    ck_assert(strstr(flame_error_last(), "not a PEM X509 CRL"));
    ck_assert_ptr_null(c);
    free(other);
    free(ca);
    free(cert);
}
END_TEST

START_TEST(crl_reloads_when_the_file_changes)
{
    copy_file("crl-empty.pem", "live-crl.pem");
    char *live = file_path("live-crl.pem"), *ca = file_path("ca.crt");
    fl_identity rev;
    ck_assert_int_eq(identity_of(&rev, "revoked.crt"), FLAME_OK);
    fl_crl *c;
    ck_assert_int_eq(fl_crl_open(&c, live, ca), FLAME_OK);
    ck_assert(!fl_crl_revoked(c, rev.serial));
    copy_file("crl.pem", "live-crl.pem");
    fl_crl_refresh(c, 60000); /* not yet: looked at most once a minute here */
    ck_assert(!fl_crl_revoked(c, rev.serial));
    fl_crl_refresh(c, 0);
    ck_assert(fl_crl_revoked(c, rev.serial));
    /* a broken or foreign file keeps what was revoked */
    copy_file("alice.crt", "live-crl.pem");
    fl_crl_refresh(c, 0);
    ck_assert(fl_crl_revoked(c, rev.serial));
    copy_file("crl-other.pem", "live-crl.pem");
    fl_crl_refresh(c, 0);
    ck_assert(fl_crl_revoked(c, rev.serial));
    /* a good one again is taken */
    copy_file("crl-empty.pem", "live-crl.pem");
    fl_crl_refresh(c, 0);
    ck_assert(!fl_crl_revoked(c, rev.serial));
    fl_crl_free(c);
    free(live);
    free(ca);
}
END_TEST

/* ---- the policy table ------------------------------------------------------ */

static const ProtobufCServiceDescriptor *const flame_services[] = {
    &flame__v1__frontend__descriptor, &flame__v1__backend__descriptor
};

START_TEST(policy_covers_every_method)
{
    fl_policy *p;
    ck_assert_int_eq(fl_policy_new(&p, flame_services, 2), FLAME_OK);
    size_t n_rules, n_methods = 0;
    fl_policy_rules(&n_rules);
    for (size_t i = 0; i < 2; i++) {
        const ProtobufCServiceDescriptor *d = flame_services[i];
        for (unsigned j = 0; j < d->n_methods; j++, n_methods++) {
            char *path = fl_sprintf("/%s/%s", d->name, d->methods[j].name);
            const fl_rule *r = fl_policy_rule(p, path);
            ck_assert_msg(r != NULL, "%s has no rule", path);
            ck_assert_msg(r->roles & FL_ROLE_ADMIN, "%s: admins may do everything", path);
            ck_assert_msg(i == 0 || !(r->roles & FL_ROLE_USER), "%s: users never call the Backend",
                          path);
            ck_assert_msg(i == 1 || !(r->roles & FL_ROLE_NODE), "%s: nodes speak only the Backend",
                          path);
            free(path);
        }
    }
    ck_assert_uint_eq(n_rules, n_methods); /* and no rule for a method that is not there */
    ck_assert_ptr_null(fl_policy_rule(p, "/flame.v1.Frontend/Nope"));
    fl_policy_free(p);
}
END_TEST

START_TEST(a_method_without_a_rule_is_a_startup_failure)
{
    const ProtobufCServiceDescriptor *const svcs[] = { &flame__v1__frontend__descriptor,
                                                       &flame__v1__instance__descriptor };
    fl_policy *p = NULL;
    ck_assert_int_eq(fl_policy_new(&p, svcs, 2), FLAME_ERR_INTERNAL);
    ck_assert_str_eq(flame_error_last(), "flame.v1.Instance/OnSessionEnter has no authorization "
                                         "rule (exactly one): add it to libflame/auth/policy.c");
    ck_assert_ptr_null(p);
}
END_TEST

/* ---- decisions ------------------------------------------------------------- */

static fl_policy *policy;
static char msg[512];

static const char *owner_of(void *ctx, const char *id)
{
    (void)ctx;
    if (!strcmp(id, "alice-x1"))
        return "alice";
    if (!strcmp(id, "old-1"))
        return "";
    return NULL;
}

static const char *node_of(void *ctx, const char *id)
{
    (void)ctx;
    return !strcmp(id, "e1") ? "n1" : NULL;
}

static const fl_auth_lookup lookup = { owner_of, node_of, NULL };

static fl_identity who(const char *name, fl_role role)
{
    fl_identity id = { "", role, "", -1 };
    snprintf(id.name, sizeof id.name, "%s", name);
    return id;
}

static int method(const char *path, const fl_identity *id)
{
    const fl_rule *r = fl_policy_rule(policy, path);
    ck_assert_ptr_nonnull(r);
    msg[0] = 0;
    return fl_policy_check_method(r, id, msg, sizeof msg);
}

static int request(const char *path, const fl_identity *id, const ProtobufCMessage *req)
{
    const fl_rule *r = fl_policy_rule(policy, path);
    ck_assert_ptr_nonnull(r);
    msg[0] = 0;
    int code = fl_policy_check_method(r, id, msg, sizeof msg);
    return code ? code : fl_policy_check_request(r, id, req, &lookup, msg, sizeof msg);
}

static void setup_policy(void)
{
    ck_assert_int_eq(fl_policy_new(&policy, flame_services, 2), FLAME_OK);
}

static void teardown_policy(void)
{
    fl_policy_free(policy);
    policy = NULL;
}

#define FE(m) "/flame.v1.Frontend/" m
#define BE(m) "/flame.v1.Backend/" m

START_TEST(method_level_rules)
{
    fl_identity admin = who("root", FL_ROLE_ADMIN), bob = who("bob", FL_ROLE_USER),
                n1 = who("n1", FL_ROLE_NODE);
    ck_assert_int_eq(method(BE("RegisterNode"), &bob), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "user \"bob\" may not call Backend.RegisterNode: the Backend is for "
                          "executor managers (role node)");
    ck_assert_int_eq(method(FE("CreateSession"), &n1), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "node \"n1\" may not call Frontend.CreateSession: a node certificate "
                          "speaks only the Backend");
    /* users write sandboxed applications of their own: the handlers check
     * the level and the owner (tests/interop/test_authz.py) */
    ck_assert_int_eq(method(FE("RegisterApplication"), &bob), RPC_OK);
    ck_assert_int_eq(method(FE("UpdateApplication"), &bob), RPC_OK);
    ck_assert_int_eq(method(FE("UnregisterApplication"), &bob), RPC_OK);
    ck_assert_int_eq(method(FE("RegisterApplication"), &n1), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(method(FE("ListNodes"), &bob), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(method(FE("ListExecutor"), &bob), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(method(FE("GetNode"), &bob), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(method(FE("CreateSession"), &bob), RPC_OK);
    ck_assert_int_eq(method(FE("ListSession"), &bob), RPC_OK);
    ck_assert_int_eq(method(FE("ListApplication"), &bob), RPC_OK);
    ck_assert_int_eq(method(FE("GetApplication"), &bob), RPC_OK);
    ck_assert_int_eq(method(BE("ExecutorStream"), &n1), RPC_OK);
    size_t n;
    const fl_rule *rules = fl_policy_rules(&n);
    for (size_t i = 0; i < n; i++) { /* admins may call everything */
        char *path = fl_sprintf("/%s/%s", rules[i].service, rules[i].method);
        ck_assert_int_eq(method(path, &admin), RPC_OK);
        free(path);
    }
}
END_TEST

START_TEST(users_touch_only_their_own_sessions)
{
    fl_identity alice = who("alice", FL_ROLE_USER), bob = who("bob", FL_ROLE_USER),
                admin = who("root", FL_ROLE_ADMIN);
    Flame__V1__CloseSessionRequest close = FLAME__V1__CLOSE_SESSION_REQUEST__INIT;
    close.session_id = "alice-x1";
    ck_assert_int_eq(request(FE("CloseSession"), &bob, &close.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "user \"bob\" may not close session \"alice-x1\" (owned by \"alice\")");
    ck_assert_int_eq(request(FE("CloseSession"), &alice, &close.base), RPC_OK);
    ck_assert_int_eq(request(FE("CloseSession"), &admin, &close.base), RPC_OK);
    /* a session nobody has: the handler says NOT_FOUND */
    close.session_id = "nope";
    ck_assert_int_eq(request(FE("CloseSession"), &bob, &close.base), RPC_OK);
    /* sessions from before owners were recorded are the admins' */
    close.session_id = "old-1";
    ck_assert_int_eq(request(FE("CloseSession"), &alice, &close.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "user \"alice\" may not close session \"old-1\" (created before owners "
                          "were recorded: admins only)");
    ck_assert_int_eq(request(FE("CloseSession"), &admin, &close.base), RPC_OK);

    /* the session named one level down */
    Flame__V1__TaskSpec spec = FLAME__V1__TASK_SPEC__INIT;
    spec.session_id = "alice-x1";
    Flame__V1__CreateTaskRequest ct = FLAME__V1__CREATE_TASK_REQUEST__INIT;
    ct.task = &spec;
    ck_assert_int_eq(request(FE("CreateTask"), &bob, &ct.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "user \"bob\" may not create tasks in session \"alice-x1\" (owned by "
                          "\"alice\")");
    ck_assert_int_eq(request(FE("CreateTask"), &alice, &ct.base), RPC_OK);
    ct.task = NULL; /* nothing named: the handler refuses it */
    ck_assert_int_eq(request(FE("CreateTask"), &bob, &ct.base), RPC_OK);

    Flame__V1__GetTaskRequest gt = FLAME__V1__GET_TASK_REQUEST__INIT;
    gt.session_id = "alice-x1";
    gt.task_id = "1";
    ck_assert_int_eq(request(FE("GetTask"), &bob, &gt.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "user \"bob\" may not read tasks of session \"alice-x1\" (owned by "
                          "\"alice\")");
    Flame__V1__RunSessionRequest rs = FLAME__V1__RUN_SESSION_REQUEST__INIT;
    rs.session_id = "alice-x1";
    ck_assert_int_eq(request(FE("RunSession"), &bob, &rs.base), RPC_PERMISSION_DENIED);
    rs.session_id = ""; /* later messages of a stream name no session */
    ck_assert_int_eq(request(FE("RunSession"), &bob, &rs.base), RPC_OK);
}
END_TEST

START_TEST(nodes_speak_only_for_themselves)
{
    fl_identity n1 = who("n1", FL_ROLE_NODE), n2 = who("n2", FL_ROLE_NODE),
                admin = who("root", FL_ROLE_ADMIN);
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    Flame__V1__NodeSpec ns = FLAME__V1__NODE_SPEC__INIT;
    Flame__V1__Node node = FLAME__V1__NODE__INIT;
    node.metadata = &md;
    node.spec = &ns;
    md.name = "n1";
    Flame__V1__RegisterNodeRequest reg = FLAME__V1__REGISTER_NODE_REQUEST__INIT;
    reg.node = &node;
    ck_assert_int_eq(request(BE("RegisterNode"), &n2, &reg.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "node \"n2\" may not register node \"n1\": a node speaks only for itself");
    ck_assert_int_eq(request(BE("RegisterNode"), &n1, &reg.base), RPC_OK);
    ck_assert_int_eq(request(BE("RegisterNode"), &admin, &reg.base), RPC_OK);
    /* no metadata name: the host name is the node's name */
    md.name = "";
    ns.hostname = "n1";
    ck_assert_int_eq(request(BE("RegisterNode"), &n2, &reg.base), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(request(BE("RegisterNode"), &n1, &reg.base), RPC_OK);
    node.metadata = NULL;
    ck_assert_int_eq(request(BE("RegisterNode"), &n2, &reg.base), RPC_PERMISSION_DENIED);

    Flame__V1__NodeHeartbeat hb = FLAME__V1__NODE_HEARTBEAT__INIT;
    hb.node_name = "n1";
    Flame__V1__WatchNodeRequest wn = FLAME__V1__WATCH_NODE_REQUEST__INIT;
    wn.heartbeat = &hb;
    ck_assert_int_eq(request(BE("WatchNode"), &n2, &wn.base), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(request(BE("WatchNode"), &n1, &wn.base), RPC_OK);
    Flame__V1__ReleaseNodeRequest rel = FLAME__V1__RELEASE_NODE_REQUEST__INIT;
    rel.node_name = "n1";
    ck_assert_int_eq(request(BE("ReleaseNode"), &n2, &rel.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "node \"n2\" may not release node \"n1\": a node speaks only for itself");

    /* executors: the node they run on */
    Flame__V1__BindExecutorRequest bind = FLAME__V1__BIND_EXECUTOR_REQUEST__INIT;
    bind.executor_id = "e1";
    ck_assert_int_eq(request(BE("BindExecutor"), &n2, &bind.base), RPC_PERMISSION_DENIED);
    ck_assert_str_eq(msg, "node \"n2\" may not bind executor \"e1\" (on node \"n1\")");
    ck_assert_int_eq(request(BE("BindExecutor"), &n1, &bind.base), RPC_OK);
    Flame__V1__ExecutorUpdate up = FLAME__V1__EXECUTOR_UPDATE__INIT;
    up.executor_id = "e1";
    ck_assert_int_eq(request(BE("ExecutorStream"), &n2, &up.base), RPC_PERMISSION_DENIED);
    ck_assert_int_eq(request(BE("ExecutorStream"), &n1, &up.base), RPC_OK);
    up.executor_id = "e9"; /* unknown: the handler says NOT_FOUND */
    ck_assert_int_eq(request(BE("ExecutorStream"), &n2, &up.base), RPC_OK);
}
END_TEST

/* ---- identify: plaintext, anonymous, revoked -------------------------------- */

START_TEST(identify_callers)
{
    const ProtobufCServiceDescriptor *const svcs[] = { &flame__v1__frontend__descriptor,
                                                       &flame__v1__backend__descriptor };
    char *crl = file_path("crl.pem"), *ca = file_path("ca.crt");
    fl_auth_options o = { crl, ca, FL_ROLE_NONE, lookup };
    fl_auth *a;
    ck_assert_int_eq(fl_auth_new(&a, &o, svcs, 2), FLAME_OK);
    fl_identity *id;
    char m[256];
    ck_assert_int_eq(fl_auth_identify(a, false, NULL, &id, m, sizeof m), RPC_OK);
    ck_assert_str_eq(id->name, "local");
    ck_assert_int_eq(id->role, FL_ROLE_ADMIN);
    fl_identity_unref(id);
    ck_assert_int_eq(fl_auth_identify(a, true, NULL, &id, m, sizeof m), RPC_UNAUTHENTICATED);
    ck_assert_str_eq(m, "a client certificate is required (cluster.auth.anonymous_role is none)");
    char *pem = slurp("alice.crt");
    for (int i = 0; i < 2; i++) { /* the second one from the cache */
        ck_assert_int_eq(fl_auth_identify(a, true, pem, &id, m, sizeof m), RPC_OK);
        ck_assert_str_eq(id->name, "alice");
        ck_assert_int_eq(id->role, FL_ROLE_USER);
        fl_identity_unref(id);
    }
    free(pem);
    pem = slurp("revoked.crt");
    ck_assert_int_eq(fl_auth_identify(a, true, pem, &id, m, sizeof m), RPC_UNAUTHENTICATED);
    ck_assert_str_eq(m, "certificate of mallory (serial 1007) is revoked");
    free(pem);
    pem = slurp("badrole.crt");
    ck_assert_int_eq(fl_auth_identify(a, true, pem, &id, m, sizeof m), RPC_UNAUTHENTICATED);
    ck_assert(strstr(m, "has role \"root\""));
    free(pem);
    fl_auth_free(a);

    o.anonymous_role = FL_ROLE_USER;
    o.crl_file = NULL;
    ck_assert_int_eq(fl_auth_new(&a, &o, svcs, 2), FLAME_OK);
    ck_assert_int_eq(fl_auth_identify(a, true, NULL, &id, m, sizeof m), RPC_OK);
    ck_assert_str_eq(id->name, "anonymous");
    ck_assert_int_eq(id->role, FL_ROLE_USER);
    fl_auth_free(a);

    o.anonymous_role = FL_ROLE_ADMIN;
    ck_assert_int_eq(fl_auth_new(&a, &o, svcs, 2), FLAME_ERR_CONFIG);
    ck_assert_str_eq(flame_error_last(),
                     "cluster.auth.anonymous_role: admin is not allowed (none or user)");
    o.anonymous_role = FL_ROLE_NONE;
    o.crl_file = "/nonexistent.pem";
    ck_assert_int_eq(fl_auth_new(&a, &o, svcs, 2), FLAME_ERR_CONFIG);
    free(crl);
    free(ca);
}
END_TEST

START_TEST(loopback_endpoints)
{
    static const struct {
        const char *url;
        bool loopback;
    } cases[] = {
        { "http://127.0.0.1:8080", true }, { "http://127.1.2.3:1", true },
        { "http://localhost:1", true },    { "http://[::1]:8080", true },
        { "http://0.0.0.0:8080", false },  { "http://[::]:8080", false },
        { "http://10.0.0.1:8080", false }, { "http://flame.example.com:8080", false },
        { "unix:/tmp/x.sock", true },
    };
    for (size_t i = 0; i < FL_ARRAY_LEN(cases); i++) {
        fl_endpoint ep;
        if (!strncmp(cases[i].url, "unix:", 5)) {
            ep.target = (char *)cases[i].url;
            ck_assert(fl_endpoint_loopback(&ep));
            continue;
        }
        ck_assert_int_eq(fl_endpoint_parse(&ep, cases[i].url, FLAME_ERR_CONFIG), FLAME_OK);
        ck_assert_msg(fl_endpoint_loopback(&ep) == cases[i].loopback, "%s", cases[i].url);
        fl_endpoint_clear(&ep);
    }
}
END_TEST

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_auth CERTS_SH\n");
        return 2;
    }
    certs_sh = argv[1];
    snprintf(dir, sizeof dir, "/tmp/flame-test-auth-%d", getpid());
    char *cmd = fl_sprintf("sh '%s' '%s'", certs_sh, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_auth: %s failed\n", cmd);
        return 1;
    }
    free(cmd);
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("identity");
    tcase_add_test(tc, identities_from_certificates);
    tcase_add_test(tc, certificates_without_a_client_role_are_refused);
    tcase_add_test(tc, roles_by_name);
    tcase_add_test(tc, crl_lists_revoked_serials);
    tcase_add_test(tc, bad_crls_are_config_errors);
    tcase_add_test(tc, crl_reloads_when_the_file_changes);
    tcase_add_test(tc, identify_callers);
    tcase_add_test(tc, loopback_endpoints);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("policy");
    tcase_add_checked_fixture(tp, setup_policy, teardown_policy);
    tcase_add_test(tp, policy_covers_every_method);
    tcase_add_test(tp, a_method_without_a_rule_is_a_startup_failure);
    tcase_add_test(tp, method_level_rules);
    tcase_add_test(tp, users_touch_only_their_own_sessions);
    tcase_add_test(tp, nodes_speak_only_for_themselves);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cmd = fl_sprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_auth: cannot remove %s\n", dir);
    free(cmd);
    return failed ? 1 : 0;
}
