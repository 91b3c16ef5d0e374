/* FlatBuffers reading and building (see fb.h). */
#include <stdlib.h>
#include <string.h>

#include "cache/fb.h"
#include "util/util.h"

uint64_t fbr_read(const fb_reader *r, size_t pos, size_t size)
{
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++)
        v |= (uint64_t)r->p[pos + i] << (8 * i);
    return v;
}

static bool in(fb_reader *r, size_t pos, size_t size)
{
    if (pos > r->n || size > r->n - pos) {
        r->bad = true;
        return false;
    }
    return true;
}

size_t fbr_deref(fb_reader *r, size_t pos)
{
    if (!in(r, pos, 4))
        return 0;
    uint64_t off = fbr_read(r, pos, 4);
    if (off == 0 || !in(r, pos + off, 4)) {
        r->bad = true;
        return 0;
    }
    return pos + (size_t)off;
}

size_t fbr_root(fb_reader *r)
{
    return fbr_deref(r, 0);
}

size_t fbr_field(fb_reader *r, size_t t, int id, size_t size)
{
    if (!t || !in(r, t, 4))
        return 0;
    int64_t so = (int32_t)fbr_read(r, t, 4);
    int64_t vt = (int64_t)t - so;
    /* a vtable outside the buffer, or too short, is malformed, not "no
     * field": the same bytes elsewhere in a larger buffer (a rewritten
     * schema keeps the old one inside) must read the same */
    if (vt < 0 || !in(r, (size_t)vt, 4)) {
        r->bad = true;
        return 0;
    }
    size_t vsize = (size_t)fbr_read(r, (size_t)vt, 2), tsize = (size_t)fbr_read(r, (size_t)vt + 2, 2);
    if (vsize < 4 || tsize < 4 || !in(r, (size_t)vt, vsize) || !in(r, t, tsize)) {
        r->bad = true;
        return 0;
    }
    size_t slot = 4 + 2 * (size_t)id;
    if (slot + 2 > vsize)
        return 0;
    size_t off = (size_t)fbr_read(r, (size_t)vt + slot, 2);
    if (off == 0)
        return 0;
    if (off + size > tsize) {
        r->bad = true;
        return 0;
    }
    return t + off;
}

uint64_t fbr_uint(fb_reader *r, size_t t, int id, size_t size, uint64_t def)
{
    size_t pos = fbr_field(r, t, id, size);
    return pos ? fbr_read(r, pos, size) : def;
}

size_t fbr_ref(fb_reader *r, size_t t, int id)
{
    size_t pos = fbr_field(r, t, id, 4);
    return pos ? fbr_deref(r, pos) : 0;
}

size_t fbr_vector(fb_reader *r, size_t t, int id, size_t elem_size, uint32_t *len)
{
    *len = 0;
    size_t v = fbr_ref(r, t, id);
    if (!v)
        return 0;
    uint64_t n = fbr_read(r, v, 4);
    if (!in(r, v + 4, 0) || (elem_size && n > (r->n - v - 4) / elem_size)) {
        r->bad = true;
        return 0;
    }
    *len = (uint32_t)n;
    return n ? v + 4 : 0;
}

const char *fbr_string(fb_reader *r, size_t t, int id, uint32_t *len)
{
    size_t s = fbr_vector(r, t, id, 1, len);
    return s ? (const char *)r->p + s : (*len = 0, NULL);
}

/* ---- builder ----------------------------------------------------------- */

static void grow(fb_builder *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    b->b = fl_realloc(b->b, cap);
    b->cap = cap;
}

void fbb_bytes(fb_builder *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    grow(b, n);
    if (p)
        memcpy(b->b + b->len, p, n);
    else
        memset(b->b + b->len, 0, n);
    b->len += n;
}

static void put(fb_builder *b, size_t pos, uint64_t v, size_t size)
{
    for (size_t i = 0; i < size; i++)
        b->b[pos + i] = (uint8_t)(v >> (8 * i));
}

void fbb_init(fb_builder *b)
{
    *b = (fb_builder){ NULL, 0, 0 };
    fbb_bytes(b, NULL, 4);
}

void fbb_free(fb_builder *b)
{
    free(b->b);
    *b = (fb_builder){ NULL, 0, 0 };
}

void fbb_pad(fb_builder *b, size_t align)
{
    while (b->len % align)
        fbb_bytes(b, NULL, 1);
}

size_t fbb_table(fb_builder *b, const fbb_slot *slots, size_t n, size_t *pos)
{
    /* layout: soffset, then the slots by size, largest first (aligned) */
    int max_id = -1;
    bool has8 = false;
    size_t tsize = 4;
    for (size_t i = 0; i < n; i++) {
        max_id = slots[i].id > max_id ? slots[i].id : max_id;
        has8 |= slots[i].size == 8;
        tsize += (size_t)slots[i].size;
    }
    size_t vsize = 4 + 2 * (size_t)(max_id + 1);
    fbb_pad(b, 2);
    size_t vt = b->len;
    fbb_bytes(b, NULL, vsize);
    /* table start: 4-aligned, and start+4 8-aligned when a slot is 8 bytes */
    while (b->len % 4 || (has8 && (b->len + 4) % 8))
        fbb_bytes(b, NULL, 1);
    size_t t = b->len;
    size_t at = 4;
    fbb_bytes(b, NULL, tsize);
    for (int size = 8; size >= 1; size /= 2) {
        for (size_t i = 0; i < n; i++) {
            if (slots[i].size != size)
                continue;
            put(b, vt + 4 + 2 * (size_t)slots[i].id, at, 2);
            if (!slots[i].ref)
                put(b, t + at, slots[i].val, (size_t)size);
            if (pos)
                pos[i] = t + at;
            at += (size_t)size;
        }
    }
    put(b, vt, vsize, 2);
    put(b, vt + 2, tsize, 2);
    put(b, t, t - vt, 4);
    return t;
}

void fbb_patch(fb_builder *b, size_t slot, size_t target)
{
    put(b, slot, target - slot, 4);
}

size_t fbb_string(fb_builder *b, const char *s, size_t n)
{
    fbb_pad(b, 4);
    size_t pos = b->len;
    uint8_t len[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
    fbb_bytes(b, len, 4);
    fbb_bytes(b, s, n);
    fbb_bytes(b, NULL, 1);
    return pos;
}

size_t fbb_vector(fb_builder *b, uint32_t count, size_t elem_size, size_t align,
                  const void *data)
{
    while (b->len % 4 || (b->len + 4) % (align < 4 ? 4 : align))
        fbb_bytes(b, NULL, 1);
    size_t pos = b->len;
    uint8_t len[4] = { (uint8_t)count, (uint8_t)(count >> 8), (uint8_t)(count >> 16),
                       (uint8_t)(count >> 24) };
    fbb_bytes(b, len, 4);
    fbb_bytes(b, data, count * elem_size);
    return pos;
}
