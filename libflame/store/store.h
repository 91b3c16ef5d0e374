/* The storage engine interface. The session manager writes through it on
 * its engine thread: writes accumulate in an open transaction and
 * fl_store_commit() makes them durable together (group commit). */
#ifndef FL_STORE_H
#define FL_STORE_H

#include "flame/error.h"
#include "model/model.h"

typedef struct fl_store fl_store;

typedef struct fl_store_ops {
    const char *name;
    flame_status (*put_app)(fl_store *st, const fl_app *a);
    flame_status (*del_app)(fl_store *st, const char *name);
    flame_status (*put_session)(fl_store *st, const fl_session *s);
    flame_status (*del_session)(fl_store *st, const char *id);
    flame_status (*put_task)(fl_store *st, const fl_session *s, const fl_task *t);
    flame_status (*commit)(fl_store *st);
    /* Restores everything: calls the callbacks in order apps, sessions,
     * tasks (tasks grouped by session). Ownership passes to the callee. */
    flame_status (*load)(fl_store *st, void *ctx, void (*on_app)(void *, fl_app *),
                         void (*on_session)(void *, fl_session *),
                         void (*on_task)(void *, const char *session_id, fl_task *));
    void (*close)(fl_store *st);
    /* Drops the writes since the last commit (a write of the batch failed).
     * NULL: the engine keeps nothing to drop. */
    void (*rollback)(fl_store *st);
} fl_store_ops;

struct fl_store {
    const fl_store_ops *ops;
    bool dirty;          /* writes since the last commit */
    flame_status failed; /* the first write since then that failed */
    char why[256];       /* and its message (the commit's error names it) */
};

/* url: "none" or "sqlite://PATH" (PATH absolute, or relative to the
 * working directory). */
flame_status fl_store_open(fl_store **out, const char *url);

/* Writes are batched: a failed one fails the batch's commit (which then
 * drops the whole batch), so no acknowledgement rides on a lost write. */
/* Records the batch's first failed write, with the thread's last error. */
void fl_store_write_failed(fl_store *st, flame_status r);
static inline flame_status fl_store_wrote(fl_store *st, flame_status r)
{
    if (r && !st->failed)
        fl_store_write_failed(st, r);
    return r;
}

static inline flame_status fl_store_put_app(fl_store *st, const fl_app *a)
{
    st->dirty = true;
    return fl_store_wrote(st, st->ops->put_app(st, a));
}
static inline flame_status fl_store_del_app(fl_store *st, const char *name)
{
    st->dirty = true;
    return fl_store_wrote(st, st->ops->del_app(st, name));
}
static inline flame_status fl_store_put_session(fl_store *st, const fl_session *s)
{
    st->dirty = true;
    return fl_store_wrote(st, st->ops->put_session(st, s));
}
static inline flame_status fl_store_del_session(fl_store *st, const char *id)
{
    st->dirty = true;
    return fl_store_wrote(st, st->ops->del_session(st, id));
}
static inline flame_status fl_store_put_task(fl_store *st, const fl_session *s, const fl_task *t)
{
    st->dirty = true;
    return fl_store_wrote(st, st->ops->put_task(st, s, t));
}
/* Makes the batch durable; fails (and drops the batch) when one of its
 * writes failed. The error message carries the engine's cause (e.g.
 * sqlite's "database or disk is full" and the system's errno text). */
flame_status fl_store_commit(fl_store *st);
void fl_store_close(fl_store *st);

/* Engines */
flame_status fl_store_none_open(fl_store **out);
/* Creates the database (and its WAL and shared-memory files) private to
 * the daemon's user (0600); tightens an existing one that is not. */
flame_status fl_store_sqlite_open(fl_store **out, const char *path);
/* Test hook: caps the sqlite database at pages pages of its page size, so
 * a write past it fails with SQLITE_FULL ("database or disk is full") as
 * on a full disk; pages 0 removes the cap (sqlite's default). */
flame_status fl_store_sqlite_limit(fl_store *st, unsigned pages);

#endif
