/* The CA's index of issued certificates: parse, look up, write. */
#include "adm_index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adm_file.h"

#define ADM_TIME_FMT "%Y%m%d%H%M%SZ"

void adm_time_format(char *buf, size_t n, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, ADM_TIME_FMT, &tm);
}

static int parse_time(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, ADM_TIME_FMT, &tm);
    if (!end || *end)
        return -1;
    *out = timegm(&tm);
    return 0;
}

adm_entry *adm_index_add(adm_index *idx)
{
    if (idx->n == idx->cap) {
        idx->cap = idx->cap ? idx->cap * 2 : 16;
        idx->v = realloc(idx->v, idx->cap * sizeof *idx->v);
        if (!idx->v)
            abort();
    }
    adm_entry *e = &idx->v[idx->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Splits LINE at tabs into exactly N fields (in place). */
static int split(char *line, char **f, int n)
{
    int i = 0;
    f[i++] = line;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            if (i == n)
                return -1;
            *p = '\0';
            f[i++] = p + 1;
        }
    return i == n ? 0 : -1;
}

static int copy_field(char *dst, size_t n, const char *src)
{
    if (!*src || strlen(src) >= n)
        return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static int parse_line(adm_entry *e, char *line)
{
    char *f[6];
    if (split(line, f, 6) != 0 || strlen(f[0]) != 1 || (f[0][0] != 'V' && f[0][0] != 'R'))
        return -1;
    e->revoked = f[0][0] == 'R';
    if (parse_time(f[1], &e->not_after) != 0)
        return -1;
    if (e->revoked ? parse_time(f[2], &e->revoked_at) != 0 : *f[2] != '\0')
        return -1;
    if (copy_field(e->serial, sizeof e->serial, f[3]) != 0 ||
        copy_field(e->role, sizeof e->role, f[4]) != 0 ||
        copy_field(e->name, sizeof e->name, f[5]) != 0)
        return -1;
    return 0;
}

int adm_index_load(adm_index *idx, const char *path)
{
    memset(idx, 0, sizeof *idx);
    char *text = adm_read_file(path, NULL);
    if (!text)
        return errno == ENOENT ? 0 : adm_fail("cannot read %s: %s", path, strerror(errno));
    int lineno = 0, rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#')
            continue;
        if (parse_line(adm_index_add(idx), line) != 0) {
            rc = adm_fail("%s: line %d is not an index entry", path, lineno);
            break;
        }
    }
    free(text);
    if (rc != 0)
        adm_index_free(idx);
    return rc;
}

static int emit_index(BIO *out, const void *arg)
{
    const adm_index *idx = arg;
    if (BIO_printf(out, "# flmadm index: status, not-after, revoked-at, serial, role, name\n") < 0)
        return 0;
    for (size_t i = 0; i < idx->n; i++) {
        const adm_entry *e = &idx->v[i];
        char na[32], ra[32] = "";
        adm_time_format(na, sizeof na, e->not_after);
        if (e->revoked)
            adm_time_format(ra, sizeof ra, e->revoked_at);
        if (BIO_printf(out, "%c\t%s\t%s\t%s\t%s\t%s\n", e->revoked ? 'R' : 'V', na, ra,
                       e->serial, e->role, e->name) < 0)
            return 0;
    }
    return 1;
}

int adm_index_save(const adm_index *idx, const char *path)
{
    return adm_write(path, 0600, true, emit_index, idx);
}

static const char *skip_zeros(const char *s)
{
    while (s[0] == '0' && s[1])
        s++;
    return s;
}

adm_entry *adm_index_find_serial(const adm_index *idx, const char *hex)
{
    const char *want = skip_zeros(hex);
    for (size_t i = 0; i < idx->n; i++)
        if (strcasecmp(skip_zeros(idx->v[i].serial), want) == 0)
            return &idx->v[i];
    return NULL;
}

void adm_index_free(adm_index *idx)
{
    free(idx->v);
    memset(idx, 0, sizeof *idx);
}
