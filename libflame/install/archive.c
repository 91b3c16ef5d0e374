/* Extracting a package (.tar.gz, .tgz, .zip) with libarchive. The archive
 * is read twice: first every member's name and link target is checked
 * (an absolute path, a ".." component, or a symbolic link that is absolute
 * or has a ".." refuses the whole archive), then it is extracted below dir
 * (member names prefixed with it, hence absolute: libarchive's no-absolute
 * guard cannot be on, its no-".." and no-write-through-links guards are),
 * without owners or set-id bits.
 * Threads: pure, apart from the file system. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dl.h"
#include "install.h"
#include "util/util.h"

/* A package that unpacks to more is refused before anything is written. */
#define MAX_MEMBERS 1000000
#define MAX_UNPACKED (16LL << 30)

/* The loaded libarchive, once fl_extract has seen it load. */
static const fl_archive_api *loaded(void)
{
    char *why = NULL;
    const fl_archive_api *a = fl_archive_api_get(&why);
    free(why);
    return a;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static struct archive *open_reader(const char *path, bool zip, char **message)
{
    const fl_archive_api *ar = loaded();
    struct archive *a = ar->archive_read_new();
    if (zip) {
        ar->archive_read_support_format_zip(a);
    } else {
        ar->archive_read_support_filter_gzip(a);
        ar->archive_read_support_format_tar(a);
        ar->archive_read_support_format_gnutar(a);
    }
    if (ar->archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        *message = fl_sprintf("cannot open the package %s: %s", path, ar->archive_error_string(a));
        ar->archive_read_free(a);
        return NULL;
    }
    return a;
}

static bool dotdot(const char *p)
{
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && strncmp(p, "..", 2) == 0)
            return true;
        p += n + (p[n] == '/');
    }
    return false;
}

/* NULL if the member is safe, else why not. */
static const char *unsafe(struct archive_entry *e)
{
    const fl_archive_api *ar = loaded();
    const char *name = ar->archive_entry_pathname(e);
    if (!name || !*name)
        return "a member without a name";
    if (name[0] == '/')
        return "an absolute member path";
    if (dotdot(name))
        return "a member path with ..";
    const char *hard = ar->archive_entry_hardlink(e);
    if (hard && (hard[0] == '/' || dotdot(hard)))
        return "a hard link out of the package";
    const char *sym = ar->archive_entry_symlink(e);
    if (sym && ar->archive_entry_filetype(e) == AE_IFLNK) {
        /* relative and without "..": a chain of links cannot climb out */
        if (sym[0] == '/' || dotdot(sym))
            return "a symbolic link out of the package";
    }
    return NULL;
}

flame_status fl_extract(const char *archive, const char *dir, char **message)
{
    const fl_archive_api *ar = fl_archive_api_get(message);
    if (!ar)
        return FLAME_ERR_UNAVAILABLE;
    bool zip = has_suffix(archive, ".zip");
    if (!zip && !has_suffix(archive, ".tar.gz") && !has_suffix(archive, ".tgz")) {
        *message = fl_sprintf("unsupported package format: %s (supported: .tar.gz, .tgz, .zip)",
                              archive);
        return FLAME_ERR_INVALID_ARGUMENT;
    }
    struct archive *a = open_reader(archive, zip, message);
    if (!a)
        return FLAME_ERR_IO;
    struct archive_entry *e;
    int r;
    flame_status st = FLAME_OK;
    long long members = 0, unpacked = 0;
    while ((r = ar->archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *why = unsafe(e);
        unpacked += ar->archive_entry_size_is_set(e) ? ar->archive_entry_size(e) : 0;
        if (!why && (++members > MAX_MEMBERS || unpacked > MAX_UNPACKED))
            why = "more than 1,000,000 members or 16 GiB unpacked";
        if (why) {
            *message = fl_sprintf("refused the package %s: %s (%s)", archive, why,
                                  ar->archive_entry_pathname(e) ? ar->archive_entry_pathname(e) : "");
            st = FLAME_ERR_INVALID_ARGUMENT;
            break;
        }
    }
    if (!st && r != ARCHIVE_EOF) {
        *message = fl_sprintf("cannot read the package %s: %s", archive, ar->archive_error_string(a));
        st = FLAME_ERR_IO;
    }
    ar->archive_read_free(a);
    if (st)
        return st;
    if (fl_mkdir_p(dir) != 0) {
        *message = fl_sprintf("cannot create %s", dir);
        return FLAME_ERR_IO;
    }
    if (!(a = open_reader(archive, zip, message)))
        return FLAME_ERR_IO;
    struct archive *w = ar->archive_write_disk_new();
    ar->archive_write_disk_set_options(w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    long long written = 0;
    while ((r = ar->archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        char *to = fl_sprintf("%s/%s", dir, ar->archive_entry_pathname(e));
        ar->archive_entry_set_pathname(e, to);
        free(to);
        const char *hard = ar->archive_entry_hardlink(e);
        if (hard) {
            char *h = fl_sprintf("%s/%s", dir, hard);
            ar->archive_entry_set_hardlink(e, h);
            free(h);
        }
        /* no set-id bits from a package */
        ar->archive_entry_set_perm(e, ar->archive_entry_perm(e) & 0777);
        if (ar->archive_write_header(w, e) < ARCHIVE_WARN)
            break;
        const void *buf;
        size_t len;
        la_int64_t off;
        int d;
        while ((d = ar->archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
            written += (long long)len; /* sizes a header did not declare count too */
            if (written > MAX_UNPACKED) {
                d = ARCHIVE_FATAL;
                break;
            }
            if (ar->archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN)
                break;
        }
        if (d < ARCHIVE_WARN || ar->archive_write_finish_entry(w) < ARCHIVE_WARN) {
            r = ARCHIVE_FATAL;
            break;
        }
    }
    if (r != ARCHIVE_EOF) {
        const char *err = written > MAX_UNPACKED   ? "more than 16 GiB unpacked"
                          : ar->archive_error_string(w) ? ar->archive_error_string(w)
                                                    : ar->archive_error_string(a);
        *message = fl_sprintf("cannot extract the package %s: %s", archive, err ? err : "error");
        st = FLAME_ERR_IO;
    }
    ar->archive_write_free(w);
    ar->archive_read_free(a);
    return st;
}
