/* Unit tests of the cluster config (config/cluster.c) and endpoint parsing
 * and resolution (config/endpoint.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/endpoint.h"
#include "config/tls.h"
#include "flame/server.h"
#include "util/util.h"

#include "helpers.h"

START_TEST(full_config)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n"
        "  name: test\n"
        "  endpoint: \"http://127.0.0.1:9999\"\n"
        "  storage: none\n"
        "  resreq: \"cpu=2,mem=4g\"\n"
        "  policies: [priority, drf]\n"
        "  schedule_interval: 250\n"
        "  node_timeout: 4s\n")), FLAME_OK);
    ck_assert_str_eq(c->name, "test");
    ck_assert_str_eq(c->endpoint, "http://127.0.0.1:9999");
    ck_assert_str_eq(c->storage, "none");
    ck_assert_uint_eq(c->resreq.cpu, 2);
    ck_assert_uint_eq(c->resreq.memory, 4ULL << 30);
    ck_assert_uint_eq(c->policies_len, 2);
    ck_assert_str_eq(c->policies[1], "drf");
    ck_assert_int_eq(c->schedule_interval_ms, 250);
    ck_assert_int_eq(c->node_timeout_ms, 4000);
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  node_timeout: 1500ms\n")),
                     FLAME_OK);
    ck_assert_int_eq(c->node_timeout_ms, 1500);
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  node_timeout: 2500\n")),
                     FLAME_OK);
    ck_assert_int_eq(c->node_timeout_ms, 2500);
    flame_cluster_config_free(c);
    /* busy polling: µs, "us" or none; 0 turns it off */
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  busy_poll: 80us\n")),
                     FLAME_OK);
    ck_assert_int_eq(c->busy_poll_us, 80);
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  busy_poll: 0\n")),
                     FLAME_OK);
    ck_assert_int_eq(c->busy_poll_us, 0);
    flame_cluster_config_free(c);
}
END_TEST

START_TEST(defaults_and_mapping_resreq)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  resreq: {cpu: 4, mem: 512m}\n")), FLAME_OK);
    ck_assert_str_eq(c->endpoint, "http://127.0.0.1:8080");
    ck_assert_str_eq(c->storage, "sqlite://flame.db");
    ck_assert_uint_eq(c->resreq.cpu, 4);
    ck_assert_uint_eq(c->resreq.memory, 512ULL << 20);
    ck_assert_int_eq(c->schedule_interval_ms, 500);
    ck_assert_int_eq(c->node_timeout_ms, 10000);
    ck_assert_int_eq(c->busy_poll_us, 50);
    ck_assert_int_eq(c->warm_pool, 2);
    ck_assert_int_eq(c->warm_pool_total, 8);
    flame_cluster_config_free(c);
    /* Flame's own executors: keys are accepted beside ours */
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  name: x\nexecutors:\n  shim: host\n  warm_pool: 0\n"
        "  warm_pool_total: 3\n")), FLAME_OK);
    ck_assert_int_eq(c->warm_pool, 0);
    ck_assert_int_eq(c->warm_pool_total, 3);
    flame_cluster_config_free(c);
}
END_TEST

static void expect_bad(const char *yaml, const char *needle)
{
    flame_cluster_config *c = NULL;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(yaml)), FLAME_ERR_CONFIG);
    ck_assert_msg(strstr(flame_error_last(), needle), "\"%s\" lacks \"%s\"", flame_error_last(),
                  needle);
    ck_assert_ptr_null(c);
}

START_TEST(bad_configs_name_the_key)
{
    expect_bad("cluster:\n  schedule_interval: soon\n", "cluster.schedule_interval");
    expect_bad("cluster:\n  schedule_interval: -5\n", "cluster.schedule_interval");
    expect_bad("cluster:\n  node_timeout: soon\n", "cluster.node_timeout");
    expect_bad("cluster:\n  node_timeout: 5m\n", "cluster.node_timeout");
    expect_bad("cluster:\n  node_timeout: 10\n", "cluster.node_timeout: expected a time");
    expect_bad("cluster:\n  node_timeout: 2h\n", "cluster.node_timeout");
    expect_bad("cluster:\n  busy_poll: 50ms\n", "cluster.busy_poll: expected a time");
    expect_bad("cluster:\n  busy_poll: -1\n", "cluster.busy_poll");
    expect_bad("cluster:\n  busy_poll: 20000\n", "cluster.busy_poll");
    expect_bad("cluster:\n  name: x\nexecutors:\n  warm_pool: -1\n", "executors.warm_pool");
    expect_bad("cluster:\n  name: x\nexecutors:\n  warm_pool_total: lots\n",
               "executors.warm_pool_total");
    expect_bad("cluster:\n  resreq: {cpu: many}\n", "cluster.resreq.cpu");
    expect_bad("cluster:\n  storage: mysql://db\n", "cluster.storage");
    expect_bad("cluster:\n  endpoint: nowhere\n", "cluster.endpoint");
    expect_bad("cluster:\n  endpoint: [a, b]\n", "cluster.endpoint");
    expect_bad("cluster:\n  endpoint: http://noport\n",
               "cluster.endpoint: endpoint \"http://noport\": expected http://HOST:PORT");
    expect_bad("cluster:\n  resreq: \"cpu=lots\"\n", "cluster.resreq: ");
    expect_bad("cluster: 5\n", "cluster");
    expect_bad("other: 1\n", "cluster");
    expect_bad("cluster:\n  name: [unclosed\n", "invalid YAML");
    expect_bad("", "empty");
    expect_bad("cluster:\n  tls: yes\n", "cluster.tls: expected a mapping");
    expect_bad("cluster:\n  tls: {ca_file: ca.crt}\n",
               "cluster.tls.cert_file: required when cluster.tls is present");
    expect_bad("cluster:\n  tls: {cert_file: s.crt}\n", "cluster.tls.key_file: required");
    expect_bad("cluster:\n  tls: {cert_file: s.crt, key_file: s.key, mutual: true}\n",
               "cluster.tls.ca_file: required with mutual: true");
    expect_bad("cluster:\n  tls: {cert_file: s.crt, key_file: s.key, ca_file: c, mutual: maybe}\n",
               "cluster.tls.mutual: expected true or false");
    expect_bad("cluster:\n  auth: {anonymous_role: admin}\n",
               "cluster.auth.anonymous_role: must not be admin");
    expect_bad("cluster:\n  auth: {anonymous_role: root}\n",
               "cluster.auth.anonymous_role: expected none or user");
    expect_bad("cluster:\n  auth: none\n", "cluster.auth: expected a mapping");
    /* a misspelt key is named, at every level */
    expect_bad("cluster: {name: a}\ncahce: {}\n", ":2: cahce: unknown key");
    expect_bad("cluster:\n  schedul_interval: 5\n", "cluster.schedul_interval: unknown key");
    expect_bad("cluster:\n  limits: {max_task_per_request: 5}\n",
               "cluster.limits.max_task_per_request: unknown key");
    expect_bad("cluster:\n  tls: {cert_file: s.crt, key_file: s.key, ca: c}\n",
               "cluster.tls.ca: unknown key");
    expect_bad("cluster:\n  auth: {anonymous: none}\n", "cluster.auth.anonymous: unknown key");
    expect_bad("cluster:\n  recovery: {session: {retry_limit: 3}}\n",
               "cluster.recovery.session.retry_limit: unknown key");
}
END_TEST

START_TEST(tls_and_auth_config)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n"
        "  endpoint: https://127.0.0.1:8443\n"
        "  tls:\n"
        "    cert_file: /etc/flame/server.crt\n"
        "    key_file: /etc/flame/server.key\n"
        "    ca_file: /etc/flame/ca.crt\n"
        "    mutual: true\n"
        "    crl_file: /etc/flame/crl.pem\n"
        "  auth:\n"
        "    anonymous_role: user\n")), FLAME_OK);
    ck_assert_str_eq(c->endpoint, "https://127.0.0.1:8443");
    ck_assert_str_eq(c->tls_cert_file, "/etc/flame/server.crt");
    ck_assert_str_eq(c->tls_key_file, "/etc/flame/server.key");
    ck_assert_str_eq(c->tls_ca_file, "/etc/flame/ca.crt");
    ck_assert_int_eq(c->tls_mutual, 1);
    ck_assert_str_eq(c->tls_crl_file, "/etc/flame/crl.pem");
    ck_assert_str_eq(c->auth_anonymous_role, "user");
    /* the files are the session manager's to check, at its start */
    fl_server_tls t;
    ck_assert_int_eq(fl_server_tls_resolve(&t, NULL, c), FLAME_ERR_CONFIG);
    ck_assert_str_eq(flame_error_last(),
                     "cluster.tls.cert_file: /etc/flame/server.crt: No such file or directory");
    fl_server_tls_clear(&t);
    /* options override the file */
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    o.tls_crl_file = "/nonexistent/crl.pem";
    o.auth_anonymous_role = "admin";
    ck_assert_int_eq(fl_server_tls_resolve(&t, &o, c), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "cluster.auth.anonymous_role: must not be"));
    fl_server_tls_clear(&t);
    flame_cluster_config_free(c);
    /* Flame's shape: server-side TLS only */
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  tls: {cert_file: a.crt, key_file: a.key}\n")), FLAME_OK);
    ck_assert_int_eq(c->tls_mutual, 0);
    ck_assert_ptr_null(c->tls_ca_file);
    ck_assert_ptr_null(c->auth_anonymous_role);
    flame_cluster_config_free(c);
    /* no tls: plaintext, and nothing to check */
    ck_assert_int_eq(fl_server_tls_resolve(&t, NULL, NULL), FLAME_OK);
    ck_assert(!rpc_tls_enabled(&t.tls));
    fl_server_tls_clear(&t);
}
END_TEST

START_TEST(client_tls_resolution)
{
    fl_endpoint ep;
    unsetenv("FLAME_ENDPOINT");
    setenv("FLAME_CONFIG", scratch_write("current-context: a\ncontexts:\n"
                                      "  - name: a\n    cluster:\n"
                                      "      endpoint: https://a:1\n"
                                      "      tls: {ca_file: /pki/ca.crt}\n"), 1);
    setenv("FLAME_CA_FILE", "/env/ca.crt", 1);
    setenv("FLAME_CERT_FILE", "/env/me.crt", 1);
    setenv("FLAME_KEY_FILE", "/env/me.key", 1);
    ck_assert_int_eq(fl_endpoint_resolve(&ep, NULL), FLAME_OK);
    ck_assert(ep.tls);
    ck_assert_str_eq(ep.url, "https://a:1");
    ck_assert_str_eq(ep.ca_file, "/env/ca.crt"); /* the environment wins */
    ck_assert_str_eq(ep.cert_file, "/env/me.crt");
    ck_assert_str_eq(ep.key_file, "/env/me.key");
    fl_endpoint_clear(&ep);
    /* the context fills in what the environment leaves out, also for an
     * endpoint given otherwise */
    unsetenv("FLAME_CA_FILE");
    ck_assert_int_eq(fl_endpoint_resolve(&ep, "https://b:2"), FLAME_OK);
    ck_assert_str_eq(ep.ca_file, "/pki/ca.crt");
    ck_assert_str_eq(ep.cert_file, "/env/me.crt");
    fl_endpoint_clear(&ep);
    setenv("FLAME_CA_FILE", "/env/ca.crt", 1);
    unsetenv("FLAME_CONFIG");
    ck_assert_int_eq(fl_endpoint_resolve(&ep, "https://b:2"), FLAME_OK);
    ck_assert_str_eq(ep.ca_file, "/env/ca.crt");
    fl_endpoint_clear(&ep);
    unsetenv("FLAME_CA_FILE");
    unsetenv("FLAME_CERT_FILE");
    unsetenv("FLAME_KEY_FILE");
}
END_TEST

START_TEST(limits_block)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  name: x\n")), FLAME_OK);
    ck_assert_uint_eq(c->limits.max_tasks_per_request, 0); /* 0: the default */
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n"
        "  limits:\n"
        "    max_tasks_per_request: 100\n"
        "    max_message_size: 8m\n"
        "    max_send_queue: 512k\n"
        "    max_concurrent_streams: 10\n"
        "    handshake_timeout: 3000\n"
        "    idle_timeout: 60000\n"
        "    keepalive: 30000\n"
        "    shutdown_grace: 500\n")), FLAME_OK);
    ck_assert_uint_eq(c->limits.max_tasks_per_request, 100);
    ck_assert_uint_eq(c->limits.max_message_size, 8u << 20);
    ck_assert_uint_eq(c->limits.max_send_queue, 512u << 10);
    ck_assert_int_eq(c->limits.max_concurrent_streams, 10);
    ck_assert_int_eq(c->limits.handshake_timeout_ms, 3000);
    ck_assert_int_eq(c->limits.idle_timeout_ms, 60000);
    ck_assert_int_eq(c->limits.keepalive_ms, 30000);
    ck_assert_int_eq(c->limits.shutdown_grace_ms, 500);
    flame_cluster_config_free(c);
    expect_bad("cluster:\n  limits: 5\n", "cluster.limits");
    expect_bad("cluster:\n  limits:\n    max_tasks_per_request: 0\n",
               "cluster.limits.max_tasks_per_request: must be between 1 and");
    expect_bad("cluster:\n  limits:\n    max_message_size: 2x\n",
               "cluster.limits.max_message_size: expected a byte count");
    expect_bad("cluster:\n  limits:\n    max_message_size: 4g\n", "cluster.limits.max_message_size");
    expect_bad("cluster:\n  limits:\n    shutdown_grace: soon\n", "cluster.limits.shutdown_grace");
}
END_TEST

START_TEST(recovery_retry_limits)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  name: x\n")), FLAME_OK);
    ck_assert_uint_eq(c->session_retry_limits, 5); /* Flame's default */
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  recovery:\n    session:\n      retry_limits: 2\n")), FLAME_OK);
    ck_assert_uint_eq(c->session_retry_limits, 2);
    flame_cluster_config_free(c);
    expect_bad("cluster:\n  recovery: 3\n", "cluster.recovery: expected a mapping");
    expect_bad("cluster:\n  recovery:\n    session: 3\n",
               "cluster.recovery.session: expected a mapping");
    expect_bad("cluster:\n  recovery:\n    session:\n      retry_limits: 0\n",
               "cluster.recovery.session.retry_limits: must be between 1 and");
    expect_bad("cluster:\n  recovery:\n    session:\n      retry_limits: many\n",
               "cluster.recovery.session.retry_limits");
}
END_TEST

START_TEST(cache_section)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  name: x\n")), FLAME_OK);
    ck_assert_str_eq(c->cache_endpoint, "grpc://127.0.0.1:9090");
    ck_assert_ptr_null(c->cache_storage);
    ck_assert_str_eq(c->cache_eviction_policy, "lru");
    ck_assert_uint_eq(c->cache_max_memory, 1ull << 30);
    ck_assert_uint_eq(c->cache_max_objects, 0);
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  name: x\n"
        "cache:\n"
        "  endpoint: grpcs://10.0.0.1:9191\n"
        "  network_interface: \"eth.*\"\n"
        "  storage: fs:///var/lib/flame/cache\n"
        "  eviction: {policy: none, max_memory: 512M, max_objects: 7}\n"
        "  tls: {cert_file: /c.crt, key_file: /c.key, ca_file: /ca.crt}\n")), FLAME_OK);
    ck_assert_str_eq(c->cache_endpoint, "grpcs://10.0.0.1:9191");
    ck_assert_str_eq(c->cache_network_interface, "eth.*");
    ck_assert_str_eq(c->cache_storage, "fs:///var/lib/flame/cache");
    ck_assert_str_eq(c->cache_eviction_policy, "none");
    ck_assert_uint_eq(c->cache_max_memory, 512ull << 20);
    ck_assert_uint_eq(c->cache_max_objects, 7);
    ck_assert_str_eq(c->cache_tls_cert_file, "/c.crt");
    ck_assert_str_eq(c->cache_tls_key_file, "/c.key");
    ck_assert_str_eq(c->cache_tls_ca_file, "/ca.crt");
    flame_cluster_config_free(c);

    /* env overrides */
    setenv("FLAME_CACHE_STORAGE", "/tmp/x", 1);
    setenv("FLAME_CACHE_MAX_MEMORY", "2G", 1);
    setenv("FLAME_CACHE_MAX_OBJECTS", "3", 1);
    setenv("FLAME_CACHE_EVICTION_POLICY", "none", 1);
    ck_assert_int_eq(flame_cluster_config_load(&c, NULL), FLAME_OK);
    ck_assert_str_eq(c->cache_storage, "/tmp/x");
    ck_assert_uint_eq(c->cache_max_memory, 2ull << 30);
    ck_assert_uint_eq(c->cache_max_objects, 3);
    ck_assert_str_eq(c->cache_eviction_policy, "none");
    ck_assert_str_eq(c->cache_endpoint, "grpc://127.0.0.1:9090");
    flame_cluster_config_free(c);
    setenv("FLAME_CACHE_MAX_MEMORY", "lots", 1);
    c = NULL;
    ck_assert_int_eq(flame_cluster_config_load(&c, NULL), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "FLAME_CACHE_MAX_MEMORY"));
    unsetenv("FLAME_CACHE_STORAGE");
    unsetenv("FLAME_CACHE_MAX_MEMORY");
    unsetenv("FLAME_CACHE_MAX_OBJECTS");
    unsetenv("FLAME_CACHE_EVICTION_POLICY");

    static const struct { const char *yaml, *key; } bads[] = {
        { "cache:\n  endpoint: ftp://x:1\n", "cache.endpoint" },
        { "cache:\n  endpoint: grpc://x:99999\n", "cache.endpoint" },
        { "cache:\n  endpoin: grpc://x:1\n", "cache.endpoin" },
        { "cache:\n  eviction: {policy: fifo}\n", "cache.eviction.policy" },
        { "cache:\n  eviction: {max_memory: lots}\n", "cache.eviction.max_memory" },
        { "cache:\n  eviction: {max_objects: -1}\n", "cache.eviction.max_objects" },
        { "cache:\n  eviction: {size: 1}\n", "cache.eviction.size" },
        { "cache:\n  tls: {cert_file: /a}\n", "cache.tls.key_file" },
        { "cache:\n  tls: {cert_file: /a, key_file: /b, mutual: true}\n", "cache.tls.mutual" },
        { "cache:\n  endpoint: grpcs://x:1\n", "cache.tls" },
        { "cache: [1]\n", "cache" },
    };
    for (size_t i = 0; i < FL_ARRAY_LEN(bads); i++) {
        char text[256];
        snprintf(text, sizeof text, "cluster:\n  name: x\n%s", bads[i].yaml);
        c = NULL;
        ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(text)), FLAME_ERR_CONFIG);
        ck_assert_msg(strstr(flame_error_last(), bads[i].key), "%s: %s", bads[i].key,
                      flame_error_last());
        ck_assert_ptr_null(c);
    }
}
END_TEST

START_TEST(provider_section)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write("cluster:\n  name: t\n")), FLAME_OK);
    ck_assert_ptr_null(c->provider);
    ck_assert_int_eq(c->k8s_scale_down_delay_ms, 60000);
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  name: t\n"
        "provider: kubernetes\n"
        "kubernetes:\n"
        "  namespace: flame\n"
        "  image: flame:1\n"
        "  kubeconfig: /etc/kc\n"
        "  endpoint: http://sm:8080\n"
        "  service_account: fl\n"
        "  labels: {team: ml, tier: gpu}\n"
        "  resources: cpu=2,mem=1g\n"
        "  max_pods: 7\n"
        "  scale_down_delay: 0\n"
        "  tls_secret: flame-tls\n")), FLAME_OK);
    ck_assert_str_eq(c->provider, "kubernetes");
    ck_assert_str_eq(c->k8s_namespace, "flame");
    ck_assert_str_eq(c->k8s_image, "flame:1");
    ck_assert_str_eq(c->k8s_kubeconfig, "/etc/kc");
    ck_assert_str_eq(c->k8s_endpoint, "http://sm:8080");
    ck_assert_str_eq(c->k8s_service_account, "fl");
    ck_assert_str_eq(c->k8s_labels, "team=ml,tier=gpu");
    ck_assert_uint_eq(c->k8s_resources.cpu, 2);
    ck_assert_uint_eq(c->k8s_resources.memory, 1ull << 30);
    ck_assert_uint_eq(c->k8s_max_pods, 7);
    ck_assert_int_eq(c->k8s_scale_down_delay_ms, 0);
    ck_assert_str_eq(c->k8s_tls_secret, "flame-tls");
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  name: t\n"
        "provider: kubernetes\n"
        "kubernetes:\n"
        "  image: flame:1\n"
        "  node_ca_cert: /etc/ca.crt\n"
        "  node_ca_key: /etc/ca.key\n"
        "  node_cert_ttl: 90m\n"
        "  host_users: true\n")), FLAME_OK);
    ck_assert_str_eq(c->k8s_node_ca_cert, "/etc/ca.crt");
    ck_assert_str_eq(c->k8s_node_ca_key, "/etc/ca.key");
    ck_assert_int_eq(c->k8s_node_cert_ttl_s, 5400);
    ck_assert_int_eq(c->k8s_host_users, 1);
    flame_cluster_config_free(c);
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster:\n  name: t\nkubernetes:\n  image: x\n")), FLAME_OK);
    ck_assert_int_eq(c->k8s_node_cert_ttl_s, 86400); /* short-lived by default */
    ck_assert_int_eq(c->k8s_host_users, 0);           /* a user namespace of the pod's own */
    flame_cluster_config_free(c);
    expect_bad("cluster:\n  name: t\nkubernetes:\n  node_ca_cert: /c\n", "kubernetes.node_ca_key");
    expect_bad("cluster:\n  name: t\nkubernetes:\n  node_cert_ttl: 5m\n", "kubernetes.node_cert_ttl");
    expect_bad("cluster:\n  name: t\nkubernetes:\n  node_cert_ttl: 1y\n", "kubernetes.node_cert_ttl");
    expect_bad("cluster:\n  name: t\nkubernetes:\n  host_users: maybe\n", "kubernetes.host_users");
    expect_bad("cluster:\n  name: t\nprovider: yarn\n", "provider: expected none or kubernetes");
    expect_bad("cluster:\n  name: t\nprovider: kubernetes\n", "kubernetes: required");
    expect_bad("cluster:\n  name: t\nprovider: kubernetes\nkubernetes:\n  namespace: x\n",
               "kubernetes.image: required");
    expect_bad("cluster:\n  name: t\nkubernetes:\n  imag: x\n", "kubernetes.imag: unknown key");
    expect_bad("cluster:\n  name: t\nkubernetes:\n  max_pods: 0\n", "kubernetes.max_pods");
    expect_bad("cluster:\n  name: t\nkubernetes:\n  resources: cpu=x\n", "kubernetes.resources");
}
END_TEST

START_TEST(missing_file)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, "/nonexistent/flame.yaml"), FLAME_ERR_IO);
}
END_TEST

START_TEST(client_endpoint_resolution)
{
    fl_endpoint ep;
    unsetenv("FLAME_ENDPOINT");
    ck_assert_int_eq(fl_endpoint_resolve(&ep, "http://h:1"), FLAME_OK);
    ck_assert_str_eq(ep.url, "http://h:1");
    fl_endpoint_clear(&ep);
    setenv("FLAME_ENDPOINT", "http://env:2", 1);
    ck_assert_int_eq(fl_endpoint_resolve(&ep, NULL), FLAME_OK);
    ck_assert_str_eq(ep.url, "http://env:2");
    fl_endpoint_clear(&ep);
    unsetenv("FLAME_ENDPOINT");
    setenv("FLAME_CONFIG", scratch_write("current-context: b\ncontexts:\n"
                                      "  - name: a\n    cluster:\n      endpoint: http://a:1\n"
                                      "  - name: b\n    cluster:\n      endpoint: http://b:3\n"),
           1);
    ck_assert_int_eq(fl_endpoint_resolve(&ep, NULL), FLAME_OK);
    ck_assert_str_eq(ep.url, "http://b:3");
    fl_endpoint_clear(&ep);
    setenv("FLAME_CONFIG", scratch_write("current-context: c\ncontexts:\n"
                                      "  - name: a\n    cluster:\n      endpoint: http://a:1\n"),
           1);
    ck_assert_int_eq(fl_endpoint_resolve(&ep, NULL), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "no endpoint for the current context \"c\""));
    setenv("FLAME_CONFIG", "/nonexistent/flame.yaml", 1);
    ck_assert_int_eq(fl_endpoint_resolve(&ep, NULL), FLAME_OK);
    ck_assert_str_eq(ep.url, FL_DEFAULT_ENDPOINT);
    ck_assert_str_eq(ep.url, "http://127.0.0.1:8080");
    fl_endpoint_clear(&ep);
    unsetenv("FLAME_CONFIG");
}
END_TEST

START_TEST(endpoint_parsing)
{
    fl_endpoint ep;
    ck_assert_int_eq(fl_endpoint_parse(&ep, "http://127.0.0.1:8080", FLAME_ERR_CONFIG), FLAME_OK);
    ck_assert_str_eq(ep.target, "127.0.0.1:8080");
    ck_assert_str_eq(ep.url, "http://127.0.0.1:8080");
    ck_assert(!ep.tls);
    fl_endpoint_clear(&ep);
    /* no scheme, and a trailing path, are accepted */
    ck_assert_int_eq(fl_endpoint_parse(&ep, "h:1/x", FLAME_ERR_CONFIG), FLAME_OK);
    ck_assert_str_eq(ep.target, "h:1");
    ck_assert_str_eq(ep.url, "http://h:1");
    fl_endpoint_clear(&ep);
    ck_assert_int_eq(fl_endpoint_parse(&ep, "ftp://x:1", FLAME_ERR_INVALID_ARGUMENT),
                     FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(flame_error_last(),
                     "endpoint ftp://x:1: unknown scheme (use http:// or https://)");
    ck_assert_int_eq(fl_endpoint_parse(&ep, "http://noport", FLAME_ERR_CONFIG), FLAME_ERR_CONFIG);
    ck_assert_str_eq(flame_error_last(), "endpoint \"http://noport\": expected http://HOST:PORT "
                                         "or https://HOST:PORT");
    ck_assert_int_eq(fl_endpoint_parse(&ep, "http://:1", FLAME_ERR_CONFIG), FLAME_ERR_CONFIG);
    ck_assert_int_eq(fl_endpoint_parse(&ep, "http://h:", FLAME_ERR_CONFIG), FLAME_ERR_CONFIG);
    ck_assert_int_eq(fl_endpoint_parse(&ep, "https://h:1", FLAME_ERR_CONFIG), FLAME_OK);
    ck_assert(ep.tls);
    ck_assert_str_eq(ep.target, "h:1");
    ck_assert_str_eq(ep.url, "https://h:1");
    fl_endpoint_clear(&ep);
    ck_assert_int_eq(fl_endpoint_parse(&ep, "https://h", FLAME_ERR_CONFIG), FLAME_ERR_CONFIG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("yaml");
    tcase_add_checked_fixture(tc, NULL, scratch_remove);
    tcase_add_test(tc, full_config);
    tcase_add_test(tc, defaults_and_mapping_resreq);
    tcase_add_test(tc, bad_configs_name_the_key);
    tcase_add_test(tc, limits_block);
    tcase_add_test(tc, recovery_retry_limits);
    tcase_add_test(tc, tls_and_auth_config);
    tcase_add_test(tc, client_tls_resolution);
    tcase_add_test(tc, cache_section);
    tcase_add_test(tc, provider_section);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, client_endpoint_resolution);
    tcase_add_test(tc, endpoint_parsing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
