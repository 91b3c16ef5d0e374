/* Unit tests of the Kubernetes credentials (provider/kubeapi.c): a
 * kubeconfig with files or inline data, in-cluster settings, and the errors
 * that name what is missing. The requests themselves are tested against a
 * real API server (tests/integration/test_k8s.sh). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provider/kubeapi.h"
#include "util/util.h"

#include "helpers.h"

START_TEST(kubeconfig_with_files)
{
    kube_api a;
    ck_assert_int_eq(kube_api_load(&a, scratch_write(
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: other\n  cluster: {server: https://wrong:1}\n"
        "- name: c\n  cluster:\n    server: https://10.0.0.1:6443/\n"
        "    certificate-authority: pki/ca.crt\n"
        "users:\n- name: u\n  user: {token: t0k3n}\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u, namespace: ml}\n"
        "current-context: x\n")), FLAME_OK);
    ck_assert_str_eq(a.server, "https://10.0.0.1:6443");
    ck_assert_str_eq(a.namespace, "ml");
    ck_assert_str_eq(a.token, "t0k3n");
    /* relative to the kubeconfig's directory */
    ck_assert_str_eq(a.ca_file, "/tmp/pki/ca.crt");
    ck_assert(!a.insecure);
    kube_api_clear(&a);
}
END_TEST

START_TEST(kubeconfig_with_data)
{
    kube_api a;
    /* "PEM-CA" and "PEM-CERT" in base64 */
    ck_assert_int_eq(kube_api_load(&a, scratch_write(
        "clusters:\n- name: c\n  cluster:\n    server: https://h:443\n"
        "    certificate-authority-data: UEVNLUNB\n"
        "users:\n- name: u\n  user:\n    client-certificate-data: UEVNLUNFUlQ=\n"
        "    client-key: /k.pem\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
        "current-context: x\n")), FLAME_OK);
    ck_assert_uint_eq(a.ca_pem_len, 6);
    ck_assert_mem_eq(a.ca_pem, "PEM-CA", 6);
    ck_assert_uint_eq(a.cert_pem_len, 8);
    ck_assert_mem_eq(a.cert_pem, "PEM-CERT", 8);
    ck_assert_str_eq(a.key_file, "/k.pem");
    ck_assert_ptr_null(a.namespace);
    ck_assert_ptr_null(a.token);
    kube_api_clear(&a);
}
END_TEST

static void expect_bad(const char *yaml, const char *needle)
{
    kube_api a;
    ck_assert_int_eq(kube_api_load(&a, scratch_write(yaml)), FLAME_ERR_CONFIG);
    ck_assert_msg(strstr(flame_error_last(), needle), "\"%s\" lacks \"%s\"", flame_error_last(),
                  needle);
    ck_assert_ptr_null(a.server);
}

START_TEST(bad_kubeconfigs)
{
    expect_bad("clusters: []\n", "no current-context");
    expect_bad("current-context: x\ncontexts:\n- name: y\n  context: {cluster: c}\n",
               "no current-context");
    expect_bad("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
               "clusters:\n- name: c\n  cluster: {server: http://h:80}\n", "no https:// server");
    expect_bad("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
               "clusters:\n- name: c\n  cluster: {server: https://h, certificate-authority-data: "
               "\"%%%\"}\n", "not base64");
    expect_bad("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
               "clusters:\n- name: c\n  cluster: {server: https://h}\n"
               "users:\n- name: u\n  user: {exec: {command: aws}}\n", "exec/auth-provider");
}
END_TEST

START_TEST(in_cluster_needs_the_environment)
{
    kube_api a;
    unsetenv("KUBERNETES_SERVICE_HOST");
    ck_assert_int_eq(kube_api_load(&a, NULL), FLAME_ERR_CONFIG);
    ck_assert(strstr(flame_error_last(), "KUBERNETES_SERVICE_HOST"));
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    /* no service-account token mounted here */
    if (access("/var/run/secrets/kubernetes.io/serviceaccount/token", R_OK) != 0) {
        ck_assert_int_eq(kube_api_load(&a, NULL), FLAME_ERR_CONFIG);
        ck_assert(strstr(flame_error_last(), "serviceaccount/token"));
    }
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}
END_TEST

START_TEST(error_text)
{
    char *s = kube_error_text(403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\","
                                   "\"message\":\"pods is forbidden\",\"code\":403}");
    ck_assert_str_eq(s, "403 Forbidden: pods is forbidden");
    free(s);
    s = kube_error_text(502, "bad gateway");
    ck_assert_str_eq(s, "502 error: bad gateway");
    free(s);
    s = kube_error_text(500, NULL);
    ck_assert_str_eq(s, "500 error: (no message)");
    free(s);
}
END_TEST

/* the token, namespace and CA files (util.c's fl_read_small_file) */
START_TEST(small_files)
{
    char *s = fl_read_small_file(scratch_write("t0k3n\n"));
    ck_assert_str_eq(s, "t0k3n\n");
    free(s);
    s = fl_read_small_file(scratch_write(""));
    ck_assert_str_eq(s, "");
    free(s);
    scratch_remove();
    ck_assert_ptr_null(fl_read_small_file(scratch_path));
    FILE *f = fopen(scratch_path, "w");
    for (size_t i = 0; i < FL_SMALL_FILE_MAX; i++)
        fputc('x', f);
    fclose(f);
    ck_assert_ptr_null(fl_read_small_file(scratch_path));
}
END_TEST

typedef struct got_lines {
    char lines[4][32];
    int n, stop_after;
} got_lines;

static bool take_line(void *arg, char *line)
{
    got_lines *g = arg;
    snprintf(g->lines[g->n++], sizeof g->lines[0], "%s", line);
    return g->n != g->stop_after;
}

/* a watch cut anywhere: whole non-empty lines, in order */
START_TEST(watch_lines)
{
    const char *w = "{\"a\":1}\n\n{\"b\":2}\n{\"c\"";
    for (size_t cut = 0; cut <= strlen(w); cut++) {
        got_lines g = { .stop_after = -1 };
        fl_buf b = { 0 };
        ck_assert(kube_lines_feed(&b, w, cut, take_line, &g));
        ck_assert(kube_lines_feed(&b, w + cut, strlen(w) - cut, take_line, &g));
        ck_assert_int_eq(g.n, 2);
        ck_assert_str_eq(g.lines[0], "{\"a\":1}");
        ck_assert_str_eq(g.lines[1], "{\"b\":2}");
        ck_assert_uint_eq(b.len, 4); /* the partial line stays */
        fl_buf_free(&b);
    }
    got_lines g = { .stop_after = 1 };
    fl_buf b = { 0 };
    ck_assert(!kube_lines_feed(&b, w, strlen(w), take_line, &g));
    ck_assert_int_eq(g.n, 1);
    fl_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kubeapi");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, scratch_remove);
    tcase_add_test(tc, kubeconfig_with_files);
    tcase_add_test(tc, kubeconfig_with_data);
    tcase_add_test(tc, bad_kubeconfigs);
    tcase_add_test(tc, in_cluster_needs_the_environment);
    tcase_add_test(tc, error_text);
    tcase_add_test(tc, small_files);
    tcase_add_test(tc, watch_lines);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
