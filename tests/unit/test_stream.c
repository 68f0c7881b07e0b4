/*
 * tests/unit/test_stream.c — streams end to end inside one process: a real
 * service (svc_run on its own thread, ipc:// in a temp dir) and the libsvc
 * stream client, plus the credit state machine (flow.h) on its own.
 *
 * The in-process form lets the tests look at both ends at once: what the
 * handler saw (end of input, a cancel) and how far a writer got when its
 * reader stopped.  Run under ASan (build/asan/tests/test_stream), the
 * cancel tests also prove that both ends free what the stream held.
 */
#include "testlib.h"
#include "flow.h"
#include "svc/svc.h"
#include "testmsg.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char s_dir[64], s_addr[128];
static svc_service *s_svc;
static pthread_t s_thread;
static svc_client *s_client;

/* What the handlers saw, for the tests to check. */
static atomic_int s_eof_seen, s_closed_seen, s_handlers_open;
static atomic_long s_sent;           /* messages Test.Flood has sent */
static atomic_int s_after_eof;       /* messages Test.Tail sends after the half-close */

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* bidi: each message back; counts the clean end of input. */
static int h_echo(svc_ctx *ctx, svc_stream *st)
{
    atomic_fetch_add(&s_handlers_open, 1);
    ProtobufCMessage *m;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0) {
        rc = svc_stream_send_wait(st, m, -1);
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc < 0)
            break;
    }
    if (rc == 1)
        atomic_fetch_add(&s_eof_seen, 1);
    if (rc == SVC_ECLOSED)
        atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_handlers_open, 1);
    return rc == 1 ? 0 : rc;
}

/* client stream that answers only after the half-close, with many messages. */
static int h_tail(svc_ctx *ctx, svc_stream *st)
{
    ProtobufCMessage *m;
    int n = 0, rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0) {
        n++;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (rc != 1)
        return rc;
    atomic_fetch_add(&s_eof_seen, 1);
    Testmsg__Inner out = TESTMSG__INNER__INIT;
    for (int i = 0; i < 1000 * n; i++) {
        out.count = i;
        if ((rc = svc_stream_send_wait(st, &out.base, 5000)) < 0)
            return rc;
        atomic_fetch_add(&s_after_eof, 1);
    }
    return 0;
}

/* bidi that only reads, until cancelled. */
static int h_hold(svc_ctx *ctx, svc_stream *st)
{
    atomic_fetch_add(&s_handlers_open, 1);
    ProtobufCMessage *m;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0)
        protobuf_c_message_free_unpacked(m, NULL);
    if (rc == SVC_ECLOSED)
        atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_handlers_open, 1);
    return 0;
}

/* bidi that neither reads nor stops writing: the client's credit must stop it. */
static int h_flood(svc_ctx *ctx, svc_stream *st)
{
    atomic_fetch_add(&s_handlers_open, 1);
    Testmsg__Inner out = TESTMSG__INNER__INIT;
    out.label = "0123456789012345678901234567890123456789012345678901234567890";
    int rc;
    for (int i = 0; (rc = svc_stream_send_wait(st, &out.base, -1)) == 0; i++) {
        out.count = i;
        atomic_fetch_add(&s_sent, 1);
    }
    if (rc == SVC_ECLOSED)
        atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_handlers_open, 1);
    return 0;
}

static atomic_int s_burst_accepted = -1;   /* T.Burst: sends svc_stream_send took before -EAGAIN */

/* Server stream: a burst of count messages without waiting, as registryd's Watch does. */
static int h_burst(svc_ctx *ctx, const void *req, svc_stream *st)
{
    const Testmsg__Inner *in = req;
    Testmsg__Inner out = TESTMSG__INNER__INIT;
    int n = 0;
    for (; n < in->count; n++) {
        out.count = n;
        if (svc_stream_send(st, &out.base) != 0)
            break;
    }
    atomic_store(&s_burst_accepted, n);
    svc_stream_close(&st, NULL);
    return 0;
}

/* bidi that gives up after three messages: the server's cancel. */
static int h_abort(svc_ctx *ctx, svc_stream *st)
{
    ProtobufCMessage *m;
    for (int n = 0; n < 3 && svc_stream_recv(st, -1, &m) == 0; n++)
        protobuf_c_message_free_unpacked(m, NULL);
    return svc_ctx_error(ctx, 409, "enough");
}

static void *s_serve(void *arg)
{
    svc_run(s_svc);
    return NULL;
}

static int s_start(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/svc-test-stream-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_addr, sizeof s_addr, "ipc://%s/svc", s_dir);
    char reg[128];
    snprintf(reg, sizeof reg, "ipc://%s/no-registry", s_dir);
    char *argv[] = { "test_stream", "--address", s_addr, "--registry", reg, "--log-level",
                     getenv("TEST_STREAM_LOG") ? getenv("TEST_STREAM_LOG") : "error", "--workers", "8", "--send-hwm", "2000", NULL };
    s_svc = svc_new("t", 11, argv);
    const ProtobufCMessageDescriptor *d = &testmsg__inner__descriptor;
    svc_handle_streaming(s_svc, "T.Echo", SVC_STREAM_BIDI, h_echo, d, d);
    svc_handle_streaming(s_svc, "T.Tail", SVC_STREAM_CLIENT, h_tail, d, d);
    svc_handle_streaming(s_svc, "T.Hold", SVC_STREAM_BIDI, h_hold, d, d);
    svc_handle_streaming(s_svc, "T.Flood", SVC_STREAM_BIDI, h_flood, d, d);
    svc_handle_streaming(s_svc, "T.Abort", SVC_STREAM_BIDI, h_abort, d, d);
    svc_handle_stream(s_svc, "T.Burst", h_burst, d, d);
    if (pthread_create(&s_thread, NULL, s_serve, NULL) != 0)
        return -1;
    s_client = svc_client_new(reg);
    return 0;
}

static void s_stop_all(void)
{
    svc_client_destroy(&s_client);
    svc_stop(s_svc);
    pthread_join(s_thread, NULL);
    svc_destroy(&s_svc);
    char p[160];
    snprintf(p, sizeof p, "%s/svc", s_dir);
    unlink(p);
    rmdir(s_dir);
}

/* Opens endpoint on the test service, waiting for it to be up (5 s at most). */
static svc_client_stream *s_open(const char *endpoint)
{
    svc_call_opts o = { .address = s_addr, .timeout_ms = 2000 };
    for (int i = 0; i < 100; i++) {
        svc_client_stream *st = NULL;
        svc_error err = SVC_ERROR_INIT;
        int rc = svc_client_stream_open_kind(s_client, "t", endpoint, SVC_STREAM_BIDI, NULL, 0,
                                             &o, &st, &err);
        svc_error_release(&err);
        if (rc == 0)
            return st;
        s_sleep_ms(50);
    }
    return NULL;
}

static int s_encode(int seq, char *buf, size_t cap)
{
    Testmsg__Inner m = TESTMSG__INNER__INIT;
    m.count = seq;
    size_t n = testmsg__inner__get_packed_size(&m);
    if (n > cap)
        return -1;
    testmsg__inner__pack(&m, (uint8_t *)buf);
    return (int)n;
}

/* The seq of a received message, or -1. */
static int s_decode(const svc_reply *r)
{
    Testmsg__Inner *m = testmsg__inner__unpack(NULL, r->len, r->body);
    int seq = m ? m->count : -1;
    if (m)
        testmsg__inner__free_unpacked(m, NULL);
    return seq;
}

/* Waits up to 5 s for pred-like counters: returns when *v == want. */
static bool s_await(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) != want; i++)
        s_sleep_ms(10);
    return atomic_load(v) == want;
}

TEST(bidi_100k_each_way_in_order_with_clean_ends)
{
    enum { N = 100000 };
    svc_client_stream *st = s_open("T.Echo");
    CHECK(st != NULL);
    if (!st)
        return;
    int eof_before = atomic_load(&s_eof_seen);
    int sent = 0, got = 0, bad_order = 0, rc = 0;
    svc_error err = SVC_ERROR_INIT;
    char buf[32];
    /* One thread does both: send while there is credit, read what came back. */
    while (got < N) {
        while (sent < N) {
            int len = s_encode(sent, buf, sizeof buf);
            rc = svc_client_stream_send(st, buf, (size_t)len, 0, &err);
            if (rc != 0)
                break;
            if (++sent == N)
                CHECK_INT(svc_client_stream_close_send(st), 0);
        }
        if (rc != 0 && rc != SVC_ETIMEOUT) {
            CHECK_INT(rc, 0);
            fprintf(stderr, "send: %s\n", err.detail ? err.detail : "?");
            break;
        }
        /* While sends wait for credit, wait briefly: recv also takes in the credit. */
        svc_reply r = SVC_REPLY_INIT;
        rc = svc_client_stream_recv(st, sent < N ? 1 : 5000, &r, &err);
        if (rc == SVC_ETIMEOUT && sent < N)
            continue;
        if (rc != 0) {
            fprintf(stderr, "recv: %d %s (sent %d)\n", rc, err.detail ? err.detail : "?", sent);
            break;
        }
        if (s_decode(&r) != got)
            bad_order++;
        got++;
        svc_reply_release(&r);
    }
    CHECK_INT(got, N);
    CHECK_INT(bad_order, 0);
    svc_reply r = SVC_REPLY_INIT;
    CHECK_INT(svc_client_stream_recv(st, 5000, &r, &err), 1);   /* the server's clean end */
    CHECK(s_await(&s_eof_seen, eof_before + 1));                 /* the server saw our EOF */
    svc_client_stream_close(&st);
    svc_error_release(&err);
}

TEST(half_close_lets_the_server_finish_sending)
{
    svc_client_stream *st = s_open("T.Tail");
    CHECK(st != NULL);
    if (!st)
        return;
    svc_error err = SVC_ERROR_INIT;
    char buf[32];
    for (int i = 0; i < 3; i++) {
        int len = s_encode(i, buf, sizeof buf);
        CHECK_INT(svc_client_stream_send(st, buf, (size_t)len, 5000, &err), 0);
    }
    CHECK_INT(svc_client_stream_close_send(st), 0);
    CHECK_INT(svc_client_stream_send(st, buf, 1, 0, &err), SVC_ECLOSED);  /* no sends after it */
    svc_error_release(&err);
    int got = 0, rc;
    svc_reply r = SVC_REPLY_INIT;
    while ((rc = svc_client_stream_recv(st, 5000, &r, &err)) == 0) {
        CHECK_INT(s_decode(&r), got);
        got++;
        svc_reply_release(&r);
    }
    CHECK_INT(rc, 1);
    CHECK_INT(got, 3000);
    svc_client_stream_close(&st);
    svc_error_release(&err);
}

TEST(client_cancel_reaches_the_handler)
{
    int closed_before = atomic_load(&s_closed_seen);
    int open_before = atomic_load(&s_handlers_open);
    svc_client_stream *st = s_open("T.Hold");
    CHECK(st != NULL);
    if (!st)
        return;
    svc_error err = SVC_ERROR_INIT;
    char buf[32];
    int len = s_encode(7, buf, sizeof buf);
    CHECK_INT(svc_client_stream_send(st, buf, (size_t)len, 5000, &err), 0);
    CHECK(s_await(&s_handlers_open, open_before + 1));
    svc_client_stream_cancel(st);
    svc_reply r = SVC_REPLY_INIT;
    CHECK_INT(svc_client_stream_recv(st, 0, &r, &err), SVC_ECLOSED);
    CHECK_INT(svc_client_stream_send(st, buf, (size_t)len, 0, &err), SVC_ECLOSED);
    svc_client_stream_close(&st);
    CHECK(s_await(&s_closed_seen, closed_before + 1));   /* the handler's recv saw it */
    CHECK(s_await(&s_handlers_open, open_before));        /* and it returned */
    svc_error_release(&err);
}

TEST(server_cancel_reaches_a_sending_client)
{
    svc_client_stream *st = s_open("T.Abort");
    CHECK(st != NULL);
    if (!st)
        return;
    svc_error err = SVC_ERROR_INIT;
    char buf[32];
    int rc = 0, sent = 0;
    /* Keep sending: after three the server gives up; the send must then fail. */
    for (int i = 0; i < 100000 && rc == 0; i++) {
        int len = s_encode(i, buf, sizeof buf);
        rc = svc_client_stream_send(st, buf, (size_t)len, 5000, &err);
        if (rc == 0)
            sent++;
    }
    CHECK_INT(rc, SVC_ECLOSED);
    CHECK(sent <= SVC_STREAM_WINDOW);   /* the server granted no more than one window */
    svc_error_release(&err);
    svc_reply r = SVC_REPLY_INIT;
    CHECK_INT(svc_client_stream_recv(st, 5000, &r, &err), SVC_EREMOTE);
    CHECK_INT(err.code, 409);
    CHECK_STR(err.detail, "enough");
    svc_client_stream_close(&st);
    svc_error_release(&err);
}

TEST(a_reader_that_stops_stalls_the_writer)
{
    atomic_store(&s_sent, 0);
    int closed_before = atomic_load(&s_closed_seen);
    svc_client_stream *st = s_open("T.Flood");
    CHECK(st != NULL);
    if (!st)
        return;
    /* We read nothing: the handler must stop at our window, not fill memory. */
    long prev = -1;
    for (int i = 0; i < 100 && atomic_load(&s_sent) != prev; i++) {
        prev = atomic_load(&s_sent);
        s_sleep_ms(100);
    }
    long stalled = atomic_load(&s_sent);
    CHECK(stalled > 0);
    CHECK(stalled <= SVC_STREAM_WINDOW);
    s_sleep_ms(300);
    CHECK_INT(atomic_load(&s_sent), stalled);
    /* Reading frees credit, and the writer goes on. */
    svc_error err = SVC_ERROR_INIT;
    for (int i = 0; i < 3 * SVC_STREAM_WINDOW; i++) {
        svc_reply r = SVC_REPLY_INIT;
        int rc = svc_client_stream_recv(st, 5000, &r, &err);
        CHECK_INT(rc, 0);
        svc_reply_release(&r);
        if (rc)
            break;
    }
    CHECK(atomic_load(&s_sent) > stalled);
    svc_client_stream_close(&st);
    CHECK(s_await(&s_closed_seen, closed_before + 1));
    svc_error_release(&err);
}

/*
 * Cancels while the server is sending: each reaches the handler.  Under
 * ASan this also checks that closing a stream mid-flow leaks nothing (a
 * socket closed while a message was half-received, just after it sent the
 * cancel, used to leak that message's frames and libzmq's 18 KB buffer).
 */
TEST(cancels_while_the_server_sends_reach_it_and_leak_nothing)
{
    for (int k = 0; k < 50; k++) {
        int closed_before = atomic_load(&s_closed_seen);
        svc_client_stream *st = s_open("T.Flood");
        CHECK(st != NULL);
        if (!st)
            return;
        svc_error err = SVC_ERROR_INIT;
        int rc = 0;
        for (int i = 0; i < SVC_STREAM_WINDOW && rc == 0; i++) {   /* it keeps sending */
            svc_reply r = SVC_REPLY_INIT;
            rc = svc_client_stream_recv(st, 5000, &r, &err);
            svc_reply_release(&r);
        }
        CHECK_INT(rc, 0);
        svc_client_stream_close(&st);
        CHECK(s_await(&s_closed_seen, closed_before + 1));
        svc_error_release(&err);
        if (rc != 0)
            return;
    }
}

TEST(a_server_that_does_not_read_stalls_the_client)
{
    int open_before = atomic_load(&s_handlers_open);
    svc_client_stream *st = s_open("T.Flood");   /* never reads */
    CHECK(st != NULL);
    if (!st)
        return;
    svc_error err = SVC_ERROR_INIT;
    char buf[32];
    int len = s_encode(1, buf, sizeof buf), sent = 0, rc;
    while ((rc = svc_client_stream_send(st, buf, (size_t)len, 300, &err)) == 0 && sent < 100000)
        sent++;
    CHECK_INT(rc, SVC_ETIMEOUT);
    CHECK_INT(sent, SVC_STREAM_WINDOW);   /* exactly the server's grant */
    svc_error_release(&err);
    svc_client_stream_close(&st);
    CHECK(s_await(&s_handlers_open, open_before));
}

TEST(stream_deadline_ends_both_sides)
{
    int closed_before = atomic_load(&s_closed_seen);
    svc_client_stream *st = s_open("T.Hold");   /* up, so the next open is quick */
    svc_client_stream_close(&st);
    CHECK(s_await(&s_closed_seen, closed_before + 1));
    closed_before = atomic_load(&s_closed_seen);
    svc_call_opts o = { .address = s_addr, .timeout_ms = 2000, .deadline_ms = svc_now_ms() + 300 };
    svc_error err = SVC_ERROR_INIT;
    CHECK_INT(svc_client_stream_open_kind(s_client, "t", "T.Hold", SVC_STREAM_BIDI, NULL, 0, &o,
                                          &st, &err), 0);
    if (!st)
        return;
    char buf[32];
    int len = s_encode(1, buf, sizeof buf);
    CHECK_INT(svc_client_stream_send(st, buf, (size_t)len, 1000, &err), 0);
    int64_t t0 = svc_now_ms();
    svc_reply r = SVC_REPLY_INIT;
    CHECK_INT(svc_client_stream_recv(st, -1, &r, &err), SVC_EREMOTE);   /* not a hang */
    CHECK_INT(err.code, 408);
    CHECK(svc_now_ms() - t0 < 3000);
    svc_error_release(&err);
    CHECK_INT(svc_client_stream_send(st, buf, (size_t)len, 0, &err), SVC_ECLOSED);
    CHECK(s_await(&s_closed_seen, closed_before + 1));   /* the handler was stopped too */
    svc_client_stream_close(&st);
    svc_error_release(&err);
    /* A deadline already passed: nothing is opened. */
    o.deadline_ms = svc_now_ms() - 1;
    CHECK_INT(svc_client_stream_open_kind(s_client, "t", "T.Hold", SVC_STREAM_BIDI, NULL, 0, &o,
                                          &st, &err), SVC_ETIMEOUT);
    CHECK_INT(err.code, 408);
    svc_error_release(&err);
}

TEST(a_burst_beyond_the_credit_waits_in_order_up_to_send_hwm)
{
    /* 512 go on the client's credit, 2000 (--send-hwm) wait at the server,
     * the next send fails with -EAGAIN; the client, reading only now, gets
     * every accepted message in order and then the end. */
    Testmsg__Inner req = TESTMSG__INNER__INIT;
    req.count = 5000;
    char body[16];
    size_t len = testmsg__inner__pack(&req, (uint8_t *)body);
    svc_call_opts o = { .address = s_addr, .timeout_ms = 2000 };
    svc_client_stream *st = NULL;
    svc_error err = SVC_ERROR_INIT;
    atomic_store(&s_burst_accepted, -1);
    CHECK_INT(svc_client_stream_open_kind(s_client, "t", "T.Burst", SVC_STREAM_SERVER, body, len,
                                          &o, &st, &err), 0);
    if (!st) {
        svc_error_release(&err);
        return;
    }
    for (int i = 0; i < 500 && atomic_load(&s_burst_accepted) < 0; i++)
        s_sleep_ms(10);
    CHECK_INT(atomic_load(&s_burst_accepted), SVC_STREAM_WINDOW + 2000);
    int got = 0, bad = 0, rc;
    svc_reply r = SVC_REPLY_INIT;
    while ((rc = svc_client_stream_recv(st, 5000, &r, &err)) == 0) {
        bad += s_decode(&r) != got;
        got++;
        svc_reply_release(&r);
    }
    CHECK_INT(rc, 1);
    CHECK_INT(got, SVC_STREAM_WINDOW + 2000);
    CHECK_INT(bad, 0);
    svc_client_stream_close(&st);
    svc_error_release(&err);
}

TEST(flow_credit_rules)
{
    const char *why = NULL;
    svc__flow f;
    svc__flow_init(&f, true, 4, 2);
    /* out: two credits, then none until granted */
    CHECK(svc__flow_can_send(&f));
    svc__flow_sent(&f);
    svc__flow_sent(&f);
    CHECK(!svc__flow_can_send(&f));
    CHECK_INT(svc__flow_on_credit(&f, 3, &why), 0);
    CHECK(svc__flow_can_send(&f));
    CHECK_INT(svc__flow_on_credit(&f, 0xffffffffu, &why), SVC_EPROTO);
    CHECK_STR(why, "stream credit overflow: more than 4294967295 granted");
    /* in: four allowed, the fifth is a violation */
    for (int i = 0; i < 4; i++)
        CHECK_INT(svc__flow_on_data(&f, &why), 0);
    CHECK_INT(svc__flow_on_data(&f, &why), SVC_EPROTO);
    CHECK_STR(why, "stream credit exceeded");
    /* consuming half the window grants it back */
    CHECK_INT(svc__flow_consumed(&f), 0);
    CHECK_INT(svc__flow_consumed(&f), 2);
    CHECK_INT(svc__flow_on_data(&f, &why), 0);
    CHECK_INT(svc__flow_on_close(&f, &why), 0);
    CHECK_INT(svc__flow_on_data(&f, &why), SVC_EPROTO);
    CHECK_STR(why, "stream data after half-close");
    CHECK_INT(svc__flow_on_close(&f, &why), SVC_EPROTO);
    /* unlimited: 0 credit means no flow control for that direction */
    svc__flow_init(&f, true, 0, 0);
    for (int i = 0; i < 10000; i++)
        svc__flow_sent(&f);
    CHECK(svc__flow_can_send(&f));
    CHECK_INT(svc__flow_on_credit(&f, 5, &why), 0);   /* ignored */
    svc__flow_init(&f, false, 0, 0);
    CHECK_INT(svc__flow_on_data(&f, &why), SVC_EPROTO);
}

static const test_case tests[] = {
    T(flow_credit_rules),
    T(bidi_100k_each_way_in_order_with_clean_ends),
    T(half_close_lets_the_server_finish_sending),
    T(client_cancel_reaches_the_handler),
    T(server_cancel_reaches_a_sending_client),
    T(a_reader_that_stops_stalls_the_writer),
    T(cancels_while_the_server_sends_reach_it_and_leak_nothing),
    T(a_server_that_does_not_read_stalls_the_client),
    T(stream_deadline_ends_both_sides),
    T(a_burst_beyond_the_credit_waits_in_order_up_to_send_hwm),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    if (s_start() < 0) {
        fprintf(stderr, "test_stream: cannot start the test service\n");
        return 1;
    }
    int rc = test_main("stream", tests, argc, argv);
    s_stop_all();
    return rc;
}
