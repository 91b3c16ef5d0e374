/* libFuzzer target: flame-shim's stdio framing (daemons/shim/frame.c), what
 * a program writes on its stdout, without a process. Byte 0: the mode (even:
 * frames, odd: lines); byte 1: the largest frame or line (x 16); byte 2: the
 * size of the reads (1..256) the line reader gets its bytes in; the rest is
 * the program's output. Every frame and line taken must be exactly the
 * bytes the program wrote, in order; anything else aborts (a finding). */
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

static void frames(const uint8_t *p, size_t n, size_t max)
{
    size_t at = 0;
    while (n - at >= FRAME_HEADER) {
        char type;
        size_t len;
        int r = frame_header(p + at, max, &type, &len);
        check(type == (char)p[at], "frame type");
        if (r == -1) {
            check(p[at] != 'O' && p[at] != 'X', "a good type refused");
            return;
        }
        check(r == 0 ? len <= max : r == -2 && len > max, "frame length against max");
        if (r)
            return;
        at += FRAME_HEADER;
        if (len > n - at)
            return; /* the program closed its stdout in a frame */
        /* stdio.c reads the payload into a buffer of len + 1 */
        char *payload = malloc(len + 1);
        memcpy(payload, p + at, len);
        payload[len] = 0;
        free(payload);
        at += len;
    }
}

static void lines(const uint8_t *p, size_t n, size_t max, size_t chunk)
{
    char *buf = NULL;
    size_t len = 0, fed = 0, taken = 0;
    for (;;) {
        char *line;
        int r = line_take(buf, &len, max, &line);
        if (r == 1) {
            size_t k = strlen(line);
            const uint8_t *nl = memchr(p + taken, '\n', fed - taken);
            check(nl != NULL, "a line without its newline");
            size_t raw = (size_t)(nl - (p + taken));
            /* a NUL inside a line ends it early for C; a "\r\n" loses the \r */
            check(k <= raw && memcmp(line, p + taken, k) == 0, "a line changed");
            check(k == raw || p[taken + k] == 0 || (k + 1 == raw && p[taken + k] == '\r'),
                  "a line cut short");
            taken += raw + 1;
            check(len == fed - taken, "the buffer lost bytes");
            check(len == 0 || memcmp(buf, p + taken, len) == 0, "the buffer changed");
            free(line);
            continue;
        }
        if (r < 0) {
            check(len > max, "a line refused within max");
            break;
        }
        check(len == fed - taken, "the buffer lost bytes");
        if (fed == n)
            break; /* EOF */
        size_t k = n - fed < chunk ? n - fed : chunk;
        buf = realloc(buf, len + k);
        memcpy(buf + len, p + fed, k);
        len += k;
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
    if (data[0] % 2)
        lines(p, n, max, chunk);
    else
        frames(p, n, max);
    free(p);
    return 0;
}
