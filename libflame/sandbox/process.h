/* The "process" sandbox level's node settings and what the host gives it
 * (process.c). Threads: configure before the first spawn. */
#ifndef FL_SANDBOX_PROCESS_H
#define FL_SANDBOX_PROCESS_H

#include <sys/types.h>

/* The default uid/gid range: one per executor, mapped into its user
 * namespace, never a uid of the host's users. */
#define FL_SANDBOX_UID_FIRST 100000
#define FL_SANDBOX_UID_COUNT 65536
/* Processes (and threads) an executor may have when its spec says none. */
#define FL_SANDBOX_PIDS 512

/* Sandboxes made ahead, at most. */
#define FL_SANDBOX_POOL_MAX 8

typedef struct fl_sandbox_config {
    uid_t uid_first; /* executors run as uid = gid = uid_first + k */
    unsigned uid_count;
    /* Sandboxes (network "none") kept made ahead: namespaces, uid and
     * cgroups ready, waiting for the program of a spawn; each serves one
     * spawn. 0: every spawn makes its own. */
    unsigned pool;
    const char *cgroup_root; /* NULL: keep (at first /sys/fs/cgroup); copied */
} fl_sandbox_config;

/* Sets the uid range (a count of 0 keeps the current one; the sandboxes
 * made ahead are dropped when it changes), the pool's size (a background
 * thread fills it) and the cgroups' root. */
void fl_sandbox_process_configure(const fl_sandbox_config *c);

/* Stops the pool's thread and ends the sandboxes it made (their cgroups
 * removed). Spawns after it make their own until the next configure. */
void fl_sandbox_process_shutdown(void);

/* The pool: sandboxes ready now, spawns it served so far. */
void fl_sandbox_process_pool_stats(unsigned *ready, unsigned *served);

/* Checks once what the host has (user namespaces, seccomp, Landlock,
 * cgroups) and says, malloc'ed, what the level applies and what not. */
char *fl_sandbox_process_probe(void);

#endif
