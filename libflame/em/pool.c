/* The warm pool (issue 15, warm session starts): service processes started
 * ahead, so that a bind finds its service listening and only
 * OnSessionEnter is left of the start (a flamepy service spends about a
 * second importing before it listens).
 *
 * Each process is started for one idle executor: when an executor's
 * session of an application ends (em/exec.c), a process of that
 * application is started for it, and the executor's next bind, if to a
 * session of the same application spec, sandbox level and resreq, takes it.
 * The session manager binds an idle executor to a session of the
 * application it last ran first, and keeps idle executors as long as the
 * application's delay_release: so the processes waiting follow the recent
 * demand for each application, up to warm_pool of them per application and
 * warm_pool_total in all (configuration). A node's first session of an
 * application, and sessions beyond the idle executors, start cold.
 *
 * One session per process (Security II): a process taken never comes back
 * here; its executor stops it when the session ends, as any other (or keeps
 * it for the next session of the same owner where the application opts
 * into sandbox_reuse). It waits in the sandbox level its application asks
 * for, with the limits of the last session's resreq. At spawn the host shim
 * hands a service only node-, application- and executor-wide settings
 * (shim/env.c: FLAME_EXECUTOR_ID, FLAME_ENDPOINT, the CA, the cache, the
 * application's environments and installation); nothing of a session
 * reaches it before OnSessionEnter. Its directory (HOME) and socket are
 * named by a slot of its own (warm-N), so that it never meets a process
 * its executor starts meanwhile; it logs to its executor's log.
 *
 * A waiting process that exits is noticed (reaped) within WARM_CHECK_MS
 * and replaced; one whose executor went to another application or away is
 * stopped. Their memory (RSS of each process tree) is counted: the node's
 * allocatable memory is less by that much (node.c).
 *
 * Threads and locks: WARM_STARTERS pool threads start processes (one at a
 * time each), check the waiting ones every WARM_CHECK_MS and stop what is
 * no longer wanted; executor threads reserve, take and release (under
 * p->mu, never blocking on a process). Starting and stopping a process
 * happen outside p->mu; a slot being started for stays in the list until
 * its start is over. The processes are spawned by the pool threads, which
 * live until em_pool_stop: their parent-death signal follows them. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em.h"
#include "util/util.h"

#define WARM_CHECK_MS 200
#define WARM_BACKOFF_MAX_MS 60000
#define WARM_STARTERS 2 /* processes started at once, at most */

typedef struct warm_proc {
    fl_shim *shim;
    fl_installation inst;
    char *slot;
    int pid;
    uint64_t rss;
    struct warm_proc *next;
} warm_proc;

/* A process wanted for one idle executor: the kind of session it last ran
 * (application spec, sandbox level, resreq) and, once started, the process. */
typedef struct warm_slot {
    char *exec;
    char *app, *sandbox, *network;
    uint64_t cpus, memory;
    uint8_t *spec; /* the packed ApplicationSpec */
    size_t spec_len;
    warm_proc *proc;   /* started and waiting, or NULL */
    bool starting;     /* a pool thread is starting its process */
    bool dropped;      /* no longer wanted: goes once its start is over */
    bool unpoolable;   /* its shim cannot start a service ahead */
    unsigned failures; /* starts that failed in a row */
    int64_t retry_ns;  /* no start before this, after a failure */
    struct warm_slot *next;
} warm_slot;

struct em_pool {
    flame_executor_manager *em;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th[WARM_STARTERS];
    int nth;
    bool stop;
    warm_slot *slots;
    warm_proc *trash; /* taken off their slots, to stop */
    unsigned ready;   /* processes waiting */
    unsigned seq;
    _Atomic uint64_t memory;
};

static int64_t ms_ns(int64_t ms)
{
    return ms * 1000000;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool slot_matches(const warm_slot *w, const fl_shim_session *ctx, const uint8_t *spec,
                         size_t len)
{
    return strcmp(w->app, ctx->application) == 0 && same_str(w->sandbox, ctx->sandbox) &&
           same_str(w->network, ctx->network) && w->cpus == ctx->cpus &&
           w->memory == ctx->memory && w->spec_len == len && memcmp(w->spec, spec, len) == 0;
}

static uint8_t *pack_spec(const fl_shim_session *ctx, size_t *len)
{
    const ProtobufCMessage *spec = ctx->app_spec;
    *len = protobuf_c_message_get_packed_size(spec);
    uint8_t *buf = fl_malloc(*len ? *len : 1);
    protobuf_c_message_pack(spec, buf);
    return buf;
}

static void proc_free(warm_proc *w)
{
    if (!w)
        return;
    w->shim->ops->free(w->shim); /* stops the service, never entered */
    fl_installation_clear(&w->inst);
    free(w->slot);
    free(w);
}

static void slot_free(warm_slot *w)
{
    free(w->exec);
    free(w->app);
    free(w->sandbox);
    free(w->network);
    free(w->spec);
    free(w);
}

/* Takes the executor's slot out of the pool's hands (under p->mu): its
 * process, if any, goes to the caller (NULL: to the trash). */
static void slot_drop(em_pool *p, warm_slot **wp, warm_proc **proc)
{
    warm_slot *w = *wp;
    if (w->proc) {
        p->ready--;
        uint64_t mem = atomic_load(&p->memory);
        atomic_store(&p->memory, mem > w->proc->rss ? mem - w->proc->rss : 0);
        em_metrics_warm_gauges(p->ready, atomic_load(&p->memory));
        if (proc) {
            *proc = w->proc;
        } else {
            w->proc->next = p->trash;
            p->trash = w->proc;
        }
        w->proc = NULL;
    }
    if (w->starting) { /* the starting thread drops it when done */
        w->dropped = true;
        return;
    }
    *wp = w->next;
    slot_free(w);
}

static warm_slot **slot_of(em_pool *p, const char *exec)
{
    warm_slot **wp = &p->slots;
    while (*wp && ((*wp)->dropped || strcmp((*wp)->exec, exec) != 0))
        wp = &(*wp)->next;
    return wp;
}

/* ---- the executors' side -------------------------------------------------- */

void em_pool_reserve(flame_executor_manager *em, const fl_shim_session *ctx)
{
    em_pool *p = em->pool;
    if (!p || !ctx->app_spec || strcmp(ctx->sandbox, "microvm") == 0) /* microvm: its own pool */
        return;
    size_t len;
    uint8_t *spec = pack_spec(ctx, &len);
    pthread_mutex_lock(&p->mu);
    warm_slot **wp = slot_of(p, ctx->executor_id);
    if (*wp)
        slot_drop(p, wp, NULL);
    unsigned all = 0, of_app = 0;
    for (warm_slot *w = p->slots; w; w = w->next)
        if (!w->dropped) {
            all++;
            of_app += strcmp(w->app, ctx->application) == 0;
        }
    if (all < (unsigned)em->warm_pool_total && of_app < (unsigned)em->warm_pool) {
        warm_slot *w = fl_calloc(1, sizeof *w);
        w->exec = fl_strdup(ctx->executor_id);
        w->app = fl_strdup(ctx->application);
        w->sandbox = ctx->sandbox ? fl_strdup(ctx->sandbox) : NULL;
        w->network = ctx->network ? fl_strdup(ctx->network) : NULL;
        w->cpus = ctx->cpus;
        w->memory = ctx->memory;
        w->spec = spec;
        w->spec_len = len;
        spec = NULL;
        w->next = p->slots;
        p->slots = w;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    free(spec);
}

fl_shim *em_pool_take(flame_executor_manager *em, const fl_shim_session *ctx,
                      fl_installation *inst)
{
    em_pool *p = em->pool;
    if (!p || !ctx->app_spec)
        return NULL;
    size_t len;
    uint8_t *spec = pack_spec(ctx, &len);
    warm_proc *w = NULL;
    pthread_mutex_lock(&p->mu);
    warm_slot **wp = slot_of(p, ctx->executor_id);
    if (*wp) {
        bool match = slot_matches(*wp, ctx, spec, len);
        slot_drop(p, wp, match ? &w : NULL);
        pthread_cond_signal(&p->cv); /* the trash, if any */
    }
    pthread_mutex_unlock(&p->mu);
    free(spec);
    if (!w)
        return NULL;
    em_metrics_warm(EM_WARM_TAKEN);
    fl_log(FL_LOG_DEBUG, "em", "warm pool: %s (pid %d) serves a session of %s on %s", w->slot,
           w->pid, ctx->application, ctx->executor_id);
    fl_shim *sh = w->shim;
    *inst = w->inst;
    free(w->slot);
    free(w);
    return sh;
}

void em_pool_release(flame_executor_manager *em, const char *exec)
{
    em_pool *p = em->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    warm_slot **wp = slot_of(p, exec);
    if (*wp) {
        slot_drop(p, wp, NULL);
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

uint64_t em_pool_memory(const flame_executor_manager *em)
{
    return em->pool ? atomic_load(&em->pool->memory) : 0;
}

/* ---- memory ----------------------------------------------------------------- */

/* VmRSS of a process and its descendants (bytes; 0 where /proc says
 * nothing). depth bounds the walk. */
static uint64_t tree_rss(int pid, int depth)
{
    char path[64], line[256];
    uint64_t kb = 0;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
            break;
    fclose(f);
    uint64_t sum = kb * 1024;
    if (depth <= 0)
        return sum;
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[384];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", pid, e->d_name);
        FILE *c = fopen(cpath, "r");
        int child;
        while (c && fscanf(c, "%d", &child) == 1)
            sum += tree_rss(child, depth - 1);
        if (c)
            fclose(c);
    }
    if (d)
        closedir(d);
    return sum;
}

/* ---- the pool thread ---------------------------------------------------------- */

/* Checks the waiting processes (under p->mu): those that exited go to the
 * trash, the memory of the others is summed. */
static void check(em_pool *p)
{
    uint64_t mem = 0;
    for (warm_slot *w = p->slots; w; w = w->next) {
        warm_proc *x = w->proc;
        if (!x)
            continue;
        if (x->shim->ops->warm_pid(x->shim) == 0) {
            fl_log(FL_LOG_WARN, "em", "warm pool: the service %s of %s for executor %s exited "
                   "while waiting for a session (its log: %s/%s.log); replacing it", x->slot,
                   w->app, w->exec, p->em->log_dir, w->exec);
            em_metrics_warm(EM_WARM_EXITED);
            w->proc = NULL;
            p->ready--;
            x->next = p->trash;
            p->trash = x;
            continue;
        }
        x->rss = tree_rss(x->pid, 4);
        mem += x->rss;
    }
    atomic_store(&p->memory, mem);
    em_metrics_warm_gauges(p->ready, mem);
}

/* The slot to start a process for next (under p->mu; marked starting), or
 * NULL. */
static warm_slot *next_start(em_pool *p, int64_t now)
{
    for (warm_slot *w = p->slots; w; w = w->next)
        if (!w->proc && !w->starting && !w->dropped && !w->unpoolable && now >= w->retry_ns) {
            w->starting = true;
            return w;
        }
    return NULL;
}

/* Installs the application and starts its service for the slot's executor
 * without a session (outside p->mu). NULL with *why on failure;
 * *unpoolable when its shim cannot. */
static warm_proc *start_one(em_pool *p, const warm_slot *a, unsigned seq, bool *unpoolable,
                            char **why)
{
    flame_executor_manager *em = p->em;
    Flame__V1__ApplicationSpec *spec =
        flame__v1__application_spec__unpack(NULL, a->spec_len, a->spec);
    if (!spec) {
        *why = fl_strdup("its application spec does not unpack");
        return NULL;
    }
    fl_shim_choice choice = { spec->shim, spec->_command_case ? spec->command : NULL, NULL };
    fl_shim *sh = NULL;
    warm_proc *w = NULL;
    if (fl_shim_new(&sh, &choice, why))
        goto out;
    if (!sh->ops->prestart || !sh->ops->warm_pid) {
        *unpoolable = true;
        sh->ops->free(sh);
        goto out;
    }
    w = fl_calloc(1, sizeof *w);
    w->shim = sh;
    w->slot = fl_sprintf("warm-%u", seq);
    if (em_install(em, a->app, spec, &w->inst, why)) {
        proc_free(w);
        w = NULL;
        goto out;
    }
    fl_shim_session ctx;
    em_shim_ctx(em, &ctx, a->exec, a->app, spec);
    ctx.slot = w->slot;
    ctx.sandbox = a->sandbox;
    ctx.network = a->network;
    ctx.cpus = a->cpus;
    ctx.memory = a->memory;
    ctx.command = w->inst.command;
    ctx.working_directory = w->inst.working_directory;
    ctx.installation = &w->inst;
    if (sh->ops->prestart(sh, &ctx, why) || !(w->pid = sh->ops->warm_pid(sh))) {
        proc_free(w);
        w = NULL;
    }
out:
    flame__v1__application_spec__free_unpacked(spec, NULL);
    return w;
}

/* Its start is over (under p->mu): the process waits in its slot, or the
 * slot goes (dropped meanwhile), or backs off. */
static void started(em_pool *p, warm_slot *a, warm_proc *w, bool unpoolable, const char *why)
{
    a->starting = false;
    if (a->dropped) {
        if (w) {
            w->next = p->trash;
            p->trash = w;
        }
        for (warm_slot **wp = &p->slots; *wp; wp = &(*wp)->next)
            if (*wp == a) {
                *wp = a->next;
                slot_free(a);
                break;
            }
    } else if (w) {
        a->proc = w;
        a->failures = 0;
        p->ready++;
        em_metrics_warm(EM_WARM_STARTED);
        fl_log(FL_LOG_INFO, "em", "warm pool: %s ready for application %s on executor %s "
               "(pid %d, sandbox %s)", w->slot, a->app, a->exec, w->pid,
               a->sandbox ? a->sandbox : "none");
    } else if (unpoolable) {
        a->unpoolable = true;
    } else {
        unsigned f = a->failures < 16 ? a->failures : 16;
        int64_t back = (int64_t)1000 << f;
        a->failures++;
        a->retry_ns = fl_mono_ns() + ms_ns(back < WARM_BACKOFF_MAX_MS ? back : WARM_BACKOFF_MAX_MS);
        em_metrics_warm(EM_WARM_FAILED);
        fl_log(FL_LOG_WARN, "em", "warm pool: cannot start a service of %s ahead: %s", a->app,
               why ? why : "(no reason)");
    }
}

static void *pool_main(void *arg)
{
    em_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        check(p);
        warm_slot *a = next_start(p, fl_mono_ns());
        unsigned seq = a ? ++p->seq : 0;
        warm_proc *trash = p->trash;
        p->trash = NULL;
        pthread_mutex_unlock(&p->mu);
        for (warm_proc *w = trash, *next; w; w = next) {
            next = w->next;
            proc_free(w);
        }
        warm_proc *w = NULL;
        char *why = NULL;
        bool unpoolable = false;
        if (a) /* its strings stay: a slot being started is not freed */
            w = start_one(p, a, seq, &unpoolable, &why);
        pthread_mutex_lock(&p->mu);
        if (a)
            started(p, a, w, unpoolable, why);
        free(why);
        if (a || p->trash)
            continue; /* the next start, at once */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)WARM_CHECK_MS * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!p->stop)
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void em_pool_start(flame_executor_manager *em)
{
    if (em->warm_pool <= 0 || em->warm_pool_total <= 0)
        return;
    em_pool *p = fl_calloc(1, sizeof *p);
    p->em = em;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int want = em->warm_pool_total < WARM_STARTERS ? em->warm_pool_total : WARM_STARTERS;
    while (p->nth < want && pthread_create(&p->th[p->nth], NULL, pool_main, p) == 0)
        p->nth++;
    if (!p->nth) {
        fl_log(FL_LOG_WARN, "em", "warm pool: cannot start its thread; sessions start cold");
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return;
    }
    em->pool = p;
    fl_log(FL_LOG_INFO, "em", "warm pool: up to %d service process(es) started ahead per "
           "application, %d in all", em->warm_pool, em->warm_pool_total);
}

void em_pool_stop(flame_executor_manager *em)
{
    em_pool *p = em->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    for (warm_slot *w = p->slots, *next; w; w = next) {
        next = w->next;
        proc_free(w->proc);
        slot_free(w);
    }
    for (warm_proc *w = p->trash, *next; w; w = next) {
        next = w->next;
        proc_free(w);
    }
    em_metrics_warm_gauges(0, 0);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    em->pool = NULL;
}
