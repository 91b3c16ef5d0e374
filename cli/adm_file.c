/* Files of flmadm: private directories, atomic writes, the CA lock, errors. */
#include "adm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int adm_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("flmadm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    unsigned long e;
    const char *sep = ": ";
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "%s%s", sep, buf);
        sep = "; ";
    }
    fputc('\n', stderr);
    return -1;
}

char *adm_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

bool adm_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int adm_mkdir(const char *dir, bool private)
{
    char *p = strdup(dir);
    if (!p)
        abort();
    /* every missing component, parents first */
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            adm_fail("cannot create %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return adm_fail("%s is not a directory", dir);
    if (private && chmod(dir, 0700) != 0)
        return adm_fail("cannot make %s private: %s", dir, strerror(errno));
    return 0;
}

int adm_write(const char *path, mode_t mode, bool replace, adm_emit_fn emit, const void *arg)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        abort();
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp); /* 0600 from the start: a key is never readable */
    if (fd < 0) {
        adm_fail("cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = -1;
    BIO *bio = BIO_new_fd(fd, BIO_NOCLOSE);
    if (!bio) {
        adm_fail("cannot write %s", path);
        goto out;
    }
    int ok = emit(bio, arg) == 1 && BIO_flush(bio) == 1;
    BIO_free(bio);
    if (!ok) {
        adm_fail("cannot write %s", path);
        goto out;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        adm_fail("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    /* link() refuses an existing name, rename() replaces it: both atomic */
    if (replace ? rename(tmp, path) != 0 : link(tmp, path) != 0) {
        if (errno == EEXIST)
            adm_fail("%s already exists; not overwriting it", path);
        else
            adm_fail("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    close(fd);
    if (rc != 0 || !replace)
        unlink(tmp);
    free(tmp);
    return rc;
}

static int emit_text(BIO *out, const void *arg)
{
    const char *text = arg;
    size_t n = strlen(text);
    return n == 0 || BIO_write(out, text, (int)n) == (int)n;
}

int adm_write_text(const char *path, mode_t mode, bool replace, const char *text)
{
    return adm_write(path, mode, replace, emit_text, text);
}

char *adm_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        errno = err;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int adm_lock(const char *dir)
{
    char *path = adm_path(dir, ".lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        adm_fail("cannot open %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX) != 0) {
        adm_fail("cannot lock %s: %s", path, strerror(errno));
        close(fd);
        free(path);
        return -1;
    }
    free(path);
    return fd;
}
