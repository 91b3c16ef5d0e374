/* flame-shim's program: started with pipes to its stdin and stdout (stdio)
 * or none (rest: stdin /dev/null, stdout to our stderr, the executor's log),
 * in its own process group, killed with us (PR_SET_PDEATHSIG); restarted by
 * the shims after a crash. Threads: flame_service_run calls every callback
 * on one thread, so a child belongs to that thread. */
#ifndef FLAME_SHIM_CHILD_H
#define FLAME_SHIM_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct shim_child {
    pid_t pid;     /* 0: not running */
    int in_fd;     /* its stdin (stdio), or -1 */
    int out_fd;    /* its stdout (stdio), or -1 */
    int status;    /* its wait status once it exited */
    bool exited;   /* it exited since the last start (status set) */
} shim_child;

#define SHIM_CHILD_INIT { 0, -1, -1, 0, false }

/* Starts argv (argv[0] looked up on PATH) with extra "NAME=value" entries
 * (NULL-terminated, may be NULL) added to our environment. pipes: stdin and
 * stdout are pipes to us. On failure returns a malloc'ed reason. */
char *child_start(shim_child *c, char *const *argv, char *const *extra_env, bool pipes);

/* true while it runs; reaps it once it exited. */
bool child_alive(shim_child *c);

/* Closes its pipes, SIGTERM to its group, up to grace_ms, then SIGKILL. */
void child_stop(shim_child *c, int grace_ms);

/* "exited with code N" / "was killed by signal N" (malloc'ed). */
char *child_exit_text(const shim_child *c);

/* asprintf that aborts when out of memory. */
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic milliseconds. */
long long now_ms(void);

/* Reads exactly n bytes before deadline (now_ms(); 0: none). 0 on success,
 * -1 on EOF or error, -2 on timeout. */
int read_full(int fd, void *buf, size_t n, long long deadline);

/* Reads what is there (at least 1 byte, at most n) before deadline: the
 * count, -1 on EOF or error, -2 on timeout. */
ssize_t read_some(int fd, void *buf, size_t n, long long deadline);

/* Writes all n bytes before deadline. 0, -1 (error, EPIPE) or -2 (timeout). */
int write_full(int fd, const void *buf, size_t n, long long deadline);

#endif
