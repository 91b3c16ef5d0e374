/* flmctl: Flame's control tool, written only against client.h. Its list
 * tables and view labels are Flame's flmctl's (scripts parse them); what we
 * show beyond Flame comes after Flame's lines. */
#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <flame/flame.h>

#include "table.h"

static const char *prog = "flmctl";

static int fail(void)
{
    fprintf(stderr, "%s: %s\n", prog, flame_error_last());
    return 1;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "%s: %s (see flmctl --help)\n", prog, msg);
    return 2;
}

/* What the options of a command line set; each command reads its own. */
typedef struct cmd_args {
    const char *a, *s, *t, *p, *r, *f, *n;
    char what;          /* list: 'a', 's', 'e' or 'n' */
    int json;           /* -o json */
    int wide;           /* list -o wide: our columns after Flame's */
    const char *state;  /* list -s --state */
    const char *app;    /* list -s --app */
    long limit;         /* list -s --limit; < 0: all */
    long interval_ms;   /* watch --interval */
} cmd_args;

/* ---- formatting as Flame's flmctl prints ------------------------------- */

/* Unix ms -> local "HH:MM:SS" (with_ms: "HH:MM:SS.mmm"); "-" for 0. */
static void format_clock(char *buf, size_t n, int64_t ms, int with_ms)
{
    if (ms <= 0) {
        snprintf(buf, n, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    size_t l = strftime(buf, n, "%H:%M:%S", &tm);
    if (with_ms && l)
        snprintf(buf + l, n - l, ".%03d", (int)(ms % 1000));
}

/* A label line of flmctl view: Flame pads labels with {:<15}. */
static void label(const char *name, const char *value)
{
    printf("%-15s%s\n", name, value ? value : "");
}

static void print_events(const flame_event *ev, size_t n)
{
    printf("Events:\n");
    for (size_t i = 0; i < n; i++) {
        char t[32];
        format_clock(t, sizeof t, ev[i].creation_time, 1);
        printf("  %s: %s (%d)\n", t, ev[i].message ? ev[i].message : "", ev[i].code);
    }
}

static void print_json(cJSON *o)
{
    char *txt = cJSON_Print(o);
    printf("%s\n", txt ? txt : "null");
    free(txt);
    cJSON_Delete(o);
}

/* ---- list --------------------------------------------------------------- */

static int list_apps(flame_client *c, int wide)
{
    flame_application **v;
    size_t n;
    if (flame_application_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "Name", "State", "Shim", "Tags", "Created", "Command",
                                 "Sandbox", "Network" };
    cli_table t;
    cli_table_init(&t, wide ? 8 : 6, hdr);
    for (size_t i = 0; i < n; i++) {
        char created[32], tags[256] = "";
        format_clock(created, sizeof created, v[i]->creation_time, 0);
        for (size_t k = 0, o = 0; k < v[i]->spec->labels_len && o < sizeof tags; k++)
            o += (size_t)snprintf(tags + o, sizeof tags - o, "%s%s", k ? "," : "",
                                  v[i]->spec->labels[k]);
        const char *row[] = { v[i]->name,
                              v[i]->state == FLAME_APPLICATION_ENABLED ? "Enabled" : "Disabled",
                              flame_shim_str(v[i]->spec->shim), tags, created,
                              v[i]->spec->command ? v[i]->spec->command : "",
                              v[i]->spec->sandbox ? v[i]->spec->sandbox : "default",
                              v[i]->spec->network ? v[i]->spec->network : "none" };
        cli_table_row(&t, row);
    }
    cli_table_print_comfy(&t);
    cli_table_free(&t);
    flame_application_list_free(v, n);
    return 0;
}

/* Open sessions first (as Flame lists them), each group in creation order. */
static int session_order(const void *a, const void *b)
{
    const flame_session_info *x = *(flame_session_info *const *)a,
                             *y = *(flame_session_info *const *)b;
    if ((x->state == FLAME_SESSION_OPEN) != (y->state == FLAME_SESSION_OPEN))
        return x->state == FLAME_SESSION_OPEN ? -1 : 1;
    return (x->creation_time > y->creation_time) - (x->creation_time < y->creation_time);
}

static int list_sessions(flame_client *c, const cmd_args *x)
{
    flame_session_info **v;
    size_t n;
    if (flame_session_list(&v, &n, c))
        return fail();
    qsort(v, n, sizeof *v, session_order);
    static const char *hdr[] = { "ID", "State", "App", "Resources", "Priority", "Pending",
                                 "Running", "Succeed", "Failed", "Created", "Cancelled",
                                 "Completed" };
    cli_table t;
    cli_table_init(&t, x->wide ? 12 : 10, hdr);
    long shown = 0;
    for (size_t i = 0; i < n && (x->limit < 0 || shown < x->limit); i++) {
        const flame_session_info *s = v[i];
        if (x->state && strcasecmp(x->state, flame_session_state_str(s->state)) != 0)
            continue;
        if (x->app && strcmp(x->app, s->spec->application) != 0)
            continue;
        char rr[64], prio[16], pe[16], ru[16], su[16], fa[16], created[32], ca[16], done[32];
        cli_format_resreq(rr, sizeof rr, &s->spec->resreq);
        snprintf(prio, sizeof prio, "%u", s->spec->priority);
        snprintf(pe, sizeof pe, "%d", s->pending);
        snprintf(ru, sizeof ru, "%d", s->running);
        snprintf(su, sizeof su, "%d", s->succeed);
        snprintf(fa, sizeof fa, "%d", s->failed);
        format_clock(created, sizeof created, s->creation_time, 0);
        snprintf(ca, sizeof ca, "%d", s->cancelled);
        format_clock(done, sizeof done, s->completion_time, 0);
        const char *row[] = { s->id, flame_session_state_str(s->state), s->spec->application, rr,
                              prio, pe, ru, su, fa, created, ca, done };
        cli_table_row(&t, row);
        shown++;
    }
    cli_table_print_comfy(&t);
    cli_table_free(&t);
    flame_session_info_list_free(v, n);
    return 0;
}

static int list_executors(flame_client *c, int wide)
{
    flame_executor_info **v;
    size_t n;
    if (flame_executor_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "ID", "State", "Session", "Node", "Resources", "Shim" };
    cli_table t;
    cli_table_init(&t, wide ? 6 : 4, hdr);
    for (size_t i = 0; i < n; i++) {
        char rr[64];
        cli_format_resreq(rr, sizeof rr, &v[i]->resreq);
        const char *row[] = { v[i]->id, flame_executor_state_str(v[i]->state),
                              v[i]->session_id && *v[i]->session_id ? v[i]->session_id : "-",
                              v[i]->node, rr, flame_shim_str(v[i]->shim) };
        cli_table_row(&t, row);
    }
    cli_table_print_comfy(&t);
    cli_table_free(&t);
    flame_executor_info_list_free(v, n);
    return 0;
}

static int list_nodes(flame_client *c, int wide)
{
    flame_node_info **v;
    size_t n;
    if (flame_node_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "NAME", "HOSTNAME", "STATUS", "CPU", "MEMORY", "ARCH", "OS",
                                 "ALLOCATABLE", "HEARTBEAT" };
    cli_table t;
    cli_table_init(&t, wide ? 9 : 7, hdr);
    for (size_t i = 0; i < n; i++) {
        char cpu[32], mem[32], alloc[64], hb[32];
        snprintf(cpu, sizeof cpu, "%llu", (unsigned long long)v[i]->capacity.cpu);
        cli_format_mem(mem, sizeof mem, v[i]->capacity.memory);
        cli_format_resreq(alloc, sizeof alloc, &v[i]->allocatable);
        format_clock(hb, sizeof hb, v[i]->last_heartbeat_time * 1000, 0);
        const char *row[] = { v[i]->name, v[i]->hostname ? v[i]->hostname : "",
                              flame_node_state_str(v[i]->state), cpu, mem, v[i]->arch, v[i]->os,
                              alloc, hb };
        cli_table_row(&t, row);
    }
    cli_table_print_comfy(&t);
    cli_table_free(&t);
    flame_node_info_list_free(v, n);
    return 0;
}

/* ---- view --------------------------------------------------------------- */

static cJSON *events_json(const flame_event *ev, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "code", ev[i].code);
        if (ev[i].message)
            cJSON_AddStringToObject(e, "message", ev[i].message);
        cJSON_AddNumberToObject(e, "creation_time", (double)ev[i].creation_time);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static void add_bytes(cJSON *o, const char *key, const flame_bytes *b)
{
    if (!b->data)
        return;
    char *s = malloc(b->len + 1);
    if (!s)
        return;
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    if (strlen(s) == b->len)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNumberToObject(o, key, (double)b->len); /* binary: its size */
    free(s);
}

static cJSON *task_json(const flame_task *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "session_id", t->session_id);
    cJSON_AddStringToObject(o, "state", flame_task_state_str(t->state));
    cJSON_AddNumberToObject(o, "creation_time", (double)t->creation_time);
    if (t->completion_time)
        cJSON_AddNumberToObject(o, "completion_time", (double)t->completion_time);
    add_bytes(o, "input", &t->input);
    add_bytes(o, "output", &t->output);
    cJSON_AddItemToObject(o, "events", events_json(t->events, t->events_len));
    return o;
}

static int view_task(flame_client *c, const char *sid, const char *tid, int json)
{
    flame_session *s;
    if (flame_session_attach(&s, c, sid))
        return fail();
    flame_task *t;
    flame_status st = flame_task_get(&t, s, tid);
    flame_session_free(s);
    if (st)
        return fail();
    if (json) {
        print_json(task_json(t));
    } else {
        flame_session_info *si = NULL;
        flame_session_get(&si, c, sid); /* for the application's name only */
        char created[32], done[32], in[256], out[256];
        cli_format_time(created, sizeof created, t->creation_time);
        cli_format_time(done, sizeof done, t->completion_time);
        cli_format_bytes(in, sizeof in, &t->input);
        cli_format_bytes(out, sizeof out, &t->output);
        label("Task:", t->id);
        label("Session:", t->session_id);
        label("Application:", si ? si->spec->application : "-");
        label("State:", flame_task_state_str(t->state));
        label("Creation Time:", created);
        label("Completion:", done);
        label("Input:", in);
        label("Output:", out);
        print_events(t->events, t->events_len);
        flame_session_info_free(si);
    }
    flame_task_free(t);
    return 0;
}

static int view_session(flame_client *c, const char *sid, int json)
{
    flame_session_info *s;
    if (flame_session_get(&s, c, sid))
        return fail();
    char rr[64];
    cli_format_resreq(rr, sizeof rr, &s->spec->resreq);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", s->id);
        cJSON_AddStringToObject(o, "application", s->spec->application);
        cJSON_AddStringToObject(o, "state", flame_session_state_str(s->state));
        cJSON_AddNumberToObject(o, "priority", s->spec->priority);
        cJSON_AddStringToObject(o, "resreq", rr);
        cJSON_AddNumberToObject(o, "min_instances", s->spec->min_instances);
        if (s->spec->has_max_instances)
            cJSON_AddNumberToObject(o, "max_instances", s->spec->max_instances);
        cJSON_AddNumberToObject(o, "creation_time", (double)s->creation_time);
        if (s->completion_time)
            cJSON_AddNumberToObject(o, "completion_time", (double)s->completion_time);
        cJSON_AddNumberToObject(o, "pending", s->pending);
        cJSON_AddNumberToObject(o, "running", s->running);
        cJSON_AddNumberToObject(o, "succeed", s->succeed);
        cJSON_AddNumberToObject(o, "failed", s->failed);
        cJSON_AddNumberToObject(o, "cancelled", s->cancelled);
        cJSON_AddItemToObject(o, "events", events_json(s->events, s->events_len));
        flame_session *h;
        flame_task **tasks = NULL;
        size_t nt = 0;
        if (flame_session_attach(&h, c, sid) == FLAME_OK) {
            if (flame_task_list(&tasks, &nt, h) != FLAME_OK) {
                flame_session_free(h);
                flame_session_info_free(s);
                cJSON_Delete(o);
                return fail();
            }
            flame_session_free(h);
        }
        cJSON *ta = cJSON_AddArrayToObject(o, "tasks");
        for (size_t i = 0; i < nt; i++) {
            cJSON_AddItemToArray(ta, task_json(tasks[i]));
            flame_task_free(tasks[i]);
        }
        free(tasks);
        print_json(o);
    } else {
        char created[32], done[32], tasks[160], prio[16], inst[48], cancelled[16];
        cli_format_time(created, sizeof created, s->creation_time);
        cli_format_time(done, sizeof done, s->completion_time);
        snprintf(tasks, sizeof tasks, "%d pending, %d running, %d succeed, %d failed",
                 s->pending, s->running, s->succeed, s->failed);
        snprintf(prio, sizeof prio, "%u", s->spec->priority);
        if (s->spec->has_max_instances)
            snprintf(inst, sizeof inst, "min %u, max %u", s->spec->min_instances,
                     s->spec->max_instances);
        else
            snprintf(inst, sizeof inst, "min %u, max -", s->spec->min_instances);
        snprintf(cancelled, sizeof cancelled, "%d", s->cancelled);
        label("Session:", s->id);
        label("Application:", s->spec->application);
        label("State:", flame_session_state_str(s->state));
        label("Resources:", rr);
        label("Creation Time:", created);
        label("Tasks:", tasks);
        /* ours, after Flame's lines */
        label("Cancelled:", cancelled);
        label("Priority:", prio);
        label("Instances:", inst);
        label("Completion:", done);
        print_events(s->events, s->events_len);
    }
    flame_session_info_free(s);
    return 0;
}

static int view_app(flame_client *c, const char *name, int json)
{
    flame_application *a;
    if (flame_application_get(&a, c, name))
        return fail();
    const flame_application_spec *s = a->spec;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", a->name);
        cJSON_AddStringToObject(o, "state", a->state == FLAME_APPLICATION_ENABLED ? "Enabled" : "Disabled");
        cJSON_AddStringToObject(o, "shim", flame_shim_str(s->shim));
        cJSON_AddNumberToObject(o, "creation_time", (double)a->creation_time);
#define JSTR(k, v) if (v) cJSON_AddStringToObject(o, k, v)
        JSTR("description", s->description);
        JSTR("image", s->image);
        JSTR("command", s->command);
        JSTR("working_directory", s->working_directory);
        JSTR("url", s->url);
        JSTR("installer", s->installer);
        cJSON_AddStringToObject(o, "sandbox", s->sandbox ? s->sandbox : "default");
        cJSON_AddStringToObject(o, "network", s->network ? s->network : "none");
        cJSON_AddBoolToObject(o, "sandbox_reuse", s->sandbox_reuse != 0);
        if (s->arguments_len)
            cJSON_AddItemToObject(o, "arguments", cJSON_CreateStringArray(s->arguments, (int)s->arguments_len));
        if (s->labels_len)
            cJSON_AddItemToObject(o, "labels", cJSON_CreateStringArray(s->labels, (int)s->labels_len));
        if (s->environments_len) {
            cJSON *e = cJSON_CreateObject();
            for (size_t i = 0; i < s->environments_len; i++)
                cJSON_AddStringToObject(e, s->environments[i].name, s->environments[i].value);
            cJSON_AddItemToObject(o, "environments", e);
        }
        if (s->has_max_instances)
            cJSON_AddNumberToObject(o, "max_instances", s->max_instances);
        if (s->has_delay_release)
            cJSON_AddNumberToObject(o, "delay_release", (double)s->delay_release);
        JSTR("schema_input", s->schema_input);
        JSTR("schema_output", s->schema_output);
        JSTR("schema_common_data", s->schema_common_data);
#undef JSTR
        print_json(o);
    } else {
        char args[512] = "", buf[32], created[32];
        for (size_t i = 0, o = 0; i < s->arguments_len && o < sizeof args; i++)
            o += (size_t)snprintf(args + o, sizeof args - o, "%s%s", i ? " " : "", s->arguments[i]);
        label("Name:", a->name);
        label("Description:", s->description);
        label("Shim:", flame_shim_str(s->shim));
        label("Image:", s->image);
        label("URL:", s->url);
        label("Installer:", s->installer);
        label("Labels:", "");
        for (size_t i = 0; i < s->labels_len; i++)
            printf("\t%s\n", s->labels[i]);
        label("Command:", s->command);
        label("Arguments:", args);
        label("Environments:", "");
        for (size_t i = 0; i < s->environments_len; i++)
            printf("\t%s: %s\n", s->environments[i].name, s->environments[i].value);
        label("WorkingDir:", s->working_directory);
        snprintf(buf, sizeof buf, "%u", s->max_instances);
        label("Max Instances:", s->has_max_instances ? buf : "");
        snprintf(buf, sizeof buf, "%llds", (long long)s->delay_release);
        label("Delay Release:", s->has_delay_release ? buf : "");
        label("Schema:", "");
        printf("\t%-13s%s\n", "Input:", s->schema_input ? s->schema_input : "");
        printf("\t%-13s%s\n", "Output:", s->schema_output ? s->schema_output : "");
        printf("\t%-13s%s\n", "Common Data:", s->schema_common_data ? s->schema_common_data : "");
        /* ours, after Flame's lines */
        cli_format_time(created, sizeof created, a->creation_time);
        label("State:", a->state == FLAME_APPLICATION_ENABLED ? "Enabled" : "Disabled");
        label("Created:", created);
        label("Sandbox:", s->sandbox ? s->sandbox : "default (the node's)");
        label("Network:", s->network ? s->network : "none");
        label("Reuse:", s->sandbox_reuse ? "by the same owner" : "no");
    }
    flame_application_free(a);
    return 0;
}

static int view_node(flame_client *c, const char *name, int json)
{
    flame_node_info **v;
    size_t n;
    if (flame_node_list(&v, &n, c))
        return fail();
    size_t i = 0;
    while (i < n && strcmp(v[i]->name, name) != 0)
        i++;
    if (i == n) {
        flame_node_info_list_free(v, n);
        fprintf(stderr, "%s: node %s not found\n", prog, name);
        return 1;
    }
    const flame_node_info *d = v[i];
    char cpu[32], mem[32], acpu[32], amem[32], hb[32];
    snprintf(cpu, sizeof cpu, "%llu", (unsigned long long)d->capacity.cpu);
    cli_format_mem(mem, sizeof mem, d->capacity.memory);
    snprintf(acpu, sizeof acpu, "%llu", (unsigned long long)d->allocatable.cpu);
    cli_format_mem(amem, sizeof amem, d->allocatable.memory);
    cli_format_time(hb, sizeof hb, d->last_heartbeat_time * 1000);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", d->name);
        cJSON_AddStringToObject(o, "hostname", d->hostname ? d->hostname : "");
        cJSON_AddStringToObject(o, "status", flame_node_state_str(d->state));
        cJSON *cap = cJSON_AddObjectToObject(o, "capacity");
        cJSON_AddNumberToObject(cap, "cpu", (double)d->capacity.cpu);
        cJSON_AddNumberToObject(cap, "memory", (double)d->capacity.memory);
        cJSON *al = cJSON_AddObjectToObject(o, "allocatable");
        cJSON_AddNumberToObject(al, "cpu", (double)d->allocatable.cpu);
        cJSON_AddNumberToObject(al, "memory", (double)d->allocatable.memory);
        cJSON *info = cJSON_AddObjectToObject(o, "info");
        cJSON_AddStringToObject(info, "arch", d->arch);
        cJSON_AddStringToObject(info, "os", d->os);
        cJSON_AddNumberToObject(o, "last_heartbeat_time", (double)d->last_heartbeat_time);
        print_json(o);
    } else {
        label("Name:", d->name);
        label("Hostname:", d->hostname);
        label("Status:", flame_node_state_str(d->state));
        label("Capacity:", "");
        printf("\t%-13s%s\n", "CPU:", cpu);
        printf("\t%-13s%s\n", "Memory:", mem);
        label("Info:", "");
        printf("\t%-13s%s\n", "Arch:", d->arch);
        printf("\t%-13s%s\n", "OS:", d->os);
        /* ours, after Flame's lines */
        label("Allocatable:", "");
        printf("\t%-13s%s\n", "CPU:", acpu);
        printf("\t%-13s%s\n", "Memory:", amem);
        label("Heartbeat:", hb);
    }
    flame_node_info_list_free(v, n);
    return 0;
}

/* ---- watch -------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Follows a session by polling it (every call bounded by the client's
 * deadline): a line whenever its task counts change, each new event once;
 * returns when the session is Closed with nothing running, or on Ctrl-C. */
static int watch_session(flame_client *c, const char *sid, long interval_ms)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char last[200] = "";
    size_t events_seen = 0;
    int rc = 0;
    while (!interrupted) {
        flame_session_info *s;
        if (flame_session_get(&s, c, sid)) {
            rc = fail();
            break;
        }
        for (; events_seen < s->events_len; events_seen++) {
            const flame_event *e = &s->events[events_seen];
            char t[32];
            format_clock(t, sizeof t, e->creation_time, 1);
            printf("%s  event: %s (%d)\n", t, e->message ? e->message : "", e->code);
        }
        char line[200];
        snprintf(line, sizeof line, "%s  %d pending, %d running, %d succeed, %d failed, %d cancelled",
                 flame_session_state_str(s->state), s->pending, s->running, s->succeed, s->failed,
                 s->cancelled);
        if (strcmp(line, last) != 0) {
            char t[32];
            format_clock(t, sizeof t, (int64_t)time(NULL) * 1000, 0);
            printf("%s  %s\n", t, line);
            snprintf(last, sizeof last, "%s", line);
        }
        fflush(stdout);
        int done = s->state != FLAME_SESSION_OPEN && s->running == 0;
        flame_session_info_free(s);
        if (done)
            break;
        struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL); /* Ctrl-C cuts it short */
    }
    if (interrupted && !rc) {
        fprintf(stderr, "%s: watch of %s interrupted\n", prog, sid);
        rc = 130;
    }
    return rc;
}

/* ---- register and update ----------------------------------------------- */

static int apply_file(flame_client *c, const char *path, int update)
{
    flame_application **v;
    size_t n;
    if (flame_application_file_load(&v, &n, path))
        return fail();
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        flame_status st = update ? flame_application_update(c, v[i]->name, v[i]->spec)
                                 : flame_application_register(c, v[i]->name, v[i]->spec);
        if (st)
            rc = fail();
        else
            printf("Application %s was %s.\n", v[i]->name, update ? "updated" : "registered");
    }
    flame_application_list_free(v, n);
    return rc;
}

/* ---- the commands ------------------------------------------------------- */

static int cmd_list(flame_client *c, const cmd_args *x)
{
    if (x->what != 's' && (x->state || x->app || x->limit >= 0))
        return usage_error("--state, --app and --limit go with list -s");
    switch (x->what) {
    case 'a': return list_apps(c, x->wide);
    case 's': return list_sessions(c, x);
    case 'e': return list_executors(c, x->wide);
    case 'n': return list_nodes(c, x->wide);
    default: return usage_error("list needs one of -a, -s, -e, -n");
    }
}

static int cmd_view(flame_client *c, const cmd_args *x)
{
    if (x->a && !x->s && !x->n)
        return view_app(c, x->a, x->json);
    if (x->s && !x->a && !x->n)
        return x->t ? view_task(c, x->s, x->t, x->json) : view_session(c, x->s, x->json);
    if (x->n && !x->a && !x->s)
        return view_node(c, x->n, x->json);
    return usage_error("view needs one of -a NAME, -s ID [-t TASK], -n NODE");
}

static int cmd_create(flame_client *c, const cmd_args *x)
{
    if (!x->a)
        return usage_error("create needs -a APP");
    flame_session_spec spec = FLAME_SESSION_SPEC_INIT;
    spec.application = x->a;
    if (x->p) {
        char *end;
        long v = strtol(x->p, &end, 10);
        if (*end || v < 0)
            return usage_error("-p takes a priority >= 0");
        spec.priority = (uint32_t)v;
    }
    if (x->r) {
        spec.has_resreq = 1;
        spec.resreq = (flame_resreq){ 1, 0, 0 };
        if (flame_resreq_parse(&spec.resreq, x->r))
            return fail();
    }
    flame_session *sess;
    if (flame_session_create(&sess, c, NULL, &spec))
        return fail();
    printf("Session <%s> was created.\n", flame_session_id(sess));
    flame_session_free(sess);
    return 0;
}

static int cmd_close(flame_client *c, const cmd_args *x)
{
    if (!x->s)
        return usage_error("close needs -s ID");
    flame_session *sess;
    if (flame_session_attach(&sess, c, x->s))
        return fail();
    int rc = flame_session_close(sess) ? fail() : 0;
    if (!rc)
        printf("Session <%s> was closed.\n", x->s);
    flame_session_free(sess);
    return rc;
}

static int cmd_delete(flame_client *c, const cmd_args *x)
{
    if (!x->s)
        return usage_error("delete needs -s ID");
    if (flame_session_delete(c, x->s))
        return fail();
    printf("Session <%s> was deleted.\n", x->s);
    return 0;
}

static int cmd_register(flame_client *c, const cmd_args *x)
{
    return x->f ? apply_file(c, x->f, 0) : usage_error("register needs -f app.yaml");
}

static int cmd_update(flame_client *c, const cmd_args *x)
{
    if (x->a)
        return usage_error("update takes the file with -f app.yaml (-a names an application)");
    return x->f ? apply_file(c, x->f, 1) : usage_error("update needs -f app.yaml");
}

static int cmd_unregister(flame_client *c, const cmd_args *x)
{
    if (!x->a)
        return usage_error("unregister needs -a NAME");
    if (flame_application_unregister(c, x->a))
        return fail();
    printf("Application %s was unregistered.\n", x->a);
    return 0;
}

static int cmd_watch(flame_client *c, const cmd_args *x)
{
    if (!x->s)
        return usage_error("watch needs -s ID");
    return watch_session(c, x->s, x->interval_ms);
}

/* Long options that take no value where a command uses them as flags. */
enum { OPT_STATE = 1000, OPT_APP, OPT_LIMIT, OPT_INTERVAL };

typedef struct command {
    const char *name;
    const char *optstring;       /* short options, as getopt_long takes them */
    int (*run)(flame_client *c, const cmd_args *x);
    const char *synopsis;        /* after "flmctl NAME" */
    const char *help;            /* one line */
    const char *options;         /* what --help says about the options */
} command;

static const command commands[] = {
    { "list", "asenho:", cmd_list, "-a|-s|-e|-n [-o wide] [--state S] [--app APP] [--limit N]",
      "list applications, sessions, executors or nodes",
      "  -a, --application   applications\n"
      "  -s, --session       sessions (Open first)\n"
      "      --state STATE   only sessions in STATE (open or closed)\n"
      "      --app APP       only sessions of application APP\n"
      "      --limit N       at most N sessions\n"
      "  -e, --executor      executors\n"
      "  -n, --node          nodes\n"
      "  -o, --output wide   Flame's columns, then ours (sandbox and network; cancelled\n"
      "                      and completion; resources and shim; allocatable, heartbeat)\n" },
    { "view", "a:s:t:n:o:h", cmd_view, "-a NAME | -s ID [-t TASK] | -n NODE [-o json]",
      "show an application, a session, one of its tasks, or a node",
      "  -a, --application NAME   the application\n"
      "  -s, --session ID         the session (-o json includes its tasks)\n"
      "  -t, --task TASK          one task of the session\n"
      "  -n, --node NODE          the node\n"
      "  -o, --output json        print JSON\n" },
    { "create", "a:p:r:h", cmd_create, "-a APP [-p PRIO] [-r cpu=1,mem=1g]",
      "create a session",
      "  -a, --application APP    the session's application\n"
      "  -p, --priority PRIO      its priority (>= 0, higher first; default 0)\n"
      "  -r, --resreq RESREQ      resources of each executor (default: the cluster's)\n" },
    { "close", "s:h", cmd_close, "-s ID",
      "close a session (Pending tasks are cancelled)",
      "  -s, --session ID         the session\n" },
    { "delete", "s:h", cmd_delete, "-s ID",
      "delete a session and its tasks (an open one is closed first)",
      "  -s, --session ID         the session\n" },
    { "watch", "s:h", cmd_watch, "-s ID [--interval MS]",
      "follow a session live until it is closed (Ctrl-C stops)",
      "  -s, --session ID         the session\n"
      "      --interval MS        how often to look (default 500)\n" },
    { "register", "f:h", cmd_register, "-f app.yaml",
      "register the application(s) in a YAML file",
      "  -f, --file app.yaml      Flame's application YAML (documents split by ---)\n" },
    { "unregister", "a:h", cmd_unregister, "-a NAME",
      "unregister an application",
      "  -a, --application NAME   the application\n" },
    { "update", "a:f:h", cmd_update, "-f app.yaml",
      "update the application(s) in a YAML file",
      "  -f, --file app.yaml      Flame's application YAML (documents split by ---)\n" },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: flmctl [--endpoint URL] <command> [options]\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char head[128];
        snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].synopsis);
        if (strlen(head) > 32)
            fprintf(f, "  %s\n  %-32s %s\n", head, "", commands[i].help);
        else
            fprintf(f, "  %-32s %s\n", head, commands[i].help);
    }
    fprintf(f,
        "\n"
        "Options:\n"
        "  --endpoint URL   session manager (default: $FLAME_ENDPOINT, ~/.flame/flame.yaml,\n"
        "                   http://127.0.0.1:8080)\n"
        "  -h, --help       show this help (after a command: that command's)\n"
        "  -V, --version    show the version\n"
        "\n"
        "Exit status: 0 on success, 1 when a call fails, 2 for a usage error.\n");
}

static void command_usage(const command *cmd)
{
    printf("Usage: flmctl [--endpoint URL] %s %s\n\n%c%s.\n\nOptions:\n%s"
           "  -h, --help               show this help\n",
           cmd->name, cmd->synopsis, toupper((unsigned char)cmd->help[0]), cmd->help + 1,
           cmd->options);
}

static int parse_count(const char *text, long min, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL;
    /* global options come before the command */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
            endpoint = argv[++i];
        } else if (strncmp(argv[i], "--endpoint=", 11) == 0) {
            endpoint = argv[i] + 11;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("flmctl %s\n", flame_version());
            return 0;
        } else {
            return usage_error("unknown option before the command");
        }
    }
    if (i >= argc)
        return usage_error("no command given");
    const char *name = argv[i];
    const command *cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "%s: unknown command \"%s\" (see flmctl --help)\n", prog, name);
        return 2;
    }
    int cargc = argc - i;
    char **cargv = argv + i;
    bool list_cmd = cmd->run == cmd_list;
    /* in list, -a -s -e -n say what to list; elsewhere they name something */
    static const struct option list_opts[] = {
        { "application", no_argument, NULL, 'a' }, { "session", no_argument, NULL, 's' },
        { "executor", no_argument, NULL, 'e' },    { "node", no_argument, NULL, 'n' },
        { "state", required_argument, NULL, OPT_STATE },
        { "app", required_argument, NULL, OPT_APP },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "output", required_argument, NULL, 'o' },
        { "endpoint", required_argument, NULL, 'E' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const struct option value_opts[] = {
        { "application", required_argument, NULL, 'a' }, { "session", required_argument, NULL, 's' },
        { "task", required_argument, NULL, 't' },         { "output", required_argument, NULL, 'o' },
        { "priority", required_argument, NULL, 'p' },     { "resreq", required_argument, NULL, 'r' },
        { "file", required_argument, NULL, 'f' },         { "node", required_argument, NULL, 'n' },
        { "interval", required_argument, NULL, OPT_INTERVAL },
        { "endpoint", required_argument, NULL, 'E' },     { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    cmd_args x = { .limit = -1, .interval_ms = 500 };
    const char *o = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(cargc, cargv, cmd->optstring, list_cmd ? list_opts : value_opts,
                             NULL)) != -1) {
        switch (ch) {
        case 'a': if (list_cmd) x.what = 'a'; else x.a = optarg; break;
        case 's': if (list_cmd) x.what = 's'; else x.s = optarg; break;
        case 'n': if (list_cmd) x.what = 'n'; else x.n = optarg; break;
        case 'e': x.what = 'e'; break;
        case 't': x.t = optarg; break;
        case 'o': o = optarg; break;
        case 'p': x.p = optarg; break;
        case 'r': x.r = optarg; break;
        case 'f': x.f = optarg; break;
        case 'E': endpoint = optarg; break;
        case OPT_STATE:
            if (strcasecmp(optarg, "open") != 0 && strcasecmp(optarg, "closed") != 0)
                return usage_error("--state takes open or closed");
            x.state = optarg;
            break;
        case OPT_APP: x.app = optarg; break;
        case OPT_LIMIT:
            if (parse_count(optarg, 0, &x.limit))
                return usage_error("--limit takes a number >= 0");
            break;
        case OPT_INTERVAL:
            if (parse_count(optarg, 10, &x.interval_ms) || x.interval_ms > 60000)
                return usage_error("--interval takes milliseconds from 10 to 60000");
            break;
        case 'h': command_usage(cmd); return 0;
        default: {
            char msg[96];
            const char *bad_opt = cargv[optind - 1];
            if (optopt)
                snprintf(msg, sizeof msg, "%s: unknown option or missing value -%c", name, optopt);
            else
                snprintf(msg, sizeof msg, "%s: unknown option or missing value %s", name, bad_opt);
            return usage_error(msg);
        }
        }
    }
    if (optind < cargc) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: unexpected argument \"%s\"", name, cargv[optind]);
        return usage_error(msg);
    }
    if (o && list_cmd) {
        if (strcmp(o, "wide") != 0)
            return usage_error("list -o takes only \"wide\"");
        x.wide = 1;
    } else if (o) {
        if (strcmp(o, "json") != 0)
            return usage_error("-o takes only \"json\"");
        x.json = 1;
    }
    flame_client_options copts;
    flame_client_options_init(&copts);
    copts.endpoint = endpoint;
    flame_client *c;
    if (flame_client_connect(&c, &copts))
        return fail();
    int rc = cmd->run(c, &x);
    flame_client_free(c);
    return rc;
}
