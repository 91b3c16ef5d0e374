/* Spawning service processes: a caller describes the process in one
 * fl_spawn_spec and hands it to a spawner, chosen by the spec's sandbox
 * level. The level decides how the process is confined; what it runs
 * (command, arguments, environment) is the caller's business.
 *
 * Levels: "none" (fork/exec, no confinement), "process" (process.c:
 * namespaces, seccomp, Landlock, cgroups, ...), "microvm" (microvm.c: a
 * QEMU microvm guest per process), rows of the table in spawn.c.
 *
 * Threads: no shared state; an fl_process belongs to one thread at a time.
 * parent_death_signal follows the *thread* that spawned the process (Linux
 * PR_SET_PDEATHSIG), so spawn from a thread that lives as long as the
 * process should (the process level's sandboxes made ahead follow their
 * pool's thread, which lives until fl_sandbox_process_shutdown). */
#ifndef FL_SANDBOX_SPAWN_H
#define FL_SANDBOX_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "flame/error.h"

/* How a child reports what went wrong before its program ran. */
#define FL_SPAWN_EXIT_CHDIR 126 /* it could not enter spec->cwd */
#define FL_SPAWN_EXIT_EXEC 127  /* spec->path could not be executed */
#define FL_SPAWN_EXIT_SANDBOX 125 /* its sandbox could not be set up (the log says why) */

typedef struct fl_spawn_spec {
    const char *sandbox;     /* the level by name; NULL: "none" */
    const char *path;        /* the program to run (a path: no PATH search) */
    char *const *argv;       /* NULL-terminated; argv[0] is the program's name */
    char *const *envp;       /* NULL-terminated: the child's whole environment */
    const char *cwd;         /* NULL: the caller's */
    const char *log_file;    /* stdout and stderr appended to it (created 0600);
                              * NULL, or it cannot be opened: inherited */
    bool new_group;          /* its own process group: signals reach the group */
    int parent_death_signal; /* sent when the spawning thread dies; 0: none */
    /* Sandbox levels other than none: */
    const char *name;            /* the sandbox's (the executor id), for messages */
    const char *root_dir;        /* an empty directory of ours its root is mounted on */
    const char *network;         /* "none" (NULL: loopback only) or "host" */
    const char *const *ro_paths; /* NULL-terminated absolute paths shown read-only inside
                                  * (the system's library dirs and the program always) */
    const char *const *rw_dirs;  /* NULL-terminated (at most 4): writable inside, handed to
                                  * the sandbox's uid */
    uint64_t cpus;               /* cores; 0: no limit */
    uint64_t memory;             /* bytes; 0: no limit */
    unsigned max_pids;           /* 0: FL_SANDBOX_PIDS */
    /* NULL-terminated (at most 2) device nodes shown read-write inside at
     * the same path beside the standard ones, e.g. /dev/kvm: each a node of
     * its own (same device), owned by the sandbox's uid, so its uid opens it
     * whatever the host node's mode. */
    const char *const *devices;
} fl_spawn_spec;

typedef struct fl_spawner fl_spawner;

/* A spawned process. Zero it before the first fl_spawn. */
typedef struct fl_process {
    const fl_spawner *spawner;
    pid_t pid;   /* 0: none (never started, or stopped) */
    bool group;  /* signals go to its process group */
    bool reaped; /* it exited and was waited for: status is set */
    int status;  /* its wait status */
    struct fl_box *box; /* the sandbox around it (process level) */
} fl_process;

/* One sandbox level. */
struct fl_spawner {
    const char *level;
    /* Starts the process; stdin is /dev/null, signals unblocked and at their
     * defaults. Errors: flame_error_last() says why. */
    flame_status (*spawn)(const fl_spawner *sp, fl_process *p, const fl_spawn_spec *spec);
    /* Sends sig (to its group if it has one). 0 or -1 with errno. */
    int (*signal)(fl_process *p, int sig);
    /* Waits for it (block) or only checks; true once it has exited. */
    bool (*reap)(fl_process *p, bool block);
    /* SIGTERM, up to grace_ms for it to exit, then SIGKILL; reaps it, kills
     * what is left of its group and forgets it (pid 0; status stays). */
    void (*stop)(fl_process *p, int grace_ms);
};

extern const fl_spawner fl_spawner_process;
extern const fl_spawner fl_spawner_microvm;

/* The spawner of a level (NULL: "none"). FLAME_ERR_INVALID_ARGUMENT naming
 * the level and the known ones if there is no such level. */
flame_status fl_spawner_find(const fl_spawner **out, const char *level);

/* fl_spawner_find(spec->sandbox), then its spawn. */
flame_status fl_spawn(fl_process *p, const fl_spawn_spec *spec);

/* The process's spawner's calls; no-ops (false for reap) when p never ran. */
int fl_process_signal(fl_process *p, int sig);
bool fl_process_reap(fl_process *p, bool block);
void fl_process_stop(fl_process *p, int grace_ms);

/* "exited with code N", "was killed by signal N" for a wait status;
 * malloc'ed. */
char *fl_exit_text(int status);

/* For spawners: the stop every level shares once its process is reaped or
 * not: SIGTERM, up to grace_ms for it to go, then SIGKILL and a blocking
 * reap, through the level's own signal and reap. */
void fl_spawn_terminate(fl_process *p, int grace_ms, int (*sig)(fl_process *, int),
                        bool (*reap)(fl_process *, bool));

#endif
