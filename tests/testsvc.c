/*
 * svc-testsvc — a service for the integration tests.
 *
 *   Test.Sleep  {ms}               sleeps, answers {node, remaining_ms}
 *   Test.Relay  {service, ms, name} calls onward (Test.Sleep of service, or
 *                                   greeter Say.Hello), answers what it got
 *   Test.Meta   {key}              answers the request's metadata value
 *   Test.InlineRelay               Test.Relay registered with svc_handle_inline:
 *                                   its onward call must be refused
 *   Test.Echo   {tag, ms, onward}  sleeps ms (+ $TESTSVC_EXTRA_MS), answers {tag, node};
 *                                   $TESTSVC_FAIL_CODE set: answers that error code
 *                                   instead; onward: then calls that service's Test.Echo
 *   Test.Chain  {hops, ms, deny_call, direct} calls Test.Chain of hops[0] with
 *                                   the rest (direct: svc_call on svc_ctx_client);
 *                                   the last hop works ms (until its deadline);
 *                                   answers what every hop saw (trace ids,
 *                                   wrapper order)
 *
 * Wrappers, always on: server s1, s2 and client c1, c2 (on the worker
 * clients), declared in that order.  On the way in each appends its name
 * to the Test-Order metadata; on the way out s1/s2 append to the answer's
 * Hop.unwind (Test.Chain) and c1/c2 to the hop's call_unwind.  s2 refuses
 * a request with metadata Test-Deny=1 (403); c2 refuses a call with
 * Test-Deny-Call=1 (401).
 *   Test.Bidi   bidi stream of Item: answers each Item as it comes, ends at half-close
 *   Test.Sum    client stream of SumRequest: answers {sum, count} after half-close
 *   Test.Ticks  server stream {count, pad}: sends count Items, waiting for credit
 *   Test.Hold   bidi stream: reads and never answers, until cancelled
 *   Test.Abort  bidi stream: after 3 Items ends the stream with 409 (server cancel)
 *   Test.Stall  bidi stream: neither reads nor sends, until cancelled or gone
 *   Test.StreamStats               {ticks_sent, closed_seen, open} of the above
 *
 * With TESTSVC_SUBSCRIBE=1 in the environment it also declares a subscriber
 * (svc_subscribe) to "ping.*" in queue group "testsvc", which publishes each
 * message's body again to "pong.<last token>".
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
static __thread char s_call_unwind[64];   /* client wrappers finished, around one onward call */

/* "old,name", or "name" when old is empty; malloc'd, NULL on out-of-memory. */
static char *s_append(const char *old, const char *name)
{
    char *out = NULL;
    if (asprintf(&out, "%s%s%s", old ? old : "", old && *old ? "," : "", name) < 0)
        return NULL;
    return out;
}

/* Server wrappers s1 (outer) and s2 (inner); arg is the name. */
static int s_server_wrap(svc_ctx *ctx, const void *req, void *rsp, void *arg)
{
    const char *name = arg;
    char *order = s_append(svc_ctx_meta(ctx, "Test-Order"), name);
    if (!order || svc_ctx_set_meta(ctx, "Test-Order", order) < 0) {
        free(order);
        return -ENOMEM;
    }
    free(order);
    const char *deny = svc_ctx_meta(ctx, "Test-Deny");
    if (strcmp(name, "s2") == 0 && deny && strcmp(deny, "1") == 0)
        return svc_ctx_error(ctx, 403, "refused by wrapper s2");
    int rc = svc_ctx_next(ctx, req, rsp);
    if (rc == 0 && strcmp(svc_ctx_endpoint(ctx), "Test.Chain") == 0) {
        Testsvc__ChainResponse *out = rsp;
        if (out->n_hops) {
            Testsvc__Hop *h = out->hops[0];
            char *u = s_append(h->unwind, name);
            if (!u)
                return -ENOMEM;
            if (h->unwind != protobuf_c_empty_string)
                free(h->unwind);
            h->unwind = u;
        }
    }
    return rc;
}

/* Client wrappers c1 (outer) and c2 (inner); arg is the name. */
static int s_client_wrap(svc_call_info *call, void *arg)
{
    const char *name = arg;
    char *order = s_append(svc_meta_get(call->meta, "Test-Order"), name);
    if (!order || svc_meta_set(call->meta, "Test-Order", order) < 0) {
        free(order);
        return svc_call_fail(call, 500, "out of memory");
    }
    free(order);
    const char *deny = svc_meta_get(call->meta, "Test-Deny-Call");
    if (strcmp(name, "c2") == 0 && deny && strcmp(deny, "1") == 0)
        return svc_call_fail(call, 401, "call to %s refused by wrapper c2", call->service);
    int rc = svc_call_next(call);
    size_t n = strlen(s_call_unwind);
    snprintf(s_call_unwind + n, sizeof s_call_unwind - n, "%s%s", n ? "," : "", name);
    return rc;
}

static char *s_meta_dup(svc_ctx *ctx, const char *key)
{
    const char *v = svc_ctx_meta(ctx, key);
    return strdup(v ? v : "");
}

/* The last hop's work: ms in 5 ms steps, ended early by the deadline (408). */
static int s_work(svc_ctx *ctx, uint32_t ms)
{
    svc_info("chain work\tms=%u remaining_ms=%d", ms, svc_ctx_remaining_ms(ctx));
    for (uint32_t worked = 0; worked < ms; worked += 5) {
        if (svc_ctx_remaining_ms(ctx) == 0) {
            svc_info("deadline passed, work stopped\tworked_ms=%u", worked);
            return svc_ctx_error(ctx, 408, "deadline passed after %u ms of work", worked);
        }
        struct timespec ts = { 0, 5000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    return 0;
}

static int s_chain(svc_ctx *ctx, const void *req, void *rsp)
{
    const Testsvc__ChainRequest *in = req;
    Testsvc__ChainResponse *out = rsp;
    Testsvc__Hop *me = malloc(sizeof *me);
    if (!me)
        return -ENOMEM;
    testsvc__hop__init(me);
    me->service = strdup(svc_name(s_svc));
    me->trace = s_meta_dup(ctx, SVC_META_TRACE_ID);
    me->span = s_meta_dup(ctx, SVC_META_SPAN_ID);
    me->parent = s_meta_dup(ctx, SVC_META_PARENT_ID);
    me->order = s_meta_dup(ctx, "Test-Order");
    me->remaining_ms = svc_ctx_remaining_ms(ctx);
    svc_info("chain hop\tnext=%s", in->n_hops ? in->hops[0] : "-");

    Testsvc__ChainResponse *down = NULL;
    int rc = 0;
    if (in->n_hops == 0) {
        rc = s_work(ctx, in->ms);
    } else {
        Testsvc__ChainRequest next = TESTSVC__CHAIN_REQUEST__INIT;
        next.hops = in->hops + 1;
        next.n_hops = in->n_hops - 1;
        next.ms = in->ms;
        svc_meta deny = SVC_META_INIT;
        if (in->deny_call)
            svc_meta_set(&deny, "Test-Deny-Call", "1");
        svc_call_opts o = { .meta = &deny };
        svc_error err = SVC_ERROR_INIT;
        s_call_unwind[0] = '\0';
        next.direct = in->direct;
        if (in->direct)   /* no metadata passed on by hand: trace and deadline still follow */
            rc = svc_call(svc_ctx_client(ctx), in->hops[0], "Test.Chain", &next.base,
                          &testsvc__chain_response__descriptor, (ProtobufCMessage **)&down, &o,
                          &err);
        else
            rc = svc_ctx_call(ctx, in->hops[0], "Test.Chain", &next.base,
                              &testsvc__chain_response__descriptor, (ProtobufCMessage **)&down,
                              &o, &err);
        me->call_unwind = strdup(s_call_unwind);
        svc_meta_release(&deny);
        if (rc < 0)
            rc = svc_ctx_error(ctx, err.code ? err.code : 500, "hop %s: %s", in->hops[0],
                               err.detail ? err.detail : "failed");
        svc_error_release(&err);
    }
    size_t n = 1 + (down ? down->n_hops : 0);
    out->hops = calloc(n, sizeof *out->hops);
    if (!out->hops) {
        testsvc__hop__free_unpacked(me, NULL);
        if (down)
            testsvc__chain_response__free_unpacked(down, NULL);
        return -ENOMEM;
    }
    out->hops[out->n_hops++] = me;
    for (size_t i = 0; down && i < down->n_hops; i++)
        out->hops[out->n_hops++] = down->hops[i];   /* taken over */
    if (down) {
        down->n_hops = 0;
        testsvc__chain_response__free_unpacked(down, NULL);
    }
    return rc;
}

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

static svc_broker *s_pong;

/* ping.X -> pong.X, on the service's broker thread. */
static void s_on_ping(const svc_message *m, void *arg)
{
    if (!s_pong)
        s_pong = svc_broker_new(NULL);
    char topic[300];
    const char *last = strrchr(m->topic, '.');
    snprintf(topic, sizeof topic, "pong.%s", last ? last + 1 : m->topic);
    svc_broker_publish(s_pong, topic, m->body, m->len, m->content_type, m->meta);
}

static atomic_llong s_ticks_sent, s_closed_seen;
static atomic_int s_open;

/* Bidi: every Item back as it comes; a clean end after the client's half-close. */
static int s_bidi_echo(svc_ctx *ctx, svc_stream *st)
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

static void s_nap(long ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int s_echo(svc_ctx *ctx, const void *req, void *rsp)
{
    const Testsvc__EchoRequest *in = req;
    Testsvc__EchoResponse *out = rsp;
    const char *extra = getenv("TESTSVC_EXTRA_MS"), *fail = getenv("TESTSVC_FAIL_CODE");
    s_nap((long)in->ms + (extra ? atol(extra) : 0));
    if (fail && atoi(fail) > 0)
        return svc_ctx_error(ctx, atoi(fail), "node %s fails on purpose", svc_node_id(s_svc));
    out->tag = strdup(in->tag);
    out->node = strdup(svc_node_id(s_svc));
    if (!out->tag || !out->node)
        return -ENOMEM;
    if (in->onward[0]) {
        Testsvc__EchoRequest next = TESTSVC__ECHO_REQUEST__INIT;
        next.tag = in->tag;
        ProtobufCMessage *m = NULL;
        svc_error err = SVC_ERROR_INIT;
        if (svc_ctx_call(ctx, in->onward, "Test.Echo", &next.base,
                         &testsvc__echo_response__descriptor, &m, NULL, &err) < 0)
            out->onward_code = err.code;
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        svc_error_release(&err);
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_svc = svc_new("testsvc", argc, argv);
    if (!s_svc)
        return 1;
    if (getenv("TESTSVC_SUBSCRIBE"))
        svc_subscribe(s_svc, "ping.*", "testsvc", s_on_ping, NULL);
    svc_handle(s_svc, "Test.Sleep", s_sleep, &testsvc__sleep_request__descriptor,
               &testsvc__sleep_response__descriptor);
    svc_handle(s_svc, "Test.Relay", s_relay, &testsvc__relay_request__descriptor,
               &testsvc__relay_response__descriptor);
    svc_handle_inline(s_svc, "Test.InlineRelay", s_relay, &testsvc__relay_request__descriptor,
                      &testsvc__relay_response__descriptor);
    svc_handle(s_svc, "Test.Chain", s_chain, &testsvc__chain_request__descriptor,
               &testsvc__chain_response__descriptor);
    svc_wrap_handler(s_svc, s_server_wrap, "s1");
    svc_wrap_handler(s_svc, s_server_wrap, "s2");
    svc_wrap_client(s_svc, s_client_wrap, "c1");
    svc_wrap_client(s_svc, s_client_wrap, "c2");
    svc_handle(s_svc, "Test.Echo", s_echo, &testsvc__echo_request__descriptor,
               &testsvc__echo_response__descriptor);
    svc_handle(s_svc, "Test.Meta", s_meta, &testsvc__meta_request__descriptor,
               &testsvc__meta_response__descriptor);
    svc_handle_streaming(s_svc, "Test.Bidi", SVC_STREAM_BIDI, s_bidi_echo,
                         &testsvc__item__descriptor, &testsvc__item__descriptor);
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
    svc_broker_destroy(&s_pong);
    return code;
}
