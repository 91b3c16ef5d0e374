/* Unit tests of the "process" sandbox level (sandbox/process.c) with real
 * children: what a service sees from inside. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/process.h"
#include "sandbox/spawn.h"
#include "util/util.h"

static char dir[] = "/tmp/flame-test-sbx-XXXXXX";
static char work[sizeof dir + 8], root[sizeof dir + 8], out[sizeof dir + 16];

static void setup(void)
{
    strcpy(dir, "/tmp/flame-test-sbx-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(work, sizeof work, "%s/work", dir);
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(out, sizeof out, "%s/out", work);
    ck_assert_int_eq(mkdir(work, 0700), 0);
}

static void teardown(void)
{
    char *cmd = fl_sprintf("rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Runs `sh -c script` in the process sandbox, its work dir the cwd, and
 * waits for it; returns its wait status. */
static int run(const char *script, uint64_t memory, const char *network)
{
    char *argv[] = { "sh", "-c", (char *)script, NULL };
    char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    const char *rw[] = { work, NULL };
    fl_spawn_spec spec = {
        .sandbox = "process", .path = "/bin/sh", .argv = argv, .envp = envp, .cwd = work,
        .name = strrchr(dir, '/') + 1, .root_dir = root, .rw_dirs = rw, .memory = memory,
        .network = network,
    };
    fl_process p = { 0 };
    ck_assert_msg(fl_spawn(&p, &spec) == FLAME_OK, "%s", flame_error_last());
    fl_process_reap(&p, true);
    int st = p.status;
    fl_process_stop(&p, 0);
    struct stat sb;
    ck_assert_msg(stat(root, &sb) != 0, "the sandbox's root dir is left");
    return st;
}

START_TEST(a_service_runs_confined)
{
    int st = run("grep -E '^(NoNewPrivs|CapEff|CapBnd|Seccomp):' /proc/self/status > out;"
                 "id -u >> out; id -g >> out;"
                 "ls /proc | grep -c '^[0-9]' >> out;"
                 "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' >> out;"
                 "(echo x > /etc/flame-escape) 2>/dev/null && echo wrote-etc >> out;"
                 "(echo x > /usr/flame-escape) 2>/dev/null && echo wrote-usr >> out;"
                 "(echo x > /tmp/mine) && echo wrote-tmp >> out;"
                 "test -e /etc/shadow && echo sees-shadow >> out;"
                 "unshare -U true 2>/dev/null && echo unshared >> out;"
                 "exit 3",
                 0, NULL);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 3);
    const char *o = read_file(out);
    ck_assert_msg(strstr(o, "NoNewPrivs:\t1\n"), "%s", o);
    ck_assert_msg(strstr(o, "CapEff:\t0000000000000000\n"), "%s", o);
    ck_assert_msg(strstr(o, "CapBnd:\t0000000000000000\n"), "%s", o);
    ck_assert_msg(strstr(o, "Seccomp:\t2\n"), "%s", o);
    unsigned uid = 0, gid = 0, npids = 0;
    const char *ids = strstr(o, "Seccomp:\t2\n") + strlen("Seccomp:\t2\n");
    ck_assert_int_eq(sscanf(ids, "%u\n%u\n%u\n", &uid, &gid, &npids), 3);
    ck_assert_uint_ge(uid, FL_SANDBOX_UID_FIRST);
    ck_assert_uint_lt(uid, FL_SANDBOX_UID_FIRST + FL_SANDBOX_UID_COUNT);
    ck_assert_uint_eq(gid, uid);
    /* init, sh and the pipeline's own few: not the host's processes */
    ck_assert_msg(npids <= 6, "sees %u processes", npids);
    ck_assert_msg(strstr(o, "\nlo\n") && !strstr(o, "eth"), "interfaces: %s", o);
    ck_assert_msg(!strstr(o, "wrote-etc") && !strstr(o, "wrote-usr"), "%s", o);
    ck_assert_msg(strstr(o, "wrote-tmp"), "%s", o);
    ck_assert_msg(!strstr(o, "sees-shadow"), "%s", o);
    ck_assert_msg(!strstr(o, "unshared"), "%s", o);
}
END_TEST

START_TEST(two_executors_have_two_uids)
{
    ck_assert(WIFEXITED(run("id -u > out", 0, NULL)));
    unsigned a = (unsigned)atoi(read_file(out));
    /* the first one's file: the second could not even truncate it */
    ck_assert_int_eq(unlink(out), 0);
    ck_assert(WIFEXITED(run("id -u > out", 0, NULL)));
    unsigned b = (unsigned)atoi(read_file(out));
    ck_assert_uint_ne(a, b);
}
END_TEST

START_TEST(the_memory_limit_stops_an_over_allocator)
{
    /* 400 MB asked, 64 MB given: killed (cgroup) or refused (rlimit) */
    int st = run("exec /usr/bin/python3 -c 'b = bytearray(400 << 20); b[-1] = 1; print(\"ok\")' "
                 "> out 2>&1", 64 << 20, NULL);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "it allocated: %s", read_file(out));
}
END_TEST

START_TEST(network_host_shares_the_hosts_interfaces)
{
    ck_assert(WIFEXITED(run("tail -n +3 /proc/net/dev | wc -l > out", 0, "host")));
    FILE *f = fopen("/proc/net/dev", "r");
    int lines = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        lines += c == '\n';
    fclose(f);
    ck_assert_int_eq(atoi(read_file(out)), lines - 2);
}
END_TEST

int main(void)
{
    char *report = fl_sandbox_process_probe();
    printf("%s\n", report);
    free(report);
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("process");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_service_runs_confined);
    tcase_add_test(tc, two_executors_have_two_uids);
    tcase_add_test(tc, the_memory_limit_stops_an_over_allocator);
    tcase_add_test(tc, network_host_shares_the_hosts_interfaces);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
