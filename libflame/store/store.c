#include "store.h"

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

void fl_store_close(fl_store *st)
{
    if (st)
        st->ops->close(st);
}

uint8_t *fl_events_pack(const fl_events *e, size_t *len)
{
    Flame__V1__TaskStatus ts = FLAME__V1__TASK_STATUS__INIT;
    Flame__V1__Event *ev;
    Flame__V1__Event **evp = fl_events_to_pb(e, &ev, false);
    ts.n_events = e->n;
    ts.events = evp;
    *len = flame__v1__task_status__get_packed_size(&ts);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    flame__v1__task_status__pack(&ts, buf);
    free(ev);
    free(evp);
    return buf;
}

void fl_events_unpack(fl_events *e, const uint8_t *data, size_t len)
{
    Flame__V1__TaskStatus *ts = flame__v1__task_status__unpack(NULL, len, data);
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n_events; i++) {
        Flame__V1__Event *ev = ts->events[i];
        fl_events_add(e, ev->code, ev->_message_case ? ev->message : NULL, ev->creation_time);
    }
    flame__v1__task_status__free_unpacked(ts, NULL);
}
