/* The progress bar of flmping (and anything else that counts to a total):
 * "[#####.....]  512/1,000  51%  1,234/s  ETA 0:03" on stderr, redrawn in place. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "table.h"

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void cli_progress_start(cli_progress *p, uint64_t total)
{
    p->on = isatty(STDERR_FILENO);
    p->total = total;
    p->start_ms = cli_now_ms();
    p->last_draw_ms = 0;
    p->drawn = 0;
}

static void format_eta(char *buf, size_t n, double secs)
{
    if (secs < 0 || secs > 359999) {
        snprintf(buf, n, "-");
        return;
    }
    unsigned s = (unsigned)(secs + 0.5);
    if (s >= 3600)
        snprintf(buf, n, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, n, "%u:%02u", s / 60, s % 60);
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
    if (!p->on || !p->total)
        return;
    double now = cli_now_ms();
    if (done < p->total && now - p->last_draw_ms < 100)
        return;
    p->last_draw_ms = now;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    uint64_t fill = done >= p->total ? WIDTH : done * WIDTH / p->total;
    for (int i = 0; i < WIDTH; i++)
        bar[i] = (uint64_t)i < fill ? '#' : '.';
    bar[WIDTH] = 0;
    double secs = (now - p->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    char d[32], t[32], r[32], eta[32];
    cli_human_count(d, sizeof d, done);
    cli_human_count(t, sizeof t, p->total);
    cli_human_count(r, sizeof r, (uint64_t)(rate + 0.5));
    format_eta(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    fprintf(stderr, "\r[%s] %s/%s %3u%% %s tasks/s ETA %s\033[K", bar, d, t,
            (unsigned)(done * 100 / p->total), r, eta);
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_done(cli_progress *p)
{
    if (p->on && p->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    p->drawn = 0;
}
