/* The "process" sandbox level: a service runs in new user, pid, mount, ipc,
 * uts and (network "none") net namespaces, as an unprivileged uid/gid of
 * its own from the configured range, on a read-only root made of the
 * system's library directories and the paths the caller names, with a
 * private writable work dir and /tmp, no_new_privs, no capabilities, a
 * seccomp filter (EPERM for mount, ptrace, bpf, keys, kexec, modules, new
 * namespaces, ...), Landlock write rules where the kernel has them and a
 * cgroup (v2, or v1's memory/pids/cpu) limiting memory, cpu and pids, with
 * rlimits in its place where no cgroup can be made. Pid 1 of its pid
 * namespace is a small init that forwards SIGTERM to the service and exits
 * with it: killing it ends everything inside.
 *
 * What the host cannot give (no user namespaces, no seccomp) makes spawn
 * fail with a message saying so; fl_sandbox_process_probe() says at start
 * what is and is not applied.
 *
 * Threads: the configuration, the probe and the seccomp program are set up
 * once (pthread_once / before the first spawn); uid slots are taken and
 * given back under a mutex. Between clone and execve the child is a copy of
 * one thread of a threaded process: it only makes system calls into stack
 * buffers and memory prepared by the parent (no malloc). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "process.h"
#include "spawn.h"
#include "util/util.h"

/* ---- configuration and what the host has ---------------------------------- */

static fl_sandbox_config config = { FL_SANDBOX_UID_FIRST, FL_SANDBOX_UID_COUNT };
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *slots; /* one byte per uid of the range: taken */

typedef struct host_caps {
    bool userns;    /* unprivileged-style user namespaces (we map one uid) */
    bool seccomp;
    int landlock;   /* its ABI; 0: none */
    int cgroup;     /* 2, 1 or 0 (rlimits only) */
    struct sock_fprog filter;
    char why_userns[160];
} host_caps;

static host_caps caps;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

void fl_sandbox_process_configure(const fl_sandbox_config *c)
{
    pthread_mutex_lock(&slots_lock);
    if (c->uid_count > 0) {
        config = *c;
        free(slots);
        slots = NULL;
    }
    pthread_mutex_unlock(&slots_lock);
}

static bool writable_dir(const char *path)
{
    return access(path, W_OK) == 0;
}

static int cgroup_version(void)
{
    char buf[256] = "";
    FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");
    if (f) {
        bool mem = fgets(buf, sizeof buf, f) && strstr(buf, "memory") && strstr(buf, "pids");
        fclose(f);
        if (mem && writable_dir("/sys/fs/cgroup"))
            return 2;
    }
    if (writable_dir("/sys/fs/cgroup/memory") && writable_dir("/sys/fs/cgroup/pids"))
        return 1;
    return 0;
}

/* The seccomp program: built once with libseccomp in the parent (it
 * allocates), loaded by the child with prctl. */
static bool build_filter(struct sock_fprog *out)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return false;
    static const char *const denied[] = {
        "mount", "umount", "umount2", "move_mount", "open_tree", "fsopen", "fsconfig",
        "fsmount", "fspick", "pivot_root", "chroot", "ptrace", "process_vm_readv",
        "process_vm_writev", "bpf", "keyctl", "add_key", "request_key", "kexec_load",
        "kexec_file_load", "init_module", "finit_module", "delete_module", "unshare", "setns",
        "perf_event_open", "reboot", "swapon", "swapoff", "acct", "quotactl", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl",
        "ioperm", "syslog", "userfaultfd", "open_by_handle_at", "name_to_handle_at",
        "lookup_dcookie", "vhangup", "nfsservctl", "personality", "mount_setattr",
    };
    int rc = 0;
    for (size_t i = 0; i < FL_ARRAY_LEN(denied) && rc == 0; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr != __NR_SCMP_ERROR)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    /* clone with CLONE_NEWUSER (or any new namespace): EPERM; clone3 cannot
     * be filtered on its flags (they are in memory): ENOSYS makes libc fall
     * back to clone */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    uint64_t ns = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
                  CLONE_NEWCGROUP;
    for (uint64_t bit = 1; rc == 0 && bit; bit <<= 1)
        if (ns & bit)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* TIOCSTI pushes input into a terminal outside */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, TIOCSTI));
    int fds[2] = { -1, -1 };
    bool ok = rc == 0 && pipe(fds) == 0 && seccomp_export_bpf(ctx, fds[1]) == 0;
    seccomp_release(ctx);
    if (fds[1] >= 0)
        close(fds[1]);
    if (!ok) {
        if (fds[0] >= 0)
            close(fds[0]);
        return false;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = fl_malloc(cap);
    ssize_t n;
    while ((n = read(fds[0], buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap)
            buf = fl_realloc(buf, cap *= 2);
    }
    close(fds[0]);
    out->filter = (struct sock_filter *)buf;
    out->len = (unsigned short)(len / sizeof(struct sock_filter));
    return out->len > 0;
}

static void probe(void)
{
    /* a user namespace of our own: the cheapest check is to make one */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | SIGCHLD,
                               NULL, NULL, NULL, NULL);
    if (pid == 0)
        _exit(0);
    int st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        caps.userns = true;
    else
        snprintf(caps.why_userns, sizeof caps.why_userns, "cannot make user+pid+mount "
                 "namespaces: %s", pid < 0 ? strerror(errno) : "the child failed");
    caps.seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && build_filter(&caps.filter);
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    caps.landlock = abi > 0 ? (int)abi : 0;
    caps.cgroup = cgroup_version();
}

char *fl_sandbox_process_probe(void)
{
    pthread_once(&probe_once, probe);
    return fl_sprintf("process sandbox: user/pid/mount/ipc/uts/net namespaces %s; seccomp %s; "
                      "landlock %s%s; limits by %s; uids %u-%u",
                      caps.userns ? "yes" : caps.why_userns,
                      caps.seccomp ? "yes" : "NO (binds of this level fail)",
                      caps.landlock ? "ABI " : "not in this kernel (the read-only root alone keeps "
                                               "writes in the work dir and /tmp)",
                      caps.landlock ? (caps.landlock == 1 ? "1" : caps.landlock == 2 ? "2" : "3+")
                                    : "",
                      caps.cgroup == 2   ? "cgroup v2"
                      : caps.cgroup == 1 ? "cgroup v1 (memory, pids, cpu)"
                                         : "rlimits (no cgroup can be made here)",
                      (unsigned)config.uid_first,
                      (unsigned)(config.uid_first + config.uid_count - 1));
}

/* ---- uid slots ------------------------------------------------------------- */

static int slot_take(uid_t *uid)
{
    int got = -1;
    pthread_mutex_lock(&slots_lock);
    if (!slots)
        slots = fl_calloc(config.uid_count, 1);
    /* start after the last one given: a uid is not handed on at once */
    static unsigned next;
    for (unsigned i = 0; i < config.uid_count && got < 0; i++) {
        unsigned k = (next + i) % config.uid_count;
        if (!slots[k]) {
            slots[k] = 1;
            got = (int)k;
            next = k + 1;
        }
    }
    pthread_mutex_unlock(&slots_lock);
    if (got >= 0)
        *uid = config.uid_first + (uid_t)got;
    return got;
}

static void slot_give(uid_t uid)
{
    pthread_mutex_lock(&slots_lock);
    if (slots && uid >= config.uid_first && uid - config.uid_first < config.uid_count)
        slots[uid - config.uid_first] = 0;
    pthread_mutex_unlock(&slots_lock);
}

/* ---- cgroups ----------------------------------------------------------------- */

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
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return write_file(p, text);
}

/* Makes the executor's cgroup(s) with the limits; *dirs gets the paths
 * (malloc'ed, NULL-terminated). false: none could be made. */
static bool cg_make(char ***dirs, const char *name, const fl_spawn_spec *spec)
{
    char v[64];
    char **d = fl_calloc(4, sizeof *d);
    *dirs = d;
    if (caps.cgroup == 2) {
        cg_write("/sys/fs/cgroup", "cgroup.subtree_control", "+memory +pids +cpu");
        mkdir("/sys/fs/cgroup/flame", 0755);
        cg_write("/sys/fs/cgroup/flame", "cgroup.subtree_control", "+memory +pids +cpu");
        d[0] = fl_sprintf("/sys/fs/cgroup/flame/%s", name);
        if (mkdir(d[0], 0755) != 0 && errno != EEXIST)
            return false;
        if (spec->memory) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)spec->memory);
            cg_write(d[0], "memory.max", v);
            cg_write(d[0], "memory.swap.max", "0");
        }
        snprintf(v, sizeof v, "%u", spec->max_pids ? spec->max_pids : FL_SANDBOX_PIDS);
        cg_write(d[0], "pids.max", v);
        if (spec->cpus) {
            snprintf(v, sizeof v, "%llu 100000", (unsigned long long)spec->cpus * 100000);
            cg_write(d[0], "cpu.max", v);
        }
        return true;
    }
    if (caps.cgroup != 1)
        return false;
    for (int i = 0; i < 3; i++) {
        char parent[128];
        snprintf(parent, sizeof parent, "/sys/fs/cgroup/%s/flame", v1_controllers[i]);
        mkdir(parent, 0755);
        d[i] = fl_sprintf("%s/%s", parent, name);
        if (mkdir(d[i], 0755) != 0 && errno != EEXIST)
            return i > 0; /* memory is the one that must be there */
    }
    if (spec->memory) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)spec->memory);
        cg_write(d[0], "memory.limit_in_bytes", v);
        cg_write(d[0], "memory.memsw.limit_in_bytes", v); /* absent without swap accounting */
    }
    snprintf(v, sizeof v, "%u", spec->max_pids ? spec->max_pids : FL_SANDBOX_PIDS);
    cg_write(d[1], "pids.max", v);
    if (spec->cpus && d[2]) {
        cg_write(d[2], "cpu.cfs_period_us", "100000");
        snprintf(v, sizeof v, "%llu", (unsigned long long)spec->cpus * 100000);
        cg_write(d[2], "cpu.cfs_quota_us", v);
    }
    return true;
}

static bool cg_join(char **dirs, pid_t pid)
{
    char v[32];
    snprintf(v, sizeof v, "%d", (int)pid);
    bool ok = true;
    for (size_t i = 0; dirs && dirs[i]; i++)
        ok = cg_write(dirs[i], "cgroup.procs", v) && ok;
    return ok;
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Kills what is left in the cgroups and removes them. */
static void cg_remove(char **dirs)
{
    for (size_t i = 0; dirs && dirs[i]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/cgroup.procs", dirs[i]);
        for (int tries = 0; tries < 50 && rmdir(dirs[i]) != 0 && errno == EBUSY; tries++) {
            FILE *f = fopen(p, "r");
            int pid;
            while (f && fscanf(f, "%d", &pid) == 1)
                kill(pid, SIGKILL);
            if (f)
                fclose(f);
            msleep(10);
        }
        free(dirs[i]);
    }
    free(dirs);
}

/* ---- the box: what the parent prepares, the child uses ---------------------- */

#define MAX_BINDS 48

typedef struct sbx_bind {
    char src[512];
    bool rw;
    bool link;         /* src is a symbolic link: made again inside */
    char target[512];  /* its target */
    unsigned long flags; /* the source mount's locked flags (nosuid, nodev, noexec) */
} sbx_bind;

typedef struct fl_box {
    uid_t uid;
    char root[512];     /* the empty directory the new root is mounted on */
    char **cgroups;     /* NULL-terminated; NULL: rlimits instead */
    sbx_bind binds[MAX_BINDS];
    int n_binds;
    sbx_bind devs[5];
    int n_devs;
    char rw_dirs[4][512];
    int n_rw;
    bool net_host;
    uint64_t memory;
    unsigned max_pids;
} fl_box;

static const char *const system_paths[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
    "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates",
    "/etc/localtime", "/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group",
    "/etc/python3", "/etc/resolv.conf",
};

static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(path, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID)
            f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
            f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
            f |= MS_NOEXEC;
    }
    return f;
}

static void add_bind(fl_box *b, const char *path, bool rw)
{
    struct stat st;
    if (!path || path[0] != '/' || b->n_binds >= MAX_BINDS || lstat(path, &st) != 0 ||
        strlen(path) >= sizeof b->binds[0].src)
        return;
    for (int i = 0; i < b->n_binds; i++)
        if (strcmp(b->binds[i].src, path) == 0)
            return;
    sbx_bind *x = &b->binds[b->n_binds++];
    snprintf(x->src, sizeof x->src, "%s", path);
    x->rw = rw;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(path, x->target, sizeof x->target - 1);
        x->link = n > 0;
        x->target[n > 0 ? n : 0] = 0;
    }
    x->flags = locked_flags(path);
}

/* ---- the child ---------------------------------------------------------------- */

/* mkdir -p of a path below root, in a stack buffer; the last component is a
 * directory (dir) or an empty file. */
static int make_point(const char *root, const char *path, bool dir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s%s", root, path);
    size_t rl = strlen(root);
    for (char *s = p + rl + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    }
    if (dir)
        return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
    struct stat st;
    if (lstat(p, &st) == 0) /* inside a directory bound before */
        return 0;
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/* Binds what fd (O_PATH, opened by the parent) is at root/src. */
static int bind_into(const char *root, const char *src, int fd, unsigned long flags, bool rw)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || make_point(root, src, S_ISDIR(st.st_mode)) != 0)
        return -1;
    char dst[1100], from[64];
    snprintf(dst, sizeof dst, "%s%s", root, src);
    snprintf(from, sizeof from, "/proc/self/fd/%d", fd);
    if (mount(from, dst, NULL, MS_BIND | MS_REC, NULL) != 0)
        return -1;
    /* a writable path holds no devices of its own; the device binds are rw
     * and keep their node */
    unsigned long f = MS_REMOUNT | MS_BIND | MS_NOSUID | flags |
                      (!rw ? MS_RDONLY : S_ISCHR(st.st_mode) ? 0 : MS_NODEV);
    return mount(NULL, dst, NULL, f, NULL);
}

static void lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
}

static int landlock(const fl_box *b)
{
    if (!caps.landlock)
        return 0;
    uint64_t all = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                   LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                   LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                   LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
                   LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
#ifdef LANDLOCK_ACCESS_FS_REFER
    if (caps.landlock >= 2)
        all |= LANDLOCK_ACCESS_FS_REFER;
#endif
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
    if (caps.landlock >= 3)
        all |= LANDLOCK_ACCESS_FS_TRUNCATE;
#endif
    struct landlock_ruleset_attr ra = { .handled_access_fs = all };
    int rs = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof ra, 0);
    if (rs < 0)
        return -1;
    uint64_t dev = LANDLOCK_ACCESS_FS_WRITE_FILE;
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
    if (caps.landlock >= 3)
        dev |= LANDLOCK_ACCESS_FS_TRUNCATE; /* "> /dev/null" truncates */
#endif
    const char *paths[6] = { "/tmp", "/dev" };
    int n = 2;
    for (int i = 0; i < b->n_rw && n < 6; i++)
        paths[n++] = b->rw_dirs[i];
    for (int i = 0; i < n; i++) {
        struct landlock_path_beneath_attr pb = {
            .allowed_access = i == 1 ? dev : all,
            .parent_fd = open(paths[i], O_PATH | O_CLOEXEC),
        };
        if (pb.parent_fd >= 0) {
            syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
            close(pb.parent_fd);
        }
    }
    int rc = (int)syscall(SYS_landlock_restrict_self, rs, 0);
    close(rs);
    return rc;
}

#define EXIT_SETUP FL_SPAWN_EXIT_SANDBOX

static volatile pid_t service_pid;
static int child_log = -1;

/* Says which step failed into the service's log (no stdio: see the top). */
static _Noreturn void die_at(const char *step, const char *path)
{
    int e = errno;
    char num[16];
    int n = 0;
    do
        num[sizeof num - 1 - n++] = (char)('0' + e % 10);
    while ((e /= 10) && n < 15);
    static const char head[] = "flame process sandbox: cannot ";
    int fd = child_log >= 0 ? child_log : 2;
    if (write(fd, head, sizeof head - 1) < 0 || write(fd, step, strlen(step)) < 0 ||
        (path && (write(fd, " ", 1) < 0 || write(fd, path, strlen(path)) < 0)) ||
        write(fd, " (errno ", 8) < 0 || write(fd, num + sizeof num - n, (size_t)n) < 0 ||
        write(fd, ")\n", 2) < 0)
        _exit(EXIT_SETUP);
    _exit(EXIT_SETUP);
}

static _Noreturn void die(const char *step)
{
    die_at(step, NULL);
}

static void forward(int sig)
{
    if (service_pid > 0)
        kill(service_pid, sig);
}

/* Pid 1: starts the service, forwards termination signals, reaps orphans
 * and exits as the service did (a signal as 128+N). */
static _Noreturn void init_main(const fl_spawn_spec *spec)
{
    /* the raw system call, not fork(): glibc's fork takes locks (malloc's)
     * another thread of the executor manager may have held when we were
     * cloned from it; they are never released in this copy */
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(spec->path, spec->argv, spec->envp);
        _exit(FL_SPAWN_EXIT_EXEC);
    }
    if (pid < 0)
        _exit(EXIT_SETUP);
    /* init never execs, so O_CLOEXEC does not apply to it: without this it
     * would hold the executor manager's sockets (its connection to the
     * session manager stays open after a kill -9 of the manager) */
    if (close_range(3, ~0U, 0) != 0)
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    service_pid = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w == pid)
            _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        if (w < 0 && errno != EINTR)
            _exit(EXIT_SETUP);
    }
}

static int drop_caps(void)
{
    for (int c = 0; c <= 63; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
            return -1;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    return (int)syscall(SYS_capset, &h, d);
}

static void set_limit(int res, rlim_t v)
{
    struct rlimit rl = { v, v };
    setrlimit(res, &rl);
}

static _Noreturn void child_main(const fl_box *b, const fl_spawn_spec *spec, int sync, int logfd)
{
    char c;
    child_log = logfd;
    if (read(sync, &c, 1) != 1) /* the parent wrote our uid map and cgroups */
        die("wait for the uid map");
    close(sync);
    if (spec->parent_death_signal)
        prctl(PR_SET_PDEATHSIG, spec->parent_death_signal);
    umask(022); /* the mount points are looked up as another uid */
    char opts[96];
    snprintf(opts, sizeof opts, "mode=0755,size=1m,uid=%u,gid=%u", (unsigned)b->uid,
             (unsigned)b->uid);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", b->root, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
        die("mount the new root");
    /* from here on paths inside are relative to it: the uid that makes
     * them could not look up the host's path to it */
    if (chdir(b->root) != 0)
        die("enter the new root");
    const char *root = ".";
    /* the sources, looked up while we are still the host's root (owner bits
     * only: its root is not mapped here, so no capability applies) */
    int fds[MAX_BINDS], devfds[FL_ARRAY_LEN(b->devs)];
    for (int i = 0; i < b->n_binds; i++)
        if (!b->binds[i].link && (fds[i] = open(b->binds[i].src, O_PATH | O_CLOEXEC)) < 0)
            die_at("open", b->binds[i].src);
    for (int i = 0; i < b->n_devs; i++)
        if ((devfds[i] = open(b->devs[i].src, O_PATH | O_CLOEXEC)) < 0)
            die("open a device");
    /* what is made inside is the sandbox's uid's: an unmapped one could not
     * own anything there */
    setfsuid(b->uid);
    setfsgid(b->uid);
    /* /tmp first: work dirs may live below the host's /tmp */
    char p[1100];
    snprintf(p, sizeof p, "%s/tmp", root);
    if (make_point(root, "/tmp", true) != 0 ||
        mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m") != 0)
        die("mount /tmp");
    for (int i = 0; i < b->n_binds; i++) {
        const sbx_bind *x = &b->binds[i];
        if (x->link) {
            snprintf(p, sizeof p, "%s%s", root, x->src);
            symlink(x->target, p);
        } else if (bind_into(root, x->src, fds[i], x->flags, x->rw) != 0) {
            die_at("bind", x->src);
        }
    }
    snprintf(p, sizeof p, "%s/proc", root);
    if (make_point(root, "/proc", true) != 0 ||
        mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        die("mount /proc");
    snprintf(p, sizeof p, "%s/dev", root);
    if (make_point(root, "/dev", true) != 0 ||
        mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NOEXEC, opts) != 0)
        die("mount /dev");
    for (int i = 0; i < b->n_devs; i++)
        if (bind_into(root, b->devs[i].src, devfds[i], b->devs[i].flags, true) != 0)
            die("bind a device");
    snprintf(p, sizeof p, "%s/dev/fd", root);
    symlink("/proc/self/fd", p);
    if (syscall(SYS_pivot_root, ".", ".") != 0 ||
        umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
        die("pivot_root");
    mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
    if (!b->net_host)
        lo_up();
    sethostname("flame", 5);
    /* the namespace's root is not mapped: changing uid keeps its
     * capabilities, dropped below */
    /* raw system calls: glibc's wrappers would signal every thread it
     * believes this process has (they stayed behind in the parent) */
    if (syscall(SYS_setgroups, 0, NULL) != 0 ||
        syscall(SYS_setresgid, b->uid, b->uid, b->uid) != 0 ||
        syscall(SYS_setresuid, b->uid, b->uid, b->uid) != 0)
        die("take the sandbox's uid");
    if (!b->cgroups) { /* rlimits in the cgroups' place */
        if (b->memory)
            set_limit(RLIMIT_AS, (rlim_t)b->memory);
    }
    /* the uid is the executor's own: NPROC counts only its processes */
    set_limit(RLIMIT_NPROC, b->max_pids ? b->max_pids : FL_SANDBOX_PIDS);
    set_limit(RLIMIT_NOFILE, 4096);
    set_limit(RLIMIT_CORE, 0);
    if (drop_caps() != 0)
        die("drop the capabilities");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("set no_new_privs");
    if (landlock(b) != 0)
        die("apply the Landlock rules");
    if (spec->cwd && chdir(spec->cwd) != 0)
        _exit(FL_SPAWN_EXIT_CHDIR);
    if (logfd >= 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    signal(SIGPIPE, SIG_DFL);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &caps.filter, 0, 0) != 0)
        die("load the seccomp filter");
    init_main(spec);
}

/* ---- the spawner ------------------------------------------------------------- */

static void box_free(fl_box *b)
{
    if (!b)
        return;
    cg_remove(b->cgroups);
    rmdir(b->root);
    slot_give(b->uid);
    free(b);
}

static flame_status process_spawn(const fl_spawner *sp, fl_process *p, const fl_spawn_spec *spec)
{
    pthread_once(&probe_once, probe);
    if (!caps.userns)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                        "sandbox process is not available on this node: %s", caps.why_userns);
    if (!caps.seccomp)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                        "sandbox process is not available on this node: no seccomp filter "
                        "can be loaded");
    if (!spec->name || !spec->root_dir)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "sandbox process needs a name and a root dir");
    fl_box *b = fl_calloc(1, sizeof *b);
    if (slot_take(&b->uid) < 0) {
        free(b);
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED,
                        "sandbox process: every uid of %u-%u is in use", (unsigned)config.uid_first,
                        (unsigned)(config.uid_first + config.uid_count - 1));
    }
    snprintf(b->root, sizeof b->root, "%s", spec->root_dir);
    b->net_host = spec->network && strcmp(spec->network, "host") == 0;
    b->memory = spec->memory;
    b->max_pids = spec->max_pids;
    for (size_t i = 0; i < FL_ARRAY_LEN(system_paths); i++)
        add_bind(b, system_paths[i], false);
    for (size_t i = 0; spec->ro_paths && spec->ro_paths[i]; i++)
        add_bind(b, spec->ro_paths[i], false);
    add_bind(b, spec->path, false);
    for (size_t i = 0; spec->rw_dirs && spec->rw_dirs[i] && b->n_rw < 4; i++) {
        snprintf(b->rw_dirs[b->n_rw++], sizeof b->rw_dirs[0], "%s", spec->rw_dirs[i]);
        if (chown(spec->rw_dirs[i], b->uid, b->uid) != 0) {
            flame_status st = fl_error(FLAME_ERR_IO, "sandbox process: cannot hand %s to uid %u: %s",
                                       spec->rw_dirs[i], (unsigned)b->uid, strerror(errno));
            box_free(b);
            return st;
        }
        add_bind(b, spec->rw_dirs[i], true);
    }
    if (mkdir(b->root, 0700) != 0 && errno != EEXIST) {
        flame_status st = fl_error(FLAME_ERR_IO, "sandbox process: cannot make %s: %s", b->root,
                                   strerror(errno));
        box_free(b);
        return st;
    }
    if (!cg_make(&b->cgroups, spec->name, spec)) {
        if (caps.cgroup)
            fl_log(FL_LOG_WARN, "sandbox", "%s: cannot make its cgroup (%s); rlimits instead",
                   spec->name, strerror(errno));
        cg_remove(b->cgroups);
        b->cgroups = NULL;
    }
    static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                        "/dev/urandom" };
    for (size_t i = 0; i < FL_ARRAY_LEN(devs); i++) {
        sbx_bind *x = &b->devs[b->n_devs];
        snprintf(x->src, sizeof x->src, "%s", devs[i]);
        x->flags = locked_flags(devs[i]);
        b->n_devs++;
    }
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) != 0) {
        box_free(b);
        return fl_error(FLAME_ERR_INTERNAL, "sandbox process: pipe: %s", strerror(errno));
    }
    int logfd = spec->log_file ? open(spec->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                      0600)
                               : -1;
    unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC |
                          CLONE_NEWUTS | (b->net_host ? 0 : CLONE_NEWNET);
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        close(sync[1]);
        if (spec->new_group)
            setpgid(0, 0);
        child_main(b, spec, sync[0], logfd);
    }
    int err = errno;
    close(sync[0]);
    if (logfd >= 0)
        close(logfd);
    if (pid < 0) {
        close(sync[1]);
        box_free(b);
        return fl_error(FLAME_ERR_INTERNAL, "sandbox process: cannot start %s: %s", spec->path,
                        strerror(err));
    }
    if (spec->new_group)
        setpgid(pid, pid);
    char path[64], map[64];
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)b->uid, (unsigned)b->uid);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    bool ok = write_file(path, map);
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    ok = write_file(path, map) && ok;
    if (ok && b->cgroups && !cg_join(b->cgroups, pid)) {
        fl_log(FL_LOG_WARN, "sandbox", "%s: cannot join its cgroups; rlimits instead",
               spec->name);
        cg_remove(b->cgroups);
        b->cgroups = NULL;
    }
    if (!ok || write(sync[1], "g", 1) != 1) {
        close(sync[1]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        box_free(b);
        return fl_error(FLAME_ERR_INTERNAL, "sandbox process: cannot map uid %u into %s's "
                        "namespace", (unsigned)b->uid, spec->path);
    }
    close(sync[1]);
    p->spawner = sp;
    p->pid = pid;
    p->group = spec->new_group;
    p->reaped = false;
    p->status = 0;
    p->box = b;
    return FLAME_OK;
}

static int process_signal(fl_process *p, int sig)
{
    if (p->pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    /* init forwards SIGTERM; SIGKILL of init ends the whole namespace */
    return kill(p->pid, sig);
}

static bool process_reap(fl_process *p, bool block)
{
    if (p->pid <= 0 || p->reaped)
        return p->reaped;
    int st;
    if (waitpid(p->pid, &st, block ? 0 : WNOHANG) == p->pid) {
        p->reaped = true;
        /* init exits 128+N for a service killed by signal N */
        if (WIFEXITED(st) && WEXITSTATUS(st) > 128 && WEXITSTATUS(st) < 128 + 65)
            st = WEXITSTATUS(st) - 128; /* a wait status "killed by signal N" */
        p->status = st;
    }
    return p->reaped;
}

static void process_stop(fl_process *p, int grace_ms)
{
    if (p->pid <= 0)
        return;
    fl_spawn_terminate(p, grace_ms, process_signal, process_reap);
    box_free(p->box); /* its cgroups go with anything left in them */
    p->box = NULL;
    p->pid = 0;
}

const fl_spawner fl_spawner_process = { "process", process_spawn, process_signal, process_reap,
                                        process_stop };
