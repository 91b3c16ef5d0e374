/* One executor's life cycle, as a state machine run by the executor's own
 * thread:
 *
 *   REGISTER -> BIND                     (DONE if it fails)
 *   BIND     -> ENTER, given a session   (RELEASE: released, or the call failed;
 *                                         DONE when stopping)
 *   ENTER    -> RUN, once entered        (LEAVE if not)
 *   RUN      -> LEAVE, when unbound or when the connection broke
 *   LEAVE    -> UNBIND; BIND after a failed bind; RELEASE when the
 *               connection is gone
 *   UNBIND   -> BIND                     (RELEASE if it fails)
 *   RELEASE  -> DONE
 *
 * Each state is one function doing one step with the session manager and
 * returning the next state; the table `steps` maps one to the other.
 * Reconnecting is the node's business (node.c): when its connection breaks
 * it tears every executor down, and the session manager creates them anew.
 *
 * Threads and locks: each executor's thread runs only its own em_exec; the
 * node thread starts executors and tears them down (em->mu guards the list,
 * x->mu the executor's stream; see em.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em.h"
#include "install/install.h"
#include "util/util.h"

typedef enum em_state {
    EM_REGISTER, /* RegisterExecutor */
    EM_BIND,     /* BindExecutor: wait for a session, or for the release */
    EM_ENTER,    /* pick the shim, install, enter; report BindExecutorCompleted */
    EM_RUN,      /* run the session's tasks (run.c) until it is unbound */
    EM_LEAVE,    /* stop the service; decide between unbind, bind and release */
    EM_UNBIND,   /* UnbindExecutorCompleted */
    EM_RELEASE,  /* UnregisterExecutor when leaving for a reason of our own */
    EM_DONE
} em_state;

/* One bound session, from BIND to LEAVE. */
typedef struct em_binding {
    ProtobufCMessage *resp;  /* the BindExecutorResponse: ctx points into it */
    fl_shim_session ctx;
    fl_installation inst;
    fl_shim *shim;
    bool entered;            /* the service entered the session */
    flame_status st;         /* how the last call to the session manager went */
    bool reuse;              /* the session manager lets the kept service serve it */
    /* Kept across bindings: the service left running by the last session
     * of an application that opts into sandbox reuse, and its application.
     * The next bind uses it only where the session manager says so (same
     * application and owner); else it is stopped first. */
    fl_shim *kept;
    char *kept_app;
} em_binding;

flame_status em_exec_call(em_exec *x, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                          int timeout_ms)
{
    ProtobufCMessage *r = NULL;
    flame_status st = rpc_unary_cancellable(x->em->ch, method, req,
                                            resp_desc ? resp_desc : &flame__v1__result__descriptor,
                                            &r, timeout_ms, x->cancel);
    if (st == FLAME_OK) {
        if (resp)
            *resp = r;
        else
            protobuf_c_message_free_unpacked(r, NULL);
    }
    return st;
}

static const flame_service *inproc_for(flame_executor_manager *em, const char *app)
{
    for (size_t i = 0; i < em->inproc_len; i++)
        if (strcmp(em->inproc[i].application, app) == 0)
            return em->inproc[i].service;
    return NULL;
}

/* ---- the states ----------------------------------------------------------- */

static em_state on_register(em_exec *x, em_binding *b)
{
    Flame__V1__RegisterExecutorRequest reg = FLAME__V1__REGISTER_EXECUTOR_REQUEST__INIT;
    reg.executor_id = x->id;
    if (em_exec_call(x, EM_BE("RegisterExecutor"), &reg.base, NULL, NULL, EM_CALL_TIMEOUT_MS)) {
        fl_log(FL_LOG_WARN, "em", "executor %s: register failed: %s", x->id, flame_error_last());
        return EM_DONE;
    }
    return EM_BIND;
}

void em_shim_ctx(const flame_executor_manager *em, fl_shim_session *ctx, const char *id,
                 const char *app, const Flame__V1__ApplicationSpec *spec)
{
    *ctx = (fl_shim_session){
        .executor_id = id,
        .session_id = "",
        .application = app,
        .app_spec = spec,
        .endpoint = em->endpoint,
        .ca_file = em->ca_file,
        .work_dir = em->work_dir,
        .log_dir = em->log_dir,
        .bin_dir = em->bin_dir,
        .task_timeout_ms = em->task_timeout_ms,
        .sandbox = spec->sandbox && spec->sandbox[0] ? spec->sandbox : em->sandbox_default,
        .network = spec->network && spec->network[0] ? spec->network : NULL,
        .cache_endpoint = em->cache_endpoint,
    };
}

static em_state on_bind(em_exec *x, em_binding *b)
{
    flame_executor_manager *em = x->em;
    if (em->stopping)
        return EM_DONE;
    Flame__V1__BindExecutorRequest br = FLAME__V1__BIND_EXECUTOR_REQUEST__INIT;
    br.executor_id = x->id;
    ProtobufCMessage *resp;
    bool was = rpc_quiet(true); /* an idle executor's long poll (see rpc_quiet) */
    flame_status rc = em_exec_call(x, EM_BE("BindExecutor"), &br.base,
                                   &flame__v1__bind_executor_response__descriptor, &resp, 0);
    rpc_quiet(was);
    if (rc)
        return EM_RELEASE;
    Flame__V1__BindExecutorResponse *r = (Flame__V1__BindExecutorResponse *)resp;
    if (!r->_session_case || !r->session) { /* released */
        protobuf_c_message_free_unpacked(resp, NULL);
        return EM_RELEASE;
    }
    const Flame__V1__Session *s = r->session;
    static const Flame__V1__ApplicationSpec empty = FLAME__V1__APPLICATION_SPEC__INIT;
    const Flame__V1__ApplicationSpec *spec =
        r->_application_case && r->application && r->application->spec ? r->application->spec
                                                                        : &empty;
    b->resp = resp;
    b->reuse = r->sandbox_reuse;
    em_shim_ctx(em, &b->ctx, x->id, s->spec ? s->spec->application : "", spec);
    b->ctx.session_id = s->metadata ? s->metadata->id : "";
    b->ctx.session_spec = s->spec;
    if (s->spec && s->spec->_resreq_case && s->spec->resreq) {
        b->ctx.cpus = s->spec->resreq->cpu;
        b->ctx.memory = s->spec->resreq->memory;
    }
    if (s->spec && s->spec->_common_data_case) {
        b->ctx.common_data.data = s->spec->common_data.data ? s->spec->common_data.data
                                                            : (const uint8_t *)"";
        b->ctx.common_data.len = s->spec->common_data.len;
    }
    return EM_ENTER;
}

static bool sandbox_allowed(const flame_executor_manager *em, const char *level)
{
    char key[32];
    snprintf(key, sizeof key, ",%s,", level);
    return strlen(level) < 16 && strstr(em->sandbox_allow, key) != NULL;
}

/* Bind failures as Flame reports them in BindExecutorCompleted. */
#define BIND_RC_INSTALL 10
#define BIND_RC_SHIM 11
#define BIND_RC_ENTER 12

/* The application's environments, expanded against ours (NULL-terminated,
 * malloc'ed strings). */
static char **app_env(const Flame__V1__ApplicationSpec *spec)
{
    extern char **environ;
    char **env = fl_calloc(spec->n_environments + 1, sizeof *env);
    for (size_t i = 0; i < spec->n_environments; i++) {
        char *v = fl_expand_vars(spec->environments[i]->value, environ, NULL);
        env[i] = fl_sprintf("%s=%s", spec->environments[i]->name, v);
        free(v);
    }
    return env;
}

flame_status em_install(const flame_executor_manager *em, const char *app,
                        const Flame__V1__ApplicationSpec *spec, fl_installation *inst,
                        char **message)
{
    char **env = app_env(spec);
    fl_install_request req = {
        .application = app,
        .url = spec->_url_case ? spec->url : NULL,
        .installer = spec->_installer_case ? spec->installer : NULL,
        .command = spec->_command_case ? spec->command : NULL,
        .working_directory = spec->_working_directory_case ? spec->working_directory : NULL,
        .work_dir = em->work_dir,
        .app_env = env,
        .cache_ca_file = em->cache_ca_file,
    };
    const fl_installer *in = fl_installer_for(&req, message);
    flame_status st = in ? fl_install(in, &req, inst, message) : FLAME_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
    return st;
}

/* Stops the service kept from the last session, if any. */
static void drop_kept(em_binding *b)
{
    if (b->kept) {
        b->kept->ops->leave(b->kept);
        b->kept->ops->free(b->kept);
    }
    b->kept = NULL;
    free(b->kept_app);
    b->kept_app = NULL;
}

/* Picks the shim, installs the application and enters the session. On
 * failure *message says why and *rc is Flame's return code for it. */
static flame_status enter_session(em_exec *x, em_binding *b, int *rc, char **message)
{
    const Flame__V1__ApplicationSpec *spec = b->ctx.app_spec;
    *rc = BIND_RC_SHIM;
    if (!sandbox_allowed(x->em, b->ctx.sandbox)) {
        *message = fl_sprintf("application %s asks for sandbox %s, which node %s does not run "
                              "(it runs: %.*s)", b->ctx.application, b->ctx.sandbox, x->em->node,
                              (int)strlen(x->em->sandbox_allow) - 2, x->em->sandbox_allow + 1);
        return FLAME_ERR_FAILED_PRECONDITION;
    }
    fl_shim_choice choice = { spec->shim, spec->_command_case ? spec->command : NULL,
                              inproc_for(x->em, b->ctx.application) };
    bool warm = false;
    if (b->kept && b->reuse && strcmp(b->kept_app, b->ctx.application) == 0)
        b->shim = b->kept; /* its enter finds the service running */
    else
        drop_kept(b);
    /* the service started ahead for this executor, installed (its enter
     * finds it running), if it is for this kind of session */
    if (!b->shim && !choice.service)
        warm = (b->shim = em_pool_take(x->em, &b->ctx, &b->inst)) != NULL;
    else
        em_pool_release(x->em, x->id);
    b->kept = NULL;
    free(b->kept_app);
    b->kept_app = NULL;
    flame_status st = b->shim ? FLAME_OK : fl_shim_new(&b->shim, &choice, message);
    if (st)
        return st;
    *rc = BIND_RC_INSTALL;
    if (!warm && (st = em_install(x->em, b->ctx.application, spec, &b->inst, message)))
        return st;
    b->ctx.command = b->inst.command;
    b->ctx.working_directory = b->inst.working_directory;
    b->ctx.installation = &b->inst;
    *rc = BIND_RC_ENTER;
    int64_t t0 = fl_mono_ns();
    st = b->shim->ops->enter(b->shim, &b->ctx, message);
    em_metrics_shim(EM_SHIM_ENTER, fl_mono_ns() - t0);
    return st;
}

static em_state on_enter(em_exec *x, em_binding *b)
{
    char *msg = NULL;
    int rc = 0;
    flame_status entered = enter_session(x, b, &rc, &msg);
    em_metrics_bind(entered == FLAME_OK);
    Flame__V1__Result result = FLAME__V1__RESULT__INIT;
    Flame__V1__BindExecutorCompletedRequest bc = FLAME__V1__BIND_EXECUTOR_COMPLETED_REQUEST__INIT;
    bc.executor_id = x->id;
    bc._result_case = FLAME__V1__BIND_EXECUTOR_COMPLETED_REQUEST___RESULT_RESULT;
    bc.result = &result;
    if (entered) {
        result.return_code = rc;
        result._message_case = FLAME__V1__RESULT___MESSAGE_MESSAGE;
        result.message = msg ? msg : "the service did not start";
        fl_log(FL_LOG_WARN, "em", "executor %s: session %s: %s", x->id, b->ctx.session_id,
               result.message);
    }
    b->st = em_exec_call(x, EM_BE("BindExecutorCompleted"), &bc.base, NULL, NULL,
                         EM_CALL_TIMEOUT_MS);
    free(msg);
    b->entered = entered == FLAME_OK;
    return b->entered && !b->st ? EM_RUN : EM_LEAVE;
}

static em_state on_run(em_exec *x, em_binding *b)
{
    b->st = em_run_session(x, b->shim, &b->ctx);
    return EM_LEAVE;
}

static em_state on_leave(em_exec *x, em_binding *b)
{
    /* the service outlives the session only where its application opts in
     * and the connection stays (the next bind decides whether it serves) */
    const Flame__V1__ApplicationSpec *spec = b->ctx.app_spec;
    bool poolable = b->shim && b->shim->ops->prestart;
    fl_shim *kept = NULL;
    if (b->shim && b->entered && spec && spec->sandbox_reuse && !x->em->stopping &&
        b->st != FLAME_ERR_UNAVAILABLE && b->st != FLAME_ERR_CANCELLED &&
        b->shim->ops->leave_keep && b->shim->ops->leave_keep(b->shim))
        kept = b->shim;
    else if (b->shim)
        b->shim->ops->leave(b->shim);
    if (b->shim && !kept)
        b->shim->ops->free(b->shim);
    char *kept_app = kept ? fl_strdup(b->ctx.application) : NULL;
    /* a session that ended well: a service for the next session like it is
     * started ahead (the pool's sizes permitting), unless the executor is
     * released at once (delay_release 0) */
    if (poolable && !kept && b->entered && !b->st && !x->em->stopping && spec &&
        !(spec->_delay_release_case && spec->delay_release == 0))
        em_pool_reserve(x->em, &b->ctx);
    fl_installation_clear(&b->inst);
    protobuf_c_message_free_unpacked(b->resp, NULL);
    flame_status st = b->st;
    bool entered = b->entered;
    drop_kept(b); /* a kept one the session did not use (its enter failed before) */
    memset(b, 0, sizeof *b);
    b->kept = kept;
    b->kept_app = kept_app;
    /* a lost connection ends the executor; a refusal still ends in an unbind */
    if (st && (st == FLAME_ERR_UNAVAILABLE || st == FLAME_ERR_CANCELLED || x->em->stopping))
        return EM_RELEASE;
    if (st)
        fl_log(FL_LOG_WARN, "em", "executor %s: %s; unbinding", x->id, flame_error_last());
    /* a failed bind the session manager took needs no unbind */
    return entered || st ? EM_UNBIND : EM_BIND;
}

static em_state on_unbind(em_exec *x, em_binding *b)
{
    Flame__V1__UnbindExecutorCompletedRequest uc =
        FLAME__V1__UNBIND_EXECUTOR_COMPLETED_REQUEST__INIT;
    uc.executor_id = x->id;
    if (em_exec_call(x, EM_BE("UnbindExecutorCompleted"), &uc.base, NULL, NULL,
                     EM_CALL_TIMEOUT_MS))
        return EM_RELEASE;
    return EM_BIND;
}

static em_state on_release(em_exec *x, em_binding *b)
{
    if (!x->em->stopping) {
        /* leaving for a reason of our own: tell the session manager, so that
         * it does not keep an executor nobody runs (best effort) */
        Flame__V1__UnregisterExecutorRequest ur = FLAME__V1__UNREGISTER_EXECUTOR_REQUEST__INIT;
        ur.executor_id = x->id;
        em_exec_call(x, EM_BE("UnregisterExecutor"), &ur.base, NULL, NULL, EM_CALL_TIMEOUT_MS);
    }
    return EM_DONE;
}

static em_state (*const steps[EM_DONE])(em_exec *x, em_binding *b) = {
    [EM_REGISTER] = on_register,
    [EM_BIND] = on_bind,
    [EM_ENTER] = on_enter,
    [EM_RUN] = on_run,
    [EM_LEAVE] = on_leave,
    [EM_UNBIND] = on_unbind,
    [EM_RELEASE] = on_release,
};

static void *exec_main(void *arg)
{
    em_exec *x = arg;
    em_binding b = { 0 };
    em_metrics_step(-1, EM_REGISTER);
    for (em_state s = EM_REGISTER, next; s != EM_DONE; s = next) {
        next = steps[s](x, &b);
        em_metrics_step(s, next == EM_DONE ? -1 : (int)next);
    }
    em_pool_release(x->em, x->id);
    drop_kept(&b);
    return NULL;
}

/* ---- starting and tearing down -------------------------------------------- */

void em_exec_start(flame_executor_manager *em, const char *id)
{
    em_exec *x = fl_calloc(1, sizeof *x);
    x->em = em;
    x->id = fl_strdup(id);
    x->cancel = rpc_cancel_new();
    pthread_mutex_init(&x->mu, NULL);
    /* listed only once its thread runs: teardown joins every listed one */
    pthread_mutex_lock(&em->mu);
    int rc = pthread_create(&x->th, NULL, exec_main, x);
    if (rc == 0) {
        x->next = em->execs;
        em->execs = x;
    }
    pthread_mutex_unlock(&em->mu);
    if (rc != 0) {
        /* out of threads (pid_max, threads-max, RLIMIT_NPROC): the session
         * manager never hears from this executor (it stays unregistered) */
        fl_log(FL_LOG_ERROR, "em", "executor %s: no thread for it: %s", x->id, strerror(rc));
        rpc_cancel_free(x->cancel);
        pthread_mutex_destroy(&x->mu);
        free(x->id);
        free(x);
    }
}

void em_exec_set_stream(em_exec *x, rpc_stream *st)
{
    pthread_mutex_lock(&x->mu);
    x->stream = st;
    bool cancelled = x->cancelled;
    pthread_mutex_unlock(&x->mu);
    if (st && cancelled)
        rpc_stream_cancel(st);
}

void em_exec_teardown_all(flame_executor_manager *em)
{
    pthread_mutex_lock(&em->mu);
    em_exec *list = em->execs;
    em->execs = NULL;
    pthread_mutex_unlock(&em->mu);
    for (em_exec *x = list; x; x = x->next) {
        rpc_cancel_fire(x->cancel);
        pthread_mutex_lock(&x->mu);
        x->cancelled = true;
        if (x->stream)
            rpc_stream_cancel(x->stream);
        pthread_mutex_unlock(&x->mu);
    }
    for (em_exec *x = list, *next; x; x = next) {
        next = x->next;
        pthread_join(x->th, NULL);
        rpc_cancel_free(x->cancel);
        pthread_mutex_destroy(&x->mu);
        free(x->id);
        free(x);
    }
}
