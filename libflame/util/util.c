#include "util.h"

#include "flame/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "flame: out of memory allocating %zu bytes\n", n);
    abort();
}

void *fl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *fl_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *fl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *fl_strdup(const char *s)
{
    return s ? fl_strndup(s, strlen(s)) : NULL;
}

char *fl_strndup(const char *s, size_t n)
{
    char *d = fl_malloc(n + 1);
    if (n) /* s may be NULL then (an empty protobuf bytes field) */
        memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void *fl_memdup(const void *p, size_t n)
{
    if (!p)
        return NULL;
    void *d = fl_malloc(n);
    if (n)
        memcpy(d, p, n);
    return d;
}

char *fl_sprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = fl_malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

int64_t fl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int log_level = FL_LOG_INFO;

void fl_log_set_level(int level)
{
    log_level = level;
}

static _Atomic bool log_json;

flame_status flame_log_set_format(const char *format)
{
    if (format && strcmp(format, "json") == 0)
        log_json = true;
    else if (format && strcmp(format, "text") == 0)
        log_json = false;
    else
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "log format \"%s\": expected text or json",
                        format ? format : "");
    return FLAME_OK;
}

/* msg as a JSON string body (quotes, backslashes and control characters
 * escaped; bytes >= 0x80 pass: the message is UTF-8 or the reader copes). */
static void json_escape(char *dst, size_t size, const char *src)
{
    size_t j = 0;
    for (; *src && j + 7 < size; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch == '"' || ch == '\\') {
            dst[j++] = '\\';
            dst[j++] = (char)ch;
        } else if (ch == '\n') {
            dst[j++] = '\\';
            dst[j++] = 'n';
        } else if (ch < 0x20) {
            j += (size_t)snprintf(dst + j, size - j, "\\u%04x", ch);
        } else {
            dst[j++] = (char)ch;
        }
    }
    dst[j] = 0;
}

void fl_log(int level, const char *module, const char *fmt, ...)
{
    static const char *names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    if (level < log_level)
        return;
    char tbuf[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!log_json) {
        /* one line per event: a message's own newlines would split it */
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        fprintf(stderr, "%s %-5s %s: %s\n", tbuf, names[level], module, msg);
        return;
    }
    char emsg[sizeof msg * 6 + 8], emod[64];
    json_escape(emsg, sizeof emsg, msg);
    json_escape(emod, sizeof emod, module);
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"%s\"}\n",
            tbuf, ts.tv_nsec / 1000000, names[level], emod, emsg);
}

void fl_buf_add(fl_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = fl_realloc(b->data, cap);
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void fl_buf_printf(fl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if ((size_t)n < sizeof tmp) {
        fl_buf_add(b, tmp, (size_t)n);
    } else {
        char *s = fl_malloc((size_t)n + 1);
        vsnprintf(s, (size_t)n + 1, fmt, ap2);
        fl_buf_add(b, s, (size_t)n);
        free(s);
    }
    va_end(ap2);
}

char *fl_buf_detach(fl_buf *b)
{
    if (!b->data)
        fl_buf_add(b, "", 0);
    char *s = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void fl_buf_free(fl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- files -------------------------------------------------------------- */

char *fl_read_small_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fl_buf b = { 0 };
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < FL_SMALL_FILE_MAX)
        fl_buf_add(&b, chunk, n);
    bool bad = ferror(f) || b.len >= FL_SMALL_FILE_MAX;
    fclose(f);
    if (bad) {
        fl_buf_free(&b);
        return NULL;
    }
    return fl_buf_detach(&b);
}

/* ---- map ---------------------------------------------------------------- */

struct fl_map_slot {
    char *key; /* NULL: empty; TOMB: deleted */
    void *value;
    uint64_t hash;
};

static char tomb_marker;
#define TOMB (&tomb_marker)

static uint64_t hash_str(const char *s)
{
    /* 8 bytes at a time, then a final mix (keys are ids and names) */
    size_t n = strlen(s);
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    return h;
}

static struct fl_map_slot *find(const fl_map *m, const char *key, uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct fl_map_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
            return s;
    }
}

static void grow(fl_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->len * 2 < m->cap)
        ncap = m->cap; /* only tombstones: rehash in place size */
    struct fl_map_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = fl_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    m->tomb = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].key || old[i].key == TOMB)
            continue;
        size_t mask = ncap - 1;
        size_t j = old[i].hash & mask;
        while (m->slots[j].key)
            j = (j + 1) & mask;
        m->slots[j] = old[i];
    }
    free(old);
}

void *fl_map_get(const fl_map *m, const char *key)
{
    struct fl_map_slot *s = find(m, key, hash_str(key));
    return s ? s->value : NULL;
}

void fl_map_put(fl_map *m, const char *key, void *value)
{
    uint64_t h = hash_str(key);
    struct fl_map_slot *s = find(m, key, h);
    if (s) {
        s->value = value;
        return;
    }
    if ((m->len + m->tomb + 1) * 4 >= m->cap * 3)
        grow(m);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (m->slots[i].key == TOMB)
        m->tomb--;
    m->slots[i].key = fl_strdup(key);
    m->slots[i].value = value;
    m->slots[i].hash = h;
    m->len++;
}

void *fl_map_del(fl_map *m, const char *key)
{
    struct fl_map_slot *s = find(m, key, hash_str(key));
    if (!s)
        return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->len--;
    m->tomb++;
    return v;
}

void fl_map_free(fl_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = m->tomb = 0;
}

bool fl_map_next(const fl_map *m, size_t *iter, const char **key, void **value)
{
    for (; *iter < m->cap; (*iter)++) {
        struct fl_map_slot *s = &m->slots[*iter];
        if (s->key && s->key != TOMB) {
            if (key)
                *key = s->key;
            if (value)
                *value = s->value;
            (*iter)++;
            return true;
        }
    }
    return false;
}

bool fl_name_valid(const char *name, const char **why)
{
    const char *w = NULL;
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        w = "is empty";
    else if (n > 253)
        w = "is longer than 253 characters";
    else if (name[0] == '.' || name[0] == '-')
        w = "starts with '.' or '-'";
    else if (strstr(name, ".."))
        w = "contains \"..\"";
    else
        for (size_t i = 0; i < n; i++) {
            char c = name[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-')) {
                w = "has a character outside [A-Za-z0-9._-]";
                break;
            }
        }
    if (why)
        *why = w;
    return w == NULL;
}
