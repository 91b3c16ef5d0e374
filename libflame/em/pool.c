/* The warm pool (issue 15, warm session starts): per application this node
 * served lately, service processes started ahead of any session, so that a
 * bind finds its service listening and only OnSessionEnter is left of the
 * start (a flamepy service spends ~1 s importing before it listens).
 *
 * One session per process (Security II): a process taken never comes back
 * here; its executor stops it when the session ends, as any other (or keeps
 * it for the next session of the same owner where the application opts
 * into sandbox_reuse, em/exec.c). A process waits in the sandbox level its
 * application asks for, with the limits of the session resreq it was made
 * for: it serves only a session of exactly that application spec, level
 * and resreq. At spawn the host shim hands a service node- and
 * application-wide settings only (shim/env.c: FLAME_ENDPOINT, the CA,
 * the cache, the application's environments and installation); nothing of
 * a session reaches it before OnSessionEnter. FLAME_EXECUTOR_ID (and its
 * socket, directory and log) name the pool's slot (warm-N), not the
 * executor that takes it.
 *
 * Sizing: an application enters the pool with its first bind here. Its
 * share is the number of its binds in the last minute, at least 1 and at
 * most em->warm_pool; the pool holds em->warm_pool_total processes in all.
 * An application without a bind for WARM_IDLE_MS leaves the pool. The
 * processes' memory (RSS of each process tree) is counted: the node's
 * allocatable memory is less by that much (node.c).
 *
 * Threads and locks: the pool thread starts processes (one at a time),
 * checks the waiting ones every WARM_CHECK_MS (a crashed one is reaped and
 * replaced) and stops what is no longer wanted; executor threads take from
 * it (em_pool_take). p->mu guards the lists; starting and stopping a
 * process happen outside it. Only the pool thread removes an application,
 * so the one it is starting for stays. The processes are spawned by the
 * pool thread, which lives until em_pool_stop: their parent-death signal
 * follows it. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "em.h"
#include "util/util.h"

#define WARM_CHECK_MS 200
#define WARM_DEMAND_MS 60000    /* binds counted over this window */
#define WARM_IDLE_MS 600000     /* an application idle this long leaves the pool */
#define WARM_BINDS 64           /* bind times kept per application */
#define WARM_APPS_MAX 64        /* applications followed at most */
#define WARM_BACKOFF_MAX_MS 60000

typedef struct warm_proc {
    fl_shim *shim;
    fl_installation inst;
    char *id;
    int pid;
    uint64_t rss;
    struct warm_proc *next;
} warm_proc;

/* One kind of session served here: an application spec, at a sandbox
 * level, with a resreq. */
typedef struct warm_app {
    char *app, *sandbox, *network;
    uint64_t cpus, memory;
    uint8_t *spec; /* the packed ApplicationSpec */
    size_t spec_len;
    int64_t binds[WARM_BINDS]; /* mono ns of the last binds (a ring) */
    unsigned nbinds;
    warm_proc *ready;
    unsigned nready;
    bool unpoolable;   /* its shim cannot start a service ahead */
    unsigned failures; /* starts that failed in a row */
    int64_t retry_ns;  /* no start before this, after a failure */
    struct warm_app *next;
} warm_app;

struct em_pool {
    flame_executor_manager *em;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    bool stop;
    warm_app *apps;
    unsigned napps, total; /* total: processes waiting, in all */
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

static bool app_matches(const warm_app *a, const fl_shim_session *ctx, const uint8_t *spec,
                        size_t len)
{
    return strcmp(a->app, ctx->application) == 0 && same_str(a->sandbox, ctx->sandbox) &&
           same_str(a->network, ctx->network) && a->cpus == ctx->cpus &&
           a->memory == ctx->memory && a->spec_len == len && memcmp(a->spec, spec, len) == 0;
}

/* No bind for WARM_IDLE_MS. */
static bool app_idle(const warm_app *a, int64_t now)
{
    int64_t last = 0;
    for (unsigned i = 0; i < a->nbinds && i < WARM_BINDS; i++)
        last = a->binds[i] > last ? a->binds[i] : last;
    return !a->nbinds || now - last >= ms_ns(WARM_IDLE_MS);
}

/* How many processes the application should have waiting (under p->mu). */
static unsigned app_target(const em_pool *p, const warm_app *a, int64_t now)
{
    if (a->unpoolable || app_idle(a, now))
        return 0;
    unsigned recent = 0;
    for (unsigned i = 0; i < a->nbinds && i < WARM_BINDS; i++)
        recent += now - a->binds[i] < ms_ns(WARM_DEMAND_MS);
    unsigned max = (unsigned)p->em->warm_pool;
    return recent < 1 ? 1 : recent > max ? max : recent;
}

static void proc_free(warm_proc *w)
{
    if (!w)
        return;
    w->shim->ops->free(w->shim); /* stops the service, never entered */
    fl_installation_clear(&w->inst);
    free(w->id);
    free(w);
}

static void app_free(warm_app *a)
{
    free(a->app);
    free(a->sandbox);
    free(a->network);
    free(a->spec);
    free(a);
}

/* ---- taking ----------------------------------------------------------------- */

fl_shim *em_pool_take(flame_executor_manager *em, const fl_shim_session *ctx,
                      fl_installation *inst)
{
    em_pool *p = em->pool;
    const ProtobufCMessage *spec = ctx->app_spec;
    if (!p || !spec || strcmp(ctx->sandbox, "microvm") == 0) /* microvm: its own pool */
        return NULL;
    size_t len = protobuf_c_message_get_packed_size(spec);
    uint8_t *buf = fl_malloc(len ? len : 1);
    protobuf_c_message_pack(spec, buf);
    int64_t now = fl_mono_ns();
    warm_proc *w = NULL;
    pthread_mutex_lock(&p->mu);
    warm_app *a = p->apps;
    while (a && !app_matches(a, ctx, buf, len))
        a = a->next;
    if (!a && p->napps < WARM_APPS_MAX) {
        a = fl_calloc(1, sizeof *a);
        a->app = fl_strdup(ctx->application);
        a->sandbox = ctx->sandbox ? fl_strdup(ctx->sandbox) : NULL;
        a->network = ctx->network ? fl_strdup(ctx->network) : NULL;
        a->cpus = ctx->cpus;
        a->memory = ctx->memory;
        a->spec = buf;
        a->spec_len = len;
        buf = NULL;
        a->next = p->apps;
        p->apps = a;
        p->napps++;
    }
    if (a) {
        a->binds[a->nbinds++ % WARM_BINDS] = now;
        if ((w = a->ready)) {
            a->ready = w->next;
            a->nready--;
            p->total--;
            uint64_t mem = atomic_load(&p->memory);
            atomic_store(&p->memory, mem > w->rss ? mem - w->rss : 0);
            em_metrics_warm_gauges(p->total, atomic_load(&p->memory));
        }
        pthread_cond_signal(&p->cv); /* refill */
    }
    pthread_mutex_unlock(&p->mu);
    free(buf);
    if (!w)
        return NULL;
    em_metrics_warm(EM_WARM_TAKEN);
    fl_log(FL_LOG_DEBUG, "em", "warm pool: %s (pid %d) serves a session of %s", w->id, w->pid,
           ctx->application);
    fl_shim *sh = w->shim;
    *inst = w->inst;
    free(w->id);
    free(w);
    return sh;
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

/* Checks the waiting processes (under p->mu): the ones that exited go to
 * *dead; the memory of the others is summed. Applications no longer wanted
 * give their processes (and, idle, themselves) to *drop. */
static void check(em_pool *p, int64_t now, warm_proc **dead, warm_proc **drop)
{
    uint64_t mem = 0;
    for (warm_app **ap = &p->apps; *ap;) {
        warm_app *a = *ap;
        for (warm_proc **wp = &a->ready; *wp;) {
            warm_proc *w = *wp;
            if (w->shim->ops->warm_pid(w->shim) == 0) {
                *wp = w->next;
                a->nready--;
                p->total--;
                w->next = *dead;
                *dead = w;
                fl_log(FL_LOG_WARN, "em", "warm pool: the service %s of %s exited while "
                       "waiting for a session (its log: %s/%s.log); replacing it", w->id, a->app,
                       p->em->log_dir, w->id);
                em_metrics_warm(EM_WARM_EXITED);
                continue;
            }
            w->rss = tree_rss(w->pid, 4);
            mem += w->rss;
            wp = &w->next;
        }
        unsigned want = app_target(p, a, now);
        while (a->nready > want) { /* demand fell: the newest go first */
            warm_proc *w = a->ready;
            a->ready = w->next;
            a->nready--;
            p->total--;
            mem -= w->rss;
            w->next = *drop;
            *drop = w;
        }
        if (!a->nready && app_idle(a, now)) {
            *ap = a->next;
            p->napps--;
            app_free(a);
            continue;
        }
        ap = &a->next;
    }
    atomic_store(&p->memory, mem);
    em_metrics_warm_gauges(p->total, mem);
}

/* The application to start a process for next (under p->mu), or NULL:
 * the one furthest below its share, while the pool has room. */
static warm_app *next_start(em_pool *p, int64_t now)
{
    if (p->total >= (unsigned)p->em->warm_pool_total)
        return NULL;
    warm_app *best = NULL;
    unsigned best_gap = 0;
    for (warm_app *a = p->apps; a; a = a->next) {
        unsigned want = app_target(p, a, now);
        if (a->nready < want && now >= a->retry_ns && want - a->nready > best_gap) {
            best = a;
            best_gap = want - a->nready;
        }
    }
    return best;
}

/* Installs the application and starts its service without a session
 * (outside p->mu). NULL with *why on failure; *unpoolable when its shim
 * cannot. */
static warm_proc *start_one(em_pool *p, const warm_app *a, unsigned seq, bool *unpoolable,
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
    w->id = fl_sprintf("warm-%u", seq);
    if (em_install(em, a->app, spec, &w->inst, why)) {
        proc_free(w);
        w = NULL;
        goto out;
    }
    fl_shim_session ctx;
    em_shim_ctx(em, &ctx, w->id, a->app, spec);
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

static void *pool_main(void *arg)
{
    em_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        int64_t now = fl_mono_ns();
        warm_proc *dead = NULL, *drop = NULL;
        check(p, now, &dead, &drop);
        warm_app *a = next_start(p, now);
        unsigned seq = a ? ++p->seq : 0;
        pthread_mutex_unlock(&p->mu);
        for (warm_proc *w = dead, *next; w; w = next) {
            next = w->next;
            proc_free(w);
        }
        for (warm_proc *w = drop, *next; w; w = next) {
            next = w->next;
            proc_free(w);
        }
        warm_proc *w = NULL;
        char *why = NULL;
        bool unpoolable = false;
        if (a)
            w = start_one(p, a, seq, &unpoolable, &why);
        pthread_mutex_lock(&p->mu);
        if (a && w) {
            w->next = a->ready;
            a->ready = w;
            a->nready++;
            p->total++;
            a->failures = 0;
            em_metrics_warm(EM_WARM_STARTED);
            fl_log(FL_LOG_INFO, "em", "warm pool: %s ready for application %s (pid %d, "
                   "sandbox %s)", w->id, a->app, w->pid, a->sandbox ? a->sandbox : "none");
        } else if (a && unpoolable) {
            a->unpoolable = true;
        } else if (a) {
            unsigned f = a->failures < 16 ? a->failures : 16;
            int64_t back = (int64_t)1000 << f;
            a->failures++;
            a->retry_ns = fl_mono_ns() + ms_ns(back < WARM_BACKOFF_MAX_MS ? back
                                                                         : WARM_BACKOFF_MAX_MS);
            em_metrics_warm(EM_WARM_FAILED);
            fl_log(FL_LOG_WARN, "em", "warm pool: cannot start a service of %s ahead: %s",
                   a->app, why ? why : "(no reason)");
        }
        free(why);
        if (a && !p->stop)
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
    if (pthread_create(&p->th, NULL, pool_main, p) != 0) {
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
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    for (warm_app *a = p->apps, *an; a; a = an) {
        an = a->next;
        for (warm_proc *w = a->ready, *wn; w; w = wn) {
            wn = w->next;
            proc_free(w);
        }
        app_free(a);
    }
    em_metrics_warm_gauges(0, 0);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    em->pool = NULL;
}
