/* Flame in C — the object cache: the server (flame-object-cache) and a C
 * client. Both speak Flame's cache protocol, Arrow Flight: flamepy's cache
 * functions and pyarrow.flight work against the server unchanged, and the
 * client works against Flame's own cache. The server also serves Flame
 * 0.7's flame.v1.ObjectCacheService (flame-rs 0.7.0) on the same port,
 * over the same objects (README: Object cache).
 *
 * Keys are `<app>/<session>/<object>`; a PUT to `<app>/<session>` gets a
 * server-made object id; `<app>/` then `*` (delete only) names every
 * session of an app. Parts are non-empty, without "..", "\\" or control characters.
 * Versions start at 1 and grow by one with every PUT (which drops the
 * patches) and PATCH (which appends one).
 *
 * Threads: the server runs on a thread of its own; a client handle may be
 * used from several threads at once. */
#ifndef FLAME_CACHE_H
#define FLAME_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- server -------------------------------------------------------------- */

typedef struct flame_cache_server flame_cache_server;

#define FLAME_CACHE_SERVER_OPTIONS_VERSION 1

/* Every field is optional (NULL/0: the config file's cache: section, else
 * the default); fields set here override the config file. */
typedef struct flame_cache_server_options {
    int version;                 /* FLAME_CACHE_SERVER_OPTIONS_VERSION */
    const char *config_file;     /* flame-cluster.yaml, or NULL (defaults + FLAME_CACHE_*) */
    const char *endpoint;        /* default "grpc://127.0.0.1:9090"; grpcs:// = TLS; port 0 picks one */
    const char *storage;         /* "none" (memory only, the default), fs://PATH, file://PATH, PATH */
    const char *eviction_policy; /* "lru" (default) or "none" */
    uint64_t max_memory;         /* bytes of objects kept in memory; default 1 GiB */
    uint64_t max_objects;        /* objects kept in memory; 0: no limit */
    uint64_t max_object_size;    /* bytes of one object, base and patches; default 1 GiB */
    /* TLS (override cache.tls; used with a grpcs:// endpoint, where cert and
     * key are required); ca_file with tls_mutual (1): client certificates
     * signed by it are required. */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_ca_file;
    int tls_mutual;
    /* The host put in ObjectRefs and FlightInfo locations; NULL: the first
     * IPv4 of cache.network_interface, else the endpoint's host (a
     * wildcard host: the first non-loopback IPv4, else 127.0.0.1). */
    const char *advertise_host;
} flame_cache_server_options;

#define FLAME_CACHE_SERVER_OPTIONS_INIT { FLAME_CACHE_SERVER_OPTIONS_VERSION, NULL, NULL, NULL, \
    NULL, 0, 0, 0, NULL, NULL, NULL, 0, NULL }

void flame_cache_server_options_init(flame_cache_server_options *opts);

/* Loads the store (every object of an fs:// store), binds and serves on a
 * thread of its own; returns once the port is bound. FLAME_ERR_CONFIG
 * naming the setting on bad options. */
flame_status flame_cache_server_start(flame_cache_server **out,
                                      const flame_cache_server_options *opts);
/* The TCP port bound (useful with port 0). */
int flame_cache_server_port(const flame_cache_server *srv);
/* The endpoint advertised in ObjectRefs ("grpc://IP:PORT" or
 * "grpc+tls://IP:PORT"); owned by srv. */
const char *flame_cache_server_uri(const flame_cache_server *srv);
/* Stops serving, joins the thread and frees srv. NULL is a no-op. */
void flame_cache_server_stop(flame_cache_server *srv);

/* ---- client ---------------------------------------------------------------- */

typedef struct flame_cache flame_cache;

#define FLAME_CACHE_OPTIONS_VERSION 1
typedef struct flame_cache_options {
    int version;          /* FLAME_CACHE_OPTIONS_VERSION */
    const char *ca_file;  /* TLS roots for grpcs:// (NULL: $FLAME_CA_FILE, else the system's) */
    int timeout_ms;       /* per call; 0: 300000 */
    size_t max_message;   /* bytes; 0: 1 GiB */
} flame_cache_options;
#define FLAME_CACHE_OPTIONS_INIT { FLAME_CACHE_OPTIONS_VERSION, NULL, 0, 0 }

void flame_cache_options_init(flame_cache_options *opts);

/* A reference to a cached object, as flamepy's ObjectRef (BSON
 * {endpoint, key, version}). Strings are malloc'ed by the library; release
 * with flame_cache_ref_clear. */
typedef struct flame_cache_ref {
    char *endpoint;
    char *key;
    int64_t version;
} flame_cache_ref;

void flame_cache_ref_clear(flame_cache_ref *ref);
/* ObjectRef <-> BSON, as flamepy encodes it (task outputs, common data).
 * encode: *data malloc'ed (free()). decode: FLAME_ERR_INVALID_ARGUMENT when
 * not such a document. */
flame_status flame_cache_ref_encode(const flame_cache_ref *ref, void **data, size_t *len);
flame_status flame_cache_ref_decode(flame_cache_ref *ref, const void *data, size_t len);

/* Connects (lazily) to endpoint: "grpc://HOST[:PORT]", "grpcs://..." (TLS),
 * "grpc+tls://..."; NULL: $FLAME_CACHE_ENDPOINT, else grpc://127.0.0.1:9090.
 * opts may be NULL. */
flame_status flame_cache_connect(flame_cache **out, const char *endpoint,
                                 const flame_cache_options *opts);
void flame_cache_close(flame_cache *c);

/* PUT (opaque bytes): to a full key (update: replaces the object and its
 * patches) or to `<app>/<session>` (a new object). *ref gets the server's
 * reference (release with flame_cache_ref_clear). */
flame_status flame_cache_put(flame_cache *c, const char *key_or_prefix, const void *data,
                             size_t len, flame_cache_ref *ref);
/* PATCH: appends data as the next version of an existing object
 * (FLAME_ERR_NOT_FOUND "object <k> not found for patch"). */
flame_status flame_cache_patch(flame_cache *c, const char *key, const void *data, size_t len,
                               flame_cache_ref *ref);

/* What a fetch returns. Library-allocated; release with
 * flame_cache_object_clear. */
typedef struct flame_cache_patch_data {
    uint64_t version;
    void *data;
    size_t len;
} flame_cache_patch_data;

typedef struct flame_cache_object {
    uint64_t version;        /* the server's version (0 when not modified) */
    int not_modified;        /* 1: known_version is current, nothing else is set */
    int has_base;            /* 0: only the patches after known_version came */
    uint64_t base_version;
    void *base;
    size_t base_len;
    flame_cache_patch_data *patches;
    size_t n_patches;
} flame_cache_object;

void flame_cache_object_clear(flame_cache_object *obj);

/* GET: DoGet `<key>:<known_version>`. known_version 0: the full object; the
 * current version: not modified; an older one: the patches after it when
 * the server can send only those, else the full object. */
flame_status flame_cache_fetch(flame_cache *c, const char *key, uint64_t known_version,
                               flame_cache_object *out);
/* DELETE: a full key, `<app>/<session>`, or `<app>/` then `*` (every
 * session). */
flame_status flame_cache_delete(flame_cache *c, const char *pattern);

/* What Flame's grpc:// downloader does: DoGet `<key>:0` and every data
 * value concatenated (base then patches) into *data (malloc'ed, free()).
 * url_or_endpoint: "grpc(s)://HOST[:PORT]/<key>" with key NULL, or an
 * endpoint with key given. ca_file: TLS roots for grpcs (NULL:
 * $FLAME_CA_FILE, else the system's). */
flame_status flame_cache_get(const char *url_or_endpoint, const char *key, const char *ca_file,
                             void **data, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
