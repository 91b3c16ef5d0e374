/* Loading libarchive and libcurl (dl.h). Threads: pthread_once per table. */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "dl.h"
#include "util/util.h"

static fl_archive_api archive_api;
static fl_curl_api curl_api;
static char archive_why[256], curl_why[256];
static pthread_once_t archive_once = PTHREAD_ONCE_INIT, curl_once = PTHREAD_ONCE_INIT;

/* dlopen's first name that loads; the handle stays open for the process. */
static void *open_lib(const char *const *names, char *why, size_t len)
{
    for (size_t i = 0; names[i]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    const char *e = dlerror();
    snprintf(why, len, "cannot load %s (Debian: %s): %s", names[0],
             strncmp(names[0], "libarchive", 10) == 0 ? "libarchive13" : "libcurl4",
             e ? e : "not found");
    return NULL;
}

#define FL_DL_LOAD(f)                                                                             \
    if (ok && !(*(void **)&api->f = dlsym(h, #f))) {                                              \
        snprintf(why, len, "%s has no %s", lib, #f);                                              \
        ok = false;                                                                               \
    }

static void load_archive(void)
{
    static const char *const names[] = { "libarchive.so.13", "libarchive.so", NULL };
    fl_archive_api *api = &archive_api;
    char *why = archive_why;
    size_t len = sizeof archive_why;
    const char *lib = names[0];
    void *h = open_lib(names, why, len);
    bool ok = h != NULL;
    FL_ARCHIVE_FUNCS(FL_DL_LOAD)
    if (!ok)
        memset(api, 0, sizeof *api);
}

static void load_curl(void)
{
    static const char *const names[] = { "libcurl.so.4", "libcurl.so", NULL };
    fl_curl_api *api = &curl_api;
    char *why = curl_why;
    size_t len = sizeof curl_why;
    const char *lib = names[0];
    void *h = open_lib(names, why, len);
    bool ok = h != NULL;
    FL_CURL_FUNCS(FL_DL_LOAD)
    if (ok && api->curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(why, len, "%s: curl_global_init failed", lib);
        ok = false;
    }
    if (!ok)
        memset(api, 0, sizeof *api);
}

const fl_archive_api *fl_archive_api_get(char **message)
{
    pthread_once(&archive_once, load_archive);
    if (archive_api.archive_read_new)
        return &archive_api;
    *message = fl_strdup(archive_why);
    return NULL;
}

const fl_curl_api *fl_curl_api_get(char **message)
{
    pthread_once(&curl_once, load_curl);
    if (curl_api.curl_easy_init)
        return &curl_api;
    *message = fl_strdup(curl_why);
    return NULL;
}
