/* The session manager's engine: start/stop, restore from storage, and the
 * rpc loop's hooks: the flush after each batch of calls (the commit, or
 * the batch undone when it fails; then a scheduling cycle when one is due,
 * the hand-outs, and every answer that waited) and the periodic tick.
 *
 * Threads: sm_start() runs on the caller's thread until the engine thread
 * (engine_main, the rpc loop) starts; from then on every handler and hook
 * runs on the engine thread and owns all state without locks.
 * flame_session_manager_stop() stops the loop and joins the thread first. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/endpoint.h"
#include "provider/provider.h"
#include "sm.h"

/* Demand changes of busy sessions wait at most this long for a cycle (the
 * tick catches up with the rest). */
#define SCHED_SOFT_NS 5000000

void sm_flush(void *ctx)
{
    sm_t *sm = ctx;
    sm_watch_collect(sm); /* outcomes of the batch: they stand or fall with it */
    int64_t t0 = fl_mono_ns();
    bool failed = fl_store_commit(sm->store) != FLAME_OK;
    sm_metrics_commit(fl_mono_ns() - t0, failed);
    if (failed) {
        char why[512];
        snprintf(why, sizeof why, "%s", flame_error_last());
        fl_log(FL_LOG_ERROR, "sm", "commit failed, the batch is undone: %s", why);
        sm_reply_fail(sm, why);
        sm_watch_commit_failed(sm, why);
        sm_undo(sm, why);
    } else {
        sm_journal_clear(sm);
    }
    /* executors and their managers hear only of what is on disk */
    if (sm->sched && (sm->sched_dirty ||
                      (sm->sched_soft && fl_mono_ns() - sm->sched_last_ns > SCHED_SOFT_NS)))
        sm_sched_run(sm);
    sm_dispatch_run(sm);
    sm_dispatch_collect(sm);
    /* answers go out only now: what a client saw acknowledged is on disk */
    sm_reply_flush(sm);
}

void sm_tick(void *ctx)
{
    sm_t *sm = ctx;
    int64_t now_s = fl_now_ms() / 1000;
    sm_execs_expire(sm, now_s);
    sm_nodes_expire(sm);
    sm_metrics_tick(sm);
    sm->sched_dirty = true; /* the cycle runs at the flush, after the commit */
}

/* ---- restore ------------------------------------------------------------ */

static void load_app(void *ctx, fl_app *a)
{
    sm_t *sm = ctx;
    fl_app_free(fl_map_get(&sm->apps, a->name));
    fl_map_put(&sm->apps, a->name, a);
}

static void load_session(void *ctx, fl_session *s)
{
    sm_t *sm = ctx;
    if (fl_map_get(&sm->sessions, s->id)) {
        fl_session_free(s);
        return;
    }
    sm_session_add(sm, s);
}

static void load_task(void *ctx, const char *sid, fl_task *t)
{
    sm_t *sm = ctx;
    sm_session *ss = sm_session_get(sm, sid);
    if (!ss) {
        fl_task_free(t);
        return;
    }
    if (t->state == FLAME_TASK_RUNNING)
        sm->restored_running++;
    sm_task_restored(sm, ss, t);
}

/* ---- authorization: ownership questions auth/ asks of the books ---------- */

static const char *session_owner(void *ctx, const char *id)
{
    sm_session *ss = sm_session_get(ctx, id);
    return ss ? ss->s->owner : NULL;
}

static const char *executor_node(void *ctx, const char *id)
{
    sm_exec *e = sm_exec_get(ctx, id);
    return e ? e->ex->node : NULL;
}

/* Without TLS every client is admin: only loopback, unless the operator
 * says otherwise. */
static flame_status check_plaintext(const char *endpoint, bool insecure)
{
    fl_endpoint ep;
    flame_status st = fl_endpoint_parse(&ep, endpoint, FLAME_ERR_CONFIG);
    if (st)
        return st;
    if (fl_endpoint_loopback(&ep))
        fl_log(FL_LOG_INFO, "sm", "no TLS (cluster.tls): listening on loopback only (%s); every "
               "local client is the identity \"%s\" with role admin (development mode)",
               ep.target, FL_IDENTITY_LOCAL);
    else if (!insecure)
        st = fl_error(FLAME_ERR_CONFIG, "endpoint %s is not a loopback address and TLS is off: "
                      "every client that reaches it would be admin; configure cluster.tls, "
                      "listen on 127.0.0.1, or pass --insecure", ep.url);
    else
        fl_log(FL_LOG_WARN, "sm", "INSECURE: listening on %s without TLS (--insecure): anyone "
               "who reaches this port is admin, can run any command on every node and read "
               "every session; configure cluster.tls", ep.target);
    fl_endpoint_clear(&ep);
    return st;
}

/* ---- life cycle --------------------------------------------------------- */

static void *engine_main(void *arg)
{
    sm_t *sm = arg;
    sm_metrics_tick(sm);
    atomic_store(&sm->serving, true);
    rpc_server_run(sm->rpc);
    return NULL;
}

static void sm_free(sm_t *sm)
{
    fl_provider_free(sm->provider);
    sm_journal_clear(sm);
    sm_execs_free(sm);
    sm_nodes_free(sm);
    sm_sessions_free(sm);
    flame_scheduler_free(sm->sched);
    size_t it = 0;
    void *v;
    while (fl_map_next(&sm->apps, &it, NULL, &v))
        fl_app_free(v);
    fl_map_free(&sm->apps);
    fl_store_close(sm->store);
    fl_auth_free(sm->auth);
    free(sm->out);
    free(sm->dirty_execs);
    free(sm->due);
    free(sm->journal);
    free(sm->name);
    fl_server_tls_clear(&sm->tls);
    free(sm);
}

flame_status flame_session_manager_start(flame_session_manager **out,
                                         const flame_server_options *opts)
{
    return sm_start(out, opts, NULL);
}

static flame_status start(flame_session_manager **out, const flame_server_options *opts,
                          fl_store *store, bool network)
{
    flame_server_options o = FLAME_SERVER_OPTIONS_INIT;
    if (opts && opts->version >= 2)
        o = *opts;
    else if (opts) /* version 1: the fields before TLS */
        memcpy(&o, opts, offsetof(flame_server_options, tls_cert_file));
    flame_cluster_config *cfg = NULL;
    if (o.config_file) {
        flame_status st = flame_cluster_config_load(&cfg, o.config_file);
        if (st) {
            fl_store_close(store);
            return st;
        }
    }
    sm_t *sm = fl_calloc(1, sizeof *sm);
    sm->store = store;
    sm->next_seq = 1;
    sm->started_ms = fl_now_ms();
    flame_scheduler_new(&sm->sched);
    sm->default_resreq = cfg ? cfg->resreq : (flame_resreq){ 1, 1ULL << 30, 0 };
    sm->schedule_interval_ms = o.schedule_interval_ms ? o.schedule_interval_ms
                               : cfg ? cfg->schedule_interval_ms : 500;
    sm->node_timeout_ms = cfg ? cfg->node_timeout_ms : 10000;
    int busy_poll_us = cfg ? cfg->busy_poll_us : RPC_BUSY_POLL_US_DEFAULT;
    flame_cluster_limits lim = cfg ? cfg->limits : (flame_cluster_limits){ 0 };
    sm->max_message = o.max_message_size      ? o.max_message_size
                      : lim.max_message_size ? lim.max_message_size
                                              : RPC_DEFAULT_MAX_MESSAGE;
    /* a Task carries its input and output: both fit in one reply */
    sm->max_task_data = (sm->max_message - (64u << 10)) / 2;
    sm->max_tasks_per_request = lim.max_tasks_per_request ? lim.max_tasks_per_request : 1024;
    sm->retry_limits = cfg && cfg->session_retry_limits ? cfg->session_retry_limits : 5;
    sm->name = fl_strdup(cfg ? cfg->name : "flame");
    const char *endpoint = o.endpoint ? o.endpoint : cfg ? cfg->endpoint : FL_DEFAULT_ENDPOINT;
    const char *storage = o.storage ? o.storage : cfg ? cfg->storage : "sqlite://flame.db";
    char addr[256];
    fl_endpoint ep;
    flame_status st = fl_endpoint_parse(&ep, endpoint, FLAME_ERR_CONFIG);
    if (!st) {
        if ((size_t)snprintf(addr, sizeof addr, "%s", ep.target) >= sizeof addr)
            st = fl_error(FLAME_ERR_CONFIG, "endpoint \"%s\": too long", endpoint);
        fl_endpoint_clear(&ep);
    }
    if (!st)
        st = fl_server_tls_resolve(&sm->tls, &o, cfg);
    if (!st && !rpc_tls_enabled(&sm->tls.tls))
        st = check_plaintext(endpoint, o.insecure);
    if (!st) {
        const ProtobufCServiceDescriptor *descs[] = { sm_frontend_service.desc,
                                                      sm_backend_service.desc };
        /* server-side TLS as Flame means it: clients without a certificate
         * (flamepy) are users unless the operator says none */
        const char *anon = sm->tls.anonymous_role ? sm->tls.anonymous_role : "user";
        fl_auth_options ao = { sm->tls.crl_file, sm->tls.tls.ca_file,
                               (fl_role)fl_role_parse(anon),
                               { session_owner, executor_node, sm } };
        st = fl_auth_new(&sm->auth, &ao, descs, FL_ARRAY_LEN(descs));
    }
    if (!st && !sm->store)
        st = fl_store_open(&sm->store, storage);
    if (!st && network) {
        fl_provider_tls ptls = { sm->tls.tls.mutual, sm->tls.tls.ca_file };
        st = fl_provider_new(&sm->provider, cfg, endpoint, &ptls);
    }
    flame_cluster_config_free(cfg);
    if (st) {
        sm_free(sm);
        return st;
    }
    st = sm->store->ops->load(sm->store, sm, load_app, load_session, load_task);
    if (st) {
        sm_free(sm);
        return st;
    }
    if (sm->restored_running) /* operators (and the test bed) count what runs twice */
        fl_log(FL_LOG_WARN, "sm", "%u task(s) were running when the session manager stopped: "
               "back to Pending", sm->restored_running);
    sm_register_builtins(sm);
    if ((st = fl_store_commit(sm->store))) {
        sm_free(sm);
        return st;
    }
    sm_journal_clear(sm);
    const rpc_service services[] = { sm_frontend_service, sm_backend_service };
    rpc_server_options ro = RPC_SERVER_OPTIONS_INIT;
    ro.max_message = sm->max_message;
    ro.hooks = (rpc_server_hooks){ sm_flush, sm_tick, sm->schedule_interval_ms, sm };
    ro.busy_poll_us = busy_poll_us;
    ro.tls = sm->tls.tls; /* TLS whatever the endpoint's scheme, as Flame */
    ro.authorize = fl_auth_authorize;
    ro.authorize_ctx = sm->auth;
    ro.validate = sm_validate_request;
    ro.validate_ctx = sm;
    ro.limits = (rpc_limits){ lim.max_send_queue, 0, lim.max_concurrent_streams,
                              lim.handshake_timeout_ms, lim.idle_timeout_ms, lim.keepalive_ms,
                              lim.shutdown_grace_ms };
    sm->rpc = rpc_server_new(services, FL_ARRAY_LEN(services), sm, &ro);
    if (!network) {
        *out = sm;
        return FLAME_OK;
    }
    sm->port = rpc_server_listen(sm->rpc, addr);
    if (sm->port < 0) {
        rpc_server_free(sm->rpc);
        sm_free(sm);
        return FLAME_ERR_UNAVAILABLE;
    }
    if (pthread_create(&sm->thread, NULL, engine_main, sm) != 0) {
        rpc_server_free(sm->rpc);
        sm_free(sm);
        return fl_error(FLAME_ERR_INTERNAL, "cannot start the engine thread");
    }
    fl_log(FL_LOG_INFO, "sm", "session manager %s listening on %s (port %d, %s), storage %s",
           sm->name, addr, sm->port,
           !rpc_tls_enabled(&sm->tls.tls) ? "plaintext"
           : sm->tls.tls.mutual           ? "mutual TLS"
           : sm->tls.tls.ca_file          ? "TLS, client certificates verified when presented"
                                          : "TLS",
           sm->store->ops->name);
    *out = sm;
    return FLAME_OK;
}

flame_status sm_start(flame_session_manager **out, const flame_server_options *opts,
                      fl_store *store)
{
    return start(out, opts, store, true);
}

flame_status sm_start_inproc(sm_t **out, const flame_server_options *opts, fl_store *store)
{
    return start(out, opts, store, false);
}

void sm_stop_inproc(sm_t *sm)
{
    sm_flush(sm);
    rpc_server_free(sm->rpc);
    sm_free(sm);
}

int flame_session_manager_port(const flame_session_manager *sm)
{
    return sm ? sm->port : -1;
}

void flame_session_manager_stop(flame_session_manager *sm)
{
    if (!sm)
        return;
    atomic_store(&sm->serving, false);
    rpc_server_shutdown(sm->rpc);
    pthread_join(sm->thread, NULL);
    rpc_server_free(sm->rpc);
    sm_flush(sm);
    sm_free(sm);
}
