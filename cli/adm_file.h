/* Files of flmadm: private directories, atomic writes with an explicit mode,
 * the CA directory's lock, and error messages (OpenSSL's queue included).
 * Single-threaded, like the tool. */
#ifndef FLAME_CLI_ADM_FILE_H
#define FLAME_CLI_ADM_FILE_H

#include <openssl/bio.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Prints "flmadm: MESSAGE" to stderr, then, when OpenSSL queued errors,
 * ": " and each of them (the queue is emptied). Returns -1. */
int adm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Creates DIR and any missing parent with mode 0700. With PRIVATE, DIR
 * itself ends 0700 even when it existed. */
int adm_mkdir(const char *dir, bool private);

/* Writes PATH through EMIT (which returns 1 on success) into a temporary file
 * beside it, with MODE, then moves it in place: replacing PATH when REPLACE,
 * else failing when PATH exists (nothing is left behind either way). */
typedef int (*adm_emit_fn)(BIO *out, const void *arg);
int adm_write(const char *path, mode_t mode, bool replace, adm_emit_fn emit, const void *arg);

/* Same, for a string. */
int adm_write_text(const char *path, mode_t mode, bool replace, const char *text);

/* Reads a whole file (NUL-terminated, *LEN without it). NULL when it cannot
 * be read: errno says why (ENOENT for a missing file), nothing printed. */
char *adm_read_file(const char *path, size_t *len);

bool adm_exists(const char *path);

/* Takes the CA directory's exclusive lock (blocking); returns the fd that
 * holds it, or -1. Closing the fd releases it. */
int adm_lock(const char *dir);

/* malloc'd DIR/NAME. */
char *adm_path(const char *dir, const char *name);

#endif
