/* Unit tests of the spawner (sandbox/spawn.h) with real child processes. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/spawn.h"
#include "util/util.h"

static char dir[] = "/tmp/flame-test-spawn-XXXXXX";
static char log_path[sizeof dir + 16];

static void setup(void)
{
    strcpy(dir, "/tmp/flame-test-spawn-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(log_path, sizeof log_path, "%s/out.log", dir);
}

static void teardown(void)
{
    unlink(log_path);
    rmdir(dir);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `sh -c script` with the spec's other fields from the caller. */
static void spawn_sh(fl_process *p, fl_spawn_spec *spec, const char *script)
{
    static char *argv[4];
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = (char *)script;
    argv[3] = NULL;
    static char *envp[] = { "FLAME_TEST_VAR=forty-two", "PATH=/usr/bin:/bin", NULL };
    spec->path = "/bin/sh";
    spec->argv = argv;
    if (!spec->envp)
        spec->envp = envp;
    ck_assert_int_eq(fl_spawn(p, spec), FLAME_OK);
    ck_assert_int_gt(p->pid, 0);
}

/* No zombie and no process left: waitpid knows no such child. */
static void assert_gone(pid_t pid)
{
    errno = 0;
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}

START_TEST(runs_with_its_environment_directory_and_log)
{
    fl_process p = { 0 };
    fl_spawn_spec spec = { .cwd = dir, .log_file = log_path };
    spawn_sh(&p, &spec, "echo \"$FLAME_TEST_VAR\"; pwd; echo err >&2; read x; echo \"in=$x\"; "
                        "exit 3");
    pid_t pid = p.pid;
    ck_assert(fl_process_reap(&p, true));
    ck_assert(WIFEXITED(p.status));
    ck_assert_int_eq(WEXITSTATUS(p.status), 3);
    char *text = fl_exit_text(p.status);
    ck_assert_str_eq(text, "exited with code 3");
    free(text);
    char want[256];
    snprintf(want, sizeof want, "forty-two\n%s\nerr\nin=\n", dir); /* stdin: /dev/null */
    ck_assert_str_eq(read_file(log_path), want);
    assert_gone(pid);
    /* the log is appended to, not truncated */
    fl_process q = { 0 };
    fl_spawn_spec again = { .log_file = log_path };
    spawn_sh(&q, &again, "echo more");
    ck_assert(fl_process_reap(&q, true));
    strcat(want, "more\n");
    ck_assert_str_eq(read_file(log_path), want);
}
END_TEST

START_TEST(reports_a_bad_directory_and_a_missing_program_by_exit_code)
{
    fl_process p = { 0 };
    char missing[sizeof dir + 16];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    fl_spawn_spec spec = { .cwd = missing };
    spawn_sh(&p, &spec, "exit 0");
    ck_assert(fl_process_reap(&p, true));
    ck_assert_int_eq(WEXITSTATUS(p.status), FL_SPAWN_EXIT_CHDIR);

    char *argv[] = { "nope", NULL };
    fl_spawn_spec bad = { .path = missing, .argv = argv, .envp = argv + 1 };
    fl_process q = { 0 };
    ck_assert_int_eq(fl_spawn(&q, &bad), FLAME_OK);
    ck_assert(fl_process_reap(&q, true));
    ck_assert_int_eq(WEXITSTATUS(q.status), FL_SPAWN_EXIT_EXEC);
}
END_TEST

START_TEST(stop_ends_a_process_that_exits_on_sigterm)
{
    fl_process p = { 0 };
    fl_spawn_spec spec = { .new_group = true };
    spawn_sh(&p, &spec, "exec sleep 30");
    pid_t pid = p.pid;
    ck_assert(!fl_process_reap(&p, false));
    int64_t t0 = now_ms();
    fl_process_stop(&p, 5000);
    ck_assert_int_lt(now_ms() - t0, 4000);
    ck_assert(p.reaped);
    ck_assert_int_eq(p.pid, 0);
    ck_assert(WIFSIGNALED(p.status));
    ck_assert_int_eq(WTERMSIG(p.status), SIGTERM);
    assert_gone(pid);
    /* stopped: further calls are harmless */
    fl_process_stop(&p, 5000);
    ck_assert(fl_process_reap(&p, false));
    ck_assert_int_eq(fl_process_signal(&p, SIGTERM), -1);
}
END_TEST

START_TEST(stop_kills_a_process_that_ignores_sigterm)
{
    fl_process p = { 0 };
    fl_spawn_spec spec = { .new_group = true, .log_file = log_path };
    /* the shell says when its trap is in place, then ignores SIGTERM */
    spawn_sh(&p, &spec, "trap '' TERM; echo ready; while :; do sleep 1; done");
    pid_t pid = p.pid;
    for (int i = 0; i < 500 && !strstr(read_file(log_path), "ready"); i++)
        usleep(10000);
    ck_assert_ptr_nonnull(strstr(read_file(log_path), "ready"));
    int64_t t0 = now_ms();
    fl_process_stop(&p, 300);
    int64_t took = now_ms() - t0;
    ck_assert_int_ge(took, 300);
    ck_assert_int_lt(took, 3000);
    ck_assert(p.reaped);
    ck_assert(WIFSIGNALED(p.status));
    ck_assert_int_eq(WTERMSIG(p.status), SIGKILL);
    char *text = fl_exit_text(p.status);
    ck_assert_str_eq(text, "was killed by signal 9");
    free(text);
    assert_gone(pid);
}
END_TEST

START_TEST(signal_reaches_the_process_group)
{
    fl_process p = { 0 };
    fl_spawn_spec spec = { .new_group = true };
    spawn_sh(&p, &spec, "sleep 30; exit 0");
    ck_assert_int_eq(getpgid(p.pid), p.pid);
    ck_assert_int_eq(fl_process_signal(&p, SIGKILL), 0);
    ck_assert(fl_process_reap(&p, true));
    ck_assert(WIFSIGNALED(p.status));
    fl_process_stop(&p, 100);
    ck_assert_int_eq(p.pid, 0);
}
END_TEST

START_TEST(levels_are_chosen_by_name)
{
    const fl_spawner *sp = NULL;
    ck_assert_int_eq(fl_spawner_find(&sp, NULL), FLAME_OK);
    ck_assert_str_eq(sp->level, "none");
    ck_assert_int_eq(fl_spawner_find(&sp, "none"), FLAME_OK);
    ck_assert_str_eq(sp->level, "none");
    ck_assert_int_eq(fl_spawner_find(&sp, "microvm"), FLAME_OK);
    ck_assert_str_eq(sp->level, "microvm");
    ck_assert_int_eq(fl_spawner_find(&sp, "vmware"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "unknown sandbox level \"vmware\""));
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "none, process, microvm"));
    fl_process p = { 0 };
    char *argv[] = { "true", NULL };
    fl_spawn_spec spec = { .sandbox = "jail", .path = "/bin/true", .argv = argv, .envp = argv + 1 };
    ck_assert_int_eq(fl_spawn(&p, &spec), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(p.pid, 0);
    ck_assert(!fl_process_reap(&p, false));
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("spawn");
    TCase *tc = tcase_create("none");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, runs_with_its_environment_directory_and_log);
    tcase_add_test(tc, reports_a_bad_directory_and_a_missing_program_by_exit_code);
    tcase_add_test(tc, stop_ends_a_process_that_exits_on_sigterm);
    tcase_add_test(tc, stop_kills_a_process_that_ignores_sigterm);
    tcase_add_test(tc, signal_reaches_the_process_group);
    tcase_add_test(tc, levels_are_chosen_by_name);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
