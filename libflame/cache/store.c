/* The object cache's store (see store.h): an index of objects by key, an
 * LRU list of the loaded ones, and the fs:// copy. Disk writes go to a
 * temporary file renamed into place, so a crash leaves the old object or
 * the new one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/store.h"
#include "util/util.h"

struct cache_store {
    cache_store_options o;
    char *root;
    fl_map index;            /* key -> cache_obj */
    cache_obj *head, *tail;  /* LRU, loaded objects only */
    uint64_t memory;
    size_t loaded;
};

void cache_payload_clear(cache_payload *p)
{
    ipc_msg_clear(&p->schema);
    for (size_t i = 0; i < p->n_msgs; i++)
        ipc_msg_clear(&p->msgs[i]);
    free(p->msgs);
    free(p->data);
    free(p->data_type);
    *p = (cache_payload){ 0 };
}

static uint64_t payload_size(const cache_payload *p)
{
    uint64_t n = p->len + p->schema.header_len;
    for (size_t i = 0; i < p->n_msgs; i++)
        n += p->msgs[i].header_len + p->msgs[i].body_len;
    return n;
}

flame_status cache_error_wrap(flame_status st, const char *prefix)
{
    char why[512];
    snprintf(why, sizeof why, "%s", flame_error_last());
    return fl_error(st, "%s: %s", prefix, why);
}

/* ---- keys --------------------------------------------------------------- */

int cache_key_kind(const char *key, const char **why)
{
    const char *parts[4];
    size_t lens[4], n = 0;
    const char *p = key;
    *why = NULL;
    if (!key || !*key)
        return *why = "empty key", 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 3)
            return *why = "expected <app>/<session>[/<object>]", 0;
        parts[n] = p;
        lens[n++] = len;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (n < 2)
        return *why = "expected <app>/<session>[/<object>]", 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0)
            return *why = "empty key part", 0;
        if (memmem(parts[i], lens[i], "..", 2) || memchr(parts[i], '\\', lens[i]))
            return *why = "key parts must not contain \"..\" or \"\\\"", 0;
        if (lens[i] == 1 && parts[i][0] == '.')
            return *why = "key parts must not be \".\"", 0;
        for (size_t j = 0; j < lens[i]; j++)
            if ((unsigned char)parts[i][j] < 0x20 || parts[i][j] == 0x7f)
                return *why = "key parts must not contain control characters", 0;
        bool star = memchr(parts[i], '*', lens[i]) != NULL;
        if (star && !(i == 1 && n == 2 && lens[i] == 1))
            return *why = "\"*\" is allowed only as the whole session part, without an object", 0;
    }
    if (n == 3)
        return CACHE_KEY_FULL;
    return parts[1][0] == '*' ? CACHE_KEY_ALL : CACHE_KEY_PREFIX;
}

/* ---- paths and files ------------------------------------------------------ */

char *cache_storage_root(const char *storage)
{
    if (!storage || !*storage || strcmp(storage, "none") == 0)
        return NULL;
    const char *p = storage;
    if (strncmp(p, "fs://", 5) == 0)
        p += 5;
    else if (strncmp(p, "file://", 7) == 0)
        p += 7;
    if (*p == '/')
        return fl_strdup(p);
    const char *home = getenv("FLAME_HOME");
    return fl_sprintf("%s/%s", home && *home ? home : "/var/lib/flame", p);
}

static char *obj_path(const cache_store *s, const char *key)
{
    return fl_sprintf("%s/%s.arrow", s->root, key);
}

static char *delta_path(const cache_store *s, const char *key, size_t n)
{
    return n == (size_t)-1 ? fl_sprintf("%s/%s.deltas", s->root, key)
                           : fl_sprintf("%s/%s.deltas/%zu.arrow", s->root, key, n);
}

static char *type_path(const cache_store *s, const char *key)
{
    return fl_sprintf("%s/%s.type", s->root, key);
}

static flame_status mkdirs(const char *path) /* every parent of path */
{
    char *d = fl_strdup(path);
    for (char *p = d + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(d, 0755) != 0 && errno != EEXIST) {
            flame_status st = fl_error(FLAME_ERR_IO, "cache: mkdir %s: %s", d, strerror(errno));
            free(d);
            return st;
        }
        *p = '/';
    }
    free(d);
    return FLAME_OK;
}

static flame_status write_file(const char *path, const fb_builder *b)
{
    flame_status st = mkdirs(path);
    if (st)
        return st;
    char *tmp = fl_sprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t off = 0;
    while (fd >= 0 && off < b->len) {
        ssize_t w = write(fd, b->b + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (fd < 0 || off < b->len || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        st = fl_error(FLAME_ERR_IO, "cache: write %s: %s", path, strerror(errno));
        if (fd >= 0 && off < b->len)
            close(fd);
        unlink(tmp);
    }
    free(tmp);
    return st;
}

static flame_status read_file(const char *path, uint64_t max, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        flame_status st = errno == ENOENT ? FLAME_ERR_NOT_FOUND : FLAME_ERR_IO;
        st = fl_error(st, "cache: %s: %s", path, fd < 0 ? strerror(errno) : "not a file");
        if (fd >= 0)
            close(fd);
        return st;
    }
    if ((uint64_t)sb.st_size > max) {
        close(fd);
        return fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "cache: %s: larger than %llu bytes", path,
                        (unsigned long long)max);
    }
    uint8_t *b = fl_malloc((size_t)sb.st_size + 1);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, b + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *out = b;
    *len = got;
    return FLAME_OK;
}

#define CACHE_MAX_DATA_TYPE 256

/* Flame 0.7's data_type of key from `<obj>.type` (NULL: none, "raw"). */
static char *read_type(const cache_store *s, const char *key)
{
    char *path = type_path(s, key);
    uint8_t *b = NULL;
    size_t len = 0;
    char *t = NULL;
    if (read_file(path, CACHE_MAX_DATA_TYPE, &b, &len) == FLAME_OK)
        t = fl_strndup((const char *)b, len);
    free(b);
    free(path);
    return t;
}

/* Writes `<obj>.type` for a type other than "raw", removes it otherwise. */
static flame_status write_type(const cache_store *s, const char *key, const char *type)
{
    char *path = type_path(s, key);
    flame_status st = FLAME_OK;
    if (type && strcmp(type, "raw") != 0) {
        fb_builder b = { (uint8_t *)type, strlen(type), 0 };
        st = write_file(path, &b);
    } else {
        unlink(path);
    }
    free(path);
    return st;
}

static int64_t mtime_ms(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fl_now_ms();
    return (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
}

/* An opaque value as a one-row file (version, data), ZSTD bodies. */
static flame_status write_opaque(const char *path, uint64_t version, const uint8_t *data,
                                 size_t len)
{
    fb_builder schema = { 0 }, file = { 0 };
    ipc_msg m;
    ipc_opaque_schema(&schema, false);
    ipc_opaque_batch(&m, version, NULL, data, len, true);
    ipc_file_write(&file, schema.b, schema.len, &m, 1);
    flame_status st = write_file(path, &file);
    fbb_free(&schema);
    fbb_free(&file);
    ipc_msg_clear(&m);
    return st;
}

static flame_status write_native(const char *path, const cache_payload *p, uint64_t version)
{
    size_t n;
    uint8_t *schema = ipc_schema_with_version(p->schema.header, p->schema.header_len, version, &n);
    if (!schema)
        return fl_error(FLAME_ERR_INTERNAL, "cache: bad stored schema");
    fb_builder file = { 0 };
    ipc_file_write(&file, schema, n, p->msgs, p->n_msgs);
    flame_status st = write_file(path, &file);
    fbb_free(&file);
    free(schema);
    return st;
}

/* Reads an IPC file into a payload; *version: the stored version (0 when
 * the file does not say: a client wrote it). */
static flame_status read_payload(const char *path, uint64_t max, cache_payload *p,
                                 uint64_t *version)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    flame_status st = read_file(path, max + (1u << 20), &buf, &len);
    if (st)
        return st;
    ipc_msg schema, *msgs;
    size_t n;
    st = ipc_file_read(buf, len, max + (1u << 20), &schema, &msgs, &n);
    free(buf);
    if (st)
        return cache_error_wrap(st, path);
    ipc_schema_info si;
    *p = (cache_payload){ 0 };
    *version = 0;
    if ((st = ipc_schema_parse(schema.header, schema.header_len, &si))) {
        st = cache_error_wrap(st, path);
    } else if (si.native) {
        *p = (cache_payload){ true, schema, msgs, n, NULL, 0 };
        *version = si.version;
        return FLAME_OK;
    } else {
        fb_builder data = { 0 };
        bool has = false;
        for (size_t i = 0; i < n && !st; i++) {
            int64_t bl;
            if (ipc_message_type(msgs[i].header, msgs[i].header_len, &bl) == IPC_RECORD_BATCH)
                st = ipc_opaque_rows(&si, &msgs[i], max, &data, &has, version);
        }
        if (st)
            st = cache_error_wrap(st, path);
        p->data = data.b;
        p->len = data.len;
    }
    ipc_msg_clear(&schema);
    for (size_t i = 0; i < n; i++)
        ipc_msg_clear(&msgs[i]);
    free(msgs);
    if (st)
        cache_payload_clear(p);
    return st;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the index and LRU ------------------------------------------------- */

static void lru_unlink(cache_store *s, cache_obj *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else if (s->head == o)
        s->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else if (s->tail == o)
        s->tail = o->prev;
    o->prev = o->next = NULL;
}

static void lru_front(cache_store *s, cache_obj *o)
{
    lru_unlink(s, o);
    o->next = s->head;
    if (s->head)
        s->head->prev = o;
    s->head = o;
    if (!s->tail)
        s->tail = o;
}

static void unload(cache_store *s, cache_obj *o)
{
    if (!o->loaded)
        return;
    lru_unlink(s, o);
    cache_payload_clear(&o->base); /* o->data_type stays: listings need it */
    for (size_t i = 0; i < o->n_deltas; i++)
        free(o->deltas[i].data);
    free(o->deltas);
    o->deltas = NULL;
    s->memory -= o->size;
    s->loaded--;
    o->loaded = false;
}

static void obj_free(cache_store *s, cache_obj *o)
{
    unload(s, o);
    free(o->key);
    free(o->data_type);
    free(o);
}

static void forget(cache_store *s, cache_obj *o)
{
    fl_map_del(&s->index, o->key);
    obj_free(s, o);
}

/* Keeps memory within the limits, dropping the least recently used first
 * (never keep: the object being served). Without a disk copy an evicted
 * object is gone, as in Flame's memory-only cache. */
static void evict(cache_store *s, cache_obj *keep)
{
    if (!s->o.lru)
        return;
    while (s->tail && (s->memory > s->o.max_memory ||
                       (s->o.max_objects && s->loaded > s->o.max_objects))) {
        cache_obj *o = s->tail;
        if (o == keep) {
            if (!o->prev)
                return;
            o = o->prev;
        }
        if (s->root) {
            unload(s, o);
        } else {
            fl_log(FL_LOG_WARN, "cache", "evicted %s (memory only: the object is gone)", o->key);
            forget(s, o);
        }
    }
}

static void account(cache_store *s, cache_obj *o)
{
    uint64_t size = payload_size(&o->base);
    for (size_t i = 0; i < o->n_deltas; i++)
        size += o->deltas[i].len;
    if (o->loaded)
        s->memory -= o->size;
    else
        s->loaded++;
    o->size = size;
    o->loaded = true;
    s->memory += size;
    lru_front(s, o);
}

/* Loads key's files; a new or existing (unloaded) object. */
static cache_obj *load(cache_store *s, const char *key, cache_obj *o)
{
    if (!s->root) {
        fl_error(FLAME_ERR_NOT_FOUND, "object %s not found", key);
        return NULL;
    }
    char *path = obj_path(s, key);
    cache_payload p;
    uint64_t version;
    flame_status st = read_payload(path, s->o.max_object, &p, &version);
    int64_t created = st ? 0 : mtime_ms(path);
    free(path);
    if (st) {
        if (st == FLAME_ERR_NOT_FOUND)
            fl_error(FLAME_ERR_NOT_FOUND, "object %s not found", key);
        return NULL;
    }
    cache_delta *deltas = NULL;
    size_t n = 0;
    uint64_t total = p.len;
    for (; !p.native && n < CACHE_MAX_DELTAS; n++) {
        char *dp = delta_path(s, key, n);
        cache_payload d;
        uint64_t dv;
        st = read_payload(dp, s->o.max_object, &d, &dv);
        free(dp);
        if (st == FLAME_ERR_NOT_FOUND)
            break;
        if (!st && (d.native || total + d.len > s->o.max_object)) {
            cache_payload_clear(&d);
            st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "cache: %s: bad delta %zu", key, n);
        }
        if (st) {
            fl_log(FL_LOG_WARN, "cache", "%s", flame_error_last());
            break;
        }
        total += d.len;
        deltas = fl_realloc(deltas, (n + 1) * sizeof *deltas);
        deltas[n] = (cache_delta){ dv, d.data, d.len };
        d.data = NULL;
        cache_payload_clear(&d);
    }
    bool fresh = !o;
    if (fresh) {
        o = fl_calloc(1, sizeof *o);
        o->key = fl_strdup(key);
        fl_map_put(&s->index, key, o);
    }
    o->native = p.native;
    o->base = p;
    free(o->data_type);
    o->data_type = read_type(s, key);
    o->created_ms = created;
    o->base_version = version ? version : 1;
    o->version = o->base_version;
    o->deltas = deltas;
    o->n_deltas = n;
    for (size_t i = 0; i < n; i++) {
        if (!deltas[i].version) /* written without one: after the previous */
            deltas[i].version = o->version + 1;
        o->version = deltas[i].version > o->version ? deltas[i].version : o->version;
    }
    account(s, o);
    return o;
}

/* ---- operations ------------------------------------------------------------ */

cache_obj *cache_store_get(cache_store *s, const char *key)
{
    cache_obj *o = fl_map_get(&s->index, key);
    if (o && o->loaded) {
        lru_front(s, o);
        return o;
    }
    o = load(s, key, o);
    if (o)
        evict(s, o);
    return o;
}

flame_status cache_store_put(cache_store *s, const char *key, cache_payload *p,
                             uint64_t *version)
{
    cache_obj *o = fl_map_get(&s->index, key);
    if (!o && s->root) /* a file a client wrote: its version counts */
        o = cache_store_get(s, key);
    uint64_t v = (o ? o->version : 0) + 1;
    if (s->root) {
        char *path = obj_path(s, key);
        flame_status st = p->native ? write_native(path, p, v)
                                    : write_opaque(path, v, p->data, p->len);
        free(path);
        if (!st)
            st = write_type(s, key, p->data_type);
        if (st) {
            cache_payload_clear(p);
            return st;
        }
        char *dd = delta_path(s, key, (size_t)-1);
        rm_rf(dd);
        free(dd);
    }
    if (!o) {
        o = fl_calloc(1, sizeof *o);
        o->key = fl_strdup(key);
        fl_map_put(&s->index, key, o);
    }
    unload(s, o);
    o->native = p->native;
    free(o->data_type);
    o->data_type = p->data_type;
    p->data_type = NULL;
    o->created_ms = fl_now_ms();
    o->base = *p;
    *p = (cache_payload){ 0 };
    o->base_version = o->version = v;
    o->n_deltas = 0;
    account(s, o);
    evict(s, o);
    *version = v;
    return FLAME_OK;
}

flame_status cache_store_patch(cache_store *s, const char *key, cache_payload *p,
                               uint64_t *version)
{
    cache_obj *o = cache_store_get(s, key);
    flame_status st = FLAME_OK;
    if (!o)
        st = fl_error(FLAME_ERR_NOT_FOUND, "object %s not found for patch", key);
    else if (o->native || p->native)
        st = fl_error(FLAME_ERR_INVALID_ARGUMENT, "object %s: native Arrow tables cannot be "
                      "patched", key);
    else if (o->n_deltas >= CACHE_MAX_DELTAS)
        st = fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "object %s has %d patches, the most; "
                      "update it to start over", key, CACHE_MAX_DELTAS);
    else if (o->size + p->len > s->o.max_object)
        st = fl_error(FLAME_ERR_RESOURCE_EXHAUSTED, "object %s would be larger than %llu bytes",
                      key, (unsigned long long)s->o.max_object);
    uint64_t v = o ? o->version + 1 : 0;
    if (!st && s->root) {
        char *path = delta_path(s, key, o->n_deltas);
        st = write_opaque(path, v, p->data, p->len);
        free(path);
    }
    if (st) {
        cache_payload_clear(p);
        return st;
    }
    o->deltas = fl_realloc(o->deltas, (o->n_deltas + 1) * sizeof *o->deltas);
    o->deltas[o->n_deltas++] = (cache_delta){ v, p->data, p->len };
    p->data = NULL;
    cache_payload_clear(p);
    o->version = v;
    account(s, o);
    evict(s, o);
    *version = v;
    return FLAME_OK;
}

flame_status cache_store_delete(cache_store *s, const char *pattern)
{
    const char *why;
    int kind = cache_key_kind(pattern, &why);
    if (!kind)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "invalid key %s: %s", pattern, why);
    size_t plen = kind == CACHE_KEY_ALL ? strlen(pattern) - 1 : strlen(pattern);
    const char *k;
    void *v;
    for (size_t i = 0; fl_map_next(&s->index, &i, &k, &v);) {
        cache_obj *o = v;
        bool match = kind == CACHE_KEY_FULL ? strcmp(o->key, pattern) == 0
                   : kind == CACHE_KEY_ALL  ? strncmp(o->key, pattern, plen) == 0
                                            : strncmp(o->key, pattern, plen) == 0 &&
                                                  o->key[plen] == '/';
        if (match)
            forget(s, o);
    }
    if (s->root) {
        char *path;
        if (kind == CACHE_KEY_FULL) {
            path = obj_path(s, pattern);
            unlink(path);
            free(path);
            path = type_path(s, pattern);
            unlink(path);
            free(path);
            path = delta_path(s, pattern, (size_t)-1);
        } else {
            path = fl_sprintf("%s/%.*s", s->root, (int)(kind == CACHE_KEY_ALL ? plen - 1 : plen),
                              pattern);
        }
        rm_rf(path);
        free(path);
    }
    return FLAME_OK;
}

cache_obj *cache_store_next(cache_store *s, size_t *iter)
{
    const char *k;
    void *v;
    return fl_map_next(&s->index, iter, &k, &v) ? v : NULL;
}

uint64_t cache_store_memory(const cache_store *s)
{
    return s->memory;
}

size_t cache_store_loaded(const cache_store *s)
{
    return s->loaded;
}

/* ---- open: load everything ------------------------------------------------ */

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void load_session(cache_store *s, const char *app, const char *ssn)
{
    char *dir = fl_sprintf("%s/%s/%s", s->root, app, ssn);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 6 || strcmp(e->d_name + n - 6, ".arrow") != 0)
            continue;
        char *key = fl_sprintf("%s/%s/%.*s", app, ssn, (int)(n - 6), e->d_name);
        const char *why;
        if (cache_key_kind(key, &why) == CACHE_KEY_FULL && !fl_map_get(&s->index, key) &&
            !cache_store_get(s, key))
            fl_log(FL_LOG_WARN, "cache", "skipped %s: %s", key, flame_error_last());
        free(key);
    }
    if (d)
        closedir(d);
    free(dir);
}

static void load_all(cache_store *s)
{
    DIR *apps = opendir(s->root);
    struct dirent *a;
    while (apps && (a = readdir(apps))) {
        if (a->d_name[0] == '.')
            continue;
        char *adir = fl_sprintf("%s/%s", s->root, a->d_name);
        DIR *ssns = is_dir(adir) ? opendir(adir) : NULL;
        struct dirent *e;
        while (ssns && (e = readdir(ssns)))
            if (e->d_name[0] != '.')
                load_session(s, a->d_name, e->d_name);
        if (ssns)
            closedir(ssns);
        free(adir);
    }
    if (apps)
        closedir(apps);
}

flame_status cache_store_open(cache_store **out, const cache_store_options *opts)
{
    cache_store *s = fl_calloc(1, sizeof *s);
    s->o = *opts;
    if (!s->o.max_memory)
        s->o.max_memory = 1ull << 30;
    if (!s->o.max_object)
        s->o.max_object = 1ull << 30;
    if (opts->root) {
        s->root = fl_strdup(opts->root);
        s->o.root = s->root;
        if (mkdir(s->root, 0755) != 0 && errno != EEXIST) {
            flame_status st = mkdirs(s->root);
            if (st || (mkdir(s->root, 0755) != 0 && errno != EEXIST)) {
                st = fl_error(FLAME_ERR_IO, "cache storage %s: %s", s->root, strerror(errno));
                cache_store_close(s);
                return st;
            }
        }
        load_all(s);
    }
    *out = s;
    return FLAME_OK;
}

void cache_store_close(cache_store *s)
{
    if (!s)
        return;
    const char *k;
    void *v;
    for (size_t i = 0; fl_map_next(&s->index, &i, &k, &v);)
        obj_free(s, v);
    fl_map_free(&s->index);
    free(s->root);
    free(s);
}
