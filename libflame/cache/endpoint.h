/* The object cache's endpoint (cache.endpoint of flame-cluster.yaml, a
 * client's FLAME_CACHE_ENDPOINT, an ObjectRef's endpoint, a grpc(s):// URL):
 * "SCHEME://HOST[:PORT][/PATH]" with SCHEME one of grpc, grpc+tcp, http
 * (plaintext) or grpcs, grpc+tls, https (TLS); port 9090 when omitted, as
 * Flame's. A bare "HOST:PORT" is plaintext. */
#ifndef FL_CACHE_ENDPOINT_H
#define FL_CACHE_ENDPOINT_H

#include <stdbool.h>

#include "flame/error.h"

#define FL_CACHE_DEFAULT_ENDPOINT "grpc://127.0.0.1:9090"
#define FL_CACHE_DEFAULT_PORT 9090

typedef struct fl_cache_endpoint {
    char *host;   /* without brackets (malloc'ed) */
    char *target; /* "HOST:PORT" for gRPC (malloc'ed) */
    char *path;   /* what follows the first '/' after the authority, "" if none (malloc'ed) */
    int port;
    bool tls;
} fl_cache_endpoint;

/* Parses text; FLAME_ERR_INVALID_ARGUMENT naming it when malformed (unknown
 * scheme, empty host, bad port). *out is untouched on error. */
flame_status fl_cache_endpoint_parse(fl_cache_endpoint *out, const char *text);
void fl_cache_endpoint_clear(fl_cache_endpoint *ep);

#endif
