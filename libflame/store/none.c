/* The "none" engine: state lives in memory only. */
#include <stdlib.h>

#include "store.h"
#include "util/util.h"

static flame_status ok_app(fl_store *st, const fl_app *a) { return FLAME_OK; }
static flame_status ok_name(fl_store *st, const char *n) { return FLAME_OK; }
static flame_status ok_session(fl_store *st, const fl_session *s) { return FLAME_OK; }
static flame_status ok_task(fl_store *st, const fl_session *s, const fl_task *t) { return FLAME_OK; }
static flame_status ok_commit(fl_store *st) { return FLAME_OK; }

static flame_status load_nothing(fl_store *st, void *ctx, void (*a)(void *, fl_app *),
                                 void (*s)(void *, fl_session *),
                                 void (*t)(void *, const char *, fl_task *))
{
    return FLAME_OK;
}

static void close_none(fl_store *st)
{
    free(st);
}

static const fl_store_ops none_ops = {
    "none", ok_app, ok_name, ok_session, ok_name, ok_task, ok_commit, load_nothing, close_none,
};

flame_status fl_store_none_open(fl_store **out)
{
    fl_store *st = fl_calloc(1, sizeof *st);
    st->ops = &none_ops;
    *out = st;
    return FLAME_OK;
}
