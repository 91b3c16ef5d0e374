/* What the benchmark programs share, header only (each is one program):
 * a monotonic clock in µs and the comparison that sorts samples. */
#ifndef FLAME_BENCH_H
#define FLAME_BENCH_H

#include <time.h>

static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
