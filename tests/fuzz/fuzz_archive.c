/* libFuzzer target: the installers' package extraction (install/archive.c:
 * the member path checks, then libarchive writing below a directory).
 * Byte 0 picks the form: 0 a tar the target builds from a list of members
 * (so the fuzzer works on names and link targets, not on tar checksums),
 * 1 the bytes as a .tar.gz, 2 as a .zip. A member record: type (0 file,
 * 1 directory, 2 symbolic link, 3 hard link), name length, name, target
 * length, target (links) or content (files).
 *
 * Each package is extracted to <work>/root/pkg; afterwards nothing may be
 * in <work> but the package file and root/, nothing in root/ but pkg, and
 * no symbolic link below pkg may lead out of it (a way out for whatever is
 * written later). The work directory is private to
 * this process, in $TMPDIR. */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install/install.h"
#include "util/util.h"

static char work[256], root[300], out[320];

static void check(bool ok, const char *what, const char *path)
{
    if (!ok) {
        fprintf(stderr, "fuzz: %s: %s\n", what, path ? path : "");
        abort();
    }
}

static void remove_work(void)
{
    fl_rm_rf(work);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fl_log_set_level(FL_LOG_ERROR + 1);
    const char *tmp = getenv("TMPDIR");
    snprintf(work, sizeof work, "%s/flame-fuzz-archive-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(work))
        abort();
    snprintf(root, sizeof root, "%s/root", work);
    snprintf(out, sizeof out, "%s/pkg", root);
    atexit(remove_work);
    return 0;
}

/* ---- a tar from member records ------------------------------------------ */

static void octal(char *field, size_t width, uint64_t v)
{
    snprintf(field, width, "%0*llo", (int)width - 1, (unsigned long long)v);
}

static void header(fl_buf *tar, char type, const char *name, size_t name_len, const char *link,
                   size_t link_len, size_t size)
{
    char h[512] = { 0 };
    memcpy(h, name, name_len < 100 ? name_len : 100);
    octal(h + 100, 8, type == '5' ? 0755 : 0644);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, size);
    octal(h + 136, 12, 0);
    h[156] = type;
    memcpy(h + 157, link, link_len < 100 ? link_len : 100);
    memcpy(h + 257, "ustar  ", 8); /* GNU */
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    octal(h + 148, 7, sum);
    fl_buf_add(tar, h, 512);
}

static void data(fl_buf *tar, const void *p, size_t n)
{
    static const char zeros[512];
    fl_buf_add(tar, p, n);
    fl_buf_add(tar, zeros, (512 - n % 512) % 512);
}

/* A GNU long-name ('L') or long-link ('K') entry: what a header cannot hold
 * (100 bytes or more) goes before it. */
static void long_entry(fl_buf *tar, char type, const char *s, size_t n)
{
    if (n < 100)
        return;
    header(tar, type, "././@LongLink", 13, "", 0, n + 1);
    char *z = fl_malloc(n + 1);
    memcpy(z, s, n);
    z[n] = 0;
    data(tar, z, n + 1);
    free(z);
}

static void member(fl_buf *tar, char type, const char *name, size_t nl, const char *link,
                   size_t ll, const char *content, size_t cl)
{
    long_entry(tar, 'L', name, nl);
    long_entry(tar, 'K', link, ll);
    header(tar, type, name, nl, link, ll, cl);
    if (cl)
        data(tar, content, cl);
}

static void build_tar(fl_buf *tar, const uint8_t *p, size_t n)
{
    static const char types[4] = { '0', '5', '2', '1' };
    size_t at = 0;
    while (n - at >= 2) {
        char type = types[p[at] % 4];
        size_t nl = p[at + 1];
        at += 2;
        if (nl > n - at)
            break;
        const char *name = (const char *)p + at;
        at += nl;
        size_t xl = at < n ? p[at++] : 0;
        if (xl > n - at)
            xl = n - at;
        const char *x = (const char *)p + at;
        at += xl;
        bool link = type == '1' || type == '2';
        member(tar, type, name, nl, link ? x : "", link ? xl : 0, link ? NULL : x,
               type == '0' ? xl : 0);
    }
    static const char end[1024];
    fl_buf_add(tar, end, sizeof end);
}

/* ---- the checks ------------------------------------------------------------ */

static size_t out_len;

/* Whether a link at path (below out) to target, followed as written,
 * stays inside out: an absolute target leaves, and so does a ".." that
 * climbs above out's top. */
static bool stays_inside(const char *path, const char *target)
{
    if (target[0] == '/')
        return false;
    long depth = 0; /* of the link's directory below out */
    for (const char *p = path + out_len; *p; p++)
        depth += *p == '/';
    depth--; /* the link's own name */
    for (const char *p = target; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            depth--;
        else if (n && !(n == 1 && p[0] == '.'))
            depth++;
        if (depth < 0)
            return false;
        p += n + (p[n] == '/');
    }
    return true;
}

static int visit(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    check(strncmp(path, out, out_len) == 0 && (path[out_len] == 0 || path[out_len] == '/'),
          "a file outside the package's directory", path);
    if (flag == FTW_SL) {
        char target[4096];
        ssize_t n = readlink(path, target, sizeof target - 1);
        check(n >= 0, "an unreadable link", path);
        target[n] = 0;
        check(stays_inside(path, target), "a symbolic link out of the package", path);
    }
    return 0;
}

static void only(const char *dir, const char *a, const char *b)
{
    DIR *d = opendir(dir);
    check(d != NULL, "cannot list", dir);
    struct dirent *e;
    while ((e = readdir(d)))
        check(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, a) ||
                  !strcmp(e->d_name, b),
              "something extracted outside the package's directory", e->d_name);
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const suffix[3] = { "tar.gz", "tar.gz", "zip" };
    int form = d[0] % 3;
    char file[300];
    snprintf(file, sizeof file, "%s/package.%s", work, suffix[form]);
    fl_buf tar = { 0 };
    if (form == 0)
        build_tar(&tar, d + 1, size - 1);
    else
        fl_buf_add(&tar, d + 1, size - 1);
    FILE *f = fopen(file, "wb");
    check(f && fwrite(tar.data, 1, tar.len, f) == tar.len && fclose(f) == 0, "cannot write",
          file);
    fl_buf_free(&tar);
    char *msg = NULL;
    (void)fl_extract(file, out, &msg);
    free(msg);
    out_len = strlen(out);
    struct stat st;
    if (lstat(out, &st) == 0)
        nftw(out, visit, 16, FTW_PHYS);
    only(work, "root", strrchr(file, '/') + 1);
    if (lstat(root, &st) == 0)
        only(root, "pkg", "pkg");
    fl_rm_rf(root);
    unlink(file);
    return 0;
}
