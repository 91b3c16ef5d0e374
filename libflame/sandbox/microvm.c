/* The "microvm" sandbox level: each service in a QEMU microvm guest of its
 * own, booted from the image of scripts/microvm-image.sh, and a pool of
 * pre-booted VMs per application.
 *
 * A VM has two virtio-serial ports, each QEMU's end a Unix socket in a
 * private directory of ours: flame.ctl (the guest agent says "booted", we
 * send the start request, it answers "ready" or "error <why>") and
 * flame.instance (the agent bridges it to the service's Instance socket).
 * Once the service listens, the instance socket is renamed to the spec's
 * FLAME_INSTANCE_ENDPOINT: the host shim connects there and speaks flame.v1
 * Instance gRPC to the service as to a local one. Where the host has
 * /dev/vhost-vsock (channel auto) or when asked (channel vsock), the VM has a
 * vhost-vsock device instead, with a guest CID of its own: the agent listens
 * on two vsock ports that carry exactly what the two serial ports carry, we
 * connect to the control port and relay each connection to inst.sock (a
 * socket of ours then) to the instance port, one at a time, on a thread of
 * the VM. The kernel command line tells the agent which (flame.channel=vsock).
 * An fl_process of this level
 * is the QEMU process; stopping it ends the VM. QEMU itself runs in the
 * process sandbox (process.c: its own uid, namespaces, no capabilities, our
 * seccomp filter under its own, a root of the system's libraries, the image
 * and the VM's directory, and /dev/kvm when KVM is used): a guest that
 * escapes into QEMU lands there. When the service exits the
 * agent tells how and ends the guest: the process's status is the service's
 * (QEMU's own when the VM died otherwise).
 *
 * The pool: after a spawn, the VMs of that application (same program,
 * arguments, environment and size) are topped up to pool_size in the
 * background, with the service already started: a later spawn only takes
 * one and renames its socket. Pooled services start before their executor
 * exists, so their FLAME_EXECUTOR_ID and HOME are the ones of the spawn
 * that filled the pool (HOME is a directory of the guest's own anyway). The pool serves the POOL_APPS applications bound most recently.
 *
 * Threads: `lock` guards the settings, the pool and the list of live VMs;
 * a spawn blocks its caller while a VM boots (outside the lock). The pool
 * thread boots VMs one at a time; the parent-death signal of a pooled VM
 * follows that thread, which lives until fl_microvm_shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <linux/vhost.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "microvm.h"
#include "spawn.h"
#include "util/util.h"

#define DEFAULT_BOOT_TIMEOUT_MS 120000
#define START_TIMEOUT_MS 60000
#define DEFAULT_MEMORY_MB 256
#define MIN_MEMORY_MB 128
#define POOL_APPS 8 /* applications the pool keeps VMs of: the most recently bound */
#define VHOST_VSOCK "/dev/vhost-vsock"
#define MAX_VMS 65536 /* CIDs in use at once, a bound of the allocator */

typedef struct vm {
    pid_t pid;      /* proc's: the pid of QEMU's process sandbox */
    fl_process proc; /* QEMU, in a process sandbox of its own */
    char *dir;      /* ours: ctl.sock, inst.sock, console.log */
    int ctl;        /* connected to flame.ctl */
    char *key;      /* the application it runs (pool) */
    char *log_to;   /* a pooled VM's executor log: its console is appended
                     * there when it stops */
    uint32_t cid;   /* vsock: the guest's CID; 0: serial */
    int relay_listen;       /* vsock: inst.sock, ours */
    pthread_t relay;
    bool relay_running;
    atomic_bool relay_stop;
    bool reaped;
    int status;
    struct vm *next;
} vm;

/* What a VM is booted with (copied: the pool keeps it). */
typedef struct vm_spec {
    char *key;
    char *path, *cwd;
    char **argv, **envp;
    unsigned cpus, memory_mb;
    struct vm_spec *next; /* the pool's list of applications */
} vm_spec;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static fl_microvm_config cfg; /* strings owned */
static vm *live;              /* handed to fl_process (by pid) */
static vm *pooled;            /* booted, service started, waiting */
static vm_spec *wanted;       /* the applications the pool keeps VMs of */
static pthread_t pool_thread;
static bool pool_running, stopping;
static bool channel_told; /* the channel was logged at info since configure */

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* ---- settings ------------------------------------------------------------ */

static void free_vm_spec(vm_spec *s);
static void vm_free(vm *v, int grace_ms);

void fl_microvm_shutdown(void)
{
    pthread_mutex_lock(&lock);
    bool joined = pool_running;
    stopping = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    if (joined)
        pthread_join(pool_thread, NULL);
    pthread_mutex_lock(&lock);
    pool_running = stopping = false;
    vm *v = pooled;
    pooled = NULL;
    while (wanted) {
        vm_spec *next = wanted->next;
        free_vm_spec(wanted);
        wanted = next;
    }
    pthread_mutex_unlock(&lock);
    while (v) {
        vm *next = v->next;
        vm_free(v, 0);
        v = next;
    }
}

flame_status fl_microvm_configure(const fl_microvm_config *c)
{
    fl_microvm_config def = { 0 };
    if (!c)
        c = &def;
    if (c->accel && strcmp(c->accel, "kvm") != 0 && strcmp(c->accel, "tcg") != 0)
        return fl_error(FLAME_ERR_CONFIG,
                        "microvm: unknown accelerator \"%s\" (kvm or tcg)", c->accel);
    if (c->channel && strcmp(c->channel, "auto") != 0 && strcmp(c->channel, "serial") != 0 &&
        strcmp(c->channel, "vsock") != 0)
        return fl_error(FLAME_ERR_CONFIG,
                        "microvm: unknown channel \"%s\" (auto, serial or vsock)", c->channel);
    fl_microvm_shutdown();
    pthread_mutex_lock(&lock);
    free((char *)cfg.image_dir);
    free((char *)cfg.accel);
    free((char *)cfg.qemu);
    free((char *)cfg.channel);
    cfg = *c;
    cfg.image_dir = fl_strdup(c->image_dir);
    cfg.accel = fl_strdup(c->accel);
    cfg.qemu = fl_strdup(c->qemu);
    cfg.channel = fl_strdup(c->channel);
    channel_told = false;
    pthread_mutex_unlock(&lock);
    return FLAME_OK;
}

size_t fl_microvm_pool_count(void)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (vm *v = pooled; v; v = v->next)
        n++;
    pthread_mutex_unlock(&lock);
    return n;
}

/* ---- the channel and the guest CID --------------------------------------- */

flame_status fl_microvm_channel_choose(const char *setting, const char *dev, bool *vsock)
{
    *vsock = false;
    if (setting && strcmp(setting, "serial") == 0)
        return FLAME_OK;
    bool forced = setting && strcmp(setting, "vsock") == 0;
    if (setting && !forced && strcmp(setting, "auto") != 0)
        return fl_error(FLAME_ERR_CONFIG,
                        "microvm: unknown channel \"%s\" (auto, serial or vsock)", setting);
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (!forced)
            return FLAME_OK;
        return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                        "microvm: the channel is vsock but %s is missing or cannot be opened "
                        "(%s; modprobe vhost_vsock), and it is never replaced by serial: use "
                        "channel auto or serial",
                        dev, strerror(errno));
    }
    close(fd);
    *vsock = true;
    return FLAME_OK;
}

static unsigned char cid_used[MAX_VMS / 8]; /* ours, by cid - 3 (under lock) */
static uint32_t cid_next;                    /* the counter: cid - 3 */

/* A CID is free when the vhost device takes it (it holds it only while this
 * fd is open: QEMU's own claim can still race another host process, in which
 * case the VM fails to boot with QEMU's message in its log). */
static int device_probe(uint32_t cid, void *arg)
{
    (void)arg;
    int fd = open(VHOST_VSOCK, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno;
    uint64_t c = cid;
    int r = ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &c) == 0 ? 0 : errno;
    close(fd);
    return r;
}

flame_status fl_microvm_cid_alloc(uint32_t *cid, fl_microvm_cid_probe probe, void *arg)
{
    if (!probe)
        probe = device_probe;
    pthread_mutex_lock(&lock);
    for (uint32_t tries = 0; tries < MAX_VMS; tries++) {
        uint32_t i = cid_next;
        cid_next = (cid_next + 1) % MAX_VMS;
        if (cid_used[i / 8] & (1u << (i % 8)))
            continue;
        int r = probe(i + 3, arg);
        if (r == EADDRINUSE || r == EBUSY)
            continue;
        if (r) {
            pthread_mutex_unlock(&lock);
            return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                            "microvm: cannot claim a vsock guest CID on %s: %s", VHOST_VSOCK,
                            strerror(r));
        }
        cid_used[i / 8] |= (unsigned char)(1u << (i % 8));
        pthread_mutex_unlock(&lock);
        *cid = i + 3;
        return FLAME_OK;
    }
    pthread_mutex_unlock(&lock);
    return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "microvm: no free vsock guest CID");
}

void fl_microvm_cid_release(uint32_t cid)
{
    if (cid < 3 || cid - 3 >= MAX_VMS)
        return;
    pthread_mutex_lock(&lock);
    cid_used[(cid - 3) / 8] &= (unsigned char)~(1u << ((cid - 3) % 8));
    pthread_mutex_unlock(&lock);
}

/* What one VM boot needs, resolved from the settings. */
typedef struct boot_cfg {
    char *kernel, *initrd, *qemu;
    char *disk; /* the image's python.img (a Python runtime), NULL: none */
    bool tcg;
    bool vsock;
    int boot_timeout_ms;
} boot_cfg;

static void free_boot_cfg(boot_cfg *b)
{
    free(b->kernel);
    free(b->initrd);
    free(b->disk);
    free(b->qemu);
}

static char *find_on_path(const char *cmd)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char *p = fl_sprintf("%.*s/%s", (int)n, path, cmd);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Fails with a message naming what is missing: KVM, the image, QEMU. */
static flame_status resolve_boot_cfg(boot_cfg *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_lock(&lock);
    char *dir = fl_strdup(cfg.image_dir);
    b->tcg = cfg.accel && strcmp(cfg.accel, "tcg") == 0;
    b->qemu = cfg.qemu ? fl_strdup(cfg.qemu) : NULL;
    b->boot_timeout_ms = cfg.boot_timeout_ms > 0 ? cfg.boot_timeout_ms : DEFAULT_BOOT_TIMEOUT_MS;
    char *channel = fl_strdup(cfg.channel ? cfg.channel : getenv("FLAME_MICROVM_CHANNEL"));
    pthread_mutex_unlock(&lock);
    if (!dir && getenv("FLAME_MICROVM_IMAGE"))
        dir = fl_strdup(getenv("FLAME_MICROVM_IMAGE"));
    if (!dir)
        dir = fl_sprintf("%s/.cache/flame/microvm/current", getenv("HOME") ? getenv("HOME") : "");
    b->kernel = fl_sprintf("%s/vmlinuz", dir);
    b->initrd = fl_sprintf("%s/initramfs.img", dir);
    b->disk = fl_sprintf("%s/python.img", dir);
    if (access(b->disk, R_OK) != 0) {
        free(b->disk);
        b->disk = NULL;
    }
    flame_status st = FLAME_OK;
    if (access(b->kernel, R_OK) != 0 || access(b->initrd, R_OK) != 0) {
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                      "microvm: the VM image is missing (%s: no readable vmlinuz and "
                      "initramfs.img); build it with scripts/microvm-image.sh",
                      dir);
    } else if (!b->tcg) {
        /* a KVM device answers its API version (12 since Linux 2.6.22) */
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        int api = fd >= 0 ? ioctl(fd, KVM_GET_API_VERSION, 0) : -1;
        const char *why = fd < 0 ? strerror(errno) : api != KVM_API_VERSION ? "not a KVM device"
                                                                           : NULL;
        if (why)
            st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                          "microvm: KVM is not available (/dev/kvm: %s); this node's "
                          "accelerator is kvm (tcg, much slower, only when chosen: "
                          "--microvm-accel tcg)",
                          why);
        if (fd >= 0)
            close(fd);
    }
    if (!st && !b->qemu && !(b->qemu = find_on_path("qemu-system-x86_64")))
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                      "microvm: qemu-system-x86_64 is not installed (Debian: qemu-system-x86)");
    if (!st && !(st = fl_microvm_channel_choose(channel, VHOST_VSOCK, &b->vsock))) {
        pthread_mutex_lock(&lock);
        bool tell = !channel_told;
        channel_told = true;
        pthread_mutex_unlock(&lock);
        if (tell)
            fl_log(FL_LOG_INFO, "microvm", "VMs talk to us over %s (channel %s)",
                   b->vsock ? "vsock (" VHOST_VSOCK ")" : "virtio-serial ports",
                   channel ? channel : "auto");
    }
    free(channel);
    free(dir);
    if (st)
        free_boot_cfg(b);
    return st;
}

/* ---- one VM -------------------------------------------------------------- */

static void free_vm_spec(vm_spec *s)
{
    if (!s)
        return;
    free(s->key);
    free(s->path);
    free(s->cwd);
    for (char **a = s->argv; a && *a; a++)
        free(*a);
    free(s->argv);
    for (char **e = s->envp; e && *e; e++)
        free(*e);
    free(s->envp);
    free(s);
}

static char **copy_strv(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **out = fl_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = fl_strdup(v[i]);
    return out;
}

/* Per-executor variables (the host shim's HOME of a sandboxed service is its
 * executor's directory): not part of what makes an application. */
static bool per_executor(const char *e)
{
    return strncmp(e, "FLAME_INSTANCE_ENDPOINT=", 24) == 0 ||
           strncmp(e, "FLAME_EXECUTOR_ID=", 18) == 0 || strncmp(e, "HOME=", 5) == 0;
}

static vm_spec *make_vm_spec(const fl_spawn_spec *spec)
{
    vm_spec *s = fl_calloc(1, sizeof *s);
    s->path = fl_strdup(spec->path);
    s->cwd = fl_strdup(spec->cwd ? spec->cwd : "/tmp");
    s->argv = copy_strv(spec->argv);
    s->envp = copy_strv(spec->envp);
    uint64_t mb = spec->memory >> 20;
    s->memory_mb = mb == 0 ? DEFAULT_MEMORY_MB : mb < MIN_MEMORY_MB ? MIN_MEMORY_MB
                   : mb > 65536 ? 65536 : (unsigned)mb;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->cpus = spec->cpus == 0 ? 1 : spec->cpus > (uint64_t)ncpu ? (unsigned)ncpu
                                                                : (unsigned)spec->cpus;
    fl_buf k = { 0 };
    fl_buf_printf(&k, "%u %u %s", s->cpus, s->memory_mb, s->path);
    for (char **a = s->argv; *a; a++)
        fl_buf_printf(&k, "\x1f%s", *a);
    for (char **e = s->envp; *e; e++)
        if (!per_executor(*e))
            fl_buf_printf(&k, "\x1e%s", *e);
    s->key = fl_buf_detach(&k);
    return s;
}

static vm_spec *copy_vm_spec(const vm_spec *w)
{
    vm_spec *s = fl_calloc(1, sizeof *s);
    *s = *w;
    s->key = fl_strdup(w->key);
    s->path = fl_strdup(w->path);
    s->cwd = fl_strdup(w->cwd);
    s->argv = copy_strv(w->argv);
    s->envp = copy_strv(w->envp);
    s->next = NULL;
    return s;
}

/* The TSC rate TCG guests run at (the host's): saves the guest a PIT
 * calibration that fails when the emulation runs late on a busy host, after
 * which the kernel stalls. */
static unsigned host_tsc_khz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
            break;
    if (f)
        fclose(f);
    return (unsigned)(mhz * 1000);
}

char **fl_microvm_qemu_argv(const fl_microvm_qemu *q)
{
    unsigned khz = q->tsc_khz;
    char *append = fl_sprintf("console=ttyS0 edd=off rdinit=/init quiet panic=-1%s%.0u%s",
                              khz ? " tsc=reliable tsc_early_khz=" : "", khz,
                              q->cid ? " flame.channel=vsock" : "");
    char *mem = fl_sprintf("%u", q->memory_mb);
    char *smp = fl_sprintf("%u", q->cpus);
    const char *head[] = { q->qemu, "-M", "microvm,isa-serial=on", "-accel", q->tcg ? "tcg" : "kvm",
                           "-cpu", q->tcg ? "max" : "host", "-m", mem, "-smp", smp,
                           "-kernel", q->kernel, "-initrd", q->initrd, "-append", append,
                           "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
                           /* QEMU's own seccomp filter: a guest that breaks into QEMU still
                            * cannot exec, fork, raise privileges or use obsolete calls */
                           "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
                                       "resourcecontrol=deny",
                           "-no-reboot" };
    char **argv = fl_calloc(FL_ARRAY_LEN(head) + 16, sizeof *argv);
    size_t n = 0;
    for (size_t i = 0; i < FL_ARRAY_LEN(head); i++)
        argv[n++] = fl_strdup(head[i]);
    if (q->cid) {
        /* microvm has no PCI: the virtio-mmio device */
        argv[n++] = fl_strdup("-device");
        argv[n++] = fl_sprintf("vhost-vsock-device,guest-cid=%u", q->cid);
    } else {
        argv[n++] = fl_strdup("-device");
        argv[n++] = fl_strdup("virtio-serial-device");
        argv[n++] = fl_strdup("-chardev");
        argv[n++] = fl_sprintf("socket,id=ctl,path=%s/ctl.sock,server=on,wait=off", q->dir);
        argv[n++] = fl_strdup("-device");
        argv[n++] = fl_strdup("virtserialport,chardev=ctl,name=flame.ctl");
        argv[n++] = fl_strdup("-chardev");
        argv[n++] = fl_sprintf("socket,id=inst,path=%s/inst.sock,server=on,wait=off", q->dir);
        argv[n++] = fl_strdup("-device");
        argv[n++] = fl_strdup("virtserialport,chardev=inst,name=flame.instance");
    }
    /* the Python runtime's disk, read-only: the guest's /dev/vda */
    if (q->disk) {
        argv[n++] = fl_strdup("-drive");
        argv[n++] = fl_sprintf("file=%s,if=none,id=py,format=raw,readonly=on", q->disk);
        argv[n++] = fl_strdup("-device");
        argv[n++] = fl_strdup("virtio-blk-device,drive=py");
    }
    free(append);
    free(mem);
    free(smp);
    return argv;
}

void fl_microvm_argv_free(char **argv)
{
    for (char **a = argv; a && *a; a++)
        free(*a);
    free(argv);
}

/* Starts QEMU for a VM in dir, in a process sandbox (proc); cid 0: serial. */
static flame_status start_qemu(fl_process *proc, const boot_cfg *b, const vm_spec *s,
                               const char *dir, uint32_t cid, const char *log, int death_signal)
{
    fl_microvm_qemu q = { .qemu = b->qemu, .kernel = b->kernel, .initrd = b->initrd,
                          .disk = b->disk, .tcg = b->tcg, .tsc_khz = b->tcg ? host_tsc_khz() : 0,
                          .memory_mb = s->memory_mb, .cpus = s->cpus, .dir = dir, .cid = cid };
    char **argv = fl_microvm_qemu_argv(&q);
    char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    const char *ro[] = { b->kernel, b->initrd, b->disk, NULL };
    const char *rw[] = { dir, NULL };
    const char *kvm[] = { "/dev/kvm", cid ? VHOST_VSOCK : NULL, NULL };
    const char *vsock_only[] = { VHOST_VSOCK, NULL };
    char *root = fl_sprintf("%s.root", dir);
    fl_spawn_spec spec = {
        .sandbox = "process",
        .path = b->qemu,
        .argv = argv,
        .envp = envp,
        .cwd = dir,
        .log_file = log,
        .parent_death_signal = death_signal,
        .name = strrchr(dir, '/') + 1,
        .root_dir = root,
        .network = "none", /* the guest has no network device; QEMU none either */
        .ro_paths = ro,
        .rw_dirs = rw,
        .devices = !b->tcg ? kvm : cid ? vsock_only : NULL,
    };
    flame_status st = fl_spawn(proc, &spec);
    free(root);
    fl_microvm_argv_free(argv);
    if (st)
        return fl_error(st, "microvm: QEMU runs in a process sandbox, which cannot be made "
                        "here: %s", flame_error_last());
    return FLAME_OK;
}

/* The service's own end, if the agent told it before the guest went down:
 * "exit code N" / "exit signal N" on the control port. */
static void read_exit(vm *v)
{
    char buf[1024];
    ssize_t n = v->ctl >= 0 ? recv(v->ctl, buf, sizeof buf - 1, MSG_DONTWAIT) : -1;
    if (n <= 0)
        return;
    buf[n] = 0;
    char *e = strstr(buf, "exit ");
    int x;
    if (e && sscanf(e, "exit code %d", &x) == 1)
        v->status = (x & 0xff) << 8;
    else if (e && sscanf(e, "exit signal %d", &x) == 1)
        v->status = x & 0x7f;
}

static bool vm_reap(vm *v, bool block)
{
    if (!v->reaped && fl_process_reap(&v->proc, block)) {
        v->reaped = true;
        v->status = v->proc.status;
        read_exit(v);
    }
    return v->reaped;
}

/* Ends QEMU (SIGTERM, grace_ms, SIGKILL) and its sandbox. */
static void vm_kill(vm *v, int grace_ms)
{
    vm_reap(v, false);
    fl_process_stop(&v->proc, grace_ms);
    if (!v->reaped) {
        v->reaped = true;
        v->status = v->proc.status;
        read_exit(v);
    }
}

static void rm_dir(const char *dir)
{
    static const char *const names[] = { "ctl.sock", "inst.sock", "console.log" };
    /* the process sandbox removed its root, dir.root, as QEMU stopped */
    for (size_t i = 0; i < FL_ARRAY_LEN(names); i++) {
        char *p = fl_sprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

/* Appends a pooled VM's console to its executor's log. */
static void keep_console(const vm *v)
{
    char *path = fl_sprintf("%s/console.log", v->dir);
    FILE *in = fopen(path, "r"), *out = fopen(v->log_to, "a");
    char buf[8192];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    free(path);
}

static void vm_free(vm *v, int grace_ms)
{
    if (!v)
        return;
    if (v->pid > 0)
        vm_kill(v, grace_ms);
    if (v->relay_running) {
        v->relay_stop = true;
        pthread_join(v->relay, NULL);
    }
    if (v->relay_listen >= 0)
        close(v->relay_listen);
    fl_microvm_cid_release(v->cid);
    if (v->log_to) {
        keep_console(v);
        free(v->log_to);
    }
    if (v->ctl >= 0)
        close(v->ctl);
    if (v->dir) {
        rm_dir(v->dir);
        free(v->dir);
    }
    free(v->key);
    free(v);
}

/* Reads one line from the control port; false on timeout or when QEMU is
 * gone. */
static bool read_line(vm *v, char *line, size_t size, int timeout_ms)
{
    size_t n = 0;
    int64_t deadline = fl_mono_ns() + (int64_t)timeout_ms * 1000000;
    while (n < size - 1) {
        int left = (int)((deadline - fl_mono_ns()) / 1000000);
        struct pollfd pfd = { v->ctl, POLLIN, 0 };
        if (left <= 0 || vm_reap(v, false))
            return false;
        if (poll(&pfd, 1, left < 200 ? left : 200) <= 0)
            continue;
        ssize_t r = read(v->ctl, line + n, 1);
        if (r <= 0)
            return false;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    return true;
}

static flame_status vm_failed(vm *v, const char *what, const char *log)
{
    if (vm_reap(v, false)) {
        char *how = fl_exit_text(v->status);
        flame_status st = fl_error(FLAME_ERR_UNAVAILABLE, "microvm: QEMU %s %s (its log: %s)",
                                   how, what, log);
        free(how);
        return st;
    }
    return fl_error(FLAME_ERR_TIMEOUT, "microvm: the VM timed out %s (its log: %s)", what, log);
}

/* ---- vsock: the control connection and the instance relay ---------------- */

static int vsock_connect(uint32_t cid, unsigned port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Copies one host connection to the guest's instance port and back until
 * either side closes or the VM goes. */
static void relay_one(vm *v, int host)
{
    int guest = vsock_connect(v->cid, FL_VSOCK_INSTANCE_PORT);
    if (guest < 0) {
        fl_log(FL_LOG_WARN, "microvm", "vsock: cannot reach the instance port of guest %u: %s",
               v->cid, strerror(errno));
        return;
    }
    char buf[65536];
    int fds[2] = { host, guest };
    while (!v->relay_stop) {
        struct pollfd p[2] = { { host, POLLIN, 0 }, { guest, POLLIN, 0 } };
        int n = poll(p, 2, 200);
        if (n < 0 && errno != EINTR)
            break;
        bool done = false;
        for (int i = 0; n > 0 && i < 2 && !done; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(fds[i], buf, sizeof buf);
            done = r <= 0;
            for (ssize_t off = 0; !done && off < r;) {
                ssize_t w = send(fds[1 - i], buf + off, (size_t)(r - off), MSG_NOSIGNAL);
                done = w <= 0;
                off += w > 0 ? w : 0;
            }
        }
        if (done)
            break;
    }
    close(guest);
}

/* The relay thread of a VM: connections to inst.sock, one at a time (as a
 * virtio-serial port takes them). */
static void *relay_main(void *arg)
{
    vm *v = arg;
    while (!v->relay_stop) {
        struct pollfd p = { v->relay_listen, POLLIN, 0 };
        if (poll(&p, 1, 200) <= 0)
            continue;
        int host = accept4(v->relay_listen, NULL, NULL, SOCK_CLOEXEC);
        if (host < 0)
            continue;
        relay_one(v, host);
        close(host);
    }
    return NULL;
}

/* vsock: our inst.sock and its relay thread. */
static flame_status relay_start(vm *v)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/inst.sock", v->dir);
    v->relay_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (v->relay_listen < 0 || bind(v->relay_listen, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(v->relay_listen, 16) != 0)
        return fl_error(FLAME_ERR_INTERNAL, "microvm: %s: %s", a.sun_path, strerror(errno));
    if (pthread_create(&v->relay, NULL, relay_main, v) != 0)
        return fl_error(FLAME_ERR_INTERNAL, "microvm: cannot start the vsock relay");
    v->relay_running = true;
    return FLAME_OK;
}

/* The control connection: QEMU's ctl.sock (serial; there before the guest
 * runs) or the agent's vsock port (there once the agent listens). */
static int ctl_connect(const vm *v)
{
    if (v->cid)
        return vsock_connect(v->cid, FL_VSOCK_CTL_PORT);
    char *path = fl_sprintf("%s/ctl.sock", v->dir);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    free(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Boots a VM up to its agent's "booted". */
static flame_status vm_boot(vm **out, const boot_cfg *b, const vm_spec *s, const char *log,
                            int death_signal)
{
    char tmpl[] = "/tmp/flame-vm-XXXXXX"; /* short: Unix socket paths */
    if (!mkdtemp(tmpl))
        return fl_error(FLAME_ERR_INTERNAL, "microvm: mkdtemp: %s", strerror(errno));
    vm *v = fl_calloc(1, sizeof *v);
    v->ctl = v->relay_listen = -1;
    v->dir = fl_strdup(tmpl);
    char *own_log = log ? NULL : fl_sprintf("%s/console.log", v->dir);
    if (!log)
        log = own_log;
    flame_status st = b->vsock ? fl_microvm_cid_alloc(&v->cid, NULL, NULL) : FLAME_OK;
    if (st)
        goto out;
    fl_log(FL_LOG_DEBUG, "microvm", "VM %s: %s", v->dir,
           v->cid ? "vsock" : "virtio-serial ports");
    if (v->cid)
        fl_log(FL_LOG_DEBUG, "microvm", "VM %s: guest CID %u", v->dir, v->cid);
    if ((st = start_qemu(&v->proc, b, s, v->dir, v->cid, log, death_signal)))
        goto out;
    v->pid = v->proc.pid;
    int waited = 0;
    int64_t t0 = fl_mono_ns(); /* a vsock connect may itself wait */
    while ((v->ctl = ctl_connect(v)) < 0) {
        waited = (int)((fl_mono_ns() - t0) / 1000000);
        if (vm_reap(v, false) || waited >= b->boot_timeout_ms) {
            st = vm_failed(v, "before its control socket was there", log);
            goto out;
        }
        msleep(5);
    }
    char line[512];
    if (!read_line(v, line, sizeof line, b->boot_timeout_ms - waited)) {
        st = vm_failed(v, "before the guest agent was up", log);
        goto out;
    }
    if (strcmp(line, "booted") != 0)
        st = fl_error(FLAME_ERR_INTERNAL, "microvm: the guest agent said \"%s\"", line);
    else if (v->cid)
        st = relay_start(v);
out:
    free(own_log);
    if (st) {
        vm_free(v, 0);
        return st;
    }
    *out = v;
    return FLAME_OK;
}

/* Sends the start request; FLAME_OK once the service listens in the VM. */
static flame_status vm_start(vm *v, const vm_spec *s, const char *log)
{
    fl_buf req = { 0 };
    size_t argc = 0, envc = 0;
    while (s->argv[argc])
        argc++;
    while (s->envp[envc])
        envc++;
    fl_buf_add(&req, s->path, strlen(s->path) + 1);
    fl_buf_add(&req, s->cwd, strlen(s->cwd) + 1);
    fl_buf_printf(&req, "%zu", argc);
    fl_buf_add(&req, "", 1);
    for (size_t i = 0; i < argc; i++)
        fl_buf_add(&req, s->argv[i], strlen(s->argv[i]) + 1);
    fl_buf_printf(&req, "%zu", envc);
    fl_buf_add(&req, "", 1);
    for (size_t i = 0; i < envc; i++)
        fl_buf_add(&req, s->envp[i], strlen(s->envp[i]) + 1);
    char head[64];
    int hn = snprintf(head, sizeof head, "start %zu\n", req.len);
    bool sent = write(v->ctl, head, (size_t)hn) == hn &&
                write(v->ctl, req.data, req.len) == (ssize_t)req.len;
    fl_buf_free(&req);
    char line[512];
    if (!sent || !read_line(v, line, sizeof line, START_TIMEOUT_MS))
        return vm_failed(v, "before its service listened", log);
    if (strncmp(line, "error ", 6) == 0)
        return fl_error(FLAME_ERR_UNAVAILABLE, "microvm: %s (the VM's log: %s)", line + 6, log);
    if (strcmp(line, "ready") != 0)
        return fl_error(FLAME_ERR_INTERNAL, "microvm: the guest agent said \"%s\"", line);
    return FLAME_OK;
}

static flame_status vm_create(vm **out, const boot_cfg *b, const vm_spec *s, const char *log,
                              int death_signal)
{
    vm *v;
    flame_status st = vm_boot(&v, b, s, log, death_signal);
    if (st)
        return st;
    if ((st = vm_start(v, s, log ? log : "console.log in its directory"))) {
        vm_free(v, 0);
        return st;
    }
    v->key = fl_strdup(s->key);
    *out = v;
    return FLAME_OK;
}

/* ---- the pool ------------------------------------------------------------ */

static size_t pooled_for(const char *key)
{
    size_t n = 0;
    for (vm *v = pooled; v; v = v->next)
        n += strcmp(v->key, key) == 0;
    return n;
}

static vm *pool_take(const char *key)
{
    pthread_mutex_lock(&lock);
    vm **pp = &pooled, *v = NULL;
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    while ((v = *pp) && vm_reap(v, false)) { /* died while waiting: drop it */
        *pp = v->next;
        pthread_mutex_unlock(&lock);
        vm_free(v, 0);
        return pool_take(key);
    }
    if (v)
        *pp = v->next;
    pthread_mutex_unlock(&lock);
    return v;
}

/* Takes an application off the pool's list (under the lock); NULL if not
 * there. */
static vm_spec *unwant(const char *key)
{
    for (vm_spec **pp = &wanted; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            vm_spec *s = *pp;
            *pp = s->next;
            return s;
        }
    }
    return NULL;
}

static void *pool_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        vm_spec *w = wanted;
        while (w && pooled_for(w->key) >= (size_t)cfg.pool_size)
            w = w->next;
        if (!w) {
            pthread_cond_wait(&wake, &lock);
            continue;
        }
        vm_spec *s = copy_vm_spec(w);
        pthread_mutex_unlock(&lock);
        boot_cfg b;
        vm *v = NULL;
        flame_status st = resolve_boot_cfg(&b);
        if (!st) {
            st = vm_create(&v, &b, s, NULL, SIGKILL);
            free_boot_cfg(&b);
        }
        pthread_mutex_lock(&lock);
        if (st) {
            /* no retry loop: the application's next bind asks again */
            fl_log(FL_LOG_WARN, "microvm", "pool: %s; the pool stops for %s until its next bind",
                   flame_error_last(), s->path);
            free_vm_spec(unwant(s->key));
        }
        if (v) {
            v->next = pooled;
            pooled = v;
            fl_log(FL_LOG_INFO, "microvm", "pool: a VM is ready for %s (%zu of %d)", s->path,
                   pooled_for(v->key), cfg.pool_size);
        }
        free_vm_spec(s);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Asks the pool thread to keep pool_size VMs of this application (the
 * applications most recently bound first). */
static void pool_refill(vm_spec *s)
{
    pthread_mutex_lock(&lock);
    if (cfg.pool_size <= 0 || stopping) {
        pthread_mutex_unlock(&lock);
        free_vm_spec(s);
        return;
    }
    free_vm_spec(unwant(s->key));
    s->next = wanted;
    wanted = s;
    /* past POOL_APPS, the least recently bound application leaves the pool */
    vm_spec **pp = &wanted;
    for (int i = 0; *pp && i < POOL_APPS; i++)
        pp = &(*pp)->next;
    vm_spec *gone = *pp;
    *pp = NULL;
    vm *drop = NULL;
    for (vm_spec *g = gone; g; g = g->next) {
        for (vm **vp = &pooled; *vp;) {
            vm *v = *vp;
            if (strcmp(v->key, g->key) == 0) {
                *vp = v->next;
                v->next = drop;
                drop = v;
            } else {
                vp = &v->next;
            }
        }
    }
    if (!pool_running)
        pool_running = pthread_create(&pool_thread, NULL, pool_main, NULL) == 0;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    while (gone) {
        vm_spec *next = gone->next;
        free_vm_spec(gone);
        gone = next;
    }
    while (drop) {
        vm *next = drop->next;
        vm_free(drop, 0);
        drop = next;
    }
}

/* ---- the spawner --------------------------------------------------------- */

static vm *find_live(pid_t pid, bool unlink_it)
{
    vm **pp = &live;
    while (*pp && (*pp)->pid != pid)
        pp = &(*pp)->next;
    vm *v = *pp;
    if (v && unlink_it)
        *pp = v->next;
    return v;
}

static const char *instance_endpoint(char *const *envp)
{
    for (; envp && *envp; envp++)
        if (strncmp(*envp, "FLAME_INSTANCE_ENDPOINT=", 24) == 0)
            return *envp + 24;
    return NULL;
}

static flame_status microvm_spawn(const fl_spawner *sp, fl_process *p, const fl_spawn_spec *spec)
{
    if (spec->network && strcmp(spec->network, "none") != 0)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                        "microvm: network \"%s\" is not available in a VM (its guest has no "
                        "network device); use sandbox: process for it",
                        spec->network);
    const char *sock = instance_endpoint(spec->envp);
    if (!sock)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "microvm: the spec has no FLAME_INSTANCE_ENDPOINT to serve");
    boot_cfg b;
    flame_status st = resolve_boot_cfg(&b);
    if (st)
        return st;
    vm_spec *s = make_vm_spec(spec);
    vm *v = pool_take(s->key);
    if (v && spec->log_file) {
        /* the pooled VM's console: in its directory while it runs, then
         * where the shim says the service's log is */
        v->log_to = fl_strdup(spec->log_file);
        FILE *f = fopen(spec->log_file, "a");
        if (f) {
            fprintf(f, "microvm: a VM from the pool; its console is %s/console.log until it "
                       "stops, then below\n",
                    v->dir);
            fclose(f);
        }
    }
    if (!v)
        st = vm_create(&v, &b, s, spec->log_file, spec->parent_death_signal);
    free_boot_cfg(&b);
    if (st) {
        free_vm_spec(s);
        return st;
    }
    char *inst = fl_sprintf("%s/inst.sock", v->dir);
    if (rename(inst, sock) != 0) {
        st = fl_error(FLAME_ERR_INTERNAL, "microvm: cannot move %s to %s: %s", inst, sock,
                      strerror(errno));
        free(inst);
        vm_free(v, 0);
        free_vm_spec(s);
        return st;
    }
    free(inst);
    pthread_mutex_lock(&lock);
    v->next = live;
    live = v;
    pthread_mutex_unlock(&lock);
    p->spawner = sp;
    p->pid = v->pid;
    p->group = false;
    p->reaped = false;
    p->status = 0;
    pool_refill(s);
    return FLAME_OK;
}

static int microvm_signal(fl_process *p, int sig)
{
    if (p->pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill(p->pid, sig);
}

static bool microvm_reap(fl_process *p, bool block)
{
    if (p->pid <= 0 || p->reaped)
        return p->reaped;
    pthread_mutex_lock(&lock);
    vm *v = find_live(p->pid, false);
    pthread_mutex_unlock(&lock);
    /* the VM is only freed by stop, from this fl_process's thread */
    if (v && vm_reap(v, block)) {
        p->reaped = true;
        p->status = v->status;
    }
    return p->reaped;
}

static void microvm_stop(fl_process *p, int grace_ms)
{
    if (p->pid <= 0)
        return;
    pthread_mutex_lock(&lock);
    vm *v = find_live(p->pid, true);
    pthread_mutex_unlock(&lock);
    if (v) {
        vm_kill(v, grace_ms);
        p->reaped = true;
        p->status = v->status;
        vm_free(v, 0);
    }
    p->pid = 0;
}

const fl_spawner fl_spawner_microvm = { "microvm", microvm_spawn, microvm_signal, microvm_reap,
                                        microvm_stop };
