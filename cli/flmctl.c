/* flmctl: Flame's control tool, written only against client.h. */
#include <ctype.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const char *a, *s, *t, *p, *r, *f;
    char what; /* list: 'a', 's', 'e' or 'n' */
    int json;  /* -o json */
} cmd_args;

/* ---- list --------------------------------------------------------------- */

static int list_apps(flame_client *c)
{
    flame_application **v;
    size_t n;
    if (flame_application_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "Name", "State", "Shim", "Created", "Command" };
    cli_table t;
    cli_table_init(&t, 5, hdr);
    for (size_t i = 0; i < n; i++) {
        char created[32];
        cli_format_time(created, sizeof created, v[i]->creation_time);
        const char *row[] = { v[i]->name,
                              v[i]->state == FLAME_APPLICATION_ENABLED ? "Enabled" : "Disabled",
                              flame_shim_str(v[i]->spec->shim), created,
                              v[i]->spec->command ? v[i]->spec->command : "-" };
        cli_table_row(&t, row);
    }
    cli_table_print(&t);
    cli_table_free(&t);
    flame_application_list_free(v, n);
    return 0;
}

static int list_sessions(flame_client *c)
{
    flame_session_info **v;
    size_t n;
    if (flame_session_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "ID", "State", "App", "Resources", "Priority", "Pending",
                                 "Running", "Succeed", "Failed", "Created" };
    cli_table t;
    cli_table_init(&t, 10, hdr);
    for (size_t i = 0; i < n; i++) {
        const flame_session_info *s = v[i];
        char rr[64], prio[16], pe[16], ru[16], su[16], fa[16], created[32];
        cli_format_resreq(rr, sizeof rr, &s->spec->resreq);
        snprintf(prio, sizeof prio, "%u", s->spec->priority);
        snprintf(pe, sizeof pe, "%d", s->pending);
        snprintf(ru, sizeof ru, "%d", s->running);
        snprintf(su, sizeof su, "%d", s->succeed);
        snprintf(fa, sizeof fa, "%d", s->failed);
        cli_format_time(created, sizeof created, s->creation_time);
        const char *row[] = { s->id, flame_session_state_str(s->state), s->spec->application, rr,
                              prio, pe, ru, su, fa, created };
        cli_table_row(&t, row);
    }
    cli_table_print(&t);
    cli_table_free(&t);
    flame_session_info_list_free(v, n);
    return 0;
}

static int list_executors(flame_client *c)
{
    flame_executor_info **v;
    size_t n;
    if (flame_executor_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "ID", "State", "Node", "Session", "Resources", "Shim" };
    cli_table t;
    cli_table_init(&t, 6, hdr);
    for (size_t i = 0; i < n; i++) {
        char rr[64];
        cli_format_resreq(rr, sizeof rr, &v[i]->resreq);
        const char *row[] = { v[i]->id, flame_executor_state_str(v[i]->state), v[i]->node,
                              v[i]->session_id ? v[i]->session_id : "-", rr,
                              flame_shim_str(v[i]->shim) };
        cli_table_row(&t, row);
    }
    cli_table_print(&t);
    cli_table_free(&t);
    flame_executor_info_list_free(v, n);
    return 0;
}

static int list_nodes(flame_client *c)
{
    flame_node_info **v;
    size_t n;
    if (flame_node_list(&v, &n, c))
        return fail();
    static const char *hdr[] = { "Name", "State", "Capacity", "Allocatable", "Arch", "OS",
                                 "Heartbeat" };
    cli_table t;
    cli_table_init(&t, 7, hdr);
    for (size_t i = 0; i < n; i++) {
        char cap[64], alloc[64], hb[32];
        cli_format_resreq(cap, sizeof cap, &v[i]->capacity);
        cli_format_resreq(alloc, sizeof alloc, &v[i]->allocatable);
        cli_format_time(hb, sizeof hb, v[i]->last_heartbeat_time * 1000);
        const char *row[] = { v[i]->name, flame_node_state_str(v[i]->state), cap, alloc,
                              v[i]->arch, v[i]->os, hb };
        cli_table_row(&t, row);
    }
    cli_table_print(&t);
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
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    if (strlen(s) == b->len)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNumberToObject(o, key, (double)b->len); /* binary: its size */
    free(s);
}

static void print_events(const flame_event *ev, size_t n)
{
    printf("Events:\n");
    for (size_t i = 0; i < n; i++) {
        char t[32];
        cli_format_time(t, sizeof t, ev[i].creation_time);
        printf("  %s  %d  %s\n", t, ev[i].code, ev[i].message ? ev[i].message : "");
    }
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
        char *txt = cJSON_Print(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        char created[32], done[32], in[256], out[256];
        cli_format_time(created, sizeof created, t->creation_time);
        cli_format_time(done, sizeof done, t->completion_time);
        cli_format_bytes(in, sizeof in, &t->input);
        cli_format_bytes(out, sizeof out, &t->output);
        printf("Task:       %s\nSession:    %s\nState:      %s\nCreated:    %s\n"
               "Completed:  %s\nInput:      %s\nOutput:     %s\n",
               t->id, t->session_id, flame_task_state_str(t->state), created, done, in, out);
        print_events(t->events, t->events_len);
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
        char *txt = cJSON_Print(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        char created[32], done[32], max[16];
        cli_format_time(created, sizeof created, s->creation_time);
        cli_format_time(done, sizeof done, s->completion_time);
        if (s->spec->has_max_instances)
            snprintf(max, sizeof max, "%u", s->spec->max_instances);
        else
            snprintf(max, sizeof max, "-");
        printf("Session:    %s\nApplication: %s\nState:      %s\nPriority:   %u\n"
               "Resources:  %s\nInstances:  min %u, max %s\nCreated:    %s\nCompleted:  %s\n"
               "Tasks:      %d pending, %d running, %d succeed, %d failed, %d cancelled\n",
               s->id, s->spec->application, flame_session_state_str(s->state), s->spec->priority, rr,
               s->spec->min_instances, max, created, done, s->pending, s->running, s->succeed,
               s->failed, s->cancelled);
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
        char *txt = cJSON_Print(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        char created[32];
        cli_format_time(created, sizeof created, a->creation_time);
        printf("Name:        %s\nState:       %s\nShim:        %s\nCreated:     %s\n", a->name,
               a->state == FLAME_APPLICATION_ENABLED ? "Enabled" : "Disabled",
               flame_shim_str(s->shim), created);
#define PSTR(k, v) if (v) printf("%-13s%s\n", k, v)
        PSTR("Description:", s->description);
        PSTR("Image:", s->image);
        PSTR("Command:", s->command);
        if (s->arguments_len) {
            printf("Arguments:  ");
            for (size_t i = 0; i < s->arguments_len; i++)
                printf(" %s", s->arguments[i]);
            printf("\n");
        }
        for (size_t i = 0; i < s->environments_len; i++)
            printf("Environment: %s=%s\n", s->environments[i].name, s->environments[i].value);
        PSTR("WorkingDir:", s->working_directory);
        if (s->has_max_instances)
            printf("MaxInstances: %u\n", s->max_instances);
        if (s->has_delay_release)
            printf("DelayRelease: %llds\n", (long long)s->delay_release);
        PSTR("URL:", s->url);
        PSTR("Installer:", s->installer);
        printf("%-13s%s\n", "Sandbox:", s->sandbox ? s->sandbox : "default (the node's)");
        printf("%-13s%s\n", "Network:", s->network ? s->network : "none");
        printf("%-13s%s\n", "Reuse:", s->sandbox_reuse ? "by the same owner" : "no");
        PSTR("Schema.input:", s->schema_input);
        PSTR("Schema.output:", s->schema_output);
    }
    flame_application_free(a);
    return 0;
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
    switch (x->what) {
    case 'a': return list_apps(c);
    case 's': return list_sessions(c);
    case 'e': return list_executors(c);
    case 'n': return list_nodes(c);
    default: return usage_error("list needs one of -a, -s, -e, -n");
    }
}

static int cmd_view(flame_client *c, const cmd_args *x)
{
    if (x->a && !x->s)
        return view_app(c, x->a, x->json);
    if (x->s && x->t)
        return view_task(c, x->s, x->t, x->json);
    if (x->s)
        return view_session(c, x->s, x->json);
    return usage_error("view needs -a NAME or -s ID [-t TASK]");
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

static int cmd_register(flame_client *c, const cmd_args *x)
{
    return x->f ? apply_file(c, x->f, 0) : usage_error("register needs -f app.yaml");
}

static int cmd_update(flame_client *c, const cmd_args *x)
{
    const char *file = x->f ? x->f : x->a;
    return file ? apply_file(c, file, 1) : usage_error("update needs -a app.yaml");
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

/* Every command but list takes every option with a value (earlier versions
 * did, and scripts may pass one a command ignores); in list, -a and -s are
 * what to list and take none. */
#define VALUE_OPTS "a:s:t:o:p:r:f:h"

typedef struct command {
    const char *name;
    const char *optstring;       /* short options, as getopt_long takes them */
    int (*run)(flame_client *c, const cmd_args *x);
    const char *synopsis;        /* after "flmctl NAME" */
    const char *help;            /* one line */
    const char *options;         /* what --help says about the options */
} command;

static const command commands[] = {
    { "list", "asenh", cmd_list, "-a|-s|-e|-n",
      "list applications, sessions, executors or nodes",
      "  -a, --application   applications\n"
      "  -s, --session       sessions\n"
      "  -e, --executor      executors\n"
      "  -n, --node          nodes\n" },
    { "view", VALUE_OPTS, cmd_view, "-a NAME | -s ID [-t TASK] [-o json]",
      "show an application, a session, or one of its tasks",
      "  -a, --application NAME   the application\n"
      "  -s, --session ID         the session\n"
      "  -t, --task TASK          one task of the session\n"
      "  -o, --output json        print JSON\n" },
    { "create", VALUE_OPTS, cmd_create, "-a APP [-p PRIO] [-r cpu=1,mem=1g]",
      "create a session",
      "  -a, --application APP    the session's application\n"
      "  -p, --priority PRIO      its priority (>= 0, higher first; default 0)\n"
      "  -r, --resreq RESREQ      resources of each executor (default: the cluster's)\n" },
    { "close", VALUE_OPTS, cmd_close, "-s ID",
      "close a session (Pending tasks are cancelled)",
      "  -s, --session ID         the session\n" },
    { "register", VALUE_OPTS, cmd_register, "-f app.yaml",
      "register the application(s) in a YAML file",
      "  -f, --file app.yaml      Flame's application YAML (documents split by ---)\n" },
    { "unregister", VALUE_OPTS, cmd_unregister, "-a NAME",
      "unregister an application",
      "  -a, --application NAME   the application\n" },
    { "update", VALUE_OPTS, cmd_update, "-a app.yaml",
      "update the application(s) in a YAML file",
      "  -a, --application app.yaml   Flame's application YAML (-f works too)\n" },
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
        "  -V, --version    show the version\n");
}

static void command_usage(const command *cmd)
{
    printf("Usage: flmctl [--endpoint URL] %s %s\n\n%c%s.\n\nOptions:\n%s"
           "  -h, --help               show this help\n",
           cmd->name, cmd->synopsis, toupper((unsigned char)cmd->help[0]), cmd->help + 1,
           cmd->options);
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
    int cargc = argc - i;
    char **cargv = argv + i;

    static const struct option lopts[] = {
        { "application", required_argument, NULL, 'a' }, { "session", required_argument, NULL, 's' },
        { "task", required_argument, NULL, 't' },         { "output", required_argument, NULL, 'o' },
        { "priority", required_argument, NULL, 'p' },     { "resreq", required_argument, NULL, 'r' },
        { "file", required_argument, NULL, 'f' },         { "executor", no_argument, NULL, 'e' },
        { "node", no_argument, NULL, 'n' },               { "endpoint", required_argument, NULL, 'E' },
        { "help", no_argument, NULL, 'h' },               { NULL, 0, NULL, 0 },
    };
    /* an unknown command's options are read as most commands read them, so
     * that -h still shows the help */
    const char *optstr = cmd ? cmd->optstring : VALUE_OPTS;
    bool list_cmd = cmd && cmd->run == cmd_list;
    cmd_args x = { 0 };
    const char *o = NULL;
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(cargc, cargv, optstr, lopts, NULL)) != -1) {
        switch (ch) {
        case 'a': if (list_cmd) x.what = 'a'; else x.a = optarg; break;
        case 's': if (list_cmd) x.what = 's'; else x.s = optarg; break;
        case 'e': x.what = 'e'; break;
        case 'n': x.what = 'n'; break;
        case 't': x.t = optarg; break;
        case 'o': o = optarg; break;
        case 'p': x.p = optarg; break;
        case 'r': x.r = optarg; break;
        case 'f': x.f = optarg; break;
        case 'E': endpoint = optarg; break;
        case 'h':
            if (cmd)
                command_usage(cmd);
            else
                usage(stdout);
            return 0;
        default: {
            char msg[64];
            snprintf(msg, sizeof msg, "%s: unknown option or missing value -%c", name,
                     optopt ? optopt : '?');
            return usage_error(msg);
        }
        }
    }
    if (optind < cargc)
        return usage_error("unexpected argument");
    if (o) {
        if (strcmp(o, "json") != 0)
            return usage_error("-o takes only \"json\"");
        x.json = 1;
    }
    if (!cmd) {
        fprintf(stderr, "%s: unknown command \"%s\" (see flmctl --help)\n", prog, name);
        return 2;
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
