/* Tables and value formatting shared by the command-line tools. */
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

static size_t *column_widths(const cli_table *t)
{
    size_t *w = calloc(t->ncols, sizeof *w);
    if (!w)
        abort();
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t l = strlen(t->cells[r * t->ncols + c]);
            if (l > w[c])
                w[c] = l;
        }
    return w;
}

void cli_table_print(const cli_table *t)
{
    size_t *w = column_widths(t);
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

/* As comfy-table prints with its NOTHING preset (Flame's tools use it): no
 * borders, every cell padded by one space on each side and to its column's
 * width, so columns are two spaces apart and each line starts with a space
 * and ends with one. */
void cli_table_print_comfy(const cli_table *t)
{
    size_t *w = column_widths(t);
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++)
            printf(" %-*s ", (int)w[c], t->cells[r * t->ncols + c]);
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

void cli_format_mem(char *buf, size_t n, uint64_t m)
{
    static const char *units[] = { "Gi", "Mi", "Ki" };
    static const int shifts[] = { 30, 20, 10 };
    for (int i = 0; i < 3; i++)
        if (m && m % (1ULL << shifts[i]) == 0) {
            snprintf(buf, n, "%llu%s", (unsigned long long)(m >> shifts[i]), units[i]);
            return;
        }
    snprintf(buf, n, "%lluB", (unsigned long long)m);
}

void cli_format_resreq(char *buf, size_t n, const flame_resreq *r)
{
    if (!r->cpu && !r->memory && !r->gpu) {
        snprintf(buf, n, "-");
        return;
    }
    char mem[32];
    cli_format_mem(mem, sizeof mem, r->memory);
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

void cli_human_count(char *buf, size_t n, uint64_t v)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < n)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
}

void cli_byte_size(char *buf, size_t n, uint64_t v)
{
    static const char units[] = "KMGTPE";
    if (v < 1000) {
        snprintf(buf, n, "%llu B", (unsigned long long)v);
        return;
    }
    double x = (double)v;
    int u = -1;
    while (x >= 1000 && u < 5) {
        x /= 1000;
        u++;
    }
    snprintf(buf, n, "%.1f %cB", x, units[u]);
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
