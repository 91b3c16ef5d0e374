/* Flame in C — the client core.
 *
 * Connect to a session manager, manage applications, open sessions and run
 * tasks in them. Every function here is thread-safe: one flame_client may be
 * used from many threads at once, and so may a flame_session handle.
 *
 * Ownership: objects returned through an `out` parameter belong to the
 * caller and are freed with the matching *_free function (freeing NULL is a
 * no-op). Pointers inside a returned object live as long as the object.
 * Pointers passed in are only read during the call, never kept.
 *
 * Errors: every flame_status-returning function returns FLAME_OK or a
 * negative code and sets flame_error_last() (error.h). Server errors map
 * from gRPC codes: NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
 * FAILED_PRECONDITION, UNAVAILABLE, DEADLINE_EXCEEDED (FLAME_ERR_TIMEOUT).
 */
#ifndef FLAME_CLIENT_H
#define FLAME_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flame_client flame_client;
typedef struct flame_session flame_session;

/* ---- connection -------------------------------------------------------- */

#define FLAME_CLIENT_OPTIONS_VERSION 1

typedef struct flame_client_options {
    int version;            /* FLAME_CLIENT_OPTIONS_VERSION */
    /* "http://host:port", "https://host:port" (TLS) or "host:port". NULL:
     * $FLAME_ENDPOINT, else the current context of ~/.flame/flame.yaml
     * ($FLAME_CONFIG), else http://127.0.0.1:8080. */
    const char *endpoint;
    int timeout_ms;         /* deadline of each unary call; 0: 30000 */
    size_t max_message_size; /* bytes; 0: 64 MiB */
    /* TLS, used for https:// endpoints only (PEM files). NULL: the current
     * context's cluster.tls.{ca_file,cert_file,key_file} in flame.yaml,
     * else $FLAME_CA_FILE, $FLAME_CERT_FILE, $FLAME_KEY_FILE. No CA: the
     * system's roots verify the server. A cert and key: the client's
     * certificate (its identity; required by a server with mutual TLS). */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
} flame_client_options;

#define FLAME_CLIENT_OPTIONS_INIT { FLAME_CLIENT_OPTIONS_VERSION, NULL, 0, 0, NULL, NULL, NULL }

/* Sets *opts to FLAME_CLIENT_OPTIONS_INIT of this library (for callers that
 * cannot use the macro, e.g. bindings). */
void flame_client_options_init(flame_client_options *opts);

/* Creates a client. Does not block on the network: the first call connects.
 * opts may be NULL for the defaults. Free with flame_client_free().
 * FLAME_ERR_INVALID_ARGUMENT for a bad endpoint, FLAME_ERR_CONFIG for TLS
 * files that cannot be read or are not PEM (the message names the file). */
flame_status flame_client_connect(flame_client **out, const flame_client_options *opts);

/* Frees the client. Calls still running on other threads must have returned.
 * Session handles made from it must be freed first. */
void flame_client_free(flame_client *client);

/* The endpoint this client talks to, as "http://host:port" or
 * "https://host:port". Owned by the client. */
const char *flame_client_endpoint(const flame_client *client);

/* ---- applications ------------------------------------------------------ */

#define FLAME_APPLICATION_SPEC_VERSION 4

/* An application's spec. Every pointer may be NULL (unset). As input it is
 * read during the call only; in a returned flame_application the library
 * owns every pointer. */
typedef struct flame_application_spec {
    int version;               /* FLAME_APPLICATION_SPEC_VERSION */
    flame_shim shim;
    const char *description;
    const char *const *labels;
    size_t labels_len;
    const char *image;
    const char *command;
    const char *const *arguments;
    size_t arguments_len;
    const flame_env *environments;
    size_t environments_len;
    const char *working_directory; /* absolute when set */
    int has_max_instances;
    uint32_t max_instances;
    int has_delay_release;
    int64_t delay_release;      /* seconds */
    const char *schema_input;   /* JSON-Schema documents */
    const char *schema_output;
    const char *schema_common_data;
    const char *url;
    const char *installer;
    /* version 2: the sandbox its executors run in: "none", "process" or
     * "microvm"; NULL: the node's default (process). Registering "none" is
     * for admins. network: "none" (loopback only, the default) or "host". */
    const char *sandbox;
    const char *network;
    /* version 3: 1 lets the service process and its sandbox serve the next
     * session of the same owner on the same executor (0: a new one for
     * every session, the default). */
    int sandbox_reuse;
    /* version 4: the stdio shim's mode, "frame" or "line" (NULL: frame); the
     * REST shim's base URL of a service that already runs (NULL: the command
     * is started and listens on $PORT) and its health path (NULL: /health). */
    const char *stdio_mode;
    const char *rest_url;
    const char *rest_health;
} flame_application_spec;

#define FLAME_APPLICATION_SPEC_INIT { FLAME_APPLICATION_SPEC_VERSION, FLAME_SHIM_HOST, \
    NULL, NULL, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, \
    NULL, NULL, 0, NULL, NULL, NULL }

/* Sets *spec to FLAME_APPLICATION_SPEC_INIT of this library. */
void flame_application_spec_init(flame_application_spec *spec);

/* An application as the server reports it. Allocated by the library only:
 * fields may be appended in later versions, so never allocate or copy one
 * by value. Free with flame_application_free(). */
typedef struct flame_application {
    const char *name;
    flame_application_state state;
    int64_t creation_time;      /* Unix ms */
    const flame_application_spec *spec; /* never NULL; owned by the application */
} flame_application;

/* Registers an application. INVALID_ARGUMENT for a bad name or spec,
 * ALREADY_EXISTS when the name is taken. */
flame_status flame_application_register(flame_client *client, const char *name,
                                        const flame_application_spec *spec);

/* Replaces an application's spec. NOT_FOUND, INVALID_ARGUMENT, or
 * FAILED_PRECONDITION while it has Open sessions. */
flame_status flame_application_update(flame_client *client, const char *name,
                                      const flame_application_spec *spec);

/* Unregisters an application and deletes its closed sessions. NOT_FOUND, or
 * FAILED_PRECONDITION while it has Open sessions. */
flame_status flame_application_unregister(flame_client *client, const char *name);

flame_status flame_application_get(flame_application **out, flame_client *client,
                                   const char *name);

/* All applications, sorted by name. *out is an array of *count objects;
 * free with flame_application_list_free(). */
flame_status flame_application_list(flame_application ***out, size_t *count,
                                    flame_client *client);

/* Reads Flame's application YAML (`metadata: {name}`, `spec: {shim,
 * description, labels, image, command, arguments, environments,
 * working_directory, max_instances, delay_release, schema, url,
 * installer}`), one application per document (documents separated by
 * `---`). Does not touch the network. FLAME_ERR_CONFIG with a message naming
 * the file, line and key on bad input. Free with
 * flame_application_list_free(). */
flame_status flame_application_file_load(flame_application ***out, size_t *count,
                                         const char *path);

void flame_application_free(flame_application *app);
void flame_application_list_free(flame_application **apps, size_t count);

/* ---- sessions ---------------------------------------------------------- */

#define FLAME_SESSION_SPEC_VERSION 1

typedef struct flame_session_spec {
    int version;                /* FLAME_SESSION_SPEC_VERSION */
    const char *application;
    flame_bytes common_data;    /* data == NULL: unset */
    uint32_t min_instances;
    int has_max_instances;
    uint32_t max_instances;
    uint32_t priority;          /* higher is more important */
    int has_resreq;             /* 0: the cluster's default resreq */
    flame_resreq resreq;
    uint32_t batch_size;        /* normalised to 1 by the server */
} flame_session_spec;

#define FLAME_SESSION_SPEC_INIT { FLAME_SESSION_SPEC_VERSION, NULL, { NULL, 0 }, \
    0, 0, 0, 0, 0, { 0, 0, 0 }, 1 }

/* Sets *spec to FLAME_SESSION_SPEC_INIT of this library. */
void flame_session_spec_init(flame_session_spec *spec);

/* A session as the server reports it. Allocated by the library only
 * (fields may be appended); free with flame_session_info_free(). */
typedef struct flame_session_info {
    const char *id;
    flame_session_state state;
    int64_t creation_time;      /* Unix ms */
    int64_t completion_time;    /* Unix ms; 0 while Open */
    int32_t pending;
    int32_t running;
    int32_t succeed;
    int32_t failed;
    int32_t cancelled;
    const flame_event *events;
    size_t events_len;
    const flame_session_spec *spec; /* never NULL; owned by the info */
} flame_session_info;

/* Creates a session and returns a handle to it. session_id NULL or "": the
 * library names it "<application>-<6 random [a-z0-9]>" (Flame's own
 * session manager makes no ids). ALREADY_EXISTS for a taken id, NOT_FOUND for an
 * unknown application, INVALID_ARGUMENT for a bad spec. */
flame_status flame_session_create(flame_session **out, flame_client *client,
                                  const char *session_id, const flame_session_spec *spec);

/* Get-or-create. With spec NULL the session must exist (NOT_FOUND
 * otherwise). With a spec: creates the session when absent; when present
 * the spec must match (INVALID_ARGUMENT otherwise). Opening a Closed session
 * fails with FAILED_PRECONDITION. */
flame_status flame_session_open(flame_session **out, flame_client *client,
                                const char *session_id, const flame_session_spec *spec);

/* Makes a handle for a session id without calling the server (nothing is
 * checked: calls through the handle return NOT_FOUND for an unknown id).
 * Works for Closed sessions too, e.g. to read their tasks. */
flame_status flame_session_attach(flame_session **out, flame_client *client,
                                  const char *session_id);

/* The session's id; owned by the handle. */
const char *flame_session_id(const flame_session *session);

/* Closes the session on the server: Pending tasks become Cancelled.
 * FAILED_PRECONDITION while a task is Running. Closing a Closed session
 * succeeds. The handle stays valid and must still be freed. */
flame_status flame_session_close(flame_session *session);

/* Frees the handle only (the session stays as it is on the server). */
void flame_session_free(flame_session *session);

/* Looks a session up by id. NOT_FOUND when unknown. */
flame_status flame_session_get(flame_session_info **out, flame_client *client,
                               const char *session_id);

/* All sessions, Open and Closed, in creation order. */
flame_status flame_session_list(flame_session_info ***out, size_t *count,
                                flame_client *client);

/* Deletes a Closed session and its tasks (FAILED_PRECONDITION while Open). */
flame_status flame_session_delete(flame_client *client, const char *session_id);

void flame_session_info_free(flame_session_info *info);
void flame_session_info_list_free(flame_session_info **infos, size_t count);

/* ---- tasks ------------------------------------------------------------- */

/* A task as the server reports it. Allocated by the library only (fields
 * may be appended); free with flame_task_free(). */
typedef struct flame_task {
    const char *id;             /* "1", "2", ... per session */
    const char *session_id;
    flame_task_state state;
    int64_t creation_time;      /* Unix ms */
    int64_t completion_time;    /* Unix ms; 0 until terminal */
    flame_bytes input;          /* data == NULL: unset */
    flame_bytes output;         /* data == NULL: unset */
    const flame_event *events;
    size_t events_len;
    const char *message;        /* message of the last event, or NULL */
} flame_task;

/* True for Succeed, Failed and Cancelled. */
int flame_task_state_is_terminal(flame_task_state state);

/* Submits one task (input may be NULL: unset). Returns once the server has
 * committed it. FAILED_PRECONDITION when the session is Closed. out may be
 * NULL when the caller does not need the task. */
flame_status flame_task_create(flame_task **out, flame_session *session,
                               const void *input, size_t input_len);

/* Submits n tasks in as few calls as it can (the batched path: one call
 * carries thousands). inputs[i].data NULL: that task has no input; inputs
 * NULL: n tasks without input. ids (may be NULL) gets each task's id (the
 * numbers behind "1", "2", ...). Returns once every task is committed; on
 * an error, the tasks of the calls that succeeded exist. */
flame_status flame_task_create_many(flame_session *session, const flame_bytes *inputs, size_t n,
                                    uint64_t *ids);

flame_status flame_task_get(flame_task **out, flame_session *session, const char *task_id);

/* All tasks of the session in id order. */
flame_status flame_task_list(flame_task ***out, size_t *count, flame_session *session);

/* Every wait below (watch, wait, map, stream next) is bounded by the
 * session itself too: when it hears nothing for a few seconds it asks
 * whether the session can run at all, and ends with
 * FLAME_ERR_FAILED_PRECONDITION "session ID cannot run: ..." (the text of
 * the session's event) when the session has Pending tasks, none Running,
 * and gets no executor: its binds failed
 * cluster.recovery.session.retry_limits times in a row (event 1002: a
 * missing command, a service that refuses the session), or no node can
 * fit its resreq (event 1003). The tasks stay Pending, as in Flame. */

/* The same check, for a caller that waits in short slices of its own
 * (each wait above checks only after a few seconds of silence within
 * one call): FLAME_ERR_FAILED_PRECONDITION as described when the
 * session cannot run, FLAME_OK otherwise (also when the session manager
 * does not answer). One GetSession call. */
flame_status flame_session_check(flame_session *session);

/* Called with the task's current state first, then at each change. The task
 * is only valid during the call. Return 0 to go on, non-zero to stop. */
typedef int (*flame_task_watch_cb)(const flame_task *task, void *payload);

/* Watches a task until it reaches a terminal state (FLAME_OK), the callback
 * stops it (FLAME_ERR_CANCELLED) or timeout_ms passes (FLAME_ERR_TIMEOUT;
 * timeout_ms < 0 waits for ever). If the session manager restarts on the
 * way, the watch comes back (the callback then sees the current state
 * again). Blocks the calling thread. */
flame_status flame_task_watch(flame_session *session, const char *task_id,
                              flame_task_watch_cb cb, void *payload, int timeout_ms);

/* Blocks until the task is terminal and returns it. A Failed task is still
 * FLAME_OK here: read out->state and out->message. FLAME_ERR_TIMEOUT after
 * timeout_ms (< 0: no limit). */
flame_status flame_task_wait(flame_task **out, flame_session *session, const char *task_id,
                             int timeout_ms);

/* A finished task, as flame_session_watch reports it (valid during the
 * callback only) and flame_session_map returns it (library-allocated).
 * Passed in arrays, so its layout is frozen. */
typedef struct flame_task_outcome {
    uint64_t task_id;
    flame_task_state state;     /* Succeed, Failed or Cancelled */
    flame_bytes output;         /* data == NULL: unset */
    const char *message;        /* the failure's message, or NULL */
    int64_t completion_time;    /* Unix ms */
} flame_task_outcome;

/* Gets outcomes in batches. Return 0 to go on, non-zero to stop. */
typedef int (*flame_session_watch_cb)(const flame_task_outcome *outcomes, size_t n,
                                      void *payload);

/* Reports the outcome of every task with id >= from_task_id as it finishes
 * (those already finished first), in batches, over one stream; if the
 * session manager restarts on the way, the stream comes back and no
 * outcome is reported twice. Returns
 * FLAME_OK when the callback stops it or when the session is closed and has
 * nothing left to run; FLAME_ERR_TIMEOUT after timeout_ms (< 0: no limit).
 * Blocks the calling thread; the callback runs on it. */
flame_status flame_session_watch(flame_session *session, uint64_t from_task_id,
                                 flame_session_watch_cb cb, void *payload, int timeout_ms);

/* Runs one task per input and waits for all of them: submits the n inputs
 * as flame_task_create_many does (inputs[i].data NULL: that task has no
 * input; inputs NULL: n tasks without input), then collects their outcomes
 * as flame_session_watch does (riding out a session-manager restart).
 * On FLAME_OK, *out is an array of n outcomes in input order: (*out)[i] is
 * the outcome of inputs[i], Succeed, Failed or Cancelled. A task that
 * failed is not an error of the call: read its state and message. The
 * array and everything in it belong to the caller: free with
 * flame_task_outcome_list_free(*out, n); outputs are NUL-terminated past
 * their length. n == 0: *out is NULL.
 * Errors (*out untouched): those of flame_task_create_many (the tasks of
 * the calls that succeeded exist and run); FLAME_ERR_TIMEOUT when the
 * outcomes take more than timeout_ms (< 0: no limit; the tasks go on);
 * FLAME_ERR_CANCELLED when the session ends before all of them do.
 * Blocks the calling thread. Thread-safe: several maps may run on one
 * session at once. */
flame_status flame_session_map(flame_task_outcome **out, flame_session *session,
                               const flame_bytes *inputs, size_t n, int timeout_ms);

/* Frees what flame_session_map returned. NULL is a no-op. */
void flame_task_outcome_list_free(flame_task_outcome *outcomes, size_t count);

/* A stream that submits tasks and receives their outcomes on one
 * connection (no call per task): the low-latency way to run tasks one
 * after another. submit() and next() may run on different threads; one
 * thread at a time for each. Free with flame_session_stream_close(). */
typedef struct flame_session_stream flame_session_stream;

flame_status flame_session_stream_open(flame_session_stream **out, flame_session *session);

/* Sends n tasks (inputs as for flame_task_create_many). Returns once sent;
 * the server acknowledges them through next(). */
flame_status flame_session_stream_submit(flame_session_stream *st, const flame_bytes *inputs,
                                         size_t n);

/* Blocks for the next message: calls cb with its outcomes (if any) and
 * sets *acked_upto (may be NULL) to the highest task id known committed.
 * FLAME_ERR_CANCELLED once the stream has ended. */
flame_status flame_session_stream_next(flame_session_stream *st, flame_session_watch_cb cb,
                                       void *payload, uint64_t *acked_upto);

/* Ends the stream (tasks already submitted still run) and frees it. */
void flame_session_stream_close(flame_session_stream *st);

void flame_task_free(flame_task *task);
void flame_task_list_free(flame_task **tasks, size_t count);

/* ---- executors and nodes ----------------------------------------------- */

/* Allocated by the library only (fields may be appended); free with the
 * matching *_list_free(). */
typedef struct flame_executor_info {
    const char *id;
    const char *node;
    flame_executor_state state;
    const char *session_id;     /* NULL when not bound */
    flame_resreq resreq;
    flame_shim shim;
} flame_executor_info;

typedef struct flame_node_info {
    const char *name;
    const char *hostname;
    flame_node_state state;
    flame_resreq capacity;
    flame_resreq allocatable;
    const char *arch;
    const char *os;
    int64_t last_heartbeat_time; /* Unix seconds */
} flame_node_info;

flame_status flame_executor_list(flame_executor_info ***out, size_t *count, flame_client *client);
void flame_executor_info_list_free(flame_executor_info **list, size_t count);

flame_status flame_node_list(flame_node_info ***out, size_t *count, flame_client *client);
void flame_node_info_list_free(flame_node_info **list, size_t count);

#ifdef __cplusplus
}
#endif

#endif
