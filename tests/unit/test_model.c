/* Unit tests of libflame/model: state machines, counters, validation. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/util.h"

static fl_session_spec spec_for(const char *app)
{
    return (fl_session_spec){ .application = app };
}

START_TEST(task_transitions)
{
    ck_assert(fl_task_transition_ok(FLAME_TASK_PENDING, FLAME_TASK_RUNNING));
    ck_assert(fl_task_transition_ok(FLAME_TASK_PENDING, FLAME_TASK_CANCELLED));
    ck_assert(fl_task_transition_ok(FLAME_TASK_RUNNING, FLAME_TASK_SUCCEED));
    ck_assert(fl_task_transition_ok(FLAME_TASK_RUNNING, FLAME_TASK_FAILED));
    ck_assert(fl_task_transition_ok(FLAME_TASK_RUNNING, FLAME_TASK_PENDING));
    ck_assert(!fl_task_transition_ok(FLAME_TASK_PENDING, FLAME_TASK_SUCCEED));
    ck_assert(!fl_task_transition_ok(FLAME_TASK_SUCCEED, FLAME_TASK_RUNNING));
    ck_assert(!fl_task_transition_ok(FLAME_TASK_FAILED, FLAME_TASK_PENDING));
    ck_assert(!fl_task_transition_ok(FLAME_TASK_CANCELLED, FLAME_TASK_RUNNING));
}
END_TEST

START_TEST(counters_follow_states)
{
    fl_session_spec sp = spec_for("app");
    fl_session *s = fl_session_new("s1", &sp, NULL, 1000);
    fl_task *a = fl_session_add_task(s, (const uint8_t *)"x", 1, true, 1001);
    fl_task *b = fl_session_add_task(s, NULL, 0, false, 1002);
    ck_assert_uint_eq(a->id, 1);
    ck_assert_uint_eq(b->id, 2);
    ck_assert_int_eq(s->counts[FLAME_TASK_PENDING], 2);
    ck_assert_int_eq(fl_task_set_state(s, a, FLAME_TASK_RUNNING, NULL, 1003), FLAME_OK);
    ck_assert_int_eq(fl_task_set_state(s, a, FLAME_TASK_SUCCEED, NULL, 1004), FLAME_OK);
    ck_assert_int_eq(a->etime, 1004);
    ck_assert_int_eq(s->counts[FLAME_TASK_SUCCEED], 1);
    ck_assert_int_eq(s->counts[FLAME_TASK_PENDING], 1);
    /* illegal: terminal -> anything */
    ck_assert_int_eq(fl_task_set_state(s, a, FLAME_TASK_RUNNING, NULL, 1005),
                     FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_int_eq(s->counts[FLAME_TASK_SUCCEED], 1);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "cannot go from Succeed to Running"));
    /* events: one per change, code = new state */
    ck_assert_uint_eq(a->events.n, 3);
    ck_assert_int_eq(fl_events_get(&a->events, 2).code, FLAME_TASK_SUCCEED);
    ck_assert_ptr_eq(fl_session_task(s, "2"), b);
    ck_assert_ptr_null(fl_session_task(s, "3"));
    ck_assert_ptr_null(fl_session_task(s, "0"));
    ck_assert_ptr_null(fl_session_task(s, "1x"));
    fl_session_free(s);
}
END_TEST

/* Flame 0.7: Suspending while something holds the session, Suspended once
 * nothing does; resume opens it; a closed session does neither. */
START_TEST(suspend_and_resume)
{
    fl_session_spec sp = spec_for("app");
    sp.batch_size = 4;
    sp.n_tokens = 1;
    sp.tokens[0] = "svc";
    sp.tokens[1] = "secret";
    fl_session *s = fl_session_new("s1", &sp, NULL, 1000);
    ck_assert_uint_eq(s->batch_size, 4);
    ck_assert_uint_eq(s->n_tokens, 1);
    ck_assert_str_eq(s->tokens[1], "secret");
    fl_task *a = fl_session_add_task(s, NULL, 0, false, 1);
    fl_task_set_state(s, a, FLAME_TASK_RUNNING, NULL, 2);
    ck_assert_int_eq(fl_session_suspend(s, false), FLAME_OK);
    ck_assert_int_eq(s->state, FLAME_SESSION_SUSPENDING); /* a task runs */
    ck_assert(fl_session_suspended(s));
    ck_assert(!fl_session_suspend_done(s, false));
    fl_task_set_state(s, a, FLAME_TASK_SUCCEED, NULL, 3);
    ck_assert(!fl_session_suspend_done(s, true)); /* an executor still holds it */
    ck_assert(fl_session_suspend_done(s, false));
    ck_assert_int_eq(s->state, FLAME_SESSION_SUSPENDED);
    ck_assert_int_eq(fl_session_suspend(s, true), FLAME_OK); /* stays as it is */
    ck_assert_int_eq(s->state, FLAME_SESSION_SUSPENDED);
    ck_assert_int_eq(fl_session_resume(s), FLAME_OK);
    ck_assert_int_eq(s->state, FLAME_SESSION_OPEN);
    ck_assert_int_eq(fl_session_resume(s), FLAME_OK); /* open: a no-op */
    ck_assert_int_eq(fl_session_suspend(s, false), FLAME_OK);
    ck_assert_int_eq(s->state, FLAME_SESSION_SUSPENDED); /* nothing held it */
    fl_task **changed;
    size_t n;
    ck_assert_int_eq(fl_session_close(s, 4, &changed, &n), FLAME_OK);
    free(changed);
    ck_assert_int_eq(fl_session_suspend(s, false), FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_int_eq(fl_session_resume(s), FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_int_eq(s->state, FLAME_SESSION_CLOSED);
    ck_assert_str_eq(flame_session_state_str(FLAME_SESSION_SUSPENDING), "Suspending");
    ck_assert_str_eq(flame_session_state_str(FLAME_SESSION_SUSPENDED), "Suspended");
    fl_session_free(s);
}
END_TEST

START_TEST(close_cancels_pending_refuses_running)
{
    fl_session_spec sp = spec_for("app");
    fl_session *s = fl_session_new("s1", &sp, NULL, 1000);
    fl_task *a = fl_session_add_task(s, NULL, 0, false, 1);
    fl_session_add_task(s, NULL, 0, false, 1);
    fl_session_add_task(s, NULL, 0, false, 1);
    fl_task_set_state(s, a, FLAME_TASK_RUNNING, NULL, 2);
    fl_task **changed;
    size_t n;
    ck_assert_int_eq(fl_session_close(s, 3, &changed, &n), FLAME_ERR_FAILED_PRECONDITION);
    ck_assert_int_eq(s->state, FLAME_SESSION_OPEN);
    fl_task_set_state(s, a, FLAME_TASK_FAILED, "boom", 4);
    ck_assert_int_eq(fl_session_close(s, 5, &changed, &n), FLAME_OK);
    ck_assert_uint_eq(n, 2);
    free(changed);
    ck_assert_int_eq(s->state, FLAME_SESSION_CLOSED);
    ck_assert_int_eq(s->counts[FLAME_TASK_CANCELLED], 2);
    ck_assert_int_eq(s->counts[FLAME_TASK_PENDING], 0);
    ck_assert_int_eq(s->counts[FLAME_TASK_FAILED], 1);
    ck_assert_int_eq(s->etime, 5);
    /* closing again is a no-op */
    ck_assert_int_eq(fl_session_close(s, 6, &changed, &n), FLAME_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(s->etime, 5);
    fl_session_free(s);
}
END_TEST

/* Every pair of states: legal exactly when listed in `legal`. */
static void check_table(bool (*ok)(int, int), int lo, int hi, const int (*legal)[2], size_t nlegal)
{
    for (int from = lo; from <= hi; from++)
        for (int to = lo; to <= hi; to++) {
            bool want = false;
            for (size_t i = 0; i < nlegal; i++)
                if (legal[i][0] == from && legal[i][1] == to)
                    want = true;
            ck_assert_msg(ok(from, to) == want, "%d -> %d: want %s", from, to,
                          want ? "legal" : "refused");
        }
}

static const int exec_legal[][2] = {
    { FLAME_EXECUTOR_VOID, FLAME_EXECUTOR_IDLE },
    { FLAME_EXECUTOR_IDLE, FLAME_EXECUTOR_BINDING },
    { FLAME_EXECUTOR_IDLE, FLAME_EXECUTOR_RELEASING },
    { FLAME_EXECUTOR_BINDING, FLAME_EXECUTOR_BOUND },
    { FLAME_EXECUTOR_BINDING, FLAME_EXECUTOR_UNBINDING },
    { FLAME_EXECUTOR_BINDING, FLAME_EXECUTOR_IDLE },
    { FLAME_EXECUTOR_BOUND, FLAME_EXECUTOR_UNBINDING },
    { FLAME_EXECUTOR_BOUND, FLAME_EXECUTOR_IDLE },
    { FLAME_EXECUTOR_UNBINDING, FLAME_EXECUTOR_IDLE },
    { FLAME_EXECUTOR_RELEASING, FLAME_EXECUTOR_IDLE },
    { FLAME_EXECUTOR_RELEASING, FLAME_EXECUTOR_RELEASED },
};

START_TEST(executor_transitions)
{
    check_table(fl_executor_transition_ok, FLAME_EXECUTOR_UNKNOWN, FLAME_EXECUTOR_RELEASED,
                exec_legal, FL_ARRAY_LEN(exec_legal));
}
END_TEST

START_TEST(executor_set_state)
{
    flame_resreq rr = { 2, 1024, 0 };
    fl_executor *e = fl_executor_new("e1", "n1", "s1", "app", rr, FLAME_SHIM_HOST, 100);
    ck_assert_int_eq(e->state, FLAME_EXECUTOR_VOID);
    ck_assert_int_eq(e->idle_since, 100);
    ck_assert_str_eq(e->intended, "s1");
    ck_assert_str_eq(e->app, "app");
    ck_assert_uint_eq(e->resreq.memory, 1024);
    /* every legal transition is taken; entering Idle stamps idle_since */
    for (size_t i = 0; i < FL_ARRAY_LEN(exec_legal); i++) {
        e->state = exec_legal[i][0];
        e->idle_since = 1;
        ck_assert_int_eq(fl_executor_set_state(e, exec_legal[i][1], 200 + (int64_t)i), FLAME_OK);
        ck_assert_int_eq(e->state, exec_legal[i][1]);
        ck_assert_int_eq(e->idle_since,
                         exec_legal[i][1] == FLAME_EXECUTOR_IDLE ? 200 + (int64_t)i : 1);
    }
    /* every illegal one is refused, names both states, changes nothing */
    for (int from = FLAME_EXECUTOR_UNKNOWN; from <= FLAME_EXECUTOR_RELEASED; from++)
        for (int to = FLAME_EXECUTOR_UNKNOWN; to <= FLAME_EXECUTOR_RELEASED; to++) {
            if (fl_executor_transition_ok(from, to))
                continue;
            e->state = from;
            e->idle_since = 7;
            ck_assert_int_eq(fl_executor_set_state(e, to, 300), FLAME_ERR_FAILED_PRECONDITION);
            ck_assert_int_eq(e->state, from);
            ck_assert_int_eq(e->idle_since, 7);
            char want[128];
            snprintf(want, sizeof want, "executor e1 cannot go from %s to %s",
                     flame_executor_state_str(from), flame_executor_state_str(to));
            ck_assert_str_eq(flame_error_last(), want);
        }
    fl_executor_free(e);
    fl_executor_free(NULL);
}
END_TEST

START_TEST(executor_call_guards)
{
    /* by state, Unknown .. Released */
    static const bool reg[] = { 0, 1, 0, 0, 0, 0, 0, 0 };
    static const bool bind[] = { 0, 0, 1, 1, 0, 0, 1, 0 };
    static const bool bind_done[] = { 0, 0, 0, 1, 0, 1, 0, 0 };
    static const bool unbind[] = { 0, 0, 0, 1, 1, 1, 0, 0 };
    static const bool unbind_done[] = { 0, 0, 0, 0, 1, 1, 0, 0 };
    for (int s = FLAME_EXECUTOR_UNKNOWN; s <= FLAME_EXECUTOR_RELEASED; s++) {
        ck_assert_msg(fl_executor_can_register(s) == reg[s], "register in %d", s);
        ck_assert_msg(fl_executor_can_bind(s) == bind[s], "bind in %d", s);
        ck_assert_msg(fl_executor_can_complete_bind(s) == bind_done[s], "bind done in %d", s);
        ck_assert_msg(fl_executor_can_unbind(s) == unbind[s], "unbind in %d", s);
        ck_assert_msg(fl_executor_can_complete_unbind(s) == unbind_done[s], "unbind done in %d",
                      s);
    }
}
END_TEST

static const int node_legal[][2] = {
    { FLAME_NODE_UNKNOWN, FLAME_NODE_READY },
    { FLAME_NODE_READY, FLAME_NODE_READY },
    { FLAME_NODE_READY, FLAME_NODE_NOT_READY },
    { FLAME_NODE_NOT_READY, FLAME_NODE_READY },
};

START_TEST(node_transitions)
{
    check_table(fl_node_transition_ok, FLAME_NODE_UNKNOWN, FLAME_NODE_NOT_READY, node_legal,
                FL_ARRAY_LEN(node_legal));
    fl_node *n = fl_node_new("n1");
    ck_assert_int_eq(n->state, FLAME_NODE_UNKNOWN);
    for (size_t i = 0; i < FL_ARRAY_LEN(node_legal); i++) {
        n->state = node_legal[i][0];
        n->last_heartbeat = 1;
        ck_assert_int_eq(fl_node_set_state(n, node_legal[i][1], 50 + (int64_t)i), FLAME_OK);
        ck_assert_int_eq(n->state, node_legal[i][1]);
        ck_assert_int_eq(n->last_heartbeat,
                         node_legal[i][1] == FLAME_NODE_READY ? 50 + (int64_t)i : 1);
    }
    for (int from = FLAME_NODE_UNKNOWN; from <= FLAME_NODE_NOT_READY; from++)
        for (int to = FLAME_NODE_UNKNOWN; to <= FLAME_NODE_NOT_READY; to++) {
            if (fl_node_transition_ok(from, to))
                continue;
            n->state = from;
            n->last_heartbeat = 9;
            ck_assert_int_eq(fl_node_set_state(n, to, 60), FLAME_ERR_FAILED_PRECONDITION);
            ck_assert_int_eq(n->state, from);
            ck_assert_int_eq(n->last_heartbeat, 9);
            char want[128];
            snprintf(want, sizeof want, "node n1 cannot go from %s to %s",
                     flame_node_state_str(from), flame_node_state_str(to));
            ck_assert_str_eq(flame_error_last(), want);
        }
    n->addresses = fl_calloc(1, sizeof *n->addresses);
    n->addresses[0].type = fl_strdup("Hostname");
    n->addresses[0].address = fl_strdup("h");
    n->n_addresses = 1;
    n->hostname = fl_strdup("h");
    fl_node_free(n); /* frees what the caller filled in */
    fl_node_free(NULL);
}
END_TEST

START_TEST(events_grow_past_inline)
{
    fl_events e = { 0 };
    for (int i = 0; i < 20; i++)
        fl_events_add(&e, i, i == 7 || i == 15 ? "msg" : NULL, 1000 + i);
    ck_assert_uint_eq(e.n, 20);
    for (int i = 0; i < 20; i++) {
        fl_event x = fl_events_get(&e, (uint32_t)i);
        ck_assert_int_eq(x.code, i);
        ck_assert_int_eq(x.time, 1000 + i);
        if (i == 7 || i == 15)
            ck_assert_str_eq(x.message, "msg");
        else
            ck_assert_ptr_null(x.message);
    }
    fl_events_free(&e);
    fl_events_add(&e, 1, "first", 5); /* a message on the first event */
    fl_events_add(&e, 2, NULL, 6);
    ck_assert_str_eq(fl_events_get(&e, 0).message, "first");
    ck_assert_ptr_null(fl_events_get(&e, 1).message);
    fl_events_free(&e);
}
END_TEST

START_TEST(spec_matching)
{
    flame_resreq dflt = { 1, 1024, 0 };
    fl_session_spec sp = spec_for("app");
    sp.priority = 3;
    fl_session *s = fl_session_new("s1", &sp, &dflt, 1);
    const char *why;
    ck_assert(fl_session_spec_matches(s, &sp, &dflt, &why));
    fl_session_spec other = sp;
    other.priority = 4;
    ck_assert(!fl_session_spec_matches(s, &other, &dflt, &why));
    ck_assert_str_eq(why, "priority");
    other = sp;
    other.application = "b";
    ck_assert(!fl_session_spec_matches(s, &other, &dflt, &why));
    ck_assert_str_eq(why, "application");
    other = sp;
    other.has_max_instances = true;
    other.max_instances = 2;
    ck_assert(!fl_session_spec_matches(s, &other, &dflt, &why));
    ck_assert_str_eq(why, "max_instances");
    other = sp;
    other.has_resreq = true;
    other.resreq = (flame_resreq){ 2, 1024, 0 };
    ck_assert(!fl_session_spec_matches(s, &other, &dflt, &why));
    ck_assert_str_eq(why, "resreq");
    fl_session_free(s);
}
END_TEST

START_TEST(names)
{
    const char *why;
    ck_assert(fl_name_valid("flmping", &why));
    ck_assert(fl_name_valid("a.b-c_D9", &why));
    ck_assert(!fl_name_valid("", &why));
    ck_assert(!fl_name_valid(".hidden", &why));
    ck_assert(!fl_name_valid("-x", &why));
    ck_assert(!fl_name_valid("a..b", &why));
    ck_assert(!fl_name_valid("a/b", &why));
    ck_assert(!fl_name_valid("a b", &why));
    char longname[300];
    memset(longname, 'a', sizeof longname);
    longname[253] = 0;
    ck_assert(fl_name_valid(longname, &why));
    longname[253] = 'a';
    longname[254] = 0;
    ck_assert(!fl_name_valid(longname, &why));
}
END_TEST

START_TEST(app_validation)
{
    fl_app_spec sp = { 0 };
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_OK);
    ck_assert_int_eq(fl_app_validate("bad/name", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(fl_app_validate("ok", NULL), FLAME_ERR_INVALID_ARGUMENT);
    sp.shim = 7;
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "unknown shim 7"));
    sp.shim = FLAME_SHIM_WASM;
    sp.working_directory = "relative/dir";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "not an absolute path"));
    sp.working_directory = "/tmp";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_OK);
    sp.has_delay_release = true;
    sp.delay_release = -1;
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    sp.delay_release = 0;
    fl_env env[2] = { { "A", "1" }, { "B=C", "2" } };
    sp.environments = env;
    sp.n_environments = 2;
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "\"B=C\" is invalid"));
    sp.n_environments = 1;
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_OK);
    sp.schema_output = "{not json";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "schema.output"));
    sp.schema_output = "{\"type\": \"string\"}";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_OK);
    /* commands: absolute, a name on PATH, $VAR/..., or relative to a
     * working_directory or an installed package; a bare relative path no */
    const char *fine[] = { "/usr/bin/env", "python3", "${FLAME_APP_DIR}/bin/svc", "inproc:flmping" };
    sp.working_directory = NULL;
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        sp.command = (char *)fine[i];
        ck_assert_msg(fl_app_validate("ok", &sp) == FLAME_OK, "%s refused", fine[i]);
    }
    sp.command = "build/examples/pi_service";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(flame_error_last(), "is a relative path"));
    sp.command = "./svc";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_ERR_INVALID_ARGUMENT);
    sp.working_directory = "/opt/app";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_OK);
    sp.working_directory = NULL;
    sp.url = "file:///tmp/app.tar.gz";
    ck_assert_int_eq(fl_app_validate("ok", &sp), FLAME_OK);
}
END_TEST

START_TEST(resreq_parse)
{
    flame_resreq r = { 0, 0, 0 };
    ck_assert_int_eq(flame_resreq_parse(&r, "cpu=2,mem=2g,gpu=1"), FLAME_OK);
    ck_assert_uint_eq(r.cpu, 2);
    ck_assert_uint_eq(r.memory, 2ULL << 30);
    ck_assert_int_eq(r.gpu, 1);
    ck_assert_int_eq(flame_resreq_parse(&r, "memory=512m"), FLAME_OK);
    ck_assert_uint_eq(r.memory, 512ULL << 20);
    ck_assert_uint_eq(r.cpu, 2);
    ck_assert_int_eq(flame_resreq_parse(&r, "cpu=x"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(flame_resreq_parse(&r, "disk=1"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(flame_resreq_parse(&r, "cpu"), FLAME_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(flame_resreq_parse(&r, "mem=1q"), FLAME_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(map_basics)
{
    fl_map m = { 0 };
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        fl_map_put(&m, key, (void *)(intptr_t)(i + 1));
    }
    ck_assert_uint_eq(m.len, 1000);
    for (int i = 0; i < 1000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_ptr_eq(fl_map_del(&m, key), (void *)(intptr_t)(i + 1));
    }
    ck_assert_uint_eq(m.len, 500);
    ck_assert_ptr_null(fl_map_get(&m, "k0"));
    ck_assert_ptr_eq(fl_map_get(&m, "k999"), (void *)(intptr_t)1000);
    size_t it = 0, n = 0;
    while (fl_map_next(&m, &it, NULL, NULL))
        n++;
    ck_assert_uint_eq(n, 500);
    fl_map_free(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, task_transitions);
    tcase_add_test(tc, counters_follow_states);
    tcase_add_test(tc, close_cancels_pending_refuses_running);
    tcase_add_test(tc, suspend_and_resume);
    tcase_add_test(tc, executor_transitions);
    tcase_add_test(tc, executor_set_state);
    tcase_add_test(tc, executor_call_guards);
    tcase_add_test(tc, node_transitions);
    tcase_add_test(tc, events_grow_past_inline);
    tcase_add_test(tc, spec_matching);
    tcase_add_test(tc, names);
    tcase_add_test(tc, app_validation);
    tcase_add_test(tc, resreq_parse);
    tcase_add_test(tc, map_basics);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
