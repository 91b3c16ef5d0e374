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
 * stdout are pipes to us (our ends non-blocking). On failure returns a malloc'ed reason. */
char *child_start(shim_child *c, char *const *argv, char *const *extra_env, bool pipes);

/* true while it runs; reaps it once it exited. */
bool child_alive(shim_child *c);

/* Waits up to ms (polling every 10 ms) for it to exit, reaping it: true
 * once it is not running. For a program whose pipes or connection just
 * broke: its exit comes a little after. */
bool child_wait_exit(shim_child *c, int ms);

/* Closes its pipes, SIGTERM to its group, up to grace_ms, then SIGKILL. */
void child_stop(shim_child *c, int grace_ms);

/* "exited with code N" / "was killed by signal N" (malloc'ed). */
char *child_exit_text(const shim_child *c);

/* asprintf that aborts when out of memory. */
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic milliseconds. */
long long now_ms(void);

#endif
