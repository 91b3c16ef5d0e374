/* Unit tests of the install step (install/install.h: installers, the
 * release hash, $VAR expansion, extraction) and the shim table
 * (shim/shim.h), the choices an executor makes before entering a session. */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "install/install.h"
#include "shim/env.h"
#include "shim/shim.h"

#include "types.pb-c.h"

static const fl_install_request app = {
    .application = "app",
    .command = "/usr/bin/app",
    .working_directory = "/srv/app",
    .work_dir = "/tmp/work",
};

START_TEST(none_runs_the_application_as_it_is)
{
    char *msg = (char *)"stale";
    const fl_installer *in = fl_installer_for(&app, &msg);
    ck_assert_ptr_null(msg);
    ck_assert_str_eq(in->name, "none");
    fl_installation inst;
    msg = (char *)"stale";
    ck_assert_int_eq(fl_install(in, &app, &inst, &msg), FLAME_OK);
    ck_assert_ptr_null(msg);
    ck_assert_str_eq(inst.command, "/usr/bin/app");
    ck_assert_str_eq(inst.working_directory, "/srv/app");
    fl_installation_clear(&inst);
    ck_assert_ptr_null(inst.command);

    /* no command, an empty working directory: nothing to run, no directory */
    fl_install_request bare = { .application = "bare", .working_directory = "", .work_dir = "/w" };
    ck_assert_int_eq(fl_install(fl_installer_for(&bare, &msg), &bare, &inst, &msg), FLAME_OK);
    ck_assert_ptr_null(inst.command);
    ck_assert_ptr_null(inst.working_directory);
}
END_TEST

START_TEST(installers_are_flames_two_by_name_in_any_case)
{
    char *msg;
    fl_install_request pkg = app;
    pkg.installer = "PyThOn";
    ck_assert_str_eq(fl_installer_for(&pkg, &msg)->name, "python");
    pkg.installer = "binary";
    ck_assert_str_eq(fl_installer_for(&pkg, &msg)->name, "binary");
    pkg.installer = "";
    ck_assert_str_eq(fl_installer_for(&pkg, &msg)->name, "none");
    pkg.installer = "pip";
    ck_assert_ptr_null(fl_installer_for(&pkg, &msg));
    ck_assert_str_eq(msg, "Unknown installer type: pip. Supported types: binary, python");
    free(msg);
}
END_TEST

/* Flame's rule (appmgr/mod.rs), computed independently in Python:
 *   def f(h, label, v):
 *       h.update(label.encode() + b"\0")
 *       h.update(b"\0" if v is None
 *                else b"\1" + struct.pack(">Q", len(v.encode())) + v.encode())
 * over app, installer, url, python_version. */
START_TEST(release_hash_is_flames)
{
    char h[65];
    fl_release_hash(h, "my-app", "python", "file:///srv/pkg/app.tar.gz", "3.12");
    ck_assert_str_eq(h, "ebb0f087369fe6238152a843423270f1d36675ce0dce362f8994a4483f10eecd");
    fl_release_hash(h, "bin", "binary", "http://h/b.tgz", NULL);
    ck_assert_str_eq(h, "fea4d66b9fdd342ac15e4987da93665f327f68c2d47662f89ab5d89fc9d8033e");
}
END_TEST

START_TEST(expansion_is_shellexpand)
{
    char *launch[] = { "FLAME_HOME=/opt/flame", "A=launch", "EMPTY=", NULL };
    char *proc[] = { "A=process", "B=process-b", NULL };
    static const struct { const char *in, *out; } cases[] = {
        { "${FLAME_HOME}/bin/uv", "/opt/flame/bin/uv" },
        { "$FLAME_HOME/bin", "/opt/flame/bin" },
        { "$A-$B", "launch-process-b" },       /* launch env first, then process */
        { "${NOPE}/x $NOPE", "${NOPE}/x $NOPE" }, /* unknown: left as written */
        { "python${NOPE:-3.12}", "python3.12" },
        { "${EMPTY:-dflt}|$EMPTY|", "dflt||" },
        { "cost: $5 and $ and ${ and ${}", "cost: $5 and $ and ${ and ${}" },
        { "$A$A", "launchlaunch" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = fl_expand_vars(cases[i].in, launch, proc);
        ck_assert_msg(strcmp(got, cases[i].out) == 0, "%s -> %s, not %s", cases[i].in, got,
                      cases[i].out);
        free(got);
    }
    ck_assert_str_eq(fl_env_lookup(proc, "B"), "process-b");
    ck_assert_ptr_null(fl_env_lookup(proc, "C"));
}
END_TEST

START_TEST(python_version_and_url_names)
{
    char *v, *env[] = { "FLAME_PYTHON_VERSION=python3.11", NULL };
    ck_assert_str_eq(v = fl_python_version("/nonexistent", env), "3.11");
    free(v);
    char dir[] = "/tmp/flame-pyver-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *vers[] = { "3.9", "3.12", "3.10" };
    for (int i = 0; i < 3; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/lib/python%s/site-packages", dir, vers[i]);
        ck_assert_int_eq(fl_mkdir_p(p), 0);
    }
    ck_assert_str_eq(v = fl_python_version(dir, NULL), "3.12");
    free(v);
    fl_rm_rf(dir);
    ck_assert_str_eq(v = fl_python_version(dir, NULL), "3.12"); /* the default */
    free(v);
    ck_assert_str_eq(v = fl_url_file_name("http://h:8/a/b/pkg.tar.gz?x=1"), "pkg.tar.gz");
    free(v);
    ck_assert_str_eq(v = fl_url_file_name("grpc://h:9090/app/pkg/app.tar.gz"), "app.tar.gz");
    free(v);
    ck_assert_ptr_null(fl_url_file_name("http://host"));
    ck_assert_ptr_null(fl_url_file_name("http://host/a/.."));
}
END_TEST

/* Writes a .tar.gz with the given members (name, or "name->target" for a
 * symbolic link). */
static void make_tgz(const char *path, const char *const *members)
{
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; members[i]; i++) {
        struct archive_entry *e = archive_entry_new();
        char name[256];
        snprintf(name, sizeof name, "%s", members[i]);
        char *arrow = strstr(name, "->");
        if (arrow) {
            *arrow = 0;
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, arrow + 2);
            archive_entry_set_perm(e, 0777);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, 3);
        }
        archive_entry_set_pathname(e, name);
        archive_write_header(a, e);
        if (!arrow)
            archive_write_data(a, "hi\n", 3);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

START_TEST(extraction_refuses_hostile_archives)
{
    char dir[] = "/tmp/flame-extract-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char tgz[300], out[300], f[400];
    snprintf(tgz, sizeof tgz, "%s/ok.tar.gz", dir);
    snprintf(out, sizeof out, "%s/src", dir);
    make_tgz(tgz, (const char *const[]){ "pkg/a.txt", "pkg/lib/libx.so.1", "pkg/lib/libx.so->libx.so.1",
                                         NULL });
    char *msg = NULL;
    ck_assert_msg(fl_extract(tgz, out, &msg) == FLAME_OK, "%s", msg);
    snprintf(f, sizeof f, "%s/pkg/lib/libx.so", out);
    ck_assert_int_eq(access(f, R_OK), 0);

    static const char *const bad[][2] = {
        { "../evil.txt", "a member path with .." },
        { "pkg/../../evil.txt", "a member path with .." },
        { "/etc/evil.txt", "an absolute member path" },
        { "pkg/up->../../x", "a symbolic link out of the package" },
        { "pkg/abs->/etc/passwd", "a symbolic link out of the package" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(tgz, sizeof tgz, "%s/bad%zu.tgz", dir, i);
        make_tgz(tgz, (const char *const[]){ "fine.txt", bad[i][0], NULL });
        snprintf(out, sizeof out, "%s/bad%zu", dir, i);
        msg = NULL;
        ck_assert_int_eq(fl_extract(tgz, out, &msg), FLAME_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(msg, bad[i][1]) != NULL, "%s: %s", bad[i][0], msg);
        free(msg);
        /* refused as a whole: not even the harmless member was written */
        snprintf(f, sizeof f, "%s/fine.txt", out);
        ck_assert_int_ne(access(f, F_OK), 0);
    }
    snprintf(f, sizeof f, "%s/pkg.rar", dir);
    msg = NULL;
    ck_assert_int_eq(fl_extract(f, out, &msg), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(msg, "supported: .tar.gz, .tgz, .zip"));
    free(msg);
    fl_rm_rf(dir);
}
END_TEST

static flame_status fail_with_message(const fl_install_request *req, fl_installation *out,
                                      char **message)
{
    out->command = strdup("half-done");
    *message = strdup("cannot fetch the package");
    return FLAME_ERR_UNAVAILABLE;
}

static flame_status fail_silently(const fl_install_request *req, fl_installation *out,
                                  char **message)
{
    return FLAME_ERR_IO;
}

START_TEST(a_failed_install_says_why_and_leaves_nothing)
{
    fl_installer loud = { "loud", fail_with_message }, quiet = { "quiet", fail_silently };
    fl_installation inst;
    char *msg;
    ck_assert_int_eq(fl_install(&loud, &app, &inst, &msg), FLAME_ERR_UNAVAILABLE);
    ck_assert_str_eq(msg, "cannot fetch the package");
    ck_assert_ptr_null(inst.command);
    free(msg);
    ck_assert_int_eq(fl_install(&quiet, &app, &inst, &msg), FLAME_ERR_IO);
    ck_assert_str_eq(msg, "installer quiet failed for application app");
    ck_assert_ptr_null(inst.command);
    free(msg);
}
END_TEST

static const char *envp_get(char **envp, const char *name)
{
    return fl_env_lookup(envp, name);
}

START_TEST(service_env_is_flames)
{
    setenv("FLAME_HOME", "/opt/fh", 1);
    setenv("PATH", "/usr/bin:/bin", 1);
    setenv("EM_ONLY", "from-em", 1);
    setenv("FLAME_KEY_FILE", "/secret/node.key", 1);
    unsetenv("RUST_LOG");
    unsetenv("PYTHONPATH");
    Flame__V1__Environment e1 = FLAME__V1__ENVIRONMENT__INIT, e2 = FLAME__V1__ENVIRONMENT__INIT;
    Flame__V1__Environment e3 = FLAME__V1__ENVIRONMENT__INIT;
    e1.name = "GREETING", e1.value = "hi $EM_ONLY at ${FLAME_HOME}";
    e2.name = "PYTHONPATH", e2.value = "/app/py";
    e3.name = "UV_CACHE_DIR", e3.value = "/app/uv";
    Flame__V1__Environment *envs[] = { &e1, &e2, &e3 };
    char *args[] = { "--home=${FLAME_HOME}", "$GREETING", "$NOPE", "${FLAME_PYTHON_VERSION}" };
    Flame__V1__ApplicationSpec spec = FLAME__V1__APPLICATION_SPEC__INIT;
    spec.n_environments = 3;
    spec.environments = envs;
    spec.n_arguments = 4;
    spec.arguments = args;
    fl_installation inst = { 0 };
    fl_installation_var(&inst, "PYTHONPATH", "/rel/deps:/rel/src", FL_ENV_PREPEND);
    fl_installation_var(&inst, "PATH", "/rel/deps/bin", FL_ENV_PREPEND);
    fl_installation_var(&inst, "UV_CACHE_DIR", "/fh/cache/uv", FL_ENV_DEFAULT);
    fl_installation_var(&inst, "FLAME_PYTHON_VERSION", "3.11", FL_ENV_DEFAULT);
    fl_shim_session ctx = {
        .executor_id = "x-1",
        .application = "app",
        .app_spec = &spec,
        .command = "${FLAME_HOME}/bin/uv",
        .endpoint = "http://sm:8080",
        .cache_endpoint = "grpc://cache:9090",
        .installation = &inst,
    };
    char tmp[] = "/tmp/flame-envtest-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    fl_service_env se;
    fl_service_env_build(&se, &ctx, "/run/x-1.sock", NULL, tmp);
    ck_assert_str_eq(se.command, "/opt/fh/bin/uv");
    ck_assert_str_eq(se.argv[0], "/opt/fh/bin/uv");
    ck_assert_str_eq(se.argv[1], "--home=/opt/fh");
    ck_assert_str_eq(se.argv[2], "hi from-em at /opt/fh"); /* the launch env first */
    ck_assert_str_eq(se.argv[3], "$NOPE");                 /* unknown: as written */
    ck_assert_str_eq(se.argv[4], "3.11");                  /* an installer variable */
    ck_assert_ptr_null(se.argv[5]);
    ck_assert_str_eq(envp_get(se.envp, "GREETING"), "hi from-em at /opt/fh");
    ck_assert_str_eq(envp_get(se.envp, "PYTHONPATH"), "/rel/deps:/rel/src:/app/py");
    ck_assert_str_eq(envp_get(se.envp, "PATH"), "/rel/deps/bin:/usr/bin:/bin");
    ck_assert_str_eq(envp_get(se.envp, "UV_CACHE_DIR"), "/app/uv"); /* the app's stays */
    ck_assert_str_eq(envp_get(se.envp, "RUST_LOG"), "info");
    ck_assert_str_eq(envp_get(se.envp, "FLAME_LOG"), "info");
    ck_assert_str_eq(envp_get(se.envp, "FLAME_INSTANCE_ENDPOINT"), "/run/x-1.sock");
    ck_assert_str_eq(envp_get(se.envp, "FLAME_ENDPOINT"), "http://sm:8080");
    ck_assert_str_eq(envp_get(se.envp, "FLAME_CACHE_ENDPOINT"), "grpc://cache:9090");
    ck_assert_str_eq(envp_get(se.envp, "TMPDIR"), tmp);
    ck_assert_str_eq(envp_get(se.envp, "TEMP"), tmp);
    ck_assert_str_eq(envp_get(se.envp, "EM_ONLY"), "from-em"); /* inherited */
    ck_assert_str_eq(envp_get(se.envp, "FLAME_HOME"), "/opt/fh");
    ck_assert_ptr_null(envp_get(se.envp, "FLAME_KEY_FILE")); /* the node's identity: never */
    size_t n = 0;
    for (size_t i = 0; se.envp[i]; i++)
        n += strncmp(se.envp[i], "PATH=", 5) == 0;
    ck_assert_uint_eq(n, 1); /* one of each */

    /* ${FLAME_HOME}/bin/NAME missing: NAME from the node's bin directory */
    char bin[300], prog[400];
    snprintf(bin, sizeof bin, "%s/bin", tmp);
    fl_mkdir_p(bin);
    snprintf(prog, sizeof prog, "%s/uv", bin);
    FILE *f = fopen(prog, "w");
    fclose(f);
    chmod(prog, 0755);
    char *where = fl_service_resolve(&se, "${FLAME_HOME}/bin/uv", bin);
    ck_assert_str_eq(where, prog);
    free(where);
    where = fl_service_resolve(&se, "/opt/fh/bin/uv", bin); /* written so: as is */
    ck_assert_str_eq(where, "/opt/fh/bin/uv");
    free(where);
    fl_service_env_clear(&se);
    fl_installation_clear(&inst);
    fl_rm_rf(tmp);
    unsetenv("FLAME_KEY_FILE");
}
END_TEST

static int dummy_invoke(const flame_task_context *t, flame_task_result *r, void *p)
{
    return 0;
}

START_TEST(the_shim_is_chosen_from_the_table)
{
    fl_shim *sh;
    char *msg;
    fl_shim_choice host = { FLAME__V1__SHIM__Host, "/usr/bin/app", NULL };
    ck_assert_int_eq(fl_shim_new(&sh, &host, &msg), FLAME_OK);
    ck_assert_str_eq(sh->ops->name, "host");
    sh->ops->free(sh);

    flame_service svc = { 0 };
    svc.on_task_invoke = dummy_invoke;
    fl_shim_choice embedded = { FLAME__V1__SHIM__Wasm, NULL, &svc };
    ck_assert_int_eq(fl_shim_new(&sh, &embedded, &msg), FLAME_OK);
    ck_assert_str_eq(sh->ops->name, "inproc");
    sh->ops->free(sh);

    fl_shim_choice builtin = { FLAME__V1__SHIM__Host, "inproc:flmping", NULL };
    ck_assert_int_eq(fl_shim_new(&sh, &builtin, &msg), FLAME_OK);
    ck_assert_str_eq(sh->ops->name, "inproc");
    sh->ops->free(sh);

    fl_shim_choice unknown = { FLAME__V1__SHIM__Host, "inproc:nope", NULL };
    ck_assert_int_eq(fl_shim_new(&sh, &unknown, &msg), FLAME_ERR_NOT_FOUND);
    ck_assert_ptr_null(sh);
    ck_assert_str_eq(msg, "no built-in service named \"nope\"");
    free(msg);

    fl_shim_choice wasm = { FLAME__V1__SHIM__Wasm, "app.wasm", NULL };
    ck_assert_int_eq(fl_shim_new(&sh, &wasm, &msg), FLAME_ERR_UNIMPLEMENTED);
    ck_assert_str_eq(msg, "this executor has no Wasm runtime");
    free(msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_add_test(tc, none_runs_the_application_as_it_is);
    tcase_add_test(tc, a_failed_install_says_why_and_leaves_nothing);
    tcase_add_test(tc, installers_are_flames_two_by_name_in_any_case);
    tcase_add_test(tc, release_hash_is_flames);
    tcase_add_test(tc, expansion_is_shellexpand);
    tcase_add_test(tc, python_version_and_url_names);
    tcase_add_test(tc, extraction_refuses_hostile_archives);
    tcase_add_test(tc, service_env_is_flames);
    tcase_add_test(tc, the_shim_is_chosen_from_the_table);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
