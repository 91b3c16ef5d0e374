/* Parsing of the object cache's endpoints and URLs (see endpoint.h). */
#include <stdlib.h>
#include <string.h>

#include "cache/endpoint.h"
#include "util/util.h"

static const struct { const char *scheme; bool tls; } schemes[] = {
    { "grpc://", false }, { "grpc+tcp://", false }, { "http://", false },
    { "grpcs://", true }, { "grpc+tls://", true },  { "https://", true },
};

flame_status fl_cache_endpoint_parse(fl_cache_endpoint *out, const char *text)
{
    const char *p = text ? text : "";
    bool tls = false;
    if (strstr(p, "://")) {
        size_t i;
        for (i = 0; i < FL_ARRAY_LEN(schemes); i++)
            if (strncmp(p, schemes[i].scheme, strlen(schemes[i].scheme)) == 0)
                break;
        if (i == FL_ARRAY_LEN(schemes))
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "cache endpoint \"%s\": unknown scheme "
                            "(use grpc://, grpcs:// or http://)", text);
        p += strlen(schemes[i].scheme);
        tls = schemes[i].tls;
    }
    size_t n = strcspn(p, "/");
    const char *host = p, *host_end, *port_s = NULL;
    if (*p == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', n);
        if (!close)
            goto bad;
        host = p + 1;
        host_end = close;
        if (close + 1 < p + n) {
            if (close[1] != ':')
                goto bad;
            port_s = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', n);
        host_end = colon ? colon : p + n;
        port_s = colon ? colon + 1 : NULL;
    }
    if (host_end == host)
        goto bad;
    long port = FL_CACHE_DEFAULT_PORT;
    if (port_s) {
        char *end;
        if (port_s == p + n || *port_s < '0' || *port_s > '9')
            goto bad;
        port = strtol(port_s, &end, 10);
        if (end != p + n || port < 0 || port > 65535)
            goto bad;
    }
    out->host = fl_strndup(host, (size_t)(host_end - host));
    out->target = *p == '[' ? fl_sprintf("[%s]:%ld", out->host, port)
                            : fl_sprintf("%s:%ld", out->host, port);
    out->path = fl_strdup(p[n] == '/' ? p + n + 1 : "");
    out->port = (int)port;
    out->tls = tls;
    return FLAME_OK;
bad:
    return fl_error(FLAME_ERR_INVALID_ARGUMENT, "cache endpoint \"%s\": expected "
                    "grpc://HOST[:PORT] or grpcs://HOST[:PORT]", text);
}

void fl_cache_endpoint_clear(fl_cache_endpoint *ep)
{
    free(ep->host);
    free(ep->target);
    free(ep->path);
    *ep = (fl_cache_endpoint){ NULL, NULL, NULL, 0, false };
}
