/* Unit tests of the cluster config (sm/config.c) and the client's
 * endpoint resolution (client/config.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "flame/server.h"
#include "util/util.h"

static char path[256];

static const char *write_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/flame-test-config-%d.yaml", getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void teardown(void)
{
    unlink(path);
}

START_TEST(full_config)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, write_file(
        "cluster:\n"
        "  name: test\n"
        "  endpoint: \"http://127.0.0.1:9999\"\n"
        "  storage: none\n"
        "  resreq: \"cpu=2,mem=4g\"\n"
        "  policies: [priority, drf]\n"
        "  schedule_interval: 250\n")), FLAME_OK);
    ck_assert_str_eq(c->name, "test");
    ck_assert_str_eq(c->endpoint, "http://127.0.0.1:9999");
    ck_assert_str_eq(c->storage, "none");
    ck_assert_uint_eq(c->resreq.cpu, 2);
    ck_assert_uint_eq(c->resreq.memory, 4ULL << 30);
    ck_assert_uint_eq(c->policies_len, 2);
    ck_assert_str_eq(c->policies[1], "drf");
    ck_assert_int_eq(c->schedule_interval_ms, 250);
    flame_cluster_config_free(c);
}
END_TEST

START_TEST(defaults_and_mapping_resreq)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, write_file(
        "cluster:\n  resreq: {cpu: 4, mem: 512m}\n")), FLAME_OK);
    ck_assert_str_eq(c->endpoint, "http://127.0.0.1:8080");
    ck_assert_str_eq(c->storage, "sqlite://flame.db");
    ck_assert_uint_eq(c->resreq.cpu, 4);
    ck_assert_uint_eq(c->resreq.memory, 512ULL << 20);
    ck_assert_int_eq(c->schedule_interval_ms, 500);
    flame_cluster_config_free(c);
}
END_TEST

static void expect_bad(const char *yaml, const char *needle)
{
    flame_cluster_config *c = NULL;
    ck_assert_int_eq(flame_cluster_config_load(&c, write_file(yaml)), FLAME_ERR_CONFIG);
    ck_assert_msg(strstr(flame_error_last(), needle), "\"%s\" lacks \"%s\"", flame_error_last(),
                  needle);
    ck_assert_ptr_null(c);
}

START_TEST(bad_configs_name_the_key)
{
    expect_bad("cluster:\n  schedule_interval: soon\n", "cluster.schedule_interval");
    expect_bad("cluster:\n  schedule_interval: -5\n", "cluster.schedule_interval");
    expect_bad("cluster:\n  resreq: \"cpu=lots\"\n", "cluster.resreq");
    expect_bad("cluster:\n  resreq: {cpu: many}\n", "cluster.resreq.cpu");
    expect_bad("cluster:\n  storage: mysql://db\n", "cluster.storage");
    expect_bad("cluster:\n  endpoint: nowhere\n", "cluster.endpoint");
    expect_bad("cluster:\n  endpoint: [a, b]\n", "cluster.endpoint");
    expect_bad("cluster: 5\n", "cluster");
    expect_bad("other: 1\n", "cluster");
    expect_bad("cluster:\n  name: [unclosed\n", "invalid YAML");
    expect_bad("", "empty");
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
    char *ep;
    unsetenv("FLAME_ENDPOINT");
    ck_assert_int_eq(fl_client_resolve_endpoint(&ep, "http://h:1"), FLAME_OK);
    ck_assert_str_eq(ep, "http://h:1");
    free(ep);
    setenv("FLAME_ENDPOINT", "http://env:2", 1);
    ck_assert_int_eq(fl_client_resolve_endpoint(&ep, NULL), FLAME_OK);
    ck_assert_str_eq(ep, "http://env:2");
    free(ep);
    unsetenv("FLAME_ENDPOINT");
    setenv("FLAME_CONFIG", write_file("current-context: b\ncontexts:\n"
                                      "  - name: a\n    cluster:\n      endpoint: http://a:1\n"
                                      "  - name: b\n    cluster:\n      endpoint: http://b:3\n"),
           1);
    ck_assert_int_eq(fl_client_resolve_endpoint(&ep, NULL), FLAME_OK);
    ck_assert_str_eq(ep, "http://b:3");
    free(ep);
    setenv("FLAME_CONFIG", "/nonexistent/flame.yaml", 1);
    ck_assert_int_eq(fl_client_resolve_endpoint(&ep, NULL), FLAME_OK);
    ck_assert_str_eq(ep, "http://127.0.0.1:8080");
    free(ep);
    unsetenv("FLAME_CONFIG");
    char *t;
    ck_assert_int_eq(fl_endpoint_target(&t, "http://127.0.0.1:8080"), FLAME_OK);
    ck_assert_str_eq(t, "127.0.0.1:8080");
    free(t);
    ck_assert_int_eq(fl_endpoint_target(&t, "ftp://x:1"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(fl_endpoint_target(&t, "http://noport"), FLAME_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("yaml");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, full_config);
    tcase_add_test(tc, defaults_and_mapping_resreq);
    tcase_add_test(tc, bad_configs_name_the_key);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, client_endpoint_resolution);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
