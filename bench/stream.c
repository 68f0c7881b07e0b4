/* bench/stream.c — one-way stream throughput, svc and bare ZeroMQ.  See stream.h. */
#include "stream.h"
#include "args.h"
#include "measure.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "svc/svc.h"
#include "greeter.pb-c.h"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = 1;
}

/* ---- svc service ---------------------------------------------------------------- */

/* Server stream: HelloRequest{name = N bytes} -> HelloResponse{msg: N bytes} until cancelled. */
static int s_source(svc_ctx *ctx, const void *req, svc_stream *st)
{
    const Greeter__HelloRequest *in = req;
    Greeter__HelloResponse out = GREETER__HELLO_RESPONSE__INIT;
    out.msg = in->name;
    while (svc_stream_send_wait(st, &out.base, -1) == 0)
        ;
    svc_stream_close(&st, NULL);
    return 0;
}

/* Client stream: counts HelloRequests until the half-close, answers the count in msg. */
static int s_sink(svc_ctx *ctx, svc_stream *st)
{
    ProtobufCMessage *m;
    unsigned long long n = 0;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0) {
        n++;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (rc != 1)
        return rc;
    char count[32];
    snprintf(count, sizeof count, "%llu", n);
    Greeter__HelloResponse out = GREETER__HELLO_RESPONSE__INIT;
    out.msg = count;
    return svc_stream_send_wait(st, &out.base, 5000);
}

int bm_stream_service(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("svc-bench stream-source: serves Stream.Source (server stream: "
                   "greeter.HelloRequest{name} -> HelloResponse{msg: name} forever) and "
                   "Stream.Sink\n(client stream of HelloRequest; answers the count)\n\n");
            break;
        }
    }
    svc_service *s = svc_new("bench.stream", argc, argv);
    if (!s)
        return 1;
    int code = 1;
    if (svc_handle_stream(s, "Stream.Source", s_source, &greeter__hello_request__descriptor,
                          &greeter__hello_response__descriptor) == 0 &&
        svc_handle_streaming(s, "Stream.Sink", SVC_STREAM_CLIENT, s_sink,
                             &greeter__hello_request__descriptor,
                             &greeter__hello_response__descriptor) == 0)
        code = svc_run(s);
    svc_destroy(&s);
    return code;
}

/* ---- svc client ----------------------------------------------------------------- */

static void s_line(const char *bench, const char *transport, double rate, long size,
                   unsigned long long n, double secs, const char *note)
{
    printf("{\"bench\":\"%s.%s\",\"value\":%.1f,\"unit\":\"msgs/s\",\"transport\":\"%s\","
           "\"payload_bytes\":%ld,\"messages\":%llu,\"seconds\":%.3f,\"note\":\"%s\"}\n",
           bench, transport, rate, transport, size, n, secs, note);
    fflush(stdout);
}

static void s_fail(const char *what, const svc_error *err, int rc)
{
    char *j = svc_error_isset(err) ? svc_error_json(err) : NULL;
    fprintf(stderr, "svc-bench: %s failed: %s\n", what, j ? j : svc_strerror(rc));
    free(j);
}

/* Opens the stream, retrying until the service is up or wait_ms passes. */
static int s_open(svc_client *c, const bm_args *a, bool up, const void *body, size_t len,
                  svc_client_stream **st, svc_error *err)
{
    svc_call_opts o = { .timeout_ms = 5000, .address = a->address };
    uint64_t until = bm_now_ns() + (uint64_t)a->wait_ms * 1000000u;
    for (;;) {
        svc_error_release(err);
        int rc = svc_client_stream_open_kind(c, a->service, a->endpoint,
                                             up ? SVC_STREAM_CLIENT : SVC_STREAM_SERVER,
                                             up ? NULL : body, up ? 0 : len, &o, st, err);
        if (rc == 0 || (rc != SVC_ENOTFOUND && rc != SVC_EUNREACHABLE) ||
            bm_now_ns() >= until)
            return rc;
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    }
}

/* Server -> client: receive for warmup + seconds, count the measured part. */
static int s_down(svc_client_stream *st, const bm_args *a, unsigned long long *n, double *secs,
                  svc_error *err)
{
    uint64_t t0 = bm_now_ns(), start = t0 + (uint64_t)(a->warmup * 1e9),
             end = start + (uint64_t)(a->seconds * 1e9);
    unsigned long long count = 0;
    bool measuring = false;
    for (uint64_t now = t0; now < end;) {
        svc_reply r = SVC_REPLY_INIT;
        int rc = svc_client_stream_recv(st, 5000, &r, err);
        if (rc != 0)
            return rc == 1 ? SVC_ECLOSED : rc;
        if (r.len < (size_t)a->size) {
            svc_reply_release(&r);
            svc_error_set(err, "svc-bench", 500, "short stream message");
            return SVC_EPROTO;
        }
        svc_reply_release(&r);
        if ((++count & 255) == 0 || !measuring) {
            now = bm_now_ns();
            if (!measuring && now >= start) {
                measuring = true;
                count = 0;
                start = now;
            }
        }
    }
    *n = count;
    *secs = (double)(bm_now_ns() - start) / 1e9;
    return 0;
}

/* Client -> server: send for warmup + seconds, then half-close and read the server's count. */
static int s_up(svc_client_stream *st, const bm_args *a, const void *body, size_t len,
                unsigned long long *n, double *secs, svc_error *err)
{
    uint64_t t0 = bm_now_ns(), start = t0 + (uint64_t)(a->warmup * 1e9),
             end = start + (uint64_t)(a->seconds * 1e9);
    unsigned long long count = 0, before = 0;
    bool measuring = false;
    for (uint64_t now = t0; now < end;) {
        int rc = svc_client_stream_send(st, body, len, 5000, err);
        if (rc != 0)
            return rc;
        if ((++count & 255) == 0 || !measuring) {
            now = bm_now_ns();
            if (!measuring && now >= start) {
                measuring = true;
                before = count;
                start = now;
            }
        }
    }
    svc_client_stream_close_send(st);
    svc_reply r = SVC_REPLY_INIT;
    int rc = svc_client_stream_recv(st, 10000, &r, err);
    if (rc != 0)
        return rc == 1 ? SVC_ECLOSED : rc;
    /* Every message sent was received: the server counted them all. */
    unsigned long long got = strtoull(r.len > 2 ? (char *)r.body + 2 : "0", NULL, 10);
    svc_reply_release(&r);
    if (got != count) {
        svc_error_set(err, "svc-bench", 500, "server counted %llu of %llu messages", got, count);
        return SVC_EPROTO;
    }
    *n = count - before;
    *secs = (double)(bm_now_ns() - start) / 1e9;
    return 0;
}

int bm_stream_client(int argc, char **argv)
{
    static const char usage[] = "svc-bench stream-client [flags]\n\n"
        "One svc stream, one way, as fast as credit allows; --endpoint Stream.Source\n"
        "(default: server -> client) or Stream.Sink (client -> server).  Prints\n"
        "svc-stream-down.<transport> or svc-stream-up.<transport> (msgs/s).";
    bm_args a;
    unsigned mask = BM_F_SECONDS | BM_F_WARMUP | BM_F_SIZE | BM_F_REGISTRY | BM_F_SERVICE |
                    BM_F_ENDPOINT | BM_F_ADDRESS | BM_F_WAIT | BM_F_LABEL;
    int rc = bm_args_parse(argc, argv, mask, NULL, usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (strcmp(a.service, "bench.echo") == 0)
        a.service = "bench.stream";
    if (strcmp(a.endpoint, "Echo.Call") == 0)
        a.endpoint = "Stream.Source";
    bool up = strcmp(a.endpoint, "Stream.Sink") == 0;

    Greeter__HelloRequest req = GREETER__HELLO_REQUEST__INIT;
    req.name = malloc((size_t)a.size + 1);
    svc_client *c = svc_client_new(a.registry);
    void *body = NULL;
    size_t len = 0;
    int code = 1;
    if (!req.name || !c)
        goto out;
    memset(req.name, 'x', (size_t)a.size);
    req.name[a.size] = '\0';
    len = protobuf_c_message_get_packed_size(&req.base);
    body = malloc(len);
    if (!body)
        goto out;
    protobuf_c_message_pack(&req.base, body);

    svc_client_stream *st = NULL;
    svc_error err = SVC_ERROR_INIT;
    rc = s_open(c, &a, up, body, len, &st, &err);
    if (rc < 0) {
        s_fail("stream open", &err, rc);
        svc_error_release(&err);
        goto out;
    }
    unsigned long long n = 0;
    double secs = 0;
    rc = up ? s_up(st, &a, body, len, &n, &secs, &err) : s_down(st, &a, &n, &secs, &err);
    if (rc < 0) {
        s_fail("stream", &err, rc);
    } else {
        s_line(a.label ? a.label : up ? "svc-stream-up" : "svc-stream-down",
               a.address ? bm_transport(a.address) : "by-name", secs > 0 ? n / secs : 0,
               a.size, n, secs, up ? "svc client stream, credit window 512"
                                   : "svc server stream, credit window 512");
        code = 0;
    }
    svc_client_stream_close(&st);
    svc_error_release(&err);
out:
    free(body);
    free(req.name);
    svc_client_destroy(&c);
    return code;
}

/* ---- bare ZeroMQ ---------------------------------------------------------------- */

int bm_raw_source(int argc, char **argv)
{
    static const char usage[] = "svc-bench raw-source ADDR [flags]\n\n"
        "A ZeroMQ PUSH bound at ADDR sends SIZE-byte messages as fast as the peer takes\n"
        "them, until SIGTERM; prints the bound endpoint on stdout.";
    bm_args a;
    int rc = bm_args_parse(argc, argv, BM_F_SIZE, "ADDR", usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int code = 1;
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_PUSH) : NULL;
    char *buf = calloc(1, (size_t)a.size + 1);
    if (!sock || !buf) {
        fprintf(stderr, "svc-bench: cannot create socket: %s\n", zmq_strerror(errno));
        goto out;
    }
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(sock, a.positional) < 0) {
        fprintf(stderr, "svc-bench: cannot bind \"%s\": %s\n", a.positional, zmq_strerror(errno));
        goto out;
    }
    char bound[512];
    size_t blen = sizeof bound;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &blen);
    printf("%s\n", bound);
    fflush(stdout);
    while (!s_stop)
        zmq_send(sock, buf, (size_t)a.size, 0);
    if (strncmp(bound, "ipc://", 6) == 0 && bound[6] != '@')
        unlink(bound + 6);
    code = 0;
out:
    free(buf);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return code;
}

int bm_raw_sink(int argc, char **argv)
{
    static const char usage[] = "svc-bench raw-sink ADDR [flags]\n\n"
        "A ZeroMQ PULL connected to a raw-source at ADDR counts messages; prints\n"
        "raw-oneway.<transport> (msgs/s).";
    bm_args a;
    int rc = bm_args_parse(argc, argv, BM_F_SECONDS | BM_F_WARMUP | BM_F_SIZE | BM_F_WAIT,
                           "ADDR", usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    int code = 1;
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_PULL) : NULL;
    char *buf = malloc((size_t)a.size + 1);
    if (!sock || !buf || zmq_connect(sock, a.positional) < 0) {
        fprintf(stderr, "svc-bench: cannot connect to \"%s\": %s\n", a.positional,
                zmq_strerror(errno));
        goto out;
    }
    int zero = 0, tmo = (int)a.wait_ms;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    uint64_t t0 = 0, start = 0, end = 0, now;
    unsigned long long count = 0;
    bool measuring = false;
    for (;;) {
        int n = zmq_recv(sock, buf, (size_t)a.size + 1, 0);
        if (n < 0) {
            fprintf(stderr, "svc-bench: raw-sink receive failed: %s\n", zmq_strerror(errno));
            goto out;
        }
        if (!t0) {
            t0 = bm_now_ns();
            start = t0 + (uint64_t)(a.warmup * 1e9);
            end = start + (uint64_t)(a.seconds * 1e9);
        }
        if ((++count & 255) == 0 || !measuring) {
            now = bm_now_ns();
            if (!measuring && now >= start) {
                measuring = true;
                count = 0;
                start = now;
            }
            if (now >= end)
                break;
        }
    }
    double secs = (double)(bm_now_ns() - start) / 1e9;
    s_line("raw-oneway", bm_transport(a.positional), count / secs, a.size, count, secs,
           "bare ZeroMQ PUSH/PULL, one frame per message");
    code = 0;
out:
    free(buf);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return code;
}
