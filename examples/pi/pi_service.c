/* Monte-Carlo pi, the service: each task's input is a number of samples
 * (text); its output is how many fell inside the quarter circle. Written
 * with service.h: it runs under the executor manager's host shim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flame/flame.h>

static int invoke(const flame_task_context *task, flame_task_result *result, void *payload)
{
    char buf[32] = "0";
    if (task->input.data && task->input.len < sizeof buf) {
        memcpy(buf, task->input.data, task->input.len);
        buf[task->input.len] = 0;
    }
    long n = strtol(buf, NULL, 10);
    if (n <= 0) {
        flame_task_result_set_message(result, "pi: the input is a positive number of samples");
        return 1;
    }
    /* a per-task seed: tasks are independent */
    unsigned long long x = 88172645463325252ULL ^ ((unsigned long long)strtoull(task->task_id, NULL, 10) << 17);
    long hits = 0;
    for (long i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double a = (double)(x >> 11) / 9007199254740992.0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double b = (double)(x >> 11) / 9007199254740992.0;
        hits += a * a + b * b <= 1.0;
    }
    int len = snprintf(buf, sizeof buf, "%ld", hits);
    flame_task_result_set_output(result, buf, (size_t)len);
    return 0;
}

int main(void)
{
    flame_service svc = { FLAME_SERVICE_VERSION, NULL, invoke, NULL, NULL };
    if (flame_service_run(&svc) != FLAME_OK) {
        fprintf(stderr, "pi_service: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
