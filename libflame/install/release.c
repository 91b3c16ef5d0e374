/* Release directories and what names them: Flame's release hash, the
 * Python version an application runs, $FLAME_HOME. Threads: pure, apart
 * from reading the file system. */
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "install.h"
#include "util/util.h"

static void hash_field(EVP_MD_CTX *md, const char *label, const char *value)
{
    static const unsigned char zero = 0, one = 1;
    EVP_DigestUpdate(md, label, strlen(label));
    EVP_DigestUpdate(md, &zero, 1);
    if (!value) {
        EVP_DigestUpdate(md, &zero, 1);
        return;
    }
    uint64_t n = strlen(value);
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(n >> (56 - 8 * i));
    EVP_DigestUpdate(md, &one, 1);
    EVP_DigestUpdate(md, be, 8);
    EVP_DigestUpdate(md, value, n);
}

void fl_release_hash(char out[65], const char *app, const char *installer, const char *url,
                     const char *python_version)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    hash_field(md, "app", app);
    hash_field(md, "installer", installer);
    hash_field(md, "url", url);
    hash_field(md, "python_version", python_version);
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(md, d, &n);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

char *fl_install_flame_home(const fl_install_request *req)
{
    if (req->flame_home && *req->flame_home)
        return fl_strdup(req->flame_home);
    const char *fh = getenv("FLAME_HOME");
    if (fh && *fh)
        return fl_strdup(fh);
    const char *home = getenv("HOME");
    return fl_sprintf("%s/.flame", home && *home ? home : "/tmp");
}

/* "3.12" > "3.9": compares dotted numbers, segment by segment. */
static int version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        char *ea, *eb;
        long x = strtol(a, &ea, 10), y = strtol(b, &eb, 10);
        if (x != y)
            return x < y ? -1 : 1;
        a = *ea == '.' ? ea + 1 : ea;
        b = *eb == '.' ? eb + 1 : eb;
    }
    return 0;
}

char *fl_python_version(const char *flame_home, char *const *app_env)
{
    const char *v = fl_env_lookup(app_env, "FLAME_PYTHON_VERSION");
    if (v && *v)
        return fl_strdup(strncmp(v, "python", 6) == 0 ? v + 6 : v);
    char *lib = fl_sprintf("%s/lib", flame_home);
    DIR *d = opendir(lib);
    char *best = NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *ver = e->d_name + 6;
        if (strncmp(e->d_name, "python", 6) != 0 || !*ver || strspn(ver, "0123456789.") != strlen(ver))
            continue;
        char *sp = fl_sprintf("%s/%s/site-packages", lib, e->d_name);
        struct stat st;
        if (stat(sp, &st) == 0 && S_ISDIR(st.st_mode) && (!best || version_cmp(ver, best) > 0)) {
            free(best);
            best = fl_strdup(ver);
        }
        free(sp);
    }
    if (d)
        closedir(d);
    free(lib);
    return best ? best : fl_strdup("3.12");
}

int fl_mkdir_p(const char *path)
{
    char *p = fl_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0755) == 0)
            chmod(p, 0755); /* whatever the umask: sandboxed services read below */
        else if (errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) == 0)
        chmod(p, 0755);
    else if (errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

char *fl_url_file_name(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *path = scheme ? scheme + 3 : url;
    size_t n = strcspn(path, "?#");
    const char *end = path + n;
    const char *slash = end;
    while (slash > path && slash[-1] != '/')
        slash--;
    size_t len = (size_t)(end - slash);
    if (!len || (len == 1 && slash[0] == '.') || (len == 2 && strncmp(slash, "..", 2) == 0) ||
        slash == path) /* "host" alone, no path */
        return NULL;
    return fl_sprintf("%.*s", (int)len, slash);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static int readable_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag == FTW_D || flag == FTW_DP)
        chmod(path, (sb->st_mode & 07777) | 0555);
    else if (flag == FTW_F)
        chmod(path, (sb->st_mode & 07777) | 0444 | (sb->st_mode & 0100 ? 0111 : 0));
    return 0;
}

void fl_make_readable(const char *path)
{
    nftw(path, readable_entry, 16, FTW_PHYS);
}

void fl_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
