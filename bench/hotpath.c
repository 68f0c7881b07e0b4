/* bench/hotpath.c — the per-call cost of tracing and endpoint stats.  See hotpath.h. */
#include "hotpath.h"
#include "args.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "epstats.h"
#include "service_int.h"
#include "trace_int.h"
#include "wire.h"

#define BATCH 20000   /* operations per timed batch */

static double s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One step: runs `ops` operations on arg. */
typedef void (*s_step_fn)(void *arg, int ops);

/* Median ns per operation over batches run for `seconds`. */
static double s_time(s_step_fn fn, void *arg, double seconds)
{
    double batches[1000];
    size_t n = 0;
    fn(arg, BATCH / 10);   /* warm up */
    double end = s_now_ns() + seconds * 1e9;
    while (n < 1000 && (n < 3 || s_now_ns() < end)) {
        double t0 = s_now_ns();
        fn(arg, BATCH);
        batches[n++] = (s_now_ns() - t0) / BATCH;
    }
    qsort(batches, n, sizeof *batches, s_cmp);
    return batches[n / 2];
}

/* ---- the steps -------------------------------------------------------------- */

typedef struct s_zmq {
    void *ctx, *dealer, *router;
} s_zmq;

static void s_roundtrip(void *arg, int ops)
{
    s_zmq *z = arg;
    char buf[256], id[256];
    for (int i = 0; i < ops; i++) {
        zmq_send(z->dealer, "0123456789012345678901234567890123456789012345678901234567890123",
                 64, 0);
        int idn = zmq_recv(z->router, id, sizeof id, 0);
        zmq_recv(z->router, buf, sizeof buf, 0);
        zmq_send(z->router, id, (size_t)(idn > 0 ? idn : 0), ZMQ_SNDMORE);
        zmq_send(z->router, buf, 64, 0);
        zmq_recv(z->dealer, buf, sizeof buf, 0);
    }
}

static void s_trace_plain(void *arg, int ops)
{
    for (int i = 0; i < ops; i++) {
        svc__logctx lc;
        svc_meta_pair pairs[32];
        svc_meta view;
        svc__trace_pick(NULL, arg, &lc);
        svc__trace_view(NULL, arg, &lc, pairs, 32, &view);
        __asm__ volatile("" : : "r"(&view) : "memory");
    }
}

static void s_trace_wrapped(void *arg, int ops)
{
    for (int i = 0; i < ops; i++) {
        svc__logctx lc;
        svc_meta m = SVC_META_INIT;
        svc_meta_merge(&m, arg);
        svc__trace_outgoing(&m, arg, &lc);
        svc_meta_release(&m);
    }
}

typedef struct s_req_arg {
    svc__endpoint ep;      /* with stats */
    Svc__Header *hdr;      /* with trace pairs */
} s_req_arg;

static void s_request(void *arg, int ops)
{
    s_req_arg *a = arg;
    for (int i = 0; i < ops; i++) {
        svc__req rq;
        svc__req_begin(&rq, NULL, &a->ep, a->hdr, -1);
        svc__req_end(&rq, false);
    }
}

static void s_epstats(void *arg, int ops)
{
    for (int i = 0; i < ops; i++) {
        svc__epstats_begin(arg);
        svc__epstats_end(arg, (uint64_t)(i & 1023) * 50, false, true);
    }
}

typedef struct s_contend {
    svc__epstats *st;
    int ops;
} s_contend;

static void *s_contender(void *arg)
{
    s_contend *c = arg;
    s_epstats(c->st, c->ops);
    return NULL;
}

/* Both threads at once on one endpoint: ns per operation of each. */
static void s_epstats_2(void *arg, int ops)
{
    s_contend c = { arg, ops };
    pthread_t t;
    pthread_create(&t, NULL, s_contender, &c);
    s_epstats(arg, ops);
    pthread_join(t, NULL);
}

typedef struct s_unpack {
    uint8_t buf[512];
    size_t len;
} s_unpack;

static void s_header_unpack(void *arg, int ops)
{
    s_unpack *u = arg;
    for (int i = 0; i < ops; i++)
        svc__header__free_unpacked(svc__header__unpack(NULL, u->len, u->buf), NULL);
}

/* ---- the command -------------------------------------------------------------- */

static void s_line(const char *step, double ns, double raw_ns, const char *note)
{
    printf("{\"bench\":\"hotpath.%s\",\"value\":%.1f,\"unit\":\"ns/op\","
           "\"against\":\"raw-zmq-inproc\",\"ratio\":%.4f,\"note\":\"%s\"}\n",
           step, ns, ns / raw_ns, note);
}

static int s_open(s_zmq *z)
{
    z->ctx = zmq_ctx_new();
    z->router = z->ctx ? zmq_socket(z->ctx, ZMQ_ROUTER) : NULL;
    z->dealer = z->ctx ? zmq_socket(z->ctx, ZMQ_DEALER) : NULL;
    if (!z->router || !z->dealer || zmq_bind(z->router, "inproc://hotpath") < 0 ||
        zmq_connect(z->dealer, "inproc://hotpath") < 0) {
        fprintf(stderr, "svc-bench hotpath: cannot set up inproc sockets: %s\n",
                zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int bm_hotpath(int argc, char **argv)
{
    bm_args a;
    int rc = bm_args_parse(argc, argv, BM_F_SECONDS, NULL, "svc-bench hotpath [flags]", &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    double each = a.seconds / 8;

    s_zmq z = { 0 };
    if (s_open(&z) < 0)
        return 1;
    double raw = s_time(s_roundtrip, &z, each);
    printf("{\"bench\":\"hotpath.raw-zmq-inproc\",\"value\":%.1f,\"unit\":\"ns/op\","
           "\"note\":\"one 64-byte DEALER/ROUTER round trip, one thread\"}\n", raw);

    svc_meta dflt = SVC_META_INIT;
    s_line("client-trace", s_time(s_trace_plain, &dflt, each), raw,
           "trace ids for a call without wrappers (borrowed metadata)");
    s_line("client-trace-wrapped", s_time(s_trace_wrapped, &dflt, each), raw,
           "trace ids for a call with wrappers (metadata copied for them)");

    s_req_arg ra = { .ep = { .name = "Bench.Call", .stats = calloc(1, sizeof(svc__epstats)) } };
    Svc__Header h = SVC__HEADER__INIT;
    Svc__MetadataEntry e[3], *pe[3];
    const char *keys[] = { SVC_META_TRACE_ID, SVC_META_SPAN_ID, SVC_META_PARENT_ID };
    const char *vals[] = { "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
                           "a2fb4a1d1a96d312" };
    for (int i = 0; i < 3; i++) {
        svc__metadata_entry__init(&e[i]);
        e[i].key = (char *)keys[i];
        e[i].value = (char *)vals[i];
        pe[i] = &e[i];
    }
    h.kind = SVC__KIND__REQUEST;
    h.id = 12345;
    h.service = "bench.echo";
    h.endpoint = "Echo.Call";
    h.content_type = "application/protobuf";
    h.timeout_ms = 30000;
    h.metadata = pe;
    h.n_metadata = 3;
    ra.hdr = &h;
    if (!ra.ep.stats)
        return 1;
    s_line("server-request", s_time(s_request, &ra, each), raw,
           "trace ids from the header, log context, endpoint counters and histogram");
    s_line("epstats", s_time(s_epstats, ra.ep.stats, each), raw,
           "endpoint counters and histogram alone, one thread");
    s_line("epstats-2-threads", s_time(s_epstats_2, ra.ep.stats, each), raw,
           "the same from two threads on one endpoint at once (per op of each)");

    s_unpack with, without;
    with.len = svc__header__pack(&h, with.buf);
    h.n_metadata = 0;
    without.len = svc__header__pack(&h, without.buf);
    double t_with = s_time(s_header_unpack, &with, each);
    double t_without = s_time(s_header_unpack, &without, each);
    s_line("header-trace-pairs", t_with - t_without, raw,
           "protobuf-c unpacking the three trace pairs of a request header");
    free(ra.ep.stats);
    zmq_close(z.dealer);
    zmq_close(z.router);
    zmq_ctx_term(z.ctx);
    return 0;
}
