/* flame-shim's program process (child.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

extern char **environ;

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    return s;
}

char *child_start(shim_child *c, char *const *argv, char *const *extra_env, bool pipes)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 };
    if (pipes && (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0))
        return xprintf("cannot make pipes for %s: errno %d", argv[0], errno);
    /* the environment is built before fork: the child only execs */
    size_t ne = 0, nx = 0;
    while (environ[ne])
        ne++;
    while (extra_env && extra_env[nx])
        nx++;
    char **envp = calloc(ne + nx + 1, sizeof *envp);
    if (!envp)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nx && !replaced; j++) {
            size_t n = strcspn(extra_env[j], "=");
            replaced = strncmp(environ[i], extra_env[j], n + 1) == 0;
        }
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < nx; j++)
        envp[k++] = extra_env[j];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* flame_service_run blocks SIGTERM */
        signal(SIGPIPE, SIG_DFL);
        if (pipes) {
            dup2(in[0], 0);
            dup2(out[1], 1);
        } else {
            int dn = open("/dev/null", O_RDONLY);
            if (dn >= 0)
                dup2(dn, 0);
            dup2(2, 1); /* its output goes where ours does: the log */
        }
        execvpe(argv[0], argv, envp);
        fprintf(stderr, "flame-shim: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(envp);
    if (pipes) {
        close(in[0]);
        close(out[1]);
        /* ours only (the program's ends are other open files): the stdio
         * shim writes and reads at once, polling both */
        fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
        fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    }
    if (pid < 0) {
        if (pipes) {
            close(in[1]);
            close(out[0]);
        }
        return xprintf("cannot start %s: errno %d", argv[0], errno);
    }
    c->pid = pid;
    c->in_fd = pipes ? in[1] : -1;
    c->out_fd = pipes ? out[0] : -1;
    c->exited = false;
    c->status = 0;
    return NULL;
}

bool child_alive(shim_child *c)
{
    if (c->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(c->pid, &st, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->status = r == c->pid ? st : 0;
        c->exited = true;
        kill(-c->pid, SIGKILL); /* what it left in its group */
        c->pid = 0;
        return false;
    }
    return true;
}

bool child_wait_exit(shim_child *c, int ms)
{
    long long end = now_ms() + ms;
    while (child_alive(c)) {
        if (now_ms() >= end)
            return false;
        struct timespec ts = { 0, 10 * 1000000 };
        nanosleep(&ts, NULL);
    }
    return true;
}

void child_stop(shim_child *c, int grace_ms)
{
    if (c->in_fd >= 0)
        close(c->in_fd);
    if (c->out_fd >= 0)
        close(c->out_fd);
    c->in_fd = c->out_fd = -1;
    if (c->pid <= 0)
        return;
    pid_t pid = c->pid;
    kill(-pid, SIGTERM);
    if (!child_wait_exit(c, grace_ms)) {
        kill(-pid, SIGKILL);
        int st;
        if (waitpid(pid, &st, 0) == pid)
            c->status = st;
        c->exited = true;
        c->pid = 0;
    }
}

char *child_exit_text(const shim_child *c)
{
    if (WIFSIGNALED(c->status))
        return xprintf("was killed by signal %d", WTERMSIG(c->status));
    return xprintf("exited with code %d", WEXITSTATUS(c->status));
}
