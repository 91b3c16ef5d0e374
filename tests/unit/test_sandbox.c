/* Unit tests of the "process" sandbox level (sandbox/process.c) with real
 * children: what a service sees from inside. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <dirent.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
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

/* The cores the next run() asks for (0: none); reset by it. */
static uint64_t run_cpus;

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
        .network = network, .cpus = run_cpus,
    };
    run_cpus = 0;
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

/* The v1 cgroup line of the cpu controller ("N:cpu,cpuacct:/path"); "". */
static const char *v1_cpu_line(const char *cgroups)
{
    static char line[256];
    line[0] = 0;
    for (const char *l = cgroups; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *c = strchr(l, ':');
        const char *e = c ? strchr(c + 1, ':') : NULL;
        if (!e)
            continue;
        char ctl[64];
        snprintf(ctl, sizeof ctl, ",%.*s,", (int)(e - c - 1), c + 1);
        if (strstr(ctl, ",cpu,")) {
            snprintf(line, sizeof line, "%.*s", (int)strcspn(l, "\n"), l);
            break;
        }
    }
    return line;
}

START_TEST(only_a_cpu_request_puts_it_under_the_cpu_controller)
{
    char *report = fl_sandbox_process_probe();
    bool v1 = strstr(report, "cgroup v1") != NULL;
    free(report);
    if (!v1) {
        printf("no cgroup v1 hierarchy: the cpu cgroup test ran only its v2 part (above)\n");
        return;
    }
    /* none asked: scheduled as the manager is (no cgroup of ours) */
    ck_assert(WIFEXITED(run("cat /proc/self/cgroup > out", 0, NULL)));
    const char *l = v1_cpu_line(read_file(out));
    ck_assert_msg(l[0] && !strstr(l, "/flame/"), "cpu: %s", l);
    /* one core asked: a cpu cgroup of its own (its quota: fl_cgroup_limit);
     * out is the first uid's, the second could not truncate it */
    ck_assert_int_eq(unlink(out), 0);
    run_cpus = 1;
    ck_assert(WIFEXITED(run("cat /proc/self/cgroup > out", 0, NULL)));
    l = v1_cpu_line(read_file(out));
    ck_assert_msg(strstr(l, "/flame/"), "cpu: %s", l);
}
END_TEST

/* A device of the spec's (QEMU's /dev/kvm): opened by the sandbox's uid
 * whatever the host node's mode; its node is gone with the sandbox. */
START_TEST(a_device_of_the_spec_opens_inside)
{
    struct stat sb;
    if (stat("/dev/kvm", &sb) != 0) {
        printf("no /dev/kvm here: the device test did not run\n");
        return;
    }
    char *argv[] = { "sh", "-c", "exec 3<>/dev/kvm && echo opened > out; ls /dev >> out", NULL };
    char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    const char *rw[] = { work, NULL }, *devs[] = { "/dev/kvm", NULL };
    fl_spawn_spec spec = {
        .sandbox = "process", .path = "/bin/sh", .argv = argv, .envp = envp, .cwd = work,
        .name = strrchr(dir, '/') + 1, .root_dir = root, .rw_dirs = rw, .devices = devs,
    };
    fl_process p = { 0 };
    ck_assert_msg(fl_spawn(&p, &spec) == FLAME_OK, "%s", flame_error_last());
    fl_process_reap(&p, true);
    fl_process_stop(&p, 0);
    const char *o = read_file(out);
    ck_assert_msg(strstr(o, "opened\n") && strstr(o, "\nkvm\n"), "%s", o);
    char node[600];
    snprintf(node, sizeof node, "%s.dev0", root);
    ck_assert_msg(stat(node, &sb) != 0, "%s is left", node);
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

/* ---- sandboxes made ahead ------------------------------------------------ */

/* Waits (bounded) until the pool holds n sandboxes. */
static void pool_wait(unsigned n)
{
    unsigned ready = 0, served;
    for (int i = 0; i < 600 && ready < n; i++) {
        fl_sandbox_process_pool_stats(&ready, &served);
        if (ready < n) {
            struct timespec ts = { 0, 50000000 };
            nanosleep(&ts, NULL);
        }
    }
    ck_assert_uint_ge(ready, n);
}

/* The cgroups this process's sandboxes have under the v1 memory hierarchy
 * (named <pid>-<uid>), or -1 where there is none. */
static int my_cgroups(void)
{
    DIR *d = opendir("/sys/fs/cgroup/memory/flame");
    if (!d)
        return -1;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%d-", (int)getpid());
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

START_TEST(a_sandbox_made_ahead_serves_one_spawn)
{
    fl_sandbox_config c = { 0, 0, 2, NULL };
    fl_sandbox_process_configure(&c);
    pool_wait(2);
    unsigned ready, before, after;
    fl_sandbox_process_pool_stats(&ready, &before);
    /* the spawn's program, arguments, environment and limits reach a
     * sandbox made before they were known */
    int st = run("grep -E '^(NoNewPrivs|CapEff|Seccomp):' /proc/self/status > out; id -u >> out;"
                 "echo \"$PATH\" >> out; exit 4", 0, NULL);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 4);
    const char *o = read_file(out);
    ck_assert_msg(strstr(o, "NoNewPrivs:\t1\n") && strstr(o, "CapEff:\t0000000000000000\n") &&
                  strstr(o, "Seccomp:\t2\n") && strstr(o, "/usr/bin:/bin\n"), "%s", o);
    unsigned a = (unsigned)atoi(strstr(o, "Seccomp:\t2\n") + strlen("Seccomp:\t2\n"));
    ck_assert_int_eq(unlink(out), 0);
    ck_assert(WIFEXITED(run("id -u > out", 0, NULL)));
    unsigned b = (unsigned)atoi(read_file(out));
    ck_assert_uint_ne(a, b); /* one sandbox (and uid) for each */
    fl_sandbox_process_pool_stats(&ready, &after);
    ck_assert_uint_eq(after, before + 2);
    /* the memory limit is written when the spawn comes (to a box made
     * once the spawns were quiet) */
    pool_wait(1);
    ck_assert_int_eq(unlink(out), 0);
    st = run("exec /usr/bin/python3 -c 'b = bytearray(400 << 20); b[-1] = 1; print(\"ok\")' "
             "> out 2>&1", 64 << 20, NULL);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "it allocated: %s", read_file(out));
    /* network host never comes from the pool (its namespaces differ) */
    ck_assert(WIFEXITED(run("true", 0, "host")));
    fl_sandbox_process_pool_stats(&ready, &before);
    ck_assert_uint_eq(before, after + 1);
    /* the shutdown ends the waiting ones and their cgroups */
    fl_sandbox_process_shutdown();
    fl_sandbox_process_pool_stats(&ready, &after);
    ck_assert_uint_eq(ready, 0);
    int left = my_cgroups();
    ck_assert_msg(left <= 0, "%d cgroups left", left);
}
END_TEST

START_TEST(a_sandbox_made_ahead_that_died_is_not_used)
{
    fl_sandbox_config c = { 0, 0, 1, NULL };
    fl_sandbox_process_configure(&c);
    pool_wait(1);
    /* kill the waiting sandbox: our only child now */
    int killed = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[300], buf[512];
        snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
        FILE *f = atoi(e->d_name) > 0 ? fopen(p, "r") : NULL;
        if (!f)
            continue;
        int ppid = 0;
        if (fgets(buf, sizeof buf, f) && strrchr(buf, ')'))
            sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid);
        fclose(f);
        if (ppid == getpid() && kill(atoi(e->d_name), SIGKILL) == 0) {
            /* dead for sure (reaped: the pool sees it gone either way) */
            waitpid(atoi(e->d_name), NULL, 0);
            killed++;
        }
    }
    closedir(d);
    ck_assert_int_eq(killed, 1);
    ck_assert(WIFEXITED(run("echo fine > out", 0, NULL)));
    ck_assert_str_eq(read_file(out), "fine\n");
    fl_sandbox_process_shutdown();
}
END_TEST

START_TEST(new_settings_drop_the_sandboxes_made_ahead)
{
    fl_sandbox_config c = { 0, 0, 2, NULL };
    fl_sandbox_process_configure(&c);
    pool_wait(2);
    /* another uid range: the boxes holding uids of the old one go */
    fl_sandbox_config other = { 300000, 1000, 2, NULL };
    fl_sandbox_process_configure(&other);
    ck_assert(WIFEXITED(run("id -u > out", 0, NULL)));
    unsigned uid = (unsigned)atoi(read_file(out));
    ck_assert_msg(uid >= 300000 && uid < 301000, "uid %u", uid);
    fl_sandbox_process_shutdown();
    int left = my_cgroups();
    ck_assert_msg(left <= 0, "%d cgroups left", left);
}
END_TEST

START_TEST(an_environment_past_the_box_is_refused)
{
    /* 2 MB of environment: more than a box holds (and than execve takes) */
    size_t n = 2u << 20;
    char *big = fl_malloc(n + 8);
    memcpy(big, "BIG=", 4);
    memset(big + 4, 'x', n);
    big[n + 4] = 0;
    char *argv[] = { "true", NULL };
    char *envp[] = { big, NULL };
    const char *rw[] = { work, NULL };
    fl_spawn_spec spec = { .sandbox = "process", .path = "/bin/true", .argv = argv, .envp = envp,
                           .cwd = work, .name = "big", .root_dir = root, .rw_dirs = rw };
    fl_process p = { 0 };
    ck_assert_int_eq(fl_spawn(&p, &spec), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(flame_error_last(), "larger than"), "%s", flame_error_last());
    free(big);
    /* the box it took is gone with its uid: the next spawn runs */
    ck_assert(WIFEXITED(run("true", 0, NULL)));
}
END_TEST

/* ---- cgroup v2 ------------------------------------------------------------ */

/* A cgroup2 hierarchy we may write: the host's root when it is v2, else a
 * hybrid host's (e.g. /sys/fs/cgroup/unified). NULL: none. */
static const char *cgroup2_mount(void)
{
    static char path[256];
    FILE *f = fopen("/proc/self/mounts", "r");
    char dev[64], mnt[256], type[32];
    bool found = false;
    while (f && !found && fscanf(f, "%63s %255s %31s %*[^\n]\n", dev, mnt, type) == 3)
        found = strcmp(type, "cgroup2") == 0 && fl_cgroup_probe(mnt) == 2;
    if (f)
        fclose(f);
    if (!found)
        return NULL;
    snprintf(path, sizeof path, "%s", mnt);
    return path;
}

START_TEST(the_v2_code_runs_against_a_cgroup2_hierarchy)
{
    const char *root = cgroup2_mount();
    if (!root) {
        printf("no writable cgroup2 hierarchy on this host: the v2 test did not run\n");
        return;
    }
    printf("cgroup v2 test against %s\n", root);
    fl_cgroup cg;
    char name[48], self[80];
    snprintf(name, sizeof name, "flame-test-v2-%d", (int)getpid());
    snprintf(self, sizeof self, "/flame/%s\n", name);
    ck_assert_msg(fl_cgroup_make(&cg, root, 2, name), "%s", strerror(errno));
    ck_assert_int_eq(cg.version, 2);
    pid_t pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    ck_assert(fl_cgroup_join(&cg, pid));
    char p[640], line[512] = "";
    snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(p, "r");
    bool in = false;
    while (f && fgets(line, sizeof line, f))
        in = in || (strncmp(line, "0::", 3) == 0 && strstr(line, self));
    fclose(f);
    ck_assert_msg(in, "not in its cgroup");
    /* a cpu limit moves it under flame-cpu/ where the hierarchy has cpu */
    fl_cgroup_limit(&cg, 1, 64 << 20, 32, pid);
    const char *at = cg.dirs[1] ? cg.dirs[1] : cg.dirs[0];
    ck_assert(!cg.dirs[1] || strstr(cg.dirs[1], "/flame-cpu/"));
    /* a limit is applied exactly where its controller is enabled */
    static const char *const ctl[] = { "memory", "pids", "cpu" };
    static const char *const file[] = { "memory.max", "pids.max", "cpu.max" };
    static const char *const want[] = { "67108864\n", "32\n", "100000 100000\n" };
    bool limited[] = { cg.memory_limited, cg.pids_limited, cg.cpu_limited };
    char ctls[512] = "";
    snprintf(p, sizeof p, "%s/cgroup.controllers", at);
    f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    if (!fgets(ctls, sizeof ctls, f))
        ctls[0] = 0;
    fclose(f);
    for (int i = 0; i < 3; i++) {
        bool enabled = strstr(ctls, ctl[i]) != NULL;
        ck_assert_msg(limited[i] == enabled, "%s: limited %d, enabled %d", ctl[i], limited[i],
                      enabled);
        if (enabled) {
            char fp[600];
            snprintf(fp, sizeof fp, "%s/%s", at, file[i]);
            ck_assert_str_eq(read_file(fp), want[i]);
        }
        printf("cgroup v2 %s: %s\n", ctl[i], enabled ? "limited" : "not enabled (rlimit instead)");
    }
    /* remove kills what is left */
    char dir[600];
    snprintf(dir, sizeof dir, "%s", cg.dirs[0]);
    fl_cgroup_remove(&cg);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st));
    struct stat sb;
    ck_assert_msg(stat(dir, &sb) != 0, "%s is left", dir);
}
END_TEST

START_TEST(cgroups_of_gone_managers_are_swept)
{
    /* a v2-shaped tree in a plain directory: the sweep only reads names,
     * times and removes empty directories */
    char flame[600], p[700];
    snprintf(flame, sizeof flame, "%s/flame", dir);
    ck_assert_int_eq(mkdir(flame, 0755), 0);
    const char *names[] = { "999999999-100000", "999999999-100001", "keep-me", NULL };
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", flame, names[i]);
        ck_assert_int_eq(mkdir(p, 0755), 0);
    }
    snprintf(p, sizeof p, "%s/%d-100002", flame, (int)getpid()); /* ours: alive */
    ck_assert_int_eq(mkdir(p, 0755), 0);
    /* the first two are old; the second is not empty */
    struct timeval old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
    snprintf(p, sizeof p, "%s/999999999-100001/cgroup.procs", flame);
    FILE *f = fopen(p, "w");
    fclose(f);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", flame, names[i]);
        ck_assert_int_eq(utimes(p, old), 0);
    }
    snprintf(p, sizeof p, "%s/%d-100002", flame, (int)getpid());
    ck_assert_int_eq(utimes(p, old), 0);
    ck_assert_int_eq(fl_cgroup_sweep(dir, 2), 1);
    struct stat sb;
    snprintf(p, sizeof p, "%s/999999999-100000", flame);
    ck_assert_int_ne(stat(p, &sb), 0);
    for (int i = 1; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", flame, names[i]);
        ck_assert_int_eq(stat(p, &sb), 0);
    }
}
END_TEST

START_TEST(a_sandbox_on_a_cgroup2_hierarchy)
{
    const char *root = cgroup2_mount();
    if (!root) {
        printf("no writable cgroup2 hierarchy on this host: the v2 test did not run\n");
        return;
    }
    fl_sandbox_config c = { 0, 0, 0, root };
    fl_sandbox_process_configure(&c);
    char *report = fl_sandbox_process_probe();
    ck_assert_msg(strstr(report, "cgroup v2 under"), "%s", report);
    free(report);
    /* the executor is in its v2 cgroup; 64 MB: killed by memory.max where
     * the controller is enabled, refused by RLIMIT_AS where it is not */
    int st = run("cat /proc/self/cgroup > out; exec /usr/bin/python3 -c "
                 "'b = bytearray(400 << 20); b[-1] = 1; print(\"ok\")' >> out 2>&1",
                 64 << 20, NULL);
    const char *o = read_file(out);
    char want[64];
    snprintf(want, sizeof want, "0::/flame/%d-", (int)getpid());
    ck_assert_msg(strstr(o, want), "not in a v2 cgroup of ours: %s", o);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "it allocated: %s", o);
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
    tcase_add_test(tc, only_a_cpu_request_puts_it_under_the_cpu_controller);
    tcase_add_test(tc, a_device_of_the_spec_opens_inside);
    suite_add_tcase(s, tc);
    TCase *pool = tcase_create("pool");
    tcase_add_checked_fixture(pool, setup, teardown);
    tcase_set_timeout(pool, 60);
    tcase_add_test(pool, a_sandbox_made_ahead_serves_one_spawn);
    tcase_add_test(pool, a_sandbox_made_ahead_that_died_is_not_used);
    tcase_add_test(pool, an_environment_past_the_box_is_refused);
    tcase_add_test(pool, new_settings_drop_the_sandboxes_made_ahead);
    suite_add_tcase(s, pool);
    TCase *v2 = tcase_create("cgroup2");
    tcase_add_checked_fixture(v2, setup, teardown);
    tcase_set_timeout(v2, 30);
    tcase_add_test(v2, the_v2_code_runs_against_a_cgroup2_hierarchy);
    tcase_add_test(v2, a_sandbox_on_a_cgroup2_hierarchy);
    tcase_add_test(v2, cgroups_of_gone_managers_are_swept);
    suite_add_tcase(s, v2);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
