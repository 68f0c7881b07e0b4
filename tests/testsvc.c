/*
 * svc-testsvc — a service for the integration tests.
 *
 *   Test.Sleep  {ms}               sleeps, answers {node, remaining_ms}
 *   Test.Relay  {service, ms, name} calls onward (Test.Sleep of service, or
 *                                   greeter Say.Hello), answers what it got
 *   Test.Meta   {key}              answers the request's metadata value
 *   Test.InlineRelay               Test.Relay registered with svc_handle_inline:
 *                                   its onward call must be refused
 *
 * With TESTSVC_SUBSCRIBE=1 in the environment it also declares a subscriber
 * (svc_subscribe) to "ping.*" in queue group "testsvc", which publishes each
 * message's body again to "pong.<last token>".
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
    svc_handle(s_svc, "Test.Meta", s_meta, &testsvc__meta_request__descriptor,
               &testsvc__meta_response__descriptor);
    int code = svc_run(s_svc);
    svc_destroy(&s_svc);
    svc_broker_destroy(&s_pong);
    return code;
}
