/* libsvc/events.c — the event-stream client (svc/events.h): typed calls to svc.broker. */
#include "svc/events.h"
#include "svc/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct svc_events {
    svc_client *client;    /* owned */
    char *address;         /* fixed node, or NULL */
    int timeout_ms;        /* per call */
};

svc_events *svc_events_new(const char *registry)
{
    svc_events *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->client = svc_client_new(registry);
    if (!e->client) {
        free(e);
        return NULL;
    }
    e->timeout_ms = SVC_DEFAULT_TIMEOUT_MS;
    return e;
}

int svc_events_set_address(svc_events *e, const char *address)
{
    char *a = address ? strdup(address) : NULL;
    if (address && !a)
        return -ENOMEM;
    free(e->address);
    e->address = a;
    return 0;
}

int svc_events_set_timeout(svc_events *e, int timeout_ms)
{
    if (timeout_ms <= 0)
        return SVC_EINVAL;
    e->timeout_ms = timeout_ms;
    return 0;
}

void svc_events_destroy(svc_events **ep)
{
    svc_events *e = *ep;
    if (!e)
        return;
    *ep = NULL;
    svc_client_destroy(&e->client);
    free(e->address);
    free(e);
}

static int s_call(svc_events *e, const char *endpoint, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *d, ProtobufCMessage **rsp, int extra_ms,
                  svc_error *err)
{
    svc_call_opts o = { .timeout_ms = e->timeout_ms + extra_ms, .address = e->address };
    svc_error local = SVC_ERROR_INIT;
    int rc = svc_call(e->client, "svc.broker", endpoint, req, d, rsp, &o, err ? err : &local);
    svc_error_release(&local);
    return rc;
}

/* Metadata as protobuf entries pointing into m (valid while m is). */
static Svc__MetadataEntry **s_meta(const svc_meta *m, Svc__MetadataEntry *ents)
{
    Svc__MetadataEntry **p = malloc((m->n ? m->n : 1) * sizeof *p);
    if (!p)
        return NULL;
    for (size_t i = 0; i < m->n; i++) {
        svc__metadata_entry__init(&ents[i]);
        ents[i].key = m->pairs[i].key;
        ents[i].value = m->pairs[i].value;
        p[i] = &ents[i];
    }
    return p;
}

int svc_events_publish(svc_events *e, const char *stream, const void *body, size_t len,
                       const svc_event_publish_opts *o, uint64_t *seq, bool *duplicate,
                       svc_error *err)
{
    Svc__Broker__PublishRequest req = SVC__BROKER__PUBLISH_REQUEST__INIT;
    req.stream = (char *)stream;
    req.body.data = (uint8_t *)body;
    req.body.len = len;
    Svc__MetadataEntry *ents = NULL;
    if (o) {
        req.id = (char *)(o->id ? o->id : "");
        req.topic = (char *)(o->topic ? o->topic : "");
        req.content_type = (char *)(o->content_type ? o->content_type : "");
        if (o->meta && o->meta->n) {
            ents = malloc(o->meta->n * sizeof *ents);
            if (!ents || !(req.metadata = s_meta(o->meta, ents))) {
                free(ents);
                return -ENOMEM;
            }
            req.n_metadata = o->meta->n;
        }
    }
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(e, "Events.Publish", &req.base, &svc__broker__publish_response__descriptor,
                    &rsp, 0, err);
    free(req.metadata);
    free(ents);
    if (rc == 0) {
        Svc__Broker__PublishResponse *pr = (void *)rsp;
        if (seq)
            *seq = pr->seq;
        if (duplicate)
            *duplicate = pr->duplicate;
        protobuf_c_message_free_unpacked(rsp, NULL);
    }
    return rc;
}

int svc_events_create_stream(svc_events *e, const char *stream,
                             const Svc__Broker__StreamConfig *cfg, svc_error *err)
{
    Svc__Broker__StreamConfig c = SVC__BROKER__STREAM_CONFIG__INIT;
    if (cfg)
        c = *cfg;
    c.name = (char *)stream;
    Svc__Broker__CreateStreamRequest req = SVC__BROKER__CREATE_STREAM_REQUEST__INIT;
    req.config = &c;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(e, "Events.CreateStream", &req.base, &svc__broker__stream_info__descriptor,
                    &rsp, 0, err);
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

int svc_events_fetch(svc_events *e, const char *stream, const char *group,
                     const svc_consume_opts *o, unsigned max, int wait_ms,
                     Svc__Broker__ConsumeResponse **out, svc_error *err)
{
    Svc__Broker__ConsumeRequest req = SVC__BROKER__CONSUME_REQUEST__INIT;
    Svc__Broker__ConsumerConfig cc = SVC__BROKER__CONSUMER_CONFIG__INIT;
    req.stream = (char *)stream;
    req.group = (char *)group;
    req.batch = max;
    req.wait_ms = wait_ms > 0 ? (uint32_t)wait_ms : 0;
    if (o) {
        cc.start = (Svc__Broker__StartPolicy)o->start;
        cc.start_seq = o->start_seq;
        cc.start_time_ms = o->start_time_ms;
        cc.ack_wait_ms = o->ack_wait_ms;
        cc.max_deliver = o->max_deliver;
        cc.max_ack_pending = o->max_ack_pending;
        req.config = &cc;
    }
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(e, "Events.Consume", &req.base, &svc__broker__consume_response__descriptor,
                    &rsp, wait_ms > 0 ? wait_ms : 0, err);
    *out = rc == 0 ? (void *)rsp : NULL;
    return rc;
}

static int s_ack(svc_events *e, const char *stream, const char *group,
                 Svc__Broker__Event *const *evs, size_t n, bool nack, uint32_t delay,
                 unsigned *acked, svc_error *err)
{
    Svc__Broker__AckRequest req = SVC__BROKER__ACK_REQUEST__INIT;
    req.stream = (char *)stream;
    req.group = (char *)group;
    req.nack = nack;
    req.delay_ms = delay;
    Svc__Broker__AckItem *items = malloc((n ? n : 1) * sizeof *items);
    Svc__Broker__AckItem **ptrs = malloc((n ? n : 1) * sizeof *ptrs);
    if (!items || !ptrs) {
        free(items);
        free(ptrs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        svc__broker__ack_item__init(&items[i]);
        items[i].seq = evs[i]->seq;
        items[i].delivery = evs[i]->delivery;
        ptrs[i] = &items[i];
    }
    req.acks = ptrs;
    req.n_acks = n;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(e, "Events.Ack", &req.base, &svc__broker__ack_response__descriptor, &rsp, 0,
                    err);
    if (rc == 0 && acked)
        *acked = ((Svc__Broker__AckResponse *)rsp)->acked;
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    free(items);
    free(ptrs);
    return rc;
}

int svc_events_ack(svc_events *e, const char *stream, const char *group,
                   const Svc__Broker__Event *ev, svc_error *err)
{
    Svc__Broker__Event *one = (Svc__Broker__Event *)ev;
    return s_ack(e, stream, group, &one, 1, false, 0, NULL, err);
}

int svc_events_ack_many(svc_events *e, const char *stream, const char *group,
                        Svc__Broker__Event *const *evs, size_t n, unsigned *acked,
                        svc_error *err)
{
    return s_ack(e, stream, group, evs, n, false, 0, acked, err);
}

int svc_events_nack(svc_events *e, const char *stream, const char *group,
                    const Svc__Broker__Event *ev, uint32_t delay_ms, svc_error *err)
{
    Svc__Broker__Event *one = (Svc__Broker__Event *)ev;
    return s_ack(e, stream, group, &one, 1, true, delay_ms, NULL, err);
}

int svc_events_info(svc_events *e, const char *stream, Svc__Broker__StreamInfo **out,
                    svc_error *err)
{
    Svc__Broker__StreamInfoRequest req = SVC__BROKER__STREAM_INFO_REQUEST__INIT;
    req.stream = (char *)stream;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(e, "Events.StreamInfo", &req.base, &svc__broker__stream_info__descriptor,
                    &rsp, 0, err);
    *out = rc == 0 ? (void *)rsp : NULL;
    return rc;
}
