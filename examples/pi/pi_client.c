/* Monte-Carlo pi, the client: registers the pi service (when absent), runs
 * TASKS tasks of SAMPLES samples each in one session with
 * flame_session_map (one batched submission, one outcome stream) and
 * prints the estimate and the time.
 * usage: pi_client SERVICE_PATH [TASKS [SAMPLES]]
 * SERVICE_PATH may be relative: it is registered as an absolute path (the
 * executor manager runs the service from a directory of its own). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <flame/flame.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pi_client SERVICE_PATH [TASKS [SAMPLES]]\n");
        return 2;
    }
    size_t tasks = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    long samples = argc > 3 ? strtol(argv[3], NULL, 10) : 100000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    flame_client *c;
    if (flame_client_connect(&c, NULL))
        goto fail;
    char service[PATH_MAX];
    if (!realpath(argv[1], service)) {
        perror(argv[1]);
        return 1;
    }
    flame_application_spec app = FLAME_APPLICATION_SPEC_INIT;
    app.command = service;
    /* registered once; a later run with another path updates it */
    if (flame_application_register(c, "pi-c", &app)) {
        flame_application *old;
        if (flame_error_last_code() != FLAME_ERR_ALREADY_EXISTS || flame_application_get(&old, c, "pi-c"))
            goto fail;
        int same = old->spec->command && strcmp(old->spec->command, service) == 0;
        flame_application_free(old);
        if (!same && flame_application_update(c, "pi-c", &app))
            goto fail;
    }
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = "pi-c";
    flame_session *s;
    if (flame_session_create(&s, c, NULL, &spec))
        goto fail;
    char in[32];
    int len = snprintf(in, sizeof in, "%ld", samples);
    flame_bytes *inputs = calloc(tasks, sizeof *inputs);
    for (size_t i = 0; i < tasks; i++)
        inputs[i] = (flame_bytes){ (const uint8_t *)in, (size_t)len };
    flame_task_outcome *out;
    if (flame_session_map(&out, s, inputs, tasks, -1))
        goto fail;
    size_t failed = 0;
    long long hits = 0;
    for (size_t i = 0; i < tasks; i++) {
        if (out[i].state == FLAME_TASK_SUCCEED && out[i].output.data)
            hits += strtoll((const char *)out[i].output.data, NULL, 10);
        else
            failed++;
    }
    flame_task_outcome_list_free(out, tasks);
    flame_session_close(s);
    flame_session_free(s);
    flame_client_free(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double pi = 4.0 * (double)hits / ((double)samples * (double)(tasks - failed));
    printf("pi ~= %.6f (%zu tasks x %ld samples, %zu failed) in %.3f s\n", pi, tasks, samples,
           failed, secs);
    free(inputs);
    return failed ? 1 : 0;
fail:
    fprintf(stderr, "pi_client: %s\n", flame_error_last());
    return 1;
}
