/* The built-in flmexec service: runs a shell or Python script per task.
 * Input JSON {"language": "shell"|"python", "code": str, "input": str?};
 * the output is the script's stdout; a non-zero exit fails the task with
 * its stderr. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <flame/flame.h>

static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    lseek(fd, 0, SEEK_SET);
    ssize_t r;
    while (buf && (r = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

static int tmpfd(void)
{
    char path[] = "/tmp/flmexec-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static int invoke(const flame_task_context *task, flame_task_result *result, void *payload)
{
    cJSON *in = task->input.data ? cJSON_ParseWithLength((const char *)task->input.data,
                                                         task->input.len) : NULL;
    cJSON *lang = cJSON_GetObjectItem(in, "language"), *code = cJSON_GetObjectItem(in, "code");
    cJSON *input = cJSON_GetObjectItem(in, "input");
    if (!cJSON_IsString(code)) {
        cJSON_Delete(in);
        flame_task_result_set_message(result, "flmexec: input must be JSON like "
                                              "{\"language\": \"shell\", \"code\": \"echo hi\"}");
        return 1;
    }
    const char *l = cJSON_IsString(lang) ? lang->valuestring : "shell";
    const char *interp;
    if (strcmp(l, "shell") == 0 || strcmp(l, "sh") == 0)
        interp = "/bin/sh";
    else if (strcmp(l, "python") == 0 || strcmp(l, "python3") == 0)
        interp = "python3";
    else {
        cJSON_Delete(in);
        flame_task_result_set_message(result, "flmexec: language must be \"shell\" or \"python\"");
        return 1;
    }
    int fin = tmpfd(), fout = tmpfd(), ferr = tmpfd();
    if (cJSON_IsString(input) && fin >= 0) {
        ssize_t w = write(fin, input->valuestring, strlen(input->valuestring));
        (void)w;
        lseek(fin, 0, SEEK_SET);
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fin, 0);
        dup2(fout, 1);
        dup2(ferr, 2);
        execlp(interp, interp, "-c", code->valuestring, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    size_t olen, elen;
    char *out = read_all(fout, &olen), *err = read_all(ferr, &elen);
    int rc = 0;
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "flmexec: the %s script failed (%s %d): %.*s", l,
                 WIFEXITED(status) ? "exit code" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                 (int)(elen > 400 ? 400 : elen), err ? err : "");
        flame_task_result_set_message(result, msg);
        rc = 1;
    }
    flame_task_result_set_output(result, out ? out : "", out ? olen : 0);
    free(out);
    free(err);
    close(fin);
    close(fout);
    close(ferr);
    cJSON_Delete(in);
    return rc;
}

int main(void)
{
    flame_service svc = { FLAME_SERVICE_VERSION, NULL, invoke, NULL, NULL };
    if (flame_service_run(&svc) != FLAME_OK) {
        fprintf(stderr, "flmexec-service: %s\n", flame_error_last());
        return 1;
    }
    return 0;
}
