#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

flame_status fl_store_open(fl_store **out, const char *url)
{
    if (!url || !*url || strcmp(url, "none") == 0 || strcmp(url, "none://") == 0)
        return fl_store_none_open(out);
    if (strncmp(url, "sqlite://", 9) == 0) {
        if (!url[9])
            return fl_error(FLAME_ERR_CONFIG, "storage \"%s\": no database path", url);
        return fl_store_sqlite_open(out, url + 9);
    }
    return fl_error(FLAME_ERR_CONFIG, "storage \"%s\": unknown engine (use sqlite://PATH or none)",
                    url);
}

void fl_store_write_failed(fl_store *st, flame_status r)
{
    st->failed = r;
    snprintf(st->why, sizeof st->why, "%s", flame_error_last());
}

flame_status fl_store_commit(fl_store *st)
{
    if (!st->dirty)
        return FLAME_OK;
    st->dirty = false;
    flame_status failed = st->failed;
    if (!failed)
        return st->ops->commit(st);
    st->failed = FLAME_OK;
    if (st->ops->rollback)
        st->ops->rollback(st);
    /* the first failed write's own message: later errors (a rollback's)
     * would hide the cause */
    return fl_error(failed, "%s (the batch was dropped)", st->why);
}

void fl_store_close(fl_store *st)
{
    if (st)
        st->ops->close(st);
}
