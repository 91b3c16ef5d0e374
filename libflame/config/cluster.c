/* Flame's cluster YAML: cluster: {name, endpoint, storage, resreq, policies,
 * schedule_interval, tls: {cert_file, key_file, ca_file, mutual, crl_file},
 * auth: {anonymous_role}, recovery: {session: {retry_limits}}} and ours: node_timeout,
 * limits: {max_tasks_per_request, max_message_size, ...}; cache: {endpoint, network_interface,
 * storage, eviction, tls} with the FLAME_CACHE_* overrides; metrics: {session_manager,
 * executor_manager, object_cache} and log: {format} (ours); provider: none|kubernetes
 * and kubernetes: {namespace, image, ...} (ours); executors: {warm_pool,
 * warm_pool_total} (ours; Flame's own executors: keys are not read). Read by the session manager and the
 * executor manager. Only the shape is checked here: the files of tls are the
 * session manager's (an executor manager reading the same file needs only
 * ca_file), so the one that uses them checks them (config/tls.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/endpoint.h"
#include "config/endpoint.h"
#include "config/tls.h"
#include "rpc/rpc.h"
#include "flame/server.h"
#include "util/util.h"
#include "util/yaml.h"

typedef struct config_impl {
    flame_cluster_config pub;
    char *strs[24]; /* 0-9: cluster, 10-19: cache, 20-23: metrics and log */
    char **policies;
    char *k8s[10];  /* provider and kubernetes: (read_provider) */
} config_impl;

static const char *keep(config_impl *c, int slot, const char *s)
{
    free(c->strs[slot]);
    c->strs[slot] = fl_strdup(s);
    return c->strs[slot];
}

void flame_cluster_config_free(flame_cluster_config *config)
{
    config_impl *c = (config_impl *)config;
    if (!c)
        return;
    for (size_t i = 0; i < FL_ARRAY_LEN(c->strs); i++)
        free(c->strs[i]);
    for (size_t i = 0; i < FL_ARRAY_LEN(c->k8s); i++)
        free(c->k8s[i]);
    for (size_t i = 0; i < c->pub.policies_len; i++)
        free(c->policies[i]);
    free(c->policies);
    free(c);
}

static flame_status bad(fl_yaml *y, yaml_node_t *n, const char *key, const char *what)
{
    /* what may be flame_error_last(), the very buffer fl_error writes */
    char why[512];
    snprintf(why, sizeof why, "%s", what);
    return fl_error(FLAME_ERR_CONFIG, "%s:%zu: %s: %s", y->file, n ? n->start_mark.line + 1 : 0,
                    key, why);
}

static flame_status read_resreq(fl_yaml *y, yaml_node_t *n, flame_resreq *r)
{
    if (n->type == YAML_SCALAR_NODE) {
        if (flame_resreq_parse(r, fl_yaml_str(n)) != FLAME_OK)
            return bad(y, n, "cluster.resreq", flame_error_last());
        return FLAME_OK;
    }
    if (n->type != YAML_MAPPING_NODE)
        return bad(y, n, "cluster.resreq", "expected \"cpu=1,mem=1g\" or a mapping");
    static const char *keys[] = { "cpu", "mem", "memory", "gpu" };
    for (size_t i = 0; i < FL_ARRAY_LEN(keys); i++) {
        yaml_node_t *v = fl_yaml_get(y, n, keys[i]);
        if (!v)
            continue;
        char text[128];
        snprintf(text, sizeof text, "%s=%s", keys[i], fl_yaml_str(v) ? fl_yaml_str(v) : "");
        if (flame_resreq_parse(r, text) != FLAME_OK) {
            char key[64];
            snprintf(key, sizeof key, "cluster.resreq.%s", keys[i]);
            return bad(y, v, key, "expected a number with an optional k/m/g suffix");
        }
    }
    return FLAME_OK;
}

/* A time in unit: a bare number or one followed by unit, or by big (mult
 * units; NULL: none). -1 for anything else. */
static long long read_time(const char *s, const char *unit, const char *big, long long mult)
{
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : -1;
    if (!end || end == s)
        return -1;
    if (!*end || strcmp(end, unit) == 0)
        return v;
    return big && strcmp(end, big) == 0 ? v * mult : -1;
}

/* cluster.node_timeout: "10s", "1500ms" or a number of ms; 100 ms to 1 h. */
static flame_status read_node_timeout(fl_yaml *y, yaml_node_t *n, int *out)
{
    long long v = read_time(fl_yaml_str(n), "ms", "s", 1000);
    if (v < 100 || v > 3600000)
        return bad(y, n, "cluster.node_timeout",
                   "expected a time between 100ms and 3600s (\"10s\", \"1500ms\" or ms)");
    *out = (int)v;
    return FLAME_OK;
}

/* cluster.busy_poll (ours): "50us", "0" or a number of µs; at most 10 ms. */
static flame_status read_busy_poll(fl_yaml *y, yaml_node_t *n, int *out)
{
    long long v = read_time(fl_yaml_str(n), "us", NULL, 0);
    if (v < 0 || v > 10000)
        return bad(y, n, "cluster.busy_poll",
                   "expected a time between 0 and 10000us (\"50us\", or µs; 0: off)");
    *out = (int)v;
    return FLAME_OK;
}

/* executors: Flame's own keys are accepted and not read; ours are
 * warm_pool and warm_pool_total (pre-started service processes, em/pool.c). */
static flame_status read_warm_pool(fl_yaml *y, yaml_node_t *root, flame_cluster_config *c)
{
    yaml_node_t *ex = fl_yaml_get(y, root, "executors");
    if (!ex || ex->type != YAML_MAPPING_NODE)
        return FLAME_OK;
    static const struct {
        const char *key, *path;
        size_t off;
    } keys[] = {
        { "warm_pool", "executors.warm_pool", offsetof(flame_cluster_config, warm_pool) },
        { "warm_pool_total", "executors.warm_pool_total",
          offsetof(flame_cluster_config, warm_pool_total) },
    };
    for (size_t i = 0; i < FL_ARRAY_LEN(keys); i++) {
        yaml_node_t *v = fl_yaml_get(y, ex, keys[i].key);
        int64_t n;
        flame_status st;
        if (!v)
            continue;
        if ((st = fl_yaml_int(y, v, keys[i].path, &n)))
            return st;
        if (n < 0 || n > 256)
            return bad(y, v, keys[i].path, "must be between 0 and 256 (processes)");
        *(int *)((char *)c + keys[i].off) = (int)n;
    }
    return FLAME_OK;
}

/* ---- cluster.limits ------------------------------------------------------ */

/* A byte count: an integer with an optional k, m or g suffix (1024-based). */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (!s || *s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static flame_status read_limits(fl_yaml *y, yaml_node_t *n, flame_cluster_limits *l)
{
    if (n->type != YAML_MAPPING_NODE)
        return bad(y, n, "cluster.limits", "expected a mapping");
    static const struct {
        const char *key;
        bool size;      /* a byte count (k/m/g suffixes) */
        uint64_t min, max;
    } keys[] = {
        { "max_tasks_per_request", false, 1, 1000000 },
        { "max_message_size", true, 64 << 10, 1u << 30 },
        { "max_send_queue", true, 64 << 10, 1ull << 34 },
        { "max_concurrent_streams", false, 1, 1000000 },
        { "handshake_timeout", false, 100, 3600000 },
        { "idle_timeout", false, 1000, INT32_MAX },
        { "keepalive", false, 1000, INT32_MAX },
        { "shutdown_grace", false, 10, 600000 },
    };
    for (size_t i = 0; i < FL_ARRAY_LEN(keys); i++) {
        yaml_node_t *v = fl_yaml_get(y, n, keys[i].key);
        if (!v)
            continue;
        char key[64], why[128];
        snprintf(key, sizeof key, "cluster.limits.%s", keys[i].key);
        uint64_t x;
        if (keys[i].size ? !parse_size(fl_yaml_str(v), &x) : false)
            return bad(y, v, key, "expected a byte count, e.g. 64m");
        if (!keys[i].size) {
            int64_t iv;
            flame_status st = fl_yaml_int(y, v, key, &iv);
            if (st)
                return st;
            x = iv < 0 ? 0 : (uint64_t)iv;
        }
        if (x < keys[i].min || x > keys[i].max) {
            snprintf(why, sizeof why, "must be between %llu and %llu%s",
                     (unsigned long long)keys[i].min, (unsigned long long)keys[i].max,
                     keys[i].size ? " bytes" : i >= 4 ? " (ms)" : "");
            return bad(y, v, key, why);
        }
        switch (i) {
        case 0: l->max_tasks_per_request = (uint32_t)x; break;
        case 1: l->max_message_size = (size_t)x; break;
        case 2: l->max_send_queue = (size_t)x; break;
        case 3: l->max_concurrent_streams = (int)x; break;
        case 4: l->handshake_timeout_ms = (int)x; break;
        case 5: l->idle_timeout_ms = (int)x; break;
        case 6: l->keepalive_ms = (int)x; break;
        default: l->shutdown_grace_ms = (int)x; break;
        }
    }
    return FLAME_OK;
}

/* cluster.recovery.session.retry_limits (Flame's key; default 5). */
static flame_status read_recovery(fl_yaml *y, yaml_node_t *cl, uint32_t *out)
{
    yaml_node_t *r = fl_yaml_get(y, cl, "recovery");
    if (!r || fl_yaml_is_null(r))
        return FLAME_OK;
    if (r->type != YAML_MAPPING_NODE)
        return bad(y, r, "cluster.recovery", "expected a mapping");
    yaml_node_t *s = fl_yaml_get(y, r, "session");
    if (!s || fl_yaml_is_null(s))
        return FLAME_OK;
    if (s->type != YAML_MAPPING_NODE)
        return bad(y, s, "cluster.recovery.session", "expected a mapping");
    yaml_node_t *v = fl_yaml_get(y, s, "retry_limits");
    if (!v)
        return FLAME_OK;
    int64_t n;
    flame_status st = fl_yaml_int(y, v, "cluster.recovery.session.retry_limits", &n);
    if (st)
        return st;
    if (n < 1 || n > 1000000)
        return bad(y, v, "cluster.recovery.session.retry_limits", "must be between 1 and 1000000");
    *out = (uint32_t)n;
    return FLAME_OK;
}

static flame_status read_bool(fl_yaml *y, yaml_node_t *n, const char *key, int *out)
{
    static const char *yes[] = { "true", "True", "TRUE", "yes", "on", "1" };
    static const char *no[] = { "false", "False", "FALSE", "no", "off", "0" };
    const char *s = fl_yaml_str(n);
    for (size_t i = 0; s && i < FL_ARRAY_LEN(yes); i++) {
        if (strcmp(s, yes[i]) == 0)
            return *out = 1, FLAME_OK;
        if (strcmp(s, no[i]) == 0)
            return *out = 0, FLAME_OK;
    }
    return bad(y, n, key, "expected true or false");
}

/* cluster.tls: {cert_file, key_file, ca_file, mutual, crl_file} */
static flame_status read_tls(fl_yaml *y, yaml_node_t *cl, config_impl *c)
{
    yaml_node_t *v = fl_yaml_get(y, cl, "tls");
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    if (v->type != YAML_MAPPING_NODE)
        return bad(y, v, "cluster.tls", "expected a mapping {cert_file, key_file, ca_file, "
                                        "mutual, crl_file}");
    static const char *tk[] = { "cert_file", "key_file", "ca_file", "crl_file" };
    const char **dst[] = { &c->pub.tls_cert_file, &c->pub.tls_key_file, &c->pub.tls_ca_file,
                           &c->pub.tls_crl_file };
    static const int slots[] = { 3, 4, 5, 6 };
    flame_status st;
    for (size_t i = 0; i < FL_ARRAY_LEN(tk); i++) {
        yaml_node_t *f = fl_yaml_get(y, v, tk[i]);
        const char *s;
        char key[64];
        snprintf(key, sizeof key, "cluster.tls.%s", tk[i]);
        if (!f)
            continue;
        if ((st = fl_yaml_string(y, f, key, &s)))
            return st;
        if (!*s)
            return bad(y, f, key, "must not be empty");
        *dst[i] = keep(c, slots[i], s);
    }
    /* Flame's meaning: tls present = the server speaks TLS, with these */
    if (!c->pub.tls_cert_file || !c->pub.tls_key_file)
        return bad(y, v, !c->pub.tls_cert_file ? "cluster.tls.cert_file" : "cluster.tls.key_file",
                   "required when cluster.tls is present");
    yaml_node_t *m = fl_yaml_get(y, v, "mutual");
    if (m && (st = read_bool(y, m, "cluster.tls.mutual", &c->pub.tls_mutual)))
        return st;
    if (c->pub.tls_mutual && !c->pub.tls_ca_file)
        return bad(y, m, "cluster.tls.ca_file", "required with mutual: true (it verifies the "
                                                "client certificates)");
    return FLAME_OK;
}

/* cluster.auth: {anonymous_role} */
static flame_status read_auth(fl_yaml *y, yaml_node_t *cl, config_impl *c)
{
    yaml_node_t *v = fl_yaml_get(y, cl, "auth");
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    if (v->type != YAML_MAPPING_NODE)
        return bad(y, v, "cluster.auth", "expected a mapping {anonymous_role}");
    yaml_node_t *r = fl_yaml_get(y, v, "anonymous_role");
    if (!r)
        return FLAME_OK;
    const char *s;
    flame_status st = fl_yaml_string(y, r, "cluster.auth.anonymous_role", &s);
    if (st)
        return st;
    const char *why;
    if (!fl_anonymous_role_valid(s, &why))
        return bad(y, r, "cluster.auth.anonymous_role", why);
    c->pub.auth_anonymous_role = keep(c, 7, s);
    return FLAME_OK;
}


/* ---- cache: (the object cache) ----------------------------------------- */

enum { CACHE_ENDPOINT = 10, CACHE_IFACE, CACHE_STORAGE, CACHE_POLICY, CACHE_CERT, CACHE_KEY,
       CACHE_CA };

/* Every key of mapping n must be one of keys (else an error naming it). */
static flame_status only_keys(fl_yaml *y, yaml_node_t *n, const char *where,
                              const char *const *keys, size_t n_keys)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
        const char *name = fl_yaml_str(k);
        size_t i = 0;
        while (name && i < n_keys && strcmp(name, keys[i]) != 0)
            i++;
        if (!name || i == n_keys) {
            char key[128];
            snprintf(key, sizeof key, "%s%s%s", where, *where ? "." : "", name ? name : "?");
            return bad(y, k, key, "unknown key");
        }
    }
    return FLAME_OK;
}

/* Every key this file knows, so a misspelt one is an error naming it rather
 * than a setting silently not taken. Flame's own `executors:` section is
 * accepted and not read (its shim and limits are per node here). The cache:,
 * metrics:, log: and kubernetes: sections check their own keys. */
static flame_status known_keys(fl_yaml *y, yaml_node_t *root, yaml_node_t *cl)
{
    static const char *const top[] = { "cluster", "executors", "cache", "metrics", "log",
                                       "provider", "kubernetes" };
    static const char *const cluster[] = { "name", "endpoint", "storage", "resreq", "slot",
                                           "schedule_interval", "policies", "policy", "limits",
                                           "tls", "auth", "recovery", "node_timeout",
                                           "busy_poll" };
    static const char *const limits[] = { "max_tasks_per_request", "max_message_size",
                                          "max_send_queue", "max_concurrent_streams",
                                          "handshake_timeout", "idle_timeout", "keepalive",
                                          "shutdown_grace" };
    static const char *const tls[] = { "cert_file", "key_file", "ca_file", "mutual", "crl_file" };
    static const char *const auth[] = { "anonymous_role" };
    static const char *const recovery[] = { "session" };
    static const char *const session[] = { "retry_limits" };
    static const struct {
        const char *path, *parent, *key;
        const char *const *keys;
        size_t n;
    } maps[] = {
        { "cluster.limits", "cluster", "limits", limits, FL_ARRAY_LEN(limits) },
        { "cluster.tls", "cluster", "tls", tls, FL_ARRAY_LEN(tls) },
        { "cluster.auth", "cluster", "auth", auth, FL_ARRAY_LEN(auth) },
        { "cluster.recovery", "cluster", "recovery", recovery, FL_ARRAY_LEN(recovery) },
        { "cluster.recovery.session", "cluster.recovery", "session", session,
          FL_ARRAY_LEN(session) },
    };
    flame_status st;
    if ((st = only_keys(y, root, "", top, FL_ARRAY_LEN(top))) ||
        (st = only_keys(y, cl, "cluster", cluster, FL_ARRAY_LEN(cluster))))
        return st;
    yaml_node_t *found[FL_ARRAY_LEN(maps)];
    for (size_t i = 0; i < FL_ARRAY_LEN(maps); i++) {
        yaml_node_t *parent = cl;
        for (size_t j = 0; j < i; j++)
            if (strcmp(maps[i].parent, maps[j].path) == 0)
                parent = found[j];
        found[i] = parent ? fl_yaml_get(y, parent, maps[i].key) : NULL;
        if (found[i] && found[i]->type != YAML_MAPPING_NODE)
            found[i] = NULL; /* its reader says what it expected */
        if (found[i] && (st = only_keys(y, found[i], maps[i].path, maps[i].keys, maps[i].n)))
            return st;
    }
    return FLAME_OK;
}

static flame_status cache_string(fl_yaml *y, yaml_node_t *map, const char *name,
                                 const char *where, config_impl *c, int slot, const char **dst)
{
    yaml_node_t *v = fl_yaml_get(y, map, name);
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    char key[64];
    const char *s;
    snprintf(key, sizeof key, "%s.%s", where, name);
    flame_status st = fl_yaml_string(y, v, key, &s);
    if (st)
        return st;
    *dst = keep(c, slot, s);
    return FLAME_OK;
}

static bool cache_policy_valid(const char *s)
{
    return strcmp(s, "lru") == 0 || strcmp(s, "none") == 0;
}

/* Flame's parse_memory_size: a count with an optional K/M/G (binary) suffix,
 * "B", "KB", "KiB" and the like accepted too. */
static bool cache_memory(const char *s, uint64_t *out)
{
    char buf[64];
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n + 1);
    if (n > 1 && (buf[n - 1] == 'B' || buf[n - 1] == 'b'))
        buf[--n] = 0;
    if (n > 1 && buf[n - 1] == 'i')
        buf[--n] = 0;
    return parse_size(buf, out);
}

static flame_status read_cache(fl_yaml *y, yaml_node_t *root, config_impl *c)
{
    static const char *const keys[] = { "endpoint", "network_interface", "storage", "eviction",
                                        "tls", "pprof" };
    static const char *const ev_keys[] = { "policy", "max_memory", "max_objects" };
    static const char *const tls_keys[] = { "cert_file", "key_file", "ca_file" };
    yaml_node_t *n = fl_yaml_get(y, root, "cache");
    flame_status st;
    if (!n || fl_yaml_is_null(n))
        return FLAME_OK;
    if (n->type != YAML_MAPPING_NODE)
        return bad(y, n, "cache", "expected a mapping {endpoint, network_interface, storage, "
                                  "eviction, tls}");
    if ((st = only_keys(y, n, "cache", keys, FL_ARRAY_LEN(keys))) ||
        (st = cache_string(y, n, "endpoint", "cache", c, CACHE_ENDPOINT, &c->pub.cache_endpoint)) ||
        (st = cache_string(y, n, "network_interface", "cache", c, CACHE_IFACE,
                           &c->pub.cache_network_interface)) ||
        (st = cache_string(y, n, "storage", "cache", c, CACHE_STORAGE, &c->pub.cache_storage)))
        return st;
    fl_cache_endpoint ep;
    if (fl_cache_endpoint_parse(&ep, c->pub.cache_endpoint))
        return bad(y, fl_yaml_get(y, n, "endpoint"), "cache.endpoint", flame_error_last());
    bool tls = ep.tls;
    fl_cache_endpoint_clear(&ep);
    yaml_node_t *ev = fl_yaml_get(y, n, "eviction");
    if (ev && !fl_yaml_is_null(ev)) {
        if (ev->type != YAML_MAPPING_NODE)
            return bad(y, ev, "cache.eviction", "expected a mapping {policy, max_memory, "
                                                "max_objects}");
        if ((st = only_keys(y, ev, "cache.eviction", ev_keys, FL_ARRAY_LEN(ev_keys))) ||
            (st = cache_string(y, ev, "policy", "cache.eviction", c, CACHE_POLICY,
                               &c->pub.cache_eviction_policy)))
            return st;
        if (!cache_policy_valid(c->pub.cache_eviction_policy))
            return bad(y, fl_yaml_get(y, ev, "policy"), "cache.eviction.policy",
                       "expected lru or none");
        yaml_node_t *v = fl_yaml_get(y, ev, "max_memory");
        if (v && !fl_yaml_is_null(v) && !cache_memory(fl_yaml_str(v), &c->pub.cache_max_memory))
            return bad(y, v, "cache.eviction.max_memory", "expected a size, e.g. 1G or 512M");
        v = fl_yaml_get(y, ev, "max_objects");
        int64_t mo;
        if (v && !fl_yaml_is_null(v)) {
            if ((st = fl_yaml_int(y, v, "cache.eviction.max_objects", &mo)))
                return st;
            if (mo < 0)
                return bad(y, v, "cache.eviction.max_objects", "must not be negative");
            c->pub.cache_max_objects = (uint64_t)mo;
        }
    }
    yaml_node_t *t = fl_yaml_get(y, n, "tls");
    if (t && !fl_yaml_is_null(t)) {
        if (t->type != YAML_MAPPING_NODE)
            return bad(y, t, "cache.tls", "expected a mapping {cert_file, key_file, ca_file}");
        const char **dst[] = { &c->pub.cache_tls_cert_file, &c->pub.cache_tls_key_file,
                               &c->pub.cache_tls_ca_file };
        if ((st = only_keys(y, t, "cache.tls", tls_keys, FL_ARRAY_LEN(tls_keys))))
            return st;
        for (int i = 0; i < 3; i++) {
            if ((st = cache_string(y, t, tls_keys[i], "cache.tls", c, CACHE_CERT + i, dst[i])))
                return st;
            if (*dst[i] && !**dst[i])
                return bad(y, fl_yaml_get(y, t, tls_keys[i]), i == 0 ? "cache.tls.cert_file" :
                           i == 1 ? "cache.tls.key_file" : "cache.tls.ca_file",
                           "must not be empty");
        }
        if (!c->pub.cache_tls_cert_file || !c->pub.cache_tls_key_file)
            return bad(y, t, !c->pub.cache_tls_cert_file ? "cache.tls.cert_file"
                                                         : "cache.tls.key_file",
                       "required when cache.tls is present");
    } else if (tls) {
        return bad(y, fl_yaml_get(y, n, "endpoint"), "cache.tls",
                   "required with a grpcs:// endpoint (cert_file, key_file)");
    }
    return FLAME_OK;
}

/* ---- metrics: and log: (ours; operations) --------------------------------- */

enum { METRICS_SM = 20, METRICS_EM, METRICS_CACHE, LOG_FORMAT };

static flame_status read_metrics(fl_yaml *y, yaml_node_t *root, config_impl *c)
{
    static const char *const keys[] = { "session_manager", "executor_manager", "object_cache" };
    const char **dst[] = { &c->pub.metrics_session_manager, &c->pub.metrics_executor_manager,
                           &c->pub.metrics_object_cache };
    flame_status st;
    yaml_node_t *n = fl_yaml_get(y, root, "metrics");
    if (n && !fl_yaml_is_null(n)) {
        if (n->type != YAML_MAPPING_NODE)
            return bad(y, n, "metrics", "expected a mapping {session_manager, executor_manager, "
                       "object_cache} of [HOST:]PORT addresses");
        if ((st = only_keys(y, n, "metrics", keys, FL_ARRAY_LEN(keys))))
            return st;
        for (size_t i = 0; i < FL_ARRAY_LEN(keys); i++)
            if ((st = cache_string(y, n, keys[i], "metrics", c, METRICS_SM + (int)i, dst[i])))
                return st;
    }
    static const char *const log_keys[] = { "format" };
    n = fl_yaml_get(y, root, "log");
    if (!n || fl_yaml_is_null(n))
        return FLAME_OK;
    if (n->type != YAML_MAPPING_NODE)
        return bad(y, n, "log", "expected a mapping {format}");
    if ((st = only_keys(y, n, "log", log_keys, 1)) ||
        (st = cache_string(y, n, "format", "log", c, LOG_FORMAT, &c->pub.log_format)))
        return st;
    if (c->pub.log_format && strcmp(c->pub.log_format, "text") != 0 &&
        strcmp(c->pub.log_format, "json") != 0)
        return bad(y, fl_yaml_get(y, n, "format"), "log.format", "expected text or json");
    return FLAME_OK;
}

/* ---- provider: and kubernetes: (ours; libflame/provider/) ---------------- */

static flame_status k8s_string(fl_yaml *y, yaml_node_t *map, const char *name, config_impl *c,
                               int slot, const char **dst)
{
    yaml_node_t *v = fl_yaml_get(y, map, name);
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    char key[64];
    const char *s;
    snprintf(key, sizeof key, "kubernetes.%s", name);
    flame_status st = fl_yaml_string(y, v, key, &s);
    if (st)
        return st;
    if (!*s)
        return bad(y, v, key, "must not be empty");
    free(c->k8s[slot]);
    c->k8s[slot] = fl_strdup(s);
    *dst = c->k8s[slot];
    return FLAME_OK;
}

static flame_status read_provider(fl_yaml *y, yaml_node_t *root, config_impl *c)
{
    static const char *const keys[] = { "namespace", "image", "kubeconfig", "endpoint",
                                        "service_account", "labels", "resources", "max_pods",
                                        "scale_down_delay", "tls_secret", "node_ca_cert",
                                        "node_ca_key", "node_cert_ttl", "host_users" };
    flame_cluster_config *p = &c->pub;
    flame_status st;
    p->k8s_scale_down_delay_ms = 60000;
    p->k8s_node_cert_ttl_s = 86400;
    yaml_node_t *v = fl_yaml_get(y, root, "provider");
    if (v && !fl_yaml_is_null(v)) {
        const char *s = fl_yaml_str(v);
        if (!s || (strcmp(s, "none") != 0 && strcmp(s, "kubernetes") != 0))
            return bad(y, v, "provider", "expected none or kubernetes");
        c->k8s[0] = fl_strdup(s);
        p->provider = c->k8s[0];
    }
    yaml_node_t *n = fl_yaml_get(y, root, "kubernetes");
    bool k8s = p->provider && strcmp(p->provider, "kubernetes") == 0;
    if (!n || fl_yaml_is_null(n)) {
        if (k8s)
            return bad(y, v, "kubernetes", "required with provider: kubernetes (image, ...)");
        return FLAME_OK;
    }
    if (n->type != YAML_MAPPING_NODE)
        return bad(y, n, "kubernetes", "expected a mapping {namespace, image, kubeconfig, "
                                       "endpoint, service_account, labels, resources, max_pods, "
                                       "scale_down_delay, tls_secret, node_ca_cert, "
                                       "node_ca_key, node_cert_ttl, host_users}");
    if ((st = only_keys(y, n, "kubernetes", keys, FL_ARRAY_LEN(keys))) ||
        (st = k8s_string(y, n, "namespace", c, 1, &p->k8s_namespace)) ||
        (st = k8s_string(y, n, "image", c, 2, &p->k8s_image)) ||
        (st = k8s_string(y, n, "kubeconfig", c, 3, &p->k8s_kubeconfig)) ||
        (st = k8s_string(y, n, "endpoint", c, 4, &p->k8s_endpoint)) ||
        (st = k8s_string(y, n, "service_account", c, 5, &p->k8s_service_account)) ||
        (st = k8s_string(y, n, "tls_secret", c, 7, &p->k8s_tls_secret)) ||
        (st = k8s_string(y, n, "node_ca_cert", c, 8, &p->k8s_node_ca_cert)) ||
        (st = k8s_string(y, n, "node_ca_key", c, 9, &p->k8s_node_ca_key)))
        return st;
    if (!p->k8s_node_ca_cert != !p->k8s_node_ca_key)
        return bad(y, n, p->k8s_node_ca_cert ? "kubernetes.node_ca_key" : "kubernetes.node_ca_cert",
                   "node_ca_cert and node_ca_key go together (the CA that signs the pods' "
                   "node certificates)");
    if (k8s && !p->k8s_image)
        return bad(y, n, "kubernetes.image", "required with provider: kubernetes (the executor "
                                             "manager's image)");
    yaml_node_t *l = fl_yaml_get(y, n, "labels");
    if (l && !fl_yaml_is_null(l)) {
        if (l->type != YAML_MAPPING_NODE)
            return bad(y, l, "kubernetes.labels", "expected a mapping {KEY: VALUE}");
        fl_buf b = { 0 };
        for (yaml_node_pair_t *q = l->data.mapping.pairs.start; q < l->data.mapping.pairs.top;
             q++) {
            const char *k = fl_yaml_str(yaml_document_get_node(&y->doc, q->key));
            const char *val = fl_yaml_str(yaml_document_get_node(&y->doc, q->value));
            if (!k || !val || !*k || strchr(k, ',') || strchr(k, '=') || strchr(val, ',')) {
                fl_buf_free(&b);
                return bad(y, l, "kubernetes.labels", "expected KEY: VALUE pairs of label "
                                                      "keys and values");
            }
            fl_buf_printf(&b, "%s%s=%s", b.len ? "," : "", k, val);
        }
        c->k8s[6] = fl_buf_detach(&b);
        p->k8s_labels = c->k8s[6];
    }
    yaml_node_t *r = fl_yaml_get(y, n, "resources");
    if (r && !fl_yaml_is_null(r) &&
        (r->type != YAML_SCALAR_NODE || flame_resreq_parse(&p->k8s_resources, fl_yaml_str(r))))
        return bad(y, r, "kubernetes.resources", "expected \"cpu=N,mem=SIZE\"");
    int64_t x;
    if ((r = fl_yaml_get(y, n, "max_pods")) && !fl_yaml_is_null(r)) {
        if ((st = fl_yaml_int(y, r, "kubernetes.max_pods", &x)))
            return st;
        if (x < 1 || x > 100000)
            return bad(y, r, "kubernetes.max_pods", "must be between 1 and 100000");
        p->k8s_max_pods = (uint32_t)x;
    }
    if ((r = fl_yaml_get(y, n, "scale_down_delay")) && !fl_yaml_is_null(r)) {
        if ((st = fl_yaml_int(y, r, "kubernetes.scale_down_delay", &x)))
            return st;
        if (x < 0 || x > 86400000)
            return bad(y, r, "kubernetes.scale_down_delay", "must be between 0 and 86400000 (ms)");
        p->k8s_scale_down_delay_ms = (int)x;
    }
    if ((r = fl_yaml_get(y, n, "node_cert_ttl")) && !fl_yaml_is_null(r)) {
        const char *t = fl_yaml_str(r);
        char *end = NULL;
        long long ttl = t ? strtoll(t, &end, 10) : -1;
        int unit = !end || end == t ? 0 : !*end || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60
                                        : !strcmp(end, "h")             ? 3600
                                        : !strcmp(end, "d")             ? 86400
                                                                         : 0;
        if (!unit || ttl < 1 || ttl > 366LL * 86400 || ttl * unit < 600 || ttl * unit > 366LL * 86400)
            return bad(y, r, "kubernetes.node_cert_ttl", "expected a time between 10m and 366d "
                                                         "(\"24h\", \"90m\", \"7d\" or seconds)");
        p->k8s_node_cert_ttl_s = ttl * unit;
    }
    if ((r = fl_yaml_get(y, n, "host_users")) &&
        (st = read_bool(y, r, "kubernetes.host_users", &p->k8s_host_users)))
        return st;
    return FLAME_OK;
}

/* Flame's env overrides of the cache section. */
static flame_status cache_env(config_impl *c)
{
    const char *s = getenv("FLAME_CACHE_STORAGE");
    if (s)
        c->pub.cache_storage = keep(c, CACHE_STORAGE, s);
    if ((s = getenv("FLAME_CACHE_EVICTION_POLICY")) && *s) {
        if (!cache_policy_valid(s))
            return fl_error(FLAME_ERR_CONFIG, "FLAME_CACHE_EVICTION_POLICY=%s: expected lru or "
                            "none", s);
        c->pub.cache_eviction_policy = keep(c, CACHE_POLICY, s);
    }
    if ((s = getenv("FLAME_CACHE_MAX_MEMORY")) && *s && !cache_memory(s, &c->pub.cache_max_memory))
        return fl_error(FLAME_ERR_CONFIG, "FLAME_CACHE_MAX_MEMORY=%s: expected a size, e.g. 1G", s);
    if ((s = getenv("FLAME_CACHE_MAX_OBJECTS")) && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*s < '0' || *s > '9' || *end)
            return fl_error(FLAME_ERR_CONFIG, "FLAME_CACHE_MAX_OBJECTS=%s: expected a count", s);
        c->pub.cache_max_objects = v;
    }
    return FLAME_OK;
}

flame_status flame_cluster_config_load(flame_cluster_config **out, const char *path)
{
    fl_yaml y = { 0 };
    flame_status st = path ? fl_yaml_load_file(&y, path) : FLAME_OK;
    if (st)
        return st;
    config_impl *c = fl_calloc(1, sizeof *c);
    c->pub.name = keep(c, 0, "flame");
    c->pub.endpoint = keep(c, 1, FL_DEFAULT_ENDPOINT);
    c->pub.storage = keep(c, 2, "sqlite://flame.db");
    c->pub.resreq = (flame_resreq){ 1, 1ULL << 30, 0 };
    c->pub.schedule_interval_ms = 500;
    c->pub.node_timeout_ms = 10000;
    c->pub.busy_poll_us = RPC_BUSY_POLL_US_DEFAULT;
    c->pub.warm_pool = 2;
    c->pub.warm_pool_total = 8;
    c->pub.cache_endpoint = keep(c, CACHE_ENDPOINT, FL_CACHE_DEFAULT_ENDPOINT);
    c->pub.cache_eviction_policy = keep(c, CACHE_POLICY, "lru");
    c->pub.cache_max_memory = 1ull << 30;
    c->pub.session_retry_limits = 5;
    c->pub.k8s_scale_down_delay_ms = 60000;
    if (!path)
        goto out;

    yaml_node_t *root = fl_yaml_root(&y);
    yaml_node_t *cl = fl_yaml_get(&y, root, "cluster");
    if (!root || root->type != YAML_MAPPING_NODE) {
        st = bad(&y, root, "(top level)", "expected a mapping with a \"cluster\" key");
        goto out;
    }
    if (!cl || cl->type != YAML_MAPPING_NODE) {
        st = bad(&y, cl ? cl : root, "cluster", "missing, or not a mapping");
        goto out;
    }
    if ((st = known_keys(&y, root, cl)))
        goto out;
    static const struct { const char *key; int slot; } strs[] = {
        { "name", 0 }, { "endpoint", 1 }, { "storage", 2 },
    };
    for (size_t i = 0; i < FL_ARRAY_LEN(strs); i++) {
        yaml_node_t *v = fl_yaml_get(&y, cl, strs[i].key);
        if (!v)
            continue;
        const char *s;
        char key[64];
        snprintf(key, sizeof key, "cluster.%s", strs[i].key);
        if ((st = fl_yaml_string(&y, v, key, &s)))
            goto out;
        if (!*s) {
            st = bad(&y, v, key, "must not be empty");
            goto out;
        }
        const char *kept = keep(c, strs[i].slot, s);
        if (i == 0)
            c->pub.name = kept;
        else if (i == 1)
            c->pub.endpoint = kept;
        else
            c->pub.storage = kept;
    }
    fl_endpoint ep;
    if (fl_endpoint_parse(&ep, c->pub.endpoint, FLAME_ERR_CONFIG)) {
        st = bad(&y, fl_yaml_get(&y, cl, "endpoint"), "cluster.endpoint", flame_error_last());
        goto out;
    }
    fl_endpoint_clear(&ep);
    if (strcmp(c->pub.storage, "none") != 0 && strncmp(c->pub.storage, "sqlite://", 9) != 0) {
        st = bad(&y, fl_yaml_get(&y, cl, "storage"), "cluster.storage",
                 "expected sqlite://PATH or none");
        goto out;
    }
    yaml_node_t *v = fl_yaml_get(&y, cl, "resreq");
    if (!v)
        v = fl_yaml_get(&y, cl, "slot"); /* Flame's older name */
    if (v && (st = read_resreq(&y, v, &c->pub.resreq)))
        goto out;
    v = fl_yaml_get(&y, cl, "schedule_interval");
    if (v) {
        int64_t ms;
        if ((st = fl_yaml_int(&y, v, "cluster.schedule_interval", &ms)))
            goto out;
        if (ms <= 0 || ms > 3600000) {
            st = bad(&y, v, "cluster.schedule_interval", "must be between 1 and 3600000 (ms)");
            goto out;
        }
        c->pub.schedule_interval_ms = (int)ms;
    }
    v = fl_yaml_get(&y, cl, "node_timeout");
    if (v && (st = read_node_timeout(&y, v, &c->pub.node_timeout_ms)))
        goto out;
    v = fl_yaml_get(&y, cl, "busy_poll");
    if (v && (st = read_busy_poll(&y, v, &c->pub.busy_poll_us)))
        goto out;
    if ((st = read_warm_pool(&y, root, &c->pub)))
        goto out;
    v = fl_yaml_get(&y, cl, "policies");
    if (!v)
        v = fl_yaml_get(&y, cl, "policy");
    if (v) {
        if (v->type == YAML_SCALAR_NODE) {
            c->policies = fl_calloc(1, sizeof *c->policies);
            c->policies[0] = fl_strdup(fl_yaml_str(v));
            c->pub.policies_len = 1;
        } else if (v->type == YAML_SEQUENCE_NODE) {
            size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            c->policies = fl_calloc(n ? n : 1, sizeof *c->policies);
            for (size_t i = 0; i < n; i++) {
                yaml_node_t *it = yaml_document_get_node(&y.doc, v->data.sequence.items.start[i]);
                const char *s = fl_yaml_str(it);
                if (!s) {
                    st = bad(&y, it, "cluster.policies", "expected a list of policy names");
                    goto out;
                }
                c->policies[c->pub.policies_len++] = fl_strdup(s);
            }
        } else {
            st = bad(&y, v, "cluster.policies", "expected a list of policy names");
            goto out;
        }
    }
    c->pub.policies = (const char *const *)c->policies;
    if ((st = read_tls(&y, cl, c)) || (st = read_auth(&y, cl, c)))
        goto out;
    v = fl_yaml_get(&y, cl, "limits");
    if (v && !fl_yaml_is_null(v) && (st = read_limits(&y, v, &c->pub.limits)))
        goto out;
    if ((st = read_recovery(&y, cl, &c->pub.session_retry_limits)))
        goto out;
    if (!(st = read_cache(&y, root, c)) && !(st = read_metrics(&y, root, c)))
        st = read_provider(&y, root, c);
out:
    if (!st)
        st = cache_env(c);
    if (path)
        fl_yaml_free(&y);
    if (st) {
        flame_cluster_config_free(&c->pub);
        return st;
    }
    *out = &c->pub;
    return FLAME_OK;
}
