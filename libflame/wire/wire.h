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

#include "model/model.h"
#include "util/util.h"

#include "types.pb-c.h"

/* ---- encode.c: append one field to b ------------------------------------ */

/* A varint field: uint32/64, enums, int32/64 (a negative one passed as
 * (uint64_t)(int64_t)v takes ten bytes, as protobuf encodes it). */
void fl_wire_put_varint(fl_buf *b, uint32_t field, uint64_t v);
/* A bool field. proto3 leaves false fields out: callers put true ones. */
void fl_wire_put_bool(fl_buf *b, uint32_t field, bool v);
/* A length-delimited field: a packed sub-message, bytes or a string. An
 * element of a repeated message field is one such field per element. */
void fl_wire_put_bytes(fl_buf *b, uint32_t field, const void *data, size_t len);

/* ---- pack.c: model -> flame.v1 ------------------------------------------ */
/* pack_* return a malloc'ed packed message and its length in *len.
 * fill_* fill a caller's message pointing into the model (valid while the
 * model object lives); free what they allocated with the matching _done. */

/* Event messages pointing into e; free *block and the returned array (both
 * NULL when e is empty). Events stored without a message (the common ones,
 * to save memory) get the standard text of their code when with_defaults
 * is set. */
Flame__V1__Event **fl_wire_events(const fl_events *e, Flame__V1__Event **block,
                                  bool with_defaults);
/* The events alone as a TaskStatus: how the store keeps them. */
uint8_t *fl_wire_pack_events(const fl_events *e, size_t *len);
uint8_t *fl_wire_pack_task(const fl_session *s, const fl_task *t, size_t *len);
/* TaskSpec.affinity's keys in fl_task's packed form (malloc'ed; NULL and
 * *len 0 when there are none). The caller bounds n and the sizes. */
uint8_t *fl_wire_affinity_pack(const ProtobufCBinaryData *keys, size_t n, size_t *len);
/* A TaskOutcome (WatchSession, RunSession) of a task that finished. */
uint8_t *fl_wire_pack_outcome(const fl_task *t, size_t *len);
void fl_wire_fill_session(Flame__V1__Session *m, const fl_session *s);
void fl_wire_fill_session_done(Flame__V1__Session *m);
uint8_t *fl_wire_pack_session(const fl_session *s, size_t *len);
/* An Application around the spec bytes a->blob (not re-packed). */
uint8_t *fl_wire_pack_app(const fl_app *a, size_t *len);
/* As fl_wire_pack_app without the spec's environments (they may hold
 * secrets): what a non-admin sees. */
uint8_t *fl_wire_pack_app_public(const fl_app *a, size_t *len);
/* session_id: the session it is bound to, or NULL (a Void executor then
 * reports the session it was created for). */
void fl_wire_fill_executor(Flame__V1__Executor *m, const fl_executor *e, const char *session_id);
void fl_wire_fill_executor_done(Flame__V1__Executor *m);
uint8_t *fl_wire_pack_executor(const fl_executor *e, const char *session_id, size_t *len);
void fl_wire_fill_node(Flame__V1__Node *m, const fl_node *n);
void fl_wire_fill_node_done(Flame__V1__Node *m);
uint8_t *fl_wire_pack_node(const fl_node *n, size_t *len);

/* ---- unpack.c: flame.v1 -> model ---------------------------------------- */

/* An application from a registration's spec (its blob packed from m); NULL
 * when m is NULL. Validate it with fl_app_validate(name, a->spec). */
fl_app *fl_wire_app_new(const char *name, const Flame__V1__ApplicationSpec *m, int64_t ctime);
/* An application from stored spec bytes; NULL when they do not unpack. */
fl_app *fl_wire_app_unpack(const char *name, const uint8_t *blob, size_t len, int64_t ctime);
/* A view of m (out points into m). */
void fl_wire_session_spec(fl_session_spec *out, const Flame__V1__SessionSpec *m);
/* Flame 0.7 services wrap their Instance replies (OnSessionEnterResponse,
 * OnTaskInvokeResponse: field 1 is the Result or TaskResult message), 0.6
 * ones send them bare (field 1 is the varint return_code). Whether the
 * packed reply data is a wrapped one: its field 1 is length-delimited. A
 * reply without field 1, or one that does not parse, is taken as bare. */
bool fl_wire_reply_wrapped(const uint8_t *data, size_t len);
/* Appends the events kept by fl_wire_pack_events to e. */
bool fl_wire_unpack_events(fl_events *e, const uint8_t *data, size_t len); /* false: undecodable */
/* A node in state Unknown from what its executor manager registered: the
 * caller sets its state (fl_node_set_state). */
fl_node *fl_wire_node(const Flame__V1__Node *m, const char *name);

#endif
