/* hpack.h: an HPACK decoder (RFC 7541) for the host shim's HTTP/2 client
 * (h2.h): header blocks into name/value pairs, with the dynamic table a
 * connection keeps. Threads: a decoder belongs to one connection. */
#ifndef FLAME_SHIM_HPACK_H
#define FLAME_SHIM_HPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FL_HPACK_TABLE_SIZE 4096 /* SETTINGS_HEADER_TABLE_SIZE: the default, never changed */

typedef struct fl_hpack_entry fl_hpack_entry;

typedef struct fl_hpack {
    fl_hpack_entry *v; /* newest first */
    size_t n, cap;
    size_t size;       /* RFC 7541 4.1: names + values + 32 each */
    size_t max;        /* the encoder's current size (<= FL_HPACK_TABLE_SIZE) */
} fl_hpack;

/* One decoded field; name and value are not NUL-terminated. */
typedef void (*fl_hpack_fn)(void *arg, const char *name, size_t nlen, const char *value,
                            size_t vlen);

void fl_hpack_init(fl_hpack *h);
/* Decodes one complete header block, calling fn for each field in order.
 * False on malformed input (the connection must then be dropped: its table
 * is out of step). */
bool fl_hpack_decode(fl_hpack *h, const uint8_t *p, size_t len, fl_hpack_fn fn, void *arg);
void fl_hpack_clear(fl_hpack *h);

#endif
