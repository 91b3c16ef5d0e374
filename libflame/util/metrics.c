/* The metrics registry and its text exposition (metrics.h).
 *
 * Threads and locks: `mu` guards the families, their series lists and the
 * collectors; series values are atomics updated without it (relaxed: a
 * scrape needs each value, not an order between them). */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct fl_series {
    char *labels;                 /* rendered: k="v",k2="v2" (escaped), or "" */
    _Atomic uint64_t value;       /* counter: the count; gauge: a double's bits */
    _Atomic uint64_t count;       /* histogram: observations */
    _Atomic uint64_t sum;         /* histogram: a double's bits */
    _Atomic uint64_t *buckets;    /* histogram: per bound, +Inf last (not cumulative) */
    const double *bounds;         /* histogram: its family's */
    size_t nbounds;
    struct fl_series *next;
};

typedef struct family {
    char *name, *help;
    enum kind kind;
    double *bounds;
    size_t nbounds;
    fl_map series;                /* labels -> fl_series */
    fl_series *first, *last;
    struct family *next;
} family;

typedef struct collector {
    void (*fn)(void *);
    void *ctx;
    struct collector *next;
} collector;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static fl_map families;
static family *first_family, *last_family;
static collector *collectors;

const double fl_metrics_latency_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                              10, 30, 60 };
const size_t fl_metrics_latency_nbuckets = FL_ARRAY_LEN(fl_metrics_latency_buckets);

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double d)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void fl_metrics_escape(fl_buf *out, const char *s, int label_value)
{
    for (; *s; s++) {
        if (*s == '\\')
            fl_buf_add(out, "\\\\", 2);
        else if (*s == '\n')
            fl_buf_add(out, "\\n", 2);
        else if (*s == '"' && label_value)
            fl_buf_add(out, "\\\"", 2);
        else
            fl_buf_add(out, s, 1);
    }
}

static family *family_get(const char *name, const char *help, enum kind kind,
                          const double *bounds, size_t nbounds)
{
    family *f = fl_map_get(&families, name);
    if (f) {
        if (f->kind != kind) {
            fprintf(stderr, "flame: metric %s registered with two types\n", name);
            abort();
        }
        return f;
    }
    f = fl_calloc(1, sizeof *f);
    f->name = fl_strdup(name);
    f->help = fl_strdup(help);
    f->kind = kind;
    if (kind == HISTOGRAM) {
        f->bounds = fl_memdup(bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    fl_map_put(&families, name, f);
    if (last_family)
        last_family->next = f;
    else
        first_family = f;
    last_family = f;
    return f;
}

static fl_series *series_get(enum kind kind, const char *name, const char *help,
                             const double *bounds, size_t nbounds, va_list ap)
{
    fl_buf lb = { 0 };
    fl_buf_add(&lb, "", 0);
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        fl_buf_printf(&lb, "%s%s=\"", lb.len ? "," : "", k);
        fl_metrics_escape(&lb, v ? v : "", 1);
        fl_buf_add(&lb, "\"", 1);
    }
    char *labels = fl_buf_detach(&lb);
    pthread_mutex_lock(&mu);
    family *f = family_get(name, help, kind, bounds, nbounds);
    fl_series *s = fl_map_get(&f->series, labels);
    if (s) {
        free(labels);
    } else {
        s = fl_calloc(1, sizeof *s);
        s->labels = labels;
        if (kind == HISTOGRAM) {
            s->buckets = fl_calloc(f->nbounds + 1, sizeof *s->buckets);
            s->bounds = f->bounds;
            s->nbounds = f->nbounds;
        }
        fl_map_put(&f->series, labels, s);
        if (f->last)
            f->last->next = s;
        else
            f->first = s;
        f->last = s;
    }
    pthread_mutex_unlock(&mu);
    return s;
}

fl_series *fl_counter(const char *name, const char *help, ...)
{
    va_list ap;
    va_start(ap, help);
    fl_series *s = series_get(COUNTER, name, help, NULL, 0, ap);
    va_end(ap);
    return s;
}

fl_series *fl_gauge(const char *name, const char *help, ...)
{
    va_list ap;
    va_start(ap, help);
    fl_series *s = series_get(GAUGE, name, help, NULL, 0, ap);
    va_end(ap);
    return s;
}

fl_series *fl_histogram(const char *name, const char *help, const double *bounds,
                        size_t nbounds, ...)
{
    va_list ap;
    va_start(ap, nbounds);
    fl_series *s = series_get(HISTOGRAM, name, help, bounds, nbounds, ap);
    va_end(ap);
    return s;
}

void fl_counter_add(fl_series *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void fl_gauge_set(fl_series *s, double v)
{
    atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void fl_gauge_add(fl_series *s, double delta)
{
    atomic_add_double(&s->value, delta);
}

void fl_histogram_observe(fl_series *s, double v)
{
    size_t i = 0;
    while (i < s->nbounds && v > s->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void fl_metrics_on_collect(void (*fn)(void *), void *ctx)
{
    collector *c = fl_calloc(1, sizeof *c);
    c->fn = fn;
    c->ctx = ctx;
    pthread_mutex_lock(&mu);
    c->next = collectors;
    collectors = c;
    pthread_mutex_unlock(&mu);
}

/* A sample value: Prometheus spells the infinities and NaN its own way. */
static void put_double(fl_buf *out, double v)
{
    if (isnan(v))
        fl_buf_printf(out, "NaN");
    else if (isinf(v))
        fl_buf_printf(out, v > 0 ? "+Inf" : "-Inf");
    else
        fl_buf_printf(out, "%.15g", v);
}

/* name{labels[,extra]} */
static void put_name(fl_buf *out, const char *name, const char *suffix, const char *labels,
                     const char *extra)
{
    fl_buf_printf(out, "%s%s", name, suffix);
    if (*labels || extra)
        fl_buf_printf(out, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
    fl_buf_add(out, " ", 1);
}

static void render_histogram(fl_buf *out, const family *f, fl_series *s)
{
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i <= f->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < f->nbounds)
            snprintf(le, sizeof le, "le=\"%.15g\"", f->bounds[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        put_name(out, f->name, "_bucket", s->labels, le);
        fl_buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    put_name(out, f->name, "_sum", s->labels, NULL);
    put_double(out, bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed)));
    fl_buf_add(out, "\n", 1);
    /* _count equals the +Inf bucket as read here (observations racing the
     * scrape would otherwise make them differ) */
    put_name(out, f->name, "_count", s->labels, NULL);
    fl_buf_printf(out, "%llu\n", (unsigned long long)cum);
}

void fl_metrics_render(fl_buf *out)
{
    static const char *types[] = { "counter", "gauge", "histogram" };
    pthread_mutex_lock(&mu);
    collector *cs = collectors;
    pthread_mutex_unlock(&mu);
    /* collectors update series (and may create them): without the lock */
    for (collector *c = cs; c; c = c->next)
        c->fn(c->ctx);
    pthread_mutex_lock(&mu);
    for (family *f = first_family; f; f = f->next) {
        fl_buf_printf(out, "# HELP %s ", f->name);
        fl_metrics_escape(out, f->help, 0);
        fl_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->kind]);
        for (fl_series *s = f->first; s; s = s->next) {
            if (f->kind == HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            put_name(out, f->name, "", s->labels, NULL);
            uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
            if (f->kind == COUNTER)
                fl_buf_printf(out, "%llu", (unsigned long long)v);
            else
                put_double(out, bitsd(v));
            fl_buf_add(out, "\n", 1);
        }
    }
    pthread_mutex_unlock(&mu);
}
