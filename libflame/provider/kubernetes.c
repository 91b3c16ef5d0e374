/* The `kubernetes` provider: one executor-manager pod per executor a
 * session can use, created in the configured namespace and labelled with
 * the cluster, the session and the application; deleted when the session
 * no longer wants it (at once when the session is closed or gone, after
 * scale_down_delay while it is open).
 *
 * It knows the pods from a list and then a watch (resourceVersion,
 * bookmarks; a broken watch resumes from the last version seen, and 410
 * Gone means a new list), never by polling. What it created or deleted is
 * in its books from the answer on, so a slow watch never makes it ask
 * twice. A restarted session manager lists the pods of its cluster label,
 * adopts those its sessions still want and deletes the rest once it has
 * its first demand. With a CA (podcert.c) each pod gets its own node
 * certificate in a Secret made after it and deleted with it; what a pod
 * and its Secret look like is podspec.c's.
 *
 * Threads: the watcher (list + watch) and the reconciler (creates and
 * deletes) run on their own; fl_provider_demand_set is called from the
 * engine thread. mu guards the books (demand, pods, listed); no request is
 * made while holding it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>


#include "provider/kubeapi.h"
#include "provider/podcert.h"
#include "provider/podspec.h"
#include "provider/provider.h"
#include "util/util.h"

#define CALL_TIMEOUT_MS 10000      /* one create, delete or list */
#define WATCH_SECONDS 240          /* the server ends a watch after this */
#define WATCH_TIMEOUT_MS ((WATCH_SECONDS + 30) * 1000L)
#define RECONCILE_MS 5000          /* a round at least this often */
#define CREATES_PER_ROUND 20
#define BACKOFF_MAX_MS 30000
#define REPORT_EVERY_MS 60000      /* the same error is logged once a minute */
#define REPORT_GAP_MS 10000        /* another error at most every 10 s */


typedef struct kpod {
    char *name;
    char *session;      /* the session it was made for */
    bool pending;       /* phase Pending: not running an executor manager yet */
    bool dead;          /* phase Failed or Succeeded: its manager exited */
    bool terminating;   /* deletionTimestamp set, or we asked for its deletion */
    int64_t cert_end;   /* its node certificate's end, Unix seconds (0: none of ours) */
} kpod;

typedef struct kdemand {
    char *session, *app;
    flame_resreq resreq;
    uint32_t want;
    bool open;
    int64_t over_since_ms; /* it has had more pods than it wants since (0: not) */
} kdemand;

enum { SLOT_WATCH, SLOT_RECONCILE, SLOTS };

struct fl_provider {
    kube_api api;
    char *ns, *image, *endpoint, *service_account, *cluster, *tls_secret;
    kpodca *ca;             /* issues each pod its node certificate; NULL: tls_secret or none */
    char *ca_pem;           /* the pods' ca.crt (verifies the session manager) */
    int64_t cert_ttl_s;
    bool host_users;        /* kubernetes.host_users: no user namespace of the pod's own */
    char *selector;         /* URL-encoded label selector of our pods */
    cJSON *extra_labels;    /* object */
    flame_resreq dflt;
    uint32_t max_pods;
    int64_t scale_down_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, wake;
    fl_map demand;          /* session id -> kdemand */
    bool have_demand;
    fl_map pods;            /* name -> kpod */
    char **gone;            /* with a CA: pods deleted (by anyone) whose Secret may remain */
    size_t ngone;
    bool listed;
    char *rv;               /* resourceVersion the watch resumes from */
    pthread_t watcher, reconciler;
    bool threads;

    char *last_error[SLOTS];
    int64_t last_error_ms[SLOTS];
};

/* ---- small helpers ------------------------------------------------------ */

static void pod_free(kpod *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->session);
    free(p);
}

static void demand_free(kdemand *d)
{
    free(d->session);
    free(d->app);
    free(d);
}

static void pods_clear(fl_map *m)
{
    size_t it = 0;
    void *v;
    while (fl_map_next(m, &it, NULL, &v))
        pod_free(v);
    fl_map_free(m);
}

/* Logs an error once, then another one after 10 s, the same one after a
 * minute; msg NULL: the slot works again (said once). */
static void report(fl_provider *p, int slot, const char *msg)
{
    int64_t now = fl_now_ms();
    pthread_mutex_lock(&p->mu);
    bool same = msg && p->last_error[slot] && strcmp(p->last_error[slot], msg) == 0;
    /* an outage fails every request of a round: one line per few seconds */
    bool log_it = msg ? !p->last_error[slot] ||
                        now - p->last_error_ms[slot] >= (same ? REPORT_EVERY_MS : REPORT_GAP_MS)
                      : p->last_error[slot] != NULL;
    if (log_it || !msg) {
        free(p->last_error[slot]);
        p->last_error[slot] = fl_strdup(msg);
        p->last_error_ms[slot] = now;
    }
    pthread_mutex_unlock(&p->mu);
    if (log_it && msg)
        fl_log(FL_LOG_WARN, "kubernetes", "%s", msg);
    else if (log_it)
        fl_log(FL_LOG_INFO, "kubernetes", "the API server answers again (%s)",
               slot == SLOT_WATCH ? "watch" : "pods");
}

/* Waits ms, or less when stopping or (wake given) woken; true when
 * stopping. */
static bool nap(fl_provider *p, int64_t ms, bool *wake)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stop && !(wake && *wake)) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) != 0)
            break;
    }
    if (wake)
        *wake = false;
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static bool stopping(void *arg)
{
    fl_provider *p = arg;
    pthread_mutex_lock(&p->mu);
    bool s = p->stop;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Wakes the reconciler (mu held). */
static void kick(fl_provider *p)
{
    p->wake = true;
    pthread_cond_broadcast(&p->cv);
}

static void url_escape(fl_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            fl_buf_add(b, s, 1);
        else
            fl_buf_printf(b, "%%%02X", c);
    }
}

/* ---- pods as the API server shows them ---------------------------------- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static kpod *pod_parse(const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const char *name = jstr(md, "name");
    if (!name)
        return NULL;
    kpod *p = fl_calloc(1, sizeof *p);
    p->name = fl_strdup(name);
    const char *sid = jstr(cJSON_GetObjectItemCaseSensitive(md, "annotations"), ANNOT_SESSION);
    if (!sid)
        sid = jstr(cJSON_GetObjectItemCaseSensitive(md, "labels"), LABEL_SESSION);
    p->session = fl_strdup(sid);
    p->terminating = jstr(md, "deletionTimestamp") != NULL;
    const char *end = jstr(cJSON_GetObjectItemCaseSensitive(md, "annotations"), ANNOT_CERT_END);
    p->cert_end = end ? strtoll(end, NULL, 10) : 0;
    const char *phase = jstr(cJSON_GetObjectItemCaseSensitive(obj, "status"), "phase");
    p->pending = !phase || strcmp(phase, "Pending") == 0;
    p->dead = phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Succeeded") == 0);
    return p;
}

/* A pod that is gone: its Secret is deleted in the next round (mu held). */
static void gone_add(fl_provider *p, const char *name)
{
    p->gone = fl_realloc(p->gone, (p->ngone + 1) * sizeof *p->gone);
    p->gone[p->ngone++] = fl_strdup(name);
}

static void pod_put(fl_provider *p, kpod *k) /* mu held */
{
    kpod *old = fl_map_get(&p->pods, k->name);
    if (old && old->terminating)
        k->terminating = true; /* we asked for its deletion: it is going */
    fl_map_put(&p->pods, k->name, k);
    pod_free(old);
}

static void set_rv(fl_provider *p, const cJSON *obj) /* mu held */
{
    const char *rv = jstr(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion");
    if (rv) {
        free(p->rv);
        p->rv = fl_strdup(rv);
    }
}

/* ---- the watcher ---------------------------------------------------------- */

static char *pods_path(fl_provider *p, const char *extra)
{
    return fl_sprintf("/api/v1/namespaces/%s/pods?labelSelector=%s%s", p->ns, p->selector,
                      extra ? extra : "");
}

/* Lists our pods: the books become what the server has. */
static bool list_pods(fl_provider *p)
{
    /* the pods known before the list: one of them not in it is gone (one
     * created meanwhile may be missing from it and is not) */
    fl_map before = { 0 };
    pthread_mutex_lock(&p->mu);
    size_t bi = 0;
    const char *bname;
    while (p->ca && fl_map_next(&p->pods, &bi, &bname, NULL))
        fl_map_put(&before, bname, (void *)1);
    pthread_mutex_unlock(&p->mu);
    char *path = pods_path(p, NULL);
    long status;
    char *body = NULL;
    flame_status st = kube_call(&p->api, "GET", path, NULL, CALL_TIMEOUT_MS, &status, &body);
    bool ok = false;
    if (st) {
        report(p, SLOT_WATCH, flame_error_last());
    } else if (status != 200) {
        char *e = kube_error_text(status, body);
        char *msg = fl_sprintf("listing pods in namespace %s: %s", p->ns, e);
        report(p, SLOT_WATCH, msg);
        free(msg);
        free(e);
    } else {
        cJSON *j = cJSON_Parse(body);
        const cJSON *items = j ? cJSON_GetObjectItemCaseSensitive(j, "items") : NULL;
        if (!cJSON_IsArray(items)) {
            report(p, SLOT_WATCH, "listing pods: the answer is not a PodList");
        } else {
            fl_map fresh = { 0 };
            const cJSON *it;
            cJSON_ArrayForEach(it, items) {
                kpod *k = pod_parse(it);
                if (k)
                    fl_map_put(&fresh, k->name, k);
            }
            pthread_mutex_lock(&p->mu);
            /* deletions we asked for still stand */
            size_t i = 0;
            void *v;
            while (fl_map_next(&fresh, &i, NULL, &v)) {
                kpod *old = fl_map_get(&p->pods, ((kpod *)v)->name);
                if (old && old->terminating)
                    ((kpod *)v)->terminating = true;
            }
            bool first = !p->listed;
            /* pods gone while no watch ran (e.g. before a 410): their
             * Secrets go too */
            i = 0;
            while (fl_map_next(&p->pods, &i, NULL, &v))
                if (fl_map_get(&before, ((kpod *)v)->name) && !fl_map_get(&fresh, ((kpod *)v)->name))
                    gone_add(p, ((kpod *)v)->name);
            pods_clear(&p->pods);
            p->pods = fresh;
            set_rv(p, j);
            p->listed = true;
            size_t n = p->pods.len;
            kick(p);
            pthread_mutex_unlock(&p->mu);
            if (first)
                fl_log(FL_LOG_INFO, "kubernetes", "%zu pod(s) of cluster %s found in namespace %s",
                       n, p->cluster, p->ns);
            ok = true;
        }
        cJSON_Delete(j);
    }
    free(body);
    free(path);
    fl_map_free(&before);
    return ok;
}

typedef struct watch_ctx {
    fl_provider *p;
    bool gone;     /* 410: list again */
    char *error;   /* an ERROR event or a Status */
} watch_ctx;

static bool on_event(void *arg, char *line)
{
    watch_ctx *w = arg;
    fl_provider *p = w->p;
    cJSON *j = cJSON_Parse(line);
    if (!j)
        return true; /* not JSON: skip it */
    const char *type = jstr(j, "type");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(j, "object");
    if (!type) { /* a Status instead of events (an error answer) */
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
        if (cJSON_IsNumber(code) && code->valueint == 410)
            w->gone = true;
        else if (!w->error)
            w->error = kube_error_text(cJSON_IsNumber(code) ? code->valueint : 0, line);
        cJSON_Delete(j);
        return false;
    }
    bool go_on = true;
    pthread_mutex_lock(&p->mu);
    if (strcmp(type, "ERROR") == 0) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
        if (cJSON_IsNumber(code) && code->valueint == 410) {
            w->gone = true;
        } else if (!w->error) {
            char *text = cJSON_PrintUnformatted(obj);
            w->error = kube_error_text(cJSON_IsNumber(code) ? code->valueint : 0, text);
            free(text);
        }
        go_on = false;
    } else if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(p, obj);
    } else if (strcmp(type, "DELETED") == 0) {
        const char *name = jstr(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "name");
        if (name) {
            pod_free(fl_map_del(&p->pods, name));
            if (p->ca) /* deleted behind our back too: its Secret goes (no garbage
                        * collector may run, and it costs one call) */
                gone_add(p, name);
        }
        set_rv(p, obj);
        kick(p);
    } else { /* ADDED, MODIFIED */
        kpod *k = pod_parse(obj);
        if (k) {
            pod_put(p, k);
            kick(p);
        }
        set_rv(p, obj);
    }
    pthread_mutex_unlock(&p->mu);
    cJSON_Delete(j);
    return go_on;
}

static bool watch_stopping(void *arg)
{
    return stopping(((watch_ctx *)arg)->p);
}

static void *watch_main(void *arg)
{
    fl_provider *p = arg;
    int64_t backoff = 1000;
    bool need_list = true;
    while (!stopping(p)) {
        if (need_list) {
            if (!list_pods(p)) {
                if (nap(p, backoff, NULL))
                    break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            need_list = false;
        }
        fl_buf q = { 0 };
        pthread_mutex_lock(&p->mu);
        fl_buf_printf(&q, "&watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=",
                      WATCH_SECONDS);
        url_escape(&q, p->rv ? p->rv : "");
        pthread_mutex_unlock(&p->mu);
        char *extra = fl_buf_detach(&q);
        char *path = pods_path(p, extra);
        free(extra);
        watch_ctx w = { p, false, NULL };
        long status = 0;
        flame_status st = kube_stream(&p->api, path, WATCH_TIMEOUT_MS, on_event, watch_stopping,
                                      &w, &status);
        free(path);
        if (stopping(p)) {
            free(w.error);
            break;
        }
        if (w.gone) {
            fl_log(FL_LOG_INFO, "kubernetes", "watch: resourceVersion too old (410 Gone): "
                   "listing again");
            need_list = true;
            backoff = 1000;
        } else if (st || w.error || status != 200) {
            char *msg = st ? fl_strdup(flame_error_last())
                        : w.error ? fl_sprintf("watching pods in namespace %s: %s", p->ns, w.error)
                                  : fl_sprintf("watching pods in namespace %s: HTTP %ld", p->ns,
                                               status);
            report(p, SLOT_WATCH, msg);
            free(msg);
            /* resume from the last version; a too old one answers 410 */
            if (nap(p, backoff, NULL)) {
                free(w.error);
                break;
            }
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        } else {
            report(p, SLOT_WATCH, NULL);
            backoff = 1000;
        }
        free(w.error);
    }
    return NULL;
}

/* ---- the reconciler -------------------------------------------------------- */


static kpodspec spec_of(const fl_provider *p)
{
    return (kpodspec){ p->ns, p->image, p->endpoint, p->service_account, p->cluster,
                       p->tls_secret, p->ca != NULL, p->ca_pem, p->extra_labels, p->dflt,
                       p->host_users };
}

/* 1 deleted, 0 not there (404), -1 failed (reported). */
static int delete_path(fl_provider *p, const char *path, const char *what)
{
    long status;
    char *resp = NULL;
    flame_status st = kube_call(&p->api, "DELETE", path, NULL, CALL_TIMEOUT_MS, &status, &resp);
    int done = st ? -1 : status == 200 || status == 202 ? 1 : status == 404 ? 0 : -1;
    if (done < 0) {
        char *e = st ? fl_strdup(flame_error_last()) : kube_error_text(status, resp);
        char *msg = fl_sprintf("deleting %s in namespace %s: %s", what, p->ns, e);
        report(p, SLOT_RECONCILE, msg);
        free(msg);
        free(e);
    }
    free(resp);
    return done;
}

static void delete_secret(fl_provider *p, const char *pod)
{
    char *path = fl_sprintf("/api/v1/namespaces/%s/secrets/%s-tls", p->ns, pod);
    char *what = fl_sprintf("secret %s-tls", pod);
    if (delete_path(p, path, what) > 0)
        fl_log(FL_LOG_INFO, "kubernetes", "secret %s-tls deleted", pod);
    free(what);
    free(path);
}

/* With a CA: the pod's certificate and key, then the pod, then its Secret
 * (owned by the pod: it needs the pod's uid); the pod waits for its Secret
 * to start. A Secret that cannot be made takes its pod with it. */
static void create_pod(fl_provider *p, create_req *c)
{
    char *cert = NULL, *key = NULL;
    if (p->ca) {
        kpod_name(c->name);
        if (kpodca_issue(p->ca, c->name, p->cert_ttl_s, &cert, &key, &c->cert_end)) {
            report(p, SLOT_RECONCILE, flame_error_last());
            return;
        }
    }
    kpodspec spec = spec_of(p);
    char *body = kpod_json(&spec, c);
    char *path = fl_sprintf("/api/v1/namespaces/%s/pods", p->ns);
    long status;
    char *resp = NULL;
    flame_status st = kube_call(&p->api, "POST", path, body, CALL_TIMEOUT_MS, &status, &resp);
    if (st) {
        report(p, SLOT_RECONCILE, flame_error_last());
    } else if (status == 201 || status == 200) {
        cJSON *j = cJSON_Parse(resp);
        kpod *k = j ? pod_parse(j) : NULL;
        const char *uid = jstr(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "uid");
        bool ok = k != NULL;
        if (k && p->ca) {
            char *sj = ksecret_json(&spec, k->name, uid ? uid : "", cert, key);
            char *spath = fl_sprintf("/api/v1/namespaces/%s/secrets", p->ns);
            long ss;
            char *sresp = NULL;
            flame_status sst = kube_call(&p->api, "POST", spath, sj, CALL_TIMEOUT_MS, &ss, &sresp);
            if (sst || (ss != 201 && ss != 200)) {
                char *e = sst ? fl_strdup(flame_error_last()) : kube_error_text(ss, sresp);
                char *msg = fl_sprintf("creating the node certificate's secret of pod %s in "
                                       "namespace %s: %s", k->name, p->ns, e);
                report(p, SLOT_RECONCILE, msg);
                free(msg);
                free(e);
                char *ppath = fl_sprintf("/api/v1/namespaces/%s/pods/%s", p->ns, k->name);
                char *what = fl_sprintf("pod %s", k->name);
                /* not deleted: in the books, dead, the next round deletes it */
                k->dead = true;
                if (delete_path(p, ppath, what) >= 0) {
                    pod_free(k);
                    k = NULL;
                }
                free(what);
                free(ppath);
                ok = false;
            }
            free(sresp);
            free(spath);
            free(sj);
        }
        if (k) {
            if (ok)
                fl_log(FL_LOG_INFO, "kubernetes", "pod %s created for session %s%s", k->name,
                       c->session, p->ca ? ", with its own node certificate" : "");
            pthread_mutex_lock(&p->mu);
            if (!fl_map_get(&p->pods, k->name))
                fl_map_put(&p->pods, k->name, k);
            else
                pod_free(k);
            pthread_mutex_unlock(&p->mu);
        }
        cJSON_Delete(j);
        if (ok)
            report(p, SLOT_RECONCILE, NULL);
    } else {
        /* 409 (a name taken), 5xx, 403...: the next round tries again */
        char *e = kube_error_text(status, resp);
        char *msg = fl_sprintf("creating a pod for session %s in namespace %s: %s", c->session,
                               p->ns, e);
        report(p, SLOT_RECONCILE, msg);
        free(msg);
        free(e);
    }
    free(resp);
    free(path);
    free(body);
    free(cert);
    if (key) /* a private key: not left in freed memory */
        explicit_bzero(key, strlen(key));
    free(key);
}

static void delete_pod(fl_provider *p, const char *name)
{
    char *path = fl_sprintf("/api/v1/namespaces/%s/pods/%s", p->ns, name);
    long status;
    char *resp = NULL;
    flame_status st = kube_call(&p->api, "DELETE", path, NULL, CALL_TIMEOUT_MS, &status, &resp);
    bool done = !st && (status == 200 || status == 202 || status == 404);
    if (done) {
        fl_log(FL_LOG_INFO, "kubernetes", "pod %s deleted", name);
        report(p, SLOT_RECONCILE, NULL);
        if (p->ca)
            delete_secret(p, name);
    } else {
        char *e = st ? fl_strdup(flame_error_last()) : kube_error_text(status, resp);
        char *msg = fl_sprintf("deleting pod %s in namespace %s: %s", name, p->ns, e);
        report(p, SLOT_RECONCILE, msg);
        free(msg);
        free(e);
    }
    pthread_mutex_lock(&p->mu);
    kpod *k = fl_map_get(&p->pods, name);
    if (k && status == 404)
        pod_free(fl_map_del(&p->pods, name));
    else if (k && !done)
        k->terminating = false; /* not going after all: the next round asks again */
    pthread_mutex_unlock(&p->mu);
    free(resp);
    free(path);
}

typedef struct plan {
    char **deletes;
    size_t ndel;
    create_req *creates;
    size_t ncreate;
} plan;

static void plan_delete(plan *pl, kpod *k)
{
    k->terminating = true;
    pl->deletes = fl_realloc(pl->deletes, (pl->ndel + 1) * sizeof *pl->deletes);
    pl->deletes[pl->ndel++] = fl_strdup(k->name);
}

/* What to create and delete now (mu held). */
static void make_plan(fl_provider *p, plan *pl)
{
    int64_t now = fl_now_ms();
    fl_map alive = { 0 }; /* session -> count, as (void *)(uintptr_t) */
    size_t total = 0, it = 0;
    void *v;
    while (fl_map_next(&p->pods, &it, NULL, &v)) {
        kpod *k = v;
        if (k->terminating)
            continue;
        kdemand *d = k->session ? fl_map_get(&p->demand, k->session) : NULL;
        if (k->dead || !d) {
            plan_delete(pl, k); /* its manager exited, or nobody wants it */
            continue;
        }
        /* its certificate is 90% through: a new pod with a new one takes
         * over (its tasks run elsewhere, as on a node lost), unless the CA
         * ends first (a new one would end as soon: no churn) */
        if (p->ca && k->cert_end && now / 1000 >= k->cert_end - p->cert_ttl_s / 10 &&
            kpodca_end(p->ca) > k->cert_end + p->cert_ttl_s / 10) {
            fl_log(FL_LOG_INFO, "kubernetes", "pod %s: its node certificate ends soon, a new "
                   "pod replaces it", k->name);
            plan_delete(pl, k);
            continue;
        }
        uintptr_t n = (uintptr_t)fl_map_get(&alive, k->session);
        fl_map_put(&alive, k->session, (void *)(n + 1));
        total++;
    }
    it = 0;
    while (fl_map_next(&p->demand, &it, NULL, &v)) {
        kdemand *d = v;
        uintptr_t have = (uintptr_t)fl_map_get(&alive, d->session);
        if (have <= d->want)
            d->over_since_ms = 0;
        if (have > d->want) {
            if (!d->over_since_ms)
                d->over_since_ms = now;
            if (d->open && now - d->over_since_ms < p->scale_down_ms)
                continue;
            /* surplus: pods not running a manager yet go first */
            uintptr_t extra = have - d->want;
            for (int pass = 0; pass < 2 && extra; pass++) {
                size_t j = 0;
                void *w;
                while (extra && fl_map_next(&p->pods, &j, NULL, &w)) {
                    kpod *k = w;
                    if (!k->terminating && k->session && strcmp(k->session, d->session) == 0 &&
                        (pass == 1 || k->pending)) {
                        plan_delete(pl, k);
                        extra--;
                        total--;
                    }
                }
            }
        } else if (have < d->want) {
            uint32_t n = d->want - (uint32_t)have;
            for (uint32_t i = 0; i < n && total < p->max_pods && pl->ncreate < CREATES_PER_ROUND;
                 i++, total++) {
                pl->creates = fl_realloc(pl->creates, (pl->ncreate + 1) * sizeof *pl->creates);
                pl->creates[pl->ncreate++] = (create_req){ fl_strdup(d->session),
                                                           fl_strdup(d->app), d->resreq };
            }
        }
    }
    fl_map_free(&alive);
}

static void *reconcile_main(void *arg)
{
    fl_provider *p = arg;
    bool said_cap = false;
    while (!nap(p, RECONCILE_MS, &p->wake)) {
        plan pl = { 0 };
        pthread_mutex_lock(&p->mu);
        if (p->listed && p->have_demand)
            make_plan(p, &pl);
        char **gone = p->gone;
        size_t ngone = p->ngone;
        p->gone = NULL;
        p->ngone = 0;
        bool capped = p->pods.len >= p->max_pods;
        pthread_mutex_unlock(&p->mu);
        if (capped && !said_cap)
            fl_log(FL_LOG_WARN, "kubernetes", "%u pods: kubernetes.max_pods reached, sessions "
                   "wait for executors", p->max_pods);
        said_cap = capped;
        for (size_t i = 0; i < pl.ndel; i++) {
            if (!stopping(p))
                delete_pod(p, pl.deletes[i]);
            free(pl.deletes[i]);
        }
        for (size_t i = 0; i < ngone; i++) {
            if (!stopping(p))
                delete_secret(p, gone[i]);
            free(gone[i]);
        }
        free(gone);
        for (size_t i = 0; i < pl.ncreate; i++) {
            if (!stopping(p))
                create_pod(p, &pl.creates[i]);
            free(pl.creates[i].session);
            free(pl.creates[i].app);
        }
        free(pl.deletes);
        free(pl.creates);
        if (pl.ncreate == CREATES_PER_ROUND) { /* more to do: go on at once */
            pthread_mutex_lock(&p->mu);
            kick(p);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* ---- the provider ------------------------------------------------------------ */

void fl_provider_demand_set(fl_provider *p, const fl_provider_demand *d, size_t n)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    /* most cycles change nothing: then nothing is copied */
    bool changed = !p->have_demand || n != p->demand.len;
    for (size_t i = 0; i < n && !changed; i++) {
        kdemand *old = fl_map_get(&p->demand, d[i].session_id);
        changed = !old || old->want != d[i].executors || old->open != d[i].open;
    }
    if (!changed) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    fl_map fresh = { 0 };
    for (size_t i = 0; i < n; i++) {
        kdemand *old = fl_map_get(&p->demand, d[i].session_id);
        kdemand *k = fl_calloc(1, sizeof *k);
        k->session = fl_strdup(d[i].session_id);
        k->app = fl_strdup(d[i].app);
        k->resreq = d[i].resreq;
        k->want = d[i].executors;
        k->open = d[i].open;
        k->over_since_ms = old ? old->over_since_ms : 0;
        kdemand *dup = fl_map_get(&fresh, k->session);
        fl_map_put(&fresh, k->session, k);
        if (dup)
            demand_free(dup);
    }
    size_t it = 0;
    void *v;
    while (fl_map_next(&p->demand, &it, NULL, &v))
        demand_free(v);
    fl_map_free(&p->demand);
    p->demand = fresh;
    p->have_demand = true;
    kick(p);
    pthread_mutex_unlock(&p->mu);
}

static flame_status labels_parse(fl_provider *p, const char *s)
{
    p->extra_labels = cJSON_CreateObject();
    if (!s || !*s)
        return FLAME_OK;
    char *copy = fl_strdup(s), *save = NULL;
    flame_status st = FLAME_OK;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        char lv[64];
        if (!eq || eq == kv) {
            st = fl_error(FLAME_ERR_CONFIG, "kubernetes.labels: \"%s\": expected key=value", kv);
            break;
        }
        *eq = 0;
        klabel_value(eq + 1, lv);
        if (strcmp(lv, eq + 1) != 0) {
            st = fl_error(FLAME_ERR_CONFIG, "kubernetes.labels.%s: \"%s\" is not a label value "
                          "(<= 63 of A-Z a-z 0-9 . _ -)", kv, eq + 1);
            break;
        }
        cJSON_AddStringToObject(p->extra_labels, kv, eq + 1);
    }
    free(copy);
    return st;
}

static void provider_destroy(fl_provider *p)
{
    kube_api_clear(&p->api);
    free(p->ns);
    free(p->image);
    free(p->endpoint);
    free(p->service_account);
    free(p->tls_secret);
    kpodca_free(p->ca);
    free(p->ca_pem);
    free(p->cluster);
    free(p->selector);
    cJSON_Delete(p->extra_labels);
    size_t it = 0;
    void *v;
    while (fl_map_next(&p->demand, &it, NULL, &v))
        demand_free(v);
    fl_map_free(&p->demand);
    pods_clear(&p->pods);
    for (size_t i = 0; i < p->ngone; i++)
        free(p->gone[i]);
    free(p->gone);
    free(p->rv);
    for (int i = 0; i < SLOTS; i++)
        free(p->last_error[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

/* The pods' TLS: their own certificates from a CA (secure: one identity
 * per pod), one Secret for all (said), or none (a plaintext cluster). With
 * mutual TLS, pods without certificates could not register: refused. */
static flame_status tls_setup(fl_provider *p, const flame_cluster_config *cfg,
                              const fl_provider_tls *tls)
{
    p->cert_ttl_s = cfg->k8s_node_cert_ttl_s > 0 ? cfg->k8s_node_cert_ttl_s : 86400;
    if (cfg->k8s_node_ca_cert && cfg->k8s_tls_secret)
        return fl_error(FLAME_ERR_CONFIG, "kubernetes.tls_secret and kubernetes.node_ca_cert: "
                        "set one (node_ca_cert gives each pod a certificate of its own)");
    if (!cfg->k8s_node_ca_cert) {
        if (tls && tls->mutual && !cfg->k8s_tls_secret)
            return fl_error(FLAME_ERR_CONFIG, "kubernetes.node_ca_cert, node_ca_key: required "
                            "with cluster.tls.mutual (the CA that signs each executor pod's node "
                            "certificate, e.g. the cluster CA made by flmadm)");
        if (cfg->k8s_tls_secret)
            fl_log(FL_LOG_WARN, "kubernetes", "every pod presents the node certificate of "
                   "Secret %s: one identity for all (set kubernetes.node_ca_cert and "
                   "node_ca_key to give each pod its own)", cfg->k8s_tls_secret);
        return FLAME_OK;
    }
    flame_status st = kpodca_load(&p->ca, cfg->k8s_node_ca_cert, cfg->k8s_node_ca_key);
    if (st)
        return st;
    /* the pods verify the session manager with the CA that verifies its
     * clients, else with the one that signs theirs */
    const char *ca_file = tls && tls->ca_file ? tls->ca_file : NULL;
    if (ca_file) {
        char *pem = fl_read_small_file(ca_file);
        if (!pem)
            return fl_error(FLAME_ERR_CONFIG, "cluster.tls.ca_file: %s: cannot read it", ca_file);
        p->ca_pem = pem;
    } else {
        p->ca_pem = fl_strdup(kpodca_cert_pem(p->ca));
    }
    if (kpodca_end(p->ca) < (int64_t)time(NULL) + p->cert_ttl_s)
        fl_log(FL_LOG_WARN, "kubernetes", "the CA %s ends in less than kubernetes.node_cert_ttl: "
               "the pods' certificates end with it (renew the CA)", cfg->k8s_node_ca_cert);
    fl_log(FL_LOG_INFO, "kubernetes", "each pod gets a node certificate of its own (CN = its "
           "name), valid %lld s, signed by %s, in a Secret <pod>-tls", (long long)p->cert_ttl_s,
           cfg->k8s_node_ca_cert);
    return FLAME_OK;
}

flame_status fl_provider_new(fl_provider **out, const flame_cluster_config *cfg,
                             const char *sm_endpoint, const fl_provider_tls *tls)
{
    *out = NULL;
    if (!cfg || !cfg->provider || strcmp(cfg->provider, "none") == 0)
        return FLAME_OK;
    if (strcmp(cfg->provider, "kubernetes") != 0)
        return fl_error(FLAME_ERR_CONFIG, "provider \"%s\": expected none or kubernetes",
                        cfg->provider);
    if (!cfg->k8s_image || !*cfg->k8s_image)
        return fl_error(FLAME_ERR_CONFIG, "kubernetes.image: required with provider kubernetes "
                        "(the executor manager's image)");
    fl_provider *p = fl_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    flame_status st = kube_api_load(&p->api, cfg->k8s_kubeconfig);
    if (!st)
        st = labels_parse(p, cfg->k8s_labels);
    if (!st)
        st = tls_setup(p, cfg, tls);
    if (st) {
        provider_destroy(p);
        return st;
    }
    p->ns = fl_strdup(cfg->k8s_namespace ? cfg->k8s_namespace
                      : p->api.namespace ? p->api.namespace
                                         : "default");
    p->image = fl_strdup(cfg->k8s_image);
    p->endpoint = fl_strdup(cfg->k8s_endpoint ? cfg->k8s_endpoint : sm_endpoint);
    p->service_account = fl_strdup(cfg->k8s_service_account);
    p->tls_secret = fl_strdup(cfg->k8s_tls_secret);
    p->host_users = cfg->k8s_host_users != 0;
    char lv[64];
    klabel_value(cfg->name ? cfg->name : "flame", lv);
    p->cluster = fl_strdup(lv);
    fl_buf sel = { 0 };
    char *s = fl_sprintf(LABEL_MANAGED "=flame," LABEL_CLUSTER "=%s", p->cluster);
    url_escape(&sel, s);
    free(s);
    p->selector = fl_buf_detach(&sel);
    p->dflt = cfg->k8s_resources.cpu || cfg->k8s_resources.memory ? cfg->k8s_resources
                                                                    : cfg->resreq;
    p->max_pods = cfg->k8s_max_pods ? cfg->k8s_max_pods : 100;
    p->scale_down_ms = cfg->k8s_scale_down_delay_ms >= 0 ? cfg->k8s_scale_down_delay_ms : 60000;
    if ((st = kube_global_init())) {
        provider_destroy(p);
        return st;
    }
    if (pthread_create(&p->watcher, NULL, watch_main, p) != 0) {
        provider_destroy(p);
        return fl_error(FLAME_ERR_INTERNAL, "kubernetes: cannot start the watch thread");
    }
    if (pthread_create(&p->reconciler, NULL, reconcile_main, p) != 0) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        kick(p);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->watcher, NULL);
        provider_destroy(p);
        return fl_error(FLAME_ERR_INTERNAL, "kubernetes: cannot start the reconcile thread");
    }
    fl_log(FL_LOG_INFO, "kubernetes", "provider kubernetes: %s, namespace %s, image %s, pods "
           "reach the session manager at %s", p->api.server, p->ns, p->image, p->endpoint);
    if (!cfg->k8s_endpoint && (strstr(p->endpoint, "://127.") || strstr(p->endpoint, "localhost")))
        fl_log(FL_LOG_WARN, "kubernetes", "pods are told to reach the session manager at %s, a "
               "loopback address: set kubernetes.endpoint (e.g. its Service's address)",
               p->endpoint);
    *out = p;
    return FLAME_OK;
}

void fl_provider_free(fl_provider *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    kick(p);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->watcher, NULL);
    pthread_join(p->reconciler, NULL);
    provider_destroy(p);
}
