/* Services built into libflame: the flmping service, run as its own
 * process (daemons/flmping-service) or in-process ("inproc:flmping"). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "flame/service.h"

/* A host name JSON needs no escapes for. */
static bool plain_name(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static int ping_invoke(const flame_task_context *task, flame_task_result *result, void *payload)
{
    long duration = 0, memory = 0;
    if (task->input.data && task->input.len && task->input.data[0] == '{') {
        cJSON *in = cJSON_ParseWithLength((const char *)task->input.data, task->input.len);
        if (!in || !cJSON_IsObject(in)) {
            cJSON_Delete(in);
            flame_task_result_set_message(
                result, "flmping: input must be JSON like {\"duration\": ms, \"memory\": bytes}");
            return 1;
        }
        cJSON *d = cJSON_GetObjectItem(in, "duration"), *m = cJSON_GetObjectItem(in, "memory");
        duration = cJSON_IsNumber(d) ? (long)d->valuedouble : 0;
        memory = cJSON_IsNumber(m) ? (long)m->valuedouble : 0;
        cJSON_Delete(in);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
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
    static _Thread_local char host[256];
    if (!host[0])
        gethostname(host, sizeof host - 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long elapsed = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    /* Flame's flmping client prints "Completed on <hostname> in <duration>
     * milliseconds with <memory> memory" from the service's JSON; the field
     * names are ours: neither ECOSYSTEM.md nor the flame-rs 0.7.0 crate
     * (whose tests only count Succeed tasks) has its decoder to check them
     * against. Our flmping (cli/flmping.c) decodes exactly this. */
    long mem_out = memory > 0 ? memory : 0;
    if (plain_name(host)) { /* what cJSON would print, without its float round trips */
        char txt[320];
        int n = snprintf(txt, sizeof txt, "{\"hostname\":\"%s\",\"duration\":%ld,\"memory\":%ld}",
                         host, elapsed, mem_out);
        flame_task_result_set_output(result, txt, (size_t)n);
        return 0;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "hostname", host);
    cJSON_AddNumberToObject(out, "duration", (double)elapsed);
    cJSON_AddNumberToObject(out, "memory", (double)mem_out);
    char *txt = out ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    if (!txt) {
        flame_task_result_set_message(result, "flmping: out of memory");
        return 1;
    }
    flame_task_result_set_output(result, txt, strlen(txt));
    cJSON_free(txt);
    return 0;
}

static const flame_service flmping = { FLAME_SERVICE_VERSION, NULL, ping_invoke, NULL, NULL };

const flame_service *flame_builtin_service(const char *name)
{
    if (name && strcmp(name, "flmping") == 0)
        return &flmping;
    return NULL;
}
