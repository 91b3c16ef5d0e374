/* A small tree over libyaml's document API, for Flame's config files. */
#ifndef FL_YAML_H
#define FL_YAML_H

#include <stdbool.h>
#include <stdint.h>
#include <yaml.h>

#include "flame/error.h"

typedef struct fl_yaml {
    yaml_document_t doc;
    bool loaded;
    char *file;
} fl_yaml;

/* Loads document number `index` (0-based) of a file or string. Returns
 * FLAME_OK, FLAME_ERR_NOT_FOUND when there is no such document, or
 * FLAME_ERR_CONFIG/IO with a message naming the file and line. */
flame_status fl_yaml_load_file(fl_yaml *y, const char *path);
flame_status fl_yaml_load_all(fl_yaml **docs, size_t *n, const char *path);
void fl_yaml_free(fl_yaml *y);
void fl_yaml_free_all(fl_yaml *docs, size_t n);

yaml_node_t *fl_yaml_root(fl_yaml *y);
/* Mapping lookup; NULL when absent or node is not a mapping. */
yaml_node_t *fl_yaml_get(fl_yaml *y, yaml_node_t *map, const char *key);
/* Scalar text, or NULL when the node is not a scalar. */
const char *fl_yaml_str(yaml_node_t *n);
bool fl_yaml_is_null(yaml_node_t *n);

/* FLAME_ERR_CONFIG naming "<path>.<key>" (file and line) for the first key of
 * the mapping `map` that is not in `known` (NULL-terminated); FLAME_OK when
 * every key is known or map is not a mapping. */
flame_status fl_yaml_check_keys(fl_yaml *y, yaml_node_t *map, const char *path,
                                const char *const *known);

/* Typed reads that fail with a message naming `key` (a dotted path). */
flame_status fl_yaml_int(fl_yaml *y, yaml_node_t *n, const char *key, int64_t *out);
flame_status fl_yaml_string(fl_yaml *y, yaml_node_t *n, const char *key, const char **out);

#endif
