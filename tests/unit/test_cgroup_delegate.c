/* The executor manager under systemd's Delegate=yes (sandbox/cgroup.c,
 * fl_cgroup_delegated): on a real cgroup2 hierarchy of this machine, a
 * child process in a cgroup marked delegated (as systemd marks it) moves
 * itself into <cgroup>/manager and makes executors' cgroups under
 * <cgroup>/flame; in a cgroup not marked, it stays where it is. Needs root
 * and a cgroup2 mount: skips saying so otherwise. */
#include <check.h>
#include <errno.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "sandbox/cgroup.h"

static char mount_dir[256];

static int find_cgroup2(void)
{
    FILE *f = setmntent("/proc/mounts", "r");
    struct mntent *m;
    while (f && (m = getmntent(f)))
        if (strcmp(m->mnt_type, "cgroup2") == 0 && access(m->mnt_dir, W_OK) == 0) {
            snprintf(mount_dir, sizeof mount_dir, "%s", m->mnt_dir);
            break;
        }
    if (f)
        endmntent(f);
    return mount_dir[0] != 0;
}

static int write_str(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(s, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The line of /proc/self/cgroup for the v2 hierarchy. */
static void own_cgroup(char *out, size_t n)
{
    char line[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    out[0] = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0)
            snprintf(out, n, "%.*s", (int)strcspn(line + 3, "\n"), line + 3);
    if (f)
        fclose(f);
}

/* In a child placed in dir: 0 when fl_cgroup_delegated answers `want` and
 * leaves the child where it should be. */
static int child(const char *dir, const char *rel, int want)
{
    char procs[640], root[600] = "", now[512];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    if (write_str(procs, "0") != 0)
        return 10;
    int got = fl_cgroup_delegated(mount_dir, root, sizeof root);
    own_cgroup(now, sizeof now);
    if (got != want)
        return 11;
    if (!want) /* stays in its cgroup, root untouched */
        return strcmp(now, rel) == 0 && !root[0] ? 0 : 12;
    char leaf[160];
    snprintf(leaf, sizeof leaf, "%s/manager", rel);
    if (strcmp(root, dir) != 0 || strcmp(now, leaf) != 0)
        return 13;
    fl_cgroup cg;
    if (!fl_cgroup_make(&cg, root, 2, "x"))
        return 14;
    char want_dir[640];
    snprintf(want_dir, sizeof want_dir, "%s/flame/x", dir);
    int ok = strcmp(cg.dirs[0], want_dir) == 0 && access(want_dir, F_OK) == 0;
    fl_cgroup_remove(&cg);
    return ok ? 0 : 15;
}

static void run(int mark)
{
    char rel[128], dir[600];
    snprintf(rel, sizeof rel, "/flame-test-delegate-%d", (int)getpid());
    snprintf(dir, sizeof dir, "%s%s", mount_dir, rel);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    if (mark)
        ck_assert_int_eq(setxattr(dir, "trusted.delegate", "1", 1, 0), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(child(dir, rel, mark));
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    char sub[640];
    snprintf(sub, sizeof sub, "%s/flame", dir);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/manager", dir);
    rmdir(sub);
    ck_assert_int_eq(rmdir(dir), 0); /* nothing left behind */
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: %d",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

START_TEST(delegated_subtree_is_used)
{
    run(1);
}
END_TEST

START_TEST(undelegated_cgroup_is_left_alone)
{
    run(0);
}
END_TEST

int main(void)
{
    if (geteuid() != 0 || !find_cgroup2()) {
        printf("SKIP: needs root and a writable cgroup2 mount (uid %d)\n", (int)geteuid());
        return 77;
    }
    Suite *su = suite_create("cgroup delegation");
    TCase *tc = tcase_create("delegate");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, delegated_subtree_is_used);
    tcase_add_test(tc, undelegated_cgroup_is_left_alone);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
