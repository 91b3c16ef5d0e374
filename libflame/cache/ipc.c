/* Arrow IPC messages and files for the object cache (see ipc.h). Table and
 * field ids are those of Arrow's format/Message.fbs, Schema.fbs, File.fbs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cache/ipc.h"
#include "util/util.h"

/* Message: version, header_type, header, bodyLength, custom_metadata */
enum { MSG_VERSION, MSG_HEADER_TYPE, MSG_HEADER, MSG_BODY_LENGTH, MSG_METADATA };
/* Schema: endianness, fields, custom_metadata, features */
enum { SCH_ENDIANNESS, SCH_FIELDS, SCH_METADATA, SCH_FEATURES };
/* Field: name, nullable, type_type, type, dictionary, children, custom_metadata */
enum { FLD_NAME, FLD_NULLABLE, FLD_TYPE_TYPE, FLD_TYPE, FLD_DICTIONARY, FLD_CHILDREN };
/* RecordBatch: length, nodes, buffers, compression */
enum { RB_LENGTH, RB_NODES, RB_BUFFERS, RB_COMPRESSION };
enum { TYPE_INT = 2, TYPE_BINARY = 4, TYPE_UTF8 = 5 };
enum { METADATA_V5 = 4, CODEC_ZSTD = 1 };

#define FORMAT_KEY "flame.cache.format"
#define FORMAT_NATIVE "arrow-table-v1"
#define VERSION_KEY "flame.cache.version"

void ipc_msg_clear(ipc_msg *m)
{
    free(m->header);
    free(m->body);
    *m = (ipc_msg){ NULL, 0, NULL, 0 };
}

static size_t header_of(fb_reader *r, int *type, int64_t *body_len)
{
    size_t msg = fbr_root(r);
    *type = (int)fbr_uint(r, msg, MSG_HEADER_TYPE, 1, 0);
    *body_len = (int64_t)fbr_uint(r, msg, MSG_BODY_LENGTH, 8, 0);
    size_t h = fbr_ref(r, msg, MSG_HEADER);
    return r->bad ? 0 : h;
}

int ipc_message_type(const uint8_t *header, size_t len, int64_t *body_len)
{
    fb_reader r = { header, len, false };
    int type;
    size_t h = header_of(&r, &type, body_len);
    /* Arrow pads a body to 8 bytes and counts the padding; the files we
     * write pad every body, so an unpadded one would not read back */
    return !h || *body_len < 0 || *body_len % 8 ? -1 : type;
}

/* What ipc_schema_with_version keeps of a Schema message s (in the Message
 * msg) by pointing at it: false when one of them is malformed or there are
 * no fields. ipc_schema_parse refuses a native schema this cannot rewrite,
 * since every reply of a native table rewrites its version. */
typedef struct schema_kept {
    size_t fields, features, msg_meta;
    int endianness;
} schema_kept;

static bool schema_keep(fb_reader *r, size_t msg, size_t s, schema_kept *k)
{
    k->fields = fbr_ref(r, s, SCH_FIELDS);
    k->features = fbr_ref(r, s, SCH_FEATURES);
    k->msg_meta = fbr_ref(r, msg, MSG_METADATA);
    k->endianness = (int)fbr_uint(r, s, SCH_ENDIANNESS, 2, 0);
    return !r->bad && k->fields;
}

static bool str_is(const char *s, uint32_t n, const char *want)
{
    return s && n == strlen(want) && memcmp(s, want, n) == 0;
}

flame_status ipc_schema_parse(const uint8_t *header, size_t len, ipc_schema_info *out)
{
    fb_reader r = { header, len, false };
    int type;
    int64_t body;
    size_t s = header_of(&r, &type, &body);
    *out = (ipc_schema_info){ false, 0, false, 0, -1, -1, -1 };
    if (!s || type != IPC_SCHEMA)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "expected an Arrow IPC Schema message");
    uint32_t n;
    size_t kv = fbr_vector(&r, s, SCH_METADATA, 4, &n);
    for (uint32_t i = 0; i < n; i++) {
        size_t t = fbr_deref(&r, kv + 4 * (size_t)i);
        uint32_t kl, vl;
        const char *k = fbr_string(&r, t, 0, &kl), *v = fbr_string(&r, t, 1, &vl);
        if (str_is(k, kl, FORMAT_KEY) && str_is(v, vl, FORMAT_NATIVE))
            out->native = true;
        if (str_is(k, kl, VERSION_KEY) && v && vl > 0 && vl < 20) {
            uint64_t x = 0;
            uint32_t j = 0;
            while (j < vl && v[j] >= '0' && v[j] <= '9')
                x = x * 10 + (uint64_t)(v[j++] - '0');
            out->version = j == vl ? x : 0;
        }
    }
    size_t fields = fbr_vector(&r, s, SCH_FIELDS, 4, &n);
    for (uint32_t i = 0; i < n && !out->native; i++) {
        size_t f = fbr_deref(&r, fields + 4 * (size_t)i);
        uint32_t nl;
        const char *name = fbr_string(&r, f, FLD_NAME, &nl);
        int tt = (int)fbr_uint(&r, f, FLD_TYPE_TYPE, 1, 0);
        size_t t = fbr_ref(&r, f, FLD_TYPE);
        if (str_is(name, nl, "version") && tt == TYPE_INT &&
            fbr_uint(&r, t, 0, 4, 0) == 64 && fbr_uint(&r, t, 1, 1, 0) == 0)
            out->version_col = (int)i;
        else if (str_is(name, nl, "data") && tt == TYPE_BINARY)
            out->data_col = (int)i;
        else if (str_is(name, nl, "kind") && tt == TYPE_UTF8)
            out->kind_col = (int)i;
    }
    out->n_cols = (int)n;
    schema_kept k;
    if (r.bad || (out->native && !schema_keep(&r, fbr_root(&r), s, &k)))
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "malformed Arrow IPC Schema message");
    out->opaque = !out->native && out->version_col >= 0 && out->data_col >= 0 &&
                  (n == 2 || (n == 3 && out->kind_col >= 0));
    if (!out->native && !out->opaque)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "unsupported schema: expected the columns "
                        "version UInt64 and data Binary, or a native table "
                        "(flame.cache.format=arrow-table-v1)");
    return FLAME_OK;
}

/* One buffer of a batch, decompressed when the batch is compressed (owned
 * copy in *tmp then). */
static flame_status buffer_at(const ipc_msg *m, fb_reader *r, size_t bufs, uint32_t nbufs,
                              uint32_t i, bool zstd, uint64_t max, const uint8_t **p,
                              size_t *len, uint8_t **tmp)
{
    *tmp = NULL;
    if (i >= nbufs)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: too few buffers");
    uint64_t off = fbr_read(r, bufs + 16 * (size_t)i, 8), n = fbr_read(r, bufs + 16 * (size_t)i + 8, 8);
    if (off > m->body_len || n > m->body_len - off)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: buffer %u outside the body", i);
    *p = m->body + off;
    *len = (size_t)n;
    if (!zstd || n == 0)
        return FLAME_OK;
    if (n < 8)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: compressed buffer %u too short", i);
    int64_t raw = (int64_t)fbr_read(&(fb_reader){ *p, 8, false }, 0, 8);
    if (raw == -1) {
        *p += 8;
        *len -= 8;
        return FLAME_OK;
    }
    if (raw < 0 || (uint64_t)raw > max)
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "record batch: buffer of %lld bytes is too "
                        "large", (long long)raw);
    *tmp = fl_malloc(raw ? (size_t)raw : 1);
    size_t got = ZSTD_decompress(*tmp, (size_t)raw, *p + 8, *len - 8);
    if (ZSTD_isError(got) || got != (size_t)raw) {
        free(*tmp);
        *tmp = NULL;
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: buffer %u: bad ZSTD data", i);
    }
    *p = *tmp;
    *len = (size_t)raw;
    return FLAME_OK;
}

/* A variable-size column's offsets and values (decompressed copies in t[]). */
typedef struct varcol {
    const uint8_t *offs, *vals;
    size_t offs_len, vals_len;
} varcol;

static flame_status varcol_at(const ipc_msg *m, fb_reader *r, size_t bufs, uint32_t nbufs,
                              uint32_t first, bool zstd, uint64_t max, uint64_t rows, varcol *c,
                              uint8_t **t)
{
    flame_status st;
    if ((st = buffer_at(m, r, bufs, nbufs, first + 1, zstd, 4 * rows + 64, &c->offs,
                        &c->offs_len, &t[0])) ||
        (st = buffer_at(m, r, bufs, nbufs, first + 2, zstd, max, &c->vals, &c->vals_len, &t[1])))
        return st;
    if (c->offs_len / 4 < rows + 1)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: offsets shorter than its rows");
    fb_reader o = { c->offs, c->offs_len, false };
    for (uint64_t i = 0; i < rows; i++) {
        uint64_t a = fbr_read(&o, 4 * i, 4), b = fbr_read(&o, 4 * (i + 1), 4);
        if (a > b || b > c->vals_len || b > INT32_MAX)
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: bad binary offsets");
    }
    return FLAME_OK;
}

flame_status ipc_rows(const ipc_schema_info *s, const ipc_msg *m, uint64_t max, ipc_row_fn row,
                      void *arg)
{
    fb_reader r = { m->header, m->header_len, false };
    int type;
    int64_t body_len;
    size_t rb = header_of(&r, &type, &body_len);
    if (!rb || type != IPC_RECORD_BATCH)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "expected an Arrow IPC RecordBatch message");
    uint64_t rows = fbr_uint(&r, rb, RB_LENGTH, 8, 0);
    uint32_t nnodes, nbufs;
    size_t nodes = fbr_vector(&r, rb, RB_NODES, 16, &nnodes);
    size_t bufs = fbr_vector(&r, rb, RB_BUFFERS, 16, &nbufs);
    size_t comp = fbr_ref(&r, rb, RB_COMPRESSION);
    bool zstd = false;
    if (comp) {
        if (fbr_uint(&r, comp, 0, 1, 0) != CODEC_ZSTD)
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: only ZSTD compression is "
                            "supported");
        zstd = true;
    }
    uint32_t want_bufs = s->n_cols == 3 ? 8 : 5;
    if (r.bad || nnodes != (uint32_t)s->n_cols || nbufs != want_bufs)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: expected the opaque columns "
                        "(version, data)");
    if (rows == 0)
        return FLAME_OK;
    if (rows > INT32_MAX || (!zstd && rows > m->body_len))
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: more rows than its body holds");
    for (uint32_t i = 0; i < nnodes; i++)
        if (fbr_read(&r, nodes + 16 * (size_t)i, 8) != rows ||
            fbr_read(&r, nodes + 16 * (size_t)i + 8, 8) != 0)
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: null or short columns");
    /* first buffer of each column: version has 2 buffers, kind and data 3 */
    uint32_t first[3], at = 0;
    for (int c = 0; c < s->n_cols; c++) {
        first[c] = at;
        at += c == s->version_col ? 2 : 3;
    }
    const uint8_t *vp;
    size_t vl;
    uint8_t *t[5] = { NULL };
    varcol data, kind = { NULL, NULL, 0, 0 };
    flame_status st;
    if ((st = buffer_at(m, &r, bufs, nbufs, first[s->version_col] + 1, zstd, 8 * rows + 64, &vp,
                        &vl, &t[0])) ||
        (st = varcol_at(m, &r, bufs, nbufs, first[s->data_col], zstd, max, rows, &data, &t[1])) ||
        (s->kind_col >= 0 &&
         (st = varcol_at(m, &r, bufs, nbufs, first[s->kind_col], zstd, 1u << 20, rows, &kind,
                         &t[3]))))
        goto out;
    if (vl / 8 < rows) {
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "record batch: versions shorter than its rows");
        goto out;
    }
    fb_reader v = { vp, vl, false }, d = { data.offs, data.offs_len, false },
              k = { kind.offs, kind.offs_len, false };
    for (uint64_t i = 0; i < rows && !st; i++) {
        size_t a = (size_t)fbr_read(&d, 4 * i, 4), b = (size_t)fbr_read(&d, 4 * (i + 1), 4);
        size_t ka = kind.offs ? (size_t)fbr_read(&k, 4 * i, 4) : 0;
        size_t kb = kind.offs ? (size_t)fbr_read(&k, 4 * (i + 1), 4) : 0;
        st = row(arg, fbr_read(&v, 8 * i, 8), kind.offs ? (const char *)kind.vals + ka : NULL,
                 kb - ka, data.vals + a, b - a);
    }
out:
    for (int i = 0; i < 5; i++)
        free(t[i]);
    return st;
}

struct concat {
    fb_builder *out;
    uint64_t max;
    bool *has;
    uint64_t *first;
};

static flame_status concat_row(void *arg, uint64_t version, const char *kind, size_t kind_len,
                               const uint8_t *data, size_t len)
{
    struct concat *c = arg;
    if (c->out->len + len > c->max)
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "object larger than the limit of %llu bytes",
                        (unsigned long long)c->max);
    fbb_bytes(c->out, data, len);
    if (!*c->has) {
        *c->first = version;
        *c->has = true;
    }
    return FLAME_OK;
}

flame_status ipc_opaque_rows(const ipc_schema_info *s, const ipc_msg *m, uint64_t max_total,
                             fb_builder *out, bool *has_version, uint64_t *first_version)
{
    struct concat c = { out, max_total, has_version, first_version };
    return ipc_rows(s, m, max_total, concat_row, &c);
}

/* ---- building ------------------------------------------------------------ */

/* Finishes a Message table (header already built at hdr) of header_type. */
static void message_start(fb_builder *b, int type, int64_t body_len, size_t *header_slot)
{
    fbb_init(b);
    fbb_slot s[] = {
        { MSG_VERSION, 2, METADATA_V5, false }, { MSG_HEADER_TYPE, 1, (uint64_t)type, false },
        { MSG_HEADER, 4, 0, true }, { MSG_BODY_LENGTH, 8, (uint64_t)body_len, false },
    };
    size_t pos[4];
    size_t t = fbb_table(b, s, 4, pos);
    fbb_patch(b, 0, t);
    *header_slot = pos[2];
}

static size_t empty_table(fb_builder *b)
{
    return fbb_table(b, NULL, 0, NULL);
}

static void field(fb_builder *b, size_t slot, const char *name, int type)
{
    fbb_slot s[] = {
        { FLD_NAME, 4, 0, true }, { FLD_NULLABLE, 1, 1, false }, { FLD_TYPE_TYPE, 1, (uint64_t)type, false },
        { FLD_TYPE, 4, 0, true }, { FLD_CHILDREN, 4, 0, true },
    };
    size_t pos[5];
    size_t t = fbb_table(b, s, 5, pos);
    fbb_patch(b, slot, t);
    fbb_patch(b, pos[0], fbb_string(b, name, strlen(name)));
    size_t ty;
    if (type == TYPE_INT) {
        fbb_slot is[] = { { 0, 4, 64, false }, { 1, 1, 0, false } };
        ty = fbb_table(b, is, 2, NULL);
    } else {
        ty = empty_table(b);
    }
    fbb_patch(b, pos[3], ty);
    fbb_patch(b, pos[4], fbb_vector(b, 0, 4, 4, NULL));
}

void ipc_opaque_schema(fb_builder *b, bool with_kind)
{
    size_t hs;
    message_start(b, IPC_SCHEMA, 0, &hs);
    fbb_slot s[] = { { SCH_ENDIANNESS, 2, 0, false }, { SCH_FIELDS, 4, 0, true } };
    size_t pos[2];
    size_t t = fbb_table(b, s, 2, pos);
    fbb_patch(b, hs, t);
    uint32_t n = with_kind ? 3 : 2;
    size_t v = fbb_vector(b, n, 4, 4, NULL);
    fbb_patch(b, pos[1], v);
    field(b, v + 4, "version", TYPE_INT);
    if (with_kind)
        field(b, v + 8, "kind", TYPE_UTF8);
    field(b, v + 4 + 4 * (n - 1), "data", TYPE_BINARY);
    fbb_pad(b, 8);
}

/* Appends one buffer to the body (8-aligned), compressed or not; records
 * its offset and length in bufs. */
static void body_buffer(fb_builder *body, uint64_t *buf, const void *p, size_t n, bool zstd)
{
    buf[0] = body->len;
    if (n && zstd) {
        size_t cap = ZSTD_compressBound(n);
        uint8_t *z = fl_malloc(8 + cap);
        int64_t raw = (int64_t)n;
        for (int i = 0; i < 8; i++)
            z[i] = (uint8_t)((uint64_t)raw >> (8 * i));
        size_t zn = ZSTD_compress(z + 8, cap, p, n, 1);
        if (ZSTD_isError(zn)) { /* cannot happen with a bound-sized output; store raw */
            memset(z, 0xff, 8);
            memcpy(z + 8, p, n);
            zn = n;
        }
        fbb_bytes(body, z, 8 + zn);
        free(z);
    } else {
        fbb_bytes(body, p, n);
    }
    buf[1] = body->len - buf[0];
    fbb_pad(body, 8);
}

void ipc_opaque_batch(ipc_msg *out, uint64_t version, const char *kind, const uint8_t *data,
                      size_t len, bool zstd)
{
    fb_builder body = { NULL, 0, 0 };
    uint64_t bufs[8][2];
    uint8_t v8[8], offs[8];
    int nb = 0;
    for (int i = 0; i < 8; i++)
        v8[i] = (uint8_t)(version >> (8 * i));
    body_buffer(&body, bufs[nb++], NULL, 0, zstd);
    body_buffer(&body, bufs[nb++], v8, 8, zstd);
    const struct { const void *p; size_t n; } cols[2] = { { kind, kind ? strlen(kind) : 0 },
                                                         { data, len } };
    for (int c = kind ? 0 : 1; c < 2; c++) {
        uint32_t n = (uint32_t)cols[c].n;
        memset(offs, 0, 4);
        for (int i = 0; i < 4; i++)
            offs[4 + i] = (uint8_t)(n >> (8 * i));
        body_buffer(&body, bufs[nb++], NULL, 0, zstd);
        body_buffer(&body, bufs[nb++], offs, 8, zstd);
        body_buffer(&body, bufs[nb++], cols[c].p, cols[c].n, zstd);
    }
    uint32_t ncols = kind ? 3 : 2;
    fb_builder b;
    size_t hs;
    message_start(&b, IPC_RECORD_BATCH, (int64_t)body.len, &hs);
    fbb_slot s[] = { { RB_LENGTH, 8, 1, false }, { RB_NODES, 4, 0, true },
                     { RB_BUFFERS, 4, 0, true }, { RB_COMPRESSION, 4, 0, true } };
    size_t pos[4];
    size_t t = fbb_table(&b, s, zstd ? 4 : 3, pos);
    fbb_patch(&b, hs, t);
    uint64_t nodes[3][2] = { { 1, 0 }, { 1, 0 }, { 1, 0 } };
    uint8_t le[16 * 8];
    for (uint32_t i = 0; i < ncols * 2; i++)
        for (int k = 0; k < 8; k++)
            le[8 * i + (uint32_t)k] = (uint8_t)(nodes[i / 2][i % 2] >> (8 * k));
    fbb_patch(&b, pos[1], fbb_vector(&b, ncols, 16, 8, le));
    for (int i = 0; i < nb * 2; i++)
        for (int k = 0; k < 8; k++)
            le[8 * i + k] = (uint8_t)(bufs[i / 2][i % 2] >> (8 * k));
    fbb_patch(&b, pos[2], fbb_vector(&b, (uint32_t)nb, 16, 8, le));
    if (zstd) {
        fbb_slot cs[] = { { 0, 1, CODEC_ZSTD, false }, { 1, 1, 0, false } };
        fbb_patch(&b, pos[3], fbb_table(&b, cs, 2, NULL));
    }
    fbb_pad(&b, 8);
    *out = (ipc_msg){ b.b, b.len, body.b, body.len };
}

uint8_t *ipc_schema_with_version(const uint8_t *header, size_t len, uint64_t version,
                                 size_t *out_len)
{
    fb_reader r = { header, len, false };
    int type;
    int64_t body;
    size_t msg = fbr_root(&r);
    size_t s = header_of(&r, &type, &body);
    if (!s || type != IPC_SCHEMA)
        return NULL;
    uint32_t nkv;
    size_t kv = fbr_vector(&r, s, SCH_METADATA, 4, &nkv);
    size_t *keep = fl_calloc(nkv + 1, sizeof *keep);
    uint32_t nkeep = 0;
    for (uint32_t i = 0; i < nkv; i++) {
        size_t t = fbr_deref(&r, kv + 4 * (size_t)i);
        uint32_t kl;
        const char *k = fbr_string(&r, t, 0, &kl);
        if (!str_is(k, kl, VERSION_KEY))
            keep[nkeep++] = t;
    }
    schema_kept k;
    if (!schema_keep(&r, msg, s, &k)) {
        free(keep);
        return NULL;
    }
    size_t fields = k.fields, features = k.features, msg_meta = k.msg_meta;
    int endianness = k.endianness;
    /* A new Message and Schema in front of the old buffer, pointing into it
     * (forward offsets) for everything but the metadata. */
    fb_builder b;
    size_t hs;
    fbb_init(&b);
    fbb_slot ms[] = { { MSG_VERSION, 2, fbr_uint(&r, msg, MSG_VERSION, 2, METADATA_V5), false },
                      { MSG_HEADER_TYPE, 1, IPC_SCHEMA, false }, { MSG_HEADER, 4, 0, true },
                      { MSG_BODY_LENGTH, 8, 0, false }, { MSG_METADATA, 4, 0, true } };
    size_t mpos[5];
    fbb_patch(&b, 0, fbb_table(&b, ms, msg_meta ? 5 : 4, mpos));
    hs = mpos[2];
    fbb_slot ss[] = { { SCH_ENDIANNESS, 2, (uint64_t)endianness, false },
                      { SCH_FIELDS, 4, 0, true }, { SCH_METADATA, 4, 0, true },
                      { SCH_FEATURES, 4, 0, true } };
    size_t spos[4];
    size_t st = fbb_table(&b, ss, features ? 4 : 3, spos);
    fbb_patch(&b, hs, st);
    size_t vec = fbb_vector(&b, nkeep + 1, 4, 4, NULL);
    fbb_patch(&b, spos[2], vec);
    fbb_slot ks[] = { { 0, 4, 0, true }, { 1, 4, 0, true } };
    size_t kpos[2];
    size_t kt = fbb_table(&b, ks, 2, kpos);
    fbb_patch(&b, vec + 4 + 4 * (size_t)nkeep, kt);
    char v[24];
    int vn = snprintf(v, sizeof v, "%llu", (unsigned long long)version);
    fbb_patch(&b, kpos[0], fbb_string(&b, VERSION_KEY, strlen(VERSION_KEY)));
    fbb_patch(&b, kpos[1], fbb_string(&b, v, (size_t)vn));
    fbb_pad(&b, 8);
    size_t shift = b.len;
    fbb_patch(&b, spos[1], shift + fields);
    if (features)
        fbb_patch(&b, spos[3], shift + features);
    if (msg_meta)
        fbb_patch(&b, mpos[4], shift + msg_meta);
    for (uint32_t i = 0; i < nkeep; i++)
        fbb_patch(&b, vec + 4 + 4 * (size_t)i, shift + keep[i]);
    free(keep);
    fbb_bytes(&b, header, len);
    fbb_pad(&b, 8);
    *out_len = b.len;
    return b.b;
}

static void put_u32(fb_builder *b, uint32_t v)
{
    uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    fbb_bytes(b, x, 4);
}

void ipc_encapsulate(fb_builder *out, const uint8_t *header, size_t len)
{
    size_t padded = (len + 7) & ~(size_t)7;
    put_u32(out, 0xffffffffu);
    put_u32(out, (uint32_t)padded);
    fbb_bytes(out, header, len);
    fbb_bytes(out, NULL, padded - len);
}

/* Footer: version, schema, dictionaries, recordBatches */
void ipc_file_write(fb_builder *out, const uint8_t *schema, size_t schema_len,
                    const ipc_msg *msgs, size_t n)
{
    static const uint8_t magic[8] = { 'A', 'R', 'R', 'O', 'W', '1', 0, 0 };
    /* Blocks: [0] dictionaries, [1] record batches (24-byte structs) */
    uint8_t (*blocks[2])[24] = { fl_calloc(n + 1, 24), fl_calloc(n + 1, 24) };
    size_t nb[2] = { 0, 0 };
    fbb_bytes(out, magic, 8);
    ipc_encapsulate(out, schema, schema_len);
    for (size_t i = 0; i < n; i++) {
        size_t at = out->len;
        ipc_encapsulate(out, msgs[i].header, msgs[i].header_len);
        uint64_t meta = out->len - at;
        fbb_bytes(out, msgs[i].body, msgs[i].body_len);
        fbb_pad(out, 8);
        int64_t bl;
        int type = ipc_message_type(msgs[i].header, msgs[i].header_len, &bl);
        if (type != IPC_RECORD_BATCH && type != IPC_DICTIONARY_BATCH)
            continue;
        int k = type == IPC_RECORD_BATCH;
        uint8_t *blk = blocks[k][nb[k]++];
        for (int j = 0; j < 8; j++) {
            blk[j] = (uint8_t)((uint64_t)at >> (8 * j));
            blk[16 + j] = (uint8_t)((uint64_t)msgs[i].body_len >> (8 * j));
        }
        for (int j = 0; j < 4; j++)
            blk[8 + j] = (uint8_t)(meta >> (8 * j));
    }
    put_u32(out, 0xffffffffu);
    put_u32(out, 0);
    /* the footer's schema is the Schema table inside the schema message,
     * copied after the footer's own tables */
    fb_builder f;
    fbb_init(&f);
    fbb_slot s[] = { { 0, 2, METADATA_V5, false }, { 1, 4, 0, true }, { 2, 4, 0, true },
                     { 3, 4, 0, true } };
    size_t pos[4];
    fbb_patch(&f, 0, fbb_table(&f, s, 4, pos));
    fbb_patch(&f, pos[2], fbb_vector(&f, (uint32_t)nb[0], 24, 8, blocks[0]));
    fbb_patch(&f, pos[3], fbb_vector(&f, (uint32_t)nb[1], 24, 8, blocks[1]));
    fbb_pad(&f, 8);
    fb_reader r = { schema, schema_len, false };
    int type;
    int64_t bl;
    size_t sch = header_of(&r, &type, &bl);
    fbb_patch(&f, pos[1], f.len + sch);
    fbb_bytes(&f, schema, schema_len);
    fbb_bytes(out, f.b, f.len);
    put_u32(out, (uint32_t)f.len);
    fbb_bytes(out, "ARROW1", 6);
    fbb_free(&f);
    free(blocks[0]);
    free(blocks[1]);
}

flame_status ipc_file_read(const uint8_t *p, size_t n, uint64_t max_total, ipc_msg *schema,
                           ipc_msg **msgs, size_t *n_msgs)
{
    fb_reader r = { p, n, false };
    size_t at = 0, end = n;
    uint64_t total = 0;
    if (n >= 8 && memcmp(p, "ARROW1", 6) == 0) {
        at = 8;
        if (n >= 18 && memcmp(p + n - 6, "ARROW1", 6) == 0) {
            uint64_t flen = fbr_read(&r, n - 10, 4);
            if (flen <= n - 18)
                end = n - 10 - (size_t)flen;
        }
    }
    *schema = (ipc_msg){ NULL, 0, NULL, 0 };
    *msgs = NULL;
    *n_msgs = 0;
    size_t cap = 0;
    flame_status st = FLAME_OK;
    while (at + 4 <= end) {
        uint64_t len = fbr_read(&r, at, 4);
        at += 4;
        if (len == 0xffffffffu) {
            if (at + 4 > end)
                break;
            len = fbr_read(&r, at, 4);
            at += 4;
        }
        if (len == 0)
            break; /* end of stream */
        int64_t body;
        int type;
        if (len > end - at || (type = ipc_message_type(p + at, (size_t)len, &body)) < 0 ||
            (uint64_t)body > end - at - len) {
            st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "malformed Arrow IPC message at byte %zu", at);
            break;
        }
        total += len + (uint64_t)body;
        if (total > max_total) {
            st = fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "Arrow IPC data larger than %llu bytes",
                          (unsigned long long)max_total);
            break;
        }
        ipc_msg m = { fl_malloc((size_t)len), (size_t)len, fl_malloc(body ? (size_t)body : 1),
                      (size_t)body };
        memcpy(m.header, p + at, (size_t)len);
        memcpy(m.body, p + at + len, (size_t)body);
        at += (size_t)len + (size_t)body;
        if (!schema->header) {
            if (type != IPC_SCHEMA) {
                ipc_msg_clear(&m);
                st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "Arrow IPC data does not start with a "
                              "schema");
                break;
            }
            *schema = m;
            continue;
        }
        if (type != IPC_RECORD_BATCH && type != IPC_DICTIONARY_BATCH) {
            ipc_msg_clear(&m);
            st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "unexpected Arrow IPC message type %d", type);
            break;
        }
        if (*n_msgs == cap) {
            cap = cap ? cap * 2 : 8;
            *msgs = fl_realloc(*msgs, cap * sizeof **msgs);
        }
        (*msgs)[(*n_msgs)++] = m;
    }
    if (!st && !schema->header)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "no Arrow IPC schema");
    if (st) {
        ipc_msg_clear(schema);
        for (size_t i = 0; i < *n_msgs; i++)
            ipc_msg_clear(&(*msgs)[i]);
        free(*msgs);
        *msgs = NULL;
        *n_msgs = 0;
    }
    return st;
}
