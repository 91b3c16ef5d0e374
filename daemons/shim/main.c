/* flame-shim: the program the stdio and REST shims run inside a session's
 * sandbox (libflame/shim/bridge.c starts it through the host shim). It
 * serves flame.v1 Instance to the executor and speaks to an application's
 * own program over its stdin/stdout (stdio.c) or HTTP (rest.c).
 *
 *   flame-shim stdio|rest [--timeout-ms N] [--max-frame BYTES] [--line]
 *              [--url URL] [--health PATH] [--venv DIR] [--see PATH]
 *              [-- PROGRAM ARGS...]
 *
 * --see PATH: a path the program needs (its interpreter's installation):
 * the host shim shows the paths our arguments name inside the sandbox.
 * --venv DIR: a Python venv the program lives in: VIRTUAL_ENV is set and
 * DIR/bin goes first on PATH. Threads: main's only (flame_service_run runs
 * the callbacks on one thread of its own). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

static int usage(const char *why)
{
    fprintf(stderr, "flame-shim: %s\nusage: flame-shim stdio|rest [--timeout-ms N] "
                    "[--max-frame BYTES] [--line] [--url URL] [--health PATH] [--venv DIR] "
                    "[-- PROGRAM ARGS...]\n", why);
    return 2;
}

static bool number(const char *s, long long max, long long *out)
{
    char *end;
    long long v = s ? strtoll(s, &end, 10) : -1;
    if (!s || !*s || *end || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

static void use_venv(const char *dir)
{
    const char *path = getenv("PATH");
    char *p = NULL;
    if (asprintf(&p, "%s/bin:%s", dir, path ? path : "/usr/local/bin:/usr/bin:/bin") < 0)
        abort();
    setenv("PATH", p, 1);
    setenv("VIRTUAL_ENV", dir, 1);
    free(p);
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "stdio") != 0 && strcmp(argv[1], "rest") != 0))
        return usage("the first argument is stdio or rest");
    bool rest = strcmp(argv[1], "rest") == 0;
    shim_opts o = { .max_frame = SHIM_MAX_FRAME_DEFAULT, .health = "/health" };
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "--line") == 0) {
            o.line = true;
        } else if (strcmp(a, "--timeout-ms") == 0 && number(v, 1LL << 30, &n)) {
            o.timeout_ms = (int)n;
            i++;
        } else if (strcmp(a, "--max-frame") == 0 && number(v, 1LL << 31, &n) && n >= 16) {
            o.max_frame = (size_t)n;
            i++;
        } else if (strcmp(a, "--url") == 0 && v) {
            o.url = v;
            i++;
        } else if (strcmp(a, "--health") == 0 && v && v[0] == '/') {
            o.health = v;
            i++;
        } else if (strcmp(a, "--see") == 0 && v && v[0] == '/') {
            i++; /* for the host shim: it shows the paths our arguments name */
        } else if (strcmp(a, "--venv") == 0 && v && v[0] == '/') {
            use_venv(v);
            i++;
        } else {
            return usage("bad option or value");
        }
    }
    if (i < argc)
        o.argv = &argv[i];
    if (!o.argv && !(rest && o.url))
        return usage("no program to run");
    signal(SIGPIPE, SIG_IGN); /* a program gone mid-write is an error, not our death */
    return rest ? rest_main(&o) : stdio_main(&o);
}
