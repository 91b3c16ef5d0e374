/* flame-shim stdio: frame headers and lines (see frame.h). Pure. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int frame_header(const unsigned char h[FRAME_HEADER], size_t max, char *type, size_t *len)
{
    *type = (char)h[0];
    *len = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4];
    if (h[0] != 'O' && h[0] != 'X')
        return -1;
    return *len > max ? -2 : 0;
}

int line_take(char *buf, size_t *buf_len, size_t max, char **line)
{
    char *nl = buf && *buf_len ? memchr(buf, '\n', *buf_len) : NULL;
    if (!nl)
        return *buf_len > max ? -1 : 0;
    size_t n = (size_t)(nl - buf);
    *line = malloc(n + 1);
    if (!*line)
        abort();
    memcpy(*line, buf, n);
    (*line)[n] = 0;
    if (n && (*line)[n - 1] == '\r')
        (*line)[n - 1] = 0;
    memmove(buf, nl + 1, *buf_len - n - 1);
    *buf_len -= n + 1;
    return 1;
}
