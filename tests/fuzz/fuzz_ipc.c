/* libFuzzer target: the object cache's codecs of outside input (cache/ipc.c,
 * cache/fb.c, the ObjectRef of cache/client.c). The first byte picks:
 *   0  an Arrow IPC file or stream, as the store reads a file a client
 *      wrote: messages, schema, rows; what it accepts is written again
 *      (opaque: as the store writes an object, zstd or not; native: the
 *      schema with a new version and the messages verbatim) and must read
 *      back to the same;
 *   1  one message header, as DoPut gets it: type, schema; a native schema
 *      the parser accepts must take a new version (every reply of a native
 *      table rewrites it) and parse again to it;
 *   2  one RecordBatch (2-byte header length, header, body) against the
 *      opaque schemas, with and without kind, as DoPut and DoGet read rows;
 *   3  a BSON ObjectRef: what decodes encodes and decodes to the same.
 * Any mismatch aborts (a finding). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/ipc.h"
#include "flame/cache.h"
#include "util/util.h"

#define MAX_DATA (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    return 0;
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s\n", what);
        abort();
    }
}

static void free_msgs(ipc_msg *schema, ipc_msg *msgs, size_t n)
{
    ipc_msg_clear(schema);
    for (size_t i = 0; i < n; i++)
        ipc_msg_clear(&msgs[i]);
    free(msgs);
}

/* The opaque rows of a file's batches, concatenated (the store's read). */
static flame_status opaque_data(const ipc_schema_info *si, const ipc_msg *msgs, size_t n,
                                fb_builder *data, bool *has, uint64_t *version)
{
    flame_status st = FLAME_OK;
    for (size_t i = 0; i < n && !st; i++) {
        int64_t bl;
        if (ipc_message_type(msgs[i].header, msgs[i].header_len, &bl) == IPC_RECORD_BATCH)
            st = ipc_opaque_rows(si, &msgs[i], MAX_DATA, data, has, version);
    }
    return st;
}

static void opaque_again(const uint8_t *data, size_t len, uint64_t version, bool zstd)
{
    fb_builder schema, file = { 0 };
    ipc_msg m;
    ipc_opaque_schema(&schema, false);
    ipc_opaque_batch(&m, version, NULL, data, len, zstd);
    ipc_file_write(&file, schema.b, schema.len, &m, 1);
    ipc_msg s2, *msgs;
    size_t n;
    check(ipc_file_read(file.b, file.len, 2 * MAX_DATA, &s2, &msgs, &n) == FLAME_OK,
          "an opaque file we wrote does not read");
    ipc_schema_info si;
    check(ipc_schema_parse(s2.header, s2.header_len, &si) == FLAME_OK && si.opaque,
          "the opaque schema we wrote does not parse");
    fb_builder back = { 0 };
    bool has = false;
    uint64_t v = 0;
    check(opaque_data(&si, msgs, n, &back, &has, &v) == FLAME_OK, "our batch does not read");
    check(has && v == version && back.len == len && (!len || !memcmp(back.b, data, len)),
          "opaque data changed on a round trip");
    fbb_free(&back);
    free_msgs(&s2, msgs, n);
    ipc_msg_clear(&m);
    fbb_free(&schema);
    fbb_free(&file);
}

static void native_again(const ipc_msg *schema, const ipc_msg *msgs, size_t n)
{
    size_t hl;
    uint8_t *h = ipc_schema_with_version(schema->header, schema->header_len, 42, &hl);
    check(h != NULL, "an accepted native schema does not take a version");
    fb_builder file = { 0 };
    ipc_file_write(&file, h, hl, msgs, n);
    ipc_msg s2, *m2;
    size_t n2;
    check(ipc_file_read(file.b, file.len, (uint64_t)-1, &s2, &m2, &n2) == FLAME_OK,
          "a native file we wrote does not read");
    ipc_schema_info si;
    check(ipc_schema_parse(s2.header, s2.header_len, &si) == FLAME_OK && si.native &&
              si.version == 42,
          "the versioned native schema does not parse to its version");
    check(n2 == n, "a native file lost messages");
    for (size_t i = 0; i < n; i++)
        check(m2[i].header_len >= msgs[i].header_len &&
                  !memcmp(m2[i].header, msgs[i].header, msgs[i].header_len) &&
                  m2[i].body_len == msgs[i].body_len &&
                  (!msgs[i].body_len || !memcmp(m2[i].body, msgs[i].body, msgs[i].body_len)),
              "a native message changed on a round trip");
    free_msgs(&s2, m2, n2);
    fbb_free(&file);
    free(h);
}

static void file_case(const uint8_t *p, size_t n)
{
    ipc_msg schema, *msgs;
    size_t nm;
    if (ipc_file_read(p, n, MAX_DATA, &schema, &msgs, &nm) != FLAME_OK)
        return;
    ipc_schema_info si;
    if (ipc_schema_parse(schema.header, schema.header_len, &si) == FLAME_OK) {
        if (si.native) {
            native_again(&schema, msgs, nm);
        } else {
            fb_builder data = { 0 };
            bool has = false;
            uint64_t v = 0;
            if (opaque_data(&si, msgs, nm, &data, &has, &v) == FLAME_OK) {
                opaque_again(data.b, data.len, v, false);
                opaque_again(data.b, data.len, v, true);
            }
            fbb_free(&data);
        }
    }
    free_msgs(&schema, msgs, nm);
}

static void header_case(const uint8_t *p, size_t n)
{
    int64_t bl;
    int type = ipc_message_type(p, n, &bl);
    ipc_schema_info si;
    if (type != IPC_SCHEMA || ipc_schema_parse(p, n, &si) != FLAME_OK || !si.native)
        return;
    size_t hl;
    uint8_t *h = ipc_schema_with_version(p, n, 7, &hl);
    check(h != NULL, "an accepted native schema does not take a version");
    ipc_schema_info again;
    check(ipc_schema_parse(h, hl, &again) == FLAME_OK && again.native && again.version == 7,
          "the versioned native schema does not parse to its version");
    fb_builder enc = { 0 };
    ipc_encapsulate(&enc, h, hl);
    fbb_free(&enc);
    free(h);
}

static flame_status count_row(void *arg, uint64_t version, const char *kind, size_t kind_len,
                              const uint8_t *data, size_t len)
{
    /* touch every byte the rows point at (ASan checks the bounds) */
    size_t *sum = arg;
    for (size_t i = 0; i < kind_len; i++)
        *sum += (uint8_t)kind[i];
    for (size_t i = 0; i < len; i++)
        *sum += data[i];
    return FLAME_OK;
}

static void batch_case(const uint8_t *p, size_t n)
{
    if (n < 3)
        return;
    size_t hl = (size_t)p[1] | (size_t)p[2] << 8;
    p += 3;
    n -= 3;
    if (hl > n)
        hl = n;
    /* owned copies, so ASan sees reads past either part */
    ipc_msg m = { fl_memdup(p, hl), hl, fl_memdup(p + hl, n - hl), n - hl };
    for (int with_kind = 0; with_kind < 2; with_kind++) {
        fb_builder s;
        ipc_opaque_schema(&s, with_kind);
        ipc_schema_info si;
        check(ipc_schema_parse(s.b, s.len, &si) == FLAME_OK && si.opaque,
              "our opaque schema does not parse");
        size_t sum = 0;
        ipc_rows(&si, &m, MAX_DATA, count_row, &sum);
        fbb_free(&s);
    }
    ipc_msg_clear(&m);
}

static void ref_case(const uint8_t *p, size_t n)
{
    flame_cache_ref r;
    if (flame_cache_ref_decode(&r, p, n) != FLAME_OK)
        return;
    void *enc;
    size_t len;
    check(flame_cache_ref_encode(&r, &enc, &len) == FLAME_OK, "a decoded ObjectRef does not encode");
    flame_cache_ref again;
    check(flame_cache_ref_decode(&again, enc, len) == FLAME_OK, "our ObjectRef does not decode");
    check(strcmp(again.endpoint, r.endpoint) == 0 && strcmp(again.key, r.key) == 0 &&
              again.version == r.version,
          "an ObjectRef changed on a round trip");
    flame_cache_ref_clear(&again);
    flame_cache_ref_clear(&r);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* the parsers get exactly the input's bytes (ASan sees overreads) */
    uint8_t *p = fl_malloc(size);
    memcpy(p, data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        file_case(p, size - 1);
        break;
    case 1:
        header_case(p, size - 1);
        break;
    case 2:
        batch_case(data, size);
        break;
    default:
        ref_case(p, size - 1);
        break;
    }
    free(p);
    return 0;
}
