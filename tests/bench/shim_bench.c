/* shim_bench: the host shim's call into a service, without a cluster.
 *   shim_bench SERVICE N [grpc]
 *       starts SERVICE (a flame.v1 Instance program, e.g. flmping-service)
 *       on a Unix socket, enters a session, and makes N sequential
 *       OnTaskInvoke calls the way libflame/shim/host.c does (shim/h2.h; with
 *       "grpc": through gRPC's runtime, rpc/ as before); prints their p50/p99
 *       and the CPU time per call of the caller and of the service (us) as
 *       one JSON object.
 * It isolates the executor manager -> service leg of a task's round trip
 * (scripts/bench.sh measures the whole of it). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rpc/rpc.h"
#include "shim/h2.h"
#include "util/util.h"

#include "shim.pb-c.h"

#include "bench.h"

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* CPU time (user + system) of a process so far, in us (clock ticks). */
static double cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* after the command's name */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static bool can_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int fail(pid_t pid, const char *what)
{
    fprintf(stderr, "shim_bench: %s: %s\n", what, flame_error_last());
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: shim_bench SERVICE N [grpc]\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (n <= 0)
        n = 1000;
    char dir[] = "/tmp/shim-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char *sock = fl_sprintf("%s/s.sock", dir);
    char *env = fl_sprintf("unix:%s", sock);
    setenv("FLAME_INSTANCE_ENDPOINT", env, 1);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(argv[1], argv[1], (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 5000 && !can_connect(sock); i++)
        usleep(2000);
    bool grpc = argc == 4 && strcmp(argv[3], "grpc") == 0;
    rpc_channel *ch = NULL;
    fl_h2 *h2 = fl_h2_new(sock, RPC_DEFAULT_MAX_MESSAGE);
    if (grpc && rpc_channel_new(&ch, env, NULL))
        return fail(pid, "channel");
    Flame__V1__ApplicationContext app = FLAME__V1__APPLICATION_CONTEXT__INIT;
    app.name = (char *)"bench";
    Flame__V1__SessionContext sc = FLAME__V1__SESSION_CONTEXT__INIT;
    sc.session_id = (char *)"bench-1";
    sc.application = &app;
    const char *enter = rpc_path(&flame__v1__instance__descriptor, "OnSessionEnter");
    uint8_t ebuf[256], *eout;
    size_t elen = protobuf_c_message_pack(&sc.base, ebuf), eolen;
    if (grpc ? rpc_unary_raw(ch, enter, ebuf, elen, &eout, &eolen, 10000)
             : fl_h2_unary(h2, enter, ebuf, elen, &eout, &eolen, 10000))
        return fail(pid, "OnSessionEnter");
    free(eout);
    const char *invoke = rpc_path(&flame__v1__instance__descriptor, "OnTaskInvoke");
    Flame__V1__TaskContext tc = FLAME__V1__TASK_CONTEXT__INIT;
    tc.session_id = (char *)"bench-1";
    tc._input_case = FLAME__V1__TASK_CONTEXT___INPUT_INPUT;
    tc.input.data = (uint8_t *)"ping";
    tc.input.len = 4;
    double *lat = fl_calloc((size_t)n, sizeof *lat);
    int warm = n / 10 + 10;
    double svc0 = 0, self0 = 0;
    for (int i = -warm; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%d", i + warm + 1);
        tc.task_id = id;
        uint8_t buf[256], *out;
        size_t len = protobuf_c_message_pack(&tc.base, buf), olen;
        double t0 = now_us();
        if (grpc ? rpc_unary_raw(ch, invoke, buf, len, &out, &olen, 10000)
                 : fl_h2_unary(h2, invoke, buf, len, &out, &olen, 10000))
            return fail(pid, "OnTaskInvoke");
        double t1 = now_us();
        free(out);
        if (i >= 0)
            lat[i] = t1 - t0;
        if (i == -1) {
            svc0 = cpu_us(pid);
            self0 = cpu_us(getpid());
        }
    }
    double svc_cpu = (cpu_us(pid) - svc0) / n, self_cpu = (cpu_us(getpid()) - self0) / n;
    rpc_channel_free(ch);
    fl_h2_free(h2);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(sock);
    rmdir(dir);
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("{\"shim_call_p50_us\": %.1f, \"shim_call_p99_us\": %.1f, \"caller_cpu_us\": %.1f, "
           "\"service_cpu_us\": %.1f, \"n\": %d}\n",
           pct(lat, (size_t)n, 50), pct(lat, (size_t)n, 99), self_cpu, svc_cpu, n);
    free(lat);
    free(sock);
    free(env);
    return 0;
}
