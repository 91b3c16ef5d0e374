#include "table.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_table_init(cli_table *t, size_t ncols, const char *const *header)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    cli_table_row(t, header);
}

void cli_table_row(cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
        if (!t->cells)
            abort();
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = strdup(cells[i] ? cells[i] : "");
    t->nrows++;
}

void cli_table_print(const cli_table *t)
{
    size_t *w = calloc(t->ncols, sizeof *w);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t l = strlen(t->cells[r * t->ncols + c]);
            if (l > w[c])
                w[c] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                printf("%s", s);
            else
                printf("%-*s  ", (int)w[c], s);
        }
        printf("\n");
    }
    free(w);
}

void cli_table_free(cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
}

static void format_mem(char *buf, size_t n, uint64_t m)
{
    static const char units[] = { 't', 'g', 'm', 'k' };
    static const int shifts[] = { 40, 30, 20, 10 };
    for (int i = 0; i < 4; i++)
        if (m && m % (1ULL << shifts[i]) == 0) {
            snprintf(buf, n, "%llu%c", (unsigned long long)(m >> shifts[i]), units[i]);
            return;
        }
    snprintf(buf, n, "%llu", (unsigned long long)m);
}

void cli_format_resreq(char *buf, size_t n, const flame_resreq *r)
{
    char mem[32];
    format_mem(mem, sizeof mem, r->memory);
    snprintf(buf, n, "cpu=%llu,mem=%s,gpu=%d", (unsigned long long)r->cpu, mem, r->gpu);
}

void cli_format_time(char *buf, size_t n, int64_t ms)
{
    if (ms <= 0) {
        snprintf(buf, n, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

void cli_format_bytes(char *buf, size_t n, const flame_bytes *b)
{
    if (!b->data) {
        snprintf(buf, n, "-");
        return;
    }
    for (size_t i = 0; i < b->len; i++)
        if (!isprint(b->data[i]) && !isspace(b->data[i])) {
            snprintf(buf, n, "<%zu bytes>", b->len);
            return;
        }
    snprintf(buf, n, "%.*s", (int)(b->len < n - 1 ? b->len : n - 1), (const char *)b->data);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}
