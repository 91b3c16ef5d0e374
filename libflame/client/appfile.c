/* Flame's application YAML -> flame_application (name + spec). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "model/model.h"
#include "util/util.h"
#include "util/yaml.h"

static flame_status bad(fl_yaml *y, yaml_node_t *n, const char *key, const char *what)
{
    return fl_error(FLAME_ERR_CONFIG, "%s:%zu: %s: %s", y->file, n ? n->start_mark.line + 1 : 0,
                    key, what);
}

/* YAML node -> cJSON, for schemas written as YAML rather than JSON text. */
static cJSON *to_json(fl_yaml *y, yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE) {
        cJSON *o = cJSON_CreateObject();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            const char *k = fl_yaml_str(yaml_document_get_node(&y->doc, p->key));
            cJSON_AddItemToObject(o, k ? k : "", to_json(y, yaml_document_get_node(&y->doc, p->value)));
        }
        return o;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
            cJSON_AddItemToArray(a, to_json(y, yaml_document_get_node(&y->doc, *it)));
        return a;
    }
    const char *s = fl_yaml_str(n);
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(s, "true") == 0)
            return cJSON_CreateTrue();
        if (strcmp(s, "false") == 0)
            return cJSON_CreateFalse();
        if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0)
            return cJSON_CreateNull();
        char *end;
        double d = strtod(s, &end);
        if (*s && !*end)
            return cJSON_CreateNumber(d);
    }
    return cJSON_CreateString(s);
}

static flame_status str_field(fl_yaml *y, yaml_node_t *spec, const char *key, const char **out)
{
    yaml_node_t *v = fl_yaml_get(y, spec, key);
    *out = NULL;
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    char k[64];
    snprintf(k, sizeof k, "spec.%s", key);
    const char *s;
    flame_status st = fl_yaml_string(y, v, k, &s);
    if (!st)
        *out = fl_strdup(s);
    return st;
}

static flame_status str_list(fl_yaml *y, yaml_node_t *spec, const char *key, const char *const **out,
                             size_t *n)
{
    yaml_node_t *v = fl_yaml_get(y, spec, key);
    *out = NULL;
    *n = 0;
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    char k[64];
    snprintf(k, sizeof k, "spec.%s", key);
    if (v->type != YAML_SEQUENCE_NODE)
        return bad(y, v, k, "expected a list of strings");
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    const char **a = fl_calloc(cnt ? cnt : 1, sizeof *a);
    for (size_t i = 0; i < cnt; i++) {
        const char *s = fl_yaml_str(yaml_document_get_node(&y->doc, v->data.sequence.items.start[i]));
        if (!s) {
            for (size_t j = 0; j < i; j++)
                free((char *)a[j]);
            free(a);
            return bad(y, v, k, "expected a list of strings");
        }
        a[i] = fl_strdup(s);
    }
    *out = a;
    *n = cnt;
    return FLAME_OK;
}

static flame_status envs(fl_yaml *y, yaml_node_t *spec, flame_application_spec *s)
{
    yaml_node_t *v = fl_yaml_get(y, spec, "environments");
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    flame_env *e = NULL;
    size_t n = 0;
    if (v->type == YAML_MAPPING_NODE) { /* Flame: a map of NAME: value */
        size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        e = fl_calloc(cnt ? cnt : 1, sizeof *e);
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            const char *k = fl_yaml_str(yaml_document_get_node(&y->doc, p->key));
            const char *val = fl_yaml_str(yaml_document_get_node(&y->doc, p->value));
            if (!k || !val) {
                s->environments = e;
                s->environments_len = n;
                return bad(y, v, "spec.environments", "expected NAME: value pairs");
            }
            e[n].name = fl_strdup(k);
            e[n].value = fl_strdup(val);
            n++;
        }
    } else if (v->type == YAML_SEQUENCE_NODE) { /* [{name, value}] */
        size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        e = fl_calloc(cnt ? cnt : 1, sizeof *e);
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_t *it = yaml_document_get_node(&y->doc, v->data.sequence.items.start[i]);
            const char *k = fl_yaml_str(fl_yaml_get(y, it, "name"));
            const char *val = fl_yaml_str(fl_yaml_get(y, it, "value"));
            if (!k || !val) {
                s->environments = e;
                s->environments_len = n;
                return bad(y, it, "spec.environments", "expected {name, value} items");
            }
            e[n].name = fl_strdup(k);
            e[n].value = fl_strdup(val);
            n++;
        }
    } else {
        return bad(y, v, "spec.environments", "expected a mapping of NAME: value");
    }
    s->environments = e;
    s->environments_len = n;
    return FLAME_OK;
}

static flame_status schema(fl_yaml *y, yaml_node_t *spec, flame_application_spec *s)
{
    yaml_node_t *v = fl_yaml_get(y, spec, "schema");
    if (!v || fl_yaml_is_null(v))
        return FLAME_OK;
    if (v->type != YAML_MAPPING_NODE)
        return bad(y, v, "spec.schema", "expected a mapping {input, output, common_data}");
    static const char *keys[] = { "input", "output", "common_data" };
    const char **dst[] = { &s->schema_input, &s->schema_output, &s->schema_common_data };
    for (int i = 0; i < 3; i++) {
        yaml_node_t *d = fl_yaml_get(y, v, keys[i]);
        if (!d || fl_yaml_is_null(d))
            continue;
        if (d->type == YAML_SCALAR_NODE) {
            *dst[i] = fl_strdup(fl_yaml_str(d));
        } else {
            cJSON *j = to_json(y, d);
            *dst[i] = cJSON_PrintUnformatted(j);
            cJSON_Delete(j);
        }
    }
    return FLAME_OK;
}

static flame_status parse_doc(fl_yaml *y, flame_application *a)
{
    /* a misspelt key is an error, not a silently ignored setting */
    static const char *const top_keys[] = { "metadata", "spec", NULL };
    static const char *const md_keys[] = { "name", NULL };
    static const char *const spec_keys[] = {
        "shim", "description", "labels", "image", "command", "arguments", "environments",
        "working_directory", "max_instances", "delay_release", "schema", "url", "installer",
        "sandbox", "network", "sandbox_reuse", "stdio_mode", "rest_url", "rest_health", NULL,
    };
    static const char *const schema_keys[] = { "input", "output", "common_data", NULL };
    yaml_node_t *root = fl_yaml_root(y);
    yaml_node_t *md = fl_yaml_get(y, root, "metadata");
    yaml_node_t *sp = fl_yaml_get(y, root, "spec");
    flame_status st;
    if ((st = fl_yaml_check_keys(y, root, "", top_keys)) ||
        (st = fl_yaml_check_keys(y, md, "metadata", md_keys)) ||
        (st = fl_yaml_check_keys(y, sp, "spec", spec_keys)) ||
        (st = fl_yaml_check_keys(y, fl_yaml_get(y, sp, "schema"), "spec.schema", schema_keys)))
        return st;
    const char *name = fl_yaml_str(fl_yaml_get(y, md, "name"));
    if (!name || !*name)
        return bad(y, md ? md : root, "metadata.name", "missing");
    a->name = fl_strdup(name);
    flame_application_spec *s = fl_malloc(sizeof *s);
    *s = (flame_application_spec)FLAME_APPLICATION_SPEC_INIT;
    a->spec = s;
    yaml_node_t *spec = fl_yaml_get(y, root, "spec");
    if (!spec || fl_yaml_is_null(spec))
        return FLAME_OK; /* an application with no command at all is allowed */
    if (spec->type != YAML_MAPPING_NODE)
        return bad(y, spec, "spec", "expected a mapping");
    yaml_node_t *v = fl_yaml_get(y, spec, "shim");
    if (v && !fl_yaml_is_null(v)) {
        const char *sh = fl_yaml_str(v);
        if (sh && strcasecmp(sh, "host") == 0)
            s->shim = FLAME_SHIM_HOST;
        else if (sh && strcasecmp(sh, "wasm") == 0)
            s->shim = FLAME_SHIM_WASM;
        else if (sh && strcasecmp(sh, "cri") == 0)
            s->shim = FLAME_SHIM_CRI;
        else if (sh && strcasecmp(sh, "stdio") == 0)
            s->shim = FLAME_SHIM_STDIO;
        else if (sh && strcasecmp(sh, "rest") == 0)
            s->shim = FLAME_SHIM_REST;
        else
            return bad(y, v, "spec.shim", "expected Host, Wasm, Cri, Stdio or Rest");
    }
    if ((st = str_field(y, spec, "description", &s->description)) ||
        (st = str_field(y, spec, "image", &s->image)) ||
        (st = str_field(y, spec, "command", &s->command)) ||
        (st = str_field(y, spec, "working_directory", &s->working_directory)) ||
        (st = str_field(y, spec, "url", &s->url)) ||
        (st = str_field(y, spec, "installer", &s->installer)) ||
        (st = str_field(y, spec, "sandbox", &s->sandbox)) ||
        (st = str_field(y, spec, "network", &s->network)) ||
        (st = str_field(y, spec, "stdio_mode", &s->stdio_mode)) ||
        (st = str_field(y, spec, "rest_url", &s->rest_url)) ||
        (st = str_field(y, spec, "rest_health", &s->rest_health)) ||
        (st = str_list(y, spec, "labels", &s->labels, &s->labels_len)) ||
        (st = str_list(y, spec, "arguments", &s->arguments, &s->arguments_len)) ||
        (st = envs(y, spec, s)) || (st = schema(y, spec, s)))
        return st;
    v = fl_yaml_get(y, spec, "sandbox_reuse");
    if (v && !fl_yaml_is_null(v)) {
        const char *t = fl_yaml_str(v);
        if (t && strcmp(t, "true") == 0)
            s->sandbox_reuse = 1;
        else if (!t || strcmp(t, "false") != 0)
            return bad(y, v, "spec.sandbox_reuse", "expected true or false");
    }
    if (s->sandbox && !fl_sandbox_level_known(s->sandbox))
        return bad(y, fl_yaml_get(y, spec, "sandbox"), "spec.sandbox",
                   "expected none, process or microvm");
    if (s->network && strcmp(s->network, "none") != 0 && strcmp(s->network, "host") != 0)
        return bad(y, fl_yaml_get(y, spec, "network"), "spec.network", "expected none or host");
    if (s->stdio_mode && strcmp(s->stdio_mode, "frame") != 0 && strcmp(s->stdio_mode, "line") != 0)
        return bad(y, fl_yaml_get(y, spec, "stdio_mode"), "spec.stdio_mode",
                   "expected frame or line");
    if (s->working_directory && s->working_directory[0] != '/')
        return bad(y, fl_yaml_get(y, spec, "working_directory"), "spec.working_directory",
                   "must be an absolute path");
    v = fl_yaml_get(y, spec, "max_instances");
    if (v && !fl_yaml_is_null(v)) {
        int64_t x;
        if ((st = fl_yaml_int(y, v, "spec.max_instances", &x)))
            return st;
        if (x < 0 || x > UINT32_MAX)
            return bad(y, v, "spec.max_instances", "must be between 0 and 4294967295");
        s->has_max_instances = 1;
        s->max_instances = (uint32_t)x;
    }
    v = fl_yaml_get(y, spec, "delay_release");
    if (v && !fl_yaml_is_null(v)) {
        int64_t x;
        const char *t = fl_yaml_str(v);
        size_t tl = t ? strlen(t) : 0;
        if (tl > 1 && t[tl - 1] == 's') { /* "60s" */
            char buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)(tl - 1), t);
            char *end;
            x = strtoll(buf, &end, 10);
            if (*end || !*buf)
                return bad(y, v, "spec.delay_release", "expected seconds, e.g. 60 or 60s");
        } else if ((st = fl_yaml_int(y, v, "spec.delay_release", &x))) {
            return st;
        }
        if (x < 0)
            return bad(y, v, "spec.delay_release", "must not be negative");
        s->has_delay_release = 1;
        s->delay_release = x;
    }
    return FLAME_OK;
}

flame_status flame_application_file_load(flame_application ***out, size_t *count, const char *path)
{
    if (!out || !count || !path)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "flame_application_file_load: bad arguments");
    fl_yaml *docs;
    size_t n;
    flame_status st = fl_yaml_load_all(&docs, &n, path);
    if (st)
        return st;
    if (n == 0) {
        fl_yaml_free_all(docs, n);
        return fl_error(FLAME_ERR_CONFIG, "%s: no application in the file", path);
    }
    flame_application **v = fl_calloc(n + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n && !st; i++) {
        v[k] = fl_calloc(1, sizeof *v[k]);
        st = parse_doc(&docs[i], v[k]);
        k++;
    }
    fl_yaml_free_all(docs, n);
    if (st) {
        flame_application_list_free(v, k);
        return st;
    }
    *out = v;
    *count = k;
    return FLAME_OK;
}
