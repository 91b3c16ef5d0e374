/* A server stream that comes back after a session-manager restart: the one
 * reconnect loop behind flame_session_watch and flame_task_watch, which
 * also gives up on a session that cannot run (stuck.c). A fl_resumable
 * belongs to the thread that reads it. */
#include <string.h>
#include <time.h>

#include "internal.h"
#include "util/util.h"

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000

void fl_resumable_init(fl_resumable *r, rpc_channel *ch, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                       int timeout_ms)
{
    *r = (fl_resumable){ .ch = ch, .method = method, .req = req, .desc = desc,
                         .backoff_ms = BACKOFF_FIRST_MS };
    const char *slash = strrchr(method, '/');
    r->what = slash ? slash + 1 : method;
    if (timeout_ms >= 0)
        r->deadline_ns = fl_mono_ns() + (int64_t)timeout_ms * 1000000;
}

/* What a restart of the session manager looks like from here. */
static bool is_break(flame_status st)
{
    return st == FLAME_ERR_UNAVAILABLE || st == FLAME_ERR_INTERNAL;
}

static void backoff_sleep(fl_resumable *r)
{
    struct timespec ts = { r->backoff_ms / 1000, (long)(r->backoff_ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

void fl_resumable_close(fl_resumable *r)
{
    rpc_stream_free(r->st); /* cancels it if still running */
    r->st = NULL;
}

flame_status fl_resumable_next(fl_resumable *r, ProtobufCMessage **msg)
{
    *msg = NULL;
    for (bool retry = false;; retry = true) {
        if (retry)
            backoff_sleep(r);
        flame_status st;
        if (!r->st) {
            int left = 0; /* rpc: no deadline */
            if (r->deadline_ns) {
                int64_t ns = r->deadline_ns - fl_mono_ns();
                if (ns <= 0)
                    return fl_error(FLAME_ERR_TIMEOUT, "%s: deadline exceeded", r->what);
                left = (int)(ns / 1000000) + 1;
            }
            st = rpc_stream_open(&r->st, r->ch, r->method, r->req, left);
            if (st) {
                r->st = NULL;
                if (is_break(st))
                    continue;
                return st;
            }
        }
        if (r->session_id) {
            bool idle;
            while (!(st = rpc_stream_next_timed(r->st, r->desc, msg, FL_STUCK_CHECK_MS, &idle)) &&
                   idle) {
                flame_status stuck = fl_session_stuck(r->client, r->session_id);
                if (stuck)
                    return stuck; /* the stream stays open until close() */
            }
        } else {
            st = rpc_stream_next(r->st, r->desc, msg);
        }
        if (!st && *msg) {
            r->backoff_ms = BACKOFF_FIRST_MS;
            return FLAME_OK;
        }
        fl_resumable_close(r);
        if (!st && !r->end_is_break)
            return FLAME_OK; /* a clean end */
        if (!st)
            st = fl_error(FLAME_ERR_INTERNAL, "%s: the stream ended early", r->what);
        if (!is_break(st))
            return st;
    }
}
