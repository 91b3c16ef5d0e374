/* hpack.h: an HPACK decoder (RFC 7541) for our HTTP/2 client (h2.h) and
 * server (service/serve.h): header blocks into name/value pairs, with the
 * dynamic table a connection keeps; and the two encoding primitives both
 * write their (never indexed) fields with. Threads: a decoder belongs to one
 * connection. */
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

/* 5.1: writes v as an integer with a prefix-bit prefix, flags in the first
 * byte's other bits; returns the end (at most 2 + 10 bytes). */
uint8_t *fl_hpack_put_int(uint8_t *p, int prefix, uint8_t flags, size_t v);
/* 5.2: writes s as a string literal (no Huffman); returns the end (at most
 * 11 + strlen(s) bytes). */
uint8_t *fl_hpack_put_str(uint8_t *p, const char *s);

#endif
