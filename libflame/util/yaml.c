#include "yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static flame_status parse_error(yaml_parser_t *p, const char *path)
{
    return fl_error(FLAME_ERR_CONFIG, "%s:%zu: invalid YAML: %s", path, p->problem_mark.line + 1,
                    p->problem ? p->problem : "parse error");
}

flame_status fl_yaml_load_all(fl_yaml **out, size_t *n, const char *path)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fl_error(FLAME_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    fl_yaml *docs = NULL;
    size_t count = 0;
    flame_status st = FLAME_OK;
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&p, &doc)) {
            st = parse_error(&p, path);
            break;
        }
        if (!yaml_document_get_root_node(&doc)) {
            yaml_document_delete(&doc);
            break;
        }
        docs = fl_realloc(docs, (count + 1) * sizeof *docs);
        docs[count].doc = doc;
        docs[count].loaded = true;
        docs[count].file = fl_strdup(path);
        count++;
    }
    yaml_parser_delete(&p);
    fclose(f);
    if (st) {
        fl_yaml_free_all(docs, count);
        return st;
    }
    *out = docs;
    *n = count;
    return FLAME_OK;
}

flame_status fl_yaml_load_file(fl_yaml *y, const char *path)
{
    fl_yaml *docs;
    size_t n;
    memset(y, 0, sizeof *y);
    flame_status st = fl_yaml_load_all(&docs, &n, path);
    if (st)
        return st;
    if (n == 0) {
        fl_yaml_free_all(docs, n);
        return fl_error(FLAME_ERR_CONFIG, "%s: the file is empty", path);
    }
    *y = docs[0];
    for (size_t i = 1; i < n; i++)
        fl_yaml_free(&docs[i]);
    free(docs);
    return FLAME_OK;
}

void fl_yaml_free(fl_yaml *y)
{
    if (y && y->loaded) {
        yaml_document_delete(&y->doc);
        y->loaded = false;
        free(y->file);
        y->file = NULL;
    }
}

void fl_yaml_free_all(fl_yaml *docs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fl_yaml_free(&docs[i]);
    free(docs);
}

yaml_node_t *fl_yaml_root(fl_yaml *y)
{
    return yaml_document_get_root_node(&y->doc);
}

yaml_node_t *fl_yaml_get(fl_yaml *y, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(&y->doc, p->value);
    }
    return NULL;
}

flame_status fl_yaml_check_keys(fl_yaml *y, yaml_node_t *map, const char *path,
                                const char *const *known)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return FLAME_OK;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
        const char *name = fl_yaml_str(k);
        size_t i = 0;
        while (name && known[i] && strcmp(known[i], name) != 0)
            i++;
        if (!name || !known[i])
            return fl_error(FLAME_ERR_CONFIG, "%s:%zu: %s%s%s: unknown key", y->file,
                            k ? k->start_mark.line + 1 : 0, path, *path ? "." : "",
                            name ? name : "(not a string)");
    }
    return FLAME_OK;
}

const char *fl_yaml_str(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool fl_yaml_is_null(yaml_node_t *n)
{
    const char *s = fl_yaml_str(n);
    return !n || (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                  (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0));
}

flame_status fl_yaml_int(fl_yaml *y, yaml_node_t *n, const char *key, int64_t *out)
{
    const char *s = fl_yaml_str(n);
    char *end = NULL;
    if (s && *s) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*end && !errno) {
            *out = v;
            return FLAME_OK;
        }
    }
    return fl_error(FLAME_ERR_CONFIG, "%s:%zu: %s: expected an integer, got \"%s\"", y->file,
                    n ? n->start_mark.line + 1 : 0, key, s ? s : "(not a scalar)");
}

flame_status fl_yaml_string(fl_yaml *y, yaml_node_t *n, const char *key, const char **out)
{
    const char *s = fl_yaml_str(n);
    if (!s)
        return fl_error(FLAME_ERR_CONFIG, "%s:%zu: %s: expected a string", y->file,
                        n ? n->start_mark.line + 1 : 0, key);
    *out = s;
    return FLAME_OK;
}
