/* The escape suite's hostile service (service.h, run by the host shim): each
 * task tries one way out of its sandbox and reports what the kernel said.
 *
 * A task whose attempt the kernel refused fails with "blocked: WHAT: WHY";
 * one whose attempt went through succeeds with what it did, so the tests can
 * tell a working sandbox from a broken one, and the level "none" serves as
 * the control. Inputs ("ATTACK:ARG"):
 *   whoami                 uid, NoNewPrivs, CapEff, Seccomp of this process
 *   write:PATH             create PATH (never overwrites)
 *   read:PATH              read PATH (answers with its size, never the content)
 *   plant:NAME:TEXT        write TEXT to NAME in the working directory;
 *                          answers with the file's path as this process sees it
 *   ps:PID                 is the executor manager (PID) visible here?
 *   kill:PID               SIGKILL to PID
 *   connect:HOST:PORT      a TCP connection
 *   forkbomb:N             N processes that stay (all killed before answering)
 *   alloc:MIB              MIB MiB allocated and touched
 *   ptrace:PID | ptrace:child   PTRACE_ATTACH to PID or to a child of ours
 *   mount                  a tmpfs on ./mnt
 *   module                 init_module with a junk image (harmless if allowed:
 *                          the kernel refuses to load it)
 *   setuid:PATH            runs PATH -u (a setuid copy of id) and compares
 *                          its effective uid with ours
 *   userns                 unshare(CLONE_NEWUSER) in a child
 *
 * Threads: the library may run tasks on its threads, one at a time; forked
 * children only call async-signal-safe functions. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flame/flame.h>

/* Sets the task's result: ok ? output : failure message. Returns the task's
 * return code. */
static int answer(flame_task_result *r, int ok, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (ok) {
        flame_task_result_set_output(r, buf, strlen(buf));
        return 0;
    }
    flame_task_result_set_message(r, buf);
    return 1;
}

static int blocked(flame_task_result *r, const char *what, int err)
{
    return answer(r, 0, "blocked: %s: %s", what, strerror(err));
}

/* The value of a "Name:\tvalue" line of /proc/self/status, or "?". */
static void status_field(const char *name, char *out, size_t len)
{
    snprintf(out, len, "?");
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = 0;
            snprintf(out, len, "%s", v);
            break;
        }
    }
    if (f)
        fclose(f);
}

static int whoami(flame_task_result *r)
{
    char nnp[32], cap[32], sec[32];
    status_field("NoNewPrivs", nnp, sizeof nnp);
    status_field("CapEff", cap, sizeof cap);
    status_field("Seccomp", sec, sizeof sec);
    return answer(r, 1, "uid=%d NoNewPrivs=%s CapEff=%s Seccomp=%s", (int)geteuid(), nnp, cap,
                  sec);
}

static int write_file(flame_task_result *r, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        char what[600];
        snprintf(what, sizeof what, "write %s", path);
        return blocked(r, what, errno);
    }
    ssize_t w = write(fd, "escaped\n", 8);
    close(fd);
    return answer(r, 1, "wrote %zd bytes to %s", w, path);
}

static int read_file(flame_task_result *r, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char what[600];
    snprintf(what, sizeof what, "read %s", path);
    if (fd < 0)
        return blocked(r, what, errno);
    char buf[4096];
    ssize_t n, total = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        total += n;
    int err = errno;
    close(fd);
    if (n < 0)
        return blocked(r, what, err);
    return answer(r, 1, "read %zd bytes of %s", total, path);
}

static int plant(flame_task_result *r, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon)
        return answer(r, 0, "plant: NAME:TEXT");
    char name[256], cwd[512];
    snprintf(name, sizeof name, "%.*s", (int)(colon - arg), arg);
    FILE *f = fopen(name, "w");
    if (!f || fputs(colon + 1, f) < 0 || fclose(f) != 0)
        return answer(r, 0, "plant %s: %s", name, strerror(errno));
    if (!getcwd(cwd, sizeof cwd))
        return answer(r, 0, "getcwd: %s", strerror(errno));
    return answer(r, 1, "%s/%s", cwd, name);
}

/* Processes visible in /proc, and whether pid is one of them and runs an
 * executor manager. */
static int ps(flame_task_result *r, pid_t pid)
{
    DIR *d = opendir("/proc");
    if (!d)
        return blocked(r, "list /proc", errno);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            n++;
    closedir(d);
    char path[64], cmd[256] = "";
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k = read(fd, cmd, sizeof cmd - 1);
        cmd[k > 0 ? k : 0] = 0;
        close(fd);
    }
    if (strstr(cmd, "executor-manager"))
        return answer(r, 1, "the executor manager (pid %d) is visible among %d processes",
                      (int)pid, n);
    return answer(r, 0, "blocked: list processes: the executor manager (pid %d) is not visible "
                        "(%d processes in this /proc)", (int)pid, n);
}

static int kill_pid(flame_task_result *r, pid_t pid)
{
    if (pid <= 1 || pid == getpid()) /* never every process, never ourselves */
        return answer(r, 0, "kill: refusing pid %d", (int)pid);
    char what[64];
    snprintf(what, sizeof what, "kill -9 %d", (int)pid);
    if (kill(pid, SIGKILL) != 0)
        return blocked(r, what, errno);
    return answer(r, 1, "sent SIGKILL to pid %d", (int)pid);
}

static int connect_to(flame_task_result *r, const char *arg)
{
    char host[256];
    const char *colon = strrchr(arg, ':');
    if (!colon)
        return answer(r, 0, "connect: HOST:PORT");
    snprintf(host, sizeof host, "%.*s", (int)(colon - arg), arg);
    char what[300];
    snprintf(what, sizeof what, "connect to %s", arg);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai)
        return answer(r, 0, "blocked: %s: %s", what, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = { fd, POLLOUT, 0 };
            socklen_t len = sizeof err;
            if (poll(&p, 1, 3000) != 1)
                err = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0)
        close(fd);
    if (err)
        return blocked(r, what, err);
    return answer(r, 1, "connected to %s", arg);
}

/* Children that wait for their parent to go: they do nothing but exist. */
static pid_t idle_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;)
            pause();
    }
    return pid;
}

static void reap_all(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
}

static int forkbomb(flame_task_result *r, int want)
{
    if (want <= 0 || want > 100000)
        return answer(r, 0, "forkbomb: 1..100000 processes");
    pid_t *pids = calloc((size_t)want, sizeof *pids);
    int n = 0, err = 0;
    while (pids && n < want) {
        pid_t pid = idle_child();
        if (pid < 0) {
            err = errno;
            break;
        }
        pids[n++] = pid;
    }
    reap_all(pids, n);
    free(pids);
    if (err)
        return answer(r, 0, "blocked: fork bomb: fork failed after %d processes: %s", n,
                      strerror(err));
    return answer(r, 1, "forked %d processes", n);
}

static int alloc(flame_task_result *r, long mib)
{
    enum { CHUNK = 16 };
    size_t n = (size_t)(mib + CHUNK - 1) / CHUNK;
    char **chunks = calloc(n ? n : 1, sizeof *chunks);
    size_t got = 0;
    for (; chunks && got < n; got++) {
        chunks[got] = malloc((size_t)CHUNK << 20);
        if (!chunks[got])
            break;
        memset(chunks[got], 0xa5, (size_t)CHUNK << 20); /* touched: resident */
    }
    for (size_t i = 0; i < got; i++)
        free(chunks[i]);
    free(chunks);
    if (got < n)
        return answer(r, 0, "blocked: allocate %ld MiB: allocation failed after %zu MiB", mib,
                      got * CHUNK);
    return answer(r, 1, "allocated and touched %ld MiB", mib);
}

static int trace(flame_task_result *r, const char *arg)
{
    pid_t child = 0, pid;
    if (strcmp(arg, "child") == 0) {
        pid = child = idle_child();
        if (pid < 0)
            return answer(r, 0, "fork: %s", strerror(errno));
    } else {
        pid = (pid_t)atoi(arg);
    }
    char what[64];
    snprintf(what, sizeof what, "ptrace %s %d", child ? "our child" : "pid", (int)pid);
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    int err = errno;
    if (rc == 0) {
        waitpid(pid, NULL, child ? 0 : __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
    }
    if (child)
        reap_all(&child, 1);
    if (rc != 0)
        return blocked(r, what, err);
    return answer(r, 1, "attached to pid %d", (int)pid);
}

static int mount_tmpfs(flame_task_result *r)
{
    mkdir("mnt", 0700);
    if (mount("escape", "mnt", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") != 0)
        return blocked(r, "mount a tmpfs", errno);
    umount2("mnt", MNT_DETACH);
    return answer(r, 1, "mounted a tmpfs on ./mnt");
}

static int module(flame_task_result *r)
{
    static const char junk[64] = "not an ELF module";
    if (syscall(SYS_init_module, junk, sizeof junk, "") == 0)
        return answer(r, 1, "init_module loaded a junk image");
    int err = errno;
    if (err == EPERM || err == ENOSYS || err == EACCES)
        return blocked(r, "load a kernel module (init_module)", err);
    /* the kernel looked at the image: the call itself was allowed */
    return answer(r, 1, "init_module reached the module loader (%s)", strerror(err));
}

/* Runs path -u with stdout into a pipe: the effective uid it printed, or -1. */
static int run_id(const char *path, int *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        *err = errno;
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        execl(path, path, "-u", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = "";
    ssize_t n = pid > 0 ? read(fds[0], buf, sizeof buf - 1) : -1;
    close(fds[0]);
    int st = 0;
    if (pid > 0)
        waitpid(pid, &st, 0);
    if (pid < 0 || n <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        *err = pid < 0 ? errno : ENOEXEC;
        return -1;
    }
    buf[n] = 0;
    return atoi(buf);
}

static int setuid_binary(flame_task_result *r, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return answer(r, 0, "setuid: cannot see %s: %s", path, strerror(errno));
    if (!(sb.st_mode & S_ISUID))
        return answer(r, 0, "setuid: %s has no setuid bit here (owner %d, mode %o)", path,
                      (int)sb.st_uid, (int)(sb.st_mode & 07777));
    int err = 0, uid = run_id(path, &err);
    if (uid < 0)
        return answer(r, 0, "setuid: cannot run %s: %s", path, strerror(err));
    if (uid != (int)geteuid())
        return answer(r, 1, "the setuid binary %s ran with uid %d (ours: %d)", path, uid,
                      (int)geteuid());
    return answer(r, 0, "blocked: run a setuid binary: %s (owner %d) ran with our uid %d", path,
                  (int)sb.st_uid, uid);
}

static int userns(flame_task_result *r)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return answer(r, 0, "fork: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return answer(r, 1, "created a user namespace");
    return blocked(r, "create a user namespace (unshare CLONE_NEWUSER)",
                   WIFEXITED(st) ? WEXITSTATUS(st) : EINTR);
}

static int invoke(const flame_task_context *task, flame_task_result *r, void *payload)
{
    (void)payload;
    char in[1024];
    snprintf(in, sizeof in, "%.*s", (int)(task->input.len < sizeof in ? task->input.len
                                                                        : sizeof in - 1),
             task->input.data ? (const char *)task->input.data : "");
    char *arg = strchr(in, ':');
    if (arg)
        *arg++ = 0;
    else
        arg = in + strlen(in);
    if (strcmp(in, "whoami") == 0)
        return whoami(r);
    if (strcmp(in, "write") == 0)
        return write_file(r, arg);
    if (strcmp(in, "read") == 0)
        return read_file(r, arg);
    if (strcmp(in, "plant") == 0)
        return plant(r, arg);
    if (strcmp(in, "ps") == 0)
        return ps(r, (pid_t)atoi(arg));
    if (strcmp(in, "kill") == 0)
        return kill_pid(r, (pid_t)atoi(arg));
    if (strcmp(in, "connect") == 0)
        return connect_to(r, arg);
    if (strcmp(in, "forkbomb") == 0)
        return forkbomb(r, atoi(arg));
    if (strcmp(in, "alloc") == 0)
        return alloc(r, atol(arg));
    if (strcmp(in, "ptrace") == 0)
        return trace(r, arg);
    if (strcmp(in, "mount") == 0)
        return mount_tmpfs(r);
    if (strcmp(in, "module") == 0)
        return module(r);
    if (strcmp(in, "setuid") == 0)
        return setuid_binary(r, arg);
    if (strcmp(in, "userns") == 0)
        return userns(r);
    return answer(r, 0, "escape-service: unknown attack \"%s\"", in);
}

int main(void)
{
    signal(SIGCHLD, SIG_DFL);
    flame_service svc = { FLAME_SERVICE_VERSION, NULL, invoke, NULL, NULL };
    if (flame_service_run(&svc) != FLAME_OK) {
        fprintf(stderr, "escape-service: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
