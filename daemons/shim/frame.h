/* flame-shim stdio: the framing of what the program writes, as one pure
 * function over bytes (stdio.c parses its read buffer with it;
 * tests/fuzz/fuzz_frames.c feeds it bytes). Frame: one type byte ('O' or
 * 'X'), a 4-byte big-endian payload length, the payload; line mode: lines
 * ended by '\n' (a '\r' before it is dropped), "error: " at the start of a
 * line makes it an 'X'. */
#ifndef FLAME_SHIM_FRAME_H
#define FLAME_SHIM_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#define FRAME_HEADER 5

enum {
    FRAME_MORE = 0,      /* more bytes needed: *need says how many in all */
    FRAME_TAKEN = 1,     /* *type, *data (into p), *len set; *used bytes consumed */
    FRAME_BAD_TYPE = -1, /* a type byte other than 'O' or 'X' (*type set to it) */
    FRAME_TOO_LONG = -2, /* a frame's payload longer than max (*len set) */
    FRAME_LINE_LONG = -3 /* no '\n' within max bytes */
};

/* The answer at the head of p (avail bytes): one of the values above. */
int frame_parse(const char *p, size_t avail, bool line, size_t max, char *type,
                const char **data, size_t *len, size_t *used, size_t *need);

#endif
