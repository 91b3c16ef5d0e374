/* The executor manager: registers its node, keeps the WatchNode stream and
 * runs one thread per executor through the life cycle
 * register -> bind -> enter -> launch/complete ... -> unbind -> release. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "config/endpoint.h"
#include "flame/executor.h"
#include "flame/server.h"
#include "rpc/rpc.h"
#include "shim/shim.h"
#include "util/util.h"

#include "backend.pb-c.h"

#define BE(name) rpc_path(&flame__v1__backend__descriptor, name)
#define CALL_TIMEOUT_MS 10000
#define BACKOFF_MAX_MS 1000

typedef struct em_exec {
    struct flame_executor_manager *em;
    char *id;
    pthread_t th;
    rpc_cancel cancel;
    rpc_stream *stream;     /* ExecutorStream in use (under cancel.mu) */
    struct em_exec *next;
} em_exec;

struct flame_executor_manager {
    char *endpoint; /* http://host:port, handed to services as FLAME_ENDPOINT */
    char *node;
    char *work_dir, *log_dir, *bin_dir;
    flame_resreq res;
    int heartbeat_ms;
    int task_timeout_ms;
    flame_inproc_service *inproc;
    size_t inproc_len;
    rpc_channel *ch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stopping;
    rpc_stream *watch;
    em_exec *execs;
};

/* ---- helpers ------------------------------------------------------------ */

static void wait_ms(flame_executor_manager *em, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&em->mu);
    if (!em->stopping)
        pthread_cond_timedwait(&em->cv, &em->mu, &ts);
    pthread_mutex_unlock(&em->mu);
}

static flame_status call(em_exec *x, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                         int timeout_ms)
{
    ProtobufCMessage *r = NULL;
    flame_status st = rpc_unary_cancellable(x->em->ch, method, req,
                                            desc ? desc : &flame__v1__result__descriptor, &r,
                                            timeout_ms, &x->cancel);
    if (st == FLAME_OK) {
        if (resp)
            *resp = r;
        else
            protobuf_c_message_free_unpacked(r, NULL);
    }
    return st;
}

static void fill_status(flame_executor_manager *em, Flame__V1__NodeStatus *st,
                        Flame__V1__ResourceRequirement *rr, Flame__V1__NodeInfo *info,
                        struct utsname *u)
{
    flame__v1__node_status__init(st);
    flame__v1__resource_requirement__init(rr);
    flame__v1__node_info__init(info);
    rr->cpu = em->res.cpu;
    rr->memory = em->res.memory;
    rr->gpu = em->res.gpu;
    info->arch = u->machine;
    info->os = u->sysname;
    st->state = FLAME__V1__NODE_STATE__Ready;
    st->capacity = rr;
    st->allocatable = rr;
    st->info = info;
    st->last_heartbeat_time = fl_now_ms() / 1000;
}

/* ---- one executor ------------------------------------------------------- */

static const flame_service *inproc_for(flame_executor_manager *em, const char *app)
{
    for (size_t i = 0; i < em->inproc_len; i++)
        if (strcmp(em->inproc[i].application, app) == 0)
            return em->inproc[i].service;
    return NULL;
}

/* Prefetch: the session manager may push this many tasks ahead, so the
 * service never waits on a round trip. Services that take batches get
 * bigger windows and run INVOKE_BATCH tasks per call; the others run one
 * at a time, each outcome reported at once. */
#define WINDOW_SINGLE 2
#define WINDOW_BATCH 256
#define INVOKE_BATCH 64

typedef struct qtask {
    char *id;
    uint8_t *input;
    size_t len;
    bool has_input;
} qtask;

typedef struct runq {
    qtask *v;
    size_t head, len, cap;
} runq;

static void runq_push(runq *q, const Flame__V1__Task *t)
{
    if (q->head + q->len == q->cap) {
        if (q->head) {
            memmove(q->v, q->v + q->head, q->len * sizeof *q->v);
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 256;
            q->v = fl_realloc(q->v, q->cap * sizeof *q->v);
        }
    }
    qtask *x = &q->v[q->head + q->len++];
    x->id = fl_strdup(t->metadata ? t->metadata->id : "");
    x->has_input = t->spec && t->spec->_input_case;
    x->len = x->has_input ? t->spec->input.len : 0;
    x->input = x->len ? fl_memdup(t->spec->input.data, x->len) : NULL;
}

static void runq_pop(runq *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(q->v[q->head + i].id);
        free(q->v[q->head + i].input);
    }
    q->head += n;
    q->len -= n;
    if (!q->len)
        q->head = 0;
}

static void set_outcome(Flame__V1__TaskOutcome *o, const qtask *t, int rc,
                        const flame_task_result *res, const char *msg)
{
    flame__v1__task_outcome__init(o);
    o->task_id = strtoull(t->id, NULL, 10);
    o->state = rc == 0 ? FLAME__V1__TASK_STATE__Succeed : FLAME__V1__TASK_STATE__Failed;
    o->return_code = rc;
    if (res && res->has_output) {
        o->_output_case = FLAME__V1__TASK_OUTCOME___OUTPUT_OUTPUT;
        o->output.data = res->output;
        o->output.len = res->output_len;
    }
    const char *m = msg ? msg : res ? res->message : NULL;
    if (m) {
        o->_message_case = FLAME__V1__TASK_OUTCOME___MESSAGE_MESSAGE;
        o->message = (char *)m;
    }
}

/* Runs tasks[0..n) on the shim. Fills outcomes; returns how many ran (all,
 * unless the service died and could not be restarted). */
static size_t run_tasks(em_exec *x, fl_shim *shim, const fl_shim_session *ctx, const qtask *q,
                        size_t n, Flame__V1__TaskOutcome *out, flame_task_result *res,
                        char **msgs, bool *dead, int *batching)
{
    flame_task_context *tc = fl_calloc(n, sizeof *tc);
    int *rcs = fl_calloc(n, sizeof *rcs);
    for (size_t i = 0; i < n; i++) {
        tc[i].task_id = q[i].id;
        tc[i].session_id = ctx->session_id;
        if (q[i].has_input) {
            tc[i].input.data = q[i].input ? q[i].input : (const uint8_t *)"";
            tc[i].input.len = q[i].len;
        }
    }
    size_t done = 0;
    *dead = false;
    char *msg = NULL;
    flame_status st = FLAME_ERR_UNIMPLEMENTED;
    if (shim->ops->invoke_batch && n > 1 && *batching >= 0)
        st = shim->ops->invoke_batch(shim, tc, n, rcs, res, &msg);
    if (st == FLAME_ERR_UNIMPLEMENTED && n > 1)
        *batching = -1;
    if (st == FLAME_OK) {
        *batching = 1;
        for (; done < n; done++)
            set_outcome(&out[done], &q[done], rcs[done], &res[done], NULL);
    } else {
        if (st != FLAME_ERR_UNIMPLEMENTED) {
            /* the batch died with the service: restart it and run them one
             * by one, so that only the task that kills it fails */
            fl_log(FL_LOG_WARN, "em", "executor %s: %s", x->id, msg ? msg : "");
            free(msg);
            msg = NULL;
            if (shim->ops->enter(shim, ctx, &msg) != FLAME_OK) {
                fl_log(FL_LOG_WARN, "em", "executor %s: cannot restart the service: %s", x->id,
                       msg ? msg : "");
                free(msg);
                *dead = true;
                goto out;
            }
        }
        for (; done < n; done++) {
            int rc = 0;
            msg = NULL;
            if (shim->ops->invoke(shim, &tc[done], &rc, &res[done], &msg) == FLAME_OK) {
                set_outcome(&out[done], &q[done], rc, &res[done], NULL);
                continue;
            }
            /* the service crashed or hung: this task fails, a new process
             * takes the next ones */
            fl_log(FL_LOG_WARN, "em", "executor %s: %s", x->id, msg);
            msgs[done] = msg;
            set_outcome(&out[done], &q[done], 1, NULL, msg);
            char *why = NULL;
            if (shim->ops->enter(shim, ctx, &why) != FLAME_OK) {
                fl_log(FL_LOG_WARN, "em", "executor %s: cannot restart the service: %s", x->id,
                       why ? why : "");
                free(why);
                *dead = true;
                done++;
                goto out;
            }
        }
    }
out:
    free(tc);
    free(rcs);
    return done;
}

static void set_stream(em_exec *x, rpc_stream *st)
{
    pthread_mutex_lock(&x->cancel.mu);
    x->stream = st;
    bool cancelled = x->cancel.cancelled;
    pthread_mutex_unlock(&x->cancel.mu);
    if (st && cancelled)
        rpc_stream_cancel(st);
}

/* Runs the tasks of one bound session, streamed by the session manager,
 * until it says unbind (FLAME_OK) or the connection is gone (an error). */
static flame_status serve_session(em_exec *x, fl_shim *shim, const fl_shim_session *ctx)
{
    rpc_stream *st;
    flame_status rc = rpc_bidi_open(&st, x->em->ch, BE("ExecutorStream"));
    if (rc)
        return rc;
    set_stream(x, st);
    Flame__V1__ExecutorUpdate up = FLAME__V1__EXECUTOR_UPDATE__INIT;
    up.executor_id = x->id;
    up.credit = WINDOW_SINGLE;
    int batching = shim->ops->invoke_batch ? 0 : -1; /* 0: not known yet */
    rc = rpc_bidi_send(st, &up.base);
    runq q = { 0 };
    bool unbind = false, dead = false;
    Flame__V1__TaskOutcome *out = fl_calloc(INVOKE_BATCH, sizeof *out);
    Flame__V1__TaskOutcome **outp = fl_calloc(INVOKE_BATCH, sizeof *outp);
    flame_task_result *res = fl_calloc(INVOKE_BATCH, sizeof *res);
    char **msgs = fl_calloc(INVOKE_BATCH, sizeof *msgs);
    while (!rc) {
        if (!q.len) {
            if (unbind || dead)
                break;
            ProtobufCMessage *m;
            rc = rpc_stream_next(st, &flame__v1__executor_work__descriptor, &m);
            if (rc || !m)
                break; /* ended by the session manager: like unbind */
            Flame__V1__ExecutorWork *w = (Flame__V1__ExecutorWork *)m;
            for (size_t i = 0; i < w->n_tasks; i++)
                runq_push(&q, w->tasks[i]);
            unbind = unbind || w->unbind;
            protobuf_c_message_free_unpacked(m, NULL);
            continue;
        }
        size_t k = batching < 0 ? 1 : q.len < INVOKE_BATCH ? q.len : INVOKE_BATCH;
        int was = batching;
        size_t done = run_tasks(x, shim, ctx, q.v + q.head, k, out, res, msgs, &dead, &batching);
        for (size_t i = 0; i < done; i++)
            outp[i] = &out[i];
        up.n_outcomes = done;
        up.outcomes = outp;
        up.credit = dead ? 0 : (uint32_t)done;
        if (was == 0 && batching == 1) /* it takes batches: widen the window */
            up.credit += WINDOW_BATCH - WINDOW_SINGLE;
        rc = rpc_bidi_send(st, &up.base);
        for (size_t i = 0; i < k; i++) {
            fl_task_result_clear(&res[i]);
            free(msgs[i]);
            msgs[i] = NULL;
        }
        runq_pop(&q, dead ? q.len : done); /* what it could not run runs elsewhere */
    }
    if (dead && !rc) {
        Flame__V1__UnbindExecutorRequest ur = FLAME__V1__UNBIND_EXECUTOR_REQUEST__INIT;
        ur.executor_id = x->id;
        rc = call(x, BE("UnbindExecutor"), &ur.base, NULL, NULL, CALL_TIMEOUT_MS);
    }
    if (!rc) { /* half-close, then wait for the session manager's end */
        rpc_bidi_close_send(st);
        ProtobufCMessage *m;
        while (rpc_stream_next(st, &flame__v1__executor_work__descriptor, &m) == FLAME_OK && m)
            protobuf_c_message_free_unpacked(m, NULL);
    }
    set_stream(x, NULL);
    rpc_stream_free(st);
    runq_pop(&q, q.len);
    free(q.v);
    free(out);
    free(outp);
    free(res);
    free(msgs);
    return rc;
}

static void *exec_main(void *arg)
{
    em_exec *x = arg;
    flame_executor_manager *em = x->em;
    fl_shim *shim = NULL;
    Flame__V1__RegisterExecutorRequest reg = FLAME__V1__REGISTER_EXECUTOR_REQUEST__INIT;
    reg.executor_id = x->id;
    if (call(x, BE("RegisterExecutor"), &reg.base, NULL, NULL, CALL_TIMEOUT_MS)) {
        fl_log(FL_LOG_WARN, "em", "executor %s: register failed: %s", x->id, flame_error_last());
        return NULL;
    }
    while (!em->stopping) {
        Flame__V1__BindExecutorRequest br = FLAME__V1__BIND_EXECUTOR_REQUEST__INIT;
        br.executor_id = x->id;
        ProtobufCMessage *resp;
        if (call(x, BE("BindExecutor"), &br.base, &flame__v1__bind_executor_response__descriptor,
                 &resp, 0))
            break;
        Flame__V1__BindExecutorResponse *b = (Flame__V1__BindExecutorResponse *)resp;
        if (!b->_session_case || !b->session) { /* released: unregistered below */
            protobuf_c_message_free_unpacked(resp, NULL);
            break;
        }
        const Flame__V1__Session *s = b->session;
        const char *app = s->spec ? s->spec->application : "";
        Flame__V1__ApplicationSpec empty = FLAME__V1__APPLICATION_SPEC__INIT;
        const Flame__V1__ApplicationSpec *spec =
            b->_application_case && b->application && b->application->spec ? b->application->spec
                                                                            : &empty;
        fl_shim_session ctx = { x->id, s->metadata ? s->metadata->id : "", app, spec, { NULL, 0 },
                                em->endpoint, em->work_dir, em->log_dir, em->bin_dir,
                                em->task_timeout_ms };
        if (s->spec && s->spec->_common_data_case) {
            ctx.common_data.data = s->spec->common_data.data ? s->spec->common_data.data
                                                             : (const uint8_t *)"";
            ctx.common_data.len = s->spec->common_data.len;
        }
        /* in-process: an embedding program's service for this application,
         * or a built-in one named by the command "inproc:NAME" */
        const flame_service *svc = inproc_for(em, app);
        const char *cmd = spec->_command_case ? spec->command : "";
        bool want_inproc = strncmp(cmd, "inproc:", 7) == 0;
        if (!svc && want_inproc)
            svc = flame_builtin_service(cmd + 7);
        shim = svc ? fl_shim_inproc_new(svc) : fl_shim_host_new();
        char *msg = NULL;
        flame_status entered;
        if (spec->shim == FLAME__V1__SHIM__Wasm && !svc) {
            msg = fl_strdup("this executor has no Wasm runtime");
            entered = FLAME_ERR_UNIMPLEMENTED;
        } else if (want_inproc && !svc) {
            msg = fl_sprintf("no built-in service named \"%s\"", cmd + 7);
            entered = FLAME_ERR_NOT_FOUND;
        } else {
            entered = shim->ops->enter(shim, &ctx, &msg);
        }
        Flame__V1__Result result = FLAME__V1__RESULT__INIT;
        Flame__V1__BindExecutorCompletedRequest bc = FLAME__V1__BIND_EXECUTOR_COMPLETED_REQUEST__INIT;
        bc.executor_id = x->id;
        bc._result_case = FLAME__V1__BIND_EXECUTOR_COMPLETED_REQUEST___RESULT_RESULT;
        bc.result = &result;
        if (entered) {
            result.return_code = 1;
            result._message_case = FLAME__V1__RESULT___MESSAGE_MESSAGE;
            result.message = msg ? msg : "the service did not start";
            fl_log(FL_LOG_WARN, "em", "executor %s: session %s: %s", x->id, ctx.session_id,
                   result.message);
        }
        flame_status st = call(x, BE("BindExecutorCompleted"), &bc.base, NULL, NULL, CALL_TIMEOUT_MS);
        free(msg);
        if (!entered && !st)
            st = serve_session(x, shim, &ctx);
        shim->ops->leave(shim);
        shim->ops->free(shim);
        shim = NULL;
        protobuf_c_message_free_unpacked(resp, NULL);
        /* a refusal (not a lost connection) still ends in an unbind */
        if (st && (st == FLAME_ERR_UNAVAILABLE || st == FLAME_ERR_CANCELLED || em->stopping))
            break;
        if (st)
            fl_log(FL_LOG_WARN, "em", "executor %s: %s; unbinding", x->id, flame_error_last());
        if (!entered || st) {
            Flame__V1__UnbindExecutorCompletedRequest uc =
                FLAME__V1__UNBIND_EXECUTOR_COMPLETED_REQUEST__INIT;
            uc.executor_id = x->id;
            if (call(x, BE("UnbindExecutorCompleted"), &uc.base, NULL, NULL, CALL_TIMEOUT_MS))
                break;
        }
    }
    if (!em->stopping) {
        /* leaving for a reason of our own: tell the session manager, so that
         * it does not keep an executor nobody runs (best effort) */
        Flame__V1__UnregisterExecutorRequest ur = FLAME__V1__UNREGISTER_EXECUTOR_REQUEST__INIT;
        ur.executor_id = x->id;
        call(x, BE("UnregisterExecutor"), &ur.base, NULL, NULL, CALL_TIMEOUT_MS);
    }
    return NULL;
}

static void spawn_executor(flame_executor_manager *em, const Flame__V1__Executor *e)
{
    const char *id = e->metadata ? e->metadata->id : NULL;
    if (!id || !*id)
        return;
    em_exec *x = fl_calloc(1, sizeof *x);
    x->em = em;
    x->id = fl_strdup(id);
    rpc_cancel_init(&x->cancel);
    pthread_mutex_lock(&em->mu);
    x->next = em->execs;
    em->execs = x;
    pthread_mutex_unlock(&em->mu);
    pthread_create(&x->th, NULL, exec_main, x);
}

static void teardown_executors(flame_executor_manager *em)
{
    pthread_mutex_lock(&em->mu);
    em_exec *list = em->execs;
    em->execs = NULL;
    pthread_mutex_unlock(&em->mu);
    for (em_exec *x = list; x; x = x->next) {
        rpc_cancel_fire(&x->cancel);
        pthread_mutex_lock(&x->cancel.mu);
        if (x->stream)
            rpc_stream_cancel(x->stream);
        pthread_mutex_unlock(&x->cancel.mu);
    }
    for (em_exec *x = list, *next; x; x = next) {
        next = x->next;
        pthread_join(x->th, NULL);
        rpc_cancel_destroy(&x->cancel);
        free(x->id);
        free(x);
    }
}

/* ---- the node ----------------------------------------------------------- */

typedef struct hb_arg {
    flame_executor_manager *em;
    rpc_stream *st;
    atomic_bool done;
} hb_arg;

/* A node's status message with the storage it points into. */
typedef struct node_msg {
    struct utsname u;
    Flame__V1__NodeStatus status;
    Flame__V1__ResourceRequirement rr;
    Flame__V1__NodeInfo info;
} node_msg;

static void node_msg_fill(flame_executor_manager *em, node_msg *m)
{
    uname(&m->u);
    fill_status(em, &m->status, &m->rr, &m->info, &m->u);
}

static flame_status send_heartbeat(flame_executor_manager *em, rpc_stream *st)
{
    node_msg m;
    node_msg_fill(em, &m);
    Flame__V1__NodeHeartbeat hb = FLAME__V1__NODE_HEARTBEAT__INIT;
    hb.node_name = em->node;
    hb.status = &m.status;
    Flame__V1__WatchNodeRequest req = FLAME__V1__WATCH_NODE_REQUEST__INIT;
    req.heartbeat = &hb;
    return rpc_bidi_send(st, &req.base);
}

static void *heartbeat_main(void *arg)
{
    hb_arg *h = arg;
    while (!h->em->stopping && !h->done) {
        wait_ms(h->em, h->em->heartbeat_ms);
        if (h->em->stopping || h->done)
            break;
        if (send_heartbeat(h->em, h->st) != FLAME_OK)
            break;
    }
    return NULL;
}

static flame_status register_node(flame_executor_manager *em)
{
    node_msg m;
    node_msg_fill(em, &m);
    struct utsname *u = &m.u;
    Flame__V1__NodeStatus *status = &m.status;
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    md.id = em->node;
    md.name = em->node;
    Flame__V1__NodeSpec spec = FLAME__V1__NODE_SPEC__INIT;
    spec.hostname = u->nodename;
    Flame__V1__NodeAddress addr = FLAME__V1__NODE_ADDRESS__INIT;
    addr.type = "Hostname";
    addr.address = u->nodename;
    Flame__V1__NodeAddress *addrs[] = { &addr };
    status->n_addresses = 1;
    status->addresses = addrs;
    Flame__V1__Node node = FLAME__V1__NODE__INIT;
    node.metadata = &md;
    node.spec = &spec;
    node.status = status;
    Flame__V1__RegisterNodeRequest req = FLAME__V1__REGISTER_NODE_REQUEST__INIT;
    req.node = &node;
    ProtobufCMessage *resp;
    flame_status st = rpc_unary(em->ch, BE("RegisterNode"), &req.base,
                                &flame__v1__result__descriptor, &resp, CALL_TIMEOUT_MS);
    if (!st)
        protobuf_c_message_free_unpacked(resp, NULL);
    return st;
}

/* One connection: register, watch, run executors; returns when it breaks. */
static bool serve_connection(flame_executor_manager *em)
{
    if (register_node(em) != FLAME_OK)
        return false;
    rpc_stream *st;
    if (rpc_bidi_open(&st, em->ch, BE("WatchNode")) != FLAME_OK)
        return false;
    if (send_heartbeat(em, st) != FLAME_OK) {
        rpc_stream_free(st);
        return false;
    }
    pthread_mutex_lock(&em->mu);
    em->watch = st;
    pthread_mutex_unlock(&em->mu);
    fl_log(FL_LOG_INFO, "em", "node %s connected to %s", em->node, em->endpoint);
    hb_arg hb = { em, st, false };
    pthread_t hbt;
    pthread_create(&hbt, NULL, heartbeat_main, &hb);
    while (!em->stopping) {
        ProtobufCMessage *m;
        if (rpc_stream_next(st, &flame__v1__watch_node_response__descriptor, &m) != FLAME_OK || !m)
            break;
        Flame__V1__WatchNodeResponse *r = (Flame__V1__WatchNodeResponse *)m;
        if (r->response_case == FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_EXECUTOR && r->executor)
            spawn_executor(em, r->executor);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    hb.done = true;
    pthread_mutex_lock(&em->mu);
    em->watch = NULL;
    pthread_cond_broadcast(&em->cv);
    pthread_mutex_unlock(&em->mu);
    rpc_stream_cancel(st);
    pthread_join(hbt, NULL);
    rpc_stream_free(st);
    return true;
}

static void *em_main(void *arg)
{
    flame_executor_manager *em = arg;
    int backoff = 100;
    while (!em->stopping) {
        bool was_up = serve_connection(em);
        teardown_executors(em);
        if (em->stopping)
            break;
        if (was_up) {
            fl_log(FL_LOG_WARN, "em", "lost the session manager at %s; reconnecting", em->endpoint);
            backoff = 100;
        }
        wait_ms(em, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char *p = fl_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    }
    int rc = mkdir(p, 0755);
    free(p);
    return rc == 0 || errno == EEXIST ? 0 : -1;
}

static char *self_dir(void)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = 0;
    return fl_strdup(buf);
}

static void em_free(flame_executor_manager *em)
{
    rpc_channel_free(em->ch);
    free(em->endpoint);
    free(em->node);
    free(em->work_dir);
    free(em->log_dir);
    free(em->bin_dir);
    for (size_t i = 0; i < em->inproc_len; i++)
        free((char *)em->inproc[i].application);
    free(em->inproc);
    pthread_mutex_destroy(&em->mu);
    pthread_cond_destroy(&em->cv);
    free(em);
}

flame_status flame_executor_manager_start(flame_executor_manager **out,
                                          const flame_executor_options *opts)
{
    if (!out)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_executor_manager_start: out is NULL");
    flame_executor_options o = FLAME_EXECUTOR_OPTIONS_INIT;
    if (opts)
        o = *opts;
    flame_cluster_config *cfg = NULL;
    if (o.config_file) {
        flame_status st = flame_cluster_config_load(&cfg, o.config_file);
        if (st)
            return st;
    }
    fl_endpoint ep;
    flame_status st = fl_endpoint_resolve(&ep, o.endpoint ? o.endpoint
                                               : cfg ? cfg->endpoint : NULL);
    flame_cluster_config_free(cfg);
    if (st)
        return st;
    rpc_channel *ch;
    if ((st = rpc_channel_new(&ch, ep.target, NULL))) {
        fl_endpoint_clear(&ep);
        return st;
    }
    flame_executor_manager *em = fl_calloc(1, sizeof *em);
    pthread_mutex_init(&em->mu, NULL);
    pthread_cond_init(&em->cv, NULL);
    em->endpoint = ep.url;
    ep.url = NULL;
    em->ch = ch;
    fl_endpoint_clear(&ep);
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    em->node = fl_strdup(o.node_name ? o.node_name : host);
    if (o.work_dir) {
        em->work_dir = fl_strdup(o.work_dir);
    } else {
        const char *fh = getenv("FLAME_HOME");
        const char *home = getenv("HOME");
        em->work_dir = fh && *fh ? fl_sprintf("%s/work", fh)
                                 : fl_sprintf("%s/.flame/work", home ? home : "/tmp");
    }
    em->log_dir = fl_sprintf("%s/logs", em->work_dir);
    if (mkdir_p(em->work_dir) || mkdir_p(em->log_dir)) {
        st = fl_error(FLAME_ERR_IO, "cannot create the work directory %s: %s", em->work_dir,
                      strerror(errno));
        em_free(em);
        return st;
    }
    em->bin_dir = o.bin_dir ? fl_strdup(o.bin_dir) : self_dir();
    if (o.has_resources) {
        em->res = o.resources;
    } else {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        em->res = (flame_resreq){ cpus > 0 ? (uint64_t)cpus : 1,
                                  pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0, 0 };
    }
    em->heartbeat_ms = o.heartbeat_ms > 0 ? o.heartbeat_ms : 2000;
    em->task_timeout_ms = o.task_timeout_ms > 0 ? o.task_timeout_ms : 0;
    if (o.inproc_len) {
        em->inproc = fl_calloc(o.inproc_len, sizeof *em->inproc);
        for (size_t i = 0; i < o.inproc_len; i++) {
            em->inproc[i].application = fl_strdup(o.inproc[i].application);
            em->inproc[i].service = o.inproc[i].service;
        }
        em->inproc_len = o.inproc_len;
    }
    if (pthread_create(&em->thread, NULL, em_main, em) != 0) {
        em_free(em);
        return fl_error(FLAME_ERR_INTERNAL, "cannot start the executor manager thread");
    }
    *out = em;
    return FLAME_OK;
}

const char *flame_executor_manager_node(const flame_executor_manager *em)
{
    return em ? em->node : NULL;
}

void flame_executor_manager_stop(flame_executor_manager *em)
{
    if (!em)
        return;
    pthread_mutex_lock(&em->mu);
    em->stopping = true;
    pthread_cond_broadcast(&em->cv);
    if (em->watch)
        rpc_stream_cancel(em->watch);
    pthread_mutex_unlock(&em->mu);
    pthread_join(em->thread, NULL);
    em_free(em);
}
