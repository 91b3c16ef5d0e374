/* A progress bar with rate and ETA for the command-line tools, drawn on
 * stderr only when stderr is a terminal (scripts read stdout, and piped
 * output stays plain). Threads: cli_progress_update and cli_progress_done may
 * be called from any one thread at a time (the caller serialises them). */
#ifndef FLAME_CLI_PROGRESS_H
#define FLAME_CLI_PROGRESS_H

#include <stdint.h>

typedef struct cli_progress {
    int on;             /* 0: stderr is not a terminal, nothing is drawn */
    uint64_t total;
    double start_ms, last_draw_ms;
    int drawn;
} cli_progress;

/* Starts a bar of `total` steps (drawn only if stderr is a terminal). */
void cli_progress_start(cli_progress *p, uint64_t total);
/* Redraws at most ten times a second (always when done == total). */
void cli_progress_update(cli_progress *p, uint64_t done);
/* Erases the bar so that what follows starts on a clean line. */
void cli_progress_done(cli_progress *p);

/* Monotonic milliseconds. */
double cli_now_ms(void);

#endif
