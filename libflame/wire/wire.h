/* The wire module: the one place where the model meets flame.v1.
 *   encode.c  hand encoders (fields appended to a message being built)
 *   pack.c    model -> flame.v1 messages
 *   unpack.c  flame.v1 messages -> model
 * No state; safe from any thread for distinct arguments. */
#ifndef FL_WIRE_H
#define FL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* ---- encode.c: append one field to b ------------------------------------ */

/* A varint field (uint32/64, int32/64 >= 0, enums). */
void fl_wire_put_varint(fl_buf *b, uint32_t field, uint64_t v);
/* A bool field. proto3 leaves false fields out: callers put true ones. */
void fl_wire_put_bool(fl_buf *b, uint32_t field, bool v);
/* A length-delimited field: a packed sub-message, bytes or a string. An
 * element of a repeated message field is one such field per element. */
void fl_wire_put_bytes(fl_buf *b, uint32_t field, const void *data, size_t len);

#endif
