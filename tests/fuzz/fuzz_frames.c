/* libFuzzer target: flame-shim's stdio framing (daemons/shim/frame.c), what
 * a program writes on its stdout, without a process. Byte 0: the mode (even:
 * frames, odd: lines); byte 1: the largest frame or line (x 16); byte 2: the
 * size of the reads (1..256) the buffer gets its bytes in, as stdio.c's
 * reads do; the rest is the program's output. Every answer taken must be
 * exactly the bytes the program wrote, in order, and a refusal must be
 * right; anything else aborts (a finding). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

/* What frame_parse must find at q (n bytes, all the program wrote from
 * there) for one answer taken: checks it. */
static void check_frame(const uint8_t *q, char type, const char *data, size_t len, size_t used)
{
    size_t want = ((size_t)q[1] << 24) | ((size_t)q[2] << 16) | ((size_t)q[3] << 8) | q[4];
    check(type == (char)q[0] && (q[0] == 'O' || q[0] == 'X'), "frame type");
    check(len == want && used == FRAME_HEADER + want, "frame length");
    check(memcmp(data, q + FRAME_HEADER, len) == 0, "frame payload changed");
}

static void check_line(const uint8_t *q, size_t n, char type, const char *data, size_t len,
                       size_t used)
{
    const uint8_t *nl = memchr(q, '\n', n);
    check(nl != NULL && used == (size_t)(nl - q) + 1, "a line without its newline");
    size_t raw = (size_t)(nl - q);
    if (raw && q[raw - 1] == '\r')
        raw--;
    int err = raw >= 7 && memcmp(q, "error: ", 7) == 0;
    check(type == (err ? 'X' : 'O'), "line type");
    check(len == raw - (err ? 7 : 0) && memcmp(data, q + (err ? 7 : 0), len) == 0,
          "a line changed");
}

static void run(const uint8_t *p, size_t n, int line, size_t max, size_t chunk)
{
    char *buf = malloc(n ? n : 1);
    size_t fed = 0, off = 0; /* bytes in buf; bytes of it consumed */
    for (;;) {
        char type = 0;
        const char *data = NULL;
        size_t len = 0, used = 0, need = 0;
        int r = frame_parse(buf + off, fed - off, line, max, &type, &data, &len, &used, &need);
        if (r == FRAME_TAKEN) {
            check(used > 0 && used <= fed - off, "consumed what was not there");
            if (line)
                check_line(p + off, fed - off, type, data, len, used);
            else
                check_frame(p + off, type, data, len, used);
            off += used;
            continue;
        }
        if (r == FRAME_BAD_TYPE) {
            check(!line && p[off] != 'O' && p[off] != 'X', "a good type refused");
            break;
        }
        if (r == FRAME_TOO_LONG) {
            check(!line && len > max, "a frame refused within max");
            break;
        }
        if (r == FRAME_LINE_LONG) {
            check(line && fed - off > max && !memchr(p + off, '\n', fed - off),
                  "a line refused within max");
            break;
        }
        check(r == FRAME_MORE && need > fed - off, "more bytes asked for what was there");
        if (fed == n)
            break; /* EOF */
        size_t k = n - fed < chunk ? n - fed : chunk;
        memcpy(buf + fed, p + fed, k);
        fed += k;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t max = (size_t)data[1] * 16;
    size_t chunk = (size_t)data[2] + 1;
    /* the output, in a buffer of its own (ASan sees overreads) */
    size_t n = size - 3;
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, data + 3, n);
    run(p, n, data[0] % 2, max, chunk);
    free(p);
    return 0;
}
