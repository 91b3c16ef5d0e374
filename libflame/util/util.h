/* Internal helpers shared by every module of libflame. */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/error.h"

#define FL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that never returns NULL: out of memory aborts (like git's
 * xmalloc); a daemon cannot do anything useful without memory. */
void *fl_malloc(size_t n);
void *fl_calloc(size_t n, size_t size);
void *fl_realloc(void *p, size_t n);
char *fl_strdup(const char *s);           /* NULL -> NULL */
char *fl_strndup(const char *s, size_t n);
void *fl_memdup(const void *p, size_t n); /* NULL or 0 -> NULL */
char *fl_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sets the thread-local last error and returns status. */
flame_status fl_error(flame_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
flame_status fl_verror(flame_status status, const char *fmt, va_list ap);

/* Wall clock in Unix milliseconds; monotonic clock in ns. */
int64_t fl_now_ms(void);
int64_t fl_mono_ns(void);

/* Logging to stderr: "<time> <level> <module>: message". */
enum { FL_LOG_DEBUG, FL_LOG_INFO, FL_LOG_WARN, FL_LOG_ERROR };
void fl_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fl_log_set_level(int level);

/* A growable byte buffer. */
typedef struct fl_buf {
    char *data;
    size_t len, cap;
} fl_buf;
void fl_buf_add(fl_buf *b, const void *data, size_t len);
void fl_buf_printf(fl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *fl_buf_detach(fl_buf *b); /* NUL-terminated; buffer reset */
void fl_buf_free(fl_buf *b);

/* A small file's whole text (a PEM, a token), NUL-terminated and malloc'd
 * ("" for an empty file). NULL, with nothing logged, when it cannot be
 * opened or read or holds FL_SMALL_FILE_MAX bytes or more. */
#define FL_SMALL_FILE_MAX (1u << 20)
char *fl_read_small_file(const char *path);

/* A string-keyed hash map (open addressing). Keys are copied; values are
 * the caller's. */
typedef struct fl_map {
    struct fl_map_slot *slots;
    size_t cap, len, tomb;
} fl_map;
void *fl_map_get(const fl_map *m, const char *key);
void fl_map_put(fl_map *m, const char *key, void *value); /* replaces */
void *fl_map_del(fl_map *m, const char *key);             /* returns old value */
void fl_map_free(fl_map *m);
/* Iteration: for (size_t i = 0; fl_map_next(m, &i, &k, &v);) */
bool fl_map_next(const fl_map *m, size_t *iter, const char **key, void **value);

/* Name validation shared by applications and session ids: at most 253
 * chars of [A-Za-z0-9._-], no leading '.' or '-', no "..". */
bool fl_name_valid(const char *name, const char **why);

#endif
