/* Unit tests of the install step (install/install.h) and the shim table
 * (shim/shim.h), the two choices an executor makes before entering a
 * session. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "install/install.h"
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
    const fl_installer *in = fl_installer_for(&app);
    ck_assert_str_eq(in->name, "none");
    fl_installation inst;
    char *msg = (char *)"stale";
    ck_assert_int_eq(fl_install(in, &app, &inst, &msg), FLAME_OK);
    ck_assert_ptr_null(msg);
    ck_assert_str_eq(inst.command, "/usr/bin/app");
    ck_assert_str_eq(inst.working_directory, "/srv/app");
    fl_installation_clear(&inst);
    ck_assert_ptr_null(inst.command);

    /* no command, an empty working directory: nothing to run, no directory */
    fl_install_request bare = { .application = "bare", .working_directory = "", .work_dir = "/w" };
    ck_assert_int_eq(fl_install(fl_installer_for(&bare), &bare, &inst, &msg), FLAME_OK);
    ck_assert_ptr_null(inst.command);
    ck_assert_ptr_null(inst.working_directory);

    /* a url and an installer name do not change it (yet): the service gets
     * them as before */
    fl_install_request pkg = app;
    pkg.url = "https://example.invalid/app.whl";
    pkg.installer = "pip";
    ck_assert_str_eq(fl_installer_for(&pkg)->name, "none");
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
    tcase_add_test(tc, the_shim_is_chosen_from_the_table);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
