/* The built-in flmexec service, Flame's contract (flmexec/src/): a task's
 * input is JSON {"language": "shell"|"python", "runtime": str?, "code": str,
 * "input": [byte, ...]|null}; its output is JSON {"data": [byte, ...]}, the
 * script's stdout. The code is written to /tmp/flame/script/<lang>-<rand>/
 * main.sh|main.py (removed afterwards) and run there: shell with the runtime
 * sh, bash (default; sh where there is no bash), zsh, csh, tcsh, ksh or
 * fish (bare or as /bin/X, /usr/bin/X); python as `uv run --python <v> main.py` ($FLAME_HOME/bin/uv,
 * else /usr/bin/uv, else uv on PATH; where none can run, python<v> runs the
 * script itself), <v> being the runtime ("python" prefix stripped), else
 * $FLAME_PYTHON_VERSION, else the newest $FLAME_HOME/lib/python<v>/
 * site-packages, else the newest python3.N on PATH, else 3.12; that
 * site-packages goes first on PYTHONPATH. The input bytes are the script's
 * stdin (null: an empty stdin, where Flame leaves it open and a reading
 * script hangs). A non-zero exit is not an error: the output says it, with
 * our two additions "exit_code" and "stderr" (its last 4 KiB). Errors (bad
 * JSON, an unsupported language or shell, a script that cannot be started)
 * fail the task with return code -1 and Flame's texts.
 *
 * Every script runs under limits, so that "run this LLM-written script" is
 * safe alongside the sandbox the executor manager puts this service in:
 * wall-clock time (the script's process group is killed), address space
 * (RLIMIT_AS), file size (RLIMIT_FSIZE: its output and what it writes),
 * processes (RLIMIT_NPROC, within the sandbox's own pids limit) and
 * no core dumps. The application sets them through its environment
 * (FLMEXEC_TIME_LIMIT in seconds, FLMEXEC_MEMORY_LIMIT as bytes or with a
 * k/m/g suffix, FLMEXEC_OUTPUT_LIMIT likewise, FLMEXEC_PROCESS_LIMIT: the
 * processes it may start, RLIMIT_NPROC); a task may ask for less
 * ("time_limit", "memory_limit"), never for more. A script stopped by a
 * limit (killed, timed out) fails its task with a message naming the limit;
 * one that exited non-zero after hitting one (MemoryError, a failed fork)
 * says so in the output's "error". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* Fails the task as Flame's flmexec does: return code -1, the text as the
 * message. */
static int fail(flame_task_result *result, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(flame_task_result *result, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    flame_task_result_set_message(result, msg);
    return -1;
}

/* The shell of a runtime: sh, bash, zsh, csh, tcsh, ksh, fish, bare or as
 * /bin/X or /usr/bin/X; NULL if not one of them. */
static const char *shell_of(const char *runtime)
{
    static const char *const shells[] = { "sh", "bash", "zsh", "csh", "tcsh", "ksh", "fish" };
    const char *name = strncmp(runtime, "/bin/", 5) == 0       ? runtime + 5
                       : strncmp(runtime, "/usr/bin/", 9) == 0 ? runtime + 9
                                                               : runtime;
    for (size_t i = 0; i < sizeof shells / sizeof *shells; i++)
        if (strcmp(name, shells[i]) == 0)
            return shells[i];
    return NULL;
}

static const char *flame_home(void)
{
    const char *h = getenv("FLAME_HOME");
    return h && *h ? h : "/usr/local/flame";
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Keeps the newer of *best and v ("3.12" > "3.9"). */
static void newer(char *best, size_t len, const char *v)
{
    if (!*v || strspn(v, "0123456789.") != strlen(v))
        return;
    const char *a = v, *b = best;
    while (*best && (*a || *b)) {
        char *ea, *eb;
        long x = strtol(a, &ea, 10), y = strtol(b, &eb, 10);
        if (x != y) {
            if (x < y)
                return;
            break;
        }
        if (!*ea && !*eb)
            return;
        a = *ea == '.' ? ea + 1 : ea;
        b = *eb == '.' ? eb + 1 : eb;
    }
    snprintf(best, len, "%s", v);
}

/* The Python version of a script (see the top of the file). */
static void python_version(char *out, size_t len, const char *runtime)
{
    const char *v = runtime && *runtime ? runtime : getenv("FLAME_PYTHON_VERSION");
    if (v && *v) {
        snprintf(out, len, "%s", strncmp(v, "python", 6) == 0 ? v + 6 : v);
        return;
    }
    out[0] = 0;
    char lib[4096];
    snprintf(lib, sizeof lib, "%s/lib", flame_home());
    DIR *d = opendir(lib);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s/site-packages", lib, e->d_name);
        if (strncmp(e->d_name, "python", 6) == 0 && is_dir(sp))
            newer(out, len, e->d_name + 6);
    }
    if (d)
        closedir(d);
    const char *path = getenv("PATH");
    while (!out[0] && path && *path) { /* no site-packages: the newest python3.N */
        size_t n = strcspn(path, ":");
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)n, path);
        DIR *pd = n ? opendir(dir) : NULL;
        char found[32] = "";
        while (pd && (e = readdir(pd)))
            if (strncmp(e->d_name, "python3.", 8) == 0)
                newer(found, sizeof found, e->d_name + 6);
        if (pd)
            closedir(pd);
        if (found[0])
            snprintf(out, len, "%s", found);
        path += n + (path[n] == ':');
    }
    if (!out[0])
        snprintf(out, len, "3.12");
}

/* The input bytes: an array of integers 0..255 (Flame's), or a string (our
 * older clients'). */
static bool input_bytes(const cJSON *input, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!input || cJSON_IsNull(input))
        return true;
    if (cJSON_IsString(input)) {
        *data = strdup(input->valuestring);
        *len = strlen(input->valuestring);
        return true;
    }
    if (!cJSON_IsArray(input))
        return false;
    int n = cJSON_GetArraySize(input);
    *data = malloc(n > 0 ? (size_t)n : 1);
    const cJSON *b;
    cJSON_ArrayForEach(b, input) {
        if (!cJSON_IsNumber(b) || b->valuedouble < 0 || b->valuedouble > 255 ||
            b->valuedouble != (int)b->valuedouble) {
            free(*data);
            *data = NULL;
            return false;
        }
        (*data)[(*len)++] = (char)b->valueint;
    }
    return true;
}

static void rm_script_dir(const char *dir, const char *file)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    unlink(p);
    rmdir(dir);
}

/* The output: {"data": [...], "exit_code": n, "stderr": "...", "error"?}. */
static void set_output(flame_task_result *result, const char *out, size_t olen, int exit_code,
                       const char *err, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < olen; i++)
        cJSON_AddItemToArray(data, cJSON_CreateNumber((unsigned char)out[i]));
    cJSON_AddNumberToObject(o, "exit_code", exit_code);
    cJSON_AddStringToObject(o, "stderr", err ? err : "");
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    flame_task_result_set_output(result, json, strlen(json));
    free(json);
}

/* The last 4 KiB of stderr, cut at a UTF-8 boundary (cJSON escapes the
 * rest). */
static const char *err_tail(char *err, size_t elen)
{
    if (!err)
        return "";
    size_t from = elen > 4096 ? elen - 4096 : 0;
    while (from < elen && ((unsigned char)err[from] & 0xC0) == 0x80)
        from++;
    err[elen] = 0;
    return err + from;
}

static int invoke(const flame_task_context *task, flame_task_result *result, void *payload)
{
    cJSON *in = task->input.data ? cJSON_ParseWithLength((const char *)task->input.data,
                                                         task->input.len) : NULL;
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return fail(result, "Failed to parse input: expected JSON {\"language\", \"runtime\"?, "
                            "\"code\", \"input\"?}");
    }
    cJSON *lang = cJSON_GetObjectItem(in, "language"), *code = cJSON_GetObjectItem(in, "code");
    cJSON *runtime = cJSON_GetObjectItem(in, "runtime");
    if (!cJSON_IsString(lang) || !cJSON_IsString(code) ||
        (runtime && !cJSON_IsNull(runtime) && !cJSON_IsString(runtime))) {
        cJSON_Delete(in);
        return fail(result, "Failed to parse input: \"language\" and \"code\" must be strings");
    }
    const char *rt = cJSON_IsString(runtime) && runtime->valuestring[0] ? runtime->valuestring
                                                                        : NULL;
    bool python = strcasecmp(lang->valuestring, "python") == 0;
    const char *shell = NULL;
    char pyver[32] = "";
    if (strcasecmp(lang->valuestring, "shell") == 0) {
        if (!(shell = shell_of(rt ? rt : "bash"))) {
            int rc = fail(result, "Unsupported shell runtime: %s", rt);
            cJSON_Delete(in);
            return rc;
        }
    } else if (python) {
        python_version(pyver, sizeof pyver, rt);
    } else {
        int rc = fail(result, "Unsupported language: %s", lang->valuestring);
        cJSON_Delete(in);
        return rc;
    }
    char *stdin_data;
    size_t stdin_len;
    if (!input_bytes(cJSON_GetObjectItem(in, "input"), &stdin_data, &stdin_len)) {
        cJSON_Delete(in);
        return fail(result, "Failed to parse input: \"input\" must be an array of bytes or null");
    }
    limits lim;
    const char *bad = task_limits(in, &lim);
    if (bad) {
        free(stdin_data);
        cJSON_Delete(in);
        return fail(result, "%s", bad);
    }
    /* the script's directory and file */
    mkdir("/tmp/flame", 0777);
    mkdir("/tmp/flame/script", 0777);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/flame/script/%s-XXXXXX", python ? "python" : "shell");
    const char *file = python ? "main.py" : "main.sh";
    int fd = -1;
    if (mkdtemp(dir)) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, file);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    size_t clen = strlen(code->valuestring);
    if (fd < 0 || write(fd, code->valuestring, clen) != (ssize_t)clen) {
        int rc = fail(result, "Failed to write the script to %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        rm_script_dir(dir, file);
        free(stdin_data);
        cJSON_Delete(in);
        return rc;
    }
    close(fd);
    int fin = tmpfd(), fout = tmpfd(), ferr = tmpfd();
    if (stdin_len && fin >= 0) {
        ssize_t w = write(fin, stdin_data, stdin_len);
        (void)w;
        lseek(fin, 0, SEEK_SET);
    }
    free(stdin_data);

    /* what to run, prepared before fork: the child only calls exec */
    char shell_path[64], uv[4200], py[48], pypath[8400] = "", sp[4200];
    if (shell) {
        snprintf(shell_path, sizeof shell_path, "/bin/%s", shell);
        if (access(shell_path, X_OK) != 0)
            snprintf(shell_path, sizeof shell_path, "/usr/bin/%s", shell);
        /* no runtime asked for and no bash (a microVM's busybox): sh */
        if (!rt && access(shell_path, X_OK) != 0) {
            shell = "sh";
            snprintf(shell_path, sizeof shell_path, "/bin/sh");
        }
    } else {
        snprintf(uv, sizeof uv, "%s/bin/uv", flame_home());
        if (access(uv, X_OK) != 0)
            snprintf(uv, sizeof uv, "/usr/bin/uv");
        if (access(uv, X_OK) != 0)
            snprintf(uv, sizeof uv, "uv");
        snprintf(py, sizeof py, "python%s", pyver);
        snprintf(sp, sizeof sp, "%s/lib/python%s/site-packages", flame_home(), pyver);
        const char *old = getenv("PYTHONPATH");
        if (is_dir(sp))
            snprintf(pypath, sizeof pypath, "%s%s%s", sp, old && *old ? ":" : "", old ? old : "");
    }
    long long nproc = tasks_running() + lim.processes;
    int spawn_pipe[2] = { -1, -1 }; /* the child's exec errno, if every exec failed */
    if (pipe2(spawn_pipe, O_CLOEXEC) != 0)
        spawn_pipe[0] = spawn_pipe[1] = -1;
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
        if (chdir(dir) == 0) {
            if (shell) {
                execl(shell_path, shell, file, (char *)NULL);
            } else {
                if (pypath[0])
                    setenv("PYTHONPATH", pypath, 1); /* after fork: this process's own copy */
                execlp(uv, "uv", "run", "--python", pyver, file, (char *)NULL);
                execlp(py, py, file, (char *)NULL);
                execlp("python3", "python3", file, (char *)NULL);
            }
        }
        int e = errno;
        ssize_t w = write(spawn_pipe[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(spawn_pipe[1]);
    int spawn_errno = 0;
    if (pid > 0 && read(spawn_pipe[0], &spawn_errno, sizeof spawn_errno) != sizeof spawn_errno)
        spawn_errno = 0;
    close(spawn_pipe[0]);
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
    rm_script_dir(dir, file);
    size_t olen, elen;
    char *out = read_all(fout, &olen), *err = read_all(ferr, &elen);
    if (err)
        err = realloc(err, elen + 1);
    const char *tail = err_tail(err, elen);
    const char *l = python ? "python" : "shell";
    int rc = 0;
    if (pid < 0 || spawn_errno) {
        rc = fail(result, "Failed to run the %s script with %s: %s", l,
                  shell ? shell_path : py, strerror(pid < 0 ? errno : spawn_errno));
    } else if (timed_out || !WIFEXITED(status)) {
        char what[200];
        failure(what, sizeof what, l, &lim, timed_out, status, tail);
        rc = fail(result, "flmexec: %s: %.*s", what, 400, tail);
    } else {
        char what[200];
        bool failed = WEXITSTATUS(status) != 0;
        if (failed)
            failure(what, sizeof what, l, &lim, false, status, tail);
        set_output(result, out ? out : "", out ? olen : 0, WEXITSTATUS(status), tail,
                   failed ? what : NULL);
    }
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
