/* The CA's index of issued certificates (<ca dir>/index.txt), in the spirit
 * of `openssl ca`'s index.txt: one line per certificate,
 *   STATUS \t NOT_AFTER \t REVOKED_AT \t SERIAL \t ROLE \t NAME
 * STATUS is V (valid) or R (revoked), times are UTC YYYYMMDDHHMMSSZ,
 * REVOKED_AT is empty unless revoked, SERIAL is upper-case hex. Lines
 * starting with '#' are comments. Single-threaded. */
#ifndef FLAME_CLI_ADM_INDEX_H
#define FLAME_CLI_ADM_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define ADM_NAME_MAX 64   /* the longest X.509 commonName */
#define ADM_SERIAL_MAX 64 /* hex digits of a 20-octet serial, with room */

typedef struct adm_entry {
    bool revoked;
    time_t not_after;
    time_t revoked_at; /* 0 unless revoked */
    char serial[ADM_SERIAL_MAX + 1];
    char role[16];
    char name[ADM_NAME_MAX + 1];
} adm_entry;

typedef struct adm_index {
    adm_entry *v;
    size_t n, cap;
} adm_index;

/* Loads PATH (a missing file is an empty index). Prints why on failure. */
int adm_index_load(adm_index *idx, const char *path);
/* Replaces PATH atomically. */
int adm_index_save(const adm_index *idx, const char *path);
/* Appends a zeroed entry and returns it (valid until the next add). */
adm_entry *adm_index_add(adm_index *idx);
/* The entry whose serial is HEX (any case, leading zeros ignored), or NULL. */
adm_entry *adm_index_find_serial(const adm_index *idx, const char *hex);
void adm_index_free(adm_index *idx);

/* UTC YYYYMMDDHHMMSSZ of T into BUF (at least 16 bytes). */
void adm_time_format(char *buf, size_t n, time_t t);

#endif
