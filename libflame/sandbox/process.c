/* The "process" sandbox level: a service runs in new user, pid, mount, ipc,
 * uts and (network "none") net namespaces, as an unprivileged uid/gid of
 * its own from the configured range, on a read-only root made of the
 * system's library directories and the paths the caller names, with a
 * private writable work dir and /tmp, no_new_privs, no capabilities, a
 * seccomp filter (EPERM for mount, ptrace, bpf, keys, kexec, modules, new
 * namespaces, ...), Landlock write rules where the kernel has them and a
 * cgroup (cgroup.c: v2, or v1's memory/pids/cpu) limiting memory, pids and
 * (only where the session asks for cores: the cpu controller costs every
 * wakeup) cpu, with rlimits in its place where no cgroup (or controller) is
 * there.
 * Pid 1 of its pid namespace is a small init that forwards SIGTERM to the
 * service and exits with it: killing it ends everything inside.
 *
 * A spawn costs two steps: making the box (uid, cgroup, the clone into new
 * namespaces, the uid map, joining the cgroup: most of the time, the v1
 * memory cgroup's join above all) and starting it (the spawn's paths,
 * limits and program handed over in shared memory, then the mounts, the
 * drops and the exec inside). A pool thread makes boxes ahead (network
 * "none"), so a bind only starts one; each box serves one spawn.
 *
 * What the host cannot give (no user namespaces, no seccomp) makes spawn
 * fail with a message saying so; fl_sandbox_process_probe() says at start
 * what is and is not applied.
 *
 * Threads: the configuration, the probe and the seccomp program are set up
 * once (pthread_once / before the first spawn); uid slots are taken and
 * given back under a mutex; the pool's list under its own (never both). Between clone and execve the child is a copy of
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

#include "cgroup.h"
#include "process.h"
#include "spawn.h"
#include "util/util.h"

/* ---- configuration and what the host has ---------------------------------- */

static fl_sandbox_config config = { FL_SANDBOX_UID_FIRST, FL_SANDBOX_UID_COUNT, 0, NULL };
static char cgroup_root[256] = FL_CGROUP_ROOT;
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

static void probe(void);
static void pool_resize(unsigned want);

void fl_sandbox_process_configure(const fl_sandbox_config *c)
{
    /* the boxes made ahead hold uids and cgroups of the old settings */
    pool_resize(0);
    pthread_once(&probe_once, probe);
    pthread_mutex_lock(&slots_lock);
    if (c->uid_count > 0 &&
        (c->uid_first != config.uid_first || c->uid_count != config.uid_count)) {
        config.uid_first = c->uid_first;
        config.uid_count = c->uid_count;
        free(slots);
        slots = NULL;
    }
    if (c->cgroup_root) {
        snprintf(cgroup_root, sizeof cgroup_root, "%s", c->cgroup_root);
        caps.cgroup = fl_cgroup_probe(cgroup_root);
    }
    pthread_mutex_unlock(&slots_lock);
    int swept = caps.cgroup ? fl_cgroup_sweep(cgroup_root, caps.cgroup) : 0;
    if (swept)
        fl_log(FL_LOG_INFO, "sandbox", "removed %d empty cgroups of executor managers that are "
               "gone", swept);
    pool_resize(c->pool < FL_SANDBOX_POOL_MAX ? c->pool : FL_SANDBOX_POOL_MAX);
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
    caps.cgroup = fl_cgroup_probe(cgroup_root);
}

char *fl_sandbox_process_probe(void)
{
    pthread_once(&probe_once, probe);
    return fl_sprintf("process sandbox: user/pid/mount/ipc/uts/net namespaces %s; seccomp %s; "
                      "landlock %s%s; limits by %s%s%s; uids %u-%u; %u made ahead",
                      caps.userns ? "yes" : caps.why_userns,
                      caps.seccomp ? "yes" : "NO (binds of this level fail)",
                      caps.landlock ? "ABI " : "not in this kernel (the read-only root alone keeps "
                                               "writes in the work dir and /tmp)",
                      caps.landlock ? (caps.landlock == 1 ? "1" : caps.landlock == 2 ? "2" : "3+")
                                    : "",
                      caps.cgroup == 2   ? "cgroup v2 under "
                      : caps.cgroup == 1 ? "cgroup v1 (memory, pids; cpu for a cpu request) under "
                                         : "rlimits (no cgroup can be made under ",
                      cgroup_root, caps.cgroup ? "" : ")",
                      (unsigned)config.uid_first,
                      (unsigned)(config.uid_first + config.uid_count - 1), config.pool);
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

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* ---- the box: what the parent prepares, the child uses ---------------------- */

#define MAX_BINDS 48

typedef struct sbx_bind {
    char src[512];
    bool rw;
    bool link;         /* src is a symbolic link: made again inside */
    char target[512];  /* its target; a device of the spec's: where it goes inside */
    unsigned long flags; /* the source mount's locked flags (nosuid, nodev, noexec) */
} sbx_bind;

/* A sandbox: made (namespaces, uid map, cgroups) by the parent, its init
 * waiting on its go socket; then filled with one spawn's program and paths
 * and let go. It lives in memory shared with its init (MAP_SHARED), so
 * what the parent fills in after the clone is what the child reads after
 * go: a box made ahead serves a spawn nobody knew of when it was made. */
typedef struct fl_box {
    uid_t uid;
    pid_t pid;          /* its init */
    int go;             /* our end of its go socket; -1 once let go */
    bool net_host;
    fl_cgroup cg;       /* parent's (its strings are the parent's heap) */
    bool cg_memory;     /* the cgroup limits memory (else RLIMIT_AS) */
    char root[512];     /* the empty directory the new root is mounted on */
    char log_file[512]; /* "": stdout and stderr inherited */
    sbx_bind binds[MAX_BINDS];
    int n_binds;
    sbx_bind devs[7];   /* the standard ones, then the spec's (src: our node of it) */
    int n_devs;
    char rw_dirs[4][512];
    int n_rw;
    uint64_t memory;
    unsigned max_pids;
    fl_spawn_spec spec; /* the spawn, its strings in arena */
    size_t used;
    char arena[];       /* BOX_ARENA bytes */
} fl_box;

/* The program's path, arguments, environment and cwd, at most. */
#define BOX_ARENA (1u << 20)

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

static _Noreturn void child_main(const fl_box *b, const fl_spawn_spec *spec, int logfd)
{
    child_log = logfd;
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
    for (int i = 0; i < b->n_devs; i++) {
        const sbx_bind *x = &b->devs[i];
        if (bind_into(root, x->target[0] ? x->target : x->src, devfds[i], x->flags, true) != 0)
            die_at("bind the device", x->target[0] ? x->target : x->src);
    }
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
    /* after the uid changes, which clear it */
    prctl(PR_SET_PDEATHSIG, spec->parent_death_signal);
    if (!b->cg_memory && b->memory) /* an rlimit in the cgroup's place */
        set_limit(RLIMIT_AS, (rlim_t)b->memory);
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

/* ---- the box: made, filled, let go ------------------------------------------ */

static void box_free(fl_box *b)
{
    for (int i = 0; i < b->n_devs; i++)
        if (b->devs[i].target[0]) /* our node of a spec's device */
            unlink(b->devs[i].src);
    fl_cgroup_remove(&b->cg);
    if (b->root[0])
        rmdir(b->root);
    slot_give(b->uid);
    munmap(b, sizeof *b + BOX_ARENA);
}

/* Ends a box whatever its state: its init (waiting or running) is killed
 * and reaped. */
static void box_destroy(fl_box *b)
{
    if (b->go >= 0)
        close(b->go);
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
    }
    box_free(b);
}

/* The box's init until go: it holds nothing of the manager's but stdio and
 * the go socket (a box made ahead would keep other pipes' ends open), and
 * ends with the thread that made it. */
static _Noreturn void box_child(fl_box *b, int go)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (go != 3 && dup2(go, 3) != 3)
        _exit(EXIT_SETUP);
    syscall(SYS_close_range, 4, ~0U, 0);
    char c;
    if (read(3, &c, 1) != 1) /* not wanted any more */
        _exit(EXIT_SETUP);
    close(3);
    int logfd = b->log_file[0]
                    ? open(b->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)
                    : -1;
    if (b->spec.new_group)
        setpgid(0, 0);
    child_main(b, &b->spec, logfd);
}

/* Makes a box: a uid, its cgroup, the namespaces with its init waiting. */
static flame_status box_make(bool net_host, fl_box **out)
{
    fl_box *b = mmap(NULL, sizeof *b + BOX_ARENA, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "sandbox process: cannot map a box: %s",
                        strerror(errno));
    b->go = -1;
    b->net_host = net_host;
    if (slot_take(&b->uid) < 0) {
        munmap(b, sizeof *b + BOX_ARENA);
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED,
                        "sandbox process: every uid of %u-%u is in use", (unsigned)config.uid_first,
                        (unsigned)(config.uid_first + config.uid_count - 1));
    }
    /* named by this manager and the uid: unique on the host while it lives */
    char name[48];
    snprintf(name, sizeof name, "%d-%u", (int)getpid(), (unsigned)b->uid);
    if (caps.cgroup && !fl_cgroup_make(&b->cg, cgroup_root, caps.cgroup, name))
        fl_log(FL_LOG_WARN, "sandbox", "cannot make the cgroup %s under %s (%s); rlimits instead",
               name, cgroup_root, strerror(errno));
    int go[2]; /* a socket pair: a send to a gone init fails without SIGPIPE */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
        flame_status st = fl_error(FLAME_ERR_INTERNAL, "sandbox process: socketpair: %s",
                                   strerror(errno));
        box_free(b);
        return st;
    }
    unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC |
                          CLONE_NEWUTS | (net_host ? 0 : CLONE_NEWNET);
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        close(go[1]);
        box_child(b, go[0]);
    }
    int err = errno;
    close(go[0]);
    if (pid < 0) {
        close(go[1]);
        box_free(b);
        return fl_error(FLAME_ERR_INTERNAL, "sandbox process: cannot make its namespaces: %s",
                        strerror(err));
    }
    b->pid = pid;
    b->go = go[1];
    /* its init has it; what is cloned or forked from now on (other boxes,
     * services of level none, QEMU) must not see this box's spawn */
    madvise(b, sizeof *b + BOX_ARENA, MADV_DONTFORK);
    char path[64], map[64];
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)b->uid, (unsigned)b->uid);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    bool ok = write_file(path, map);
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    ok = write_file(path, map) && ok;
    if (!ok) {
        box_destroy(b);
        return fl_error(FLAME_ERR_INTERNAL, "sandbox process: cannot map uid %u into its "
                        "namespace", (unsigned)b->uid);
    }
    if (b->cg.version && !fl_cgroup_join(&b->cg, pid)) {
        fl_log(FL_LOG_WARN, "sandbox", "cannot join the cgroup %s (%s); rlimits instead", name,
               strerror(errno));
        fl_cgroup_remove(&b->cg);
    }
    *out = b;
    return FLAME_OK;
}

/* n bytes of the box's arena, zeroed, 8-aligned; NULL when it is full. */
static void *arena_take(fl_box *b, size_t n)
{
    size_t at = (b->used + 7) & ~(size_t)7;
    if (at > BOX_ARENA || n > BOX_ARENA - at)
        return NULL;
    b->used = at + n;
    return memset(b->arena + at, 0, n);
}

static char *arena_str(fl_box *b, const char *s, bool *ok)
{
    char *r = s ? arena_take(b, strlen(s) + 1) : NULL;
    if (r)
        strcpy(r, s);
    else if (s)
        *ok = false;
    return r;
}

static char **arena_vec(fl_box *b, char *const *v, bool *ok)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **r = arena_take(b, (n + 1) * sizeof *r);
    if (!r) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        r[i] = arena_str(b, v[i], ok);
    return r;
}

/* A node of the host's device dev (a character device: /dev/kvm) beside
 * the box's root, owned by its uid, mode 0600: bound at dev inside. The
 * host's node is often root's alone (0600, or 0660 for a group the user
 * namespace cannot map). */
static flame_status own_device(fl_box *b, const char *dev, int k)
{
    struct stat st;
    if (b->n_devs >= (int)FL_ARRAY_LEN(b->devs) || strlen(dev) >= sizeof b->devs[0].target)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "sandbox process: too many devices (%s)",
                        dev);
    if (stat(dev, &st) != 0 || !S_ISCHR(st.st_mode))
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "sandbox process: %s is not a character "
                        "device here", dev);
    sbx_bind *x = &b->devs[b->n_devs];
    if (snprintf(x->src, sizeof x->src, "%.500s.dev%d", b->root, k) >= (int)sizeof x->src)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "sandbox process: %s is too long", b->root);
    unlink(x->src);
    if (mknod(x->src, S_IFCHR | 0600, st.st_rdev) != 0 || chown(x->src, b->uid, b->uid) != 0) {
        flame_status e = fl_error(FLAME_ERR_IO, "sandbox process: cannot make %s's node %s: %s",
                                  dev, x->src, strerror(errno));
        unlink(x->src);
        return e;
    }
    snprintf(x->target, sizeof x->target, "%s", dev);
    x->flags = locked_flags(x->src);
    b->n_devs++;
    return FLAME_OK;
}

/* Fills a made box with spec (paths, limits, the program) and lets it go. */
static flame_status box_start(fl_box *b, const fl_spawn_spec *spec)
{
    snprintf(b->root, sizeof b->root, "%s", spec->root_dir);
    b->memory = spec->memory;
    b->max_pids = spec->max_pids;
    for (size_t i = 0; i < FL_ARRAY_LEN(system_paths); i++)
        add_bind(b, system_paths[i], false);
    for (size_t i = 0; spec->ro_paths && spec->ro_paths[i]; i++)
        add_bind(b, spec->ro_paths[i], false);
    add_bind(b, spec->path, false);
    for (size_t i = 0; spec->rw_dirs && spec->rw_dirs[i] && b->n_rw < 4; i++) {
        snprintf(b->rw_dirs[b->n_rw++], sizeof b->rw_dirs[0], "%s", spec->rw_dirs[i]);
        if (chown(spec->rw_dirs[i], b->uid, b->uid) != 0)
            return fl_error(FLAME_ERR_IO, "sandbox process: cannot hand %s to uid %u: %s",
                            spec->rw_dirs[i], (unsigned)b->uid, strerror(errno));
        add_bind(b, spec->rw_dirs[i], true);
    }
    if (mkdir(b->root, 0700) != 0 && errno != EEXIST)
        return fl_error(FLAME_ERR_IO, "sandbox process: cannot make %s: %s", b->root,
                        strerror(errno));
    static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                        "/dev/urandom" };
    for (size_t i = 0; i < FL_ARRAY_LEN(devs); i++) {
        sbx_bind *x = &b->devs[b->n_devs++];
        snprintf(x->src, sizeof x->src, "%s", devs[i]);
        x->flags = locked_flags(devs[i]);
    }
    for (size_t i = 0; spec->devices && spec->devices[i]; i++) {
        flame_status st = own_device(b, spec->devices[i], (int)i);
        if (st)
            return st;
    }
    snprintf(b->log_file, sizeof b->log_file, "%s", spec->log_file ? spec->log_file : "");
    bool ok = true;
    b->spec = (fl_spawn_spec){
        .path = arena_str(b, spec->path, &ok),
        .argv = arena_vec(b, spec->argv, &ok),
        .envp = arena_vec(b, spec->envp, &ok),
        .cwd = arena_str(b, spec->cwd, &ok),
        .new_group = spec->new_group,
        .parent_death_signal = spec->parent_death_signal,
    };
    if (!ok)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "sandbox process: the arguments and "
                        "environment of %s are larger than %u bytes", spec->path, BOX_ARENA);
    unsigned pids = spec->max_pids ? spec->max_pids : FL_SANDBOX_PIDS;
    fl_cgroup_limit(&b->cg, spec->cpus, spec->memory, pids, b->pid);
    b->cg_memory = b->cg.memory_limited;
    if (spec->new_group)
        setpgid(b->pid, b->pid);
    if (send(b->go, "g", 1, MSG_NOSIGNAL) != 1)
        return fl_error(FLAME_ERR_UNAVAILABLE, "sandbox process: the sandbox for %s is gone "
                        "before its start", spec->path);
    close(b->go);
    b->go = -1;
    return FLAME_OK;
}

/* ---- the pool: boxes made ahead (network none) by a thread of its own -------- */

/* A box is made only after spawns have been quiet this long: making one
 * (a clone of this whole process, a cgroup join) beside a service that is
 * starting slowed its start by half (measured: listen 21 ms instead of
 * 11-13 under load). A burst of binds past the pool makes its own boxes. */
#define POOL_QUIET_MS 100

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fl_box *ready[FL_SANDBOX_POOL_MAX];
    unsigned n, want, gen; /* gen: settings changed, boxes being made are dropped */
    bool running, stopping;
    pthread_t th;
    int64_t last_spawn;    /* mono_ms() of the last process spawn */
    atomic_uint served;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits on the pool's condition up to ms (the lock held). */
static void pool_wait_ms(int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&pool.cv, &pool.mu, &until);
}

static void *pool_main(void *arg)
{
    (void)arg;
    pthread_once(&probe_once, probe);
    bool said = false;
    pthread_mutex_lock(&pool.mu);
    while (!pool.stopping) {
        if (pool.n >= pool.want || !caps.userns || !caps.seccomp) {
            pthread_cond_wait(&pool.cv, &pool.mu);
            continue;
        }
        int64_t quiet = mono_ms() - pool.last_spawn;
        if (quiet < POOL_QUIET_MS) {
            pool_wait_ms(POOL_QUIET_MS - quiet);
            continue;
        }
        unsigned gen = pool.gen;
        pthread_mutex_unlock(&pool.mu);
        fl_box *b = NULL;
        flame_status st = box_make(false, &b);
        if (st && !said) {
            fl_log(FL_LOG_WARN, "sandbox", "cannot make a sandbox ahead (spawns make their own): "
                   "%s", flame_error_last());
            said = true;
        }
        pthread_mutex_lock(&pool.mu);
        if (st) { /* no retry loop: once a second at most */
            if (!pool.stopping)
                pool_wait_ms(1000);
        } else if (pool.stopping || pool.n >= pool.want || gen != pool.gen) {
            pthread_mutex_unlock(&pool.mu);
            box_destroy(b);
            pthread_mutex_lock(&pool.mu);
        } else {
            pool.ready[pool.n++] = b;
        }
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* A box made ahead whose init still waits (take: network none); NULL:
 * none. Every spawn passes here: the pool waits for a quiet moment. */
static fl_box *pool_take(bool take)
{
    for (;;) {
        pthread_mutex_lock(&pool.mu);
        fl_box *b = take && pool.n ? pool.ready[--pool.n] : NULL;
        pool.last_spawn = mono_ms();
        pthread_cond_signal(&pool.cv); /* make the next, once quiet */
        pthread_mutex_unlock(&pool.mu);
        if (!b || waitpid(b->pid, NULL, WNOHANG) == 0)
            return b;
        b->pid = 0; /* it died waiting (killed from outside) */
        box_destroy(b);
    }
}

static void pool_resize(unsigned want)
{
    fl_box *drop[FL_SANDBOX_POOL_MAX];
    unsigned n = 0;
    pthread_mutex_lock(&pool.mu);
    pool.want = config.pool = want;
    if (!want)
        pool.gen++;
    while (pool.n > want)
        drop[n++] = pool.ready[--pool.n];
    bool start = want > 0 && !pool.running;
    pool.running = pool.running || start;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (unsigned i = 0; i < n; i++)
        box_destroy(drop[i]);
    if (start && pthread_create(&pool.th, NULL, pool_main, NULL) != 0) {
        pthread_mutex_lock(&pool.mu);
        pool.running = false;
        pthread_mutex_unlock(&pool.mu);
    }
}

void fl_sandbox_process_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    bool running = pool.running;
    pool.stopping = true;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    if (running)
        pthread_join(pool.th, NULL);
    pool_resize(0);
    pthread_mutex_lock(&pool.mu);
    pool.running = pool.stopping = false;
    pthread_mutex_unlock(&pool.mu);
}

void fl_sandbox_process_pool_stats(unsigned *ready, unsigned *served)
{
    pthread_mutex_lock(&pool.mu);
    *ready = pool.n;
    pthread_mutex_unlock(&pool.mu);
    *served = atomic_load(&pool.served);
}

/* ---- the spawner ------------------------------------------------------------- */

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
    bool net_host = spec->network && strcmp(spec->network, "host") == 0;
    fl_box *b = pool_take(!net_host);
    flame_status st = FLAME_OK;
    if (b && (st = box_start(b, spec)) == FLAME_ERR_UNAVAILABLE) {
        box_destroy(b); /* killed from outside while it waited: make one */
        b = NULL;
    } else if (b) {
        atomic_fetch_add(&pool.served, 1);
    }
    if (!b && !(st = box_make(net_host, &b)))
        st = box_start(b, spec);
    if (st) {
        if (b)
            box_destroy(b);
        return st;
    }
    p->spawner = sp;
    p->pid = b->pid;
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
