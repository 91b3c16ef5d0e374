/* flame-vm-agent: the init of a microvm guest (started by the image's /init
 * after it loaded the virtio modules). It owns the guest side of the two
 * virtio-serial ports the host's microvm spawner (libflame/sandbox/microvm.c)
 * gives the VM:
 *   flame.ctl       the control line: the agent says "booted", the host sends
 *                   one start request (program, directory, arguments,
 *                   environment), the agent starts the service and says
 *                   "ready" once it listens, or "error <why>".
 *   flame.instance  a byte stream the agent bridges to the service's Instance
 *                   socket: the host shim's gRPC (HTTP/2) reaches the service
 *                   unchanged, and FLAME_INSTANCE_ENDPOINT is, as on the host,
 *                   a Unix socket path the service listens on.
 * With flame.channel=vsock on the kernel command line (the host has
 * /dev/vhost-vsock) the same two streams are vsock connections instead: the
 * agent listens on port 1024 (control: the host's one connection) and 1025
 * (instance: each host connection bridged to a new connection to the
 * service, one at a time), FL_VSOCK_CTL_PORT/FL_VSOCK_INSTANCE_PORT of
 * libflame/sandbox/microvm.h.
 * When the service exits the agent reboots the guest, which ends QEMU
 * (-no-reboot): the host sees the VM go.
 *
 * Start request, after a line "start <length>": <length> bytes of
 * NUL-terminated strings: path, cwd, argc, argv[0..argc), envc, envp[0..envc).
 *
 * Built static (no libraries in the guest for it). One thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define INSTANCE_SOCK "/run/flame/instance.sock"
#define LISTEN_TIMEOUT_MS 60000
#define VSOCK_CTL_PORT 1024      /* FL_VSOCK_CTL_PORT */
#define VSOCK_INSTANCE_PORT 1025 /* FL_VSOCK_INSTANCE_PORT */

static int ctl = -1;
static int vsock; /* the channel is vsock, not virtio-serial ports */
static pid_t service;

static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    for (char *c = line; *c; c++)
        if (*c == '\n')
            *c = ' ';
    strcat(line, "\n");
    if (ctl >= 0 && write(ctl, line, strlen(line)) < 0)
        perror("flame-vm-agent: ctl");
    fprintf(stderr, "flame-vm-agent: %s", line);
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* The guest ends: QEMU runs with -no-reboot, so a reboot stops it. */
static void die(void)
{
    sync();
    reboot(RB_AUTOBOOT);
    _exit(1);
}

/* /dev/vportNpM of the port the host named `name` (no udev here). */
static int open_port(const char *name)
{
    for (int tries = 0; tries < 500; tries++) {
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p[300], got[64] = "";
            snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
            FILE *f = fopen(p, "r");
            if (!f)
                continue;
            if (fgets(got, sizeof got, f))
                got[strcspn(got, "\n")] = 0;
            fclose(f);
            if (strcmp(got, name) == 0) {
                snprintf(p, sizeof p, "/dev/%s", e->d_name);
                closedir(d);
                return open(p, O_RDWR | O_CLOEXEC);
            }
        }
        if (d)
            closedir(d);
        msleep(10);
    }
    return -1;
}

static ssize_t read_full(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0 && vsock)
            return -1; /* the host closed the control connection */
        if (r == 0) {
            msleep(5); /* the host is not connected (yet): a virtio port reads 0 */
            continue;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int write_full(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static int can_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int connect_service(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", INSTANCE_SOCK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void mkdirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

/* The next NUL-terminated field of a request, or NULL past its end. */
static char *next(char **s, char *end)
{
    if (*s >= end)
        return NULL;
    char *r = *s;
    *s += strlen(r) + 1;
    return r;
}

/* Reads the start request and starts the service; 0 once it listens. */
static int start_service(void)
{
    char line[64];
    size_t n = 0;
    while (n < sizeof line - 1) {
        if (read_full(ctl, line + n, 1) < 0)
            return -1;
        if (line[n++] == '\n')
            break;
    }
    line[n] = 0;
    size_t len;
    if (sscanf(line, "start %zu", &len) != 1 || len > (64u << 20)) {
        say("error bad start request");
        return -1;
    }
    char *buf = malloc(len + 1);
    if (!buf || read_full(ctl, buf, len) < 0)
        return -1;
    buf[len] = 0;
    /* the fields, in order */
    char *end = buf + len, *s = buf;
    char *path = next(&s, end), *cwd = next(&s, end), *c = next(&s, end);
    int argc = c ? atoi(c) : -1;
    if (!path || !cwd || argc < 0 || argc > 100000) {
        say("error bad start request");
        return -1;
    }
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    for (int i = 0; i < argc; i++)
        argv[i] = next(&s, end);
    c = next(&s, end);
    int envc = c ? atoi(c) : -1;
    if (envc < 0 || envc > 100000) {
        say("error bad start request");
        return -1;
    }
    char **envp = calloc((size_t)envc + 2, sizeof *envp);
    int k = 0;
    for (int i = 0; i < envc; i++) {
        char *e = next(&s, end);
        if (e && strncmp(e, "FLAME_INSTANCE_ENDPOINT=", 24) != 0)
            envp[k++] = e;
    }
    /* the service's endpoint is the guest's socket, which we bridge */
    envp[k++] = "FLAME_INSTANCE_ENDPOINT=" INSTANCE_SOCK;
    mkdirs("/run/flame");
    mkdirs(cwd);
    unlink(INSTANCE_SOCK);
    if (access(path, X_OK) != 0) {
        say("error %s is not in the VM image (%s): rebuild it with scripts/microvm-image.sh "
            "--service %s", path, strerror(errno), path);
        return -1;
    }
    service = fork();
    if (service == 0) {
        if (chdir(cwd) != 0)
            _exit(126);
        setsid();
        execve(path, argv, envp);
        fprintf(stderr, "flame-vm-agent: cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    for (int waited = 0; !can_connect(INSTANCE_SOCK); waited += 5) {
        int st;
        if (waitpid(service, &st, WNOHANG) == service) {
            say("error the service %s %s %d before listening", path,
                WIFEXITED(st) ? "exited with code" : "was killed by signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            return -1;
        }
        if (waited > LISTEN_TIMEOUT_MS) {
            say("error the service %s did not listen within %d s", path, LISTEN_TIMEOUT_MS / 1000);
            return -1;
        }
        msleep(5);
    }
    say("ready");
    return 0;
}

/* True while the service runs; reaps whatever else exited (we are pid 1). */
static int service_alive(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == service) {
            say("exit %s %d", WIFEXITED(st) ? "code" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            return 0;
        }
    }
    return 1;
}

/* Copies the host's connections on the instance port to the service's
 * socket, one at a time, until the service exits. */
static void bridge(int port)
{
    static char buf[65536];
    int conn = -1;
    while (service_alive()) {
        struct pollfd fds[2] = { { port, POLLIN, 0 }, { conn, POLLIN, 0 } };
        int n = poll(fds, conn >= 0 ? 2 : 1, 200);
        if (n < 0 && errno != EINTR)
            return;
        if (n <= 0)
            continue;
        if (fds[0].revents & POLLIN) {
            ssize_t r = read(port, buf, sizeof buf);
            if (r > 0 && conn < 0 && (conn = connect_service()) < 0)
                say("error cannot connect to the service: %s", strerror(errno));
            if (r > 0 && conn >= 0 && write_full(conn, buf, (size_t)r) != 0) {
                close(conn);
                conn = -1;
            }
            if (r == 0 && conn >= 0) { /* the host closed its connection */
                close(conn);
                conn = -1;
            }
        } else if (fds[0].revents & POLLHUP) {
            /* no host connection: drop ours, wait for the next */
            if (conn >= 0) {
                close(conn);
                conn = -1;
            }
            msleep(5);
        }
        if (conn >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
            ssize_t r = read(conn, buf, sizeof buf);
            if (r <= 0 || write_full(port, buf, (size_t)r) != 0) {
                close(conn);
                conn = -1;
            }
        }
    }
}

/* A vsock port listening for the host, or -1. */
static int vsock_listen(unsigned port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
                             .svm_port = port };
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* vsock: each host connection on the instance port to a connection of its
 * own to the service, one at a time, until the service exits. */
static void bridge_vsock(int lst)
{
    static char buf[65536];
    int host = -1, conn = -1;
    while (service_alive()) {
        struct pollfd fds[2] = { { host >= 0 ? host : lst, POLLIN, 0 }, { conn, POLLIN, 0 } };
        int n = poll(fds, host >= 0 ? 2 : 1, 200);
        if (n < 0 && errno != EINTR)
            return;
        if (n <= 0)
            continue;
        if (host < 0) {
            host = accept(lst, NULL, NULL);
            if (host >= 0 && (conn = connect_service()) < 0) {
                say("error cannot connect to the service: %s", strerror(errno));
                close(host);
                host = -1;
            }
            continue;
        }
        int done = 0;
        for (int i = 0; i < 2 && !done; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(fds[i].fd, buf, sizeof buf);
            done = r <= 0 || write_full(i == 0 ? conn : host, buf, (size_t)r) != 0;
        }
        if (done) {
            close(host);
            close(conn);
            host = conn = -1;
        }
    }
}

/* flame.channel=vsock on the kernel command line */
static int channel_is_vsock(void)
{
    char line[4096] = "";
    FILE *f = fopen("/proc/cmdline", "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        fclose(f);
    }
    for (char *t = strtok(line, " \n"); t; t = strtok(NULL, " \n"))
        if (strcmp(t, "flame.channel=vsock") == 0)
            return 1;
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if ((vsock = channel_is_vsock())) {
        int lctl = vsock_listen(VSOCK_CTL_PORT), linst = vsock_listen(VSOCK_INSTANCE_PORT);
        if (lctl < 0 || linst < 0) {
            fprintf(stderr, "flame-vm-agent: cannot listen on vsock ports %d and %d: %s\n",
                    VSOCK_CTL_PORT, VSOCK_INSTANCE_PORT, strerror(errno));
            die();
        }
        ctl = accept(lctl, NULL, NULL);
        close(lctl);
        if (ctl < 0)
            die();
        say("booted");
        if (start_service() == 0)
            bridge_vsock(linst);
        die();
    }
    ctl = open_port("flame.ctl");
    int port = open_port("flame.instance");
    if (ctl < 0 || port < 0) {
        fprintf(stderr, "flame-vm-agent: the virtio-serial ports flame.ctl and flame.instance "
                        "are missing\n");
        die();
    }
    say("booted");
    if (start_service() == 0)
        bridge(port);
    die();
}
