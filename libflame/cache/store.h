/* The object cache's store: objects by key `<app>/<ssn>/<obj>`, their
 * versions and deltas, the fs:// copy in Flame's layout
 * (`<root>/<app>/<ssn>/<obj>.arrow`, `<obj>.deltas/<n>.arrow`, Arrow IPC
 * file format) and LRU eviction from memory.
 *
 * Threads: none of its own; one thread (the cache server's) uses it. */
#ifndef FL_CACHE_STORE_H
#define FL_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/ipc.h"
#include "flame/error.h"

#define CACHE_MAX_DELTAS 1000

typedef struct cache_delta {
    uint64_t version;
    uint8_t *data;
    size_t len;
} cache_delta;

/* What a PUT or PATCH brings (the store takes it over). */
typedef struct cache_payload {
    bool native;
    ipc_msg schema;        /* native: the schema message as sent */
    ipc_msg *msgs;         /* native: the batches, verbatim */
    size_t n_msgs;
    uint8_t *data;         /* opaque: every data value, concatenated */
    size_t len;
    char *data_type;       /* PUT: Flame 0.7's data_type (malloc'ed); NULL: "raw" */
} cache_payload;

void cache_payload_clear(cache_payload *p);

typedef struct cache_obj {
    char *key;
    uint64_t version;      /* max(base, deltas) */
    uint64_t base_version;
    uint64_t size;         /* bytes of data and messages */
    size_t n_deltas;
    bool native;
    bool loaded;           /* the data below is in memory */
    char *data_type;       /* Flame 0.7's client-defined type; NULL: "raw" (kept unloaded) */
    int64_t created_ms;    /* Unix ms of the last PUT (loaded from disk: the file's mtime) */
    cache_payload base;
    cache_delta *deltas;
    struct cache_obj *prev, *next; /* LRU list, most recent first (loaded only) */
} cache_obj;

typedef struct cache_store cache_store;

typedef struct cache_store_options {
    const char *root;        /* directory of the fs store; NULL: memory only */
    bool lru;                /* evict; false: policy none */
    uint64_t max_memory;     /* bytes of loaded objects */
    uint64_t max_objects;    /* loaded objects; 0: no limit */
    uint64_t max_object;     /* bytes of one object (base and deltas) */
} cache_store_options;

/* Resolves Flame's storage setting (none/empty: NULL; fs:// or file://
 * URL or a path; relative: under $FLAME_HOME, default /var/lib/flame) into
 * a malloc'ed directory, or NULL for memory only. */
char *cache_storage_root(const char *storage);

/* Opens the store and loads every object under root. */
flame_status cache_store_open(cache_store **out, const cache_store_options *opts);
void cache_store_close(cache_store *s);

/* Key kinds for cache_key_check. */
enum { CACHE_KEY_FULL = 1, CACHE_KEY_PREFIX = 2, CACHE_KEY_ALL = 4 };
/* Which kind key is (CACHE_KEY_*), or 0 with *why set when it breaks
 * Flame's rules (parts non-empty, no "..", "\\", control characters; "*"
 * only as the whole session part without an object). */
int cache_key_kind(const char *key, const char **why);

/* PUT: replaces the base, drops the deltas; *version = current + 1. The
 * payload is taken over (cleared) whatever the outcome. Its data_type
 * (Flame 0.7's) becomes the object's; with an fs store a type other than
 * "raw" is kept beside the object in `<obj>.type`. */
flame_status cache_store_put(cache_store *s, const char *key, cache_payload *p,
                             uint64_t *version);
/* PATCH: appends an opaque delta at current + 1. NOT_FOUND "object <k> not
 * found for patch". */
flame_status cache_store_patch(cache_store *s, const char *key, cache_payload *p,
                               uint64_t *version);
/* The object, loaded (from disk on a miss, also files written there by
 * clients); NULL: FLAME_ERR_NOT_FOUND or a read error (flame_error_last).
 * Valid until the next call that changes the store. */
cache_obj *cache_store_get(cache_store *s, const char *key);
/* A full key, an `<app>/<ssn>` prefix or `<app>/` then `*` (all sessions):
 * memory and disk. */
flame_status cache_store_delete(cache_store *s, const char *pattern);
/* Iteration over every known object: for (size_t i = 0; (o = cache_store_next(s, &i));) */
cache_obj *cache_store_next(cache_store *s, size_t *iter);

/* Sets the last error to "<prefix>: <the last error>" and returns st (the
 * last error is copied first: fl_error writes into the same buffer). */
flame_status cache_error_wrap(flame_status st, const char *prefix);

/* Memory accounting (tests, logs). */
uint64_t cache_store_memory(const cache_store *s);
size_t cache_store_loaded(const cache_store *s);

#endif
