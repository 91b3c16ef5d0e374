/* The Arrow IPC the object cache needs: Schema and RecordBatch messages
 * (FlatBuffers, fb.h), the stream encapsulation (0xFFFFFFFF, length,
 * metadata, body) and the file format ("ARROW1", messages, Footer).
 *
 * Opaque objects travel as `version UInt64, data Binary` (uploads, files)
 * and `version UInt64, kind Utf8, data Binary` (DoGet replies), one value
 * per row; native tables are kept as their messages, verbatim, with
 * flame.cache.version rewritten in the schema's metadata. ZSTD-compressed
 * bodies are read (libzstd); stored files are written with ZSTD. */
#ifndef FL_CACHE_IPC_H
#define FL_CACHE_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/fb.h"
#include "flame/error.h"

enum { IPC_SCHEMA = 1, IPC_DICTIONARY_BATCH = 2, IPC_RECORD_BATCH = 3 };

/* One message: its FlatBuffer (Flight's data_header) and body. */
typedef struct ipc_msg {
    uint8_t *header;
    size_t header_len;
    uint8_t *body;
    size_t body_len;
} ipc_msg;

void ipc_msg_clear(ipc_msg *m);

/* What the cache reads from a Schema message. */
typedef struct ipc_schema_info {
    bool native;        /* flame.cache.format=arrow-table-v1 */
    uint64_t version;   /* native: flame.cache.version, 0 when absent */
    bool opaque;        /* version UInt64 + data Binary (+ kind Utf8: a reply) */
    int n_cols;
    int version_col, kind_col, data_col;
} ipc_schema_info;

/* Type of a message (IPC_*) and its bodyLength; -1 when it is not a
 * well-formed Message (or its bodyLength is no multiple of 8, as Arrow
 * pads every body). */
int ipc_message_type(const uint8_t *header, size_t len, int64_t *body_len);
/* FLAME_ERR_INVALID_ARGUMENT with a reason when not a usable schema (not
 * native and not the opaque two columns). */
flame_status ipc_schema_parse(const uint8_t *header, size_t len, ipc_schema_info *out);

/* Calls row() for every row of an opaque RecordBatch (kind NULL without
 * that column); data of at most max bytes in all. Compressed (ZSTD or
 * uncompressed-marked) buffers are read. FLAME_ERR_INVALID_ARGUMENT on a
 * malformed batch, FLAME_ERR_RESOURCE_EXHAUSTED past max; a non-OK status
 * from row() stops and is returned. */
typedef flame_status (*ipc_row_fn)(void *arg, uint64_t version, const char *kind, size_t kind_len,
                                   const uint8_t *data, size_t len);
flame_status ipc_rows(const ipc_schema_info *s, const ipc_msg *m, uint64_t max, ipc_row_fn row,
                      void *arg);
/* ipc_rows appending every data value to *out (at most max_total bytes in
 * all); *first_version gets the version of the first row when has_version
 * is false (then sets it). */
flame_status ipc_opaque_rows(const ipc_schema_info *s, const ipc_msg *m, uint64_t max_total,
                             fb_builder *out, bool *has_version, uint64_t *first_version);

/* The opaque schema message: 2 columns, or 3 with kind (the reply). */
void ipc_opaque_schema(fb_builder *out, bool with_kind);
/* One row (version, [kind,] data) as a RecordBatch message; zstd: compress
 * the body. */
void ipc_opaque_batch(ipc_msg *out, uint64_t version, const char *kind, const uint8_t *data,
                      size_t len, bool zstd);
/* The schema message header with flame.cache.version set to version (the
 * other metadata and the fields kept verbatim). NULL when header is not a
 * Schema message. */
uint8_t *ipc_schema_with_version(const uint8_t *header, size_t len, uint64_t version,
                                 size_t *out_len);
/* Flight's IPC form of a schema (FlightInfo.schema, SchemaResult):
 * continuation, length, the message padded to 8. */
void ipc_encapsulate(fb_builder *out, const uint8_t *header, size_t len);

/* The IPC file format: schema message + messages, written to out. */
void ipc_file_write(fb_builder *out, const uint8_t *schema, size_t schema_len,
                    const ipc_msg *msgs, size_t n);
/* Reads a file (or a stream, for robustness) into its schema header and
 * messages (copies; free with ipc_msg_clear each and free(msgs)).
 * FLAME_ERR_INVALID_ARGUMENT when malformed or bigger than max_total. */
flame_status ipc_file_read(const uint8_t *p, size_t n, uint64_t max_total, ipc_msg *schema,
                           ipc_msg **msgs, size_t *n_msgs);

#endif
