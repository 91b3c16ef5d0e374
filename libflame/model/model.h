/* The model: applications, sessions, tasks, executors, nodes and their
 * state machines. Plain C: no I/O, no protobuf (libflame/wire converts to
 * and from flame.v1). Every state change goes through a function here, so
 * the rules of what is legal live in one place. */
#ifndef FL_MODEL_H
#define FL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/error.h"
#include "flame/types.h"

#include "executor.h"
#include "node.h"

/* An event as the wire shows it. */
typedef struct fl_event {
    int32_t code;
    const char *message; /* may be NULL */
    int64_t time;
} fl_event;

/* Events kept compact: a task has a handful (created, running, done), so
 * the first FL_EVENTS_INLINE live inside the owner without an allocation,
 * and messages (most events have none) sit in a side array made only when
 * one is given. */
#define FL_EVENTS_INLINE 3

typedef struct fl_event_c {
    int64_t time;
    int32_t code;
} fl_event_c;

typedef struct fl_events {
    fl_event_c inl[FL_EVENTS_INLINE];
    fl_event_c *more;   /* events FL_EVENTS_INLINE.. */
    char **msgs;        /* per event, or NULL when no event has a message */
    uint16_t n, cap;    /* cap: of more */
    uint16_t mcap;      /* of msgs */
} fl_events;

/* The i-th event (i < e->n). */
fl_event fl_events_get(const fl_events *e, uint32_t i);
void fl_events_add(fl_events *e, int32_t code, const char *message, int64_t time);
/* Forgets the events from the n-th on (a change undone). */
void fl_events_truncate(fl_events *e, uint32_t n);
void fl_events_free(fl_events *e);
const char *fl_event_default_message(int32_t code);

typedef struct fl_env {
    char *name;
    char *value;
} fl_env;

/* What an application runs, as flame.v1's ApplicationSpec says it. Optional
 * strings are NULL when unset; everything is owned by the spec. */
typedef struct fl_app_spec {
    int shim;                   /* flame_shim */
    char *description;
    char **labels;
    size_t n_labels;
    char *image;
    char *command;
    char **arguments;
    size_t n_arguments;
    fl_env *environments;
    size_t n_environments;
    char *working_directory;
    bool has_max_instances;
    uint32_t max_instances;
    bool has_delay_release;
    int64_t delay_release;      /* seconds */
    char *schema_input;         /* JSON Schema documents */
    char *schema_output;
    char *schema_common_data;
    char *url;
    char *installer;
    char *sandbox;              /* "none", "process", "microvm"; NULL: the node's default */
    char *network;              /* "none", "host"; NULL: "none" */
    char *owner;                /* the user who registered it; NULL: admins' */
    bool sandbox_reuse;         /* its service may serve the owner's next session */
    char *stdio_mode;           /* the stdio shim's: "frame", "line"; NULL: frame */
} fl_app_spec;

void fl_app_spec_free(fl_app_spec *spec); /* NULL is a no-op */

/* The sandbox levels an application may name: none, process, microvm. */
bool fl_sandbox_level_known(const char *level);

typedef struct fl_app {
    char *name;
    fl_app_spec *spec;
    uint8_t *blob;                    /* the spec packed (flame.v1), as stored and sent */
    size_t blob_len;
    int state;                        /* flame_application_state */
    int64_t ctime;
    uint32_t open_sessions;
} fl_app;

struct fl_watch;

#define FL_MAX_TOKENS 64

/* What a client asks for when it creates a session. A view: the strings
 * and bytes are the caller's (fl_session_new copies them). */
typedef struct fl_session_spec {
    const char *application;
    bool has_common_data;
    const uint8_t *common_data;
    size_t common_data_len;
    uint32_t min_instances;
    bool has_max_instances;
    uint32_t max_instances;
    uint32_t priority;
    bool has_resreq;
    flame_resreq resreq;
    uint32_t batch_size;        /* Flame 0.7's gang size; 0: 1 */
    /* Flame 0.7: session-scoped service credentials, key and value in turn
     * (tokens[2i], tokens[2i+1]); n_tokens may exceed FL_MAX_TOKENS (the
     * session manager refuses such a spec), only that many are kept. */
    size_t n_tokens;
    const char *tokens[2 * FL_MAX_TOKENS];
} fl_session_spec;

typedef struct fl_task {
    uint32_t id;
    uint8_t state; /* flame_task_state */
    bool has_input, has_output;
    bool input_inline; /* input lives in the same allocation as the task */
    uint32_t input_len, output_len;
    uint8_t *input, *output;
    int64_t ctime, etime;
    fl_events events;
    struct fl_watch *watchers; /* owned by the session manager */
    /* Flame 0.7's TaskSpec.affinity (keys an executor's advertised
     * attributes may hold), packed: each key as a 4-byte little-endian
     * length and its bytes; NULL when none. Stored and returned. */
    uint8_t *affinity;
    uint32_t affinity_len;
} fl_task;

#define FL_MAX_AFFINITY 64             /* keys of one task */
#define FL_MAX_AFFINITY_BYTES (64 << 10) /* their packed size */

typedef struct fl_session {
    char *id;
    char *app;
    char *owner;         /* the identity that created it; "": admins only */
    bool has_common_data, has_max;
    uint8_t *common_data;
    size_t common_data_len;
    uint32_t min_instances, max_instances, priority, batch_size;
    char **tokens;       /* Flame 0.7: 2 * n_tokens strings, key and value in turn */
    uint32_t n_tokens;
    flame_resreq resreq; /* the cluster default when the client gave none */
    int state;           /* flame_session_state */
    int64_t ctime, etime;
    int32_t counts[5];   /* by flame_task_state */
    fl_events events;
    fl_task **tasks;     /* tasks[i] has id i + 1 */
    uint32_t ntasks, cap;
    uint64_t seq;        /* creation order */
    uint32_t bind_failures;
    bool unschedulable;  /* 5 failed binds in a row */
} fl_session;

/* Applications */
/* INVALID_ARGUMENT for a bad name or spec (spec NULL: none was given). */
flame_status fl_app_validate(const char *name, const fl_app_spec *spec);
/* An Enabled application; it takes spec, and copies name and blob (spec
 * packed, len bytes). */
fl_app *fl_app_new(const char *name, fl_app_spec *spec, const uint8_t *blob, size_t len,
                   int64_t ctime);
void fl_app_free(fl_app *a);

/* Sessions */
fl_session *fl_session_new(const char *id, const fl_session_spec *spec,
                           const flame_resreq *default_resreq, int64_t now);
void fl_session_free(fl_session *s);
/* Does an existing session match the spec given to OpenSession? */
bool fl_session_spec_matches(const fl_session *s, const fl_session_spec *spec,
                             const flame_resreq *default_resreq, const char **why);
/* Pending tasks become Cancelled (their ids are returned in *changed, a
 * malloc'ed array); the session becomes Closed. FAILED_PRECONDITION while
 * a task is Running. Closing a Closed session is a no-op. */
flame_status fl_session_close(fl_session *s, int64_t now, fl_task ***changed, size_t *n_changed);

/* Flame 0.7's suspension: Open -> Suspending while executors still hold
 * the session (held), else Suspended; a suspended one stays as it is.
 * FAILED_PRECONDITION when Closed. Pending tasks stay Pending. */
flame_status fl_session_suspend(fl_session *s, bool held);
/* Suspending or Suspended -> Open; Open: no-op; FAILED_PRECONDITION when
 * Closed. */
flame_status fl_session_resume(fl_session *s);
/* Suspending -> Suspended once nothing holds it; whether it changed. */
bool fl_session_suspend_done(fl_session *s, bool held);
static inline bool fl_session_suspended(const fl_session *s)
{
    return s->state == FLAME_SESSION_SUSPENDING || s->state == FLAME_SESSION_SUSPENDED;
}

/* Tasks */
fl_task *fl_session_add_task(fl_session *s, const uint8_t *input, size_t len, bool has_input,
                             int64_t now);
/* Inserts a task read back from storage (ids may arrive in any order). */
void fl_session_put_task(fl_session *s, fl_task *t);
fl_task *fl_session_task(const fl_session *s, const char *task_id);
bool fl_task_transition_ok(int from, int to);
/* Moves t to state `to` (counters, completion time, an event). */
flame_status fl_task_set_state(fl_session *s, fl_task *t, int to, const char *message, int64_t now);
void fl_task_free(fl_task *t);
/* Whether p[0..len) is a well-formed packed affinity (fl_task.affinity)
 * within FL_MAX_AFFINITY keys; NULL/0 is (no keys). */
bool fl_affinity_valid(const uint8_t *p, size_t len);
/* The next key of a packed affinity at *off (moved past it); false at the end. */
bool fl_affinity_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **key,
                      size_t *klen);
bool fl_task_terminal(int state);

#endif
