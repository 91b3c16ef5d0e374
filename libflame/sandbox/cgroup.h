/* An executor's cgroup(s), for the process sandbox (cgroup.c): made under a
 * hierarchy root (v2: one directory; v1: one per memory, pids and cpu
 * controller), limits written, a process placed in it, removed with
 * whatever is left in it. The cpu controller applies only to an executor
 * whose session asks for cores (v1: its cpu cgroup, joined ahead with the
 * others, left at the start by one that asks for none; v2: a directory
 * under flame-cpu/, the only parent that enables cpu): a cgroup under the cpu
 * controller costs every wakeup of the service's threads (measured: 10-25%
 * of the steady tasks/s of a small-task service on a loaded node, cpu.shares
 * or not), a cost only the sessions that want a cpu limit should pay. Where a controller is not there (v2 without it
 * enabled, a v1 hierarchy missing) the limit is not applied and the
 * fl_cgroup says so: the caller limits with rlimits instead.
 *
 * Threads: an fl_cgroup belongs to one thread at a time; the functions keep
 * no state of their own. */
#ifndef FL_SANDBOX_CGROUP_H
#define FL_SANDBOX_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define FL_CGROUP_ROOT "/sys/fs/cgroup"

typedef struct fl_cgroup {
    int version;       /* 2 or 1; 0: none made */
    /* v2: dirs[0], and dirs[1] under flame-cpu/ once a cpu limit moved the
     * process there; v1: memory, pids, cpu (NULL: not made) */
    char *dirs[4];
    char *cpu_dir;     /* where a cpu limit would go (made by fl_cgroup_limit) */
    /* what fl_cgroup_limit could apply (the others: rlimits, or nothing) */
    bool memory_limited, pids_limited, cpu_limited;
} fl_cgroup;

/* Which cgroups root gives this process: 2 when root is a cgroup2
 * hierarchy we may write, 1 when root holds writable v1 memory and pids
 * hierarchies, 0 otherwise. */
int fl_cgroup_probe(const char *root);

/* Makes the cgroup root/flame/name (v2) or root/<controller>/flame/name (v1)
 * for version (fl_cgroup_probe's). false (errno set): none could be made,
 * *cg is empty. */
bool fl_cgroup_make(fl_cgroup *cg, const char *root, int version, const char *name);

/* Writes the limits (cpus in cores, memory in bytes; 0: none) and records
 * which took. A v2 controller that is not enabled for the cgroup is logged
 * once per hierarchy with what the caller does instead. Limits may be
 * written after the join (a join is the slow part: a v1 join waits for an
 * RCU grace period, ~1-10 ms, so boxes made ahead join early). pid (joined
 * already) gets the cpu controller only for cpus > 0: v1 keeps it in its cpu
 * cgroup (with cpus 0 it moves back to this process's own); v2 moves it
 * whole to flame-cpu/<name>, memory and pids limits written there. */
void fl_cgroup_limit(fl_cgroup *cg, uint64_t cpus, uint64_t memory, unsigned pids, pid_t pid);

/* Moves pid into every directory of cg. false if one refused. */
bool fl_cgroup_join(const fl_cgroup *cg, pid_t pid);

/* Kills what is left in it (bounded wait) and removes the directories;
 * cg is empty afterwards. NULL or empty: nothing. */
void fl_cgroup_remove(fl_cgroup *cg);

/* Removes the empty cgroups named "<pid>-..." under root's flame
 * directories whose pid no longer runs and that are a minute old: those of
 * a manager that died without removing its own (kill -9). Returns how many
 * went. */
int fl_cgroup_sweep(const char *root, int version);

/* Under systemd's Delegate=yes (mount a cgroup2 hierarchy, this
 * process's cgroup on it marked delegated by systemd): the process moves
 * itself into the leaf <its cgroup>/manager (cgroup v2 lets no process sit
 * in a cgroup that enables controllers for its children), root gets
 * <mount><its cgroup>, the subtree where executors' cgroups then go, and
 * true. Otherwise false (root untouched). Logs what it finds either way. */
bool fl_cgroup_delegated(const char *mount, char *root, size_t size);

#endif
