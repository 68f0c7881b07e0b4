/*
 * Unit tests: the asynchronous client — futures, callbacks, deadlines — against
 * a fake node (a ROUTER on inproc:// in a thread), the retry policy's
 * decisions, and the registry cache's handling of watch events.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "svc/client.h"
#include "svc/wrap.h"
#include "regcache.h"
#include "registry.pb-c.h"
#include "retry.h"
#include "wire.h"
#include "zctx.h"

/*
 * The fake node: collects `batch` requests, then answers them in reverse
 * order, echoing each body.  A body "E<code>" is answered ERROR <code>; a
 * body "hang" is never answered; "slow" is answered after 300 ms.  Counts every request it receives.
 */
typedef struct fake {
    char address[64];
    int batch;
    atomic_int received;
    atomic_bool stop;
    pthread_t thread;
    void *sock;
} fake;

static void s_answer(void *sock, svc__msg *m)
{
    size_t len;
    const char *body = svc__msg_body(m, &len);
    Svc__Header h = SVC__HEADER__INIT;
    h.id = m->hdr->id;
    Svc__Error e = SVC__ERROR__INIT;
    if (len == 4 && memcmp(body, "hang", 4) == 0)
        return;
    if (len == 4 && memcmp(body, "slow", 4) == 0)
        usleep(300 * 1000);   /* answered late (this fake answers nothing meanwhile) */
    if (len > 1 && body[0] == 'E') {
        h.kind = SVC__KIND__ERROR;
        e.id = "fake";
        char code[16];   /* the body is not NUL-terminated: "E503" then whatever follows */
        size_t n = len - 1 < sizeof code - 1 ? len - 1 : sizeof code - 1;
        memcpy(code, body + 1, n);
        code[n] = '\0';
        e.code = atoi(code);
        e.detail = "fake error";
        h.error = &e;
        svc__wire_send(sock, svc__msg_route(m), &h, NULL, 0, 0);
        return;
    }
    h.kind = SVC__KIND__RESPONSE;
    h.content_type = "application/octet-stream";
    svc__wire_send(sock, svc__msg_route(m), &h, body, len, 0);
}

static void *s_fake_run(void *arg)
{
    fake *fk = arg;
    svc__msg held[256];
    int n = 0;
    while (!atomic_load(&fk->stop)) {
        zmq_pollitem_t it = { fk->sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        char why[128];
        while (n < 256 && svc__msg_recv(fk->sock, &held[n], ZMQ_DONTWAIT, true, why, sizeof why) == 0) {
            atomic_fetch_add(&fk->received, 1);
            n++;
        }
        if (n >= fk->batch) {
            for (int i = n - 1; i >= 0; i--) {
                s_answer(fk->sock, &held[i]);
                svc__msg_close(&held[i]);
            }
            n = 0;
        }
    }
    for (int i = 0; i < n; i++)
        svc__msg_close(&held[i]);
    return NULL;
}

static void s_fake_start(fake *fk, const char *name, int batch)
{
    memset(fk, 0, sizeof *fk);
    snprintf(fk->address, sizeof fk->address, "inproc://test-client-%s", name);
    fk->batch = batch;
    fk->sock = svc__socket(ZMQ_ROUTER);
    CHECK(fk->sock && zmq_bind(fk->sock, fk->address) == 0);
    pthread_create(&fk->thread, NULL, s_fake_run, fk);
}

static void s_fake_stop(fake *fk)
{
    atomic_store(&fk->stop, true);
    pthread_join(fk->thread, NULL);
    svc__socket_close(&fk->sock);
}

/* A fake on a loopback TCP port (its address in fk->address). */
static void s_fake_start_tcp(fake *fk, int batch)
{
    memset(fk, 0, sizeof *fk);
    fk->batch = batch;
    fk->sock = svc__socket(ZMQ_ROUTER);
    CHECK(fk->sock && zmq_bind(fk->sock, "tcp://127.0.0.1:*") == 0);
    size_t len = sizeof fk->address;
    zmq_getsockopt(fk->sock, ZMQ_LAST_ENDPOINT, fk->address, &len);
    pthread_create(&fk->thread, NULL, s_fake_run, fk);
}

/* The node restarts: its socket closes (connections drop) and binds again at once. */
static void s_fake_restart(fake *fk)
{
    s_fake_stop(fk);
    atomic_store(&fk->stop, false);
    fk->sock = svc__socket(ZMQ_ROUTER);
    int rc = -1;
    for (int i = 0; i < 200 && (rc = zmq_bind(fk->sock, fk->address)) != 0; i++)
        usleep(5 * 1000);   /* the old listener closes in libzmq's I/O thread */
    CHECK_INT(rc, 0);
    pthread_create(&fk->thread, NULL, s_fake_run, fk);
}

/*
 * The fake registry: answers Registry.GetService for any name with one
 * service of version "1.0" whose nodes are at `nodes` (NULL-terminated),
 * or only the first `answer_max` lookups (a registry that then hangs),
 * each after `delay_ms` (a slow registry); leaves a Registry.Watch open
 * without ever sending an event.
 */
typedef struct fake_reg {
    char address[64];
    const char *const *nodes;
    atomic_int answer_max;   /* answer only this many lookups (then hang); 0 = all */
    atomic_int lookups;
    atomic_int delay_ms;     /* wait this long before each answer */
    atomic_bool stop;
    pthread_t thread;
    void *sock;
} fake_reg;

static void s_reg_answer(fake_reg *fr, svc__msg *m)
{
    if (m->hdr->kind != SVC__KIND__REQUEST || strcmp(m->hdr->endpoint, "Registry.GetService") != 0)
        return;
    int seen = atomic_fetch_add(&fr->lookups, 1);
    if (atomic_load(&fr->answer_max) && seen >= atomic_load(&fr->answer_max))
        return;
    if (atomic_load(&fr->delay_ms))
        usleep((useconds_t)atomic_load(&fr->delay_ms) * 1000);
    Svc__Registry__Node nodes[8], *np[8];
    size_t n = 0;
    for (; fr->nodes[n] && n < 8; n++) {
        svc__registry__node__init(&nodes[n]);
        char id[16];
        snprintf(id, sizeof id, "node-%zu", n);
        nodes[n].id = strdup(id);
        nodes[n].address = (char *)fr->nodes[n];
        np[n] = &nodes[n];
    }
    Svc__Registry__Service s = SVC__REGISTRY__SERVICE__INIT;
    s.name = "svc";
    s.version = "1.0";
    s.nodes = np;
    s.n_nodes = n;
    Svc__Registry__Service *sp = &s;
    Svc__Registry__GetServiceResponse rsp = SVC__REGISTRY__GET_SERVICE_RESPONSE__INIT;
    rsp.services = &sp;
    rsp.n_services = 1;
    uint8_t buf[1024];
    size_t len = svc__registry__get_service_response__pack(&rsp, buf);
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__RESPONSE;
    h.id = m->hdr->id;
    h.content_type = "application/protobuf";
    svc__wire_send(fr->sock, svc__msg_route(m), &h, buf, len, 0);
    for (size_t i = 0; i < n; i++)
        free(nodes[i].id);
}

static void *s_reg_run(void *arg)
{
    fake_reg *fr = arg;
    while (!atomic_load(&fr->stop)) {
        zmq_pollitem_t it = { fr->sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        svc__msg m;
        char why[128];
        while (svc__msg_recv(fr->sock, &m, ZMQ_DONTWAIT, true, why, sizeof why) == 0) {
            s_reg_answer(fr, &m);
            svc__msg_close(&m);
        }
    }
    return NULL;
}

static void s_reg_start(fake_reg *fr, const char *name, const char *const *nodes)
{
    memset(fr, 0, sizeof *fr);
    snprintf(fr->address, sizeof fr->address, "inproc://test-client-reg-%s", name);
    fr->nodes = nodes;
    fr->sock = svc__socket(ZMQ_ROUTER);
    CHECK(fr->sock && zmq_bind(fr->sock, fr->address) == 0);
    pthread_create(&fr->thread, NULL, s_reg_run, fr);
}

static void s_reg_stop(fake_reg *fr)
{
    atomic_store(&fr->stop, true);
    pthread_join(fr->thread, NULL);
    svc__socket_close(&fr->sock);
}

TEST(many_calls_in_flight_from_one_thread_each_get_their_answer)
{
    fake fk;
    s_fake_start(&fk, "many", 64);   /* answers only once all 64 have arrived */
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .timeout_ms = 10000 };
    svc_future *fs[64];
    char bodies[64][24];
    for (int i = 0; i < 64; i++) {
        snprintf(bodies[i], sizeof bodies[i], "call-%d", i);
        CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", bodies[i], strlen(bodies[i]), &o, &fs[i]), 0);
    }
    CHECK_INT(svc_client_pending(c), 64);
    for (int i = 0; i < 64; i++) {
        CHECK_INT(svc_future_wait(fs[i], -1), 0);
        svc_reply r = SVC_REPLY_INIT;
        svc_error e = SVC_ERROR_INIT;
        CHECK_INT(svc_future_result(fs[i], &r, &e), 0);
        CHECK(r.len == strlen(bodies[i]) && memcmp(r.body, bodies[i], r.len) == 0);
        CHECK_STR(r.node, fk.address);
        CHECK_INT(svc_future_attempts(fs[i]), 1);
        svc_reply_release(&r);
        svc_error_release(&e);
        svc_future_destroy(&fs[i]);
        CHECK(fs[i] == NULL);
    }
    CHECK_INT(atomic_load(&fk.received), 64);
    CHECK_INT(svc_client_pending(c), 0);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

TEST(wait_times_out_leaving_the_future_pending_and_destroy_abandons_it)
{
    fake fk;
    s_fake_start(&fk, "hang", 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .timeout_ms = 300 };
    svc_future *f;
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "hang", 4, &o, &f), 0);
    CHECK_INT(svc_future_wait(f, 50), SVC_ETIMEOUT);
    CHECK(!svc_future_ready(f));
    svc_reply r = SVC_REPLY_INIT;
    CHECK_INT(svc_future_result(f, &r, NULL), -EAGAIN);
    /* Past its own deadline it ends with 408. */
    CHECK_INT(svc_future_wait(f, 5000), 0);
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_future_result(f, &r, &e), SVC_ETIMEOUT);
    CHECK_INT(e.code, 408);
    svc_error_release(&e);
    svc_future_destroy(&f);
    /* Abandoned while pending: gone from the client once its deadline passes. */
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "hang", 4, &o, &f), 0);
    svc_future_destroy(&f);
    CHECK(f == NULL);
    CHECK_INT(svc_client_pending(c), 1);
    for (int i = 0; i < 100 && svc_client_pending(c); i++)
        svc_client_poll(c, 50);
    CHECK_INT(svc_client_pending(c), 0);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

TEST(a_call_whose_deadline_passed_is_not_sent)
{
    fake fk;
    s_fake_start(&fk, "deadline", 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .deadline_ms = svc_now_ms() - 1 };
    svc_future *f;
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "x", 1, &o, &f), 0);
    CHECK(svc_future_ready(f));
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_future_result(f, NULL, &e), SVC_ETIMEOUT);
    CHECK_INT(e.code, 408);
    CHECK(strstr(e.detail, "not sent") != NULL);
    svc_error_release(&e);
    svc_future_destroy(&f);
    /* The synchronous path too, and by name (no registry lookup either). */
    svc_reply r = SVC_REPLY_INIT;
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "x", 1, &o, &r, &e), SVC_ETIMEOUT);
    svc_error_release(&e);
    svc_call_opts byname = { .deadline_ms = svc_now_ms() - 1 };
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "x", 1, &byname, &r, &e), SVC_ETIMEOUT);
    CHECK(strstr(e.detail, "not sent") != NULL);
    svc_error_release(&e);
    /* A sound call afterwards goes through: the server saw only that one. */
    o.deadline_ms = 0;
    o.timeout_ms = 5000;
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "y", 1, &o, &r, &e), 0);
    svc_reply_release(&r);
    CHECK_INT(atomic_load(&fk.received), 1);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

typedef struct cb_state {
    int calls;           /* callbacks run */
    int ok;              /* with the body that was sent */
    bool inside_start;   /* set while svc_call_cb runs */
    bool reentered;      /* a callback ran inside svc_call_cb */
    int last_rc;
} cb_state;

static cb_state s_cb;

static void s_done(void *arg, int rc, svc_reply *reply, svc_error *err)
{
    s_cb.calls++;
    s_cb.last_rc = rc;
    if (s_cb.inside_start)
        s_cb.reentered = true;
    if (rc == 0 && reply->len == strlen(arg) && memcmp(reply->body, arg, reply->len) == 0)
        s_cb.ok++;
}

TEST(callbacks_run_once_from_poll_never_from_the_start)
{
    fake fk;
    s_fake_start(&fk, "cb", 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .timeout_ms = 5000 };
    static char bodies[10][16];
    memset(&s_cb, 0, sizeof s_cb);
    for (int i = 0; i < 10; i++) {
        snprintf(bodies[i], sizeof bodies[i], "cb%d", i);
        s_cb.inside_start = true;
        CHECK_INT(svc_call_cb(c, "fake", "Fake.Echo", bodies[i], strlen(bodies[i]), &o, s_done,
                              bodies[i]), 0);
        s_cb.inside_start = false;
    }
    /* Invalid arguments fail in the callback, not in the call. */
    s_cb.inside_start = true;
    CHECK_INT(svc_call_cb(c, "", "Fake.Echo", "x", 1, &o, s_done, "x"), 0);
    s_cb.inside_start = false;
    CHECK_INT(svc_call_cb(c, "fake", "Fake.Echo", "x", 1, &o, NULL, NULL), SVC_EINVAL);
    for (int i = 0; i < 200 && svc_client_poll(c, 100) > 0; i++)
        ;
    CHECK_INT(s_cb.calls, 11);
    CHECK_INT(s_cb.ok, 10);
    CHECK(!s_cb.reentered);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

TEST(destroying_the_client_completes_pending_calls_with_eclosed)
{
    fake fk;
    s_fake_start(&fk, "close", 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .timeout_ms = 10000 };
    svc_future *f;
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "hang", 4, &o, &f), 0);
    memset(&s_cb, 0, sizeof s_cb);
    CHECK_INT(svc_call_cb(c, "fake", "Fake.Echo", "hang", 4, &o, s_done, "hang"), 0);
    svc_client_destroy(&c);
    CHECK_INT(s_cb.calls, 1);
    CHECK_INT(s_cb.last_rc, SVC_ECLOSED);
    CHECK(svc_future_ready(f));
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_future_result(f, NULL, &e), SVC_ECLOSED);
    CHECK_INT(e.code, 503);
    svc_error_release(&e);
    svc_future_destroy(&f);
    s_fake_stop(&fk);
}

TEST(remote_errors_are_delivered_and_explicit_addresses_not_retried)
{
    fake fk;
    s_fake_start(&fk, "err", 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .timeout_ms = 5000 };
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "E503", 4, &o, &r, &e), SVC_EREMOTE);
    CHECK_INT(e.code, 503);
    CHECK_STR(e.id, "fake");
    CHECK_STR(e.status, "Service Unavailable");
    svc_error_release(&e);
    CHECK_INT(atomic_load(&fk.received), 1);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

/*
 * A node that refuses connections, retried at once (backoff 0): every
 * retry goes back to the same address (the only node), whose lost
 * connection must not be freed while the pump still looks at it (it was,
 * from inside s_conn_waiters: a use-after-free ASan reports).
 */
TEST(immediate_retries_to_a_refusing_node_fail_cleanly)
{
    static const char *const dead[] = { "tcp://127.0.0.1:1", NULL };
    fake_reg fr;
    s_reg_start(&fr, "dead", dead);
    fake fk;
    s_fake_start(&fk, "dead-other", 1);
    svc_client *c = svc_client_new(fr.address);
    svc_client_set_watch(c, false);
    CHECK_INT(svc_client_set_breaker(c, 0, 0), 0);
    svc_retry_policy p = SVC_RETRY_POLICY_INIT;
    p.backoff_ms = 0;
    p.backoff_max_ms = 0;
    p.retries = 3;
    svc_call_opts o = { .timeout_ms = 10000, .retry = &p };
    /* Another call in flight meanwhile (listed after the ones started later). */
    svc_call_opts ho = { .address = fk.address, .timeout_ms = 20000 };
    svc_future *hang;
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "hang", 4, &ho, &hang), 0);
    for (int round = 0; round < 3; round++) {
        svc_future *f;
        CHECK_INT(svc_call_async(c, "svc", "Svc.Echo", "x", 1, &o, &f), 0);
        CHECK_INT(svc_future_wait(f, 10000), 0);
        svc_error e = SVC_ERROR_INIT;
        CHECK_INT(svc_future_result(f, NULL, &e), SVC_EUNREACHABLE);
        CHECK_INT(e.code, 503);
        CHECK_INT(svc_future_attempts(f), 4);
        svc_error_release(&e);
        svc_future_destroy(&f);
    }
    CHECK(!svc_future_ready(hang));
    svc_future_destroy(&hang);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
    s_reg_stop(&fr);
}

/*
 * A tcp fake node with one call answered over its connection and one it
 * holds ("hang") in flight, then restarted on the same address: the
 * connection the held call was sent on is gone.  Returns the held call.
 */
static svc_future *s_held_across_restart(fake *fk, svc_client **c, svc_call_opts *o)
{
    s_fake_start_tcp(fk, 1);
    *c = svc_client_new("inproc://no-registry");
    *o = (svc_call_opts){ .address = fk->address, .timeout_ms = 5000 };
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_client_call_raw(*c, "fake", "Fake.Echo", "up", 2, o, &r, &e), 0);
    svc_reply_release(&r);
    svc_error_release(&e);
    svc_future *f = NULL;
    CHECK_INT(svc_call_async(*c, "fake", "Fake.Echo", "hang", 4, o, &f), 0);
    svc_client_poll(*c, 20);
    s_fake_restart(fk);
    return f;
}

/*
 * A node restarts on the same address while a call is in flight: that call
 * fails after the drop grace, but a call started once ZeroMQ has connected
 * again goes over a fresh connection and is answered.  (It was sent on the
 * old connection, marked lost, and failed with the first call's grace.)
 */
TEST(a_call_after_the_node_came_back_is_not_failed_with_the_lost_connection)
{
    fake fk;
    svc_client *c;
    svc_call_opts o;
    svc_future *hang = s_held_across_restart(&fk, &c, &o);
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    /* The drop is seen within a full poll round; ZeroMQ reconnects within ~100 ms. */
    int64_t until = svc_now_ms() + 150;
    while (svc_now_ms() < until)
        svc_client_poll(c, 10);
    CHECK(!svc_future_ready(hang));
    svc_future *slow;
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "slow", 4, &o, &slow), 0);
    CHECK_INT(svc_future_wait(hang, 5000), 0);
    CHECK_INT(svc_future_result(hang, NULL, &e), SVC_EUNREACHABLE);
    svc_error_release(&e);
    CHECK_INT(svc_future_wait(slow, 5000), 0);
    CHECK_INT(svc_future_result(slow, &r, &e), 0);
    CHECK(r.len == 4 && memcmp(r.body, "slow", 4) == 0);
    svc_reply_release(&r);
    svc_error_release(&e);
    svc_future_destroy(&hang);
    svc_future_destroy(&slow);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

/*
 * The registry hangs (takes the connection, never answers) after the first
 * lookup: a call whose cached view is stale is served that view after a
 * short wait, as when the registry cannot be reached at all, instead of
 * spending its whole deadline on the lookup and failing with 408.
 */
TEST(a_stale_view_is_served_when_the_registry_hangs)
{
    fake fk;
    s_fake_start(&fk, "hungreg", 1);
    const char *const nodes[] = { fk.address, NULL };
    fake_reg fr;
    s_reg_start(&fr, "hung", nodes);
    atomic_store(&fr.answer_max, 1);
    svc_client *c = svc_client_new(fr.address);
    svc_client_set_watch(c, false);
    CHECK_INT(svc_client_set_cache(c, 20), 0);
    svc_call_opts o = { .timeout_ms = 3000 };
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_client_call_raw(c, "svc", "Svc.Echo", "a", 1, &o, &r, &e), 0);
    svc_reply_release(&r);
    usleep(50 * 1000);   /* the view is stale now */
    int64_t t0 = svc_now_ms();
    CHECK_INT(svc_client_call_raw(c, "svc", "Svc.Echo", "b", 1, &o, &r, &e), 0);
    CHECK(r.len == 1 && r.body && ((char *)r.body)[0] == 'b');
    CHECK(svc_now_ms() - t0 < 2000);
    CHECK_INT(atomic_load(&fr.lookups), 2);
    svc_reply_release(&r);
    svc_error_release(&e);
    svc_client_destroy(&c);
    s_reg_stop(&fr);
    s_fake_stop(&fk);
}

/*
 * svc_call_async for a service with no cached view returns at once: the
 * lookup goes on in the pump (it used to be made inside svc_call_async,
 * which waited for the registry's answer).  Calls to one name share one
 * lookup, and its answer moves them all on.  A registry that takes the
 * lookup and never answers fails the call with 408 at its deadline;
 * nothing at the registry's address, with 503.
 */
TEST(an_async_call_to_an_uncached_service_does_not_wait_for_the_registry)
{
    fake fk;
    s_fake_start(&fk, "slowreg", 1);
    const char *const nodes[] = { fk.address, NULL };
    fake_reg fr;
    s_reg_start(&fr, "slow", nodes);
    atomic_store(&fr.delay_ms, 1000);
    svc_client *c = svc_client_new(fr.address);
    svc_client_set_watch(c, false);
    svc_call_opts o = { .timeout_ms = 10000 };
    svc_future *fs[4];
    int64_t t0 = svc_now_ms();
    for (int i = 0; i < 4; i++)
        CHECK_INT(svc_call_async(c, "svc", "Svc.Echo", "x", 1, &o, &fs[i]), 0);
    CHECK(svc_now_ms() - t0 < 300);
    CHECK(!svc_future_ready(fs[0]));
    for (int i = 0; i < 4; i++) {
        CHECK_INT(svc_future_wait(fs[i], 10000), 0);
        svc_reply r = SVC_REPLY_INIT;
        CHECK_INT(svc_future_result(fs[i], &r, NULL), 0);
        CHECK(r.len == 1 && r.body && ((char *)r.body)[0] == 'x');
        CHECK_STR(r.node, fk.address);
        svc_reply_release(&r);
        svc_future_destroy(&fs[i]);
    }
    CHECK_INT(atomic_load(&fr.lookups), 1);   /* one lookup for the four calls */

    atomic_store(&fr.answer_max, 1);   /* from now on it never answers */
    svc_call_opts shortly = { .timeout_ms = 300 };
    svc_future *f;
    t0 = svc_now_ms();
    CHECK_INT(svc_call_async(c, "hung", "Hung.Echo", "y", 1, &shortly, &f), 0);
    CHECK(svc_now_ms() - t0 < 200);
    CHECK_INT(svc_future_wait(f, 10000), 0);
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_future_result(f, NULL, &e), SVC_ETIMEOUT);
    CHECK_INT(e.code, 408);
    svc_error_release(&e);
    svc_future_destroy(&f);
    svc_client_destroy(&c);

    c = svc_client_new("tcp://127.0.0.1:1");   /* refused */
    t0 = svc_now_ms();
    CHECK_INT(svc_call_async(c, "svc", "Svc.Echo", "z", 1, &o, &f), 0);
    CHECK(svc_now_ms() - t0 < 200);
    CHECK_INT(svc_future_wait(f, 10000), 0);
    CHECK_INT(svc_future_result(f, NULL, &e), SVC_EUNREACHABLE);
    CHECK_INT(e.code, 503);
    svc_error_release(&e);
    svc_future_destroy(&f);
    svc_client_destroy(&c);
    s_reg_stop(&fr);
    s_fake_stop(&fk);
}

/*
 * After a breaker's cool-down one call probes the node: calls started at
 * once meanwhile (asynchronous, many in flight) keep leaving it out until
 * the probe's outcome.  (They all went to it, each failing once.)
 */
TEST(after_the_cooldown_one_call_probes_the_node_not_every_call_in_flight)
{
    fake fk;
    s_fake_start(&fk, "probe", 1);
    const char *const nodes[] = { "tcp://127.0.0.1:1", fk.address, NULL };
    fake_reg fr;
    s_reg_start(&fr, "probe", nodes);
    svc_client *c = svc_client_new(fr.address);
    svc_client_set_watch(c, false);
    CHECK_INT(svc_client_set_breaker(c, 1, 300), 0);
    svc_call_opts o = { .timeout_ms = 5000 };
    /* Calls until one has met the refusing node: its breaker is open. */
    bool opened = false;
    for (int i = 0; i < 50 && !opened; i++) {
        svc_future *f;
        CHECK_INT(svc_call_async(c, "svc", "Svc.Echo", "w", 1, &o, &f), 0);
        CHECK_INT(svc_future_wait(f, 5000), 0);
        CHECK_INT(svc_future_result(f, NULL, NULL), 0);
        opened = svc_future_attempts(f) == 2;
        svc_future_destroy(&f);
    }
    CHECK(opened);
    usleep(400 * 1000);   /* past the cool-down */
    svc_future *fs[20];
    for (int i = 0; i < 20; i++)
        CHECK_INT(svc_call_async(c, "svc", "Svc.Echo", "p", 1, &o, &fs[i]), 0);
    int extra = 0;
    for (int i = 0; i < 20; i++) {
        CHECK_INT(svc_future_wait(fs[i], 5000), 0);
        CHECK_INT(svc_future_result(fs[i], NULL, NULL), 0);
        extra += svc_future_attempts(fs[i]) - 1;
        svc_future_destroy(&fs[i]);
    }
    CHECK(extra <= 1);
    svc_client_destroy(&c);
    s_reg_stop(&fr);
    s_fake_stop(&fk);
}

/*
 * The connection drops within the drop grace of the call's deadline: the
 * call still ends at its deadline with 408 (it slept on to the end of the
 * grace, past the deadline, and ended with 503).
 */
TEST(a_drop_just_before_the_deadline_does_not_make_the_call_overrun_it)
{
    fake fk;
    s_fake_start_tcp(&fk, 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    svc_call_opts o = { .address = fk.address, .timeout_ms = 5000 };
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "up", 2, &o, &r, &e), 0);
    svc_reply_release(&r);
    o.timeout_ms = 400;
    svc_future *f;
    CHECK_INT(svc_call_async(c, "fake", "Fake.Echo", "hang", 4, &o, &f), 0);
    svc_client_poll(c, 250);
    s_fake_restart(&fk);   /* seen lost about 300 ms in: its grace ends after the deadline */
    CHECK_INT(svc_future_wait(f, 5000), 0);
    CHECK_INT(svc_future_result(f, NULL, &e), SVC_ETIMEOUT);
    CHECK_INT(e.code, 408);
    svc_error_release(&e);
    svc_future_destroy(&f);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

/*
 * The node restarts while the client does other work (no pump): ZeroMQ
 * drops the connection and makes it again before the client reads the
 * monitor.  The call sent on the old connection is lost with it, and ends
 * after the drop grace (it waited for its whole deadline: the reconnect
 * hid the drop).
 */
TEST(a_drop_repaired_while_the_client_was_busy_still_fails_the_calls_on_it)
{
    fake fk;
    svc_client *c;
    svc_call_opts o;
    svc_future *f = s_held_across_restart(&fk, &c, &o);
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    usleep(500 * 1000);   /* busy: ZeroMQ reconnects meanwhile (every 100 ms) */
    int64_t t0 = svc_now_ms();
    CHECK_INT(svc_future_wait(f, 10000), 0);
    CHECK_INT(svc_future_result(f, NULL, &e), SVC_EUNREACHABLE);
    CHECK_INT(e.code, 503);
    CHECK(svc_now_ms() - t0 < 2500);
    svc_error_release(&e);
    svc_future_destroy(&f);
    /* The node answers on the new connection. */
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "again", 5, &o, &r, &e), 0);
    svc_reply_release(&r);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

static int s_wrapped;   /* calls that went through s_count_wrapper */

static int s_count_wrapper(svc_call_info *call, void *arg)
{
    s_wrapped++;
    return svc_call_next(call);
}

/* A callback's synchronous call, on the address in arg. */
static void s_call_from_cb(void *arg, int rc, svc_reply *reply, svc_error *err)
{
    svc_client *c = ((void **)arg)[0];
    svc_call_opts o = { .address = ((void **)arg)[1], .timeout_ms = 5000 };
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    s_cb.last_rc = svc_client_call_raw(c, "fake", "Fake.Echo", "inner", 5, &o, &r, &e);
    s_cb.calls++;
    svc_reply_release(&r);
    svc_error_release(&e);
}

/*
 * A callback runs inside whatever wait moves the client, here a synchronous
 * call's: a synchronous call the callback makes is a call of the client
 * like any other and goes through its wrappers (it did not: the wrappers
 * took it for the client's own lookup inside the outer call).
 */
TEST(calls_made_by_a_callback_inside_a_synchronous_call_are_wrapped)
{
    fake fk;
    s_fake_start(&fk, "cbwrap", 1);
    svc_client *c = svc_client_new("inproc://no-registry");
    CHECK_INT(svc_client_wrap(c, s_count_wrapper, NULL), 0);
    s_wrapped = 0;
    memset(&s_cb, 0, sizeof s_cb);
    void *arg[2] = { c, fk.address };
    svc_call_opts o = { .address = fk.address, .timeout_ms = 5000 };
    CHECK_INT(svc_call_cb(c, "fake", "Fake.Echo", "cb", 2, &o, s_call_from_cb, arg), 0);
    /* The outer call waits out its deadline: the callback surely runs inside it. */
    svc_call_opts ho = { .address = fk.address, .timeout_ms = 300 };
    svc_reply r = SVC_REPLY_INIT;
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc_client_call_raw(c, "fake", "Fake.Echo", "hang", 4, &ho, &r, &e), SVC_ETIMEOUT);
    svc_error_release(&e);
    CHECK_INT(s_cb.calls, 1);
    CHECK_INT(s_cb.last_rc, 0);
    CHECK_INT(s_wrapped, 2);
    svc_client_destroy(&c);
    s_fake_stop(&fk);
}

TEST(retry_policy_decides_what_is_retried)
{
    svc_retry_policy p = SVC_RETRY_POLICY_INIT;
    CHECK_INT(svc_retry_policy_check(&p), 0);
    CHECK(svc__retry_wants(&p, SVC__FAIL_TRANSPORT, 503));
    CHECK(svc__retry_wants(&p, SVC__FAIL_REMOTE, 503));
    CHECK(!svc__retry_wants(&p, SVC__FAIL_REMOTE, 500));
    CHECK(!svc__retry_wants(&p, SVC__FAIL_REMOTE, 400));
    CHECK(!svc__retry_wants(&p, SVC__FAIL_TIMEOUT, 408));
    p.on = SVC_RETRY_TIMEOUT;
    p.codes[0] = 500;
    p.codes[1] = 429;
    CHECK(svc__retry_wants(&p, SVC__FAIL_TIMEOUT, 408));
    CHECK(!svc__retry_wants(&p, SVC__FAIL_TRANSPORT, 503));
    CHECK(!svc__retry_wants(&p, SVC__FAIL_REMOTE, 503));
    CHECK(svc__retry_wants(&p, SVC__FAIL_REMOTE, 500));
    CHECK(svc__retry_wants(&p, SVC__FAIL_REMOTE, 429));
    CHECK_INT(svc_retry_policy_check(&p), 0);
    svc_retry_policy bad = p;
    bad.retries = -1;
    CHECK_INT(svc_retry_policy_check(&bad), SVC_EINVAL);
    bad = p;
    bad.backoff_factor = 0.5;
    CHECK_INT(svc_retry_policy_check(&bad), SVC_EINVAL);
    bad = p;
    bad.jitter = 1.5;
    CHECK_INT(svc_retry_policy_check(&bad), SVC_EINVAL);
    bad = p;
    bad.backoff_max_ms = p.backoff_ms - 1;
    CHECK_INT(svc_retry_policy_check(&bad), SVC_EINVAL);
    bad = p;
    bad.codes[2] = 7;
    CHECK_INT(svc_retry_policy_check(&bad), SVC_EINVAL);
    bad = p;
    bad.on = 1u << 9;
    CHECK_INT(svc_retry_policy_check(&bad), SVC_EINVAL);
    CHECK_INT(svc_retry_policy_check(NULL), SVC_EINVAL);
}

TEST(backoff_grows_is_capped_and_jitter_only_shortens)
{
    svc_retry_policy p = { .retries = 5, .backoff_ms = 100, .backoff_factor = 2.0,
                           .backoff_max_ms = 500, .jitter = 0.0, .on = SVC_RETRY_DEFAULT };
    CHECK_INT(svc__retry_pause(&p, 1, 12345), 100);
    CHECK_INT(svc__retry_pause(&p, 2, 12345), 200);
    CHECK_INT(svc__retry_pause(&p, 3, 12345), 400);
    CHECK_INT(svc__retry_pause(&p, 4, 12345), 500);   /* capped */
    CHECK_INT(svc__retry_pause(&p, 9, 12345), 500);
    p.jitter = 0.5;
    CHECK_INT(svc__retry_pause(&p, 1, 0), 100);        /* U = 0: no cut */
    int64_t lo = 1000, hi = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        int64_t d = svc__retry_pause(&p, 2, svc__rand());
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CHECK(lo >= 100 && hi <= 200 && hi - lo > 50);     /* within [200*(1-0.5), 200] */
    p.backoff_ms = 0;
    CHECK_INT(svc__retry_pause(&p, 3, 99), 0);
}

/* Packs one watch event. */
static size_t s_event(uint8_t *buf, const char *action, const char *service, const char *id,
                      const char *address, const char *version)
{
    Svc__Registry__Node n = SVC__REGISTRY__NODE__INIT;
    n.id = (char *)id;
    n.address = (char *)address;
    Svc__Registry__Node *np = &n;
    Svc__Registry__Service s = SVC__REGISTRY__SERVICE__INIT;
    s.name = (char *)service;
    s.version = (char *)version;
    s.nodes = &np;
    s.n_nodes = 1;
    Svc__Registry__Result r = SVC__REGISTRY__RESULT__INIT;
    r.action = (char *)action;
    r.service = &s;
    return svc__registry__result__pack(&r, buf);
}

TEST(watch_events_create_update_and_delete_nodes_of_cached_services)
{
    svc__regcache *rc = svc__regcache_new("inproc://no-registry-here", NULL);
    svc__regcache_set_watch(rc, false);
    CHECK_INT(svc__regcache_seed(rc, "greeter"), 0);
    uint8_t buf[512];
    char why[128];
    size_t len = s_event(buf, "create", "greeter", "g-1", "tcp://127.0.0.1:1", "1.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), 0);
    len = s_event(buf, "create", "greeter", "g-2", "tcp://127.0.0.1:2", "1.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), 0);
    len = s_event(buf, "create", "other", "o-1", "tcp://127.0.0.1:3", "1.0");   /* not cached */
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), 0);
    svc__node *nodes;
    size_t n;
    svc_error e = SVC_ERROR_INIT;
    CHECK_INT(svc__regcache_nodes(rc, "greeter", svc_now_ms() + 100, &nodes, &n, &e), 0);
    CHECK_INT(n, 2);
    len = s_event(buf, "update", "greeter", "g-1", "tcp://127.0.0.1:9", "2.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), 0);
    len = s_event(buf, "delete", "greeter", "g-2", "", "1.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), 0);
    CHECK_INT(svc__regcache_nodes(rc, "greeter", svc_now_ms() + 100, &nodes, &n, &e), 0);
    CHECK_INT(n, 1);
    CHECK_STR(nodes[0].id, "g-1");
    CHECK_STR(nodes[0].address, "tcp://127.0.0.1:9");
    CHECK_STR(nodes[0].version, "2.0");
    /* Bad events are refused with a reason and change nothing. */
    len = s_event(buf, "explode", "greeter", "g-1", "tcp://127.0.0.1:1", "1.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), SVC_EPROTO);
    CHECK(strstr(why, "action") != NULL);
    len = s_event(buf, "create", "greeter", "g-3", "http://x", "1.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), SVC_EPROTO);
    len = s_event(buf, "create", "greeter", "", "tcp://127.0.0.1:4", "1.0");
    CHECK_INT(svc__regcache_apply(rc, buf, len, why, sizeof why), SVC_EPROTO);
    CHECK_INT(svc__regcache_apply(rc, "\xff\xff\xff", 3, why, sizeof why), SVC_EPROTO);
    CHECK_INT(svc__regcache_nodes(rc, "greeter", svc_now_ms() + 100, &nodes, &n, &e), 0);
    CHECK_INT(n, 1);
    svc_error_release(&e);
    svc__regcache_destroy(&rc);
    CHECK(rc == NULL);
}

static const test_case tests[] = {
    T(many_calls_in_flight_from_one_thread_each_get_their_answer),
    T(wait_times_out_leaving_the_future_pending_and_destroy_abandons_it),
    T(a_call_whose_deadline_passed_is_not_sent),
    T(callbacks_run_once_from_poll_never_from_the_start),
    T(destroying_the_client_completes_pending_calls_with_eclosed),
    T(remote_errors_are_delivered_and_explicit_addresses_not_retried),
    T(immediate_retries_to_a_refusing_node_fail_cleanly),
    T(a_call_after_the_node_came_back_is_not_failed_with_the_lost_connection),
    T(a_stale_view_is_served_when_the_registry_hangs),
    T(an_async_call_to_an_uncached_service_does_not_wait_for_the_registry),
    T(after_the_cooldown_one_call_probes_the_node_not_every_call_in_flight),
    T(a_drop_just_before_the_deadline_does_not_make_the_call_overrun_it),
    T(a_drop_repaired_while_the_client_was_busy_still_fails_the_calls_on_it),
    T(calls_made_by_a_callback_inside_a_synchronous_call_are_wrapped),
    T(retry_policy_decides_what_is_retried),
    T(backoff_grows_is_capped_and_jitter_only_shortens),
    T(watch_events_create_update_and_delete_nodes_of_cached_services),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    return test_main("client", tests, argc, argv);
}
