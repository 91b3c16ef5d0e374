/* The sqlite engine: WAL, one transaction per group commit. A failed write
 * leaves nothing of its batch on disk; a load that cannot read every row
 * refuses to start; the files are private to the daemon's user. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
                      "creation_time, completion_time, events, bind_failures, owner, "
                      "batch_size, tokens) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
                      "?16, ?17, ?18)",
    [Q_DEL_SESSION] = "DELETE FROM sessions WHERE id = ?1",
    [Q_DEL_SESSION_TASKS] = "DELETE FROM tasks WHERE session_id = ?1",
    [Q_PUT_TASK] = "INSERT OR REPLACE INTO tasks(session_id, id, state, creation_time, "
                   "completion_time, input, output, events, affinity) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    /* 3: Flame 0.7's SessionSpec.batch_size and tokens (key NUL value NUL,
     * in turn) and TaskSpec.affinity (fl_task's packed form) */
    "ALTER TABLE sessions ADD COLUMN batch_size INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE sessions ADD COLUMN tokens BLOB;"
    "ALTER TABLE tasks ADD COLUMN affinity BLOB;",
};

#define SCHEMA_VERSION ((int)FL_ARRAY_LEN(migrations))

typedef struct sqlite_store {
    fl_store base;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *q[Q_COUNT];
    bool in_txn;
} sqlite_store;

/* The system's part of a storage failure: sqlite's record of it, else the
 * errno the failed call left when it is one a write to storage gives
 * (sqlite does not keep it for its WAL file). */
static int sys_errno(sqlite_store *s, int saved)
{
    int sys = sqlite3_system_errno(s->db);
    if (sys)
        return sys;
    switch (saved) {
    case ENOSPC: case EFBIG: case EDQUOT: case EIO: case EROFS:
        return saved;
    default:
        return 0;
    }
}

/* sqlite's message, and the system's when the failure was the system's
 * (a full disk: "database or disk is full (No space left on device)"). */
static flame_status db_error(sqlite_store *s, const char *what)
{
    int saved = errno; /* the caller's failed sqlite call left it */
    int rc = sqlite3_errcode(s->db) & 0xff, sys = sys_errno(s, saved);
    if (sys && (rc == SQLITE_FULL || rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN))
        return fl_error(FLAME_ERR_IO, "storage %s: %s: %s (%s)", s->path, what,
                        sqlite3_errmsg(s->db), strerror(sys));
    return fl_error(FLAME_ERR_IO, "storage %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static flame_status exec(sqlite_store *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, what);
    return FLAME_OK;
}

static flame_status begin(sqlite_store *s)
{
    if (s->in_txn) {
        if (!sqlite3_get_autocommit(s->db))
            return FLAME_OK;
        /* sqlite rolled the batch back after a failed write (a full disk
         * does that): the rest of the batch must not reach the disk alone */
        return fl_error(FLAME_ERR_IO, "storage %s: the batch was rolled back after an earlier error",
                        s->path);
    }
    flame_status st = exec(s, "BEGIN", "begin a batch");
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

/* A session's tokens as one blob: key NUL value NUL, in turn (the strings
 * hold no NUL: they were copied as C strings); NULL when it has none. */
static char *pack_tokens(const fl_session *x, size_t *len)
{
    size_t n = 0;
    for (uint32_t i = 0; i < 2 * x->n_tokens; i++)
        n += strlen(x->tokens[i]) + 1;
    if (!n)
        return NULL;
    char *b = fl_malloc(n), *p = b;
    for (uint32_t i = 0; i < 2 * x->n_tokens; i++) {
        size_t k = strlen(x->tokens[i]) + 1;
        memcpy(p, x->tokens[i], k);
        p += k;
    }
    *len = n;
    return b;
}

/* The inverse of pack_tokens; false when the blob is malformed. */
static bool unpack_tokens(fl_session *x, const char *b, size_t n)
{
    if (!b || !n)
        return true;
    if (b[n - 1] != 0)
        return false;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += b[i] == 0;
    if (count % 2 || count > 2 * FL_MAX_TOKENS)
        return false;
    x->tokens = fl_calloc(count, sizeof *x->tokens);
    for (size_t i = 0, off = 0; i < count; i++) {
        x->tokens[i] = fl_strdup(b + off);
        off += strlen(b + off) + 1;
    }
    x->n_tokens = (uint32_t)(count / 2);
    return true;
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
    sqlite3_bind_int64(q, 17, x->batch_size ? x->batch_size : 1);
    size_t tlen = 0;
    char *tok = pack_tokens(x, &tlen);
    if (tok)
        sqlite3_bind_blob64(q, 18, tok, tlen, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 18);
    flame_status r = step(s, q, "put session");
    free(tok);
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
    bind_opt_blob(q, 9, t->affinity_len > 0, t->affinity, t->affinity_len);
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
    if (sqlite3_get_autocommit(s->db))
        return fl_error(FLAME_ERR_IO, "storage %s: commit: the batch was rolled back", s->path);
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        flame_status r = db_error(s, "commit"); /* before the rollback replaces the cause */
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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

/* A load stops at the first row it cannot read: starting on part of the
 * state would make acknowledged work disappear. */
static flame_status load_error(sqlite_store *s, const char *table, const char *why)
{
    return fl_error(FLAME_ERR_IO,
                    "storage %s: table %s: %s; the database is damaged, refusing to start on "
                    "part of it (restore a backup, or move the file away to start empty)",
                    s->path, table, why);
}

/* The end of a table's scan: every row read, or the error that stopped it. */
static flame_status scan_end(sqlite_store *s, sqlite3_stmt *q, int rc, const char *table)
{
    flame_status st = FLAME_OK;
    if (rc != SQLITE_DONE) {
        char why[300];
        int sys = sys_errno(s, errno);
        snprintf(why, sizeof why, "%s%s%s%s", sqlite3_errmsg(s->db), sys ? " (" : "",
                 sys ? strerror(sys) : "", sys ? ")" : "");
        st = load_error(s, table, why);
    }
    sqlite3_finalize(q);
    return st;
}

static flame_status scan_start(sqlite_store *s, sqlite3_stmt **q, const char *sql,
                               const char *table)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, q, NULL) == SQLITE_OK)
        return FLAME_OK;
    return load_error(s, table, sqlite3_errmsg(s->db));
}

static flame_status bad_row(sqlite_store *s, sqlite3_stmt *q, const char *table,
                            const char *key, const char *what)
{
    char why[400];
    snprintf(why, sizeof why, "row %.200s: %s does not decode", key ? key : "(no key)", what);
    sqlite3_finalize(q);
    return load_error(s, table, why);
}

static flame_status load(fl_store *st, void *ctx, void (*on_app)(void *, fl_app *),
                         void (*on_session)(void *, fl_session *),
                         void (*on_task)(void *, const char *, fl_task *))
{
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *q;
    int rc;
    flame_status r = scan_start(s, &q, "SELECT name, spec, state, creation_time FROM applications",
                                "applications");
    if (r)
        return r;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        fl_app *a = name ? fl_wire_app_unpack(name, sqlite3_column_blob(q, 1),
                                              (size_t)sqlite3_column_bytes(q, 1),
                                              sqlite3_column_int64(q, 3))
                         : NULL;
        if (!a)
            return bad_row(s, q, "applications", name, "the spec");
        a->state = sqlite3_column_int(q, 2);
        on_app(ctx, a);
    }
    if ((r = scan_end(s, q, rc, "applications")))
        return r;

    r = scan_start(s, &q,
                   "SELECT id, seq, application, common_data, min_instances, "
                   "max_instances, priority, cpu, memory, gpu, state, creation_time, "
                   "completion_time, events, bind_failures, owner, batch_size, tokens FROM sessions "
                   "ORDER BY seq",
                   "sessions");
    if (r)
        return r;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        const char *app = (const char *)sqlite3_column_text(q, 2);
        if (!id || !app)
            return bad_row(s, q, "sessions", id, "the id or application");
        fl_session *x = fl_calloc(1, sizeof *x);
        x->id = fl_strdup(id);
        x->seq = (uint64_t)sqlite3_column_int64(q, 1);
        x->app = fl_strdup(app);
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
        bool ok = fl_wire_unpack_events(&x->events, sqlite3_column_blob(q, 13),
                                        (size_t)sqlite3_column_bytes(q, 13));
        x->bind_failures = (uint32_t)sqlite3_column_int64(q, 14);
        const char *owner = (const char *)sqlite3_column_text(q, 15);
        x->owner = fl_strdup(owner ? owner : "");
        x->batch_size = (uint32_t)sqlite3_column_int64(q, 16);
        if (!x->batch_size)
            x->batch_size = 1;
        if (!ok) {
            fl_session_free(x);
            return bad_row(s, q, "sessions", id, "the events");
        }
        if (!unpack_tokens(x, sqlite3_column_blob(q, 17), (size_t)sqlite3_column_bytes(q, 17))) {
            fl_session_free(x);
            return bad_row(s, q, "sessions", id, "the tokens");
        }
        on_session(ctx, x);
    }
    if ((r = scan_end(s, q, rc, "sessions")))
        return r;

    r = scan_start(s, &q,
                   "SELECT session_id, id, state, creation_time, completion_time, input, "
                   "output, events, affinity FROM tasks ORDER BY session_id, id",
                   "tasks");
    if (r)
        return r;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *sid = (const char *)sqlite3_column_text(q, 0);
        int64_t id = sqlite3_column_int64(q, 1);
        int state = sqlite3_column_int(q, 2);
        if (!sid || id <= 0 || id > UINT32_MAX || state < 0 || state > FLAME_TASK_CANCELLED) {
            char key[300];
            snprintf(key, sizeof key, "%.200s/%lld", sid ? sid : "?", (long long)id);
            return bad_row(s, q, "tasks", key, "the key or state");
        }
        fl_task *t = fl_calloc(1, sizeof *t);
        t->id = (uint32_t)id;
        t->state = (uint8_t)state;
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
        if (!fl_wire_unpack_events(&t->events, sqlite3_column_blob(q, 7),
                                   (size_t)sqlite3_column_bytes(q, 7))) {
            char key[300];
            snprintf(key, sizeof key, "%.200s/%u", sid, t->id);
            fl_task_free(t);
            return bad_row(s, q, "tasks", key, "the events");
        }
        t->affinity = col_blob(q, 8, &has, &n);
        t->affinity_len = (uint32_t)n;
        if (!fl_affinity_valid(t->affinity, t->affinity_len)) {
            char key[300];
            snprintf(key, sizeof key, "%.200s/%u", sid, t->id);
            fl_task_free(t);
            return bad_row(s, q, "tasks", key, "the affinity");
        }
        on_task(ctx, sid, t);
    }
    return scan_end(s, q, rc, "tasks");
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
        flame_status st = exec(s, sql, "migrate the schema");
        free(sql);
        if (st) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* keeps the cause */
            return st;
        }
    }
    return FLAME_OK;
}

/* The database holds every session's inputs and outputs and every
 * application's environment: it, its WAL and its shared-memory file are
 * the daemon user's alone. sqlite gives the WAL and -shm the mode of the
 * database file, so creating that one 0600 covers all three; files left
 * readable by an older version are tightened. */
static flame_status make_private(const char *path)
{
    if (!*path || *path == ':' || strncmp(path, "file:", 5) == 0)
        return FLAME_OK; /* in memory, or a URI sqlite resolves itself */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return fl_error(FLAME_ERR_IO, "storage %s: cannot open: %s", path, strerror(errno));
    close(fd);
    static const char *const suffix[] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < FL_ARRAY_LEN(suffix); i++) {
        char *p = fl_sprintf("%s%s", path, suffix[i]);
        struct stat sb;
        if (stat(p, &sb) == 0 && (sb.st_mode & 077) && sb.st_uid == geteuid()) {
            if (chmod(p, sb.st_mode & 0700) == 0)
                fl_log(FL_LOG_WARN, "store", "%s was readable by others (mode %03o); now %03o", p,
                       (unsigned)(sb.st_mode & 0777), (unsigned)(sb.st_mode & 0700));
        }
        free(p);
    }
    return FLAME_OK;
}

flame_status fl_store_sqlite_open(fl_store **out, const char *path)
{
    sqlite_store *s = fl_calloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    s->path = fl_strdup(path);
    flame_status st = make_private(path);
    if (st) {
        free(s->path);
        free(s);
        return st;
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        st = fl_error(FLAME_ERR_IO, "storage %s: cannot open: %s", path,
                      s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return st;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL + synchronous=NORMAL: a commit is in the WAL (survives kill -9)
     * without an fsync per transaction. Exclusive locking: the session
     * manager is the database's only user, so sqlite takes its file locks
     * once instead of a dozen fcntl calls per transaction (and keeps the WAL
     * index in memory, no -shm); a second session manager on the same file
     * gets "database is locked" instead of sharing it. The locks go with the
     * process, so a restart after kill -9 opens it as before. */
    st = exec(s,
              "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; "
              "PRAGMA synchronous=NORMAL;",
              "open");
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

flame_status fl_store_sqlite_limit(fl_store *st, unsigned pages)
{
    if (st->ops != &sqlite_ops)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "storage: %s is not sqlite", st->ops->name);
    /* sqlite keeps the cap at least the database's current size */
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %u", pages ? pages : 0xfffffffeU);
    return exec((sqlite_store *)st, sql, "max_page_count");
}
