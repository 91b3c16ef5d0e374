/* The spawner table and the "none" level: fork/exec with the spec's
 * directory, environment, log file, process group and parent-death signal,
 * and no confinement. Threads: see spawn.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "util/util.h"

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* ---- none --------------------------------------------------------------- */

static flame_status none_spawn(const fl_spawner *sp, fl_process *p, const fl_spawn_spec *spec)
{
    int logfd = spec->log_file ? open(spec->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                      0600)
                               : -1;
    /* only async-signal-safe calls in the child: this process has threads */
    pid_t pid = fork();
    if (pid == 0) {
        if (spec->new_group)
            setpgid(0, 0);
        if (spec->parent_death_signal)
            prctl(PR_SET_PDEATHSIG, spec->parent_death_signal);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (spec->cwd && chdir(spec->cwd) != 0)
            _exit(FL_SPAWN_EXIT_CHDIR);
        if (logfd >= 0) {
            dup2(logfd, 1);
            dup2(logfd, 2);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        execve(spec->path, spec->argv, spec->envp);
        _exit(FL_SPAWN_EXIT_EXEC);
    }
    int err = errno;
    if (pid > 0 && spec->new_group)
        setpgid(pid, pid); /* also from the parent: no race with kill(-pid) */
    if (logfd >= 0)
        close(logfd);
    if (pid < 0)
        return fl_error(FLAME_ERR_INTERNAL, "cannot start %s: %s", spec->path, strerror(err));
    p->spawner = sp;
    p->pid = pid;
    p->group = spec->new_group;
    p->reaped = false;
    p->status = 0;
    return FLAME_OK;
}

static int none_signal(fl_process *p, int sig)
{
    if (p->pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill(p->group ? -p->pid : p->pid, sig);
}

static bool none_reap(fl_process *p, bool block)
{
    if (p->pid <= 0 || p->reaped)
        return p->reaped;
    int st;
    if (waitpid(p->pid, &st, block ? 0 : WNOHANG) == p->pid) {
        p->reaped = true;
        p->status = st;
    }
    return p->reaped;
}

void fl_spawn_terminate(fl_process *p, int grace_ms, int (*sig)(fl_process *, int),
                        bool (*reap)(fl_process *, bool))
{
    if (reap(p, false))
        return;
    sig(p, SIGTERM);
    /* most services are gone within a millisecond or two: short steps
     * first (a bind may be waiting for this stop), then 10 ms ones */
    for (int waited = 0, step; waited < grace_ms && !reap(p, false); waited += step)
        msleep(step = waited < 50 ? 1 : 10);
    if (!reap(p, false)) {
        sig(p, SIGKILL);
        reap(p, true);
    }
}

static void none_stop(fl_process *p, int grace_ms)
{
    if (p->pid <= 0)
        return;
    fl_spawn_terminate(p, grace_ms, none_signal, none_reap);
    /* anything left in its process group goes too */
    if (p->group)
        kill(-p->pid, SIGKILL);
    p->pid = 0;
}

/* ---- the table ---------------------------------------------------------- */

static const fl_spawner none = { "none", none_spawn, none_signal, none_reap, none_stop };

static const fl_spawner *const spawners[] = {
    &none,
    &fl_spawner_process,
    &fl_spawner_microvm,
};

flame_status fl_spawner_find(const fl_spawner **out, const char *level)
{
    if (!level)
        level = "none";
    for (size_t i = 0; i < FL_ARRAY_LEN(spawners); i++) {
        if (strcmp(spawners[i]->level, level) == 0) {
            *out = spawners[i];
            return FLAME_OK;
        }
    }
    char known[128] = "";
    for (size_t i = 0; i < FL_ARRAY_LEN(spawners); i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 spawners[i]->level);
    return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                    "unknown sandbox level \"%s\" (this executor has: %s)", level, known);
}

flame_status fl_spawn(fl_process *p, const fl_spawn_spec *spec)
{
    const fl_spawner *sp;
    flame_status st = fl_spawner_find(&sp, spec->sandbox);
    return st ? st : sp->spawn(sp, p, spec);
}

int fl_process_signal(fl_process *p, int sig)
{
    if (!p->spawner) {
        errno = ESRCH;
        return -1;
    }
    return p->spawner->signal(p, sig);
}

bool fl_process_reap(fl_process *p, bool block)
{
    return p->spawner ? p->spawner->reap(p, block) : p->reaped;
}

void fl_process_stop(fl_process *p, int grace_ms)
{
    if (p->spawner)
        p->spawner->stop(p, grace_ms);
}

char *fl_exit_text(int status)
{
    if (WIFEXITED(status))
        return fl_sprintf("exited with code %d", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return fl_sprintf("was killed by signal %d", WTERMSIG(status));
    return fl_strdup("stopped");
}
