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
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strncmp(p, "https://", 8) == 0)
        tls = true;
    else if (strstr(p, "://"))
        return fl_error(code, "endpoint %s: unknown scheme (use http://)", text);
    /* TLS lands with Security I: until then https:// is refused here, the
     * one place that knows the scheme. */
    if (tls)
        return fl_error(code, "endpoint %s: TLS is not supported yet; use http://", text);
    size_t n = strcspn(p, "/");
    const char *colon = memchr(p, ':', n);
    if (n == 0 || !colon || colon == p || colon + 1 == p + n)
        return fl_error(code, "endpoint \"%s\": expected http://HOST:PORT", text);
    out->target = fl_strndup(p, n);
    out->url = fl_sprintf("http://%s", out->target);
    out->tls = tls;
    return FLAME_OK;
}

void fl_endpoint_clear(fl_endpoint *ep)
{
    free(ep->url);
    free(ep->target);
    *ep = (fl_endpoint){ NULL, NULL, false };
}

/* flamepy's format: current-context: NAME; contexts: [{name, cluster: {endpoint}}] */
static flame_status from_file(char **out, const char *path)
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
            const char *ep = fl_yaml_str(fl_yaml_get(&y, fl_yaml_get(&y, c, "cluster"), "endpoint"));
            if (ep) {
                *out = fl_strdup(ep);
                st = FLAME_OK;
            }
            break;
        }
    }
    fl_yaml_free(&y);
    return st;
}

/* The endpoint text a client uses, before parsing (malloc'ed). */
static flame_status find(char **out, const char *explicit_endpoint)
{
    const char *ep = explicit_endpoint;
    if (!ep || !*ep)
        ep = getenv("FLAME_ENDPOINT");
    if (ep && *ep) {
        *out = fl_strdup(ep);
        return FLAME_OK;
    }
    const char *cfg = getenv("FLAME_CONFIG");
    char *path = NULL;
    if (cfg && *cfg) {
        path = fl_strdup(cfg);
    } else {
        const char *home = getenv("HOME");
        if (home)
            path = fl_sprintf("%s/.flame/flame.yaml", home);
    }
    if (path && access(path, R_OK) == 0) {
        flame_status st = from_file(out, path);
        free(path);
        return st;
    }
    free(path);
    *out = fl_strdup(FL_DEFAULT_ENDPOINT);
    return FLAME_OK;
}

flame_status fl_endpoint_resolve(fl_endpoint *out, const char *explicit_endpoint)
{
    char *text = NULL;
    flame_status st = find(&text, explicit_endpoint);
    if (st)
        return st;
    st = fl_endpoint_parse(out, text, FLAME_ERR_INVALID_ARGUMENT);
    free(text);
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
