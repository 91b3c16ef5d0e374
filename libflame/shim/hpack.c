/* HPACK (hpack.h): the decoder (integers, Huffman-coded strings, the
 * static and dynamic tables) and the encoder's primitives. Threads: see
 * hpack.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hpack.h"
#include "util/util.h"

/* HPACK's constants (RFC 7541, appendices A and B). */
static const struct { const char *name, *value; } hp_static[61] = {
    { ":authority", "" }, { ":method", "GET" },
    { ":method", "POST" }, { ":path", "/" },
    { ":path", "/index.html" }, { ":scheme", "http" },
    { ":scheme", "https" }, { ":status", "200" },
    { ":status", "204" }, { ":status", "206" },
    { ":status", "304" }, { ":status", "400" },
    { ":status", "404" }, { ":status", "500" },
    { "accept-charset", "" }, { "accept-encoding", "gzip, deflate" },
    { "accept-language", "" }, { "accept-ranges", "" },
    { "accept", "" }, { "access-control-allow-origin", "" },
    { "age", "" }, { "allow", "" },
    { "authorization", "" }, { "cache-control", "" },
    { "content-disposition", "" }, { "content-encoding", "" },
    { "content-language", "" }, { "content-length", "" },
    { "content-location", "" }, { "content-range", "" },
    { "content-type", "" }, { "cookie", "" },
    { "date", "" }, { "etag", "" },
    { "expect", "" }, { "expires", "" },
    { "from", "" }, { "host", "" },
    { "if-match", "" }, { "if-modified-since", "" },
    { "if-none-match", "" }, { "if-range", "" },
    { "if-unmodified-since", "" }, { "last-modified", "" },
    { "link", "" }, { "location", "" },
    { "max-forwards", "" }, { "proxy-authenticate", "" },
    { "proxy-authorization", "" }, { "range", "" },
    { "referer", "" }, { "refresh", "" },
    { "retry-after", "" }, { "server", "" },
    { "set-cookie", "" }, { "strict-transport-security", "" },
    { "transfer-encoding", "" }, { "user-agent", "" },
    { "vary", "" }, { "via", "" },
    { "www-authenticate", "" },
};

/* The Huffman code of each symbol (256: EOS): code, bits. */
static const struct { uint32_t code; uint8_t bits; } hp_huff[257] = {
    { 0x1ff8, 13 }, { 0x7fffd8, 23 }, { 0xfffffe2, 28 }, { 0xfffffe3, 28 },
    { 0xfffffe4, 28 }, { 0xfffffe5, 28 }, { 0xfffffe6, 28 }, { 0xfffffe7, 28 },
    { 0xfffffe8, 28 }, { 0xffffea, 24 }, { 0x3ffffffc, 30 }, { 0xfffffe9, 28 },
    { 0xfffffea, 28 }, { 0x3ffffffd, 30 }, { 0xfffffeb, 28 }, { 0xfffffec, 28 },
    { 0xfffffed, 28 }, { 0xfffffee, 28 }, { 0xfffffef, 28 }, { 0xffffff0, 28 },
    { 0xffffff1, 28 }, { 0xffffff2, 28 }, { 0x3ffffffe, 30 }, { 0xffffff3, 28 },
    { 0xffffff4, 28 }, { 0xffffff5, 28 }, { 0xffffff6, 28 }, { 0xffffff7, 28 },
    { 0xffffff8, 28 }, { 0xffffff9, 28 }, { 0xffffffa, 28 }, { 0xffffffb, 28 },
    { 0x14, 6 }, { 0x3f8, 10 }, { 0x3f9, 10 }, { 0xffa, 12 },
    { 0x1ff9, 13 }, { 0x15, 6 }, { 0xf8, 8 }, { 0x7fa, 11 },
    { 0x3fa, 10 }, { 0x3fb, 10 }, { 0xf9, 8 }, { 0x7fb, 11 },
    { 0xfa, 8 }, { 0x16, 6 }, { 0x17, 6 }, { 0x18, 6 },
    { 0x0, 5 }, { 0x1, 5 }, { 0x2, 5 }, { 0x19, 6 },
    { 0x1a, 6 }, { 0x1b, 6 }, { 0x1c, 6 }, { 0x1d, 6 },
    { 0x1e, 6 }, { 0x1f, 6 }, { 0x5c, 7 }, { 0xfb, 8 },
    { 0x7ffc, 15 }, { 0x20, 6 }, { 0xffb, 12 }, { 0x3fc, 10 },
    { 0x1ffa, 13 }, { 0x21, 6 }, { 0x5d, 7 }, { 0x5e, 7 },
    { 0x5f, 7 }, { 0x60, 7 }, { 0x61, 7 }, { 0x62, 7 },
    { 0x63, 7 }, { 0x64, 7 }, { 0x65, 7 }, { 0x66, 7 },
    { 0x67, 7 }, { 0x68, 7 }, { 0x69, 7 }, { 0x6a, 7 },
    { 0x6b, 7 }, { 0x6c, 7 }, { 0x6d, 7 }, { 0x6e, 7 },
    { 0x6f, 7 }, { 0x70, 7 }, { 0x71, 7 }, { 0x72, 7 },
    { 0xfc, 8 }, { 0x73, 7 }, { 0xfd, 8 }, { 0x1ffb, 13 },
    { 0x7fff0, 19 }, { 0x1ffc, 13 }, { 0x3ffc, 14 }, { 0x22, 6 },
    { 0x7ffd, 15 }, { 0x3, 5 }, { 0x23, 6 }, { 0x4, 5 },
    { 0x24, 6 }, { 0x5, 5 }, { 0x25, 6 }, { 0x26, 6 },
    { 0x27, 6 }, { 0x6, 5 }, { 0x74, 7 }, { 0x75, 7 },
    { 0x28, 6 }, { 0x29, 6 }, { 0x2a, 6 }, { 0x7, 5 },
    { 0x2b, 6 }, { 0x76, 7 }, { 0x2c, 6 }, { 0x8, 5 },
    { 0x9, 5 }, { 0x2d, 6 }, { 0x77, 7 }, { 0x78, 7 },
    { 0x79, 7 }, { 0x7a, 7 }, { 0x7b, 7 }, { 0x7ffe, 15 },
    { 0x7fc, 11 }, { 0x3ffd, 14 }, { 0x1ffd, 13 }, { 0xffffffc, 28 },
    { 0xfffe6, 20 }, { 0x3fffd2, 22 }, { 0xfffe7, 20 }, { 0xfffe8, 20 },
    { 0x3fffd3, 22 }, { 0x3fffd4, 22 }, { 0x3fffd5, 22 }, { 0x7fffd9, 23 },
    { 0x3fffd6, 22 }, { 0x7fffda, 23 }, { 0x7fffdb, 23 }, { 0x7fffdc, 23 },
    { 0x7fffdd, 23 }, { 0x7fffde, 23 }, { 0xffffeb, 24 }, { 0x7fffdf, 23 },
    { 0xffffec, 24 }, { 0xffffed, 24 }, { 0x3fffd7, 22 }, { 0x7fffe0, 23 },
    { 0xffffee, 24 }, { 0x7fffe1, 23 }, { 0x7fffe2, 23 }, { 0x7fffe3, 23 },
    { 0x7fffe4, 23 }, { 0x1fffdc, 21 }, { 0x3fffd8, 22 }, { 0x7fffe5, 23 },
    { 0x3fffd9, 22 }, { 0x7fffe6, 23 }, { 0x7fffe7, 23 }, { 0xffffef, 24 },
    { 0x3fffda, 22 }, { 0x1fffdd, 21 }, { 0xfffe9, 20 }, { 0x3fffdb, 22 },
    { 0x3fffdc, 22 }, { 0x7fffe8, 23 }, { 0x7fffe9, 23 }, { 0x1fffde, 21 },
    { 0x7fffea, 23 }, { 0x3fffdd, 22 }, { 0x3fffde, 22 }, { 0xfffff0, 24 },
    { 0x1fffdf, 21 }, { 0x3fffdf, 22 }, { 0x7fffeb, 23 }, { 0x7fffec, 23 },
    { 0x1fffe0, 21 }, { 0x1fffe1, 21 }, { 0x3fffe0, 22 }, { 0x1fffe2, 21 },
    { 0x7fffed, 23 }, { 0x3fffe1, 22 }, { 0x7fffee, 23 }, { 0x7fffef, 23 },
    { 0xfffea, 20 }, { 0x3fffe2, 22 }, { 0x3fffe3, 22 }, { 0x3fffe4, 22 },
    { 0x7ffff0, 23 }, { 0x3fffe5, 22 }, { 0x3fffe6, 22 }, { 0x7ffff1, 23 },
    { 0x3ffffe0, 26 }, { 0x3ffffe1, 26 }, { 0xfffeb, 20 }, { 0x7fff1, 19 },
    { 0x3fffe7, 22 }, { 0x7ffff2, 23 }, { 0x3fffe8, 22 }, { 0x1ffffec, 25 },
    { 0x3ffffe2, 26 }, { 0x3ffffe3, 26 }, { 0x3ffffe4, 26 }, { 0x7ffffde, 27 },
    { 0x7ffffdf, 27 }, { 0x3ffffe5, 26 }, { 0xfffff1, 24 }, { 0x1ffffed, 25 },
    { 0x7fff2, 19 }, { 0x1fffe3, 21 }, { 0x3ffffe6, 26 }, { 0x7ffffe0, 27 },
    { 0x7ffffe1, 27 }, { 0x3ffffe7, 26 }, { 0x7ffffe2, 27 }, { 0xfffff2, 24 },
    { 0x1fffe4, 21 }, { 0x1fffe5, 21 }, { 0x3ffffe8, 26 }, { 0x3ffffe9, 26 },
    { 0xffffffd, 28 }, { 0x7ffffe3, 27 }, { 0x7ffffe4, 27 }, { 0x7ffffe5, 27 },
    { 0xfffec, 20 }, { 0xfffff3, 24 }, { 0xfffed, 20 }, { 0x1fffe6, 21 },
    { 0x3fffe9, 22 }, { 0x1fffe7, 21 }, { 0x1fffe8, 21 }, { 0x7ffff3, 23 },
    { 0x3fffea, 22 }, { 0x3fffeb, 22 }, { 0x1ffffee, 25 }, { 0x1ffffef, 25 },
    { 0xfffff4, 24 }, { 0xfffff5, 24 }, { 0x3ffffea, 26 }, { 0x7ffff4, 23 },
    { 0x3ffffeb, 26 }, { 0x7ffffe6, 27 }, { 0x3ffffec, 26 }, { 0x3ffffed, 26 },
    { 0x7ffffe7, 27 }, { 0x7ffffe8, 27 }, { 0x7ffffe9, 27 }, { 0x7ffffea, 27 },
    { 0x7ffffeb, 27 }, { 0xffffffe, 28 }, { 0x7ffffec, 27 }, { 0x7ffffed, 27 },
    { 0x7ffffee, 27 }, { 0x7ffffef, 27 }, { 0x7fffff0, 27 }, { 0x3ffffee, 26 },
    { 0x3fffffff, 30 },
};

struct fl_hpack_entry {
    char *name, *value;
    size_t nlen, vlen;
};

void fl_hpack_init(fl_hpack *h)
{
    memset(h, 0, sizeof *h);
    h->max = FL_HPACK_TABLE_SIZE;
}

void fl_hpack_clear(fl_hpack *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    fl_hpack_init(h);
}

static void evict_to(fl_hpack *h, size_t max)
{
    while (h->n && h->size > max) {
        fl_hpack_entry *e = &h->v[--h->n];
        h->size -= e->nlen + e->vlen + 32;
        free(e->name);
        free(e->value);
    }
}

static void table_add(fl_hpack *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    size_t sz = nlen + vlen + 32;
    if (sz > h->max) { /* 4.4: an entry larger than the table empties it */
        evict_to(h, 0);
        return;
    }
    evict_to(h, h->max - sz);
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = fl_realloc(h->v, h->cap * sizeof *h->v);
    }
    memmove(h->v + 1, h->v, h->n * sizeof *h->v);
    h->v[0] = (fl_hpack_entry){ fl_memdup(name, nlen + 1), fl_memdup(value, vlen + 1), nlen, vlen };
    h->v[0].name[nlen] = 0;
    h->v[0].value[vlen] = 0;
    h->n++;
    h->size += sz;
}

/* Entry i (1-based: static, then dynamic) into name/value. */
static bool lookup(const fl_hpack *h, uint64_t i, const char **name, size_t *nlen,
                   const char **value, size_t *vlen)
{
    if (i >= 1 && i <= 61) {
        *name = hp_static[i - 1].name;
        *value = hp_static[i - 1].value;
        *nlen = strlen(*name);
        *vlen = strlen(*value);
        return true;
    }
    if (i < 62 || i - 62 >= h->n)
        return false;
    const fl_hpack_entry *e = &h->v[i - 62];
    *name = e->name;
    *nlen = e->nlen;
    *value = e->value;
    *vlen = e->vlen;
    return true;
}

/* 5.1: an integer with an N-bit prefix. */
static bool get_int(const uint8_t **p, const uint8_t *end, int prefix, uint64_t *out)
{
    if (*p >= end)
        return false;
    uint64_t mask = (1u << prefix) - 1, v = **p & mask;
    (*p)++;
    if (v < mask) {
        *out = v;
        return true;
    }
    for (int shift = 0; shift < 35; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        v += (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false; /* more than 2^35: nothing we accept is that long */
}

/* Huffman symbols sorted by code length, for decoding bit by bit. */
static uint16_t by_len[257];
static uint16_t len_start[32], len_count[32];
static pthread_once_t huff_once = PTHREAD_ONCE_INIT;

static void huff_init(void)
{
    size_t k = 0;
    for (int bits = 5; bits <= 30; bits++) {
        len_start[bits] = (uint16_t)k;
        for (int s = 0; s < 257; s++)
            if (hp_huff[s].bits == bits)
                by_len[k++] = (uint16_t)s;
        len_count[bits] = (uint16_t)(k - len_start[bits]);
    }
}

static bool huff_decode(const uint8_t *p, size_t len, char *out, size_t *olen)
{
    pthread_once(&huff_once, huff_init);
    uint32_t code = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        for (int b = 7; b >= 0; b--) {
            code = code << 1 | ((p[i] >> b) & 1);
            bits++;
            if (bits > 30)
                return false;
            if (bits < 5)
                continue;
            for (uint16_t j = 0; j < len_count[bits]; j++) {
                uint16_t s = by_len[len_start[bits] + j];
                if (hp_huff[s].code != code)
                    continue;
                if (s == 256) /* 5.2: EOS in a string is an error */
                    return false;
                out[n++] = (char)s;
                code = 0;
                bits = 0;
                break;
            }
        }
    /* what is left is padding: fewer than 8 bits, all ones */
    if (bits >= 8 || code != (1u << bits) - 1)
        return false;
    *olen = n;
    return true;
}

/* 5.2: a string literal, into *s (malloc'ed, NUL-terminated). */
static bool get_str(const uint8_t **p, const uint8_t *end, char **s, size_t *slen)
{
    if (*p >= end)
        return false;
    bool huff = **p & 0x80;
    uint64_t len;
    if (!get_int(p, end, 7, &len) || len > (uint64_t)(end - *p))
        return false;
    /* Huffman codes are at least 5 bits: at most 8/5 symbols per byte */
    char *buf = fl_malloc(huff ? len * 8 / 5 + 1 : len + 1);
    size_t n = len;
    if (huff) {
        if (!huff_decode(*p, len, buf, &n)) {
            free(buf);
            return false;
        }
    } else {
        memcpy(buf, *p, len);
    }
    buf[n] = 0;
    *p += len;
    *s = buf;
    *slen = n;
    return true;
}

bool fl_hpack_decode(fl_hpack *h, const uint8_t *p, size_t len, fl_hpack_fn fn, void *arg)
{
    const uint8_t *end = p + len;
    bool fields = false; /* 4.2: size updates only at the start of a block */
    while (p < end) {
        uint8_t b = *p;
        uint64_t idx;
        const char *name, *value;
        size_t nlen, vlen;
        if (b & 0x80) { /* 6.1: indexed */
            if (!get_int(&p, end, 7, &idx) || !lookup(h, idx, &name, &nlen, &value, &vlen))
                return false;
            fn(arg, name, nlen, value, vlen);
            fields = true;
            continue;
        }
        if ((b & 0xe0) == 0x20) { /* 6.3: dynamic table size update */
            if (fields || !get_int(&p, end, 5, &idx) || idx > FL_HPACK_TABLE_SIZE)
                return false;
            h->max = (size_t)idx;
            evict_to(h, h->max);
            continue;
        }
        /* 6.2: literals, with incremental indexing (6-bit prefix), without
         * or never indexed (4-bit) */
        bool add = (b & 0xc0) == 0x40;
        if (!get_int(&p, end, add ? 6 : 4, &idx))
            return false;
        char *nbuf = NULL, *vbuf = NULL;
        if (idx) {
            const char *iv;
            size_t ivlen;
            if (!lookup(h, idx, &name, &nlen, &iv, &ivlen))
                return false;
            nbuf = fl_memdup(name, nlen + 1); /* the table may evict it below */
            nbuf[nlen] = 0;
        } else if (!get_str(&p, end, &nbuf, &nlen)) {
            return false;
        }
        if (!get_str(&p, end, &vbuf, &vlen)) {
            free(nbuf);
            return false;
        }
        fn(arg, nbuf, nlen, vbuf, vlen);
        if (add)
            table_add(h, nbuf, nlen, vbuf, vlen);
        free(nbuf);
        free(vbuf);
        fields = true;
    }
    return true;
}

uint8_t *fl_hpack_put_int(uint8_t *p, int prefix, uint8_t flags, size_t v)
{
    size_t mask = ((size_t)1 << prefix) - 1;
    if (v < mask) {
        *p++ = (uint8_t)(flags | v);
        return p;
    }
    *p++ = (uint8_t)(flags | mask);
    v -= mask;
    while (v >= 128) {
        *p++ = (uint8_t)(v % 128 + 128);
        v /= 128;
    }
    *p++ = (uint8_t)v;
    return p;
}

uint8_t *fl_hpack_put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p = fl_hpack_put_int(p, 7, 0, n);
    memcpy(p, s, n);
    return p + n;
}
