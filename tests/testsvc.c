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
 *
 * Takes every svc service option (svc-testsvc --help).
 */
#include <errno.h>
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
    svc_handle(s_svc, "Test.Sleep", s_sleep, &testsvc__sleep_request__descriptor,
               &testsvc__sleep_response__descriptor);
    svc_handle(s_svc, "Test.Relay", s_relay, &testsvc__relay_request__descriptor,
               &testsvc__relay_response__descriptor);
    svc_handle_inline(s_svc, "Test.InlineRelay", s_relay, &testsvc__relay_request__descriptor,
                      &testsvc__relay_response__descriptor);
    svc_handle(s_svc, "Test.Echo", s_echo, &testsvc__echo_request__descriptor,
               &testsvc__echo_response__descriptor);
    svc_handle(s_svc, "Test.Meta", s_meta, &testsvc__meta_request__descriptor,
               &testsvc__meta_response__descriptor);
    int code = svc_run(s_svc);
    svc_destroy(&s_svc);
    return code;
}
