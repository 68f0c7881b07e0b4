/* libsvc/events.c — the event-stream client (svc/events.h): typed calls to svc.broker. */
#include "svc/events.h"
#include "svc/client.h"
#include "clock.h"
#include "zctx.h"
#include "brk1.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <zmq.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_async s_async;

struct svc_events {
    svc_client *client;    /* owned */
    char *address;         /* fixed node, or NULL */
    int timeout_ms;        /* per call */
    s_async *async;        /* asynchronous publishing, started on first use */
};

static void s_async_stop(s_async **ap);

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
    s_async_stop(&e->async);
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
    return svc_events_ack_fetch(e, stream, group, NULL, 0, o, max, wait_ms, out, err);
}

int svc_events_ack_fetch(svc_events *e, const char *stream, const char *group,
                         Svc__Broker__Event *const *evs, size_t n, const svc_consume_opts *o,
                         unsigned max, int wait_ms, Svc__Broker__ConsumeResponse **out,
                         svc_error *err)
{
    Svc__Broker__ConsumeRequest req = SVC__BROKER__CONSUME_REQUEST__INIT;
    Svc__Broker__AckItem *items = n ? malloc(n * sizeof *items) : NULL;
    Svc__Broker__AckItem **ptrs = n ? malloc(n * sizeof *ptrs) : NULL;
    if (n && (!items || !ptrs)) {
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
    free(items);
    free(ptrs);
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

/* ---- asynchronous publishing over BRK1 (BRK1W / BRK1K) --------------------------------- */

#define S_WINDOW 4096          /* publishes in flight at most */
#define S_WHEAD 20

typedef struct s_slot {
    uint64_t req_id;           /* 0 = free */
    svc_event_ack_fn fn;
    void *arg;
    int64_t deadline;          /* monotonic ms */
} s_slot;

struct s_async {
    void *sock;                /* DEALER to brokerd's BRK1 socket; publish thread only */
    void *wake_recv, *wake_send;  /* inproc PAIR; wake_send under mu */
    pthread_t thread;
    pthread_mutex_t mu;        /* everything below */
    pthread_cond_t cv;         /* room in the window, or all answered */
    unsigned char *buf;        /* records not sent yet */
    size_t len, cap;
    s_slot slots[S_WINDOW];
    uint64_t next_id, low_id;  /* next to assign; lowest possibly outstanding */
    size_t outstanding;
    int timeout_ms;
    bool stop;
};

static void s_put16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void s_put32(unsigned char *p, size_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Completes slot of req_id (mu held); fn runs with mu released. */
static void s_complete(s_async *a, uint64_t req_id, uint64_t seq, bool dup, int code,
                       const char *detail, size_t dlen)
{
    s_slot *sl = &a->slots[req_id % S_WINDOW];
    if (sl->req_id != req_id)
        return;   /* timed out already, or a stray answer */
    s_slot done = *sl;
    sl->req_id = 0;
    pthread_mutex_unlock(&a->mu);
    svc_error err = SVC_ERROR_INIT;
    if (code)
        svc_error_set(&err, "svc.broker", code, "%.*s", (int)dlen, detail);
    done.fn(seq, dup, code ? &err : NULL, done.arg);
    svc_error_release(&err);
    pthread_mutex_lock(&a->mu);
    /* Counted down only now, so that svc_events_flush returns after the
     * callbacks have run, not while the last one is still running. */
    a->outstanding--;
    pthread_cond_broadcast(&a->cv);
}

static void s_on_acks(s_async *a, const unsigned char *p, size_t len)
{
    size_t off = 0;
    svc__brk1_ack k;
    pthread_mutex_lock(&a->mu);
    while (svc__brk1_next_ack(p, len, &off, &k) > 0)
        s_complete(a, k.req_id, k.seq, k.duplicate, k.code, k.detail, k.dlen);
    pthread_mutex_unlock(&a->mu);
}

/* Fails what waited longer than the timeout (mu held). */
static void s_expire(s_async *a)
{
    int64_t now = svc__now_ms();
    while (a->low_id < a->next_id) {
        s_slot *sl = &a->slots[a->low_id % S_WINDOW];
        if (sl->req_id == a->low_id && sl->deadline > now)
            break;
        if (sl->req_id == a->low_id)
            s_complete(a, a->low_id, 0, false, 408, "no answer from brokerd in time", 30);
        a->low_id++;
    }
}

static void *s_async_thread(void *arg)
{
    s_async *a = arg;
    zmq_pollitem_t items[2] = { { a->sock, 0, ZMQ_POLLIN, 0 }, { a->wake_recv, 0, ZMQ_POLLIN, 0 } };
    unsigned char *sending = NULL;
    size_t scap = 0;
    for (;;) {
        zmq_poll(items, 2, 100);
        if (items[1].revents & ZMQ_POLLIN) {
            char c;
            while (zmq_recv(a->wake_recv, &c, 1, ZMQ_DONTWAIT) >= 0)
                ;
        }
        pthread_mutex_lock(&a->mu);
        bool stop = a->stop && a->outstanding == 0;
        unsigned char *b = a->buf;
        size_t bcap = a->cap, len = a->len;
        a->buf = sending;   /* publishers fill the other buffer meanwhile */
        a->cap = scap;
        a->len = 0;
        pthread_mutex_unlock(&a->mu);
        sending = b;
        scap = bcap;
        if (len && zmq_send(a->sock, "BRK1W", 5, ZMQ_SNDMORE) >= 0)
            zmq_send(a->sock, sending, len, 0);   /* on failure the records time out */
        for (int k = 0; k < 64; k++) {
            zmq_msg_t f0, f1;
            zmq_msg_init(&f0);
            if (zmq_msg_recv(&f0, a->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&f0);
                break;
            }
            zmq_msg_init(&f1);
            bool two = zmq_msg_more(&f0) && zmq_msg_recv(&f1, a->sock, 0) >= 0;
            if (two && zmq_msg_size(&f0) == 5 && memcmp(zmq_msg_data(&f0), "BRK1K", 5) == 0)
                s_on_acks(a, zmq_msg_data(&f1), zmq_msg_size(&f1));
            while (zmq_msg_more(two ? &f1 : &f0)) {   /* drop the rest of anything else */
                zmq_msg_t x;
                zmq_msg_init(&x);
                zmq_msg_recv(&x, a->sock, 0);
                bool more = zmq_msg_more(&x);
                zmq_msg_close(&x);
                if (!more)
                    break;
            }
            zmq_msg_close(&f0);
            zmq_msg_close(&f1);
        }
        pthread_mutex_lock(&a->mu);
        s_expire(a);
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
    }
    free(sending);
    return NULL;
}

/* Finds brokerd's BRK1 address and starts the publish thread. */
static int s_async_start(svc_events *e)
{
    Svc__Broker__InfoRequest req = SVC__BROKER__INFO_REQUEST__INIT;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(e, "Broker.Info", &req.base, &svc__broker__info_response__descriptor, &rsp, 0,
                    NULL);
    if (rc < 0)
        return rc;
    s_async *a = calloc(1, sizeof *a);
    if (!a) {
        protobuf_c_message_free_unpacked(rsp, NULL);
        return -ENOMEM;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->next_id = a->low_id = 1;
    a->timeout_ms = e->timeout_ms;
    a->sock = svc__socket(ZMQ_DEALER);
    a->wake_recv = svc__socket(ZMQ_PAIR);
    a->wake_send = svc__socket(ZMQ_PAIR);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://svc-events-%p", (void *)a);
    /* Each BRK1W holds at least one of at most S_WINDOW records in flight: sends never block. */
    int to = 2000, hwm = S_WINDOW + 16;
    rc = -ENOMEM;
    if (a->sock && a->wake_recv && a->wake_send) {
        zmq_setsockopt(a->sock, ZMQ_SNDTIMEO, &to, sizeof to);
        zmq_setsockopt(a->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        if (zmq_connect(a->sock, ((Svc__Broker__InfoResponse *)rsp)->pubsub_address) == 0 &&
            zmq_bind(a->wake_recv, ep) == 0 && zmq_connect(a->wake_send, ep) == 0)
            rc = -pthread_create(&a->thread, NULL, s_async_thread, a);
    }
    protobuf_c_message_free_unpacked(rsp, NULL);
    if (rc) {
        svc__socket_close(&a->sock);
        svc__socket_close(&a->wake_recv);
        svc__socket_close(&a->wake_send);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
        return rc;
    }
    e->async = a;
    return 0;
}

int svc_events_publish_async(svc_events *e, const char *stream, const void *body, size_t len,
                             const svc_event_publish_opts *o, svc_event_ack_fn fn, void *arg)
{
    const char *id = o && o->id ? o->id : "", *topic = o && o->topic ? o->topic : "";
    const char *ct = o && o->content_type ? o->content_type : "";
    size_t sl = stream ? strlen(stream) : 0, il = strlen(id), tl = strlen(topic), cl = strlen(ct);
    if (!fn || !sl || sl > 65535 || il > 65535 || tl > 65535 || cl > 65535 || (o && o->meta && o->meta->n))
        return SVC_EINVAL;
    if (len > 16 * 1024 * 1024)
        return SVC_ETOOBIG;
    int rc;
    if (!e->async && (rc = s_async_start(e)) < 0)
        return rc;
    s_async *a = e->async;
    size_t need = S_WHEAD + sl + il + tl + cl + len;
    pthread_mutex_lock(&a->mu);
    while (a->outstanding >= S_WINDOW || a->slots[a->next_id % S_WINDOW].req_id)
        pthread_cond_wait(&a->cv, &a->mu);
    if (a->len + need > a->cap) {
        size_t cap = a->cap ? a->cap : 65536;
        while (cap < a->len + need)
            cap *= 2;
        unsigned char *nb = realloc(a->buf, cap);
        if (!nb) {
            pthread_mutex_unlock(&a->mu);
            return -ENOMEM;
        }
        a->buf = nb;
        a->cap = cap;
    }
    uint64_t rid = a->next_id++;
    a->slots[rid % S_WINDOW] = (s_slot){ rid, fn, arg, svc__now_ms() + a->timeout_ms };
    a->outstanding++;
    unsigned char *h = a->buf + a->len;
    for (int i = 0; i < 8; i++)
        h[i] = (unsigned char)(rid >> (8 * i));
    s_put16(h + 8, sl);
    s_put16(h + 10, il);
    s_put16(h + 12, tl);
    s_put16(h + 14, cl);
    s_put32(h + 16, len);
    unsigned char *d = h + S_WHEAD;
    memcpy(d, stream, sl);
    memcpy(d + sl, id, il);
    memcpy(d + sl + il, topic, tl);
    memcpy(d + sl + il + tl, ct, cl);
    if (len)
        memcpy(d + sl + il + tl + cl, body, len);
    bool wake = a->len == 0;
    a->len += need;
    if (wake)
        zmq_send(a->wake_send, "w", 1, ZMQ_DONTWAIT);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int svc_events_flush(svc_events *e, int timeout_ms)
{
    s_async *a = e->async;
    if (!a)
        return 0;
    int64_t end = svc__now_ms() + timeout_ms;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    while (a->outstanding && rc == 0) {
        int64_t left = end - svc__now_ms();
        if (left <= 0) {
            rc = SVC_ETIMEOUT;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t step = left < 100 ? left : 100;
        ts.tv_nsec += step * 1000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static void s_async_stop(s_async **ap)
{
    s_async *a = *ap;
    if (!a)
        return;
    *ap = NULL;
    pthread_mutex_lock(&a->mu);
    a->stop = true;   /* the thread ends once everything is answered or timed out */
    zmq_send(a->wake_send, "w", 1, ZMQ_DONTWAIT);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    svc__socket_close(&a->sock);
    svc__socket_close(&a->wake_recv);
    svc__socket_close(&a->wake_send);
    free(a->buf);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}
