/* Unit tests of libflame/store: the sqlite engine survives a reopen; a
 * failed write fails its batch's commit, and the batch is dropped; a full
 * database names the cause; a damaged one is refused, not loaded in part;
 * the files are private. */
#include <check.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../failing_store.h"
#include "store/store.h"
#include "util/util.h"
#include "wire/wire.h"

static char dbpath[256];

static void setup(void)
{
    snprintf(dbpath, sizeof dbpath, "/tmp/flame-test-store-%d.db", getpid());
    unlink(dbpath);
}

static void teardown(void)
{
    char p[300];
    unlink(dbpath);
    snprintf(p, sizeof p, "%s-wal", dbpath);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", dbpath);
    unlink(p);
}

typedef struct loaded {
    fl_app *apps[4];
    int napps;
    fl_session *sessions[4];
    int nsessions;
    fl_task *tasks[8];
    char sids[8][32];
    int ntasks;
} loaded;

static void on_app(void *ctx, fl_app *a)
{
    loaded *l = ctx;
    l->apps[l->napps++] = a;
}
static void on_session(void *ctx, fl_session *s)
{
    loaded *l = ctx;
    l->sessions[l->nsessions++] = s;
}
static void on_task(void *ctx, const char *sid, fl_task *t)
{
    loaded *l = ctx;
    snprintf(l->sids[l->ntasks], sizeof l->sids[0], "%s", sid);
    l->tasks[l->ntasks++] = t;
}

static void free_loaded(loaded *l)
{
    for (int i = 0; i < l->napps; i++)
        fl_app_free(l->apps[i]);
    for (int i = 0; i < l->nsessions; i++)
        fl_session_free(l->sessions[i]);
    for (int i = 0; i < l->ntasks; i++)
        fl_task_free(l->tasks[i]);
}

START_TEST(sqlite_roundtrip)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    Flame__V1__ApplicationSpec as = FLAME__V1__APPLICATION_SPEC__INIT;
    as._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    as.command = "/bin/echo";
    fl_app *a = fl_wire_app_new("echo", &as, 42);
    ck_assert_int_eq(fl_store_put_app(st, a), FLAME_OK);

    fl_session_spec ss = { .application = "echo" };
    ss.has_common_data = true;
    ss.common_data = (const uint8_t *)"";
    ss.common_data_len = 0; /* set but empty: must stay set */
    ss.priority = 7;
    fl_session *s = fl_session_new("sess-1", &ss, NULL, 100);
    s->seq = 1;
    ck_assert_int_eq(fl_store_put_session(st, s), FLAME_OK);
    fl_task *t1 = fl_session_add_task(s, (const uint8_t *)"in", 2, true, 101);
    fl_task *t2 = fl_session_add_task(s, NULL, 0, false, 102);
    fl_task_set_state(s, t1, FLAME_TASK_RUNNING, NULL, 103);
    fl_task_set_state(s, t1, FLAME_TASK_SUCCEED, "done", 104);
    t1->has_output = true;
    t1->output = (uint8_t *)fl_strdup("out");
    t1->output_len = 3;
    fl_task_set_state(s, t2, FLAME_TASK_RUNNING, NULL, 105);
    fl_store_put_task(st, s, t1);
    fl_store_put_task(st, s, t2);
    ck_assert_int_eq(fl_store_commit(st), FLAME_OK);
    /* an uncommitted write is not durable: it is rolled forward only by
     * commit, so close() commits what is pending */
    fl_store_close(st);

    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    loaded l = { 0 };
    ck_assert_int_eq(st->ops->load(st, &l, on_app, on_session, on_task), FLAME_OK);
    ck_assert_int_eq(l.napps, 1);
    ck_assert_str_eq(l.apps[0]->name, "echo");
    ck_assert_str_eq(l.apps[0]->spec->command, "/bin/echo");
    ck_assert_int_eq(l.apps[0]->ctime, 42);
    ck_assert_int_eq(l.nsessions, 1);
    fl_session *r = l.sessions[0];
    ck_assert_str_eq(r->id, "sess-1");
    ck_assert(r->has_common_data);
    ck_assert_uint_eq(r->common_data_len, 0);
    ck_assert(!r->has_max);
    ck_assert_uint_eq(r->priority, 7);
    ck_assert_int_eq(l.ntasks, 2);
    fl_task *r1 = l.tasks[0]->id == 1 ? l.tasks[0] : l.tasks[1];
    fl_task *r2 = l.tasks[0]->id == 1 ? l.tasks[1] : l.tasks[0];
    ck_assert_int_eq(r1->state, FLAME_TASK_SUCCEED);
    ck_assert(r1->has_input && r1->input_len == 2 && memcmp(r1->input, "in", 2) == 0);
    ck_assert(r1->has_output && r1->output_len == 3 && memcmp(r1->output, "out", 3) == 0);
    ck_assert_uint_eq(r1->events.n, 3);
    ck_assert_str_eq(fl_events_get(&r1->events, 2).message, "done");
    ck_assert_ptr_null(fl_events_get(&r1->events, 1).message);
    ck_assert_int_eq(r1->etime, 104);
    ck_assert(!r2->has_input);
    ck_assert_int_eq(r2->state, FLAME_TASK_RUNNING);
    free_loaded(&l);

    /* deleting a session deletes its tasks */
    ck_assert_int_eq(fl_store_del_session(st, "sess-1"), FLAME_OK);
    ck_assert_int_eq(fl_store_del_app(st, "echo"), FLAME_OK);
    ck_assert_int_eq(fl_store_commit(st), FLAME_OK);
    loaded l2 = { 0 };
    ck_assert_int_eq(st->ops->load(st, &l2, on_app, on_session, on_task), FLAME_OK);
    ck_assert_int_eq(l2.napps + l2.nsessions + l2.ntasks, 0);
    fl_store_close(st);
    fl_app_free(a);
    fl_session_free(s);
}
END_TEST

START_TEST(bad_urls)
{
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, "postgres://x"), FLAME_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "unknown engine"));
    ck_assert_int_eq(fl_store_open(&st, "sqlite://"), FLAME_ERR_CONFIG);
    ck_assert_int_eq(fl_store_open(&st, "sqlite:///nonexistent-dir/x/flame.db"), FLAME_ERR_IO);
    ck_assert_int_eq(fl_store_open(&st, "none"), FLAME_OK);
    ck_assert_str_eq(st->ops->name, "none");
    fl_store_close(st);
}
END_TEST

START_TEST(newer_schema_refused)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    fl_store_close(st);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "newer"));
}
END_TEST


static fl_app *test_app(const char *name)
{
    Flame__V1__ApplicationSpec as = FLAME__V1__APPLICATION_SPEC__INIT;
    as._command_case = FLAME__V1__APPLICATION_SPEC___COMMAND_COMMAND;
    as.command = "/bin/echo";
    return fl_wire_app_new(name, &as, 42);
}

START_TEST(failed_write_fails_the_commit)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    failing_store *fs;
    ck_assert_int_eq(failing_store_open(&fs, url), FLAME_OK);
    fl_store *st = &fs->base;
    fl_app *a1 = test_app("first"), *a2 = test_app("second");
    fl_session_spec ss = { .application = "first" };
    fl_session *s = fl_session_new("sess-1", &ss, NULL, 100);
    fl_task *t = fl_session_add_task(s, (const uint8_t *)"in", 2, true, 101);

    /* a batch with one failed write: the commit fails, nothing of it stays */
    ck_assert_int_eq(fl_store_put_app(st, a1), FLAME_OK);
    atomic_store(&fs->fail, true);
    ck_assert_int_eq(fl_store_put_session(st, s), FLAME_ERR_IO);
    ck_assert_int_eq(fl_store_put_task(st, s, t), FLAME_ERR_IO);
    ck_assert_int_eq(fl_store_commit(st), FLAME_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "batch was dropped"));
    /* the next batch starts clean */
    atomic_store(&fs->fail, false);
    ck_assert_int_eq(fl_store_put_app(st, a2), FLAME_OK);
    ck_assert_int_eq(fl_store_commit(st), FLAME_OK);
    fl_store_close(st);

    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    loaded l = { 0 };
    ck_assert_int_eq(st->ops->load(st, &l, on_app, on_session, on_task), FLAME_OK);
    ck_assert_int_eq(l.napps, 1);
    ck_assert_str_eq(l.apps[0]->name, "second");
    ck_assert_int_eq(l.nsessions + l.ntasks, 0);
    free_loaded(&l);
    fl_store_close(st);
    fl_app_free(a1);
    fl_app_free(a2);
    fl_session_free(s);
}
END_TEST

/* Counts what a load hands over (and frees it). */
typedef struct counted {
    int apps, sessions, tasks;
} counted;
static void count_app(void *ctx, fl_app *a)
{
    ((counted *)ctx)->apps++;
    fl_app_free(a);
}
static void count_session(void *ctx, fl_session *s)
{
    ((counted *)ctx)->sessions++;
    fl_session_free(s);
}
static void count_task(void *ctx, const char *sid, fl_task *t)
{
    ((counted *)ctx)->tasks++;
    fl_task_free(t);
}

static flame_status load_counted(fl_store *st, counted *c)
{
    *c = (counted){ 0 };
    return st->ops->load(st, c, count_app, count_session, count_task);
}

/* A session of n tasks with inputs of len bytes, committed. */
static void fill(fl_store *st, const char *sid, int n, size_t len)
{
    fl_session_spec ss = { .application = "app" };
    fl_session *s = fl_session_new(sid, &ss, NULL, 100);
    ck_assert_int_eq(fl_store_put_session(st, s), FLAME_OK);
    uint8_t *in = fl_calloc(1, len);
    for (int i = 0; i < n; i++) {
        memset(in, 'a' + i % 26, len);
        ck_assert_int_eq(fl_store_put_task(st, s, fl_session_add_task(s, in, len, true, 101)),
                         FLAME_OK);
    }
    free(in);
    ck_assert_int_eq(fl_store_commit(st), FLAME_OK);
    fl_session_free(s);
}

/* A real SQLITE_FULL (the database capped at its size): the commit fails
 * with sqlite's own words, nothing of the batch (not even its writes after
 * the failed one) is on disk, and the next batch commits once there is room. */
START_TEST(full_database_names_the_cause)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    fill(st, "before", 3, 100);
    ck_assert_int_eq(fl_store_sqlite_limit(st, 1), FLAME_OK);
    fl_session_spec ss = { .application = "app" };
    fl_session *s = fl_session_new("lost", &ss, NULL, 100);
    fl_store_put_session(st, s);
    uint8_t in[3000];
    memset(in, 'x', sizeof in);
    int failed = 0;
    for (int i = 0; i < 50; i++)
        if (fl_store_put_task(st, s, fl_session_add_task(s, in, sizeof in, true, 101)))
            failed++;
    ck_assert_int_gt(failed, 0);
    ck_assert_int_eq(fl_store_commit(st), FLAME_ERR_IO);
    ck_assert_msg(strstr(flame_error_last(), "database or disk is full") &&
                      strstr(flame_error_last(), dbpath),
                  "%s", flame_error_last());
    /* room again: the next batch commits */
    ck_assert_int_eq(fl_store_sqlite_limit(st, 0), FLAME_OK);
    fill(st, "after", 2, 100);
    fl_store_close(st);
    fl_session_free(s);

    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    counted c;
    ck_assert_int_eq(load_counted(st, &c), FLAME_OK);
    ck_assert_int_eq(c.sessions, 2);
    ck_assert_int_eq(c.tasks, 5);
    fl_store_close(st);
}
END_TEST

static void overwrite(const char *path, off_t at, size_t len)
{
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    char junk[4096];
    memset(junk, 0xa5, sizeof junk);
    ck_assert_int_eq(pwrite(fd, junk, len < sizeof junk ? len : sizeof junk, at),
                     (ssize_t)(len < sizeof junk ? len : sizeof junk));
    close(fd);
}

static void assert_refused(const char *url)
{
    fl_store *st;
    counted c;
    flame_status r = fl_store_open(&st, url);
    if (r == FLAME_OK) { /* the damage may be met only by the load */
        r = load_counted(st, &c);
        fl_store_close(st);
    }
    ck_assert_int_eq(r, FLAME_ERR_IO);
    ck_assert_msg(strstr(flame_error_last(), dbpath), "%s", flame_error_last());
}

/* A load that meets damage mid-table stops and says where, instead of
 * starting on what it could read. */
START_TEST(damaged_database_refused)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    fill(st, "s", 300, 500);
    fl_store_close(st); /* the last connection checkpoints the WAL into the file */
    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert_int_gt(sb.st_size, 40 * 4096);

    /* pages in the middle of the tasks table overwritten */
    overwrite(dbpath, 20 * 4096, 4096);
    assert_refused(url);
    ck_assert_msg(strstr(flame_error_last(), "table tasks") ||
                      strstr(flame_error_last(), "malformed"),
                  "%s", flame_error_last());

    /* the file cut in half */
    ck_assert_int_eq(truncate(dbpath, sb.st_size / 2), 0);
    assert_refused(url);
}
END_TEST

/* A row whose stored bytes do not decode stops the load too, naming the
 * table and the row. */
START_TEST(undecodable_row_refused)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    fill(st, "s", 3, 10);
    fl_store_close(st);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE tasks SET events = x'ffff' WHERE id = 2", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    counted c;
    ck_assert_int_eq(load_counted(st, &c), FLAME_ERR_IO);
    ck_assert_msg(strstr(flame_error_last(), "table tasks: row s/2: the events does not decode"),
                  "%s", flame_error_last());
    fl_store_close(st);

    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "UPDATE tasks SET events = NULL WHERE id = 2;"
                                  "INSERT INTO applications VALUES('bad', x'ffff', 0, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    ck_assert_int_eq(load_counted(st, &c), FLAME_ERR_IO);
    ck_assert_msg(strstr(flame_error_last(), "table applications: row bad"), "%s",
                  flame_error_last());
    fl_store_close(st);
}
END_TEST

static void assert_private(const char *suffix)
{
    char p[300];
    snprintf(p, sizeof p, "%s%s", dbpath, suffix);
    struct stat sb;
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_msg((sb.st_mode & 077) == 0, "%s has mode %03o", p, sb.st_mode & 0777);
}

/* The database and its WAL are the daemon user's alone, whatever the umask;
 * an older file readable by others is tightened. The WAL index stays in
 * memory (exclusive locking): no -shm file at all. */
START_TEST(files_are_private)
{
    char url[300];
    snprintf(url, sizeof url, "sqlite://%s", dbpath);
    mode_t old = umask(0);
    fl_store *st;
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    fill(st, "s", 1, 10); /* the WAL exists once written */
    assert_private("");
    assert_private("-wal");
    char shm[300];
    snprintf(shm, sizeof shm, "%s-shm", dbpath);
    ck_assert_int_eq(access(shm, F_OK), -1);
    fl_store_close(st);
    ck_assert_int_eq(chmod(dbpath, 0644), 0);
    ck_assert_int_eq(fl_store_open(&st, url), FLAME_OK);
    assert_private("");
    fl_store_close(st);
    umask(old);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("sqlite");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, sqlite_roundtrip);
    tcase_add_test(tc, bad_urls);
    tcase_add_test(tc, newer_schema_refused);
    tcase_add_test(tc, failed_write_fails_the_commit);
    tcase_add_test(tc, full_database_names_the_cause);
    tcase_add_test(tc, damaged_database_refused);
    tcase_add_test(tc, undecodable_row_refused);
    tcase_add_test(tc, files_are_private);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
