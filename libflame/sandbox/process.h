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

typedef struct fl_sandbox_config {
    uid_t uid_first; /* executors run as uid = gid = uid_first + k */
    unsigned uid_count;
} fl_sandbox_config;

/* Sets the uid range (a count of 0 keeps the current one). */
void fl_sandbox_process_configure(const fl_sandbox_config *c);

/* Checks once what the host has (user namespaces, seccomp, Landlock,
 * cgroups) and says, malloc'ed, what the level applies and what not. */
char *fl_sandbox_process_probe(void);

#endif
