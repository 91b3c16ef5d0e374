/* The process's metrics registry: counters, gauges and histograms with
 * fixed buckets, named Prometheus-style (flame_..., units in the name), and
 * their text exposition (format 0.0.4).
 *
 * Threads and locks: one registry per process. Looking a series up or
 * creating it takes the registry's mutex (callers on a hot path keep the
 * pointer it returns: series live until exit); updating a series is one
 * relaxed atomic operation per value, never a lock, from any thread.
 * Rendering takes the mutex and reads the atomics (a scrape sees each value
 * whole, not all values at one instant). */
#ifndef FL_METRICS_H
#define FL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct fl_series fl_series;

/* Bucket bounds in seconds for latencies: 100 us .. 60 s. */
extern const double fl_metrics_latency_buckets[];
extern const size_t fl_metrics_latency_nbuckets;

/* The series of family name with the given labels: a NULL-terminated list
 * of name, value pairs (values are escaped when rendered). Created on
 * first use with help (the family's HELP line, from its first use). A name
 * used with two types is a programming error (abort with a message). */
fl_series *fl_counter(const char *name, const char *help, ...)
    __attribute__((sentinel));
fl_series *fl_gauge(const char *name, const char *help, ...) __attribute__((sentinel));
/* bounds: ascending upper bounds (+Inf is implied), the family's. */
fl_series *fl_histogram(const char *name, const char *help, const double *bounds,
                        size_t nbounds, ...) __attribute__((sentinel));

void fl_counter_add(fl_series *s, uint64_t n);
void fl_gauge_set(fl_series *s, double v);
void fl_gauge_add(fl_series *s, double delta);
void fl_histogram_observe(fl_series *s, double v);

/* Called before each rendering (process figures, snapshots); fn must not
 * register new collectors. Collectors live until exit. */
void fl_metrics_on_collect(void (*fn)(void *), void *ctx);

/* Appends the text exposition of every family, in registration order. */
void fl_metrics_render(fl_buf *out);

/* Escaping of the exposition format: label values (\\, \", \n) and HELP
 * text (\\, \n). */
void fl_metrics_escape(fl_buf *out, const char *s, int label_value);

#endif
