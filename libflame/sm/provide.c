/* The provider hook: after each scheduling cycle the sessions' demand (how
 * many executors each can use now) goes to the provider, which launches
 * executor managers for it on a resource manager (libflame/provider/).
 * Without a provider (`none`) executor managers register themselves and
 * this does nothing. */
#include <stdlib.h>

#include "provider/provider.h"
#include "sm.h"

void sm_provide(sm_t *sm)
{
    if (!sm->provider)
        return;
    fl_provider_demand *d = fl_calloc(sm->sessions.len + 1, sizeof *d);
    size_t n = 0;
    for (sm_session *ss = sm->first; ss; ss = ss->next) {
        fl_session *s = ss->s;
        bool open = s->state == FLAME_SESSION_OPEN;
        uint64_t want = (uint64_t)s->counts[FLAME_TASK_RUNNING];
        /* Pending tasks want executors while the session can bind them */
        if (open && !s->unschedulable) {
            want += (uint64_t)s->counts[FLAME_TASK_PENDING];
            if (want < s->min_instances)
                want = s->min_instances;
        }
        if (s->has_max && want > s->max_instances)
            want = s->max_instances;
        if (!open && !want)
            continue; /* closed and done: its pods go */
        d[n++] = (fl_provider_demand){ s->id, s->app, s->resreq,
                                       want > UINT32_MAX ? UINT32_MAX : (uint32_t)want, open };
    }
    fl_provider_demand_set(sm->provider, d, n);
    free(d);
}
