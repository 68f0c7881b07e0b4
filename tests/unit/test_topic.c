/* Unit tests: topic and pattern validation, wildcard matching (libsvc/topic.h). */
#include "testlib.h"

#include "topic.h"

static bool s_m(const char *pattern, const char *topic)
{
    return svc__topic_match(pattern, topic, strlen(topic));
}

static bool s_v(const char *s, bool wild)
{
    return svc__topic_valid(s, strlen(s), wild);
}

TEST(valid_topics_and_patterns)
{
    CHECK(s_v("orders", false));
    CHECK(s_v("orders.created", false));
    CHECK(s_v("a-b_c:d$e.1", false));
    CHECK(!s_v("", false));
    CHECK(!s_v(".a", false));
    CHECK(!s_v("a.", false));
    CHECK(!s_v("a..b", false));
    CHECK(!s_v("a b", false));
    CHECK(!s_v("a/b", false));
    CHECK(!s_v("a.*", false));        /* wildcards only in patterns */
    CHECK(!s_v("a.>", false));
    CHECK(s_v("a.*", true));
    CHECK(s_v("*.*", true));
    CHECK(s_v(">", true));
    CHECK(s_v("a.>", true));
    CHECK(!s_v("a.>.b", true));       /* '>' only last */
    CHECK(!s_v("a.b*", true));        /* a wildcard is a whole token */
    CHECK(!s_v("a.>b", true));
    char big[SVC__TOPIC_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(!s_v(big, false));
    big[SVC__TOPIC_MAX] = 0;
    CHECK(s_v(big, false));
}

TEST(star_matches_exactly_one_token)
{
    CHECK(s_m("orders.*", "orders.created"));
    CHECK(!s_m("orders.*", "orders"));
    CHECK(!s_m("orders.*", "orders.a.b"));
    CHECK(s_m("*.created", "users.created"));
    CHECK(!s_m("*.created", "a.b.created"));
    CHECK(s_m("*", "x"));
    CHECK(!s_m("*", "x.y"));
    CHECK(s_m("a.*.c", "a.b.c"));
    CHECK(!s_m("a.*.c", "a.b.d"));
}

TEST(gt_matches_one_or_more_trailing_tokens)
{
    CHECK(s_m("orders.>", "orders.a"));
    CHECK(s_m("orders.>", "orders.a.b.c"));
    CHECK(!s_m("orders.>", "orders"));
    CHECK(!s_m("orders.>", "other.a"));
    CHECK(s_m(">", "a"));
    CHECK(s_m(">", "a.b"));
    CHECK(s_m("*.>", "a.b"));
    CHECK(!s_m("*.>", "a"));
}

TEST(literal_tokens_match_whole_tokens_only)
{
    CHECK(s_m("orders.created", "orders.created"));
    CHECK(!s_m("orders.created", "orders.create"));
    CHECK(!s_m("orders.create", "orders.created"));
    CHECK(!s_m("orders", "orders.created"));
    CHECK(!s_m("Orders", "orders"));
    /* The topic is given by length: bytes after it do not count. */
    CHECK(svc__topic_match("a.b", "a.b.c", 3));
}

static const test_case tests[] = {
    T(valid_topics_and_patterns), T(star_matches_exactly_one_token),
    T(gt_matches_one_or_more_trailing_tokens), T(literal_tokens_match_whole_tokens_only),
    { NULL, NULL },
};

int main(int argc, char **argv) { return test_main("topic", tests, argc, argv); }
