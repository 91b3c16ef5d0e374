/* flmexec: run a shell or Python script through the built-in flmexec
 * application (Flame's contract: JSON {language, runtime?, code, input} in,
 * {"data": [...]} out, see daemons/flmexec-service.c) and print its output
 * (client.h only). Exits 0 when the script exited 0; 1 when it did not (its
 * stderr and why, printed) or could not run. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <flame/flame.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: flmexec [-l shell|python] [-r RUNTIME] [-i INPUT] [limits] (-c CODE | FILE | -)\n"
            "\n"
            "Runs a script as a task of the built-in flmexec application and prints its stdout.\n"
            "The script runs in a sandbox (no network, its own files only) under a time and a\n"
            "memory limit; a script stopped by one fails with a message naming it.\n"
            "  -l, --language LANG      shell (default) or python\n"
            "  -r, --runtime RUNTIME    the shell (bash, sh, zsh, ksh, ...; default bash) or\n"
            "                           the Python version (e.g. 3.11)\n"
            "  -c, --code CODE          the script itself\n"
            "  -i, --input TEXT         the script's standard input\n"
            "  -t, --time-limit SEC     stop the script after SEC seconds (at most the\n"
            "                           application's limit, 60 s unless it sets another)\n"
            "  -m, --memory-limit SIZE  its address space, e.g. 256m (at most the\n"
            "                           application's limit, 512m unless it sets another)\n"
            "      --sandbox LEVEL      process (default: application flmexec) or microvm\n"
            "                           (application flmexec-microvm, which an admin registers:\n"
            "                           flmctl register -f examples/flmexec-microvm.yaml)\n"
            "  -a, --app NAME           another application running flmexec-service, e.g. one\n"
            "                           an admin registered with network: host\n"
            "      --endpoint URL       the session manager\n"
            "  -h, --help               show this help\n");
}

static char *slurp(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    }
    if (buf)
        buf[n] = 0;
    return buf;
}

/* Waits for the task; the client core gives up, with the session's own
 * event (e.g. a bind that keeps failing on a node without the microvm
 * level), once the session gets no executor: then FLAME_OK with *out
 * NULL, the reason printed. */
static flame_status wait_task(flame_task **out, flame_session *s, const char *task_id)
{
    flame_status st = flame_task_wait(out, s, task_id, -1);
    if (st == FLAME_ERR_FAILED_PRECONDITION) {
        fprintf(stderr, "flmexec: the script cannot run: %s\n", flame_error_last());
        *out = NULL;
        return FLAME_OK;
    }
    return st;
}

/* Prints the script's stdout (the output's "data") and, when it exited
 * non-zero, why and its stderr; returns the exit status for flmexec. */
static int print_output(const flame_bytes *output)
{
    cJSON *o = cJSON_ParseWithLength((const char *)output->data, output->len);
    cJSON *data = cJSON_GetObjectItem(o, "data");
    if (!cJSON_IsArray(data)) {
        fprintf(stderr, "flmexec: the service's output is not flmexec output JSON\n");
        cJSON_Delete(o);
        return 1;
    }
    const cJSON *b;
    cJSON_ArrayForEach(b, data)
        putchar(cJSON_IsNumber(b) ? b->valueint & 0xff : '?');
    fflush(stdout);
    const cJSON *code = cJSON_GetObjectItem(o, "exit_code");
    const cJSON *err = cJSON_GetObjectItem(o, "stderr");
    const cJSON *why = cJSON_GetObjectItem(o, "error");
    const char *text = cJSON_IsString(err) ? err->valuestring : "";
    int rc = cJSON_IsNumber(code) && code->valueint != 0 ? 1 : 0;
    if (rc)
        fprintf(stderr, "flmexec: %s: %s", cJSON_IsString(why) ? why->valuestring
                                                                : "the script failed", text);
    else
        fputs(text, stderr);
    cJSON_Delete(o);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "language", required_argument, NULL, 'l' }, { "code", required_argument, NULL, 'c' },
        { "runtime", required_argument, NULL, 'r' },
        { "input", required_argument, NULL, 'i' },    { "endpoint", required_argument, NULL, 'E' },
        { "time-limit", required_argument, NULL, 't' },
        { "memory-limit", required_argument, NULL, 'm' },
        { "sandbox", required_argument, NULL, 'S' },  { "app", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
    };
    const char *lang = "shell", *code = NULL, *input = NULL, *endpoint = NULL, *runtime = NULL;
    const char *memory = NULL, *app = "flmexec";
    double secs = 0;
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "l:r:c:i:t:m:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': lang = optarg; break;
        case 'c': code = optarg; break;
        case 'r': runtime = optarg; break;
        case 'i': input = optarg; break;
        case 'E': endpoint = optarg; break;
        case 'm': memory = optarg; break;
        case 'a': app = optarg; break;
        case 't':
            secs = strtod(optarg, &end);
            if (end == optarg || *end || secs <= 0) {
                fprintf(stderr, "flmexec: --time-limit takes seconds > 0\n");
                return 2;
            }
            break;
        case 'S':
            if (strcmp(optarg, "process") == 0) {
                app = "flmexec";
            } else if (strcmp(optarg, "microvm") == 0) {
                app = "flmexec-microvm";
            } else {
                fprintf(stderr, "flmexec: --sandbox is process or microvm (a script never "
                                "runs unconfined)\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char *owned = NULL;
    if (!code) {
        if (optind >= argc) {
            fprintf(stderr, "flmexec: give -c CODE or a script file (- for stdin)\n");
            return 2;
        }
        FILE *f = strcmp(argv[optind], "-") == 0 ? stdin : fopen(argv[optind], "r");
        if (!f) {
            fprintf(stderr, "flmexec: cannot read %s\n", argv[optind]);
            return 2;
        }
        code = owned = slurp(f);
        if (f != stdin)
            fclose(f);
    }
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "language", lang);
    if (runtime)
        cJSON_AddStringToObject(in, "runtime", runtime);
    cJSON_AddStringToObject(in, "code", code);
    cJSON *bytes = cJSON_AddArrayToObject(in, "input");
    for (const char *p = input; p && *p; p++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)*p));
    if (secs > 0)
        cJSON_AddNumberToObject(in, "time_limit", secs);
    if (memory)
        cJSON_AddStringToObject(in, "memory_limit", memory);
    char *json = cJSON_PrintUnformatted(in);
    cJSON_Delete(in);

    int rc = 1;
    flame_client_options co = FLAME_CLIENT_OPTIONS_INIT;
    co.endpoint = endpoint;
    flame_client *client = NULL;
    flame_session *s = NULL;
    flame_task *t = NULL, *done = NULL;
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = app;
    flame_status st = FLAME_OK;
    if ((st = flame_client_connect(&client, &co)) ||
        (st = flame_session_create(&s, client, NULL, &spec)) ||
        (st = flame_task_create(&t, s, json, strlen(json))) ||
        (st = wait_task(&done, s, t->id))) {
        fprintf(stderr, "flmexec: %s\n", flame_error_last());
        if (st == FLAME_ERR_NOT_FOUND && strcmp(app, "flmexec-microvm") == 0)
            fprintf(stderr, "flmexec: an admin registers it: flmctl register -f "
                            "examples/flmexec-microvm.yaml\n");
    } else if (!done) {
        /* no executor for it: wait_task said why */
    } else if (done->state != FLAME_TASK_SUCCEED) {
        fprintf(stderr, "flmexec: %s\n", done->message ? done->message : "the task failed");
    } else {
        rc = print_output(&done->output);
    }
    if (s)
        flame_session_close(s);
    flame_task_free(t);
    flame_task_free(done);
    flame_session_free(s);
    flame_client_free(client);
    free(json);
    free(owned);
    return rc;
}
