/* Integration: a real session manager on a loopback port, driven through
 * the client core (client.h) and, for malformed input, the raw rpc layer. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <flame/flame.h>

#include "../failing_store.h"
#include "rpc/rpc.h"
#include "sm/sm.h"

static flame_session_manager *sm;
static flame_client *client;
static char db[256], endpoint[64];

/* store NULL: the sqlite database db. */
static void start_sm_on(size_t max_message, fl_store *store)
{
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    char storage[300];
    snprintf(storage, sizeof storage, "sqlite://%s", db);
    o.endpoint = "http://127.0.0.1:0";
    o.storage = storage;
    o.max_message_size = max_message;
    ck_assert_int_eq(sm_start(&sm, &o, store), FLAME_OK);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", flame_session_manager_port(sm));
    flame_client_options co = FLAME_CLIENT_OPTIONS_INIT;
    co.endpoint = endpoint;
    ck_assert_int_eq(flame_client_connect(&client, &co), FLAME_OK);
}

static void start_sm(size_t max_message)
{
    start_sm_on(max_message, NULL);
}

static void stop_sm(void)
{
    flame_client_free(client);
    client = NULL;
    flame_session_manager_stop(sm);
    sm = NULL;
}

static void setup(void)
{
    snprintf(db, sizeof db, "/tmp/flame-test-sm-%d.db", getpid());
    unlink(db);
    start_sm(0);
}

static void teardown(void)
{
    stop_sm();
    char p[300];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
}

static void register_app(const char *name)
{
    flame_application_spec spec = FLAME_APPLICATION_SPEC_INIT;
    spec.command = "/bin/true";
    ck_assert_int_eq(flame_application_register(client, name, &spec), FLAME_OK);
}

static flame_session *new_session(const char *app, const char *id)
{
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = app;
    flame_session *s = NULL;
    ck_assert_msg(flame_session_create(&s, client, id, &spec) == FLAME_OK, "%s",
                  flame_error_last());
    return s;
}

START_TEST(applications)
{
    const char *labels[] = { "a", "b" };
    const char *args[] = { "-m", "svc" };
    flame_env envs[] = { { "K", "V" } };
    flame_application_spec spec = FLAME_APPLICATION_SPEC_INIT;
    spec.description = "desc";
    spec.labels = labels;
    spec.labels_len = 2;
    spec.command = "/usr/bin/python3";
    spec.arguments = args;
    spec.arguments_len = 2;
    spec.environments = envs;
    spec.environments_len = 1;
    spec.working_directory = "/tmp";
    spec.has_max_instances = 1;
    spec.max_instances = 3;
    spec.schema_input = "{\"type\":\"string\"}";
    spec.url = "https://example.invalid/app";
    ck_assert_int_eq(flame_application_register(client, "py-app", &spec), FLAME_OK);
    ck_assert_int_eq(flame_application_register(client, "py-app", &spec), FLAME_ERR_ALREADY_EXISTS);
    ck_assert_int_eq(flame_application_register(client, "bad/name", &spec),
                     FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "invalid application name"));
    spec.working_directory = "relative";
    ck_assert_int_eq(flame_application_register(client, "other", &spec), FLAME_ERR_INVALID_ARGUMENT);
    spec.working_directory = "/tmp";
    spec.schema_output = "{oops";
    ck_assert_int_eq(flame_application_register(client, "other", &spec), FLAME_ERR_INVALID_ARGUMENT);

    flame_application *a;
    ck_assert_int_eq(flame_application_get(&a, client, "py-app"), FLAME_OK);
    ck_assert_str_eq(a->name, "py-app");
    ck_assert_str_eq(a->spec->description, "desc");
    ck_assert_uint_eq(a->spec->labels_len, 2);
    ck_assert_str_eq(a->spec->labels[1], "b");
    ck_assert_str_eq(a->spec->arguments[1], "svc");
    ck_assert_str_eq(a->spec->environments[0].value, "V");
    ck_assert_str_eq(a->spec->working_directory, "/tmp");
    ck_assert(a->spec->has_max_instances && a->spec->max_instances == 3);
    ck_assert(!a->spec->has_delay_release); /* unset stays unset */
    ck_assert_ptr_null(a->spec->image);
    ck_assert_ptr_null(a->spec->installer);
    ck_assert_str_eq(a->spec->url, "https://example.invalid/app");
    ck_assert_str_eq(a->spec->schema_input, "{\"type\":\"string\"}");
    ck_assert_ptr_null(a->spec->schema_output);
    ck_assert_int_gt(a->creation_time, 1600000000000LL);
    flame_application_free(a);

    ck_assert_int_eq(flame_application_get(&a, client, "nope"), FLAME_ERR_NOT_FOUND);

    flame_application **list;
    size_t n;
    ck_assert_int_eq(flame_application_list(&list, &n, client), FLAME_OK);
    ck_assert_uint_eq(n, 4); /* flmexec, flmping, flmrun (Flame's built-ins), py-app */
    ck_assert_str_eq(list[0]->name, "flmexec");
    ck_assert_str_eq(list[0]->spec->sandbox, "process"); /* never the node's default */
    ck_assert_str_eq(list[0]->spec->command, "${FLAME_HOME}/bin/flmexec-service");
    ck_assert_uint_eq(list[0]->spec->max_instances, 1000000);
    ck_assert_int_eq(list[0]->spec->delay_release, 60);
    ck_assert_str_eq(list[1]->name, "flmping");
    ck_assert_str_eq(list[1]->spec->url, "file://${FLAME_HOME}/bin/flmping-service");
    ck_assert_str_eq(list[2]->name, "flmrun");
    ck_assert_str_eq(list[2]->spec->installer, "python");
    ck_assert_uint_eq(list[2]->spec->arguments_len, 6);
    ck_assert_str_eq(list[2]->spec->arguments[2], "python${FLAME_PYTHON_VERSION}");
    ck_assert_str_eq(list[3]->name, "py-app");
    flame_application_list_free(list, n);

    /* update and unregister are refused while a session is open */
    flame_session *s = new_session("py-app", "s-app");
    spec.schema_output = NULL;
    spec.description = "new";
    ck_assert_int_eq(flame_application_update(client, "py-app", &spec),
                     FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_int_eq(flame_application_unregister(client, "py-app"), FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_int_eq(flame_session_close(s), FLAME_OK);
    ck_assert_int_eq(flame_application_update(client, "py-app", &spec), FLAME_OK);
    ck_assert_int_eq(flame_application_get(&a, client, "py-app"), FLAME_OK);
    ck_assert_str_eq(a->spec->description, "new");
    flame_application_free(a);
    /* unregister deletes its closed sessions */
    ck_assert_int_eq(flame_application_unregister(client, "py-app"), FLAME_OK);
    flame_session_info *info;
    ck_assert_int_eq(flame_session_get(&info, client, "s-app"), FLAME_ERR_NOT_FOUND);
    ck_assert_int_eq(flame_application_unregister(client, "py-app"), FLAME_ERR_NOT_FOUND);
    flame_session_free(s);
}
END_TEST

START_TEST(sessions)
{
    register_app("app");
    flame_session *s = new_session("app", "sess-1");
    ck_assert_str_eq(flame_session_id(s), "sess-1");
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = "app";
    flame_session *dup = NULL;
    ck_assert_int_eq(flame_session_create(&dup, client, "sess-1", &spec), FLAME_ERR_ALREADY_EXISTS);
    ck_assert_int_eq(flame_session_create(&dup, client, "bad id", &spec), FLAME_ERR_INVALID_ARGUMENT);
    spec.application = "missing";
    ck_assert_int_eq(flame_session_create(&dup, client, "x", &spec), FLAME_ERR_NOT_FOUND);
    spec.application = "app";
    spec.min_instances = 3;
    spec.has_max_instances = 1;
    spec.max_instances = 1;
    ck_assert_int_eq(flame_session_create(&dup, client, "x", &spec), FLAME_ERR_INVALID_ARGUMENT);

    /* no id given: the library names it <app>-<6 chars> */
    flame_session *gen = new_session("app", NULL);
    ck_assert_int_eq(strncmp(flame_session_id(gen), "app-", 4), 0);
    ck_assert_uint_eq(strlen(flame_session_id(gen)), 10);

    /* open: get-or-create, spec must match */
    flame_session_spec sp = FLAME_SESSION_SPEC_INIT;
    sp.application = "app";
    flame_session *o = NULL;
    ck_assert_int_eq(flame_session_open(&o, client, "sess-1", &sp), FLAME_OK);
    flame_session_free(o);
    ck_assert_int_eq(flame_session_open(&o, client, "sess-1", NULL), FLAME_OK);
    flame_session_free(o);
    sp.priority = 5;
    ck_assert_int_eq(flame_session_open(&o, client, "sess-1", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "priority"));
    ck_assert_int_eq(flame_session_open(&o, client, "sess-new", NULL), FLAME_ERR_NOT_FOUND);
    ck_assert_int_eq(flame_session_open(&o, client, "sess-new", &sp), FLAME_OK);
    flame_session_info *info;
    ck_assert_int_eq(flame_session_get(&info, client, "sess-new"), FLAME_OK);
    ck_assert_uint_eq(info->spec->priority, 5);
    ck_assert(info->spec->has_resreq); /* the cluster default was applied */
    ck_assert_uint_eq(info->spec->resreq.cpu, 1);
    flame_session_info_free(info);

    /* close: pending tasks are cancelled, then no new tasks */
    ck_assert_int_eq(flame_task_create(NULL, o, "a", 1), FLAME_OK);
    ck_assert_int_eq(flame_task_create(NULL, o, "b", 1), FLAME_OK);
    ck_assert_int_eq(flame_session_close(o), FLAME_OK);
    ck_assert_int_eq(flame_session_get(&info, client, "sess-new"), FLAME_OK);
    ck_assert_int_eq(info->state, FLAME_SESSION_CLOSED);
    ck_assert_int_eq(info->cancelled, 2);
    ck_assert_int_eq(info->pending, 0);
    ck_assert_int_gt(info->completion_time, 0);
    flame_session_info_free(info);
    ck_assert_int_eq(flame_session_close(o), FLAME_OK); /* again: fine */
    ck_assert_int_eq(flame_task_create(NULL, o, "c", 1), FLAME_ERR_INVALID_ARGUMENT);
    flame_session *o2;
    ck_assert_int_eq(flame_session_open(&o2, client, "sess-new", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_str_eq(flame_error_last(), "session sess-new is not open");

    /* list shows Open and Closed sessions in creation order */
    flame_session_info **list;
    size_t n;
    ck_assert_int_eq(flame_session_list(&list, &n, client), FLAME_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(list[0]->id, "sess-1");
    ck_assert_str_eq(list[2]->id, "sess-new");
    ck_assert_int_eq(list[2]->state, FLAME_SESSION_CLOSED);
    flame_session_info_list_free(list, n);

    ck_assert_int_eq(flame_session_delete(client, "sess-new"), FLAME_OK);
    ck_assert_int_eq(flame_session_get(&info, client, "sess-new"), FLAME_ERR_NOT_FOUND);
    ck_assert_int_eq(flame_session_get(&info, client, "nope"), FLAME_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "session nope not found"));
    flame_session_free(o);
    flame_session_free(s);
    flame_session_free(gen);
}
END_TEST

START_TEST(tasks)
{
    register_app("app");
    flame_session *s = new_session("app", "t-1");
    flame_task *t;
    ck_assert_int_eq(flame_task_create(&t, s, "hello", 5), FLAME_OK);
    ck_assert_str_eq(t->id, "1");
    ck_assert_str_eq(t->session_id, "t-1");
    ck_assert_int_eq(t->state, FLAME_TASK_PENDING);
    ck_assert_uint_eq(t->input.len, 5);
    ck_assert_int_eq(memcmp(t->input.data, "hello", 5), 0);
    ck_assert_ptr_null(t->output.data);
    flame_task_free(t);
    ck_assert_int_eq(flame_task_create(&t, s, NULL, 0), FLAME_OK);
    ck_assert_str_eq(t->id, "2");
    ck_assert_ptr_null(t->input.data); /* unset input stays unset */
    flame_task_free(t);
    ck_assert_int_eq(flame_task_create(&t, s, "", 0), FLAME_OK);
    ck_assert_ptr_nonnull(t->input.data); /* empty but set */
    ck_assert_uint_eq(t->input.len, 0);
    flame_task_free(t);

    ck_assert_int_eq(flame_task_get(&t, s, "1"), FLAME_OK);
    ck_assert_int_eq(memcmp(t->input.data, "hello", 5), 0);
    ck_assert_uint_eq(t->events_len, 1);
    flame_task_free(t);
    ck_assert_int_eq(flame_task_get(&t, s, "99"), FLAME_ERR_NOT_FOUND);
    ck_assert_int_eq(flame_task_get(&t, s, "abc"), FLAME_ERR_NOT_FOUND);

    flame_task **list;
    size_t n;
    ck_assert_int_eq(flame_task_list(&list, &n, s), FLAME_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(list[2]->id, "3");
    flame_task_list_free(list, n);

    /* a pending task does not finish by itself: wait times out */
    ck_assert_int_eq(flame_task_wait(&t, s, "1", 200), FLAME_ERR_TIMEOUT);

    flame_session *ghost;
    ck_assert_int_eq(flame_session_open(&ghost, client, "t-1", NULL), FLAME_OK);
    flame_session_free(ghost);
    flame_session_free(s);
}
END_TEST

typedef struct watch_log {
    int states[8];
    int n;
} watch_log;

static int record(const flame_task *t, void *payload)
{
    watch_log *l = payload;
    if (l->n < 8)
        l->states[l->n++] = t->state;
    return 0;
}

static void *watcher(void *arg)
{
    flame_session *s = arg;
    static watch_log log;
    memset(&log, 0, sizeof log);
    flame_status st = flame_task_watch(s, "1", record, &log, 10000);
    return st == FLAME_OK ? &log : NULL;
}

START_TEST(watch_sees_current_state_then_changes)
{
    register_app("app");
    flame_session *s = new_session("app", "w-1");
    ck_assert_int_eq(flame_task_create(NULL, s, "x", 1), FLAME_OK);
    pthread_t th;
    pthread_create(&th, NULL, watcher, s);
    usleep(200000); /* let the watch start */
    ck_assert_int_eq(flame_session_close(s), FLAME_OK);
    void *res;
    pthread_join(th, &res);
    ck_assert_ptr_nonnull(res);
    watch_log *log = res;
    ck_assert_int_eq(log->n, 2);
    ck_assert_int_eq(log->states[0], FLAME_TASK_PENDING);
    ck_assert_int_eq(log->states[1], FLAME_TASK_CANCELLED);
    /* watching a finished task: one message, then the end */
    watch_log again = { 0 };
    ck_assert_int_eq(flame_task_watch(s, "1", record, &again, 5000), FLAME_OK);
    ck_assert_int_eq(again.n, 1);
    ck_assert_int_eq(again.states[0], FLAME_TASK_CANCELLED);
    flame_task *t;
    ck_assert_int_eq(flame_task_wait(&t, s, "1", 5000), FLAME_OK);
    ck_assert_int_eq(t->state, FLAME_TASK_CANCELLED);
    ck_assert_str_eq(t->message, "session closed");
    flame_task_free(t);
    watch_log none = { 0 };
    ck_assert_int_eq(flame_task_watch(s, "7", record, &none, 5000), FLAME_ERR_NOT_FOUND);
    flame_session_free(s);
}
END_TEST

typedef struct par {
    flame_session *s;
    int ok;
} par;

static void *submit_many(void *arg)
{
    par *p = arg;
    for (int i = 0; i < 50; i++)
        if (flame_task_create(NULL, p->s, "x", 1) == FLAME_OK)
            p->ok++;
    return NULL;
}

START_TEST(many_threads_one_client)
{
    register_app("app");
    flame_session *s = new_session("app", "mt");
    pthread_t th[8];
    par ps[8];
    for (int i = 0; i < 8; i++) {
        ps[i] = (par){ s, 0 };
        pthread_create(&th[i], NULL, submit_many, &ps[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(ps[i].ok, 50);
    }
    flame_task **list;
    size_t n;
    ck_assert_int_eq(flame_task_list(&list, &n, s), FLAME_OK);
    ck_assert_uint_eq(n, 400);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%zu", i + 1);
        ck_assert_str_eq(list[i]->id, id);
    }
    flame_task_list_free(list, n);
    flame_session_info *info;
    ck_assert_int_eq(flame_session_get(&info, client, "mt"), FLAME_OK);
    ck_assert_int_eq(info->pending, 400);
    flame_session_info_free(info);
    flame_session_free(s);
}
END_TEST

START_TEST(restart_keeps_state)
{
    register_app("app");
    flame_session *s = new_session("app", "r-1");
    ck_assert_int_eq(flame_task_create(NULL, s, "in-1", 4), FLAME_OK);
    ck_assert_int_eq(flame_task_create(NULL, s, "in-2", 4), FLAME_OK);
    flame_session *c = new_session("app", "r-closed");
    ck_assert_int_eq(flame_session_close(c), FLAME_OK);
    flame_session_free(s);
    flame_session_free(c);
    stop_sm();
    start_sm(0);
    flame_session_info *info;
    ck_assert_int_eq(flame_session_get(&info, client, "r-1"), FLAME_OK);
    ck_assert_int_eq(info->pending, 2);
    ck_assert_int_eq(info->state, FLAME_SESSION_OPEN);
    flame_session_info_free(info);
    ck_assert_int_eq(flame_session_get(&info, client, "r-closed"), FLAME_OK);
    ck_assert_int_eq(info->state, FLAME_SESSION_CLOSED);
    flame_session_info_free(info);
    ck_assert_int_eq(flame_session_open(&s, client, "r-1", NULL), FLAME_OK);
    flame_task *t;
    ck_assert_int_eq(flame_task_get(&t, s, "2"), FLAME_OK);
    ck_assert_int_eq(memcmp(t->input.data, "in-2", 4), 0);
    flame_task_free(t);
    /* ids continue after the restored ones */
    ck_assert_int_eq(flame_task_create(&t, s, NULL, 0), FLAME_OK);
    ck_assert_str_eq(t->id, "3");
    flame_task_free(t);
    flame_application *a;
    ck_assert_int_eq(flame_application_get(&a, client, "app"), FLAME_OK);
    flame_application_free(a);
    /* the open session still blocks unregistering after the restart */
    ck_assert_int_eq(flame_application_unregister(client, "app"), FLAME_ERR_FAILED_PRECONDITION);
    flame_session_free(s);
}
END_TEST

/* A write that fails fails its batch: the client hears INTERNAL, and what
 * was acknowledged before and after is there after a restart. */
START_TEST(failed_write_fails_the_reply)
{
    stop_sm();
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", db);
    failing_store *fs;
    ck_assert_int_eq(failing_store_open(&fs, url), FLAME_OK);
    start_sm_on(0, &fs->base);
    register_app("app");
    flame_session *s = new_session("app", "s-fail");
    ck_assert_int_eq(flame_task_create(NULL, s, "one", 3), FLAME_OK);
    atomic_store(&fs->fail, true);
    ck_assert_int_eq(flame_task_create(NULL, s, "two", 3), FLAME_ERR_INTERNAL);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "storage commit failed"));
    flame_bytes in[2] = { { (const uint8_t *)"x", 1 }, { (const uint8_t *)"y", 1 } };
    ck_assert_int_eq(flame_task_create_many(s, in, 2, NULL), FLAME_ERR_INTERNAL);
    atomic_store(&fs->fail, false);
    ck_assert_int_eq(flame_task_create(NULL, s, "three", 5), FLAME_OK);
    flame_session_free(s);
    stop_sm();

    start_sm(0);
    ck_assert_int_eq(flame_session_open(&s, client, "s-fail", NULL), FLAME_OK);
    flame_task **list;
    size_t n;
    ck_assert_int_eq(flame_task_list(&list, &n, s), FLAME_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(memcmp(list[0]->input.data, "one", 3), 0);
    ck_assert_int_eq(memcmp(list[1]->input.data, "three", 5), 0);
    flame_task_list_free(list, n);
    flame_session_free(s);
}
END_TEST

static int64_t session_pending(const char *id, flame_session_state *state)
{
    flame_session_info *info;
    ck_assert_int_eq(flame_session_get(&info, client, id), FLAME_OK);
    int64_t n = info->pending;
    *state = info->state;
    flame_session_info_free(info);
    return n;
}

static void assert_task_state(flame_session *s, const char *id, flame_task_state want)
{
    flame_task *t;
    ck_assert_int_eq(flame_task_get(&t, s, id), FLAME_OK);
    ck_assert_int_eq(t->state, want);
    flame_task_free(t);
}

/* What failed_batch_is_undone's failed batches did not change. */
static void assert_undone(flame_session *s)
{
    flame_session_info *info;
    ck_assert_int_eq(flame_session_get(&info, client, "u-lost"), FLAME_ERR_NOT_FOUND);
    flame_session_state state;
    ck_assert_int_eq(session_pending("u-1", &state), 1);
    ck_assert_int_eq(state, FLAME_SESSION_OPEN);
    assert_task_state(s, "1", FLAME_TASK_PENDING);
    ck_assert_int_eq(session_pending("u-closed", &state), 0);
    ck_assert_int_eq(state, FLAME_SESSION_CLOSED);
    flame_application *a;
    ck_assert_int_eq(flame_application_get(&a, client, "new"), FLAME_ERR_NOT_FOUND);
    ck_assert_int_eq(flame_application_get(&a, client, "old"), FLAME_OK);
    ck_assert_str_eq(a->spec->command, "/bin/true");
    flame_application_free(a);
    /* the open session still holds its application */
    flame_application_spec as = FLAME_APPLICATION_SPEC_INIT;
    as.command = "/bin/false";
    ck_assert_int_eq(flame_application_update(client, "app", &as), FLAME_ERR_FAILED_PRECONDITION);
}

/* A failed commit leaves memory as it was: what the batch created is gone,
 * what it deleted or changed is back, and the engine goes on. */
START_TEST(failed_batch_is_undone)
{
    stop_sm();
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", db);
    failing_store *fs;
    ck_assert_int_eq(failing_store_open(&fs, url), FLAME_OK);
    start_sm_on(0, &fs->base);
    register_app("app");
    register_app("old");
    flame_session *s = new_session("app", "u-1");
    ck_assert_int_eq(flame_task_create(NULL, s, "one", 3), FLAME_OK);
    flame_session *c = new_session("app", "u-closed");
    ck_assert_int_eq(flame_session_close(c), FLAME_OK);

    atomic_store(&fs->fail, true);
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = "app";
    flame_session *x = NULL;
    ck_assert_int_eq(flame_session_create(&x, client, "u-lost", &spec), FLAME_ERR_INTERNAL);
    ck_assert_msg(strstr(flame_error_last(), "injected write failure"), "%s", flame_error_last());
    ck_assert_int_eq(flame_session_close(s), FLAME_ERR_INTERNAL);
    ck_assert_int_eq(flame_session_delete(client, "u-closed"), FLAME_ERR_INTERNAL);
    flame_application_spec as = FLAME_APPLICATION_SPEC_INIT;
    as.command = "/bin/false";
    ck_assert_int_eq(flame_application_register(client, "new", &as), FLAME_ERR_INTERNAL);
    ck_assert_int_eq(flame_application_update(client, "old", &as), FLAME_ERR_INTERNAL);
    ck_assert_int_eq(flame_application_unregister(client, "old"), FLAME_ERR_INTERNAL);
    ck_assert_int_eq(flame_task_create(NULL, s, "two", 3), FLAME_ERR_INTERNAL);
    atomic_store(&fs->fail, false);
    assert_undone(s);
    /* and the disk says the same */
    flame_session_free(s);
    flame_session_free(c);
    stop_sm();
    start_sm(0);
    ck_assert_int_eq(flame_session_open(&s, client, "u-1", NULL), FLAME_OK);
    ck_assert_int_eq(flame_session_attach(&c, client, "u-closed"), FLAME_OK);
    assert_undone(s);

    /* ids continue after what was acknowledged; the undone changes can be made */
    flame_task *t;
    ck_assert_int_eq(flame_task_create(&t, s, "three", 5), FLAME_OK);
    ck_assert_str_eq(t->id, "2");
    flame_task_free(t);
    ck_assert_int_eq(flame_session_close(s), FLAME_OK);
    assert_task_state(s, "1", FLAME_TASK_CANCELLED);
    ck_assert_int_eq(flame_session_delete(client, "u-closed"), FLAME_OK);
    ck_assert_int_eq(flame_application_unregister(client, "old"), FLAME_OK);
    flame_session_free(s);
    flame_session_free(c);
}
END_TEST

/* A real full database (sqlite capped at its size: SQLITE_FULL, as on a
 * full disk): the clients whose tasks did not fit hear INTERNAL with
 * sqlite's words, those tasks are not listed, what was acknowledged before
 * is intact, new work commits once there is room, and a restart shows
 * exactly what the clients were told. */
START_TEST(full_disk_tells_the_truth)
{
    stop_sm();
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", db);
    failing_store *fs;
    ck_assert_int_eq(failing_store_open(&fs, url), FLAME_OK);
    start_sm_on(0, &fs->base);
    register_app("app");
    flame_session *s = new_session("app", "full");
    ck_assert_int_eq(flame_task_create(NULL, s, "first", 5), FLAME_OK);
    atomic_store(&fs->cap, 1);
    static uint8_t big[3000];
    int acked = 1, failed = 0;
    for (int i = 0; i < 200 && failed < 5; i++) {
        memset(big, 'a' + i % 26, sizeof big);
        flame_task *t = NULL;
        flame_status r = flame_task_create(&t, s, big, sizeof big);
        if (r == FLAME_OK) {
            ck_assert_int_eq(atoi(t->id), acked + 1);
            acked++;
            flame_task_free(t);
            continue;
        }
        ck_assert_int_eq(r, FLAME_ERR_INTERNAL);
        ck_assert_msg(strstr(flame_error_last(), "database or disk is full"), "%s",
                      flame_error_last());
        failed++;
    }
    ck_assert_int_eq(failed, 5);
    flame_bytes in[2] = { { big, sizeof big }, { big, sizeof big } };
    ck_assert_int_eq(flame_task_create_many(s, in, 2, NULL), FLAME_ERR_INTERNAL);

    flame_task **list;
    size_t n;
    ck_assert_int_eq(flame_task_list(&list, &n, s), FLAME_OK);
    ck_assert_uint_eq(n, (size_t)acked);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(list[i]->state, FLAME_TASK_PENDING);
    ck_assert_int_eq(memcmp(list[0]->input.data, "first", 5), 0);
    flame_task_list_free(list, n);

    atomic_store(&fs->cap, 0); /* room again */
    flame_task *t;
    ck_assert_int_eq(flame_task_create(&t, s, "after", 5), FLAME_OK);
    ck_assert_int_eq(atoi(t->id), acked + 1);
    flame_task_free(t);
    flame_session_free(s);
    stop_sm();

    start_sm(0);
    ck_assert_int_eq(flame_session_open(&s, client, "full", NULL), FLAME_OK);
    ck_assert_int_eq(flame_task_list(&list, &n, s), FLAME_OK);
    ck_assert_uint_eq(n, (size_t)acked + 1);
    ck_assert_int_eq(memcmp(list[n - 1]->input.data, "after", 5), 0);
    flame_task_list_free(list, n);
    flame_session_free(s);
}
END_TEST

/* A database that cannot be read completely stops the start, naming the
 * file and the table: no session manager on part of its state. */
START_TEST(damaged_database_stops_the_start)
{
    register_app("app");
    stop_sm(); /* the last connection folds the WAL into the file */
    FILE *f = fopen(db, "r+b");
    ck_assert_ptr_nonnull(f);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    ck_assert_int_eq(fseek(f, 4096, SEEK_SET), 0); /* page 2: the applications table */
    ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    char storage[300];
    snprintf(storage, sizeof storage, "sqlite://%s", db);
    o.endpoint = "http://127.0.0.1:0";
    o.storage = storage;
    flame_session_manager *x = NULL;
    ck_assert_int_eq(flame_session_manager_start(&x, &o), FLAME_ERR_IO);
    ck_assert_ptr_null(x);
    ck_assert_msg(strstr(flame_error_last(), db) && strstr(flame_error_last(), "table applications"),
                  "%s", flame_error_last());
}
END_TEST

START_TEST(bad_input_keeps_daemon_up)
{
    char *target = endpoint + strlen("http://");
    rpc_channel *ch;
    ck_assert_int_eq(rpc_channel_new(&ch, target, NULL), FLAME_OK);
    uint8_t *resp = NULL;
    size_t len;
    const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99 };
    ck_assert_int_eq(rpc_unary_raw(ch, "/flame.v1.Frontend/CreateTask", garbage, sizeof garbage,
                                   &resp, &len, 5000),
                     FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "malformed"));
    ck_assert_int_eq(rpc_unary_raw(ch, "/flame.v1.Frontend/NoSuchRpc", garbage, 0, &resp, &len, 5000),
                     FLAME_ERR_UNIMPLEMENTED);
    ck_assert_int_eq(rpc_unary_raw(ch, "/other.Service/Call", garbage, 1, &resp, &len, 5000),
                     FLAME_ERR_UNIMPLEMENTED);
    /* a request with no fields is valid protobuf: CreateTask without a spec */
    ck_assert_int_eq(rpc_unary_raw(ch, "/flame.v1.Frontend/CreateTask", garbage, 0, &resp, &len, 5000),
                     FLAME_ERR_INVALID_ARGUMENT);
    rpc_channel_free(ch);
    /* still serving */
    flame_application **list;
    size_t n;
    ck_assert_int_eq(flame_application_list(&list, &n, client), FLAME_OK);
    flame_application_list_free(list, n);
}
END_TEST

START_TEST(oversized_input)
{
    stop_sm();
    start_sm(1 << 20); /* the server takes at most 1 MiB */
    register_app("app");
    flame_session *s = new_session("app", "big");
    size_t n = 2 << 20;
    char *big = calloc(1, n);
    ck_assert_int_eq(flame_task_create(NULL, s, big, n), FLAME_ERR_RESOURCE_EXHAUSTED);
    /* an input leaves room for its output in a Task reply: (1 MiB - 64 KiB) / 2 */
    ck_assert_int_eq(flame_task_create(NULL, s, big, 512 << 10), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "above the limit of 491520"));
    ck_assert_int_eq(flame_task_create(NULL, s, big, 480 << 10), FLAME_OK);
    free(big);
    flame_session_free(s);
}
END_TEST

/* The last line of defence for stored specs, reached here without rpc/'s
 * generic check (which refuses this field 0 first): a spec whose re-packed
 * bytes would not unpack is refused, not lost at the next restart. */
START_TEST(app_spec_must_repack)
{
    /* {name "x"; application: {<field 0, padded tag>, command "c"}} */
    const uint8_t bytes[] = { 0x0a, 0x01, 'x', 0x12, 0x06, 0x80, 0x00, 0x01, 0x2a, 0x01, 'c' };
    ProtobufCMessage *req = protobuf_c_message_unpack(
        &flame__v1__register_application_request__descriptor, NULL, sizeof bytes, bytes);
    ck_assert_ptr_nonnull(req);
    sm_t fake = { 0 };
    char why[256] = "";
    ck_assert_int_eq(sm_validate_request(NULL, req, why, sizeof why, &fake), RPC_INVALID_ARGUMENT);
    ck_assert_str_eq(why, "field RegisterApplicationRequest.application: does not encode back to "
                          "a valid ApplicationSpec");
    protobuf_c_message_free_unpacked(req, NULL);
}
END_TEST

static int count_cancelled(const flame_task_outcome *o, size_t n, void *payload)
{
    size_t *c = payload;
    for (size_t i = 0; i < n; i++)
        if (o[i].state == FLAME_TASK_CANCELLED && o[i].message)
            (*c)++;
    return 0;
}

START_TEST(batched_client_api)
{
    register_app("app");
    flame_session *s = new_session("app", "batch");
    size_t n = 20000;
    flame_bytes *in = calloc(n, sizeof *in);
    for (size_t i = 0; i < n; i++)
        if (i % 3)
            in[i] = (flame_bytes){ (const uint8_t *)"abc", 3 }; /* every third has none */
    uint64_t *ids = calloc(n, sizeof *ids);
    ck_assert_int_eq(flame_task_create_many(s, in, n, ids), FLAME_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(ids[i], i + 1);
    flame_task *t;
    ck_assert_int_eq(flame_task_get(&t, s, "3"), FLAME_OK);
    ck_assert_int_eq(memcmp(t->input.data, "abc", 3), 0);
    flame_task_free(t);
    ck_assert_int_eq(flame_task_get(&t, s, "4"), FLAME_OK);
    ck_assert_ptr_null(t->input.data);
    flame_task_free(t);

    /* RunSession: acknowledgements, then the outcomes of its own tasks */
    flame_session_stream *st;
    ck_assert_int_eq(flame_session_stream_open(&st, s), FLAME_OK);
    flame_bytes two[2] = { { (const uint8_t *)"x", 1 }, { (const uint8_t *)"y", 1 } };
    ck_assert_int_eq(flame_session_stream_submit(st, two, 2), FLAME_OK);
    uint64_t acked = 0;
    size_t cancelled = 0;
    ck_assert_int_eq(flame_session_stream_next(st, count_cancelled, &cancelled, &acked), FLAME_OK);
    while (acked == 0)
        ck_assert_int_eq(flame_session_stream_next(st, count_cancelled, &cancelled, &acked), FLAME_OK);
    ck_assert_uint_eq(acked, n + 2);
    ck_assert_int_eq(flame_session_close(s), FLAME_OK); /* no executor: all Pending -> Cancelled */
    flame_status rc;
    while ((rc = flame_session_stream_next(st, count_cancelled, &cancelled, &acked)) == FLAME_OK)
        ;
    ck_assert_int_eq(rc, FLAME_ERR_CANCELLED); /* the stream ended with the session */
    ck_assert_uint_eq(cancelled, 2);
    flame_session_stream_close(st);
    ck_assert_int_eq(flame_session_stream_submit(NULL, two, 1), FLAME_ERR_INVALID_ARGUMENT);

    /* WatchSession of a closed session: everything, then the end */
    size_t all = 0;
    ck_assert_int_eq(flame_session_watch(s, 1, count_cancelled, &all, 10000), FLAME_OK);
    ck_assert_uint_eq(all, n + 2);
    ck_assert_int_eq(flame_task_create_many(s, NULL, 5, NULL), FLAME_ERR_INVALID_ARGUMENT);
    free(in);
    free(ids);
    flame_session_free(s);
}
END_TEST

static void *close_later(void *arg)
{
    usleep(300 * 1000);
    ck_assert_int_eq(flame_session_close(arg), FLAME_OK);
    return NULL;
}

/* flame_session_map with no executor: nothing finishes until the session
 * is closed, which cancels every task; the outcomes come back in input
 * order, interleaved with another client's tasks or not. */
START_TEST(session_map)
{
    register_app("app");
    flame_session *s = new_session("app", "map");
    flame_task_outcome *out = (flame_task_outcome *)&out;
    ck_assert_int_eq(flame_session_map(&out, s, NULL, 0, -1), FLAME_OK);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(flame_session_map(NULL, s, NULL, 1, -1), FLAME_ERR_INVALID_ARGUMENT);
    flame_bytes in[3] = { { (const uint8_t *)"a", 1 }, { NULL, 0 }, { (const uint8_t *)"c", 1 } };
    ck_assert_int_eq(flame_session_map(&out, s, in, 3, 200), FLAME_ERR_TIMEOUT); /* tasks 1-3 */
    ck_assert_int_eq(flame_task_create(NULL, s, "x", 1), FLAME_OK);            /* task 4 */
    pthread_t th;
    pthread_create(&th, NULL, close_later, s);
    ck_assert_msg(flame_session_map(&out, s, in, 3, 10000) == FLAME_OK, "%s", flame_error_last());
    pthread_join(th, NULL);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(out[i].task_id, 5 + i); /* in input order */
        ck_assert_int_eq(out[i].state, FLAME_TASK_CANCELLED);
        ck_assert_ptr_nonnull(out[i].message);
        ck_assert_ptr_null(out[i].output.data);
    }
    flame_task_outcome_list_free(out, 3);
    ck_assert_int_eq(flame_session_map(&out, s, in, 3, -1), FLAME_ERR_INVALID_ARGUMENT);
    flame_session_free(s);
}
END_TEST

/* The flame_*_init functions the bindings use give what the macros give. */
START_TEST(init_functions_match_the_macros)
{
#define SAME(type, fn, macro)                                                                      \
    do {                                                                                           \
        type a, b;                                                                                 \
        memset(&a, 0, sizeof a); /* padding equal in both */                                       \
        memset(&b, 0, sizeof b);                                                                   \
        fn(&a);                                                                                    \
        b = (type)macro;                                                                           \
        ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);                                             \
    } while (0)
    SAME(flame_client_options, flame_client_options_init, FLAME_CLIENT_OPTIONS_INIT);
    SAME(flame_application_spec, flame_application_spec_init, FLAME_APPLICATION_SPEC_INIT);
    SAME(flame_session_spec, flame_session_spec_init, FLAME_SESSION_SPEC_INIT);
    SAME(flame_executor_options, flame_executor_options_init, FLAME_EXECUTOR_OPTIONS_INIT);
    SAME(flame_server_options, flame_server_options_init, FLAME_SERVER_OPTIONS_INIT);
#undef SAME
}
END_TEST

int main(void)
{
    Suite *su = suite_create("session-manager");
    TCase *tc = tcase_create("frontend");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, applications);
    tcase_add_test(tc, sessions);
    tcase_add_test(tc, tasks);
    tcase_add_test(tc, watch_sees_current_state_then_changes);
    tcase_add_test(tc, many_threads_one_client);
    tcase_add_test(tc, restart_keeps_state);
    tcase_add_test(tc, failed_write_fails_the_reply);
    tcase_add_test(tc, failed_batch_is_undone);
    tcase_add_test(tc, full_disk_tells_the_truth);
    tcase_add_test(tc, damaged_database_stops_the_start);
    tcase_add_test(tc, bad_input_keeps_daemon_up);
    tcase_add_test(tc, oversized_input);
    tcase_add_test(tc, app_spec_must_repack);
    tcase_add_test(tc, batched_client_api);
    tcase_add_test(tc, session_map);
    tcase_add_test(tc, init_functions_match_the_macros);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK); /* gRPC and fork() do not mix */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
