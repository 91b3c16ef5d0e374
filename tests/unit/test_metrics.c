/* Unit tests of the metrics registry and its text exposition
 * (util/metrics.c), the metrics server (http/http.c: endpoints, probes,
 * methods, hostile input) and the metrics:/log: config sections. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flame/metrics.h"
#include "flame/server.h"
#include "util/metrics.h"
#include "util/util.h"

#include "helpers.h"

static char *render(void)
{
    fl_buf b = { 0 };
    fl_metrics_render(&b);
    return fl_buf_detach(&b);
}

START_TEST(exposition_format)
{
    fl_series *c1 = fl_counter("t_requests_total", "Requests\nby \\code.", "code", "a\"b\\c\nd",
                               NULL);
    ck_assert_ptr_eq(c1, fl_counter("t_requests_total", "ignored", "code", "a\"b\\c\nd", NULL));
    fl_counter_add(c1, 3);
    fl_counter_add(fl_counter("t_requests_total", "", "code", "OK", NULL), 1);
    fl_series *g = fl_gauge("t_temperature_celsius", "A gauge.", NULL);
    fl_gauge_set(g, 2.5);
    fl_gauge_add(g, -1);
    fl_gauge_set(fl_gauge("t_inf", "Infinite.", "k", "v", NULL), INFINITY);
    fl_gauge_set(fl_gauge("t_nan", "Not a number.", NULL), NAN);
    static const double bounds[] = { 0.1, 1, 10 };
    fl_series *h = fl_histogram("t_latency_seconds", "A histogram.", bounds, 3, "op", "x", NULL);
    fl_histogram_observe(h, 0.05);
    fl_histogram_observe(h, 0.1); /* le is inclusive */
    fl_histogram_observe(h, 5);
    fl_histogram_observe(h, 100);
    char *t = render();
    const char *want =
        "# HELP t_requests_total Requests\\nby \\\\code.\n"
        "# TYPE t_requests_total counter\n"
        "t_requests_total{code=\"a\\\"b\\\\c\\nd\"} 3\n"
        "t_requests_total{code=\"OK\"} 1\n"
        "# HELP t_temperature_celsius A gauge.\n"
        "# TYPE t_temperature_celsius gauge\n"
        "t_temperature_celsius 1.5\n"
        "# HELP t_inf Infinite.\n"
        "# TYPE t_inf gauge\n"
        "t_inf{k=\"v\"} +Inf\n"
        "# HELP t_nan Not a number.\n"
        "# TYPE t_nan gauge\n"
        "t_nan NaN\n"
        "# HELP t_latency_seconds A histogram.\n"
        "# TYPE t_latency_seconds histogram\n"
        "t_latency_seconds_bucket{op=\"x\",le=\"0.1\"} 2\n"
        "t_latency_seconds_bucket{op=\"x\",le=\"1\"} 2\n"
        "t_latency_seconds_bucket{op=\"x\",le=\"10\"} 3\n"
        "t_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
        "t_latency_seconds_sum{op=\"x\"} 105.15\n"
        "t_latency_seconds_count{op=\"x\"} 4\n";
    ck_assert_msg(strstr(t, want), "exposition:\n%s", t);
    free(t);
}
END_TEST

/* ---- the server ------------------------------------------------------------ */

static int probe_state = 0;

static int probe(void *ctx, char *why, size_t size)
{
    (void)ctx;
    if (!probe_state)
        snprintf(why, size, "not yet: the test says so");
    return probe_state;
}

/* Sends req as is and returns the whole answer (malloc'ed; "" when the
 * server closed without one); *code: its status, 0 when none. */
static char *http(int port, const char *req, size_t len, int *code)
{
    int fd = loopback_connect(port);
    ck_assert_int_ge(fd, 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early on a hostile request */
        off += (size_t)n;
    }
    fl_buf b = { 0 };
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        fl_buf_add(&b, buf, (size_t)n);
    close(fd);
    char *s = fl_buf_detach(&b);
    *code = 0;
    sscanf(s, "HTTP/1.%*d %d", code);
    return s;
}

static int get(int port, const char *path, char **body)
{
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     path);
    int code;
    char *s = http(port, req, (size_t)n, &code);
    if (body) {
        char *p = strstr(s, "\r\n\r\n");
        *body = fl_strdup(p ? p + 4 : "");
    }
    free(s);
    return code;
}

START_TEST(server_endpoints)
{
    flame_metrics_options o = FLAME_METRICS_OPTIONS_INIT;
    o.address = "127.0.0.1:0";
    o.daemon = "test";
    o.ready = probe;
    flame_metrics_server *s;
    ck_assert_int_eq(flame_metrics_start(&s, &o), FLAME_OK);
    int port = flame_metrics_port(s);
    ck_assert_int_gt(port, 0);
    char *body;
    ck_assert_int_eq(get(port, "/healthz", &body), 200);
    ck_assert_str_eq(body, "ok\n");
    free(body);
    probe_state = 0;
    ck_assert_int_eq(get(port, "/readyz", &body), 503);
    ck_assert_str_eq(body, "not yet: the test says so\n");
    free(body);
    probe_state = 1;
    ck_assert_int_eq(get(port, "/readyz", &body), 200);
    free(body);
    ck_assert_int_eq(get(port, "/metrics", &body), 200);
    ck_assert_ptr_nonnull(strstr(body, "# TYPE flame_process_resident_memory_bytes gauge\n"));
    ck_assert_ptr_nonnull(strstr(body, "flame_build_info{version=\""));
    free(body);
    ck_assert_int_eq(get(port, "/metrics?x=1", NULL), 200);
    ck_assert_int_eq(get(port, "/nope", NULL), 404);

    /* POST with a body, PUT, nonsense: 405 or a closed connection, never a crash */
    int code;
    const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    char *r = http(port, post, sizeof post - 1, &code);
    ck_assert_int_eq(code, 405);
    ck_assert_ptr_nonnull(strstr(r, "Allow: GET, HEAD"));
    free(r);
    free(http(port, "\x01\x02garbage\r\n\r\n", 13, &code));
    ck_assert_int_ne(code, 200);
    /* headers bigger than the connection may hold: refused (431) */
    size_t big = 256 << 10;
    char *huge = fl_malloc(big + 128);
    int n = snprintf(huge, 128, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + n, 'a', big);
    memcpy(huge + n + big, "\r\n\r\n", 4);
    free(http(port, huge, (size_t)n + big + 4, &code));
    ck_assert_msg(code == 431, "huge headers: %d", code);
    free(huge);
    /* many connections at once (more than the limit): held, then dropped;
     * the server still answers after */
    int fds[100];
    for (int i = 0; i < 100; i++)
        fds[i] = loopback_connect(port);
    for (int i = 0; i < 100; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ck_assert_int_eq(get(port, "/healthz", NULL), 200);
    fl_buf m = { 0 };
    fl_metrics_render(&m);
    ck_assert_ptr_nonnull(strstr(m.data, "flame_http_requests_total{code=\"405\"}"));
    fl_buf_free(&m);
    flame_metrics_stop(s);
}
END_TEST

START_TEST(server_addresses)
{
    flame_metrics_options o = FLAME_METRICS_OPTIONS_INIT;
    flame_metrics_server *s;
    const char *bad[] = { "nohost:1", "127.0.0.1:99999", "127.0.0.1:", "[::1:5", "example.org:80" };
    for (size_t i = 0; i < FL_ARRAY_LEN(bad); i++) {
        o.address = bad[i];
        ck_assert_msg(flame_metrics_start(&s, &o) == FLAME_ERR_CONFIG, "%s", bad[i]);
        ck_assert_ptr_null(s);
    }
    const char *good[] = { "0", "localhost:0", "http://127.0.0.1:0", "[::1]:0" };
    for (size_t i = 0; i < FL_ARRAY_LEN(good); i++) {
        o.address = good[i];
        flame_status st = flame_metrics_start(&s, &o);
        if (st != FLAME_OK && i == 3)
            continue; /* no IPv6 on this machine */
        ck_assert_msg(st == FLAME_OK, "%s: %s", good[i], flame_error_last());
        ck_assert_int_gt(flame_metrics_port(s), 0);
        if (i < 3)
            ck_assert_int_eq(get(flame_metrics_port(s), "/healthz", NULL), 200);
        flame_metrics_stop(s);
    }
    /* a taken port */
    o.address = "127.0.0.1:0";
    flame_metrics_server *a;
    ck_assert_int_eq(flame_metrics_start(&a, &o), FLAME_OK);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", flame_metrics_port(a));
    o.address = addr;
    ck_assert_int_eq(flame_metrics_start(&s, &o), FLAME_ERR_UNAVAILABLE);
    flame_metrics_stop(a);
}
END_TEST

/* ---- config and logs ------------------------------------------------------------- */

START_TEST(config_sections)
{
    flame_cluster_config *c;
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster: {name: t}\n"
        "metrics:\n"
        "  session_manager: 127.0.0.1:9101\n"
        "  executor_manager: \"9102\"\n"
        "log: {format: json}\n")), FLAME_OK);
    ck_assert_str_eq(c->metrics_session_manager, "127.0.0.1:9101");
    ck_assert_str_eq(c->metrics_executor_manager, "9102");
    ck_assert_ptr_null(c->metrics_object_cache);
    ck_assert_str_eq(c->log_format, "json");
    flame_cluster_config_free(c);
    char *addr;
    ck_assert_int_eq(flame_operations_config(scratch_path, "executor_manager", "text", NULL, &addr),
                     FLAME_OK);
    ck_assert_str_eq(addr, "9102");
    free(addr);
    ck_assert_int_eq(flame_operations_config(scratch_path, "object_cache", NULL, "0", &addr), FLAME_OK);
    ck_assert_str_eq(addr, "0");
    free(addr);
    ck_assert_int_eq(flame_operations_config(NULL, "object_cache", "text", NULL, &addr),
                     FLAME_OK);
    ck_assert_ptr_null(addr);
    ck_assert_int_eq(flame_operations_config(NULL, "object_cache", "xml", NULL, &addr),
                     FLAME_ERR_CONFIG);
    ck_assert_int_eq(flame_operations_config(NULL, "object_cache", NULL, "host:1", &addr),
                     FLAME_ERR_CONFIG);
    ck_assert_ptr_null(addr);

    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster: {name: t}\nmetrics: {session_manger: 1}\n")), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "metrics.session_manger"));
    ck_assert_int_eq(flame_cluster_config_load(&c, scratch_write(
        "cluster: {name: t}\nlog: {format: xml}\n")), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "log.format"));
    ck_assert_int_eq(flame_log_set_format("xml"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(flame_log_set_format("text"), FLAME_OK);
    scratch_remove();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exposition_format);
    tcase_add_test(tc, server_endpoints);
    tcase_add_test(tc, server_addresses);
    tcase_add_test(tc, config_sections);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
