/* The node: registers it with the session manager, keeps the WatchNode
 * stream (heartbeats out, executors to run in) and reconnects with bounded
 * backoff when the connection breaks. The connection is a small state
 * machine run by the node thread:
 *
 *   CONNECT -> WATCH     (BACKOFF if the session manager cannot be reached)
 *   WATCH   -> LOST      when the stream breaks or the manager stops
 *   LOST    -> BACKOFF   after tearing down every executor (STOP if stopping)
 *   BACKOFF -> CONNECT   after a wait that doubles up to BACKOFF_MAX_MS
 *
 * Threads and locks: the node thread runs em_node_main; while it watches, a
 * heartbeat thread sends on the same stream (gRPC allows one sender beside
 * the reader) and cancels it when the session manager has not answered for
 * cluster.node_timeout (a cut link or a dead peer whose connection looks
 * open); the reader stamps hb_arg.heard_ms on every message. em->mu guards
 * em->watch, which flame_executor_manager_stop cancels to wake the node
 * thread. */
#include <stdlib.h>
#include <sys/utsname.h>
#include <time.h>

#include "em.h"
#include "util/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000

void em_wait_ms(flame_executor_manager *em, int ms)
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

/* ---- messages ----------------------------------------------------------- */

/* A node's status message with the storage it points into. */
typedef struct node_msg {
    struct utsname u;
    Flame__V1__NodeStatus status;
    Flame__V1__ResourceRequirement rr, alloc;
    Flame__V1__NodeInfo info;
} node_msg;

static void node_msg_fill(flame_executor_manager *em, node_msg *m)
{
    uname(&m->u);
    flame__v1__node_status__init(&m->status);
    flame__v1__resource_requirement__init(&m->rr);
    flame__v1__node_info__init(&m->info);
    m->rr.cpu = em->res.cpu;
    m->rr.memory = em->res.memory;
    m->rr.gpu = em->res.gpu;
    /* what the warm pool's processes hold is not free for sessions */
    m->alloc = m->rr;
    uint64_t warm = em_pool_memory(em);
    m->alloc.memory = m->rr.memory > warm ? m->rr.memory - warm : 0;
    m->info.arch = m->u.machine;
    m->info.os = m->u.sysname;
    m->status.state = FLAME__V1__NODE_STATE__Ready;
    m->status.capacity = &m->rr;
    m->status.allocatable = &m->alloc;
    m->status.info = &m->info;
    m->status.last_heartbeat_time = fl_now_ms() / 1000;
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

static flame_status register_node(flame_executor_manager *em)
{
    node_msg m;
    node_msg_fill(em, &m);
    Flame__V1__Metadata md = FLAME__V1__METADATA__INIT;
    md.id = em->node;
    md.name = em->node;
    Flame__V1__NodeSpec spec = FLAME__V1__NODE_SPEC__INIT;
    spec.hostname = m.u.nodename;
    Flame__V1__NodeAddress addr = FLAME__V1__NODE_ADDRESS__INIT;
    addr.type = "Hostname";
    addr.address = m.u.nodename;
    Flame__V1__NodeAddress *addrs[] = { &addr };
    m.status.n_addresses = 1;
    m.status.addresses = addrs;
    Flame__V1__Node node = FLAME__V1__NODE__INIT;
    node.metadata = &md;
    node.spec = &spec;
    node.status = &m.status;
    Flame__V1__RegisterNodeRequest req = FLAME__V1__REGISTER_NODE_REQUEST__INIT;
    req.node = &node;
    ProtobufCMessage *resp;
    flame_status st = rpc_unary(em->ch, EM_BE("RegisterNode"), &req.base,
                                &flame__v1__result__descriptor, &resp, EM_CALL_TIMEOUT_MS);
    if (!st)
        protobuf_c_message_free_unpacked(resp, NULL);
    return st;
}

/* ---- heartbeats --------------------------------------------------------- */

typedef struct hb_arg {
    flame_executor_manager *em;
    rpc_stream *st;
    atomic_bool done;
    _Atomic int64_t heard_ms; /* monotonic: the last message from the session manager */
} hb_arg;

static int64_t mono_ms(void)
{
    return fl_mono_ns() / 1000000;
}

static void *heartbeat_main(void *arg)
{
    hb_arg *h = arg;
    flame_executor_manager *em = h->em;
    while (!em->stopping && !h->done) {
        em_wait_ms(em, em->heartbeat_ms);
        if (em->stopping || h->done)
            break;
        int64_t silent = mono_ms() - h->heard_ms;
        if (silent > em->node_timeout_ms) {
            fl_log(FL_LOG_WARN, "em", "no answer from the session manager for %lld ms "
                   "(cluster.node_timeout %d ms); dropping the connection",
                   (long long)silent, em->node_timeout_ms);
            rpc_stream_cancel(h->st); /* wakes the reader: the node goes LOST */
            break;
        }
        if (send_heartbeat(em, h->st) != FLAME_OK)
            break;
        atomic_store(&h->em->alive_ns, fl_mono_ns()); /* the health probe */
    }
    return NULL;
}

/* ---- the connection ----------------------------------------------------- */

typedef enum node_state { NODE_CONNECT, NODE_WATCH, NODE_LOST, NODE_BACKOFF, NODE_STOP } node_state;

typedef struct node_conn {
    flame_executor_manager *em;
    rpc_stream *watch; /* from CONNECT to WATCH's end */
    int backoff_ms;
} node_conn;

static node_state on_connect(node_conn *c)
{
    flame_executor_manager *em = c->em;
    if (em->stopping)
        return NODE_STOP;
    if (register_node(em) != FLAME_OK)
        return NODE_BACKOFF;
    rpc_stream *st;
    /* the watch is quiet: its rare messages are read by whichever thread
     * polls, and the executors' threads are not woken for each other's */
    bool was = rpc_quiet(true);
    flame_status rc = rpc_bidi_open(&st, em->ch, EM_BE("WatchNode"));
    rpc_quiet(was);
    if (rc != FLAME_OK)
        return NODE_BACKOFF;
    if (send_heartbeat(em, st) != FLAME_OK) {
        rpc_stream_free(st);
        return NODE_BACKOFF;
    }
    c->watch = st;
    return NODE_WATCH;
}

/* Runs the executors the session manager creates on this node until the
 * stream breaks; heartbeats go out beside it. */
static node_state on_watch(node_conn *c)
{
    flame_executor_manager *em = c->em;
    rpc_stream *st = c->watch;
    pthread_mutex_lock(&em->mu);
    em->watch = st;
    pthread_mutex_unlock(&em->mu);
    fl_log(FL_LOG_INFO, "em", "node %s connected to %s", em->node, em->endpoint);
    hb_arg hb = { em, st, false, mono_ms() };
    pthread_t hbt;
    pthread_create(&hbt, NULL, heartbeat_main, &hb);
    while (!em->stopping) {
        ProtobufCMessage *m;
        if (rpc_stream_next(st, &flame__v1__watch_node_response__descriptor, &m) != FLAME_OK || !m)
            break;
        hb.heard_ms = mono_ms();
        Flame__V1__WatchNodeResponse *r = (Flame__V1__WatchNodeResponse *)m;
        if (r->response_case == FLAME__V1__WATCH_NODE_RESPONSE__RESPONSE_EXECUTOR && r->executor &&
            r->executor->metadata && r->executor->metadata->id && r->executor->metadata->id[0])
            em_exec_start(em, r->executor->metadata->id);
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
    c->watch = NULL;
    return NODE_LOST;
}

static node_state on_lost(node_conn *c)
{
    flame_executor_manager *em = c->em;
    em_exec_teardown_all(em);
    if (em->stopping)
        return NODE_STOP;
    fl_log(FL_LOG_WARN, "em", "lost the session manager at %s; reconnecting", em->endpoint);
    c->backoff_ms = BACKOFF_MIN_MS;
    return NODE_BACKOFF;
}

static node_state on_backoff(node_conn *c)
{
    em_wait_ms(c->em, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    return NODE_CONNECT;
}

static node_state (*const node_steps[NODE_STOP])(node_conn *c) = {
    [NODE_CONNECT] = on_connect,
    [NODE_WATCH] = on_watch,
    [NODE_LOST] = on_lost,
    [NODE_BACKOFF] = on_backoff,
};

void *em_node_main(void *arg)
{
    node_conn c = { arg, NULL, BACKOFF_MIN_MS };
    for (node_state s = NODE_CONNECT; s != NODE_STOP;) {
        atomic_store(&c.em->alive_ns, fl_mono_ns()); /* the health probe */
        s = node_steps[s](&c);
    }
    atomic_store(&c.em->node_done, true);
    return NULL;
}
