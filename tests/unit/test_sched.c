/* Unit tests of the scheduler (scheduler.h) on hand-built snapshots. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <flame/scheduler.h>

#define GB (1ULL << 30)

static flame_scheduler *sch;
static const flame_decision *dec;
static size_t ndec;

static void setup(void)
{
    ck_assert_int_eq(flame_scheduler_new(&sch), FLAME_OK);
}

static void teardown(void)
{
    flame_scheduler_free(sch);
}

static void run(const flame_sched_node *n, size_t nn, const flame_sched_application *a, size_t na,
                const flame_sched_session *s, size_t ns, const flame_sched_executor *e, size_t ne,
                int64_t now)
{
    flame_sched_snapshot snap = { n, nn, a, na, s, ns, e, ne };
    ck_assert_int_eq(flame_scheduler_cycle(sch, &snap, now, &dec, &ndec), FLAME_OK);
}

static size_t count(flame_decision_kind kind, const char *session)
{
    size_t k = 0;
    for (size_t i = 0; i < ndec; i++)
        if (dec[i].kind == kind && (!session || (dec[i].session_id && !strcmp(dec[i].session_id, session))))
            k++;
    return k;
}

static flame_sched_session sess(const char *id, const char *app, uint32_t prio, uint32_t pending)
{
    flame_sched_session s = { id, app, prio, { 1, GB, 0 }, 0, 0, 0, pending, 0, 1, 1 };
    return s;
}

static flame_sched_node node(const char *name, uint64_t cpu)
{
    flame_sched_node n = { name, { cpu, cpu * 4 * GB, 0 }, 1 };
    return n;
}

START_TEST(creates_only_where_it_fits)
{
    flame_sched_node n[] = { node("n1", 2) };
    flame_sched_session s[] = { sess("s1", "app", 0, 5) };
    run(n, 1, NULL, 0, s, 1, NULL, 0, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "s1"), 2);
    ck_assert_str_eq(dec[0].node, "n1");
    s[0].resreq.cpu = 4; /* bigger than the node */
    run(n, 1, NULL, 0, s, 1, NULL, 0, 0);
    ck_assert_uint_eq(ndec, 0);
    s[0].resreq = (flame_resreq){ 1, 100 * GB, 0 }; /* memory does not fit */
    run(n, 1, NULL, 0, s, 1, NULL, 0, 0);
    ck_assert_uint_eq(ndec, 0);
    n[0].ready = 0;
    s[0].resreq = (flame_resreq){ 1, GB, 0 };
    run(n, 1, NULL, 0, s, 1, NULL, 0, 0);
    ck_assert_uint_eq(ndec, 0);
}
END_TEST

START_TEST(spreads_over_nodes)
{
    flame_sched_node n[] = { node("n1", 2), node("n2", 2) };
    flame_sched_session s[] = { sess("s1", "app", 0, 3) };
    run(n, 2, NULL, 0, s, 1, NULL, 0, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "s1"), 3);
    int on1 = 0;
    for (size_t i = 0; i < ndec; i++)
        on1 += strcmp(dec[i].node, "n1") == 0;
    ck_assert(on1 == 1 || on1 == 2);
}
END_TEST

START_TEST(higher_priority_first)
{
    flame_sched_node n[] = { node("n1", 1) };
    flame_sched_session s[] = { sess("low", "app", 1, 5), sess("high", "app", 5, 5) };
    run(n, 1, NULL, 0, s, 2, NULL, 0, 0);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_CREATE);
    ck_assert_str_eq(dec[0].session_id, "high");
}
END_TEST

START_TEST(drf_shares_a_tier)
{
    flame_sched_node n[] = { node("n1", 4) };
    flame_sched_session s[] = { sess("a", "app", 0, 10), sess("b", "app", 0, 10) };
    run(n, 1, NULL, 0, s, 2, NULL, 0, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "a"), 2);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "b"), 2);
    /* dominant resource: b asks for 2 GB memory per executor on a node with
     * 8 cpu / 8 GB: b's share per executor is 1/4, a's is 1/8 */
    flame_sched_node m[] = { { "m", { 8, 8 * GB, 0 }, 1 } };
    s[0].resreq = (flame_resreq){ 1, GB, 0 };
    s[1].resreq = (flame_resreq){ 1, 2 * GB, 0 };
    run(m, 1, NULL, 0, s, 2, NULL, 0, 0);
    size_t ca = count(FLAME_DECISION_CREATE, "a"), cb = count(FLAME_DECISION_CREATE, "b");
    ck_assert_uint_eq(ca + 2 * cb <= 8, 1);
    ck_assert_uint_eq(ca, 4); /* equal dominant shares: 4 * 1/8 == 2 * 1/4 */
    ck_assert_uint_eq(cb, 2);
}
END_TEST

START_TEST(min_and_max_instances)
{
    flame_sched_node n[] = { node("n1", 8) };
    flame_sched_session s[] = { sess("s1", "app", 0, 10), sess("s2", "app", 0, 0) };
    s[0].has_max_instances = 1;
    s[0].max_instances = 2;
    s[1].min_instances = 3;
    run(n, 1, NULL, 0, s, 2, NULL, 0, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "s1"), 2);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "s2"), 3);
    /* the application's max_instances bounds its sessions together */
    flame_sched_application a[] = { { "app", 1, 3, 60000 } };
    s[0].has_max_instances = 0;
    s[1].min_instances = 0;
    s[1].pending = 10;
    run(n, 1, a, 1, s, 2, NULL, 0, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, NULL), 3);
}
END_TEST

START_TEST(idle_executor_reused_by_same_app_and_released_later)
{
    flame_sched_node n[] = { node("n1", 1) };
    flame_sched_application a[] = { { "app", 0, 0, 60000 }, { "other", 0, 0, 60000 } };
    flame_sched_executor e[] = { { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_IDLE, NULL, "app", 1000 } };
    flame_sched_session s[] = { sess("s1", "app", 0, 3) };
    run(n, 1, a, 2, s, 1, e, 1, 2000);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_BIND);
    ck_assert_str_eq(dec[0].executor_id, "e1");
    /* no demand: kept while younger than delay_release, then released */
    s[0].pending = 0;
    run(n, 1, a, 2, s, 1, e, 1, 1000 + 59000);
    ck_assert_uint_eq(ndec, 0);
    run(n, 1, a, 2, s, 1, e, 1, 1000 + 60000);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_RELEASE);
    /* another application needs the room: released at once, then created */
    flame_sched_session o[] = { sess("o1", "other", 0, 1) };
    run(n, 1, a, 2, o, 1, e, 1, 2000);
    ck_assert_uint_eq(ndec, 2);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_RELEASE);
    ck_assert_int_eq(dec[1].kind, FLAME_DECISION_CREATE);
    ck_assert_str_eq(dec[1].session_id, "o1");
}
END_TEST

START_TEST(closed_session_executors_unbound)
{
    flame_sched_node n[] = { node("n1", 2) };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "s1", "app", 0 },
        { "e2", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "gone", "app", 0 },
    };
    flame_sched_session s[] = { sess("s1", "app", 0, 0) };
    s[0].open = 0;
    run(n, 1, NULL, 0, s, 1, e, 2, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_UNBIND, NULL), 2);
    s[0].open = 1;
    s[0].schedulable = 0;
    s[0].pending = 4;
    run(n, 1, NULL, 0, s, 1, e, 1, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_UNBIND, NULL), 1);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, NULL), 0);
}
END_TEST

START_TEST(no_starvation_within_a_tier)
{
    /* a holds the whole node; b arrives with work: one of a's executors is
     * unbound so that b gets served */
    flame_sched_node n[] = { node("n1", 2) };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "a", "app", 0 },
        { "e2", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "a", "app", 0 },
    };
    flame_sched_session s[] = { sess("a", "app", 0, 100), sess("b", "app", 0, 5) };
    s[0].running = 2;
    run(n, 1, NULL, 0, s, 2, e, 2, 0);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_UNBIND);
    /* once b holds one, no ping-pong: 1 and 1 is fair */
    flame_sched_executor f[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "a", "app", 0 },
        { "e2", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "b", "app", 0 },
    };
    run(n, 1, NULL, 0, s, 2, f, 2, 0);
    ck_assert_uint_eq(ndec, 0);
}
END_TEST

START_TEST(higher_tier_preempts_lower)
{
    flame_sched_node n[] = { node("n1", 1) };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "low", "app", 0 },
    };
    flame_sched_session s[] = { sess("low", "app", 0, 10), sess("high", "app", 9, 1) };
    run(n, 1, NULL, 0, s, 2, e, 1, 0);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_UNBIND);
    ck_assert_str_eq(dec[0].executor_id, "e1");
    /* but never below a session's min_instances */
    s[0].min_instances = 1;
    run(n, 1, NULL, 0, s, 2, e, 1, 0);
    ck_assert_uint_eq(ndec, 0);
}
END_TEST

START_TEST(executors_being_created_count)
{
    flame_sched_node n[] = { node("n1", 4) };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_VOID, "s1", NULL, 0 },
    };
    flame_sched_session s[] = { sess("s1", "app", 0, 2) };
    run(n, 1, NULL, 0, s, 1, e, 1, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, "s1"), 1);
}
END_TEST

START_TEST(over_committed_node_gets_nothing)
{
    /* three executors on a 2-cpu node (one is being released): the node is
     * full, not "negative" */
    flame_sched_node n[] = { node("n1", 2) };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "s1", "app", 0 },
        { "e2", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "s1", "app", 0 },
        { "e3", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_RELEASING, NULL, "other", 0 },
    };
    flame_sched_session s[] = { sess("s1", "app", 0, 100) };
    s[0].running = 2;
    run(n, 1, NULL, 0, s, 1, e, 3, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_CREATE, NULL), 0);
}
END_TEST

START_TEST(hints_are_checked)
{
    flame_sched_node n[] = { node("n1", 2), node("n2", 2) };
    flame_sched_session s[] = { sess("a", "app", 0, 0), sess("b", "app", 0, 0) };
    s[1].open = 0;
    /* right hints, then hints that point at the wrong entries: same result */
    flame_sched_executor e[] = {
        { "e1", "n2", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "b", "app", 0, 2, 2 },
    };
    run(n, 2, NULL, 0, s, 2, e, 1, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_UNBIND, NULL), 1);
    e[0].node_hint = 1;
    e[0].session_hint = 1; /* session "a" is open: a wrong hint would keep e1 */
    run(n, 2, NULL, 0, s, 2, e, 1, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_UNBIND, NULL), 1);
    e[0].session_hint = 99;
    run(n, 2, NULL, 0, s, 2, e, 1, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_UNBIND, NULL), 1);
}
END_TEST

START_TEST(deterministic)
{
    flame_sched_node n[] = { node("n1", 3), node("n2", 3) };
    flame_sched_session s[] = { sess("a", "x", 1, 4), sess("b", "y", 1, 4), sess("c", "x", 2, 1) };
    run(n, 2, NULL, 0, s, 3, NULL, 0, 0);
    flame_decision first[16];
    size_t nfirst = ndec;
    ck_assert_uint_le(nfirst, 16);
    memcpy(first, dec, ndec * sizeof *dec);
    run(n, 2, NULL, 0, s, 3, NULL, 0, 0);
    ck_assert_uint_eq(ndec, nfirst);
    for (size_t i = 0; i < ndec; i++) {
        ck_assert_int_eq(dec[i].kind, first[i].kind);
        ck_assert_str_eq(dec[i].node, first[i].node);
        ck_assert_str_eq(dec[i].session_id, first[i].session_id);
    }
    ck_assert_uint_eq(nfirst, 6);
    ck_assert_str_eq(dec[0].session_id, "c"); /* the top tier first */
}
END_TEST

START_TEST(no_reclaim_that_makes_no_room)
{
    /* high needs a gpu that no node has: unbinding low's executor would not
     * help it, so nothing is decided (no unbind/rebind every cycle) */
    flame_sched_node n[] = { node("n1", 1) };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "low", "app", 0 },
    };
    flame_sched_session s[] = { sess("low", "app", 0, 10), sess("high", "app", 9, 1) };
    s[1].resreq.gpu = 1;
    run(n, 1, NULL, 0, s, 2, e, 1, 0);
    ck_assert_uint_eq(ndec, 0);
    /* high needs 2 cpus on a node where low holds two of 1 cpu: both go */
    flame_sched_node m[] = { node("n1", 2) };
    flame_sched_executor f[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "low", "app", 0 },
        { "e2", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "low", "app", 0 },
    };
    s[1].resreq = (flame_resreq){ 2, GB, 0 };
    run(m, 1, NULL, 0, s, 2, f, 2, 0);
    ck_assert_uint_eq(count(FLAME_DECISION_UNBIND, NULL), 2);
    ck_assert_uint_eq(ndec, 2);
}
END_TEST

START_TEST(capped_application_shares_among_its_sessions)
{
    /* app allows 2 executors, a holds both: b (same tier, no executor)
     * takes one, and the freed slot is not handed to a again */
    flame_sched_node n[] = { node("n1", 8) };
    flame_sched_application a[] = { { "app", 1, 2, 60000 } };
    flame_sched_executor e[] = {
        { "e1", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "a", "app", 0 },
        { "e2", "n1", { 1, GB, 0 }, FLAME_EXECUTOR_BOUND, "a", "app", 0 },
    };
    flame_sched_session s[] = { sess("a", "app", 0, 10), sess("b", "app", 0, 10) };
    s[0].running = 2;
    run(n, 1, a, 1, s, 2, e, 2, 0);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_UNBIND);
    /* next cycle: b reuses the idle executor; then 1 and 1 is fair */
    e[1].state = FLAME_EXECUTOR_IDLE;
    e[1].session_id = NULL;
    s[0].running = 1;
    run(n, 1, a, 1, s, 2, e, 2, 0);
    ck_assert_uint_eq(ndec, 1);
    ck_assert_int_eq(dec[0].kind, FLAME_DECISION_BIND);
    ck_assert_str_eq(dec[0].session_id, "b");
    e[1].state = FLAME_EXECUTOR_BOUND;
    e[1].session_id = "b";
    run(n, 1, a, 1, s, 2, e, 2, 0);
    ck_assert_uint_eq(ndec, 0);
}
END_TEST

/* A caller built against a later header whose structs grew. */
typedef struct {
    flame_sched_session s;
    uint64_t later_field;
} grown_session;

typedef struct {
    flame_decision d;
    uint64_t later_field;
} grown_decision;

START_TEST(snapshot_versions_and_strides)
{
    flame_sched_node n[] = { node("n1", 2) };
    flame_sched_session s[] = { sess("s1", "app", 0, 5) };
    /* version 0 (positional, as before versioning), the macro and the
     * function give the same decisions */
    flame_sched_snapshot v0 = { n, 1, NULL, 0, s, 1, NULL, 0 };
    ck_assert_int_eq(flame_scheduler_cycle(sch, &v0, 0, &dec, &ndec), FLAME_OK);
    ck_assert_uint_eq(ndec, 2);
    flame_sched_snapshot m = FLAME_SCHED_SNAPSHOT_INIT;
    ck_assert_int_eq(m.version, FLAME_SCHED_SNAPSHOT_VERSION);
    m.nodes = n;
    m.nodes_len = 1;
    m.sessions = s;
    m.sessions_len = 1;
    ck_assert_int_eq(flame_scheduler_cycle(sch, &m, 0, &dec, &ndec), FLAME_OK);
    ck_assert_uint_eq(ndec, 2);
    flame_sched_snapshot f;
    flame_sched_snapshot_init(&f);
    ck_assert_int_eq(f.version, m.version);
    ck_assert_uint_eq(f.node_size, m.node_size);
    ck_assert_uint_eq(f.application_size, m.application_size);
    ck_assert_uint_eq(f.session_size, m.session_size);
    ck_assert_uint_eq(f.executor_size, m.executor_size);
    ck_assert_uint_eq(f.decision_size, m.decision_size);
    ck_assert_ptr_null(f.nodes);

    /* larger strides: read and written at the caller's stride */
    grown_session g[2] = { { sess("g1", "app", 0, 1), 7 }, { sess("g2", "app", 0, 1), 7 } };
    m.sessions = &g[0].s;
    m.sessions_len = 2;
    m.session_size = sizeof *g;
    m.decision_size = sizeof(grown_decision);
    ck_assert_int_eq(flame_scheduler_cycle(sch, &m, 0, &dec, &ndec), FLAME_OK);
    ck_assert_uint_eq(ndec, 2);
    const grown_decision *gd = (const grown_decision *)(const void *)dec;
    ck_assert_str_eq(gd[0].d.session_id, "g1");
    ck_assert_str_eq(gd[1].d.session_id, "g2");
    ck_assert_int_eq(gd[1].d.kind, FLAME_DECISION_CREATE);
    ck_assert_uint_eq(gd[0].later_field, 0);

    /* an element size below version 1's, or an unknown version: refused */
    m.session_size = sizeof(flame_sched_session) - 1;
    ck_assert_int_eq(flame_scheduler_cycle(sch, &m, 0, &dec, &ndec), FLAME_ERR_INVALID_ARGUMENT);
    m.session_size = sizeof *g;
    m.version = FLAME_SCHED_SNAPSHOT_VERSION + 1;
    ck_assert_int_eq(flame_scheduler_cycle(sch, &m, 0, &dec, &ndec), FLAME_ERR_INVALID_ARGUMENT);
    m.version = 1;
    m.node_size = 0;
    ck_assert_int_eq(flame_scheduler_cycle(sch, &m, 0, &dec, &ndec), FLAME_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("scheduler");
    TCase *tc = tcase_create("policies");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, creates_only_where_it_fits);
    tcase_add_test(tc, spreads_over_nodes);
    tcase_add_test(tc, higher_priority_first);
    tcase_add_test(tc, drf_shares_a_tier);
    tcase_add_test(tc, min_and_max_instances);
    tcase_add_test(tc, idle_executor_reused_by_same_app_and_released_later);
    tcase_add_test(tc, closed_session_executors_unbound);
    tcase_add_test(tc, no_starvation_within_a_tier);
    tcase_add_test(tc, higher_tier_preempts_lower);
    tcase_add_test(tc, executors_being_created_count);
    tcase_add_test(tc, over_committed_node_gets_nothing);
    tcase_add_test(tc, hints_are_checked);
    tcase_add_test(tc, deterministic);
    tcase_add_test(tc, snapshot_versions_and_strides);
    tcase_add_test(tc, no_reclaim_that_makes_no_room);
    tcase_add_test(tc, capped_application_shares_among_its_sessions);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
