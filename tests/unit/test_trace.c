/*
 * Unit tests: trace ids, the client wrapper chain (refusing calls, so no
 * network is needed) and the latency histogram behind Debug.Stats.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "svc/svc.h"
#include "epstats.h"
#include "log_int.h"
#include "trace_int.h"

TEST(trace_ids_are_made_and_checked)
{
    char t[SVC_TRACE_ID_LEN + 1], u[SVC_TRACE_ID_LEN + 1], sp[SVC_SPAN_ID_LEN + 1];
    svc_trace_new_id(t);
    svc_trace_new_id(u);
    svc_span_new_id(sp);
    CHECK_INT(strlen(t), 32);
    CHECK_INT(strlen(sp), 16);
    CHECK(strcmp(t, u) != 0);
    CHECK(svc_trace_id_valid(t) && svc_trace_id_valid(sp));
    CHECK(svc_trace_id_valid("abc123") && svc_trace_id_valid("A-b_9"));
    CHECK(!svc_trace_id_valid(NULL) && !svc_trace_id_valid(""));
    CHECK(!svc_trace_id_valid("has space") && !svc_trace_id_valid("q\"uote"));
    CHECK(!svc_trace_id_valid("new\nline") && !svc_trace_id_valid("x=y"));
    char long_id[80];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[SVC_TRACE_ID_MAX] = '\0';
    CHECK(svc_trace_id_valid(long_id));
    long_id[SVC_TRACE_ID_MAX] = 'a';
    long_id[SVC_TRACE_ID_MAX + 1] = '\0';
    CHECK(!svc_trace_id_valid(long_id));
}

/* What the wrappers saw, in order. */
static char s_seen[256];

static void s_note(const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(s_seen);
    snprintf(s_seen + n, sizeof s_seen - n, fmt, a, b);
}

/* Notes "name>" on the way in and "<name" on the way out; "deny" refuses. */
static int s_wrapper(svc_call_info *call, void *arg)
{
    const char *name = arg;
    s_note("%s>%s", name, "");
    if (strcmp(name, "deny") == 0)
        return svc_call_fail(call, 401, "refused %s", call->endpoint);
    svc_meta_set(call->meta, "X-Seen", name);
    int rc = svc_call_next(call);
    s_note("<%s%s", name, "");
    return rc;
}

/* Records the trace pairs and the timeout of the call it refuses. */
static char s_trace[80], s_span[80], s_parent[80];
static int s_timeout_ms, s_calls;

static int s_capture(svc_call_info *call, void *arg)
{
    const char *t = svc_meta_get(call->meta, SVC_META_TRACE_ID);
    const char *s = svc_meta_get(call->meta, SVC_META_SPAN_ID);
    const char *p = svc_meta_get(call->meta, SVC_META_PARENT_ID);
    snprintf(s_trace, sizeof s_trace, "%s", t ? t : "");
    snprintf(s_span, sizeof s_span, "%s", s ? s : "");
    snprintf(s_parent, sizeof s_parent, "%s", p ? p : "(none)");
    s_timeout_ms = call->opts->timeout_ms;
    s_calls++;
    /* The thread's current trace during the call is the call's. */
    CHECK_STR(svc_trace_current(), t);
    return svc_call_fail(call, 418, "captured");
}

TEST(client_wrappers_run_in_declared_order_and_can_refuse)
{
    svc_client *c = svc_client_new("ipc:///nonexistent/registry");
    CHECK(svc_client_wrap(c, s_wrapper, "one") == 0);
    CHECK(svc_client_wrap(c, s_wrapper, "two") == 0);
    CHECK(svc_client_wrap(c, s_wrapper, "deny") == 0);
    CHECK(svc_client_wrap(c, NULL, NULL) == SVC_EINVAL);
    s_seen[0] = '\0';
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    int rc = svc_client_call_raw(c, "svc", "A.B", "", 0, NULL, &r, &e);
    CHECK_INT(rc, SVC_EREMOTE);
    CHECK_INT(e.code, 401);
    CHECK_STR(e.detail, "refused A.B");
    CHECK_STR(e.id, "svc.client");
    CHECK_STR(s_seen, "one>two>deny><two<one");
    CHECK(svc_trace_current() == NULL);   /* the call's context is gone after it */
    svc_error_release(&e);
    svc_client_destroy(&c);

    c = svc_client_new("ipc:///nonexistent/registry");
    for (int i = 0; i < SVC_MAX_WRAPPERS; i++)
        CHECK(svc_client_wrap(c, s_wrapper, "x") == 0);
    CHECK(svc_client_wrap(c, s_wrapper, "x") == SVC_EINVAL);
    svc_client_destroy(&c);
}

TEST(calls_get_trace_ids_at_the_edge_and_keep_them_onward)
{
    svc_client *c = svc_client_new("ipc:///nonexistent/registry");
    svc_client_wrap(c, s_capture, NULL);
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;

    /* The edge: no trace yet, so a new one, a new span, no parent. */
    svc_client_call_raw(c, "svc", "A.B", "", 0, NULL, &r, &e);
    CHECK_INT(strlen(s_trace), 32);
    CHECK_INT(strlen(s_span), 16);
    CHECK_STR(s_parent, "(none)");
    char first[80];
    snprintf(first, sizeof first, "%s", s_trace);
    svc_client_call_raw(c, "svc", "A.B", "", 0, NULL, &r, &e);
    CHECK(strcmp(first, s_trace) != 0);   /* each edge call is its own trace */

    /* A trace given by the caller is kept; its span becomes the parent. */
    svc_meta m = SVC_META_INIT;
    svc_meta_set(&m, SVC_META_TRACE_ID, "abc123");
    svc_meta_set(&m, SVC_META_SPAN_ID, "span1");
    svc_call_opts o = { .meta = &m };
    svc_client_call_raw(c, "svc", "A.B", "", 0, &o, &r, &e);
    CHECK_STR(s_trace, "abc123");
    CHECK_STR(s_parent, "span1");
    CHECK(strcmp(s_span, "span1") != 0 && strlen(s_span) == 16);

    /* An invalid one is replaced, never sent on. */
    svc_meta_set(&m, SVC_META_TRACE_ID, "bad id\"");
    svc_meta_del(&m, SVC_META_SPAN_ID);
    svc_client_call_raw(c, "svc", "A.B", "", 0, &o, &r, &e);
    CHECK_INT(strlen(s_trace), 32);
    CHECK_STR(s_parent, "(none)");
    svc_meta_release(&m);

    /* On a thread handling a request, calls continue its trace. */
    svc__logctx lc = { .trace = "t-handler", .span = "s-handler", .parent = "", .deadline = -1 };
    const svc__logctx *prev = svc__logctx_set(&lc);
    svc_client_call_raw(c, "svc", "A.B", "", 0, NULL, &r, &e);
    CHECK_STR(s_trace, "t-handler");
    CHECK_STR(s_parent, "s-handler");
    CHECK_INT(s_timeout_ms, 0);                   /* no deadline: the client's default */
    CHECK_STR(svc_trace_current(), "t-handler");   /* restored after the call */

    /* ... and are bounded by its deadline, or not sent once it passed. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    lc.deadline = now_ms + 5000;
    svc_call_opts longer = { .timeout_ms = 60000 };
    svc_client_call_raw(c, "svc", "A.B", "", 0, &longer, &r, &e);
    CHECK(s_timeout_ms > 4000 && s_timeout_ms <= 5000);
    lc.deadline = now_ms - 1;
    int calls = s_calls;
    int rc = svc_client_call_raw(c, "svc", "A.B", "", 0, NULL, &r, &e);
    CHECK_INT(rc, SVC_ETIMEOUT);
    CHECK_INT(e.code, 408);
    CHECK_INT(s_calls, calls);                    /* the wrappers never saw it */
    svc__logctx_set(prev);

    svc_error_release(&e);
    svc_client_destroy(&c);
}

/* The metadata a call without wrappers sends: borrowed, trace pairs replaced. */
TEST(plain_calls_send_their_pairs_and_the_trace_ids_without_copying)
{
    svc_meta m = SVC_META_INIT, dflt = SVC_META_INIT;
    svc_meta_set(&m, "Authorization", "Bearer x");
    svc_meta_set(&m, SVC_META_SPAN_ID, "caller-span");
    svc_meta_set(&m, SVC_META_PARENT_ID, "stale");
    svc__trace_meta tm;
    const svc_meta *v = svc__trace_call_meta(&m, &dflt, &tm);
    CHECK(v == &tm.view);
    CHECK_INT(v->n, 4);   /* Authorization, trace, span, parent */
    CHECK(svc_meta_get(v, "Authorization") == svc_meta_get(&m, "Authorization"));  /* borrowed */
    CHECK_INT(strlen(svc_meta_get(v, SVC_META_TRACE_ID)), 32);
    CHECK_STR(svc_meta_get(v, SVC_META_PARENT_ID), "caller-span");
    CHECK(strcmp(svc_meta_get(v, SVC_META_SPAN_ID), "caller-span") != 0);
    CHECK_STR(svc_meta_get(v, SVC_META_SPAN_ID), tm.lc.span);

    /* No parent: the pair is left out. */
    svc_meta_del(&m, SVC_META_SPAN_ID);
    v = svc__trace_call_meta(&m, &dflt, &tm);
    CHECK(svc_meta_get(v, SVC_META_PARENT_ID) == NULL);
    CHECK(svc__trace_call_meta(NULL, NULL, &tm)->n == 2);

    /* Too many pairs to borrow: unchanged (svc_client_call_raw copies instead). */
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        svc_meta_set(&m, k, "v");
    }
    CHECK(svc__trace_call_meta(&m, &dflt, &tm) == &m);
    svc_meta_release(&m);
}

TEST(histogram_buckets_are_ordered_and_close)
{
    size_t last = 0;
    for (uint64_t us = 0; us < 5000000; us = us < 64 ? us + 1 : us + us / 7) {
        size_t b = svc__hist_bucket(us);
        CHECK(b >= last);
        CHECK(b < SVC__HIST_BUCKETS);
        last = b;
        uint64_t v = svc__hist_value(b);
        double err = us ? ((double)v - (double)us) / (double)us : (double)v;
        if (err < -0.07 || err > 0.07)
            test_fail(__FILE__, __LINE__, "latency %llu us reported as %llu us",
                      (unsigned long long)us, (unsigned long long)v);
    }
    CHECK_INT(svc__hist_bucket(UINT64_MAX), SVC__HIST_BUCKETS - 1);
    CHECK_INT(svc__hist_bucket(15), 15);
    CHECK(svc__hist_bucket(16) == 16 && svc__hist_bucket(17) == 16 && svc__hist_bucket(18) == 17);
}

TEST(quantiles_of_a_known_distribution)
{
    svc__epstats *st = calloc(1, sizeof *st);
    CHECK(svc__epstats_quantile(st, 0.5) == 0);   /* none yet */
    /* 98 calls of 50 ms, 2 of 900 ms, 1 failed. */
    for (int i = 0; i < 100; i++) {
        svc__epstats_begin(st);
        svc__epstats_end(st, i < 98 ? 50000 : 900000, i == 0, true);
    }
    uint64_t p50 = svc__epstats_quantile(st, 0.50), p99 = svc__epstats_quantile(st, 0.99);
    CHECK(p50 > 47000 && p50 < 53000);
    CHECK(p99 > 850000 && p99 < 950000);
    CHECK_INT(atomic_load(&st->started), 100);
    CHECK_INT(atomic_load(&st->finished), 100);
    CHECK_INT(atomic_load(&st->errors), 1);
    /* A stream open counts but has no latency. */
    svc__epstats_begin(st);
    svc__epstats_end(st, 123456789, false, false);
    CHECK(svc__epstats_quantile(st, 0.99) == p99);
    free(st);
}

static const test_case tests[] = {
    T(trace_ids_are_made_and_checked),
    T(client_wrappers_run_in_declared_order_and_can_refuse),
    T(calls_get_trace_ids_at_the_edge_and_keep_them_onward),
    T(plain_calls_send_their_pairs_and_the_trace_ids_without_copying),
    T(histogram_buckets_are_ordered_and_close),
    T(quantiles_of_a_known_distribution),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    return test_main("trace", tests, argc, argv);
}
