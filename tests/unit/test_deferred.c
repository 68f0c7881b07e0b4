/*
 * tests/unit/test_deferred.c — deferred answers (svc_ctx_defer) end to end
 * inside one process: a real service on its own thread (ipc:// in a temp
 * dir, one worker) whose handlers hand their answers to an answering
 * thread, and the libsvc client calling it.
 *
 * What a user relies on: the answer made on another thread reaches the
 * caller, as a response or an error; a deferred request holds no worker,
 * so a one-worker service keeps hundreds waiting at once; and a stopping
 * service waits for the answers it still owes.
 */
#include "testlib.h"
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
static pthread_t s_thread, s_answerer;
static svc_client *s_client;
static bool s_serving;

/* ---- the answering thread ----------------------------------------------------- */

typedef enum { A_DOUBLE, A_ERROR, A_WRONG } answer_kind;

typedef struct pending {
    svc_deferred *d;
    answer_kind kind;
    int64_t due_ms;        /* answer at or after this (svc_now_ms) */
    bool hold;             /* wait until s_release is set */
    struct pending *next;
} pending;

static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_cv = PTHREAD_COND_INITIALIZER;
static pending *s_queue;
static int s_held;                /* held requests queued */
static bool s_release, s_quit;
static atomic_int s_deferred;     /* handlers that deferred */

static void s_answer(pending *p)
{
    const Testmsg__Inner *in = svc_deferred_request(p->d);
    switch (p->kind) {
    case A_DOUBLE: {
        Testmsg__Inner out = TESTMSG__INNER__INIT;
        out.count = in->count * 2;
        out.label = "later";
        svc_deferred_send(&p->d, &out.base);
        break;
    }
    case A_ERROR:
        svc_deferred_error(&p->d, 409, "nope %d", in->count);
        break;
    case A_WRONG: {
        Testmsg__LabelsEntry wrong = TESTMSG__LABELS_ENTRY__INIT;
        svc_deferred_send(&p->d, &wrong.base);
        break;
    }
    }
    free(p);
}

/* Answers what is due; held requests once s_release is set.  Ends on s_quit (answering all). */
static void *s_answer_loop(void *arg)
{
    pthread_mutex_lock(&s_mu);
    for (;;) {
        int64_t now = svc_now_ms();
        pending **pp = &s_queue, *due = NULL;
        while (*pp) {
            pending *p = *pp;
            if (s_quit || (p->hold ? s_release : now >= p->due_ms)) {
                *pp = p->next;
                p->next = due;
                due = p;
                s_held -= p->hold;
            } else {
                pp = &p->next;
            }
        }
        if (due) {
            pthread_mutex_unlock(&s_mu);
            while (due) {
                pending *next = due->next;
                s_answer(due);
                due = next;
            }
            pthread_mutex_lock(&s_mu);
            continue;
        }
        if (s_quit)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s_cv, &s_mu, &ts);
    }
    pthread_mutex_unlock(&s_mu);
    return NULL;
}

static int s_defer(svc_ctx *ctx, answer_kind kind, int delay_ms, bool hold)
{
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->d = svc_ctx_defer(ctx);
    if (!p->d) {
        free(p);
        return svc_ctx_error(ctx, 500, "cannot defer");
    }
    CHECK(svc_ctx_defer(ctx) == NULL);   /* only once */
    p->kind = kind;
    p->due_ms = svc_now_ms() + delay_ms;
    p->hold = hold;
    pthread_mutex_lock(&s_mu);
    p->next = s_queue;
    s_queue = p;
    s_held += hold;
    atomic_fetch_add(&s_deferred, 1);
    pthread_cond_signal(&s_cv);
    pthread_mutex_unlock(&s_mu);
    return 0;
}

static int h_later(svc_ctx *ctx, const void *req, void *rsp) { return s_defer(ctx, A_DOUBLE, 20, false); }
static int h_held(svc_ctx *ctx, const void *req, void *rsp) { return s_defer(ctx, A_DOUBLE, 0, true); }
static int h_fail(svc_ctx *ctx, const void *req, void *rsp) { return s_defer(ctx, A_ERROR, 0, false); }
static int h_wrong(svc_ctx *ctx, const void *req, void *rsp) { return s_defer(ctx, A_WRONG, 0, false); }
static int h_slow(svc_ctx *ctx, const void *req, void *rsp) { return s_defer(ctx, A_DOUBLE, 300, false); }

/* ---- the service ------------------------------------------------------------------ */

static void *s_serve(void *arg)
{
    svc_run(s_svc);
    return NULL;
}

static int s_start(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/svc-test-deferred-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_addr, sizeof s_addr, "ipc://%s/svc", s_dir);
    char reg[128];
    snprintf(reg, sizeof reg, "ipc://%s/no-registry", s_dir);
    char *argv[] = { "test_deferred", "--address", s_addr, "--registry", reg, "--log-level",
                     "error", "--workers", "1", "--drain-timeout", "5", NULL };
    s_svc = svc_new("d", 11, argv);
    const ProtobufCMessageDescriptor *d = &testmsg__inner__descriptor;
    svc_handle(s_svc, "D.Later", h_later, d, d);
    svc_handle(s_svc, "D.Held", h_held, d, d);
    svc_handle_inline(s_svc, "D.Fail", h_fail, d, d);
    svc_handle(s_svc, "D.Wrong", h_wrong, d, d);
    svc_handle(s_svc, "D.Slow", h_slow, d, d);
    if (pthread_create(&s_answerer, NULL, s_answer_loop, NULL) != 0 ||
        pthread_create(&s_thread, NULL, s_serve, NULL) != 0)
        return -1;
    s_serving = true;
    s_client = svc_client_new(reg);
    /* Calls to an ipc address that is not bound yet are refused: wait for the socket file. */
    char path[160];
    snprintf(path, sizeof path, "%s/svc", s_dir);
    for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
        usleep(10 * 1000);
    return access(path, F_OK) == 0 ? 0 : -1;
}

static void s_stop_all(void)
{
    svc_client_destroy(&s_client);
    if (s_serving) {
        svc_stop(s_svc);
        pthread_join(s_thread, NULL);
    }
    pthread_mutex_lock(&s_mu);
    s_quit = true;
    pthread_cond_signal(&s_cv);
    pthread_mutex_unlock(&s_mu);
    pthread_join(s_answerer, NULL);
    svc_destroy(&s_svc);
    char p[160];
    snprintf(p, sizeof p, "%s/svc", s_dir);
    unlink(p);
    rmdir(s_dir);
}

/* One call of endpoint with count; the answer's count into *out. */
static int s_call(const char *endpoint, int count, int *out, svc_error *err)
{
    Testmsg__Inner in = TESTMSG__INNER__INIT;
    in.count = count;
    svc_call_opts o = { .address = s_addr, .timeout_ms = 3000 };
    ProtobufCMessage *rsp = NULL;
    int rc = svc_call(s_client, "d", endpoint, &in.base, &testmsg__inner__descriptor, &rsp, &o, err);
    if (rc == 0) {
        Testmsg__Inner *r = (Testmsg__Inner *)rsp;
        *out = r->count;
        CHECK_STR(r->label, "later");
        protobuf_c_message_free_unpacked(rsp, NULL);
    }
    return rc;
}

/* ---- tests -------------------------------------------------------------------------- */

TEST(an_answer_made_on_another_thread_reaches_the_caller)
{
    int got = 0;
    svc_error err = SVC_ERROR_INIT;
    int rc = s_call("D.Later", 21, &got, &err);
    CHECK_INT(rc, 0);
    CHECK_INT(got, 42);
    svc_error_release(&err);
}

TEST(a_deferred_error_reaches_the_caller_with_its_code)
{
    int got = 0;
    svc_error err = SVC_ERROR_INIT;
    int rc = s_call("D.Fail", 7, &got, &err);
    CHECK_INT(rc, SVC_EREMOTE);
    CHECK_INT(err.code, 409);
    CHECK(err.detail && strstr(err.detail, "nope 7"));
    svc_error_release(&err);
}

TEST(an_answer_of_the_wrong_type_is_a_500)
{
    int got = 0;
    svc_error err = SVC_ERROR_INIT;
    int rc = s_call("D.Wrong", 1, &got, &err);
    CHECK_INT(rc, SVC_EREMOTE);
    CHECK_INT(err.code, 500);
    CHECK(err.detail && strstr(err.detail, "wrong message type"));
    svc_error_release(&err);
}

/*
 * 200 requests wait for their answers at once on a service with one
 * worker: the answers are released only after all 200 have deferred,
 * which they could not if each held the worker.
 */
TEST(deferred_requests_hold_no_worker)
{
    enum { N = 200 };
    svc_future *f[N] = { 0 };
    svc_call_opts o = { .address = s_addr, .timeout_ms = 5000 };
    for (int i = 0; i < N; i++) {
        Testmsg__Inner in = TESTMSG__INNER__INIT;
        in.count = i;
        uint8_t buf[16];
        size_t len = testmsg__inner__pack(&in, buf);
        CHECK_INT(svc_call_async(s_client, "d", "D.Held", buf, len, &o, &f[i]), 0);
    }
    int64_t end = svc_now_ms() + 5000;
    int held = 0;
    while (svc_now_ms() < end) {
        svc_client_poll(s_client, 10);
        pthread_mutex_lock(&s_mu);
        held = s_held;
        pthread_mutex_unlock(&s_mu);
        if (held == N)
            break;
    }
    CHECK_INT(held, N);
    pthread_mutex_lock(&s_mu);
    s_release = true;
    pthread_cond_signal(&s_cv);
    pthread_mutex_unlock(&s_mu);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        if (!f[i])
            continue;
        CHECK_INT(svc_future_wait(f[i], 5000), 0);
        svc_reply r = SVC_REPLY_INIT;
        svc_error err = SVC_ERROR_INIT;
        if (svc_future_result(f[i], &r, &err) == 0) {
            Testmsg__Inner *m = testmsg__inner__unpack(NULL, r.len, r.body);
            if (m && m->count == 2 * i)
                ok++;
            if (m)
                testmsg__inner__free_unpacked(m, NULL);
        }
        svc_reply_release(&r);
        svc_error_release(&err);
        svc_future_destroy(&f[i]);
    }
    CHECK_INT(ok, N);
    pthread_mutex_lock(&s_mu);
    s_release = false;
    pthread_mutex_unlock(&s_mu);
}

/* Last: stops the service while an answer is owed; the caller still gets it. */
TEST(a_stopping_service_waits_for_the_answers_it_owes)
{
    Testmsg__Inner in = TESTMSG__INNER__INIT;
    in.count = 5;
    uint8_t buf[16];
    size_t len = testmsg__inner__pack(&in, buf);
    svc_call_opts o = { .address = s_addr, .timeout_ms = 3000 };
    svc_future *f = NULL;
    int before = atomic_load(&s_deferred);
    CHECK_INT(svc_call_async(s_client, "d", "D.Slow", buf, len, &o, &f), 0);
    int64_t end = svc_now_ms() + 3000;
    while (atomic_load(&s_deferred) == before && svc_now_ms() < end)
        svc_client_poll(s_client, 5);
    CHECK(atomic_load(&s_deferred) > before);
    svc_stop(s_svc);   /* the answer is due 300 ms after the handler deferred it */
    CHECK_INT(svc_future_wait(f, 3000), 0);
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    CHECK_INT(svc_future_result(f, &r, &err), 0);
    Testmsg__Inner *m = r.body ? testmsg__inner__unpack(NULL, r.len, r.body) : NULL;
    CHECK(m && m->count == 10);
    if (m)
        testmsg__inner__free_unpacked(m, NULL);
    svc_reply_release(&r);
    svc_error_release(&err);
    svc_future_destroy(&f);
    pthread_join(s_thread, NULL);
    s_serving = false;
}

static const test_case tests[] = {
    T(an_answer_made_on_another_thread_reaches_the_caller),
    T(a_deferred_error_reaches_the_caller_with_its_code),
    T(an_answer_of_the_wrong_type_is_a_500),
    T(deferred_requests_hold_no_worker),
    T(a_stopping_service_waits_for_the_answers_it_owes),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    if (s_start() < 0) {
        fprintf(stderr, "test_deferred: cannot start the test service\n");
        return 1;
    }
    int rc = test_main("deferred", tests, argc, argv);
    s_stop_all();
    return rc;
}
