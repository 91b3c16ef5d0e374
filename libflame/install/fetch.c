/* Fetching a package to a file (Flame's appmgr/downloader.rs): file://
 * copies, http(s):// downloads with libcurl (300 s, redirects among http(s)
 * only; libcurl is loaded on first use, dl.h), grpc(s):// reads an object
 * of the cache. Every fetch is bounded by
 * FL_FETCH_MAX_BYTES and lands in <path>.part first, renamed once complete,
 * so a half-fetched package is never taken for a whole one.
 * Threads: libcurl is loaded and initialized once (dl.c); each fetch has
 * its own handle. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/cache.h"

#include "dl.h"
#include "install.h"
#include "util/util.h"

#define HTTP_TIMEOUT_S 300

typedef struct sink {
    FILE *f;
    long long written;
    bool too_big;
} sink;

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t len = size * n;
    if (s->written + (long long)len > FL_FETCH_MAX_BYTES) {
        s->too_big = true;
        return 0;
    }
    s->written += (long long)len;
    return fwrite(data, 1, len, s->f);
}

static flame_status fetch_http(const char *url, FILE *f, char **message)
{
    const fl_curl_api *cu = fl_curl_api_get(message);
    if (!cu)
        return FLAME_ERR_UNAVAILABLE;
    CURL *c = cu->curl_easy_init();
    if (!c) {
        *message = fl_strdup("cannot start an HTTP download (libcurl)");
        return FLAME_ERR_INTERNAL;
    }
    sink s = { f, 0, false };
    char err[CURL_ERROR_SIZE] = "";
    cu->curl_easy_setopt(c, CURLOPT_URL, url);
    cu->curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    cu->curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    cu->curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    cu->curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)HTTP_TIMEOUT_S);
    cu->curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    cu->curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    cu->curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    cu->curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    cu->curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    cu->curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)FL_FETCH_MAX_BYTES);
    cu->curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = cu->curl_easy_perform(c);
    cu->curl_easy_cleanup(c);
    if (s.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        *message = fl_sprintf("failed to download %s: larger than %lld bytes", url,
                              FL_FETCH_MAX_BYTES);
        return FLAME_ERR_RESOURCE_EXHAUSTED;
    }
    if (rc != CURLE_OK) {
        *message = fl_sprintf("failed to download %s: %s", url, err[0] ? err : cu->curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? FLAME_ERR_TIMEOUT : FLAME_ERR_UNAVAILABLE;
    }
    return FLAME_OK;
}

/* file:///abs/path or file://localhost/abs/path; %XX escapes decoded. */
static char *file_path(const char *url)
{
    const char *p = url + 7;
    if (strncmp(p, "localhost/", 10) == 0)
        p += 9;
    if (*p != '/')
        return NULL;
    char *out = fl_malloc(strlen(p) + 1), *o = out;
    for (; *p && *p != '?' && *p != '#'; p++) {
        unsigned x;
        if (p[0] == '%' && sscanf(p + 1, "%2x", &x) == 1 && x) {
            *o++ = (char)x;
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    return out;
}

static flame_status fetch_file(const char *url, FILE *f, char **message)
{
    char *path = file_path(url);
    if (!path) {
        *message = fl_sprintf("failed to download %s: a file URL names an absolute path "
                              "(file:///path)", url);
        return FLAME_ERR_INVALID_ARGUMENT;
    }
    FILE *in = fopen(path, "rb");
    if (!in) {
        *message = fl_sprintf("failed to download %s: %s: %s", url, path, strerror(errno));
        free(path);
        return FLAME_ERR_NOT_FOUND;
    }
    char buf[65536];
    size_t n;
    long long total = 0;
    flame_status st = FLAME_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        total += (long long)n;
        if (total > FL_FETCH_MAX_BYTES) {
            *message = fl_sprintf("failed to download %s: larger than %lld bytes", url,
                                  FL_FETCH_MAX_BYTES);
            st = FLAME_ERR_RESOURCE_EXHAUSTED;
            break;
        }
        if (fwrite(buf, 1, n, f) != n) {
            *message = fl_sprintf("failed to download %s: writing: %s", url, strerror(errno));
            st = FLAME_ERR_IO;
            break;
        }
    }
    if (!st && ferror(in)) {
        *message = fl_sprintf("failed to download %s: reading %s: %s", url, path, strerror(errno));
        st = FLAME_ERR_IO;
    }
    fclose(in);
    free(path);
    return st;
}

/* grpc(s)://host[:9090]/<key>: the object's data (DoGet <key>:0, every
 * data value concatenated), bounded by the cache client's message limit. */
static flame_status fetch_grpc(const char *url, FILE *f, const char *ca_file, char **message)
{
    void *data = NULL;
    size_t len = 0;
    flame_status st = flame_cache_get(url, NULL, ca_file, &data, &len);
    if (st) {
        *message = fl_sprintf("failed to download %s: %s", url, flame_error_last());
        return st;
    }
    if (len && fwrite(data, 1, len, f) != len) {
        *message = fl_sprintf("failed to download %s: writing: %s", url, strerror(errno));
        st = FLAME_ERR_IO;
    }
    free(data);
    return st;
}

flame_status fl_fetch(const char *url, const char *path, const char *cache_ca_file,
                      char **message)
{
    char *part = fl_sprintf("%s.part", path);
    FILE *f = fopen(part, "wb");
    if (!f) {
        *message = fl_sprintf("failed to download %s: cannot write %s: %s", url, part,
                              strerror(errno));
        free(part);
        return FLAME_ERR_IO;
    }
    flame_status st;
    if (strncasecmp(url, "file://", 7) == 0)
        st = fetch_file(url, f, message);
    else if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)
        st = fetch_http(url, f, message);
    else if (strncasecmp(url, "grpc://", 7) == 0 || strncasecmp(url, "grpcs://", 8) == 0)
        st = fetch_grpc(url, f, cache_ca_file, message);
    else {
        *message = fl_sprintf("unsupported URL scheme in %s: supported are file, http, https, "
                              "grpc and grpcs", url);
        st = FLAME_ERR_INVALID_ARGUMENT;
    }
    if (fclose(f) != 0 && !st) {
        *message = fl_sprintf("failed to download %s: writing %s: %s", url, part, strerror(errno));
        st = FLAME_ERR_IO;
    }
    if (!st && rename(part, path) != 0) {
        *message = fl_sprintf("failed to download %s: %s", url, strerror(errno));
        st = FLAME_ERR_IO;
    }
    if (st)
        unlink(part);
    free(part);
    return st;
}
