/* flame-shim stdio: the framing of what the program writes, as pure
 * functions over bytes (stdio.c reads the pipe; tests/fuzz/fuzz_frames.c
 * feeds them bytes). Frame: one type byte, a 4-byte big-endian payload
 * length, the payload; line mode: lines ended by '\n' (a '\r' before it is
 * dropped). */
#ifndef FLAME_SHIM_FRAME_H
#define FLAME_SHIM_FRAME_H

#include <stddef.h>

#define FRAME_HEADER 5

/* A frame header the program wrote: 0 and *type ('O' or 'X'), *len; -1 a
 * type byte other than 'O' or 'X'; -2 a payload longer than max (*len set). */
int frame_header(const unsigned char h[FRAME_HEADER], size_t max, char *type, size_t *len);

/* Line mode: moves the first complete line out of buf (*buf_len bytes) into
 * *line (malloc'ed, NUL-terminated, without its "\n" or "\r\n"): 1. 0: no
 * complete line yet (read more); -1: none within max bytes (the program
 * wrote a line too long). */
int line_take(char *buf, size_t *buf_len, size_t max, char **line);

#endif
