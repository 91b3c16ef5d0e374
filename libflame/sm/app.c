/* Applications: registering, updating and unregistering them (an
 * application with open sessions cannot change). */
#include <string.h>

#include "sm.h"

flame_status sm_app_register(sm_t *sm, const char *name, fl_app *a)
{
    flame_status st = fl_app_validate(name, a ? a->spec : NULL);
    if (!st && fl_map_get(&sm->apps, name))
        st = fl_error(FLAME_ERR_ALREADY_EXISTS, "application %s already exists", name);
    if (st) {
        fl_app_free(a);
        return st;
    }
    sm_journal_app_added(sm, a);
    fl_map_put(&sm->apps, a->name, a);
    fl_store_put_app(sm->store, a);
    return FLAME_OK;
}

flame_status sm_app_update(sm_t *sm, const char *name, fl_app *na)
{
    fl_app *a = fl_map_get(&sm->apps, name);
    flame_status st = FLAME_OK;
    if (!a)
        st = fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", name);
    else if (a->open_sessions)
        st = fl_error(FLAME_ERR_FAILED_PRECONDITION,
                      "application %s has %u open session(s); close them before updating it",
                      name, a->open_sessions);
    else
        st = fl_app_validate(name, na ? na->spec : NULL);
    if (st) {
        fl_app_free(na);
        return st;
    }
    na->ctime = a->ctime;
    na->state = a->state;
    fl_map_put(&sm->apps, na->name, na);
    sm_journal_app_replaced(sm, a); /* freed once the batch is committed */
    fl_store_put_app(sm->store, na);
    return FLAME_OK;
}

flame_status sm_app_unregister(sm_t *sm, const char *name)
{
    fl_app *a = fl_map_get(&sm->apps, name);
    if (!a)
        return fl_error(FLAME_ERR_NOT_FOUND, "application %s not found", name);
    if (a->open_sessions)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                        "application %s has %u open session(s); close them first", name,
                        a->open_sessions);
    for (sm_session *ss = sm->first, *next; ss; ss = next) {
        next = ss->next;
        if (strcmp(ss->s->app, a->name) == 0)
            sm_session_delete(sm, ss);
    }
    fl_store_del_app(sm->store, a->name);
    fl_map_del(&sm->apps, a->name);
    fl_log(FL_LOG_INFO, "sm", "application %s unregistered", a->name);
    sm_journal_app_deleted(sm, a); /* freed once the batch is committed */
    return FLAME_OK;
}
