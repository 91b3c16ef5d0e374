/* flame-shim stdio: frames and lines (see frame.h). Pure. */
#include <string.h>

#include "frame.h"

static int parse_line(const char *p, size_t avail, size_t max, char *type, const char **data,
                      size_t *len, size_t *used, size_t *need)
{
    const char *nl = avail ? memchr(p, '\n', avail) : NULL;
    if (!nl) {
        if (avail > max)
            return FRAME_LINE_LONG;
        *need = avail + 1;
        return FRAME_MORE;
    }
    size_t n = (size_t)(nl - p);
    *used = n + 1;
    if (n && p[n - 1] == '\r')
        n--;
    bool err = n >= 7 && memcmp(p, "error: ", 7) == 0;
    *type = err ? 'X' : 'O';
    *data = err ? p + 7 : p;
    *len = err ? n - 7 : n;
    return FRAME_TAKEN;
}

int frame_parse(const char *p, size_t avail, bool line, size_t max, char *type,
                const char **data, size_t *len, size_t *used, size_t *need)
{
    if (line)
        return parse_line(p, avail, max, type, data, len, used, need);
    if (avail < FRAME_HEADER) {
        *need = FRAME_HEADER;
        return FRAME_MORE;
    }
    const unsigned char *h = (const unsigned char *)p;
    *type = (char)h[0];
    if (h[0] != 'O' && h[0] != 'X')
        return FRAME_BAD_TYPE;
    size_t n = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4];
    *len = n;
    if (n > max)
        return FRAME_TOO_LONG;
    if (avail < FRAME_HEADER + n) {
        *need = FRAME_HEADER + n;
        return FRAME_MORE;
    }
    *data = p + FRAME_HEADER;
    *used = FRAME_HEADER + n;
    return FRAME_TAKEN;
}
