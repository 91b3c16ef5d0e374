/* The microvm sandbox level end to end under TCG: the host shim runs the
 * built-in flmping service in a QEMU microvm guest and talks flame.v1
 * Instance to it through the virtio-serial channel; a VM crash fails only its
 * task; the pool hands out a pre-booted VM (its bind time is printed); the VMs
 * are gone after the sessions; a missing image fails the bind with a message
 * that says so. Two TCG boots (a third one, the pool's refill, is cut short).
 *
 * argv: the build dir, the source dir. The image is built (or found in its
 * cache) by scripts/microvm-image.sh; skipped (exit 77) without QEMU or when
 * the image cannot be made (no apt). */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/microvm.h"
#include "shim/shim.h"
#include "util/util.h"

#include "types.pb-c.h"

static const char *build_dir;
static char work[] = "/tmp/flame-test-mvm-XXXXXX";

/* A process's parent and name; 0 if it is gone. */
static pid_t parent_of(pid_t pid, char *comm, size_t size)
{
    char path[64], name[64] = "";
    int ppid = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f && fscanf(f, "%*d (%63[^)]) %*c %d", name, &ppid) != 2)
        ppid = 0;
    if (f)
        fclose(f);
    if (comm)
        snprintf(comm, size, "%s", name);
    return ppid;
}

/* QEMU processes of ours: each the child of its process sandbox's init,
 * our child. */
static size_t qemu_children(pid_t *out, size_t max)
{
    size_t n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char comm[64] = "";
        pid_t pid = atoi(e->d_name), ppid = pid > 0 ? parent_of(pid, comm, sizeof comm) : 0;
        if (ppid > 0 && strncmp(comm, "qemu-system", 11) == 0 &&
            parent_of(ppid, NULL, 0) == getpid() && n < max)
            out[n++] = pid;
    }
    if (d)
        closedir(d);
    return n;
}

static const char *read_file(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    return buf;
}

/* The QEMU child whose console is the executor's log. */
static pid_t vm_of(const char *executor_id)
{
    pid_t pids[8];
    size_t n = qemu_children(pids, 8);
    char want[600], link[600], got[600];
    snprintf(want, sizeof want, "%s/%s.log", work, executor_id);
    for (size_t i = 0; i < n; i++) {
        snprintf(link, sizeof link, "/proc/%d/fd/1", (int)pids[i]);
        ssize_t len = readlink(link, got, sizeof got - 1);
        if (len > 0 && (size_t)len == strlen(want) && memcmp(got, want, (size_t)len) == 0)
            return pids[i];
    }
    return 0;
}

static fl_shim_session session(const char *executor_id, Flame__V1__ApplicationSpec *app,
                               char *command)
{
    static char bin[512];
    snprintf(bin, sizeof bin, "%s/daemons", build_dir);
    snprintf(command, 512, "%s/daemons/flmping-service", build_dir);
    return (fl_shim_session){
        .executor_id = executor_id,
        .session_id = executor_id,
        .application = "flmping",
        .app_spec = app,
        .command = command,
        .work_dir = work,
        .log_dir = work,
        .bin_dir = bin,
        .task_timeout_ms = 120000,
        .sandbox = "microvm",
        .memory = 192u << 20,
        .cpus = 1,
    };
}

static flame_status run_task(fl_shim *sh, const char *id, const char *input, char **out,
                             char **message)
{
    flame_task_context t = { .task_id = id, .session_id = "s",
                             .input = { (const uint8_t *)input, strlen(input) } };
    flame_task_result r = { 0 };
    int rc = -1;
    flame_status st = sh->ops->invoke(sh, &t, &rc, &r, message);
    if (!st) {
        ck_assert_int_eq(rc, 0);
        *out = fl_strndup((const char *)r.output, r.output_len);
    }
    fl_task_result_clear(&r);
    return st;
}

static void *kill_later(void *arg)
{
    usleep(1500 * 1000);
    kill(*(pid_t *)arg, SIGKILL);
    return NULL;
}

START_TEST(image_missing)
{
    fl_microvm_config c = { .image_dir = "/nonexistent/flame-image", .accel = "tcg" };
    ck_assert_int_eq(fl_microvm_configure(&c), FLAME_OK);
    Flame__V1__ApplicationSpec app = FLAME__V1__APPLICATION_SPEC__INIT;
    char cmd[512];
    fl_shim_session ctx = session("e-missing", &app, cmd);
    fl_shim *sh = fl_shim_host_new();
    char *msg = NULL;
    ck_assert_int_ne(sh->ops->enter(sh, &ctx, &msg), FLAME_OK);
    ck_assert_ptr_nonnull(strstr(msg, "the VM image is missing"));
    ck_assert_ptr_nonnull(strstr(msg, "scripts/microvm-image.sh"));
    free(msg);
    pid_t pids[4];
    ck_assert_uint_eq(qemu_children(pids, 4), 0);
    sh->ops->free(sh);
    c.image_dir = NULL;
    c.accel = "warp";
    ck_assert_int_eq(fl_microvm_configure(&c), FLAME_ERR_CONFIG);
}
END_TEST

/* Without KVM (here: /dev/kvm hidden behind /dev/null in a mount namespace
 * of a child), the default accelerator fails the bind saying so. */
START_TEST(kvm_missing)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("/dev/null", "/dev/kvm", NULL, MS_BIND, NULL) != 0)
            _exit(77);
        if (fl_microvm_configure(NULL) != FLAME_OK)
            _exit(1);
        Flame__V1__ApplicationSpec app = FLAME__V1__APPLICATION_SPEC__INIT;
        char cmd[512];
        fl_shim_session ctx = session("e-kvm", &app, cmd);
        fl_shim *sh = fl_shim_host_new();
        char *msg = NULL;
        flame_status st = sh->ops->enter(sh, &ctx, &msg);
        printf("microvm: without KVM: %s\n", msg ? msg : "(entered)");
        fflush(stdout);
        _exit(st != FLAME_OK && msg && strstr(msg, "KVM is not available") &&
                      strstr(msg, "--microvm-accel tcg")
                  ? 0
                  : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        printf("microvm: kvm_missing not checked: no mount namespace here\n");
        return;
    }
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(tasks_in_vms)
{
    fl_microvm_config c = { .accel = "tcg", .pool_size = 1 };
    ck_assert_int_eq(fl_microvm_configure(&c), FLAME_OK);
    Flame__V1__ApplicationSpec app = FLAME__V1__APPLICATION_SPEC__INIT;
    char cmd1[512], cmd2[512], *msg = NULL, *out = NULL;

    /* a cold bind: the VM boots */
    fl_shim_session c1 = session("e-one", &app, cmd1);
    fl_shim *one = fl_shim_host_new();
    int64_t t0 = fl_mono_ns();
    flame_status st = one->ops->enter(one, &c1, &msg);
    ck_assert_msg(st == FLAME_OK, "enter: %s", msg);
    printf("microvm: cold bind under TCG %.0f ms (not a KVM figure)\n",
           (fl_mono_ns() - t0) / 1e6);
    pid_t pids[8];
    pid_t vm1 = vm_of("e-one");
    ck_assert_int_gt(vm1, 0);
    /* QEMU itself is confined: a uid of the sandbox range, no capabilities,
     * no_new_privs, seccomp (ours and its own), its own pid namespace */
    char status[64];
    snprintf(status, sizeof status, "/proc/%d/status", (int)vm1);
    const char *qs = read_file(status);
    unsigned uid = 0;
    const char *u = strstr(qs, "\nUid:\t");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(sscanf(u, "\nUid:\t%u", &uid), 1);
    ck_assert_uint_ge(uid, 100000);
    ck_assert_msg(strstr(qs, "CapEff:\t0000000000000000\n"), "%s", qs);
    ck_assert_msg(strstr(qs, "NoNewPrivs:\t1\n"), "%s", qs);
    ck_assert_msg(strstr(qs, "Seccomp:\t2\n"), "%s", qs);
    const char *ns = strstr(qs, "\nNSpid:\t");
    ck_assert_msg(ns && strchr(ns + 8, '\t') && strchr(ns + 8, '\t') < strchr(ns + 8, '\n'),
                  "QEMU is not in a pid namespace of its own: %s", qs);
    printf("microvm: QEMU runs as uid %u, no capabilities, seccomp, own pid namespace\n", uid);
    ck_assert_int_eq(run_task(one, "t1", "{}", &out, &msg), FLAME_OK);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    /* it ran in the guest, not here */
    ck_assert_ptr_nonnull(strstr(out, "{\"hostname\":"));
    ck_assert_ptr_null(strstr(out, host));
    free(out);

    /* the pool boots one VM with the service started */
    for (int i = 0; i < 1200 && fl_microvm_pool_count() < 1; i++)
        usleep(100 * 1000);
    ck_assert_uint_eq(fl_microvm_pool_count(), 1);
    ck_assert_uint_eq(qemu_children(pids, 8), 2);
    pid_t vm2 = pids[0] == vm1 ? pids[1] : pids[0];

    /* a warm bind takes it */
    fl_shim_session c2 = session("e-two", &app, cmd2);
    fl_shim *two = fl_shim_host_new();
    t0 = fl_mono_ns();
    st = two->ops->enter(two, &c2, &msg);
    ck_assert_msg(st == FLAME_OK, "enter: %s", msg);
    printf("microvm: warm bind from the pool %.1f ms (spawn + OnSessionEnter through the "
           "channel; the guest under TCG)\n",
           (fl_mono_ns() - t0) / 1e6);
    /* the executor's log says where the pooled VM's console is */
    char log[600];
    snprintf(log, sizeof log, "%s/e-two.log", work);
    ck_assert_ptr_nonnull(strstr(read_file(log), "a VM from the pool"));
    ck_assert_int_eq(run_task(two, "t2", "{}", &out, &msg), FLAME_OK);
    free(out);

    /* the second VM crashes during a task: only that task fails */
    pthread_t killer;
    pthread_create(&killer, NULL, kill_later, &vm2);
    st = run_task(two, "t3", "{\"duration\": 20000}", &out, &msg);
    pthread_join(killer, NULL);
    ck_assert_int_eq(st, FLAME_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(msg, "was killed by signal 9"), "message: %s", msg);
    free(msg);
    msg = NULL;
    ck_assert_int_eq(run_task(one, "t4", "{}", &out, &msg), FLAME_OK);
    free(out);

    /* the sessions leave: their VMs and sockets are gone */
    two->ops->leave(two);
    one->ops->leave(one);
    /* and once it stopped, its console is there */
    ck_assert_ptr_nonnull(strstr(read_file(log), "flame-vm-agent: ready"));
    ck_assert_int_eq(kill(vm1, 0), -1);
    ck_assert_int_eq(kill(vm2, 0), -1);
    char sock[600];
    snprintf(sock, sizeof sock, "%s/e-one.sock", work);
    ck_assert_int_ne(access(sock, F_OK), 0);
    fl_microvm_shutdown();
    ck_assert_uint_eq(qemu_children(pids, 8), 0);
    one->ops->free(one);
    two->ops->free(two);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_microvm BUILD_DIR SOURCE_DIR\n");
        return 2;
    }
    build_dir = argv[1];
    /* the image of this build (idempotent: cached by its contents) */
    char *cmd = fl_sprintf("%s/scripts/microvm-image.sh --build %s 2>&1", argv[2], build_dir);
    FILE *f = system("command -v qemu-system-x86_64 >/dev/null") == 0 ? popen(cmd, "r") : NULL;
    char line[1024] = "", last[1024] = "";
    while (f && fgets(line, sizeof line, f))
        snprintf(last, sizeof last, "%s", line);
    last[strcspn(last, "\n")] = 0;
    if (!f || pclose(f) != 0) {
        printf("SKIP: microvm needs qemu-system-x86_64 (Debian: qemu-system-x86) and its image "
               "(scripts/microvm-image.sh: %s)\n", last[0] ? last : "not run");
        return 77;
    }
    free(cmd);
    setenv("FLAME_MICROVM_IMAGE", last, 1);
    printf("microvm: image %s\n", last);
    if (!mkdtemp(work)) {
        perror("mkdtemp");
        return 1;
    }
    Suite *s = suite_create("microvm");
    TCase *tc = tcase_create("tcg");
    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, image_missing);
    tcase_add_test(tc, kvm_missing);
    tcase_add_test(tc, tasks_in_vms);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_set_fork_status(r, CK_NOFORK);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    char *rm = fl_sprintf("rm -rf %s", work);
    if (system(rm) != 0)
        failed++;
    free(rm);
    return failed ? 1 : 0;
}
