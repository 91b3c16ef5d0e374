/* Endpoint parsing and the client's endpoint resolution (see endpoint.h). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/endpoint.h"
#include "util/util.h"
#include "util/yaml.h"

flame_status fl_endpoint_parse(fl_endpoint *out, const char *text, flame_status code)
{
    const char *p = text;
    bool tls = false;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        p += 8;
        tls = true;
    } else if (strstr(p, "://")) {
        return fl_error(code, "endpoint %s: unknown scheme (use http:// or https://)", text);
    }
    size_t n = strcspn(p, "/");
    const char *colon = memchr(p, ':', n);
    if (n == 0 || !colon || colon == p || colon + 1 == p + n)
        return fl_error(code, "endpoint \"%s\": expected http://HOST:PORT or https://HOST:PORT",
                        text);
    *out = (fl_endpoint){ NULL, NULL, false, NULL, NULL, NULL };
    out->target = fl_strndup(p, n);
    out->url = fl_sprintf("%s://%s", tls ? "https" : "http", out->target);
    out->tls = tls;
    return FLAME_OK;
}

void fl_endpoint_clear(fl_endpoint *ep)
{
    free(ep->url);
    free(ep->target);
    free(ep->ca_file);
    free(ep->cert_file);
    free(ep->key_file);
    *ep = (fl_endpoint){ NULL, NULL, false, NULL, NULL, NULL };
}

/* What a context of flame.yaml gives a client. */
struct context {
    char *endpoint;
    char *tls[3]; /* ca_file, cert_file, key_file */
};

static const char *const tls_keys[3] = { "ca_file", "cert_file", "key_file" };

/* flamepy's format: current-context: NAME; contexts: [{name, cluster:
 * {endpoint, tls: {ca_file}}}] (cert_file, key_file: ours). */
static flame_status from_file(struct context *out, const char *path)
{
    fl_yaml y;
    flame_status st = fl_yaml_load_file(&y, path);
    if (st)
        return st;
    yaml_node_t *root = fl_yaml_root(&y);
    const char *cur = fl_yaml_str(fl_yaml_get(&y, root, "current-context"));
    yaml_node_t *ctxs = fl_yaml_get(&y, root, "contexts");
    st = fl_error(FLAME_ERR_CONFIG, "%s: no endpoint for the current context \"%s\"", path,
                  cur ? cur : "");
    if (ctxs && ctxs->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = ctxs->data.sequence.items.start;
             it < ctxs->data.sequence.items.top; it++) {
            yaml_node_t *c = yaml_document_get_node(&y.doc, *it);
            const char *name = fl_yaml_str(fl_yaml_get(&y, c, "name"));
            if (cur && (!name || strcmp(name, cur) != 0))
                continue;
            yaml_node_t *cl = fl_yaml_get(&y, c, "cluster");
            const char *ep = fl_yaml_str(fl_yaml_get(&y, cl, "endpoint"));
            if (ep) {
                out->endpoint = fl_strdup(ep);
                st = FLAME_OK;
            }
            yaml_node_t *tls = fl_yaml_get(&y, cl, "tls");
            for (int i = 0; i < 3; i++) {
                const char *f = fl_yaml_str(fl_yaml_get(&y, tls, tls_keys[i]));
                out->tls[i] = f && *f ? fl_strdup(f) : NULL;
            }
            break;
        }
    }
    fl_yaml_free(&y);
    return st;
}

static void context_clear(struct context *c)
{
    free(c->endpoint);
    for (int i = 0; i < 3; i++)
        free(c->tls[i]);
}

/* The current context of $FLAME_CONFIG or ~/.flame/flame.yaml, if any. */
static flame_status from_context(struct context *out)
{
    *out = (struct context){ NULL, { NULL, NULL, NULL } };
    const char *cfg = getenv("FLAME_CONFIG");
    char *path = NULL;
    if (cfg && *cfg) {
        path = fl_strdup(cfg);
    } else {
        const char *home = getenv("HOME");
        if (home)
            path = fl_sprintf("%s/.flame/flame.yaml", home);
    }
    flame_status st = FLAME_OK;
    if (path && access(path, R_OK) == 0)
        st = from_file(out, path);
    free(path);
    if (st) {
        context_clear(out);
        *out = (struct context){ NULL, { NULL, NULL, NULL } };
    }
    return st;
}

flame_status fl_endpoint_resolve(fl_endpoint *out, const char *explicit_endpoint)
{
    struct context ctx = { NULL, { NULL, NULL, NULL } };
    const char *text = explicit_endpoint;
    if (!text || !*text)
        text = getenv("FLAME_ENDPOINT");
    /* the context is read even for an endpoint given otherwise: its tls
     * settings still apply (as in flamepy) */
    flame_status st = from_context(&ctx);
    if (st && !(text && *text))
        return st;
    if (!text || !*text)
        text = ctx.endpoint ? ctx.endpoint : FL_DEFAULT_ENDPOINT;
    st = fl_endpoint_parse(out, text, FLAME_ERR_INVALID_ARGUMENT);
    if (!st) {
        /* the environment is more specific than the file: what it names
         * wins, and it fills in what the context leaves out (flamepy's
         * FLAME_CA_FILE) */
        static const char *const env[3] = { "FLAME_CA_FILE", "FLAME_CERT_FILE", "FLAME_KEY_FILE" };
        char **dst[3] = { &out->ca_file, &out->cert_file, &out->key_file };
        for (int i = 0; i < 3; i++) {
            const char *e = getenv(env[i]);
            *dst[i] = e && *e ? fl_strdup(e) : ctx.tls[i] ? fl_strdup(ctx.tls[i]) : NULL;
        }
    }
    context_clear(&ctx);
    return st;
}

bool fl_endpoint_loopback(const fl_endpoint *ep)
{
    const char *t = ep->target;
    if (strncmp(t, "unix:", 5) == 0)
        return true;
    char host[256];
    const char *end = strrchr(t, ':');
    size_t n = end ? (size_t)(end - t) : strlen(t);
    if (n >= 2 && t[0] == '[' && t[n - 1] == ']') /* [::1]:port */
        t++, n -= 2;
    if (n >= sizeof host)
        return false;
    memcpy(host, t, n);
    host[n] = 0;
    if (strcmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}
