/* libarchive and libcurl, loaded on first use with dlopen: only an
 * executor manager that installs a package loads them. libflame.so does
 * not link them, so the services built on it (and the microVM images made
 * from their ldd) do not carry them and what they pull in (ICU, libxml2,
 * Kerberos, ...). Threads: each table is loaded once (pthread_once) and
 * read-only afterwards. */
#ifndef FL_INSTALL_DL_H
#define FL_INSTALL_DL_H

#define CURL_DISABLE_TYPECHECK /* curl_easy_setopt a function, not a macro */
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>

#define FL_ARCHIVE_FUNCS(X)                                                                       \
    X(archive_entry_filetype) X(archive_entry_hardlink) X(archive_entry_pathname)                 \
    X(archive_entry_perm) X(archive_entry_set_hardlink) X(archive_entry_set_pathname)             \
    X(archive_entry_set_perm) X(archive_entry_size) X(archive_entry_size_is_set)                  \
    X(archive_entry_symlink) X(archive_error_string) X(archive_read_data_block)                   \
    X(archive_read_free) X(archive_read_new) X(archive_read_next_header)                          \
    X(archive_read_open_filename) X(archive_read_support_filter_gzip)                             \
    X(archive_read_support_format_gnutar) X(archive_read_support_format_tar)                      \
    X(archive_read_support_format_zip) X(archive_write_data_block) X(archive_write_disk_new)      \
    X(archive_write_disk_set_options) X(archive_write_finish_entry) X(archive_write_free)         \
    X(archive_write_header)

#define FL_CURL_FUNCS(X)                                                                          \
    X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_perform)                \
    X(curl_easy_cleanup) X(curl_easy_strerror)                                                    \
    X(curl_easy_getinfo) X(curl_slist_append) X(curl_slist_free_all) /* provider/kubeapi.c */

#define FL_DL_MEMBER(f) __typeof__(f) *f;

typedef struct fl_archive_api {
    FL_ARCHIVE_FUNCS(FL_DL_MEMBER)
} fl_archive_api;

typedef struct fl_curl_api {
    FL_CURL_FUNCS(FL_DL_MEMBER)
} fl_curl_api;

/* The loaded table, or NULL with *message (malloc'ed) saying which library
 * or function is missing. */
const fl_archive_api *fl_archive_api_get(char **message);
/* As above; curl_global_init has run. */
const fl_curl_api *fl_curl_api_get(char **message);

#endif
