/* The sqlite engine: WAL, one transaction per group commit. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util/util.h"
#include "wire/wire.h"

enum { Q_PUT_APP, Q_DEL_APP, Q_DEL_APP_SESSIONS_TASKS, Q_PUT_SESSION, Q_DEL_SESSION,
       Q_DEL_SESSION_TASKS, Q_PUT_TASK, Q_COUNT };

static const char *const queries[Q_COUNT] = {
    [Q_PUT_APP] = "INSERT OR REPLACE INTO applications(name, spec, state, creation_time) "
                  "VALUES(?1, ?2, ?3, ?4)",
    [Q_DEL_APP] = "DELETE FROM applications WHERE name = ?1",
    [Q_DEL_APP_SESSIONS_TASKS] = "SELECT 1", /* unused: sessions are deleted one by one */
    [Q_PUT_SESSION] = "INSERT OR REPLACE INTO sessions(id, seq, application, common_data, "
                      "min_instances, max_instances, priority, cpu, memory, gpu, state, "
                      "creation_time, completion_time, events, bind_failures, owner) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                      "?16)",
    [Q_DEL_SESSION] = "DELETE FROM sessions WHERE id = ?1",
    [Q_DEL_SESSION_TASKS] = "DELETE FROM tasks WHERE session_id = ?1",
    [Q_PUT_TASK] = "INSERT OR REPLACE INTO tasks(session_id, id, state, creation_time, "
                   "completion_time, input, output, events) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
};

/* Each entry migrates from version i to i + 1. */
static const char *const migrations[] = {
    "CREATE TABLE applications(name TEXT PRIMARY KEY, spec BLOB NOT NULL, "
    "  state INTEGER NOT NULL, creation_time INTEGER NOT NULL);"
    "CREATE TABLE sessions(id TEXT PRIMARY KEY, seq INTEGER NOT NULL, application TEXT NOT NULL,"
    "  common_data BLOB, min_instances INTEGER NOT NULL, max_instances INTEGER,"
    "  priority INTEGER NOT NULL, cpu INTEGER NOT NULL, memory INTEGER NOT NULL,"
    "  gpu INTEGER NOT NULL, state INTEGER NOT NULL, creation_time INTEGER NOT NULL,"
    "  completion_time INTEGER, events BLOB, bind_failures INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE tasks(session_id TEXT NOT NULL, id INTEGER NOT NULL, state INTEGER NOT NULL,"
    "  creation_time INTEGER NOT NULL, completion_time INTEGER, input BLOB, output BLOB,"
    "  events BLOB, PRIMARY KEY(session_id, id)) WITHOUT ROWID;",
    /* 2: sessions record who created them; older ones are admins' only */
    "ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';",
};

#define SCHEMA_VERSION ((int)FL_ARRAY_LEN(migrations))

typedef struct sqlite_store {
    fl_store base;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *q[Q_COUNT];
    bool in_txn;
} sqlite_store;

static flame_status db_error(sqlite_store *s, const char *what)
{
    return fl_error(FLAME_ERR_IO, "storage %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static flame_status exec(sqlite_store *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        flame_status st = fl_error(FLAME_ERR_IO, "storage %s: %s", s->path, err ? err : "error");
        sqlite3_free(err);
        return st;
    }
    return FLAME_OK;
}

static flame_status begin(sqlite_store *s)
{
    if (s->in_txn)
        return FLAME_OK;
    flame_status st = exec(s, "BEGIN");
    if (st == FLAME_OK)
        s->in_txn = true;
    return st;
}

static sqlite3_stmt *stmt(sqlite_store *s, int q)
{
    sqlite3_reset(s->q[q]);
    sqlite3_clear_bindings(s->q[q]);
    return s->q[q];
}

static flame_status step(sqlite_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    flame_status st = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? FLAME_OK : db_error(s, what);
    sqlite3_reset(q);
    return st;
}

static void bind_opt_blob(sqlite3_stmt *q, int i, bool has, const void *p, size_t n)
{
    if (!has)
        sqlite3_bind_null(q, i);
    else if (n == 0)
        sqlite3_bind_zeroblob(q, i, 0);
    else
        sqlite3_bind_blob64(q, i, p, n, SQLITE_STATIC);
}

static flame_status put_app(fl_store *st, const fl_app *a)
{
    sqlite_store *s = (sqlite_store *)st;
    if (begin(s))
        return FLAME_ERR_IO;
    sqlite3_stmt *q = stmt(s, Q_PUT_APP);
    sqlite3_bind_text(q, 1, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(q, 2, a->blob_len ? (const void *)a->blob : "", a->blob_len, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, a->state);
    sqlite3_bind_int64(q, 4, a->ctime);
    return step(s, q, "put application");
}

static flame_status del_app(fl_store *st, const char *name)
{
    sqlite_store *s = (sqlite_store *)st;
    if (begin(s))
        return FLAME_ERR_IO;
    sqlite3_stmt *q = stmt(s, Q_DEL_APP);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    return step(s, q, "delete application");
}

static flame_status put_session(fl_store *st, const fl_session *x)
{
    sqlite_store *s = (sqlite_store *)st;
    if (begin(s))
        return FLAME_ERR_IO;
    size_t elen;
    uint8_t *ev = fl_wire_pack_events(&x->events, &elen);
    sqlite3_stmt *q = stmt(s, Q_PUT_SESSION);
    sqlite3_bind_text(q, 1, x->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)x->seq);
    sqlite3_bind_text(q, 3, x->app, -1, SQLITE_STATIC);
    bind_opt_blob(q, 4, x->has_common_data, x->common_data, x->common_data_len);
    sqlite3_bind_int64(q, 5, x->min_instances);
    if (x->has_max)
        sqlite3_bind_int64(q, 6, x->max_instances);
    else
        sqlite3_bind_null(q, 6);
    sqlite3_bind_int64(q, 7, x->priority);
    sqlite3_bind_int64(q, 8, (sqlite3_int64)x->resreq.cpu);
    sqlite3_bind_int64(q, 9, (sqlite3_int64)x->resreq.memory);
    sqlite3_bind_int64(q, 10, x->resreq.gpu);
    sqlite3_bind_int(q, 11, x->state);
    sqlite3_bind_int64(q, 12, x->ctime);
    if (x->etime)
        sqlite3_bind_int64(q, 13, x->etime);
    else
        sqlite3_bind_null(q, 13);
    sqlite3_bind_blob64(q, 14, ev, elen, SQLITE_STATIC);
    sqlite3_bind_int64(q, 15, x->bind_failures);
    sqlite3_bind_text(q, 16, x->owner ? x->owner : "", -1, SQLITE_STATIC);
    flame_status r = step(s, q, "put session");
    free(ev);
    return r;
}

static flame_status del_session(fl_store *st, const char *id)
{
    sqlite_store *s = (sqlite_store *)st;
    if (begin(s))
        return FLAME_ERR_IO;
    sqlite3_stmt *q = stmt(s, Q_DEL_SESSION_TASKS);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    flame_status r = step(s, q, "delete tasks");
    if (r)
        return r;
    q = stmt(s, Q_DEL_SESSION);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    return step(s, q, "delete session");
}

static flame_status put_task(fl_store *st, const fl_session *x, const fl_task *t)
{
    sqlite_store *s = (sqlite_store *)st;
    if (begin(s))
        return FLAME_ERR_IO;
    size_t elen;
    uint8_t *ev = fl_wire_pack_events(&t->events, &elen);
    sqlite3_stmt *q = stmt(s, Q_PUT_TASK);
    sqlite3_bind_text(q, 1, x->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, t->id);
    sqlite3_bind_int(q, 3, t->state);
    sqlite3_bind_int64(q, 4, t->ctime);
    if (t->etime)
        sqlite3_bind_int64(q, 5, t->etime);
    else
        sqlite3_bind_null(q, 5);
    bind_opt_blob(q, 6, t->has_input, t->input, t->input_len);
    bind_opt_blob(q, 7, t->has_output, t->output, t->output_len);
    sqlite3_bind_blob64(q, 8, ev, elen, SQLITE_STATIC);
    flame_status r = step(s, q, "put task");
    free(ev);
    return r;
}

static flame_status commit(fl_store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    if (!s->in_txn)
        return FLAME_OK;
    s->in_txn = false;
    if (exec(s, "COMMIT") != FLAME_OK) {
        flame_status r = db_error(s, "commit");
        exec(s, "ROLLBACK");
        return r;
    }
    return FLAME_OK;
}

static void rollback(fl_store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    if (!s->in_txn)
        return;
    s->in_txn = false;
    exec(s, "ROLLBACK");
}

static uint8_t *col_blob(sqlite3_stmt *q, int i, bool *has, size_t *len)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL) {
        *has = false;
        *len = 0;
        return NULL;
    }
    *has = true;
    const void *p = sqlite3_column_blob(q, i);
    *len = (size_t)sqlite3_column_bytes(q, i);
    return *len ? fl_memdup(p, *len) : NULL;
}

static flame_status load(fl_store *st, void *ctx, void (*on_app)(void *, fl_app *),
                         void (*on_session)(void *, fl_session *),
                         void (*on_task)(void *, const char *, fl_task *))
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT name, spec, state, creation_time FROM applications",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(s, "load applications");
    while (sqlite3_step(q) == SQLITE_ROW) {
        fl_app *a = fl_wire_app_unpack((const char *)sqlite3_column_text(q, 0), sqlite3_column_blob(q, 1),
                               (size_t)sqlite3_column_bytes(q, 1), sqlite3_column_int64(q, 3));
        if (!a) {
            fl_log(FL_LOG_WARN, "store", "application %s: unreadable spec, skipped",
                   sqlite3_column_text(q, 0));
            continue;
        }
        a->state = sqlite3_column_int(q, 2);
        on_app(ctx, a);
    }
    sqlite3_finalize(q);

    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, seq, application, common_data, min_instances, "
                           "max_instances, priority, cpu, memory, gpu, state, creation_time, "
                           "completion_time, events, bind_failures, owner FROM sessions "
                           "ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(s, "load sessions");
    while (sqlite3_step(q) == SQLITE_ROW) {
        fl_session *x = fl_calloc(1, sizeof *x);
        x->id = fl_strdup((const char *)sqlite3_column_text(q, 0));
        x->seq = (uint64_t)sqlite3_column_int64(q, 1);
        x->app = fl_strdup((const char *)sqlite3_column_text(q, 2));
        x->common_data = col_blob(q, 3, &x->has_common_data, &x->common_data_len);
        x->min_instances = (uint32_t)sqlite3_column_int64(q, 4);
        x->has_max = sqlite3_column_type(q, 5) != SQLITE_NULL;
        x->max_instances = (uint32_t)sqlite3_column_int64(q, 5);
        x->priority = (uint32_t)sqlite3_column_int64(q, 6);
        x->resreq.cpu = (uint64_t)sqlite3_column_int64(q, 7);
        x->resreq.memory = (uint64_t)sqlite3_column_int64(q, 8);
        x->resreq.gpu = sqlite3_column_int(q, 9);
        x->state = sqlite3_column_int(q, 10);
        x->ctime = sqlite3_column_int64(q, 11);
        x->etime = sqlite3_column_int64(q, 12);
        fl_wire_unpack_events(&x->events, sqlite3_column_blob(q, 13), (size_t)sqlite3_column_bytes(q, 13));
        x->bind_failures = (uint32_t)sqlite3_column_int64(q, 14);
        const char *owner = (const char *)sqlite3_column_text(q, 15);
        x->owner = fl_strdup(owner ? owner : "");
        x->batch_size = 1;
        on_session(ctx, x);
    }
    sqlite3_finalize(q);

    if (sqlite3_prepare_v2(s->db,
                           "SELECT session_id, id, state, creation_time, completion_time, input, "
                           "output, events FROM tasks ORDER BY session_id, id",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(s, "load tasks");
    while (sqlite3_step(q) == SQLITE_ROW) {
        fl_task *t = fl_calloc(1, sizeof *t);
        t->id = (uint32_t)sqlite3_column_int64(q, 1);
        t->state = (uint8_t)sqlite3_column_int(q, 2);
        t->ctime = sqlite3_column_int64(q, 3);
        t->etime = sqlite3_column_int64(q, 4);
        bool has;
        size_t n;
        t->input = col_blob(q, 5, &has, &n);
        t->has_input = has;
        t->input_len = (uint32_t)n;
        t->output = col_blob(q, 6, &has, &n);
        t->has_output = has;
        t->output_len = (uint32_t)n;
        fl_wire_unpack_events(&t->events, sqlite3_column_blob(q, 7), (size_t)sqlite3_column_bytes(q, 7));
        if (t->id == 0) {
            fl_task_free(t);
            continue;
        }
        on_task(ctx, (const char *)sqlite3_column_text(q, 0), t);
    }
    sqlite3_finalize(q);
    return FLAME_OK;
}

static void close_sqlite(fl_store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    if (s->in_txn)
        commit(st);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static const fl_store_ops sqlite_ops = {
    "sqlite", put_app, del_app, put_session, del_session, put_task, commit, load, close_sqlite,
    rollback,
};

static flame_status migrate(sqlite_store *s)
{
    sqlite3_stmt *q;
    int version = 0;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version > SCHEMA_VERSION)
        return fl_error(FLAME_ERR_IO,
                        "storage %s: schema version %d is newer than this build's %d", s->path,
                        version, SCHEMA_VERSION);
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char *sql = fl_sprintf("BEGIN; %s PRAGMA user_version = %d; COMMIT;", migrations[v], v + 1);
        flame_status st = exec(s, sql);
        free(sql);
        if (st) {
            exec(s, "ROLLBACK");
            return st;
        }
    }
    return FLAME_OK;
}

flame_status fl_store_sqlite_open(fl_store **out, const char *path)
{
    sqlite_store *s = fl_calloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    s->path = fl_strdup(path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        flame_status st = fl_error(FLAME_ERR_IO, "storage %s: cannot open: %s", path,
                                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return st;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL + synchronous=NORMAL: a commit is in the WAL (survives kill -9)
     * without an fsync per transaction. */
    flame_status st = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    if (!st)
        st = migrate(s);
    for (int i = 0; !st && i < Q_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) !=
            SQLITE_OK)
            st = db_error(s, "prepare");
    if (st) {
        close_sqlite(&s->base);
        return st;
    }
    *out = &s->base;
    return FLAME_OK;
}
