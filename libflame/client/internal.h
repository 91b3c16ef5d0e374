/* What the files of the client core share: the handles, the call helpers,
 * the protobuf -> public struct conversions and the resumable stream.
 * Nothing outside libflame/client includes this. */
#ifndef FL_CLIENT_CORE_H
#define FL_CLIENT_CORE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "flame/client.h"
#include "rpc/rpc.h"

#include "frontend.pb-c.h"

struct flame_client {
    rpc_channel *ch;
    char *endpoint;
    int timeout_ms;
    atomic_bool reached;  /* a call got an answer: UNAVAILABLE later is a restart */
};

struct flame_session {
    flame_client *client;
    char *id;
};

#define FE(name) rpc_path(&flame__v1__frontend__descriptor, name)

/* ---- client.c: calls ---------------------------------------------------- */

/* INVALID_ARGUMENT "fn: what". */
flame_status fl_client_bad_arg(const char *fn, const char *what);

/* A unary call with the client's deadline; *resp is freed by the caller
 * with protobuf_c_message_free_unpacked(). */
flame_status fl_client_call(flame_client *c, const char *method, const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp);

/* A unary call answered by a flame.v1 Result: a non-zero return code is
 * FLAME_ERR_INTERNAL with the result's message. */
flame_status fl_client_call_result(flame_client *c, const char *method,
                                   const ProtobufCMessage *req);

/* ---- fallback.c: against Flame's own session manager ---------------------- */

/* A new session id, "<application>-<6 random [a-z0-9]>" (clients name
 * sessions themselves: Flame's session manager does not). */
void fl_client_session_id(char *out, size_t size, const char *application);
/* flame_task_create_many over CreateTask, one call per task (a server
 * without CreateTasks). */
flame_status fl_client_create_each(flame_session *s, const flame_bytes *inputs, size_t n,
                                   uint64_t *ids);
/* flame_session_watch by polling ListTask and GetSession (a server without
 * WatchSession); same contract. */
flame_status fl_client_watch_polled(flame_session *s, uint64_t from_task_id,
                                    flame_session_watch_cb cb, void *payload, int timeout_ms);

/* ---- convert.c: protobuf -> public structs (library-allocated) ---------- */

flame_task *fl_task_from(const Flame__V1__Task *m);
flame_task *fl_task_copy(const flame_task *t);
flame_session_info *fl_session_info_from(const Flame__V1__Session *m);
flame_application *fl_application_from(const Flame__V1__Application *m);
flame_executor_info *fl_executor_info_from(const Flame__V1__Executor *m);
flame_node_info *fl_node_info_from(const Flame__V1__Node *m);

/* A view of m for a callback: the pointers point into m. */
flame_task_outcome fl_outcome_view(const Flame__V1__TaskOutcome *m);

/* ---- resume.c: a server stream that survives a session-manager restart -- */

/* Reads a server stream; when it breaks the way a restart of the session
 * manager breaks it (UNAVAILABLE, INTERNAL), reopens it with the request as
 * it is then, so the caller moves its resume position in the request
 * between two next() calls. Reopening waits 50 ms, doubling up to 1 s, and
 * starts again at 50 ms once a message arrives. One thread at a time. */
typedef struct fl_resumable {
    rpc_channel *ch;
    const char *method;                     /* a literal */
    const char *what;                       /* names it in errors; default: the method */
    const ProtobufCMessage *req;            /* read at every (re)open */
    const ProtobufCMessageDescriptor *desc; /* of the responses */
    int64_t deadline_ns;                    /* monotonic; 0: none */
    bool end_is_break;                      /* a clean end is a lost stream too */
    /* set: after FL_STUCK_CHECK_MS without a message, fl_session_stuck()
     * of this session; its error ends the wait */
    flame_client *client;
    const char *session_id;
    rpc_stream *st;
    int backoff_ms;
} fl_resumable;

/* timeout_ms < 0: no deadline. Opens nothing yet; client and session_id
 * are unset (no check for a stuck session). */
void fl_resumable_init(fl_resumable *r, rpc_channel *ch, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                       int timeout_ms);

/* The next message (free with protobuf_c_message_free_unpacked()), or
 * *msg = NULL when the stream ended cleanly. FLAME_ERR_TIMEOUT once the
 * deadline passes; other errors as the call reported them. */
flame_status fl_resumable_next(fl_resumable *r, ProtobufCMessage **msg);

/* Cancels the stream if open. The struct may be reused after init(). */
void fl_resumable_close(fl_resumable *r);

/* ---- stuck.c: a session that cannot run ends the waits on it ----------- */

/* How long a wait hears nothing before it asks (and between two asks). */
#define FL_STUCK_CHECK_MS 3000

/* FLAME_ERR_FAILED_PRECONDITION, with the session's event in the message,
 * when the session has Pending tasks, none Running, and its latest
 * executor event says it gets no executor (1002, 1003); FLAME_OK
 * otherwise, also when the session manager does not answer. */
flame_status fl_session_stuck(flame_client *c, const char *session_id);

#endif
