/* A minimal FlatBuffers reader and front-to-back builder, for the few Arrow
 * IPC tables the object cache reads and writes (Message, Schema, Field,
 * KeyValue, RecordBatch, Footer). No Debian package gives C FlatBuffers
 * (flatcc is not in Debian 12), and the object cache needs a dozen tables.
 *
 * Reader: every access is bounds-checked; a bad offset sets r->bad and
 * yields "absent" (0), so callers check r->bad once at the end. Position 0
 * (the root offset) is never a table, vector or string, so 0 means absent.
 *
 * Builder: writes tables before their children (forward offsets only, as
 * FlatBuffers requires): a table's offset slots are patched once the child
 * is written (fbb_patch). Each vtable sits right before its table. */
#ifndef FL_CACHE_FB_H
#define FL_CACHE_FB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fb_reader {
    const uint8_t *p;
    size_t n;
    bool bad;
} fb_reader;

size_t fbr_root(fb_reader *r);
/* Position of field id of the table at t, 0 when absent; size: its bytes. */
size_t fbr_field(fb_reader *r, size_t t, int id, size_t size);
uint64_t fbr_uint(fb_reader *r, size_t t, int id, size_t size, uint64_t def);
/* The table/vector/string an offset field points at (0: absent). */
size_t fbr_ref(fb_reader *r, size_t t, int id);
/* Follows the uoffset stored at pos. */
size_t fbr_deref(fb_reader *r, size_t pos);
/* The vector of field id: *len elements of elem_size bytes starting at the
 * returned position (0: absent or empty). */
size_t fbr_vector(fb_reader *r, size_t t, int id, size_t elem_size, uint32_t *len);
/* A string field: pointer into the buffer (not NUL-checked) and length. */
const char *fbr_string(fb_reader *r, size_t t, int id, uint32_t *len);
uint64_t fbr_read(const fb_reader *r, size_t pos, size_t size); /* little-endian */

typedef struct fb_builder {
    uint8_t *b;
    size_t len, cap;
} fb_builder;

typedef struct fbb_slot {
    int id;
    int size;     /* 1, 2, 4 or 8; offsets: 4 with ref set */
    uint64_t val; /* scalars */
    bool ref;     /* an offset to patch later (fbb_patch) */
} fbb_slot;

/* Starts a buffer with its root offset at 0 (patch it: fbb_patch(b, 0, t)). */
void fbb_init(fb_builder *b);
void fbb_free(fb_builder *b);
void fbb_pad(fb_builder *b, size_t align);
void fbb_bytes(fb_builder *b, const void *p, size_t n);
/* Writes a table of n slots (ids may be in any order, each once); pos[i]
 * gets the position of slot i's value (for fbb_patch). Returns the table. */
size_t fbb_table(fb_builder *b, const fbb_slot *slots, size_t n, size_t *pos);
/* Stores at slot the uoffset to target (target > slot). */
void fbb_patch(fb_builder *b, size_t slot, size_t target);
size_t fbb_string(fb_builder *b, const char *s, size_t n);
/* A vector of count elements of elem_size bytes (data may be NULL: zeros),
 * its elements aligned to align. Returns the vector (its length field);
 * element i is at pos + 4 + i * elem_size. */
size_t fbb_vector(fb_builder *b, uint32_t count, size_t elem_size, size_t align,
                  const void *data);

#endif
