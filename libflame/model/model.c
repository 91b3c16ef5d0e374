#include "model.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/util.h"

void fl_events_add(fl_events *e, int32_t code, const char *message, int64_t time)
{
    uint32_t i = e->n;
    if (i >= FL_EVENTS_INLINE) {
        uint32_t k = i - FL_EVENTS_INLINE;
        if (k >= (uint32_t)e->cap) {
            e->cap = e->cap ? (uint16_t)(e->cap * 2) : 4;
            e->more = fl_realloc(e->more, e->cap * sizeof *e->more);
        }
        e->more[k] = (fl_event_c){ time, code };
    } else {
        e->inl[i] = (fl_event_c){ time, code };
    }
    if (message || e->msgs) {
        uint32_t need = i + 1;
        if (need > e->mcap) {
            uint32_t nc = e->mcap ? e->mcap * 2u : FL_EVENTS_INLINE;
            while (nc < need)
                nc *= 2;
            e->msgs = fl_realloc(e->msgs, nc * sizeof *e->msgs);
            memset(e->msgs + e->mcap, 0, (nc - e->mcap) * sizeof *e->msgs);
            e->mcap = (uint16_t)nc;
        }
        e->msgs[i] = fl_strdup(message);
    }
    e->n++;
}

fl_event fl_events_get(const fl_events *e, uint32_t i)
{
    fl_event_c c = i < FL_EVENTS_INLINE ? e->inl[i] : e->more[i - FL_EVENTS_INLINE];
    return (fl_event){ c.code, e->msgs ? e->msgs[i] : NULL, c.time };
}

void fl_events_truncate(fl_events *e, uint32_t n)
{
    for (; e->n > n; e->n--)
        if (e->msgs) {
            free(e->msgs[e->n - 1]);
            e->msgs[e->n - 1] = NULL;
        }
}

void fl_events_free(fl_events *e)
{
    if (e->msgs)
        for (uint32_t i = 0; i < e->n; i++)
            free(e->msgs[i]);
    free(e->msgs);
    free(e->more);
    memset(e, 0, sizeof *e);
}

const char *fl_event_default_message(int32_t code)
{
    switch (code) {
    /* Flame's words (its storage layer's task events) */
    case FLAME_TASK_PENDING: return "Task was created with state <Pending>";
    case FLAME_TASK_RUNNING: return "Task was running with state <Running>";
    case FLAME_TASK_SUCCEED: return "Task was completed with state <Succeed>";
    case FLAME_TASK_FAILED: return "Task was completed with state <Failed>";
    case FLAME_TASK_CANCELLED: return "Task was completed with state <Cancelled>";
    default: return NULL;
    }
}

/* ---- applications ------------------------------------------------------- */

static bool json_valid(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    if (!j)
        return false;
    cJSON_Delete(j);
    return true;
}

bool fl_sandbox_level_known(const char *level)
{
    return strcmp(level, "none") == 0 || strcmp(level, "process") == 0 ||
           strcmp(level, "microvm") == 0;
}

flame_status fl_app_validate(const char *name, const fl_app_spec *spec)
{
    const char *why;
    if (!fl_name_valid(name, &why))
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "invalid application name \"%.64s\": it %s",
                        name ? name : "", why);
    if (!spec)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "application %s: no spec given", name);
    if (spec->shim != FLAME_SHIM_HOST && spec->shim != FLAME_SHIM_WASM &&
        spec->shim != FLAME_SHIM_CRI && spec->shim != FLAME_SHIM_STDIO &&
        spec->shim != FLAME_SHIM_REST)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "application %s: unknown shim %d", name,
                        spec->shim);
    if (spec->stdio_mode && spec->stdio_mode[0] && strcmp(spec->stdio_mode, "frame") != 0 &&
        strcmp(spec->stdio_mode, "line") != 0)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "application %s: stdio_mode \"%.32s\" is neither frame nor line", name,
                        spec->stdio_mode);
    if (spec->working_directory && spec->working_directory[0] != '/')
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "application %s: working_directory \"%s\" is not an absolute path", name,
                        spec->working_directory);
    /* a relative path would be looked up in the service's own directory,
     * never the registering user's: refused unless working_directory (or
     * an installed package, url) says where it is; bare names are looked
     * up on PATH and $VARs are expanded by the executor manager */
    const char *cmd = spec->command;
    if (cmd && cmd[0] && cmd[0] != '/' && cmd[0] != '$' && strchr(cmd, '/') &&
        !spec->working_directory && !spec->url)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "application %s: command \"%s\" is a relative path; give an absolute "
                        "path, a program name found on PATH, or a working_directory it is "
                        "relative to", name, cmd);
    if (spec->has_delay_release && spec->delay_release < 0)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "application %s: delay_release is negative",
                        name);
    for (size_t i = 0; i < spec->n_environments; i++) {
        const char *env = spec->environments[i].name ? spec->environments[i].name : "";
        if (!env[0] || strchr(env, '='))
            return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                            "application %s: environment variable name \"%s\" is invalid", name,
                            env);
    }
    if (spec->sandbox && !fl_sandbox_level_known(spec->sandbox))
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "application %s: sandbox \"%.32s\" is not one of none, process, microvm",
                        name, spec->sandbox);
    if (spec->network && strcmp(spec->network, "none") != 0 && strcmp(spec->network, "host") != 0)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                        "application %s: network \"%.32s\" is not one of none, host", name,
                        spec->network);
    const char *docs[3] = { spec->schema_input, spec->schema_output, spec->schema_common_data };
    const char *names[3] = { "input", "output", "common_data" };
    for (int i = 0; i < 3; i++)
        if (docs[i] && !json_valid(docs[i]))
            return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                            "application %s: schema.%s is not valid JSON", name, names[i]);
    return FLAME_OK;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void fl_app_spec_free(fl_app_spec *spec)
{
    if (!spec)
        return;
    free(spec->description);
    free_strv(spec->labels, spec->n_labels);
    free(spec->image);
    free(spec->command);
    free_strv(spec->arguments, spec->n_arguments);
    for (size_t i = 0; i < spec->n_environments; i++) {
        free(spec->environments[i].name);
        free(spec->environments[i].value);
    }
    free(spec->environments);
    free(spec->working_directory);
    free(spec->schema_input);
    free(spec->schema_output);
    free(spec->schema_common_data);
    free(spec->url);
    free(spec->installer);
    free(spec->sandbox);
    free(spec->network);
    free(spec->stdio_mode);
    free(spec->owner);
    free(spec);
}

fl_app *fl_app_new(const char *name, fl_app_spec *spec, const uint8_t *blob, size_t len,
                   int64_t ctime)
{
    fl_app *a = fl_calloc(1, sizeof *a);
    a->name = fl_strdup(name);
    a->spec = spec;
    a->blob = fl_memdup(blob, len ? len : 1);
    a->blob_len = len;
    a->ctime = ctime;
    a->state = FLAME_APPLICATION_ENABLED;
    return a;
}

void fl_app_free(fl_app *a)
{
    if (!a)
        return;
    fl_app_spec_free(a->spec);
    free(a->blob);
    free(a->name);
    free(a);
}

/* ---- sessions ----------------------------------------------------------- */

static flame_resreq spec_resreq(const fl_session_spec *spec, const flame_resreq *dflt)
{
    if (spec->has_resreq)
        return spec->resreq;
    return dflt ? *dflt : (flame_resreq){ 1, 0, 0 };
}

fl_session *fl_session_new(const char *id, const fl_session_spec *spec,
                           const flame_resreq *dflt, int64_t now)
{
    fl_session *s = fl_calloc(1, sizeof *s);
    s->id = fl_strdup(id);
    s->app = fl_strdup(spec->application);
    s->owner = fl_strdup("");
    if (spec->has_common_data) {
        s->has_common_data = true;
        s->common_data_len = spec->common_data_len;
        s->common_data = fl_memdup(spec->common_data ? spec->common_data : (const uint8_t *)"",
                                   spec->common_data_len ? spec->common_data_len : 1);
    }
    s->min_instances = spec->min_instances;
    s->has_max = spec->has_max_instances;
    s->max_instances = spec->max_instances;
    s->priority = spec->priority;
    s->batch_size = spec->batch_size ? spec->batch_size : 1;
    size_t nt = spec->n_tokens < FL_MAX_TOKENS ? spec->n_tokens : FL_MAX_TOKENS;
    if (nt) {
        s->tokens = fl_calloc(2 * nt, sizeof *s->tokens);
        for (size_t i = 0; i < 2 * nt; i++)
            s->tokens[i] = fl_strdup(spec->tokens[i] ? spec->tokens[i] : "");
        s->n_tokens = (uint32_t)nt;
    }
    s->resreq = spec_resreq(spec, dflt);
    s->state = FLAME_SESSION_OPEN;
    s->ctime = now;
    return s;
}

void fl_session_free(fl_session *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->ntasks; i++)
        fl_task_free(s->tasks[i]);
    free(s->tasks);
    fl_events_free(&s->events);
    free(s->common_data);
    for (uint32_t i = 0; i < 2 * s->n_tokens; i++)
        free(s->tokens[i]);
    free(s->tokens);
    free(s->app);
    free(s->owner);
    free(s->id);
    free(s);
}

bool fl_session_spec_matches(const fl_session *s, const fl_session_spec *spec,
                             const flame_resreq *dflt, const char **why)
{
    flame_resreq r = spec_resreq(spec, dflt);
    const char *w = NULL;
    if (strcmp(s->app, spec->application) != 0)
        w = "application";
    else if (r.cpu != s->resreq.cpu || r.memory != s->resreq.memory || r.gpu != s->resreq.gpu)
        w = "resreq";
    else if (s->min_instances != spec->min_instances)
        w = "min_instances";
    else if (s->has_max != spec->has_max_instances ||
             (s->has_max && s->max_instances != spec->max_instances))
        w = "max_instances";
    else if (s->priority != spec->priority)
        w = "priority";
    if (why)
        *why = w;
    return w == NULL;
}

flame_status fl_session_close(fl_session *s, int64_t now, fl_task ***changed, size_t *n_changed)
{
    *changed = NULL;
    *n_changed = 0;
    if (s->state == FLAME_SESSION_CLOSED)
        return FLAME_OK;
    if (s->counts[FLAME_TASK_RUNNING] > 0)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION,
                        "session %s has %d running task(s); close it after they complete", s->id,
                        s->counts[FLAME_TASK_RUNNING]);
    size_t n = (size_t)s->counts[FLAME_TASK_PENDING];
    fl_task **v = n ? fl_malloc(n * sizeof *v) : NULL;
    size_t k = 0;
    for (uint32_t i = 0; i < s->ntasks && k < n; i++) {
        fl_task *t = s->tasks[i];
        if (t && t->state == FLAME_TASK_PENDING) {
            fl_task_set_state(s, t, FLAME_TASK_CANCELLED, "session closed", now);
            v[k++] = t;
        }
    }
    s->state = FLAME_SESSION_CLOSED;
    s->etime = now;
    *changed = v;
    *n_changed = k;
    return FLAME_OK;
}

flame_status fl_session_suspend(fl_session *s, bool held)
{
    if (s->state == FLAME_SESSION_CLOSED)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "session %s is closed", s->id);
    if (s->state == FLAME_SESSION_OPEN)
        s->state = held || s->counts[FLAME_TASK_RUNNING] ? FLAME_SESSION_SUSPENDING
                                                         : FLAME_SESSION_SUSPENDED;
    return FLAME_OK;
}

flame_status fl_session_resume(fl_session *s)
{
    if (s->state == FLAME_SESSION_CLOSED)
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "session %s is closed", s->id);
    s->state = FLAME_SESSION_OPEN;
    return FLAME_OK;
}

bool fl_session_suspend_done(fl_session *s, bool held)
{
    if (s->state != FLAME_SESSION_SUSPENDING || held || s->counts[FLAME_TASK_RUNNING])
        return false;
    s->state = FLAME_SESSION_SUSPENDED;
    return true;
}

/* ---- tasks -------------------------------------------------------------- */

static void reserve_tasks(fl_session *s, uint32_t n)
{
    if (n <= s->cap)
        return;
    uint32_t cap = s->cap ? s->cap : 16;
    while (cap < n)
        cap *= 2;
    s->tasks = fl_realloc(s->tasks, cap * sizeof *s->tasks);
    memset(s->tasks + s->cap, 0, (cap - s->cap) * sizeof *s->tasks);
    s->cap = cap;
}

fl_task *fl_session_add_task(fl_session *s, const uint8_t *input, size_t len, bool has_input,
                             int64_t now)
{
    /* one allocation for the task and its input (inputs never change) */
    fl_task *t = fl_calloc(1, sizeof *t + (has_input ? len : 0));
    t->id = s->ntasks + 1;
    t->state = FLAME_TASK_PENDING;
    t->ctime = now;
    if (has_input) {
        t->has_input = true;
        t->input_len = (uint32_t)len;
        if (len) {
            t->input = (uint8_t *)(t + 1);
            t->input_inline = true;
            memcpy(t->input, input, len);
        }
    }
    fl_events_add(&t->events, FLAME_TASK_PENDING, NULL, now);
    reserve_tasks(s, s->ntasks + 1);
    s->tasks[s->ntasks++] = t;
    s->counts[FLAME_TASK_PENDING]++;
    return t;
}

void fl_session_put_task(fl_session *s, fl_task *t)
{
    reserve_tasks(s, t->id);
    if (s->tasks[t->id - 1]) {
        s->counts[s->tasks[t->id - 1]->state]--;
        fl_task_free(s->tasks[t->id - 1]);
    }
    s->tasks[t->id - 1] = t;
    if (t->id > s->ntasks)
        s->ntasks = t->id;
    s->counts[t->state]++;
}

fl_task *fl_session_task(const fl_session *s, const char *task_id)
{
    if (!task_id || !*task_id)
        return NULL;
    char *end;
    unsigned long id = strtoul(task_id, &end, 10);
    if (*end || id == 0 || id > s->ntasks)
        return NULL;
    return s->tasks[id - 1];
}

bool fl_task_terminal(int state)
{
    return state == FLAME_TASK_SUCCEED || state == FLAME_TASK_FAILED ||
           state == FLAME_TASK_CANCELLED;
}

bool fl_task_transition_ok(int from, int to)
{
    switch (from) {
    case FLAME_TASK_PENDING:
        return to == FLAME_TASK_RUNNING || to == FLAME_TASK_CANCELLED || to == FLAME_TASK_FAILED;
    case FLAME_TASK_RUNNING:
        /* back to Pending when its executor is lost or the manager restarts */
        return to == FLAME_TASK_SUCCEED || to == FLAME_TASK_FAILED || to == FLAME_TASK_PENDING ||
               to == FLAME_TASK_CANCELLED;
    default:
        return false; /* terminal states are final */
    }
}

flame_status fl_task_set_state(fl_session *s, fl_task *t, int to, const char *message, int64_t now)
{
    if (!fl_task_transition_ok(t->state, to))
        return fl_error(FLAME_ERR_FAILED_PRECONDITION, "task %s/%u cannot go from %s to %s",
                        s->id, t->id, flame_task_state_str(t->state), flame_task_state_str(to));
    s->counts[t->state]--;
    s->counts[to]++;
    t->state = (uint8_t)to;
    if (fl_task_terminal(to))
        t->etime = now;
    fl_events_add(&t->events, to, message, now);
    return FLAME_OK;
}

void fl_task_free(fl_task *t)
{
    if (!t)
        return;
    if (!t->input_inline)
        free(t->input);
    free(t->output);
    free(t->affinity);
    fl_events_free(&t->events);
    free(t);
}

bool fl_affinity_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **key,
                      size_t *klen)
{
    if (!p || *off >= len || len - *off < 4)
        return false;
    const uint8_t *h = p + *off;
    uint32_t n = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    if (n > len - *off - 4)
        return false;
    *key = h + 4;
    *klen = n;
    *off += 4 + (size_t)n;
    return true;
}

bool fl_affinity_valid(const uint8_t *p, size_t len)
{
    if (len > FL_MAX_AFFINITY_BYTES)
        return false;
    size_t off = 0, n = 0, klen;
    const uint8_t *key;
    while (fl_affinity_next(p, len, &off, &key, &klen))
        n++;
    return off == len && n <= FL_MAX_AFFINITY;
}
