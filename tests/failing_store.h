/* A storage engine for tests whose writes fail on demand: it wraps a real
 * engine and, while `fail` is set, refuses every write with FLAME_ERR_IO. `fail` may be flipped from another thread than the one
 * writing (the session manager's engine thread). `cap` (>= 0) caps a
 * wrapped sqlite database at that many pages at the next write, on the
 * writing thread (fl_store_sqlite_limit: 1 is "full now", 0 no cap), so
 * the writes past it really fail with SQLITE_FULL. */
#ifndef FAILING_STORE_H
#define FAILING_STORE_H

#include <stdatomic.h>
#include <stdlib.h>

#include "store/store.h"
#include "util/util.h"

typedef struct failing_store {
    fl_store base;
    fl_store *inner;
    atomic_bool fail;
    atomic_int cap;
} failing_store;

static fl_store *fs_inner(fl_store *st)
{
    return ((failing_store *)st)->inner;
}

static flame_status fs_refuse(fl_store *st)
{
    int cap = atomic_exchange(&((failing_store *)st)->cap, -1);
    if (cap >= 0)
        fl_store_sqlite_limit(fs_inner(st), (unsigned)cap);
    if (atomic_load(&((failing_store *)st)->fail))
        return fl_error(FLAME_ERR_IO, "storage: injected write failure");
    return FLAME_OK;
}

static flame_status fs_put_app(fl_store *st, const fl_app *a)
{
    flame_status r = fs_refuse(st);
    return r ? r : fs_inner(st)->ops->put_app(fs_inner(st), a);
}
static flame_status fs_del_app(fl_store *st, const char *name)
{
    flame_status r = fs_refuse(st);
    return r ? r : fs_inner(st)->ops->del_app(fs_inner(st), name);
}
static flame_status fs_put_session(fl_store *st, const fl_session *s)
{
    flame_status r = fs_refuse(st);
    return r ? r : fs_inner(st)->ops->put_session(fs_inner(st), s);
}
static flame_status fs_del_session(fl_store *st, const char *id)
{
    flame_status r = fs_refuse(st);
    return r ? r : fs_inner(st)->ops->del_session(fs_inner(st), id);
}
static flame_status fs_put_task(fl_store *st, const fl_session *s, const fl_task *t)
{
    flame_status r = fs_refuse(st);
    return r ? r : fs_inner(st)->ops->put_task(fs_inner(st), s, t);
}
static flame_status fs_commit(fl_store *st)
{
    return fs_inner(st)->ops->commit(fs_inner(st));
}
static flame_status fs_load(fl_store *st, void *ctx, void (*on_app)(void *, fl_app *),
                            void (*on_session)(void *, fl_session *),
                            void (*on_task)(void *, const char *, fl_task *))
{
    return fs_inner(st)->ops->load(fs_inner(st), ctx, on_app, on_session, on_task);
}
static void fs_close(fl_store *st)
{
    fl_store_close(fs_inner(st));
    free(st);
}
static void fs_rollback(fl_store *st)
{
    if (fs_inner(st)->ops->rollback)
        fs_inner(st)->ops->rollback(fs_inner(st));
}

static const fl_store_ops failing_store_ops = {
    "failing", fs_put_app, fs_del_app, fs_put_session, fs_del_session, fs_put_task,
    fs_commit, fs_load, fs_close, fs_rollback,
};

/* Wraps the engine of url (see fl_store_open). */
static inline flame_status failing_store_open(failing_store **out, const char *url)
{
    failing_store *fs = fl_calloc(1, sizeof *fs);
    flame_status st = fl_store_open(&fs->inner, url);
    if (st) {
        free(fs);
        return st;
    }
    fs->base.ops = &failing_store_ops;
    atomic_init(&fs->fail, false);
    atomic_init(&fs->cap, -1);
    *out = fs;
    return FLAME_OK;
}

#endif
