/*
 * svc-testsvc — a service for the integration tests.
 *
 *   Test.Sleep  {ms}               sleeps, answers {node, remaining_ms}
 *   Test.Relay  {service, ms, name} calls onward (Test.Sleep of service, or
 *                                   greeter Say.Hello), answers what it got
 *   Test.Meta   {key}              answers the request's metadata value
 *   Test.InlineRelay               Test.Relay registered with svc_handle_inline:
 *                                   its onward call must be refused
 *   Test.Echo   bidi stream of Item: answers each Item as it comes, ends at half-close
 *   Test.Sum    client stream of SumRequest: answers {sum, count} after half-close
 *   Test.Ticks  server stream {count, pad}: sends count Items, waiting for credit
 *   Test.Hold   bidi stream: reads and never answers, until cancelled
 *   Test.Abort  bidi stream: after 3 Items ends the stream with 409 (server cancel)
 *   Test.Stall  bidi stream: neither reads nor sends, until cancelled or gone
 *   Test.StreamStats               {ticks_sent, closed_seen, open} of the above
 *
 * Takes every svc service option (svc-testsvc --help).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/svc.h"
#include "greeter.pb-c.h"
#include "testsvc.pb-c.h"

static svc_service *s_svc;

static int s_sleep(svc_ctx *ctx, const void *req, void *rsp)
{
    const Testsvc__SleepRequest *in = req;
    Testsvc__SleepResponse *out = rsp;
    out->remaining_ms = svc_ctx_remaining_ms(ctx);
    struct timespec ts = { (time_t)(in->ms / 1000), (long)(in->ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    out->node = strdup(svc_node_id(s_svc));
    if (in->pad) {
        out->pad = malloc((size_t)in->pad + 1);
        if (!out->pad)
            return -ENOMEM;
        memset(out->pad, 'x', in->pad);
        out->pad[in->pad] = '\0';
    }
    return out->node ? 0 : -ENOMEM;
}

static int s_relay(svc_ctx *ctx, const void *req, void *rsp)
{
    const Testsvc__RelayRequest *in = req;
    Testsvc__RelayResponse *out = rsp;
    const char *trace = svc_ctx_meta(ctx, "Micro-Trace-Id");
    out->trace = strdup(trace ? trace : "");
    ProtobufCMessage *m = NULL;
    svc_error err = SVC_ERROR_INIT;
    int rc;
    if (in->service[0]) {
        Testsvc__SleepRequest sr = TESTSVC__SLEEP_REQUEST__INIT;
        sr.ms = in->ms;
        rc = svc_ctx_call(ctx, in->service, "Test.Sleep", &sr.base,
                          &testsvc__sleep_response__descriptor, &m, NULL, &err);
        if (rc == 0) {
            out->downstream = strdup(((Testsvc__SleepResponse *)m)->node);
            out->msg = strdup("slept");
        }
    } else {
        Greeter__HelloRequest hr = GREETER__HELLO_REQUEST__INIT;
        hr.name = in->name;
        rc = svc_ctx_call(ctx, "greeter", "Say.Hello", &hr.base,
                          &greeter__hello_response__descriptor, &m, NULL, &err);
        if (rc == 0)
            out->msg = strdup(((Greeter__HelloResponse *)m)->msg);
    }
    if (rc < 0) {
        out->error_code = err.code;
        out->msg = strdup(err.detail ? err.detail : "");
    }
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    svc_error_release(&err);
    return 0;
}

static int s_meta(svc_ctx *ctx, const void *req, void *rsp)
{
    const Testsvc__MetaRequest *in = req;
    Testsvc__MetaResponse *out = rsp;
    const char *v = svc_ctx_meta(ctx, in->key);
    if (!v)
        return svc_ctx_error(ctx, 404, "no metadata \"%s\"", in->key);
    out->value = strdup(v);
    return 0;
}

static atomic_llong s_ticks_sent, s_closed_seen;
static atomic_int s_open;

/* Bidi: every Item back as it comes; a clean end after the client's half-close. */
static int s_echo(svc_ctx *ctx, svc_stream *st)
{
    atomic_fetch_add(&s_open, 1);
    ProtobufCMessage *m;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0) {
        rc = svc_stream_send_wait(st, m, -1);
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc < 0)
            break;
    }
    if (rc == SVC_ECLOSED)
        atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_open, 1);
    return rc == 1 || rc == SVC_ECLOSED ? 0 : rc;
}

/* Client stream: one answer after the client's half-close. */
static int s_sum(svc_ctx *ctx, svc_stream *st)
{
    Testsvc__SumResponse out = TESTSVC__SUM_RESPONSE__INIT;
    ProtobufCMessage *m;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0) {
        out.sum += ((Testsvc__SumRequest *)m)->value;
        out.count++;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (rc != 1)
        return rc;
    return svc_stream_send_wait(st, &out.base, -1);
}

/* Server stream that respects the client's credit: it stalls when the client stops reading. */
static int s_ticks(svc_ctx *ctx, const void *req, svc_stream *st)
{
    const Testsvc__TicksRequest *in = req;
    char *pad = calloc(1, (size_t)in->pad + 1);
    if (!pad)
        return -ENOMEM;
    memset(pad, 'x', in->pad);
    atomic_fetch_add(&s_open, 1);
    Testsvc__Item it = TESTSVC__ITEM__INIT;
    it.text = pad;
    int rc = 0;
    for (uint32_t i = 0; i < in->count && rc == 0; i++) {
        it.seq = i;
        rc = svc_stream_send_wait(st, &it.base, -1);
        if (rc == 0)
            atomic_fetch_add(&s_ticks_sent, 1);
    }
    if (rc == SVC_ECLOSED)
        atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_open, 1);
    free(pad);
    svc_stream_close(&st, NULL);
    return 0;
}

/* Bidi that reads and never answers, until the stream is cancelled or gone. */
static int s_hold(svc_ctx *ctx, svc_stream *st)
{
    atomic_fetch_add(&s_open, 1);
    ProtobufCMessage *m;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0)
        protobuf_c_message_free_unpacked(m, NULL);
    if (rc == SVC_ECLOSED)
        atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_open, 1);
    return 0;
}

/* Bidi that gives up after three Items: the server cancels with 409. */
static int s_abort(svc_ctx *ctx, svc_stream *st)
{
    ProtobufCMessage *m;
    int n = 0, rc;
    while (n < 3 && (rc = svc_stream_recv(st, -1, &m)) == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        n++;
    }
    return svc_ctx_error(ctx, 409, "aborted after %d messages", n);
}

/* Bidi that never reads: a client honouring credit stops after one window. */
static int s_stall(svc_ctx *ctx, svc_stream *st)
{
    atomic_fetch_add(&s_open, 1);
    while (!svc_stream_closed(st)) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&s_closed_seen, 1);
    atomic_fetch_sub(&s_open, 1);
    return 0;
}

static int s_stream_stats(svc_ctx *ctx, const void *req, void *rsp)
{
    Testsvc__StreamStatsResponse *out = rsp;
    out->ticks_sent = atomic_load(&s_ticks_sent);
    out->closed_seen = atomic_load(&s_closed_seen);
    out->open = atomic_load(&s_open);
    return 0;
}

int main(int argc, char **argv)
{
    s_svc = svc_new("testsvc", argc, argv);
    if (!s_svc)
        return 1;
    svc_handle(s_svc, "Test.Sleep", s_sleep, &testsvc__sleep_request__descriptor,
               &testsvc__sleep_response__descriptor);
    svc_handle(s_svc, "Test.Relay", s_relay, &testsvc__relay_request__descriptor,
               &testsvc__relay_response__descriptor);
    svc_handle_inline(s_svc, "Test.InlineRelay", s_relay, &testsvc__relay_request__descriptor,
                      &testsvc__relay_response__descriptor);
    svc_handle(s_svc, "Test.Meta", s_meta, &testsvc__meta_request__descriptor,
               &testsvc__meta_response__descriptor);
    svc_handle_streaming(s_svc, "Test.Echo", SVC_STREAM_BIDI, s_echo, &testsvc__item__descriptor,
                         &testsvc__item__descriptor);
    svc_handle_streaming(s_svc, "Test.Sum", SVC_STREAM_CLIENT, s_sum,
                         &testsvc__sum_request__descriptor, &testsvc__sum_response__descriptor);
    svc_handle_stream(s_svc, "Test.Ticks", s_ticks, &testsvc__ticks_request__descriptor,
                      &testsvc__item__descriptor);
    svc_handle_streaming(s_svc, "Test.Hold", SVC_STREAM_BIDI, s_hold, &testsvc__item__descriptor,
                         &testsvc__item__descriptor);
    svc_handle_streaming(s_svc, "Test.Abort", SVC_STREAM_BIDI, s_abort,
                         &testsvc__item__descriptor, &testsvc__item__descriptor);
    svc_handle_streaming(s_svc, "Test.Stall", SVC_STREAM_BIDI, s_stall,
                         &testsvc__item__descriptor, &testsvc__item__descriptor);
    svc_handle_inline(s_svc, "Test.StreamStats", s_stream_stats,
                      &testsvc__stream_stats_request__descriptor,
                      &testsvc__stream_stats_response__descriptor);
    int code = svc_run(s_svc);
    svc_destroy(&s_svc);
    return code;
}
