/*
 * libsvc/broker.c — the pub/sub client (svc/broker.h).
 *
 * Two DEALER sockets to brokerd's BRK1 ROUTER: one for publishing, owned
 * by the flusher thread (and svc_broker_flush, under sock_mu); one for
 * subscriptions, owned by the receive thread.  svc_broker_publish appends
 * a record to the publish batch (pub_mu) and wakes the flusher, which sends
 * everything gathered as one BRK1B message: one message when publishes are
 * rare, big batches when they come fast.  Other threads reach the receive thread through an inproc PAIR
 * (commands under cmd_mu) and wait on cv for brokerd's answer.
 */
#include "svc/broker.h"
#include "svc/client.h"
#include "svc/log.h"
#include "broker.pb-c.h"
#include "clock.h"
#include "topic.h"
#include "brk1.h"
#include "zctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_PUB_TIMEOUT_MS 2000
#define S_SUB_TIMEOUT_MS 5000
#define S_PING_MS 1000

typedef struct s_sub {
    uint64_t sid;          /* subscription id (ours) */
    char *pattern;         /* owned */
    char *queue;           /* owned, "" for none */
    svc_sub_fn fn;
    void *arg;
    struct s_sub *next;
} s_sub;

struct svc_broker {
    char *registry;                /* for Broker.Info */
    char *address;                 /* BRK1 endpoint */
    uint32_t max_payload;          /* from Broker.Info; 0 = unknown */
    pthread_mutex_t mu;            /* connect, subs, waits */
    pthread_cond_t cv;             /* answers to subscribe/unsubscribe */
    void *pub;                     /* publish DEALER, under sock_mu */
    pthread_mutex_t sock_mu;
    pthread_mutex_t pub_mu;        /* the publish batch below */
    pthread_cond_t pub_cv;         /* flusher: records waiting, or stop */
    pthread_cond_t room_cv;        /* publishers and flush: the flusher sent a batch */
    unsigned char *pbuf, *pspare;  /* batch being filled / the one being sent */
    size_t plen, pcap, pspare_cap; /* bytes in pbuf, allocations */
    bool flushing, fl_stop;
    atomic_bool fl_running;        /* the flusher runs: connected (publish's fast path) */
    pthread_t fl_thread;
    atomic_ullong pub_lost;        /* records in batches brokerd could not be sent */
    void *cmd_send, *cmd_recv;     /* inproc PAIR to the thread; cmd_send under cmd_mu */
    pthread_mutex_t cmd_mu;
    pthread_t thread;
    bool thread_running;
    s_sub *subs;                   /* under mu; read by the thread under mu */
    uint64_t next_sid;
    uint64_t answer_sid;           /* last answer from brokerd: its sid, code, detail */
    int answer_code;               /* 0 ok, -1 none yet */
    char answer_detail[256];
    atomic_ullong published, delivered;
};

svc_broker *svc_broker_new(const char *registry)
{
    svc_broker *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (registry && !(b->registry = strdup(registry))) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->pub_mu, NULL);
    pthread_mutex_init(&b->sock_mu, NULL);
    pthread_cond_init(&b->pub_cv, NULL);
    pthread_cond_init(&b->room_cv, NULL);
    pthread_mutex_init(&b->cmd_mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->next_sid = (svc__rand() & 0xffffffffu) << 16;
    return b;
}

int svc_broker_set_address(svc_broker *b, const char *addr)
{
    if (!svc__address_valid(addr))
        return SVC_EINVAL;
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    if (b->pub) {
        rc = SVC_EINVAL;
    } else {
        free(b->address);
        b->address = strdup(addr);
        rc = b->address ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Asks svc.broker for its BRK1 address (mu held). */
static int s_resolve(svc_broker *b, svc_error *err)
{
    svc_client *c = svc_client_new(b->registry);
    if (!c)
        return -ENOMEM;
    Svc__Broker__InfoRequest req = SVC__BROKER__INFO_REQUEST__INIT;
    ProtobufCMessage *rsp = NULL;
    svc_error e = SVC_ERROR_INIT;
    svc_call_opts o = { .timeout_ms = 5000 };
    int rc = svc_call(c, "svc.broker", "Broker.Info", &req.base,
                      &svc__broker__info_response__descriptor, &rsp, &o, &e);
    if (rc == 0) {
        Svc__Broker__InfoResponse *ir = (void *)rsp;
        b->address = strdup(ir->pubsub_address);
        b->max_payload = ir->max_payload;
        if (!b->address)
            rc = -ENOMEM;
        protobuf_c_message_free_unpacked(rsp, NULL);
    }
    if (err)
        svc_error_copy(err, &e);
    svc_error_release(&e);
    svc_client_destroy(&c);
    return rc;
}

static void *s_dealer(const char *addr, bool immediate)
{
    void *s = svc__socket(ZMQ_DEALER);
    if (!s)
        return NULL;
    /* Both directions carry batches (up to 256 KiB out, 64 KiB in): these bound memory. */
    int one = 1, sndhwm = 64, rcvhwm = 256, to = S_PUB_TIMEOUT_MS;
    zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &to, sizeof to);
    if (immediate)
        zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
    if (zmq_connect(s, addr) < 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

#define S_PUB_BATCH_MAX (256 * 1024)   /* a publisher waits while the batch is bigger */
#define S_PUB_HEAD 10                    /* record: topic_len(2) body_len(4) meta_len(4) */

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Sends gathered batches until told to stop with nothing left. */
static void *s_flusher(void *arg)
{
    svc_broker *b = arg;
    pthread_mutex_lock(&b->pub_mu);
    for (;;) {
        while (!b->plen && !b->fl_stop)
            pthread_cond_wait(&b->pub_cv, &b->pub_mu);
        if (!b->plen)
            break;
        unsigned char *buf = b->pbuf;
        size_t len = b->plen, cap = b->pcap;
        b->pbuf = b->pspare;
        b->pcap = b->pspare_cap;
        b->plen = 0;
        b->flushing = true;
        pthread_cond_broadcast(&b->room_cv);
        pthread_mutex_unlock(&b->pub_mu);
        uint32_t n = 0;
        for (size_t off = 0; off + S_PUB_HEAD <= len; n++) {
            uint32_t tl = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8;
            uint32_t bl = (uint32_t)buf[off + 2] | (uint32_t)buf[off + 3] << 8 |
                          (uint32_t)buf[off + 4] << 16 | (uint32_t)buf[off + 5] << 24;
            uint32_t ml = (uint32_t)buf[off + 6] | (uint32_t)buf[off + 7] << 8 |
                          (uint32_t)buf[off + 8] << 16 | (uint32_t)buf[off + 9] << 24;
            off += S_PUB_HEAD + tl + bl + ml;
        }
        pthread_mutex_lock(&b->sock_mu);
        if (zmq_send(b->pub, "BRK1B", 5, ZMQ_SNDMORE) < 0 || zmq_send(b->pub, buf, len, 0) < 0) {
            atomic_fetch_add(&b->pub_lost, n);
            svc_warn("brokerd unreachable; publishes dropped\tmessages=%u", n);
        }
        pthread_mutex_unlock(&b->sock_mu);
        pthread_mutex_lock(&b->pub_mu);
        b->pspare = buf;
        b->pspare_cap = cap;
        b->flushing = false;
        pthread_cond_broadcast(&b->room_cv);
    }
    pthread_mutex_unlock(&b->pub_mu);
    return NULL;
}

int svc_broker_connect(svc_broker *b, svc_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if (!b->pub) {
        if (!b->address)
            rc = s_resolve(b, err);
        if (rc == 0 && !(b->pub = s_dealer(b->address, true)))
            rc = errno ? -errno : -ENOMEM;
        if (rc == 0) {
            rc = -pthread_create(&b->fl_thread, NULL, s_flusher, b);
            atomic_store(&b->fl_running, rc == 0);
            if (rc)
                svc__socket_close(&b->pub);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int svc_broker_publish(svc_broker *b, const char *topic, const void *body, size_t len,
                       const char *content_type, const svc_meta *meta)
{
    size_t tl = topic ? strlen(topic) : 0;
    if (!svc__topic_valid(topic ? topic : "", tl, false))
        return SVC_EINVAL;
    if (!atomic_load(&b->fl_running)) {
        int rc = svc_broker_connect(b, NULL);
        if (rc < 0)
            return rc == SVC_EREMOTE || rc == SVC_ENOTFOUND ? SVC_EUNREACHABLE : rc;
    }
    if ((b->max_payload && len > b->max_payload) || len > UINT32_MAX)
        return SVC_ETOOBIG;
    uint8_t mbuf[1024], *mp = NULL;
    size_t ml = 0;
    bool has_meta = (content_type && *content_type) || (meta && meta->n);
    if (has_meta) {
        Svc__MetadataEntry ents[64], *eptr[64];
        Svc__Broker__Meta m = SVC__BROKER__META__INIT;
        m.content_type = (char *)(content_type ? content_type : "");
        size_t n = meta ? meta->n : 0;
        if (n > 64)
            return SVC_EINVAL;
        for (size_t i = 0; i < n; i++) {
            svc__metadata_entry__init(&ents[i]);
            ents[i].key = meta->pairs[i].key;
            ents[i].value = meta->pairs[i].value;
            eptr[i] = &ents[i];
        }
        m.metadata = eptr;
        m.n_metadata = n;
        ml = svc__broker__meta__get_packed_size(&m);
        if (ml > 65536)
            return SVC_ETOOBIG;
        mp = ml <= sizeof mbuf ? mbuf : malloc(ml);
        if (!mp)
            return -ENOMEM;
        svc__broker__meta__pack(&m, mp);
    }
    size_t need = S_PUB_HEAD + tl + len + ml;
    int rc = 0;
    pthread_mutex_lock(&b->pub_mu);
    while (b->plen && b->plen + need > S_PUB_BATCH_MAX)
        pthread_cond_wait(&b->room_cv, &b->pub_mu);   /* the flusher takes it within a send */
    if (b->plen + need > b->pcap) {
        size_t cap = b->pcap ? b->pcap : 16384;
        while (cap < b->plen + need)
            cap *= 2;
        unsigned char *nb = realloc(b->pbuf, cap);
        if (!nb) {
            rc = -ENOMEM;
            goto out_unlock;
        }
        b->pbuf = nb;
        b->pcap = cap;
    }
    unsigned char *h = b->pbuf + b->plen;
    h[0] = (unsigned char)tl;
    h[1] = (unsigned char)(tl >> 8);
    s_put32(h + 2, (uint32_t)len);
    s_put32(h + 6, (uint32_t)ml);
    memcpy(h + S_PUB_HEAD, topic, tl);
    if (len)
        memcpy(h + S_PUB_HEAD + tl, body, len);
    if (ml)
        memcpy(h + S_PUB_HEAD + tl + len, mp, ml);
    if (b->plen == 0)
        pthread_cond_signal(&b->pub_cv);
    b->plen += need;
out_unlock:
    pthread_mutex_unlock(&b->pub_mu);
    if (mp && mp != mbuf)
        free(mp);
    if (rc == 0)
        atomic_fetch_add(&b->published, 1);
    return rc;
}

int svc_broker_flush(svc_broker *b, int timeout_ms, svc_error *err)
{
    int rc = svc_broker_connect(b, err);
    if (rc < 0)
        return rc;
    int64_t end = svc__now_ms() + timeout_ms;
    pthread_mutex_lock(&b->pub_mu);
    while (b->plen || b->flushing)
        pthread_cond_wait(&b->room_cv, &b->pub_mu);
    pthread_mutex_unlock(&b->pub_mu);
    if (atomic_exchange(&b->pub_lost, 0)) {
        if (err)
            svc_error_set(err, "svc.broker", 503, "brokerd could not be reached: messages lost");
        return SVC_EUNREACHABLE;
    }
    pthread_mutex_lock(&b->sock_mu);
    bool refused = false;
    rc = zmq_send(b->pub, "BRK1H", 5, 0) < 0 ? SVC_EUNREACHABLE : SVC_ETIMEOUT;
    while (rc == SVC_ETIMEOUT) {
        int64_t left = end - svc__now_ms();
        if (left <= 0)
            break;
        zmq_pollitem_t it = { b->pub, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, (long)left) <= 0)
            continue;
        zmq_msg_t f[4];
        int n = 0;
        bool more = true;
        while (more) {
            zmq_msg_t tmp, *m = n < 4 ? &f[n] : &tmp;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, b->pub, 0) < 0) {
                zmq_msg_close(m);
                break;
            }
            more = zmq_msg_more(m);
            if (n < 4)
                n++;
            else
                zmq_msg_close(m);
        }
        if (n && zmq_msg_size(&f[0]) >= 5 && memcmp(zmq_msg_data(&f[0]), "BRK1H", 5) == 0)
            rc = refused ? SVC_EREMOTE : 0;
        if (n >= 3 && !refused && zmq_msg_size(&f[0]) >= 5 &&
            memcmp(zmq_msg_data(&f[0]), "BRK1E", 5) == 0) {
            refused = true;
            if (err) {
                char c[16];
                size_t cl = zmq_msg_size(&f[1]) < 15 ? zmq_msg_size(&f[1]) : 15;
                memcpy(c, zmq_msg_data(&f[1]), cl);
                c[cl] = 0;
                svc_error_set(err, "svc.broker", atoi(c) ? atoi(c) : 500, "%.*s",
                              (int)zmq_msg_size(&f[2]), (const char *)zmq_msg_data(&f[2]));
            }
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
    pthread_mutex_unlock(&b->sock_mu);
    return rc;
}

/* ---- the receive thread -------------------------------------------------------- */

static void s_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t s_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void s_send_sub(void *sock, const s_sub *s)
{
    unsigned char sid[8];
    s_put_le64(sid, s->sid);
    zmq_send(sock, "BRK1S", 5, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, sid, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, s->pattern, strlen(s->pattern), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, s->queue, strlen(s->queue), ZMQ_DONTWAIT);
}

/* Delivers one record of a BRK1D batch. */
static void s_deliver_one(svc_broker *b, uint64_t sid, const char *t, size_t tl, const void *body,
                          size_t bl, const void *mdata, size_t ml)
{
    pthread_mutex_lock(&b->mu);
    s_sub *s = b->subs;
    while (s && s->sid != sid)
        s = s->next;
    svc_sub_fn fn = s ? s->fn : NULL;
    void *arg = s ? s->arg : NULL;
    pthread_mutex_unlock(&b->mu);
    if (!fn || tl > SVC__TOPIC_MAX)
        return;   /* unsubscribed meanwhile */
    char topic[SVC__TOPIC_MAX + 1];
    memcpy(topic, t, tl);
    topic[tl] = 0;
    svc_meta meta = SVC_META_INIT;
    char *ct = NULL;
    if (ml) {
        Svc__Broker__Meta *m = svc__broker__meta__unpack(NULL, ml, mdata);
        if (m) {
            ct = strdup(m->content_type);
            for (size_t i = 0; i < m->n_metadata; i++)
                svc_meta_set(&meta, m->metadata[i]->key, m->metadata[i]->value);
            svc__broker__meta__free_unpacked(m, NULL);
        }
    }
    svc_message msg = { topic, body, bl, ct ? ct : "", &meta, sid };
    atomic_fetch_add(&b->delivered, 1);
    fn(&msg, arg);
    free(ct);
    svc_meta_release(&meta);
}

/* A BRK1D message: frame 1 holds delivery records (libsvc/brk1.h). */
static void s_on_deliver(svc_broker *b, zmq_msg_t *f, int n)
{
    if (n != 2)
        return;
    const unsigned char *p = zmq_msg_data(&f[1]);
    size_t len = zmq_msg_size(&f[1]), off = 0;
    svc__brk1_msg m;
    while (svc__brk1_next_delivery(p, len, &off, &m) > 0)   /* malformed: brokerd never sends it */
        s_deliver_one(b, m.sid, m.topic, m.tlen, m.body, m.blen, m.meta, m.mlen);
}

/* An answer to SUB/UNSUB (BRK1A / BRK1E): wakes the waiting caller. */
static void s_on_answer(svc_broker *b, bool ok, zmq_msg_t *f, int n)
{
    if (n < 1 || zmq_msg_size(&f[0]) != 13)
        return;
    pthread_mutex_lock(&b->mu);
    b->answer_sid = s_le64((unsigned char *)zmq_msg_data(&f[0]) + 5);
    b->answer_code = ok ? 0 : 500;
    b->answer_detail[0] = 0;
    if (!ok && n >= 3) {
        char c[16];
        size_t cl = zmq_msg_size(&f[1]) < 15 ? zmq_msg_size(&f[1]) : 15;
        memcpy(c, zmq_msg_data(&f[1]), cl);
        c[cl] = 0;
        b->answer_code = atoi(c) ? atoi(c) : 500;
        snprintf(b->answer_detail, sizeof b->answer_detail, "%.*s",
                 (int)zmq_msg_size(&f[2]), (const char *)zmq_msg_data(&f[2]));
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

typedef struct s_rx {
    void *sock;           /* subscription DEALER */
    uint64_t instance;    /* brokerd instance seen last; 0 = none yet */
} s_rx;

/* BRK1H from brokerd (probe or answer to our ping): resubscribe after a restart. */
static void s_on_ping(svc_broker *b, s_rx *rx, zmq_msg_t *f, int n)
{
    if (n < 1 || zmq_msg_size(&f[0]) != 13)
        return;
    uint64_t inst = s_le64((unsigned char *)zmq_msg_data(&f[0]) + 5);
    if (rx->instance && inst != rx->instance) {
        svc_info("brokerd restarted; subscribing again");
        pthread_mutex_lock(&b->mu);
        for (s_sub *s = b->subs; s; s = s->next)
            s_send_sub(rx->sock, s);
        pthread_mutex_unlock(&b->mu);
    }
    rx->instance = inst;
}

static void s_on_input(svc_broker *b, s_rx *rx)
{
    for (int k = 0; k < 1024; k++) {
        zmq_msg_t f[5];
        int n = 0;
        bool more = true;
        while (more) {
            zmq_msg_t *m = &f[n < 5 ? n : 4];
            if (n >= 5)
                zmq_msg_close(m);
            zmq_msg_init(m);
            if (zmq_msg_recv(m, rx->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(m);
                if (n == 0)
                    return;
                break;
            }
            more = zmq_msg_more(m);
            if (n < 5)
                n++;
        }
        const char *cmd = zmq_msg_size(&f[0]) >= 5 ? zmq_msg_data(&f[0]) : "";
        if (n && zmq_msg_size(&f[0]) == 5 && memcmp(cmd, "BRK1D", 5) == 0)
            s_on_deliver(b, f, n);
        else if (n && memcmp(cmd, "BRK1A", 5) == 0)
            s_on_answer(b, true, f, n);
        else if (n && memcmp(cmd, "BRK1E", 5) == 0)
            s_on_answer(b, false, f, n);
        else if (n && memcmp(cmd, "BRK1H", 5) == 0)
            s_on_ping(b, rx, f, n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
}

/* A command from another thread: forward SUB/UNSUB frames to brokerd, or stop. */
static bool s_on_cmd(svc_broker *b, s_rx *rx)
{
    bool first = true;   /* a command's first frame: "BRK1?" to forward, or "" to stop */
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, b->cmd_recv, first ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            return true;
        }
        bool more = zmq_msg_more(&m);
        bool stop = first && zmq_msg_size(&m) == 0;
        if (!stop)
            zmq_msg_send(&m, rx->sock, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (stop)
            return false;
        first = !more;
    }
}

static void *s_thread(void *arg)
{
    svc_broker *b = arg;
    s_rx rx = { .sock = s_dealer(b->address, false), .instance = 0 };
    if (!rx.sock)
        return NULL;
    zmq_pollitem_t items[2] = {
        { rx.sock, 0, ZMQ_POLLIN, 0 },
        { b->cmd_recv, 0, ZMQ_POLLIN, 0 },
    };
    int64_t next_ping = 0;
    bool run = true;
    while (run) {
        int64_t now = svc__now_ms();
        if (now >= next_ping) {
            zmq_send(rx.sock, "BRK1H", 5, ZMQ_DONTWAIT);
            next_ping = now + S_PING_MS;
        }
        if (zmq_poll(items, 2, S_PING_MS) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_on_input(b, &rx);
        if (items[1].revents & ZMQ_POLLIN)
            run = s_on_cmd(b, &rx);
    }
    zmq_close(rx.sock);
    return NULL;
}

/* Starts the receive thread on first use (mu held). */
static int s_start(svc_broker *b)
{
    if (b->thread_running)
        return 0;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://svc-broker-%p", (void *)b);
    b->cmd_recv = svc__socket(ZMQ_PAIR);
    b->cmd_send = svc__socket(ZMQ_PAIR);
    if (!b->cmd_recv || !b->cmd_send || zmq_bind(b->cmd_recv, ep) < 0 ||
        zmq_connect(b->cmd_send, ep) < 0)
        return -ENOMEM;
    int rc = pthread_create(&b->thread, NULL, s_thread, b);
    if (rc)
        return -rc;
    b->thread_running = true;
    return 0;
}

/* Sends frames to the thread as one command (cmd_mu). */
static void s_cmd(svc_broker *b, const char *const *frames, const size_t *lens, int n)
{
    pthread_mutex_lock(&b->cmd_mu);
    for (int i = 0; i < n; i++)
        zmq_send(b->cmd_send, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
    pthread_mutex_unlock(&b->cmd_mu);
}

/* Waits (mu held) for brokerd's answer about sid; returns its code or -1 on timeout. */
static int s_wait_answer(svc_broker *b, uint64_t sid, char *detail, size_t dlen)
{
    int64_t end = svc__now_ms() + S_SUB_TIMEOUT_MS;
    while (b->answer_sid != sid) {
        int64_t left = end - svc__now_ms();
        if (left <= 0)
            return -1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    snprintf(detail, dlen, "%s", b->answer_detail);
    return b->answer_code;
}

int svc_broker_subscribe(svc_broker *b, const char *pattern, const char *queue, svc_sub_fn fn,
                         void *arg, uint64_t *sid_out)
{
    if (!pattern || !fn || !svc__topic_valid(pattern, strlen(pattern), true) ||
        (queue && *queue && !svc__topic_valid(queue, strlen(queue), false)))
        return SVC_EINVAL;
    int rc = svc_broker_connect(b, NULL);
    if (rc < 0)
        return rc;
    s_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->pattern = strdup(pattern);
    s->queue = strdup(queue ? queue : "");
    s->fn = fn;
    s->arg = arg;
    if (!s->pattern || !s->queue) {
        free(s->pattern);
        free(s->queue);
        free(s);
        return -ENOMEM;
    }
    pthread_mutex_lock(&b->mu);
    if ((rc = s_start(b)) < 0) {
        pthread_mutex_unlock(&b->mu);
        free(s->pattern);
        free(s->queue);
        free(s);
        return rc;
    }
    s->sid = ++b->next_sid;
    s->next = b->subs;
    b->subs = s;
    unsigned char sid[8];
    s_put_le64(sid, s->sid);
    const char *fr[4] = { "BRK1S", (const char *)sid, s->pattern, s->queue };
    size_t ln[4] = { 5, 8, strlen(s->pattern), strlen(s->queue) };
    pthread_mutex_unlock(&b->mu);
    s_cmd(b, fr, ln, 4);
    pthread_mutex_lock(&b->mu);
    char detail[256];
    int code = s_wait_answer(b, s->sid, detail, sizeof detail);
    uint64_t id = s->sid;
    if (code != 0) {
        for (s_sub **pp = &b->subs; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        free(s->pattern);
        free(s->queue);
        free(s);
        if (code > 0)
            svc_warn("subscribe refused\tpattern=\"%s\" code=%d detail=\"%s\"", pattern, code, detail);
    }
    pthread_mutex_unlock(&b->mu);
    if (code < 0)
        return SVC_ETIMEOUT;
    if (code > 0)
        return SVC_EREMOTE;
    if (sid_out)
        *sid_out = id;
    return 0;
}

int svc_broker_unsubscribe(svc_broker *b, uint64_t sid)
{
    pthread_mutex_lock(&b->mu);
    s_sub *s = NULL;
    for (s_sub **pp = &b->subs; *pp; pp = &(*pp)->next)
        if ((*pp)->sid == sid) {
            s = *pp;
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&b->mu);
    if (!s)
        return SVC_ENOTFOUND;
    free(s->pattern);
    free(s->queue);
    free(s);
    unsigned char id[8];
    s_put_le64(id, sid);
    const char *fr[2] = { "BRK1U", (const char *)id };
    size_t ln[2] = { 5, 8 };
    s_cmd(b, fr, ln, 2);
    return 0;
}

uint64_t svc_broker_published(const svc_broker *b)
{
    return atomic_load(&((svc_broker *)b)->published);
}

uint64_t svc_broker_delivered(const svc_broker *b)
{
    return atomic_load(&((svc_broker *)b)->delivered);
}

void svc_broker_destroy(svc_broker **bp)
{
    svc_broker *b = *bp;
    if (!b)
        return;
    *bp = NULL;
    if (b->thread_running) {
        const char *fr[1] = { "" };
        size_t ln[1] = { 0 };
        s_cmd(b, fr, ln, 1);
        pthread_join(b->thread, NULL);
    }
    if (b->fl_running) {   /* sends what is still gathered, then ends */
        pthread_mutex_lock(&b->pub_mu);
        b->fl_stop = true;
        pthread_cond_signal(&b->pub_cv);
        pthread_mutex_unlock(&b->pub_mu);
        pthread_join(b->fl_thread, NULL);
    }
    svc__socket_close(&b->cmd_send);
    svc__socket_close(&b->cmd_recv);
    svc__socket_close(&b->pub);
    free(b->pbuf);
    free(b->pspare);
    while (b->subs) {
        s_sub *s = b->subs;
        b->subs = s->next;
        free(s->pattern);
        free(s->queue);
        free(s);
    }
    free(b->registry);
    free(b->address);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->pub_mu);
    pthread_mutex_destroy(&b->sock_mu);
    pthread_cond_destroy(&b->pub_cv);
    pthread_cond_destroy(&b->room_cv);
    pthread_mutex_destroy(&b->cmd_mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
