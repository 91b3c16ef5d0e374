/* The executor manager: starting and stopping it, and its options. It
 * registers its node and keeps the WatchNode stream (node.c), and runs one
 * thread per executor through the life cycle register -> bind -> enter ->
 * run -> unbind -> release (exec.c, run.c).
 *
 * Threads and locks (the whole picture is in em.h): start and stop run on
 * the caller's thread; start spawns the node thread, stop sets stopping
 * and cancels the watch under em->mu, then joins the node thread, which
 * joins the executors' threads before it returns. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/endpoint.h"
#include "em.h"
#include "model/model.h"
#include "sandbox/cgroup.h"
#include "sandbox/process.h"
#include "flame/server.h"
#include "sandbox/microvm.h"
#include "util/util.h"

/* Work and log directories hold the executors' sockets, inputs and logs:
 * created private (0700); an existing one open to others is reported. */
static int mkdir_p(const char *path)
{
    char *p = fl_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0700);
            *s = '/';
        }
    }
    int rc = mkdir(p, 0700);
    struct stat sb;
    if (rc != 0 && errno == EEXIST && stat(p, &sb) == 0 && (sb.st_mode & 077))
        fl_log(FL_LOG_WARN, "em", "%s is open to other users (mode %03o); 0700 keeps the "
               "executors' sockets and logs private", p, (unsigned)(sb.st_mode & 0777));
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

/* The sandbox settings: known levels only, the default among the allowed. */
static flame_status sandbox_check(const flame_executor_options *o)
{
    const char *def = o->sandbox_default ? o->sandbox_default : "process";
    if (!fl_sandbox_level_known(def))
        return fl_error(FLAME_ERR_CONFIG,
                        "sandbox level \"%s\" is not one of none, process, microvm", def);
    if (o->sandbox_allow) {
        char *list = fl_strdup(o->sandbox_allow), *save = NULL;
        bool has_def = false;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!fl_sandbox_level_known(t)) {
                flame_status st = fl_error(FLAME_ERR_CONFIG, "allowed sandbox level \"%s\" is "
                                           "not one of none, process, microvm", t);
                free(list);
                return st;
            }
            has_def |= strcmp(t, def) == 0;
        }
        free(list);
        if (!has_def)
            return fl_error(FLAME_ERR_CONFIG, "the default sandbox level %s is not among the "
                            "allowed ones (%s)", def, o->sandbox_allow);
    }
    if (o->sandbox_uid_count && o->sandbox_uid_first < 1000)
        return fl_error(FLAME_ERR_CONFIG, "sandbox uids must not start below 1000 (%u): they "
                        "would be the host's users'", o->sandbox_uid_first);
    return FLAME_OK;
}

static void em_free(flame_executor_manager *em)
{
    rpc_channel_free(em->ch);
    free(em->endpoint);
    free(em->ca_file);
    free(em->node);
    free(em->work_dir);
    free(em->log_dir);
    free(em->bin_dir);
    free(em->cache_endpoint);
    free(em->cache_ca_file);
    free(em->sandbox_default);
    free(em->sandbox_allow);
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
    flame_status st0;
    if (opts)
        o = *opts;
    if (o.version < 2) { /* not in a version-1 caller's struct */
        o.sandbox_default = o.sandbox_allow = NULL;
        o.sandbox_uid_first = o.sandbox_uid_count = 0;
        o.microvm_accel = o.microvm_image = NULL;
        o.microvm_pool = 0;
    }
    if (o.version < 3)
        o.warm_pool = o.warm_pool_total = 0;
    if ((st0 = sandbox_check(&o)))
        return st0;
    fl_microvm_config mc = { .image_dir = o.microvm_image, .accel = o.microvm_accel,
                             .pool_size = o.microvm_pool > 0 ? o.microvm_pool : 0 };
    if (fl_microvm_configure(&mc))
        return FLAME_ERR_CONFIG; /* the message says which setting */
    flame_cluster_config *cfg = NULL;
    if (o.config_file) {
        flame_status st = flame_cluster_config_load(&cfg, o.config_file);
        if (st)
            return st;
    }
    fl_endpoint ep;
    flame_status st = fl_endpoint_resolve(&ep, o.endpoint ? o.endpoint
                                               : cfg ? cfg->endpoint : NULL);
    if (st) {
        flame_cluster_config_free(cfg);
        return st;
    }
    rpc_channel_options co = RPC_CHANNEL_OPTIONS_INIT;
    char *ca_abs = NULL;
    if (ep.tls) {
        co.tls.enabled = true;
        co.tls.ca_file = o.tls_ca_file                ? o.tls_ca_file
                         : cfg && cfg->tls_ca_file ? cfg->tls_ca_file
                                                      : ep.ca_file;
        co.tls.cert_file = o.tls_cert_file ? o.tls_cert_file : getenv("FLAME_CERT_FILE");
        co.tls.key_file = o.tls_key_file ? o.tls_key_file : getenv("FLAME_KEY_FILE");
        if (co.tls.cert_file && !*co.tls.cert_file)
            co.tls.cert_file = NULL;
        if (co.tls.key_file && !*co.tls.key_file)
            co.tls.key_file = NULL;
        /* services get it as FLAME_CA_FILE, from a directory of their own */
        ca_abs = co.tls.ca_file ? realpath(co.tls.ca_file, NULL) : NULL;
    }
    rpc_channel *ch;
    st = rpc_channel_new(&ch, ep.target, &co);
    if (st) {
        char why[512];
        snprintf(why, sizeof why, "%s", flame_error_last());
        flame_cluster_config_free(cfg);
        fl_endpoint_clear(&ep);
        free(ca_abs);
        return fl_error(st, "TLS %s", why);
    }
    if (ep.tls)
        fl_log(FL_LOG_INFO, "em", "TLS to %s: server verified with %s, %s", ep.url,
               co.tls.ca_file ? co.tls.ca_file : "the system's roots",
               co.tls.cert_file ? "presenting the node certificate" : "no client certificate");
    /* services get the cluster yaml's cache endpoint as FLAME_CACHE_ENDPOINT;
     * grpcs:// packages are fetched with its CA */
    char *cache_ep = cfg && cfg->cache_endpoint ? fl_strdup(cfg->cache_endpoint) : NULL;
    char *cache_ca = cfg && cfg->cache_tls_ca_file ? realpath(cfg->cache_tls_ca_file, NULL) : NULL;
    int node_timeout_ms = cfg ? cfg->node_timeout_ms : 10000;
    /* the warm pool: the options', else the cluster yaml's, else 2 and 8 */
    int warm = o.warm_pool ? o.warm_pool : cfg ? cfg->warm_pool : 2;
    int warm_total = o.warm_pool_total ? o.warm_pool_total : cfg ? cfg->warm_pool_total : 8;
    flame_cluster_config_free(cfg); /* co.tls.ca_file may point into it */
    flame_executor_manager *em = fl_calloc(1, sizeof *em);
    em->cache_endpoint = cache_ep;
    em->cache_ca_file = cache_ca;
    pthread_mutex_init(&em->mu, NULL);
    pthread_cond_init(&em->cv, NULL);
    em->endpoint = ep.url;
    ep.url = NULL;
    em->ch = ch;
    em->ca_file = ca_abs;
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
    em->node_timeout_ms = node_timeout_ms;
    em->warm_pool = warm > 0 ? warm : 0;
    em->warm_pool_total = warm_total > 0 ? warm_total : 0;
    /* a few heartbeats fit in the timeout, so one late packet loses nothing */
    em->heartbeat_ms = o.heartbeat_ms > 0          ? o.heartbeat_ms
                       : node_timeout_ms / 4 < 2000 ? node_timeout_ms / 4
                                                    : 2000;
    em->task_timeout_ms = o.task_timeout_ms > 0 ? o.task_timeout_ms : 0;
    if (o.inproc_len) {
        em->inproc = fl_calloc(o.inproc_len, sizeof *em->inproc);
        for (size_t i = 0; i < o.inproc_len; i++) {
            em->inproc[i].application = fl_strdup(o.inproc[i].application);
            em->inproc[i].service = o.inproc[i].service;
        }
        em->inproc_len = o.inproc_len;
    }
    em->sandbox_default = fl_strdup(o.sandbox_default ? o.sandbox_default : "process");
    em->sandbox_allow = fl_sprintf(",%s,", o.sandbox_allow ? o.sandbox_allow
                                                           : "none,process,microvm");
    /* two process sandboxes made ahead: a bind finds its sandbox ready */
    bool process_allowed = strstr(em->sandbox_allow, ",process,") != NULL;
    /* FLAME_SANDBOX_CGROUP_ROOT: where executors' cgroups go; unset, the
     * subtree systemd delegated to this manager, if it did, else
     * /sys/fs/cgroup */
    char delegated[600];
    const char *cg_root = getenv("FLAME_SANDBOX_CGROUP_ROOT");
    if (!cg_root && process_allowed &&
        fl_cgroup_delegated(FL_CGROUP_ROOT, delegated, sizeof delegated))
        cg_root = delegated;
    fl_sandbox_config sc = { o.sandbox_uid_first, o.sandbox_uid_count, process_allowed ? 2 : 0,
                             cg_root };
    fl_sandbox_process_configure(&sc);
    if (process_allowed) {
        char *report = fl_sandbox_process_probe();
        fl_log(FL_LOG_INFO, "em", "%s", report);
        free(report);
    }
    fl_log(FL_LOG_INFO, "em", "sandbox: default %s, allowed %.*s", em->sandbox_default,
           (int)strlen(em->sandbox_allow) - 2, em->sandbox_allow + 1);
    em_pool_start(em);
    if (pthread_create(&em->thread, NULL, em_node_main, em) != 0) {
        em_pool_stop(em);
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
    em_pool_stop(em); /* after the executors: none takes from it now */
    fl_microvm_shutdown(); /* the pool's VMs */
    fl_sandbox_process_shutdown(); /* the sandboxes made ahead */
    em_free(em);
}
