/* flame-shim: what its two modes share (main.c parses the options). */
#ifndef FLAME_SHIM_SHIM_H
#define FLAME_SHIM_SHIM_H

#include <stdbool.h>
#include <stddef.h>

#define SHIM_MAX_FRAME_DEFAULT (64u << 20)
#define SHIM_STOP_GRACE_MS 3000
/* how long a program whose pipes or connection broke gets to be seen
 * exiting, so the task can say how it ended */
#define SHIM_REAP_MS 1000

typedef struct shim_opts {
    char **argv;        /* the program and its arguments, NULL-terminated; NULL: none (rest --url) */
    int timeout_ms;     /* per task; 0: none */
    size_t max_frame;   /* the largest frame, line or HTTP body we take */
    bool line;          /* stdio: line mode */
    const char *url;    /* rest: the service's base URL (no program) */
    const char *health; /* rest: its health path */
} shim_opts;

/* Serve flame.v1 Instance (flame_service_run) until told to stop; stop the
 * program; 0 on a clean stop. */
int stdio_main(const shim_opts *o);
int rest_main(const shim_opts *o);

#endif
