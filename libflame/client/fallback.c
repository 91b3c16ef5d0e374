/* Against Flame's own session manager: the session ids we make (Flame does
 * not make them: an empty id is stored as it is, and every later create
 * fails), and Flame's unary calls in place of our batched ones when the
 * server answers those with UNIMPLEMENTED (CreateTasks -> CreateTask,
 * WatchSession -> ListTask + GetSession polled). No state of its own: safe
 * from any thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"
#include "util/util.h"

void fl_client_session_id(char *out, size_t size, const char *application)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t r[6]; /* as the session manager names them */
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) { /* no entropy yet: time and address */
        uint64_t x = (uint64_t)fl_mono_ns() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof r; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            r[i] = (uint8_t)(x >> 56);
    }
    char sfx[sizeof r + 1];
    for (size_t i = 0; i < sizeof r; i++)
        sfx[i] = al[r[i] % (sizeof al - 1)];
    sfx[sizeof r] = 0;
    snprintf(out, size, "%.200s-%s", application && *application ? application : "session", sfx);
}

flame_status fl_client_create_each(flame_session *s, const flame_bytes *inputs, size_t n,
                                   uint64_t *ids)
{
    for (size_t i = 0; i < n; i++) {
        flame_task *t;
        const flame_bytes *in = inputs && inputs[i].data ? &inputs[i] : NULL;
        flame_status st = flame_task_create(&t, s, in ? in->data : NULL, in ? in->len : 0);
        if (st)
            return st;
        if (ids)
            ids[i] = strtoull(t->id, NULL, 10);
        flame_task_free(t);
    }
    return FLAME_OK;
}

#define POLL_MS 200

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

flame_status fl_client_watch_polled(flame_session *s, uint64_t from_task_id,
                                    flame_session_watch_cb cb, void *payload, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? fl_mono_ns() + (int64_t)timeout_ms * 1000000 : 0;
    uint8_t *seen = NULL; /* one byte per task id >= from_task_id: reported */
    size_t nseen = 0;
    flame_status st = FLAME_OK;
    for (;;) {
        /* the session first: when it is closed with nothing left, the
         * listing after it holds every outcome */
        flame_session_info *info;
        if ((st = flame_session_get(&info, s->client, s->id)))
            break;
        bool done = info->state == FLAME_SESSION_CLOSED && !info->pending && !info->running;
        flame_session_info_free(info);
        flame_task **v;
        size_t n;
        if ((st = flame_task_list(&v, &n, s)))
            break;
        flame_task_outcome *out = fl_calloc(n + 1, sizeof *out);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t id = strtoull(v[i]->id, NULL, 10);
            if (id < from_task_id || !flame_task_state_is_terminal(v[i]->state))
                continue;
            size_t at = (size_t)(id - from_task_id);
            if (at >= nseen) {
                size_t m = nseen ? nseen : 1024;
                while (at >= m)
                    m *= 2;
                seen = fl_realloc(seen, m);
                memset(seen + nseen, 0, m - nseen);
                nseen = m;
            }
            if (seen[at])
                continue;
            seen[at] = 1;
            out[k++] = (flame_task_outcome){ id, v[i]->state, v[i]->output,
                                             v[i]->state == FLAME_TASK_SUCCEED ? NULL : v[i]->message,
                                             v[i]->completion_time };
        }
        int stop = k ? cb(out, k, payload) : 0;
        free(out);
        flame_task_list_free(v, n);
        if (stop || done)
            break;
        if (deadline && fl_mono_ns() >= deadline) {
            st = fl_error(FLAME_ERR_TIMEOUT, "watch of session %s: timed out", s->id);
            break;
        }
        sleep_ms(POLL_MS);
    }
    free(seen);
    return st;
}
