/*
 * brokerd/api.c — the svc.broker endpoints.
 *
 * Every handler runs on the loop thread and never blocks.  An Events.*
 * handler validates its request, submits one op to the backend and
 * returns with its answer deferred; the backend's completion answers it —
 * a publish or ack only after its group commit, a consume when it has
 * events or its wait_ms is over — and no thread waits meanwhile.
 */
#include "api.h"
#include "topic.h"
#include "consumer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_STREAM_NAME_MAX 120   /* leaves room for ".dlq" */
#define S_ID_MAX 128
#define S_BATCH_MAX 1000
#define S_WAIT_MAX 5000    /* below the drain timeout: a stop never waits on a fetch */
#define S_ACKS_MAX 10000

/*
 * One op on its way through the backend.  The handler deferred its answer
 * (svc_ctx_defer: the handle keeps the request the op borrows) and
 * returned; the backend's done — on the commit thread, or at once when it
 * refuses — sends the answer and frees it.  So a publish waiting for its
 * commit, or a consume waiting up to wait_ms for events, holds no thread.
 */
typedef struct s_async {
    brk_op op;               /* first: the backend sees only this */
    svc_deferred *d;         /* the answer */
} s_async;

static void s_async_done(brk_op *op)
{
    s_async *a = (s_async *)op;
    if (op->code)
        svc_deferred_error(&a->d, op->code, "%s", op->detail);
    else
        svc_deferred_send(&a->d, op->rsp);
    protobuf_c_message_free_unpacked(op->rsp, NULL);
    free(a);
}

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Submits one op for the request and returns with the answer deferred;
 * rsp (the handler's, unused) gives the response type.
 */
static int s_run(svc_ctx *ctx, brk_op_kind kind, const void *req, void *rsp, uint32_t wait_ms)
{
    brk_api *api = svc_ctx_data(ctx);
    const ProtobufCMessageDescriptor *desc = ((ProtobufCMessage *)rsp)->descriptor;
    s_async *a = calloc(1, sizeof *a);
    ProtobufCMessage *out = malloc(desc->sizeof_message);
    if (!a || !out) {
        free(a);
        free(out);
        return -ENOMEM;
    }
    protobuf_c_message_init(desc, out);
    if (!(a->d = svc_ctx_defer(ctx))) {
        free(a);
        free(out);
        return svc_ctx_error(ctx, 500, "out of memory");
    }
    a->op.kind = kind;
    a->op.req = svc_deferred_request(a->d);
    a->op.rsp = out;
    a->op.wait_until = s_now() + wait_ms;
    a->op.done = s_async_done;
    a->op.arg = a;
    api->backend->vt->submit(api->backend, &a->op);
    return 0;   /* a may be answered and gone already */
}

static bool s_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n <= max && svc__topic_valid(s, n, false);
}

static bool s_group(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BRK_GROUP_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

#define S_BAD_STREAM(ctx, s)                                                                  \
    svc_ctx_error(ctx, 400, "invalid stream name \"%s\": want 1..%d bytes of [A-Za-z0-9_-] "  \
                  "tokens separated by '.'", s, S_STREAM_NAME_MAX)
#define S_BAD_GROUP(ctx, g)                                                                   \
    svc_ctx_error(ctx, 400, "invalid group \"%s\": want 1..%d bytes of [A-Za-z0-9_-]", g,     \
                  BRK_GROUP_MAX)

int brk_api_check_publish(const Svc__Broker__PublishRequest *req, uint32_t max_payload,
                          char *detail, size_t n)
{
    if (!s_name(req->stream, S_STREAM_NAME_MAX)) {
        snprintf(detail, n, "invalid stream name \"%s\": want 1..%d bytes of [A-Za-z0-9_-] "
                 "tokens separated by '.'", req->stream, S_STREAM_NAME_MAX);
        return 400;
    }
    if (req->topic[0] && !s_name(req->topic, SVC__TOPIC_MAX)) {
        snprintf(detail, n, "invalid topic \"%s\"", req->topic);
        return 400;
    }
    if (strlen(req->id) > S_ID_MAX) {
        snprintf(detail, n, "message id longer than %d bytes", S_ID_MAX);
        return 400;
    }
    if (req->body.len > max_payload) {
        snprintf(detail, n, "event of %zu bytes exceeds the limit of %u bytes", req->body.len,
                 max_payload);
        return 413;
    }
    return 0;
}

static int s_publish(svc_ctx *ctx, const void *vreq, void *rsp)
{
    const Svc__Broker__PublishRequest *req = vreq;
    brk_api *api = svc_ctx_data(ctx);
    char detail[256];
    int code = brk_api_check_publish(req, api->max_payload, detail, sizeof detail);
    if (code)
        return svc_ctx_error(ctx, code, "%s", detail);
    return s_run(ctx, BRK_OP_PUBLISH, req, rsp, 0);
}

static int s_create(svc_ctx *ctx, const void *vreq, void *rsp)
{
    const Svc__Broker__CreateStreamRequest *req = vreq;
    brk_api *api = svc_ctx_data(ctx);
    if (!req->config)
        return svc_ctx_error(ctx, 400, "config is required");
    if (!s_name(req->config->name, S_STREAM_NAME_MAX))
        return S_BAD_STREAM(ctx, req->config->name);
    if (req->config->max_msg_size > api->max_payload)
        return svc_ctx_error(ctx, 400, "max_msg_size %u exceeds brokerd's --max-payload %u",
                             req->config->max_msg_size, api->max_payload);
    return s_run(ctx, BRK_OP_CREATE_STREAM, req, rsp, 0);
}

static int s_streams(svc_ctx *ctx, const void *req, void *rsp)
{
    return s_run(ctx, BRK_OP_STREAMS, req, rsp, 0);
}

static int s_info(svc_ctx *ctx, const void *vreq, void *rsp)
{
    const Svc__Broker__StreamInfoRequest *req = vreq;
    if (!s_name(req->stream, S_STREAM_NAME_MAX + 4))
        return S_BAD_STREAM(ctx, req->stream);
    return s_run(ctx, BRK_OP_STREAM_INFO, req, rsp, 0);
}

static int s_check_consumer(svc_ctx *ctx, const Svc__Broker__ConsumerConfig *c)
{
    if (!c)
        return 0;
    if ((int)c->start < 0 || c->start > SVC__BROKER__START_POLICY__START_TIME)
        return svc_ctx_error(ctx, 400, "invalid start policy %d", (int)c->start);
    if (c->start == SVC__BROKER__START_POLICY__START_SEQ && c->start_seq == 0)
        return svc_ctx_error(ctx, 400, "start START_SEQ needs start_seq >= 1");
    if (c->start != SVC__BROKER__START_POLICY__START_SEQ && c->start_seq)
        return svc_ctx_error(ctx, 400, "start_seq is only valid with START_SEQ");
    if (c->start == SVC__BROKER__START_POLICY__START_TIME && c->start_time_ms <= 0)
        return svc_ctx_error(ctx, 400, "start START_TIME needs start_time_ms > 0");
    if (c->ack_wait_ms && (c->ack_wait_ms < 10 || c->ack_wait_ms > 3600000))
        return svc_ctx_error(ctx, 400, "invalid ack_wait_ms %u: want 10..3600000", c->ack_wait_ms);
    if (c->max_deliver > 1000)
        return svc_ctx_error(ctx, 400, "invalid max_deliver %u: want 1..1000", c->max_deliver);
    if (c->max_ack_pending > 100000)
        return svc_ctx_error(ctx, 400, "invalid max_ack_pending %u: want 1..100000",
                             c->max_ack_pending);
    return 0;
}

static int s_consume(svc_ctx *ctx, const void *vreq, void *rsp)
{
    const Svc__Broker__ConsumeRequest *req = vreq;
    if (!s_name(req->stream, S_STREAM_NAME_MAX + 4))
        return S_BAD_STREAM(ctx, req->stream);
    if (!s_group(req->group))
        return S_BAD_GROUP(ctx, req->group);
    if (req->batch > S_BATCH_MAX)
        return svc_ctx_error(ctx, 400, "invalid batch %u: want 1..%d", req->batch, S_BATCH_MAX);
    if (req->wait_ms > S_WAIT_MAX)
        return svc_ctx_error(ctx, 400, "invalid wait_ms %u: want 0..%d", req->wait_ms, S_WAIT_MAX);
    int rc = s_check_consumer(ctx, req->config);
    if (rc)
        return rc;
    if (req->n_acks > S_ACKS_MAX)
        return svc_ctx_error(ctx, 400, "want at most %d acks, got %zu", S_ACKS_MAX, req->n_acks);
    for (size_t i = 0; i < req->n_acks; i++)
        if (req->acks[i]->seq == 0 || req->acks[i]->delivery == 0)
            return svc_ctx_error(ctx, 400, "ack %zu: seq and delivery must be >= 1", i);
    uint32_t wait = req->wait_ms;
    int left = svc_ctx_remaining_ms(ctx);
    if (left >= 0 && (uint32_t)left < wait + 200)
        wait = left > 200 ? (uint32_t)left - 200 : 0;   /* answer before the caller gives up */
    return s_run(ctx, BRK_OP_CONSUME, req, rsp, wait);
}

static int s_ack(svc_ctx *ctx, const void *vreq, void *rsp)
{
    const Svc__Broker__AckRequest *req = vreq;
    if (!s_name(req->stream, S_STREAM_NAME_MAX + 4))
        return S_BAD_STREAM(ctx, req->stream);
    if (!s_group(req->group))
        return S_BAD_GROUP(ctx, req->group);
    if (req->n_acks == 0 || req->n_acks > S_ACKS_MAX)
        return svc_ctx_error(ctx, 400, "want 1..%d acks, got %zu", S_ACKS_MAX, req->n_acks);
    if (req->delay_ms > 3600000 || (req->delay_ms && !req->nack))
        return svc_ctx_error(ctx, 400, "invalid delay_ms %u: only for nack, at most 3600000",
                             req->delay_ms);
    for (size_t i = 0; i < req->n_acks; i++)
        if (req->acks[i]->seq == 0 || req->acks[i]->delivery == 0)
            return svc_ctx_error(ctx, 400, "ack %zu: seq and delivery must be >= 1", i);
    return s_run(ctx, BRK_OP_ACK, req, rsp, 0);
}

static int s_binfo(svc_ctx *ctx, const void *req, void *vrsp)
{
    brk_api *api = svc_ctx_data(ctx);
    Svc__Broker__InfoResponse *rsp = vrsp;
    rsp->pubsub_address = strdup(brk_pubsub_address(api->pubsub));
    rsp->max_payload = api->max_payload;
    rsp->sub_hwm = (uint32_t)api->sub_hwm;
    return rsp->pubsub_address ? 0 : -ENOMEM;
}

static int s_bstats(svc_ctx *ctx, const void *req, void *vrsp)
{
    brk_api *api = svc_ctx_data(ctx);
    Svc__Broker__StatsResponse *rsp = vrsp;
    rsp->event_batches = api->backend->vt->batches(api->backend);
    rsp->event_ops = api->backend->vt->ops(api->backend);
    return brk_pubsub_stats(api->pubsub, rsp);
}

typedef struct s_endpoint {
    const char *name;
    svc_handler_fn fn;
    const ProtobufCMessageDescriptor *req, *rsp;
    bool inline_;            /* never blocks: run on the loop thread */
} s_endpoint;

static const s_endpoint s_endpoints[] = {
    { "Broker.Info", s_binfo, &svc__broker__info_request__descriptor,
      &svc__broker__info_response__descriptor, true },
    { "Broker.Stats", s_bstats, &svc__broker__stats_request__descriptor,
      &svc__broker__stats_response__descriptor, true },
    { "Events.Publish", s_publish, &svc__broker__publish_request__descriptor,
      &svc__broker__publish_response__descriptor, true },
    { "Events.CreateStream", s_create, &svc__broker__create_stream_request__descriptor,
      &svc__broker__stream_info__descriptor, true },
    { "Events.Streams", s_streams, &svc__broker__streams_request__descriptor,
      &svc__broker__streams_response__descriptor, true },
    { "Events.StreamInfo", s_info, &svc__broker__stream_info_request__descriptor,
      &svc__broker__stream_info__descriptor, true },
    { "Events.Consume", s_consume, &svc__broker__consume_request__descriptor,
      &svc__broker__consume_response__descriptor, true },
    { "Events.Ack", s_ack, &svc__broker__ack_request__descriptor,
      &svc__broker__ack_response__descriptor, true },
    { NULL, NULL, NULL, NULL, false },
};

int brk_api_register(svc_service *s, brk_api *api)
{
    svc_set_data(s, api);
    for (const s_endpoint *e = s_endpoints; e->name; e++) {
        int rc = e->inline_ ? svc_handle_inline(s, e->name, e->fn, e->req, e->rsp)
                            : svc_handle(s, e->name, e->fn, e->req, e->rsp);
        if (rc < 0)
            return rc;
    }
    return 0;
}
