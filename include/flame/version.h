/* Flame in C — version macros and the runtime version check. */
#ifndef FLAME_VERSION_H
#define FLAME_VERSION_H

#define FLAME_VERSION_MAJOR 0
#define FLAME_VERSION_MINOR 1
#define FLAME_VERSION_PATCH 0
#define FLAME_VERSION "0.1.0"

/* 0xMMmmpp: one byte each for major, minor and patch. */
#define FLAME_VERSION_NUMBER                                                   \
    ((FLAME_VERSION_MAJOR << 16) | (FLAME_VERSION_MINOR << 8) | FLAME_VERSION_PATCH)

/* True when the headers are at least version x.y.z. */
#define FLAME_AT_LEAST_VERSION(x, y, z)                                        \
    (FLAME_VERSION_NUMBER >= (((x) << 16) | ((y) << 8) | (z)))

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the linked library, e.g. "0.1.0". Static string; never free. */
const char *flame_version(void);

/* FLAME_VERSION_NUMBER of the linked library. */
int flame_version_number(void);

#ifdef __cplusplus
}
#endif

#endif
