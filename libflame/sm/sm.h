/* The session manager's internals, shared by its files. Everything here is
 * touched only by the engine thread (the rpc loop). */
#ifndef FL_SM_H
#define FL_SM_H

#include <pthread.h>

#include "flame/server.h"
#include "model/model.h"
#include "rpc/rpc.h"
#include "store/store.h"
#include "util/util.h"

#include "backend.pb-c.h"
#include "frontend.pb-c.h"

/* A parked WatchTask call. */
typedef struct fl_watch {
    rpc_call *call;
    struct sm_session *sess;
    fl_task *task;
    struct fl_watch *prev, *next;
} fl_watch;

typedef struct sm_session {
    fl_session *s;
    struct sm_session *prev, *next; /* creation order */
} sm_session;

/* What to do with a call once the current batch is committed. */
typedef struct sm_out {
    rpc_call *call; /* held with rpc_call_ref */
    enum { OUT_REPLY, OUT_SEND, OUT_FINISH_OK, OUT_ERROR } kind;
    int code;
    char *msg;
    uint8_t *data;
    size_t len;
} sm_out;

struct flame_session_manager {
    rpc_server *rpc;
    rpc_method *methods;
    fl_store *store;
    pthread_t thread;
    int port;
    flame_resreq default_resreq;
    size_t max_message;
    int schedule_interval_ms;
    char *name;

    fl_map apps;     /* name -> fl_app */
    fl_map sessions; /* id -> sm_session */
    sm_session *first, *last;
    uint64_t next_seq;

    sm_out *out;     /* deferred until commit */
    size_t n_out, cap_out;
};

typedef flame_session_manager sm_t;

/* engine.c */
void sm_defer(sm_t *sm, rpc_call *call, int kind, int code, const char *msg, uint8_t *data,
              size_t len);
void sm_flush(void *ctx);
void sm_add_session(sm_t *sm, fl_session *s);
void sm_remove_session(sm_t *sm, sm_session *ss);
sm_session *sm_session_get(sm_t *sm, const char *id);
/* Persists and notifies watchers of a task whose state changed. */
void sm_task_changed(sm_t *sm, sm_session *ss, fl_task *t);
void sm_watch_add(sm_t *sm, rpc_call *call, sm_session *ss, fl_task *t);
void sm_watch_drop_all(sm_t *sm, fl_task *t, int code, const char *msg);

/* pack.c: model -> packed flame.v1 messages (malloc'ed) */
uint8_t *sm_pack_task(const fl_session *s, const fl_task *t, size_t *len);
uint8_t *sm_pack_session(const fl_session *s, size_t *len);
uint8_t *sm_pack_app(const fl_app *a, size_t *len);
/* Fill caller-provided messages; free what they allocate with *_done. */
void sm_fill_session(Flame__V1__Session *m, const fl_session *s);
void sm_fill_session_done(Flame__V1__Session *m);
void sm_fill_app(Flame__V1__Application *m, const fl_app *a);
void sm_fill_app_done(Flame__V1__Application *m);

/* frontend.c / backend.c */
extern const rpc_method sm_frontend_methods[];
extern const size_t sm_frontend_methods_len;
extern const rpc_method sm_backend_methods[];
extern const size_t sm_backend_methods_len;

/* builtin.c */
void sm_register_builtins(sm_t *sm);

/* Replies with a flame_status error (code mapped to gRPC) and its message. */
void sm_fail(rpc_call *call, flame_status st);

#endif
