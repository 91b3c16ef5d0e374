/* The built-in flmexec service: runs a shell or Python script per task.
 * Input JSON {"language": "shell"|"python", "code": str, "input": str?,
 * "time_limit": seconds?, "memory_limit": bytes or "64m"?}; the output is the
 * script's stdout; a non-zero exit fails the task with its stderr.
 *
 * Every script runs under limits, so that "run this LLM-written script" is
 * safe alongside the sandbox the executor manager puts this service in:
 * wall-clock time (the script's process group is killed), address space
 * (RLIMIT_AS), file size (RLIMIT_FSIZE: its output and what it writes),
 * processes (RLIMIT_NPROC, within the sandbox's own pids limit) and
 * no core dumps. The application sets them through its environment
 * (FLMEXEC_TIME_LIMIT in seconds, FLMEXEC_MEMORY_LIMIT as bytes or with a
 * k/m/g suffix, FLMEXEC_OUTPUT_LIMIT likewise, FLMEXEC_PROCESS_LIMIT: the
 * processes it may start, RLIMIT_NPROC); a task may ask for less,
 * never for more. A script stopped by a limit fails with a message that
 * names the limit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <flame/flame.h>

#define MIB (1024.0 * 1024.0)

typedef struct limits {
    double time_s;      /* wall clock */
    long long memory;   /* bytes of address space */
    long long output;   /* bytes per file the script writes, stdout included */
    long long processes; /* processes and threads it may add */
} limits;

static limits app_limits = { 60, 512LL << 20, 64LL << 20, 64 };

/* "123", "64k", "512m", "2g" (binary units); -1 if malformed or < 1. */
static long long parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 1)
        return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024, end++; break;
    case 'm': case 'M': v *= MIB, end++; break;
    case 'g': case 'G': v *= MIB * 1024, end++; break;
    default: break;
    }
    return *end || v > 9e18 ? -1 : (long long)v;
}

static void read_app_limits(void)
{
    const char *t = getenv("FLMEXEC_TIME_LIMIT"), *m = getenv("FLMEXEC_MEMORY_LIMIT");
    const char *o = getenv("FLMEXEC_OUTPUT_LIMIT"), *p = getenv("FLMEXEC_PROCESS_LIMIT");
    char *end;
    double secs = t ? strtod(t, &end) : 0;
    if (t && (end == t || *end || secs <= 0))
        fprintf(stderr, "flmexec-service: FLMEXEC_TIME_LIMIT=%s is not seconds > 0: ignored\n", t);
    else if (t)
        app_limits.time_s = secs;
    long long v;
    if (m && (v = parse_size(m)) < 0)
        fprintf(stderr, "flmexec-service: FLMEXEC_MEMORY_LIMIT=%s is not a size: ignored\n", m);
    else if (m)
        app_limits.memory = v;
    if (o && (v = parse_size(o)) < 0)
        fprintf(stderr, "flmexec-service: FLMEXEC_OUTPUT_LIMIT=%s is not a size: ignored\n", o);
    else if (o)
        app_limits.output = v;
    if (p && (v = parse_size(p)) < 0)
        fprintf(stderr, "flmexec-service: FLMEXEC_PROCESS_LIMIT=%s is not a count: ignored\n", p);
    else if (p)
        app_limits.processes = v;
}

/* Processes and threads this process's uid may already have, as far as it
 * can see: RLIMIT_NPROC counts them all, so the script's limit is on top.
 * In the sandbox /proc shows only the executor's own. */
static long long tasks_running(void)
{
    long long n = 0;
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc && (e = readdir(proc))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/task", e->d_name);
        DIR *t = opendir(path);
        struct dirent *x;
        while (t && (x = readdir(t)))
            n += x->d_name[0] != '.';
        if (t)
            closedir(t);
    }
    if (proc)
        closedir(proc);
    return n;
}

/* The task's own limits, each at most the application's; NULL, or a
 * message for the task's failure. */
static const char *task_limits(const cJSON *in, limits *l)
{
    *l = app_limits;
    const cJSON *t = cJSON_GetObjectItem(in, "time_limit");
    const cJSON *m = cJSON_GetObjectItem(in, "memory_limit");
    if (t) {
        if (!cJSON_IsNumber(t) || t->valuedouble <= 0)
            return "flmexec: time_limit must be seconds > 0";
        if (t->valuedouble < l->time_s)
            l->time_s = t->valuedouble;
    }
    if (m) {
        long long v = cJSON_IsNumber(m)   ? (m->valuedouble >= 1 ? (long long)m->valuedouble : -1)
                      : cJSON_IsString(m) ? parse_size(m->valuestring)
                                          : -1;
        if (v < 0)
            return "flmexec: memory_limit must be bytes, or a size like \"64m\"";
        if (v < l->memory)
            l->memory = v;
    }
    return NULL;
}

static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    lseek(fd, 0, SEEK_SET);
    ssize_t r;
    while (buf && (r = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

static int tmpfd(void)
{
    char path[] = "/tmp/flmexec-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for pid up to secs; true if it exited (status set), false when
 * the time ran out. */
static bool wait_for(pid_t pid, double secs, int *status)
{
    double deadline = now_s() + secs;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        double left = deadline - now_s();
        if (left <= 0) {
            if (pidfd >= 0)
                close(pidfd);
            return false;
        }
        if (pidfd >= 0) {
            struct pollfd p = { pidfd, POLLIN, 0 };
            poll(&p, 1, (int)(left * 1000) + 1);
        } else { /* kernels before 5.3: poll the old way */
            struct timespec ts = { 0, 5000000 };
            nanosleep(&ts, NULL);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return true;
}

/* Does the script's stderr say an allocation failed? */
static bool out_of_memory(const char *err)
{
    static const char *const signs[] = { "MemoryError", "Cannot allocate memory",
                                         "cannot allocate memory", "out of memory",
                                         "memory exhausted", "std::bad_alloc" };
    for (size_t i = 0; err && i < sizeof signs / sizeof *signs; i++)
        if (strstr(err, signs[i]))
            return true;
    return false;
}

/* What went wrong with a script that did not exit 0, in a few words. */
static void failure(char *buf, size_t len, const char *lang, const limits *l, bool timed_out,
                    int status, const char *err)
{
    if (timed_out)
        snprintf(buf, len, "the %s script hit its time limit of %g s and was killed", lang,
                 l->time_s);
    else if (out_of_memory(err))
        snprintf(buf, len, "the %s script hit its memory limit of %.0f MiB", lang,
                 (double)l->memory / MIB);
    else if (err && (strstr(err, "Resource temporarily unavailable") ||
                    strstr(err, "Cannot fork") || strstr(err, "can't fork")))
        snprintf(buf, len, "the %s script hit its process limit of %lld more processes", lang,
                 l->processes);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ)
        snprintf(buf, len, "the %s script hit its output limit of %.0f MiB per file", lang,
                 (double)l->output / MIB);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        snprintf(buf, len, "the %s script was killed (signal 9, not sent by flmexec: the "
                           "sandbox's memory or process limit)", lang);
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "the %s script failed (signal %d)", lang, WTERMSIG(status));
    else
        snprintf(buf, len, "the %s script failed (exit code %d)", lang, WEXITSTATUS(status));
}

static void set_limit(int resource, long long v)
{
    struct rlimit rl = { (rlim_t)v, (rlim_t)v };
    setrlimit(resource, &rl);
}

static int invoke(const flame_task_context *task, flame_task_result *result, void *payload)
{
    cJSON *in = task->input.data ? cJSON_ParseWithLength((const char *)task->input.data,
                                                         task->input.len) : NULL;
    cJSON *lang = cJSON_GetObjectItem(in, "language"), *code = cJSON_GetObjectItem(in, "code");
    cJSON *input = cJSON_GetObjectItem(in, "input");
    if (!cJSON_IsString(code)) {
        cJSON_Delete(in);
        flame_task_result_set_message(result, "flmexec: input must be JSON like "
                                              "{\"language\": \"shell\", \"code\": \"echo hi\"}");
        return 1;
    }
    const char *l = cJSON_IsString(lang) ? lang->valuestring : "shell";
    const char *interp;
    if (strcmp(l, "shell") == 0 || strcmp(l, "sh") == 0)
        interp = "/bin/sh";
    else if (strcmp(l, "python") == 0 || strcmp(l, "python3") == 0)
        interp = "python3";
    else {
        cJSON_Delete(in);
        flame_task_result_set_message(result, "flmexec: language must be \"shell\" or \"python\"");
        return 1;
    }
    limits lim;
    const char *bad = task_limits(in, &lim);
    if (bad) {
        cJSON_Delete(in);
        flame_task_result_set_message(result, bad);
        return 1;
    }
    int fin = tmpfd(), fout = tmpfd(), ferr = tmpfd();
    if (cJSON_IsString(input) && fin >= 0) {
        ssize_t w = write(fin, input->valuestring, strlen(input->valuestring));
        (void)w;
        lseek(fin, 0, SEEK_SET);
    }
    long long nproc = tasks_running() + lim.processes;
    /* only async-signal-safe calls in the child: the library has threads */
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* the script and what it starts: killed as one */
        set_limit(RLIMIT_AS, lim.memory);
        set_limit(RLIMIT_FSIZE, lim.output);
        set_limit(RLIMIT_NPROC, nproc);
        set_limit(RLIMIT_CORE, 0);
        dup2(fin, 0);
        dup2(fout, 1);
        dup2(ferr, 2);
        execlp(interp, interp, "-c", code->valuestring, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    bool timed_out = false;
    if (pid > 0) {
        setpgid(pid, pid); /* also here: no race with the kill below */
        if (!wait_for(pid, lim.time_s, &status)) {
            timed_out = true;
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        kill(-pid, SIGKILL); /* what the script left running goes with it */
    }
    size_t olen, elen;
    char *out = read_all(fout, &olen), *err = read_all(ferr, &elen);
    if (err)
        err[elen < 4096 ? elen : 4095] = 0;
    int rc = 0;
    if (pid < 0 || timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char what[200], msg[700];
        if (pid < 0)
            snprintf(what, sizeof what, "cannot start the %s script: %s", l, strerror(errno));
        else
            failure(what, sizeof what, l, &lim, timed_out, status, err);
        snprintf(msg, sizeof msg, "flmexec: %s: %.*s", what, (int)(elen > 400 ? 400 : elen),
                 err ? err : "");
        flame_task_result_set_message(result, msg);
        rc = 1;
    }
    flame_task_result_set_output(result, out ? out : "", out ? olen : 0);
    free(out);
    free(err);
    close(fin);
    close(fout);
    close(ferr);
    cJSON_Delete(in);
    return rc;
}

int main(void)
{
    read_app_limits();
    flame_service svc = { FLAME_SERVICE_VERSION, NULL, invoke, NULL, NULL };
    if (flame_service_run(&svc) != FLAME_OK) {
        fprintf(stderr, "flmexec-service: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
