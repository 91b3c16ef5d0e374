/* The service-side library's task result (flame/service.h keeps it opaque):
 * filled by a service's on_task_invoke, read by whoever carries it back —
 * the Instance server in service.c, or a shim of the executor manager. */
#ifndef FL_SERVICE_RESULT_H
#define FL_SERVICE_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/service.h"

struct flame_task_result {
    uint8_t *output;
    size_t output_len;
    bool has_output;
    char *message;
};

/* Frees what r holds and zeroes it. */
void fl_task_result_clear(flame_task_result *r);

#endif
