/* The built-in flmping service, written with service.h: a no-op (or sleep,
 * or memory toucher) that answers with the host it ran on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <flame/flame.h>

static char host[256];

static int invoke(const flame_task_context *task, flame_task_result *result, void *payload)
{
    long duration = 0, memory = 0;
    if (task->input.data && task->input.len) {
        cJSON *in = cJSON_ParseWithLength((const char *)task->input.data, task->input.len);
        if (!in || !cJSON_IsObject(in)) {
            cJSON_Delete(in);
            flame_task_result_set_message(result,
                "flmping: input must be JSON like {\"duration\": ms, \"memory\": bytes}");
            return 1;
        }
        cJSON *d = cJSON_GetObjectItem(in, "duration"), *m = cJSON_GetObjectItem(in, "memory");
        duration = cJSON_IsNumber(d) ? (long)d->valuedouble : 0;
        memory = cJSON_IsNumber(m) ? (long)m->valuedouble : 0;
        cJSON_Delete(in);
    }
    char *mem = NULL;
    if (memory > 0) {
        mem = malloc((size_t)memory);
        if (!mem) {
            flame_task_result_set_message(result, "flmping: cannot allocate the memory asked for");
            return 1;
        }
        for (long i = 0; i < memory; i += 4096)
            mem[i] = 1;
    }
    if (duration > 0) {
        struct timespec ts = { duration / 1000, (duration % 1000) * 1000000 };
        nanosleep(&ts, NULL);
    }
    free(mem);
    char out[320];
    int n = snprintf(out, sizeof out, "Completed on <%s>", host);
    flame_task_result_set_output(result, out, (size_t)n);
    return 0;
}

int main(void)
{
    gethostname(host, sizeof host - 1);
    flame_service svc = { FLAME_SERVICE_VERSION, NULL, invoke, NULL, NULL };
    if (flame_service_run(&svc) != FLAME_OK) {
        fprintf(stderr, "flmping-service: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
