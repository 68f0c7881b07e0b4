/* Unit tests: node filters, strategies and the circuit breaker. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>

#include "selector.h"

static void s_node(svc__node *n, const char *addr, const char *version, const char *meta)
{
    memset(n, 0, sizeof *n);
    n->address = strdup(addr);
    n->version = strdup(version);
    if (meta) {
        char *copy = strdup(meta), *save = NULL;
        for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save))
            svc_meta_parse(&n->meta, kv);
        free(copy);
    }
}

TEST(filters_by_version_glob_and_metadata)
{
    svc__node n;
    s_node(&n, "tcp://a:1", "2.1", "zone=eu-west,tier=gold");
    CHECK(svc__node_matches(&n, NULL, NULL));
    CHECK(svc__node_matches(&n, "2.*", NULL));
    CHECK(!svc__node_matches(&n, "1.*", NULL));
    CHECK(svc__node_matches(&n, NULL, "zone=eu-*"));
    CHECK(svc__node_matches(&n, "2.1", "zone=eu-west,tier=gold"));
    CHECK(!svc__node_matches(&n, NULL, "zone=eu-west,tier=silver"));
    CHECK(!svc__node_matches(&n, NULL, "rack=1"));          /* key absent */
    CHECK(!svc__node_matches(&n, NULL, "zone"));            /* malformed: matches nothing */
    svc__node_release(&n);
}

TEST(round_robin_rotates_and_skips_failed)
{
    svc__node ns[3];
    s_node(&ns[0], "a", "1", NULL);
    s_node(&ns[1], "b", "1", NULL);
    s_node(&ns[2], "c", "1", NULL);
    uint64_t rr = 0;
    svc__select sel = { .strategy = SVC_SELECT_ROUND_ROBIN, .rr = &rr };
    int counts[3] = { 0 };
    for (int i = 0; i < 300; i++)
        counts[svc__select_node(ns, 3, &sel, NULL, 0, NULL) - ns]++;
    CHECK_INT(counts[0], 100);
    CHECK_INT(counts[1], 100);
    CHECK_INT(counts[2], 100);
    ns[1].failed = true;
    for (int i = 0; i < 10; i++)
        CHECK(svc__select_node(ns, 3, &sel, NULL, 0, NULL) != &ns[1]);
    ns[0].failed = ns[2].failed = true;
    bool matched = false;
    CHECK(svc__select_node(ns, 3, &sel, NULL, 0, &matched) == NULL);
    CHECK(matched);   /* nodes match, they have all failed */
    sel.version = "9.*";
    CHECK(svc__select_node(ns, 3, &sel, NULL, 0, &matched) == NULL);
    CHECK(!matched);
    for (int i = 0; i < 3; i++)
        svc__node_release(&ns[i]);
}

TEST(breaker_opens_after_failures_and_probes_after_cooldown)
{
    svc__node ns[2];
    s_node(&ns[0], "a", "1", NULL);
    s_node(&ns[1], "b", "1", NULL);
    svc__breaker *t = NULL;
    uint64_t rr = 0;
    svc__select sel = { .strategy = SVC_SELECT_RANDOM, .rr = &rr };
    /* Two failures: still closed; the third opens it. */
    CHECK(!svc__breaker_report(&t, "a", false, 3, 1000, 100));
    CHECK(!svc__breaker_report(&t, "a", false, 3, 1000, 110));
    CHECK(svc__breaker_report(&t, "a", false, 3, 1000, 120));
    for (int i = 0; i < 20; i++)
        CHECK(svc__select_node(ns, 2, &sel, t, 500, NULL) == &ns[1]);
    /* Every node open: the one due first is probed rather than nothing. */
    CHECK(svc__breaker_report(&t, "b", false, 1, 5000, 130));
    CHECK(svc__select_node(ns, 2, &sel, t, 600, NULL) == &ns[0]);
    /* After the cool-down "a" is probed; a failed probe reopens it at
     * once, without three new failures. */
    CHECK(svc__select_node(ns, 2, &sel, t, 1200, NULL) == &ns[0]);
    CHECK(svc__breaker_report(&t, "a", false, 3, 1000, 1200));
    CHECK(!svc__breaker_report(&t, "b", true, 1, 5000, 1250));        /* b answers: closed */
    for (int i = 0; i < 20; i++)
        CHECK(svc__select_node(ns, 2, &sel, t, 1300, NULL) == &ns[1]);  /* a is out again */
    /* Probed again after the new cool-down (b sits this call out); a
     * success closes it for good. */
    ns[1].failed = true;
    CHECK(svc__select_node(ns, 2, &sel, t, 2300, NULL) == &ns[0]);
    ns[1].failed = false;
    CHECK(!svc__breaker_report(&t, "a", true, 3, 1000, 2300));
    CHECK(!svc__breaker_report(&t, "a", false, 3, 1000, 2400));   /* one failure: still closed */
    int picked_a = 0;
    for (int i = 0; i < 64; i++)
        picked_a += svc__select_node(ns, 2, &sel, t, 2500, NULL) == &ns[0];
    CHECK(picked_a > 0 && picked_a < 64);   /* both in rotation again */
    /* Due for a probe: the call that takes it keeps the others off the node. */
    CHECK(!svc__breaker_report(&t, "a", false, 3, 1000, 2600));
    CHECK(svc__breaker_report(&t, "a", false, 3, 1000, 2700));      /* open until 3700 */
    svc__breaker_probing(t, "a", 3, 1000, 3800);                    /* the probe */
    for (int i = 0; i < 20; i++)
        CHECK(svc__select_node(ns, 2, &sel, t, 3900, NULL) == &ns[1]);
    CHECK(!svc__breaker_report(&t, "a", true, 3, 1000, 3950));      /* it answered */
    picked_a = 0;
    for (int i = 0; i < 64; i++)
        picked_a += svc__select_node(ns, 2, &sel, t, 4000, NULL) == &ns[0];
    CHECK(picked_a > 0 && picked_a < 64);
    /* failures 0: the breaker is off. */
    CHECK(!svc__breaker_report(&t, "c", false, 0, 1000, 0));
    svc__breaker_free(&t);
    CHECK(t == NULL);
    for (int i = 0; i < 2; i++)
        svc__node_release(&ns[i]);
}

TEST(least_outstanding_picks_the_least_loaded_eligible_node)
{
    svc__node ns[3];
    s_node(&ns[0], "a", "1", NULL);
    s_node(&ns[1], "b", "1", NULL);
    s_node(&ns[2], "c", "2", NULL);
    uint64_t rr = 0;
    svc__select sel = { .strategy = SVC_SELECT_LEAST_OUTSTANDING, .rr = &rr };
    ns[0].outstanding = 5;
    ns[1].outstanding = 1;
    ns[2].outstanding = 3;
    for (int i = 0; i < 20; i++)
        CHECK(svc__select_node(ns, 3, &sel, NULL, 0, NULL) == &ns[1]);
    /* Ties are broken at random: both tied nodes get picked. */
    ns[2].outstanding = 1;
    int picked[3] = { 0 };
    for (int i = 0; i < 200; i++)
        picked[svc__select_node(ns, 3, &sel, NULL, 0, NULL) - ns]++;
    CHECK_INT(picked[0], 0);
    CHECK(picked[1] > 40 && picked[2] > 40);
    /* Filters and failures come first: the least loaded of what is left. */
    sel.version = "1";
    CHECK(svc__select_node(ns, 3, &sel, NULL, 0, NULL) == &ns[1]);
    ns[1].failed = true;
    CHECK(svc__select_node(ns, 3, &sel, NULL, 0, NULL) == &ns[0]);
    ns[1].failed = false;
    /* An open breaker keeps the idlest node out. */
    svc__breaker *t = NULL;
    CHECK(svc__breaker_report(&t, "b", false, 1, 1000, 0));
    for (int i = 0; i < 20; i++)
        CHECK(svc__select_node(ns, 3, &sel, t, 10, NULL) == &ns[0]);
    svc__breaker_free(&t);
    for (int i = 0; i < 3; i++)
        svc__node_release(&ns[i]);
}

static size_t s_breakers(const svc__breaker *t)
{
    size_t n = 0;
    for (; t; t = t->next)
        n++;
    return n;
}

/* The table forgets nodes that stopped failing (or being called): it does not grow for ever. */
TEST(breakers_of_quiet_nodes_are_forgotten)
{
    svc__breaker *t = NULL;
    char addr[32];
    for (int i = 0; i < 100; i++) {
        snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", 1000 + i);
        svc__breaker_report(&t, addr, false, 3, 1000, 1000);
    }
    CHECK(svc__breaker_report(&t, "a", false, 1, 100000, 1000));   /* open until 101000 */
    CHECK(!svc__breaker_report(&t, "b", false, 3, 1000, 50000));
    svc__breaker_prune(&t, 30000);
    CHECK_INT(s_breakers(t), 102);                                  /* all recent */
    svc__breaker_prune(&t, 70000);
    CHECK_INT(s_breakers(t), 2);                                    /* "a" open, "b" recent */
    svc__breaker_prune(&t, 120000);
    CHECK_INT(s_breakers(t), 0);
    svc__breaker_free(&t);
}

static const test_case tests[] = {
    T(breakers_of_quiet_nodes_are_forgotten),
    T(least_outstanding_picks_the_least_loaded_eligible_node),
    T(filters_by_version_glob_and_metadata),
    T(round_robin_rotates_and_skips_failed),
    T(breaker_opens_after_failures_and_probes_after_cooldown),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    return test_main("selector", tests, argc, argv);
}
