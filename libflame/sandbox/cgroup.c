/* An executor's cgroup(s) under v2 or v1 (cgroup.h).
 * Threads: no shared state but the log-once flags (atomics). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util/util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char *const v1_controllers[] = { "memory", "pids", "cpu" };

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

static bool cg_write(const char *dir, const char *file, const char *text)
{
    char p[1300];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return write_file(p, text);
}

/* Is the controller in dir's cgroup.controllers (v2)? */
static bool v2_has(const char *dir, const char *controller)
{
    char p[600], buf[512] = "";
    snprintf(p, sizeof p, "%s/cgroup.controllers", dir);
    FILE *f = fopen(p, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    size_t n = strlen(controller);
    for (char *s = buf; ok && (s = strstr(s, controller)); s += n)
        if ((s == buf || s[-1] == ' ') && (s[n] == ' ' || s[n] == '\n' || !s[n]))
            return true;
    return false;
}

int fl_cgroup_probe(const char *root)
{
    struct statfs sf;
    if (statfs(root, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
        return access(root, W_OK) == 0 ? 2 : 0;
    char m[600], p[600];
    snprintf(m, sizeof m, "%s/memory", root);
    snprintf(p, sizeof p, "%s/pids", root);
    return access(m, W_OK) == 0 && access(p, W_OK) == 0 ? 1 : 0;
}

/* Makes the v2 parent dir with the controllers its children get: memory
 * and pids, and cpu only under flame-cpu/ (a write each: one the hierarchy
 * lacks fails alone). */
static bool v2_enable(const char *root, const char *parent, bool cpu)
{
    static const char *const enable[] = { "+memory", "+pids", "+cpu" };
    size_t n = cpu ? 3 : 2;
    for (size_t i = 0; i < n; i++)
        cg_write(root, "cgroup.subtree_control", enable[i]);
    if (mkdir(parent, 0755) != 0 && errno != EEXIST)
        return false;
    for (size_t i = 0; i < n; i++)
        cg_write(parent, "cgroup.subtree_control", enable[i]);
    if (!cpu) /* as an older manager left it */
        cg_write(parent, "cgroup.subtree_control", "-cpu");
    return true;
}

bool fl_cgroup_make(fl_cgroup *cg, const char *root, int version, const char *name)
{
    memset(cg, 0, sizeof *cg);
    char parent[600];
    if (version == 2) {
        snprintf(parent, sizeof parent, "%s/flame", root);
        if (!v2_enable(root, parent, false))
            return false;
        cg->dirs[0] = fl_sprintf("%s/%s", parent, name);
        cg->cpu_dir = fl_sprintf("%s/flame-cpu/%s", root, name);
        if (mkdir(cg->dirs[0], 0755) != 0 && errno != EEXIST) {
            int e = errno;
            fl_cgroup_remove(cg);
            errno = e;
            return false;
        }
        cg->version = 2;
        return true;
    }
    if (version != 1)
        return errno = ENOTSUP, false;
    /* cpu too: most sessions ask for cores (the cluster default does) and a
     * v1 join is the slow part of a box, done ahead; one that asks for none
     * leaves it at its start (fl_cgroup_limit) */
    for (int i = 0; i < 3; i++) {
        snprintf(parent, sizeof parent, "%s/%s/flame", root, v1_controllers[i]);
        mkdir(parent, 0755);
        char *d = fl_sprintf("%s/%s", parent, name);
        if (mkdir(d, 0755) != 0 && errno != EEXIST) {
            free(d);
            if (i == 0) /* memory is the one that must be there */
                return false;
            continue;
        }
        cg->dirs[i] = d;
    }
    cg->cpu_dir = fl_sprintf("%s/cpu/flame/%s", root, name);
    cg->version = 1;
    return true;
}

/* Says once per resource that a v2 hierarchy lacks its controller. */
static void v2_missing(const char *dir, const char *controller, const char *instead)
{
    static atomic_int said; /* one bit per controller */
    int bit = controller[0] == 'm' ? 1 : controller[1] == 'i' ? 2 : 4;
    if (atomic_fetch_or(&said, bit) & bit)
        return;
    fl_log(FL_LOG_WARN, "sandbox", "cgroup v2: the %s controller is not enabled for %s (its "
           "cgroup.controllers lacks it; delegate it to this subtree); %s", controller, dir,
           instead);
}

/* Makes cg's cpu cgroup and moves pid into it (v2: the whole process, out
 * of dirs[0]). false: no cpu controller there (said once), or it failed. */
static bool cpu_join(fl_cgroup *cg, pid_t pid)
{
    char v[32], parent[600];
    if (cg->version == 1 && cg->dirs[2]) /* made and joined with the others */
        return true;
    snprintf(v, sizeof v, "%d", (int)pid);
    snprintf(parent, sizeof parent, "%s", cg->cpu_dir);
    *strrchr(parent, '/') = 0;
    if (cg->version == 2) {
        char root[600];
        snprintf(root, sizeof root, "%s", parent);
        *strrchr(root, '/') = 0;
        if (!v2_enable(root, parent, true))
            return false;
    } else if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
        return false;
    }
    if (mkdir(cg->cpu_dir, 0755) != 0 && errno != EEXIST)
        return false;
    if (cg->version == 2 && !v2_has(cg->cpu_dir, "cpu")) {
        v2_missing(cg->cpu_dir, "cpu", "cpu time is not limited");
        rmdir(cg->cpu_dir);
        return false;
    }
    if (!cg_write(cg->cpu_dir, "cgroup.procs", v)) {
        rmdir(cg->cpu_dir);
        return false;
    }
    cg->dirs[cg->version == 2 ? 1 : 2] = fl_strdup(cg->cpu_dir);
    return true;
}

/* v1: moves pid out of cg's cpu cgroup, back into this process's own (no
 * cpu request). */
static void cpu_leave(fl_cgroup *cg, pid_t pid)
{
    char line[512], own[512] = "", p[1200], v[32];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && !own[0] && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':'), *e = c ? strchr(c + 1, ':') : NULL;
        if (!e)
            continue;
        *e = 0;
        char ctl[128];
        snprintf(ctl, sizeof ctl, ",%s,", c + 1);
        if (strstr(ctl, ",cpu,")) {
            e[1 + strcspn(e + 1, "\n")] = 0;
            snprintf(own, sizeof own, "%s", e + 1);
        }
    }
    if (f)
        fclose(f);
    /* cpu_dir: <root>/cpu/flame/<name> */
    snprintf(p, sizeof p, "%s", cg->cpu_dir);
    for (int up = 0; up < 2 && strrchr(p, '/'); up++)
        *strrchr(p, '/') = 0;
    snprintf(p + strlen(p), sizeof p - strlen(p), "%s/cgroup.procs",
             strcmp(own, "/") == 0 ? "" : own);
    snprintf(v, sizeof v, "%d", (int)pid);
    if (own[0] && write_file(p, v))
        return;
    fl_log(FL_LOG_WARN, "sandbox", "cannot move %d out of %s (%s): scheduled as a cpu cgroup",
           (int)pid, cg->dirs[2], strerror(errno));
}

void fl_cgroup_limit(fl_cgroup *cg, uint64_t cpus, uint64_t memory, unsigned pids, pid_t pid)
{
    char v[64];
    cg->memory_limited = cg->pids_limited = cg->cpu_limited = false;
    bool cpu = cpus && cg->version && cpu_join(cg, pid);
    if (cg->version == 2) {
        const char *d = cg->dirs[cpu ? 1 : 0];
        if (v2_has(d, "memory")) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)memory);
            cg->memory_limited = !memory || cg_write(d, "memory.max", v);
            if (memory)
                cg_write(d, "memory.swap.max", "0"); /* absent without swap */
        } else if (memory) {
            v2_missing(d, "memory", "memory is limited by RLIMIT_AS instead");
        }
        if (v2_has(d, "pids")) {
            snprintf(v, sizeof v, "%u", pids);
            cg->pids_limited = cg_write(d, "pids.max", v);
        } else {
            v2_missing(d, "pids", "processes are limited by RLIMIT_NPROC instead");
        }
        snprintf(v, sizeof v, "%llu 100000", (unsigned long long)cpus * 100000);
        cg->cpu_limited = cpu ? cg_write(d, "cpu.max", v) : !cpus;
        return;
    }
    if (cg->version != 1)
        return;
    if (cg->dirs[0]) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)memory);
        cg->memory_limited = !memory || cg_write(cg->dirs[0], "memory.limit_in_bytes", v);
        if (memory) /* absent without swap accounting */
            cg_write(cg->dirs[0], "memory.memsw.limit_in_bytes", v);
    }
    if (cg->dirs[1]) {
        snprintf(v, sizeof v, "%u", pids);
        cg->pids_limited = cg_write(cg->dirs[1], "pids.max", v);
    }
    if (cpu) {
        snprintf(v, sizeof v, "%lld", (long long)cpus * 100000);
        cg->cpu_limited = cg_write(cg->dirs[2], "cpu.cfs_period_us", "100000") &&
                          cg_write(cg->dirs[2], "cpu.cfs_quota_us", v);
    } else {
        if (!cpus && cg->dirs[2])
            cpu_leave(cg, pid);
        cg->cpu_limited = !cpus;
    }
}

bool fl_cgroup_join(const fl_cgroup *cg, pid_t pid)
{
    char v[32];
    snprintf(v, sizeof v, "%d", (int)pid);
    bool ok = true;
    for (size_t i = 0; i < FL_ARRAY_LEN(cg->dirs); i++)
        if (cg->dirs[i])
            ok = cg_write(cg->dirs[i], "cgroup.procs", v) && ok;
    return ok;
}

static int sweep_dir(const char *parent)
{
    DIR *d = opendir(parent);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end != '-' || (kill((pid_t)pid, 0) == 0 || errno == EPERM))
            continue;
        char p[900];
        snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
        /* a minute old at least: a manager in another pid namespace may be
         * making it right now (its pid means nothing here) */
        struct stat st;
        if (stat(p, &st) == 0 && st.st_mtime + 60 < time(NULL))
            n += rmdir(p) == 0; /* an empty one only */
    }
    if (d)
        closedir(d);
    return n;
}

int fl_cgroup_sweep(const char *root, int version)
{
    char parent[600];
    int n = 0;
    if (version == 2) {
        snprintf(parent, sizeof parent, "%s/flame", root);
        n += sweep_dir(parent);
        snprintf(parent, sizeof parent, "%s/flame-cpu", root);
        n += sweep_dir(parent);
    } else if (version == 1) {
        for (size_t i = 0; i < FL_ARRAY_LEN(v1_controllers); i++) {
            snprintf(parent, sizeof parent, "%s/%s/flame", root, v1_controllers[i]);
            n += sweep_dir(parent);
        }
    }
    return n;
}

void fl_cgroup_remove(fl_cgroup *cg)
{
    if (!cg)
        return;
    for (size_t i = 0; i < FL_ARRAY_LEN(cg->dirs); i++) {
        if (!cg->dirs[i])
            continue;
        char p[600];
        snprintf(p, sizeof p, "%s/cgroup.procs", cg->dirs[i]);
        /* a process killed a moment ago leaves its cgroup as it exits:
         * short waits, up to about a second */
        for (int tries = 0; tries < 200 && rmdir(cg->dirs[i]) != 0 && errno == EBUSY; tries++) {
            FILE *f = fopen(p, "r");
            int pid;
            while (f && fscanf(f, "%d", &pid) == 1)
                kill(pid, SIGKILL);
            if (f)
                fclose(f);
            struct timespec ts = { 0, tries < 20 ? 500000 : 5000000 };
            nanosleep(&ts, NULL);
        }
        free(cg->dirs[i]);
    }
    free(cg->cpu_dir);
    memset(cg, 0, sizeof *cg);
}

/* ---- systemd delegation (Delegate=yes): the manager's own subtree ---- */

bool fl_cgroup_delegated(const char *mount, char *root, size_t size)
{
    struct statfs sf;
    char own[400] = "", line[480];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) /* the v2 hierarchy's line */
            snprintf(own, sizeof own, "%.*s", (int)strcspn(line + 3, "\n"), line + 3);
    if (f)
        fclose(f);
    if (statfs(mount, &sf) != 0 || sf.f_type != CGROUP2_SUPER_MAGIC || !own[0] ||
        strcmp(own, "/") == 0) {
        fl_log(FL_LOG_INFO, "sandbox", "cgroups: no cgroup v2 subtree of our own (cgroup \"%s\" "
               "on %s): executors' cgroups go under the root", own, mount);
        return false;
    }
    char dir[600], mark[8] = "";
    snprintf(dir, sizeof dir, "%s%s", mount, own);
    /* systemd marks a delegated cgroup (>= 251): trusted.* for the system
     * manager, user.* for a user's */
    if (getxattr(dir, "trusted.delegate", mark, sizeof mark - 1) <= 0 &&
        getxattr(dir, "user.delegate", mark, sizeof mark - 1) <= 0)
        mark[0] = 0;
    if (mark[0] != '1') {
        fl_log(FL_LOG_INFO, "sandbox", "cgroups: %s is not delegated to this manager (run it "
               "with systemd's Delegate=yes): executors' cgroups go under the root", dir);
        return false;
    }
    /* no internal processes: the manager leaves the subtree's top for a
     * leaf of its own before the executors' controllers are enabled */
    char leaf[640];
    snprintf(leaf, sizeof leaf, "%s/manager", dir);
    if ((mkdir(leaf, 0755) != 0 && errno != EEXIST) || !cg_write(leaf, "cgroup.procs", "0")) {
        fl_log(FL_LOG_WARN, "sandbox", "cgroups: %s is delegated but this manager cannot move "
               "into %s (%s): executors' cgroups go under the root", dir, leaf, strerror(errno));
        return false;
    }
    snprintf(root, size, "%s", dir);
    fl_log(FL_LOG_INFO, "sandbox", "cgroups: v2 subtree %s delegated by systemd: this manager "
           "in %s/manager, executors' cgroups under %s/flame", dir, dir, dir);
    return true;
}
