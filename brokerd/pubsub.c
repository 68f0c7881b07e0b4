/*
 * brokerd/pubsub.c — the BRK1 pub/sub thread: subscriptions, queue groups,
 * fan-out with bounded per-connection queues.
 *
 * All state below belongs to the thread; `mu` is held while the thread
 * works through a batch of input and by brk_pubsub_stats, so stats read a
 * consistent picture without slowing the hot path by more than one
 * uncontended lock per batch.
 */
#include "pubsub.h"
#include "api.h"
#include "topic.h"
#include "brk1.h"
#include "clock.h"
#include "zctx.h"
#include "svc/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_RID_MAX     256     /* ZeroMQ routing ids are at most 255 bytes */
#define S_BATCH       1024    /* messages handled per lock of mu */
#define S_PROBE_MS    2000    /* how often connections with subscriptions are probed */
#define S_MAX_SUBS_PER_PEER 10000
#define S_QUEUE_MAX   64
#define S_REC_HEAD    18      /* delivery record: sid(8) topic_len(2) body_len(4) meta_len(4) */
#define S_OUT_MAX_RECORDS 256 /* records per delivery batch */
#define S_OUT_MAX_BYTES 65536 /* bytes per delivery batch (a bigger record goes alone) */
#define S_META_MAX    65536

typedef struct s_peer {
    unsigned char rid[S_RID_MAX];  /* routing id */
    size_t rid_len;                /* its length */
    uint64_t delivered;            /* messages sent to it */
    uint64_t dropped;              /* messages dropped: its queue was full */
    size_t n_subs;                 /* subscriptions it holds */
    bool dead;                     /* a send found it gone: remove after the batch */
    bool full;                     /* its last batch found the queue full */
    unsigned char *out;            /* delivery batch being built, owned */
    size_t out_len, out_cap;       /* bytes used / allocated */
    uint32_t out_n;                /* records in it */
} s_peer;

typedef struct s_sub {
    s_peer *peer;                  /* owning connection */
    uint64_t sid;                  /* subscription id chosen by the client */
    char *pattern;                 /* topic pattern, owned */
    char *queue;                   /* queue group, "" for none, owned */
    int group;                     /* index into groups, -1 when no queue */
    uint64_t delivered;            /* messages sent to this subscription */
    uint64_t dropped;              /* messages for it dropped */
    uint32_t queued;               /* records for it in its connection's current batch */
} s_sub;

typedef struct s_group {
    char *pattern;                 /* borrowed from a member */
    char *queue;                   /* borrowed from a member */
    unsigned next;                 /* round-robin cursor */
    unsigned hit;                  /* batch stamp: matched by the current message */
} s_group;

struct brk_pubsub {
    void *zctx;                    /* own context: one I/O thread for the data path */
    void *router;                  /* the BRK1 socket */
    void *ctl_recv, *ctl_send;     /* inproc PAIR: "S" stop, "W" acks waiting; ctl_send under wake_mu */
    pthread_mutex_t wake_mu;
    brk_backend *backend;          /* event store for BRK1W, NULL once detached (under mu) */
    pthread_mutex_t ack_mu;        /* the finished durable publishes below */
    struct s_wop *acks, *acks_tail;
    atomic_long inflight;          /* durable publishes submitted, not yet answered */
    atomic_long inflight_bytes;    /* their body bytes */
    struct s_deferred *deferred;   /* acks waiting for room in their connection's queue */
    char *address;                 /* bound endpoint */
    size_t max_payload;
    uint64_t instance;             /* random per start: lets clients notice a restart */
    pthread_t thread;
    pthread_mutex_t mu;            /* the tables below */

    s_peer **peers;                /* connections with subscriptions */
    size_t n_peers, cap_peers;
    s_sub *subs;                   /* every subscription */
    size_t n_subs, cap_subs;
    s_group *groups;               /* rebuilt when subscriptions change */
    size_t n_groups;
    unsigned stamp;                /* per-message stamp for group hits */

    uint64_t published, delivered, dropped, unrouted, rejected;
};

/* ---- tables ------------------------------------------------------------------ */

static s_peer *s_peer_find(brk_pubsub *ps, const void *rid, size_t len)
{
    for (size_t i = 0; i < ps->n_peers; i++)
        if (ps->peers[i]->rid_len == len && memcmp(ps->peers[i]->rid, rid, len) == 0)
            return ps->peers[i];
    return NULL;
}

static s_peer *s_peer_get(brk_pubsub *ps, const void *rid, size_t len)
{
    s_peer *p = s_peer_find(ps, rid, len);
    if (p || len > S_RID_MAX)
        return p;
    if (ps->n_peers == ps->cap_peers) {
        size_t cap = ps->cap_peers ? ps->cap_peers * 2 : 16;
        s_peer **n = realloc(ps->peers, cap * sizeof *n);
        if (!n)
            return NULL;
        ps->peers = n;
        ps->cap_peers = cap;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->rid, rid, len);
    p->rid_len = len;
    ps->peers[ps->n_peers++] = p;
    return p;
}

/* Groups index subscriptions sharing (pattern, queue); rebuilt on every change. */
static int s_groups_rebuild(brk_pubsub *ps)
{
    free(ps->groups);
    ps->groups = calloc(ps->n_subs ? ps->n_subs : 1, sizeof *ps->groups);
    ps->n_groups = 0;
    if (!ps->groups)
        return -ENOMEM;
    for (size_t i = 0; i < ps->n_subs; i++) {
        s_sub *s = &ps->subs[i];
        s->group = -1;
        if (!s->queue[0])
            continue;
        for (size_t g = 0; g < ps->n_groups; g++)
            if (strcmp(ps->groups[g].pattern, s->pattern) == 0 &&
                strcmp(ps->groups[g].queue, s->queue) == 0)
                s->group = (int)g;
        if (s->group < 0) {
            ps->groups[ps->n_groups] = (s_group){ s->pattern, s->queue, 0, 0 };
            s->group = (int)ps->n_groups++;
        }
    }
    return 0;
}

static void s_sub_remove_at(brk_pubsub *ps, size_t i)
{
    ps->subs[i].peer->n_subs--;
    free(ps->subs[i].pattern);
    free(ps->subs[i].queue);
    ps->subs[i] = ps->subs[--ps->n_subs];
}

static void s_flush_all(brk_pubsub *ps);

/* Drops peers marked dead (and their subscriptions), and peers with none left. */
static void s_reap(brk_pubsub *ps)
{
    s_flush_all(ps);
    bool changed = false;
    for (size_t i = 0; i < ps->n_subs;) {
        if (ps->subs[i].peer->dead) {
            s_sub_remove_at(ps, i);
            changed = true;
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < ps->n_peers;) {
        if (ps->peers[i]->dead || ps->peers[i]->n_subs == 0) {
            free(ps->peers[i]->out);
            free(ps->peers[i]);
            ps->peers[i] = ps->peers[--ps->n_peers];
        } else {
            i++;
        }
    }
    if (changed)
        s_groups_rebuild(ps);
}

/* ---- sending ------------------------------------------------------------------- */

static void s_put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void s_reply(brk_pubsub *ps, const void *rid, size_t rid_len, const char *cmd,
                    uint64_t sid, int code, const char *detail)
{
    if (zmq_send(ps->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    unsigned char head[13];
    memcpy(head, cmd, 5);
    for (int i = 0; i < 8; i++)
        head[5 + i] = (unsigned char)(sid >> (8 * i));
    if (!code) {
        zmq_send(ps->router, head, sizeof head, ZMQ_DONTWAIT);
        return;
    }
    char c[16];
    snprintf(c, sizeof c, "%d", code);
    zmq_send(ps->router, head, sizeof head, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(ps->router, c, strlen(c), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(ps->router, detail, strlen(detail), ZMQ_DONTWAIT);
}

/*
 * Sends p's pending delivery batch as one BRK1D message and settles the
 * counters of the subscriptions in it: delivered when ZeroMQ took it,
 * dropped when p's queue was full, forgotten when p is gone.
 */
static void s_flush_peer(brk_pubsub *ps, s_peer *p)
{
    if (!p->out_n)
        return;
    int rc = 0;
    if (zmq_send(ps->router, p->rid, p->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        rc = -errno;
    } else {
        /* After the routing id is accepted the rest of the message always is. */
        zmq_send(ps->router, "BRK1D", 5, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(ps->router, p->out, p->out_len, ZMQ_DONTWAIT);
    }
    if (rc == -EHOSTUNREACH)
        p->dead = true;
    p->full = rc == -EAGAIN;
    for (size_t i = 0; i < ps->n_subs; i++) {
        s_sub *s = &ps->subs[i];
        if (s->peer != p || !s->queued)
            continue;
        if (rc == 0)
            s->delivered += s->queued;
        else if (rc == -EAGAIN)
            s->dropped += s->queued;
        s->queued = 0;
    }
    if (rc == 0) {
        p->delivered += p->out_n;
        ps->delivered += p->out_n;
    } else if (rc == -EAGAIN) {
        p->dropped += p->out_n;
        ps->dropped += p->out_n;
    }
    p->out_len = 0;
    p->out_n = 0;
}

/* Sends every pending batch; before the subscription table changes and at each turn's end. */
static void s_flush_all(brk_pubsub *ps)
{
    for (size_t i = 0; i < ps->n_peers; i++)
        s_flush_peer(ps, ps->peers[i]);
}

/* One message being routed. */
typedef struct s_msg {
    const char *topic;
    size_t tlen;
    const void *body;
    size_t blen;
    const void *meta;
    size_t mlen;
} s_msg;

/* Appends m to s's connection batch (sent at the turn's end, or when the batch is full). */
static void s_deliver(brk_pubsub *ps, s_sub *s, const s_msg *m)
{
    s_peer *p = s->peer;
    size_t need = S_REC_HEAD + m->tlen + m->blen + m->mlen;
    if (p->out_n && (p->out_len + need > S_OUT_MAX_BYTES || p->out_n >= S_OUT_MAX_RECORDS))
        s_flush_peer(ps, p);
    if (p->out_len + need > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 4096;
        while (cap < p->out_len + need)
            cap *= 2;
        unsigned char *n = realloc(p->out, cap);
        if (!n) {
            s->dropped++;
            p->dropped++;
            ps->dropped++;
            return;
        }
        p->out = n;
        p->out_cap = cap;
    }
    unsigned char *h = p->out + p->out_len;
    for (int i = 0; i < 8; i++)
        h[i] = (unsigned char)(s->sid >> (8 * i));
    s_put16(h + 8, (uint32_t)m->tlen);
    s_put32(h + 10, (uint32_t)m->blen);
    s_put32(h + 14, (uint32_t)m->mlen);
    memcpy(h + S_REC_HEAD, m->topic, m->tlen);
    memcpy(h + S_REC_HEAD + m->tlen, m->body, m->blen);
    if (m->mlen)
        memcpy(h + S_REC_HEAD + m->tlen + m->blen, m->meta, m->mlen);
    p->out_len += need;
    p->out_n++;
    s->queued++;
}

/* Picks the next member of group g whose connection is not known full (round robin). */
static void s_deliver_group(brk_pubsub *ps, int g, const s_msg *m)
{
    s_group *grp = &ps->groups[g];
    s_sub *members[S_QUEUE_MAX * 16];
    size_t n = 0;
    for (size_t i = 0; i < ps->n_subs && n < sizeof members / sizeof *members; i++)
        if (ps->subs[i].group == g && !ps->subs[i].peer->dead)
            members[n++] = &ps->subs[i];
    if (n == 0)
        return;
    unsigned start = grp->next++ % (unsigned)n;
    for (size_t k = 0; k < n; k++) {
        s_sub *s = members[(start + k) % n];
        if (!s->peer->full) {
            s_deliver(ps, s, m);
            return;
        }
    }
    s_deliver(ps, members[start], m);   /* all full: it will most likely be dropped */
}

/* Routes one message to every matching subscription and one member of each matching group. */
static void s_route(brk_pubsub *ps, const s_msg *m)
{
    ps->published++;
    unsigned stamp = ++ps->stamp;
    int hits[S_QUEUE_MAX];
    size_t n_hits = 0;
    bool any = false;
    for (size_t i = 0; i < ps->n_subs; i++) {
        s_sub *s = &ps->subs[i];
        if (s->peer->dead || !svc__topic_match(s->pattern, m->topic, m->tlen))
            continue;
        any = true;
        if (s->group < 0) {
            s_deliver(ps, s, m);
        } else if (ps->groups[s->group].hit != stamp && n_hits < S_QUEUE_MAX) {
            ps->groups[s->group].hit = stamp;
            hits[n_hits++] = s->group;
        }
    }
    for (size_t i = 0; i < n_hits; i++)
        s_deliver_group(ps, hits[i], m);
    if (!any)
        ps->unrouted++;
}

/* ---- commands ------------------------------------------------------------------- */

static uint64_t s_le64(const void *p)
{
    const unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

/* Checks one message's topic, body and meta; NULL when fine, else why (and *code). */
static const char *s_check(brk_pubsub *ps, const s_msg *m, int *code)
{
    *code = 400;
    if (!svc__topic_valid(m->topic, m->tlen, false))
        return "invalid topic";
    if (m->mlen > S_META_MAX)
        return "meta exceeds 65536 bytes";
    if (m->blen > ps->max_payload) {
        *code = 413;
        return "body exceeds the maximum payload";
    }
    return NULL;
}

static void s_refuse(brk_pubsub *ps, zmq_msg_t *rid, int code, const char *why)
{
    ps->rejected++;
    s_reply(ps, zmq_msg_data(rid), zmq_msg_size(rid), "BRK1E", 0, code, why);
}

/* PUB: topic, body [, meta]. */
static void s_on_pub(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *f, int n)
{
    if (n < 2 || n > 3) {
        s_refuse(ps, rid, 400, "publish needs topic, body and optional meta frames");
        return;
    }
    s_msg m = { zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), zmq_msg_data(&f[1]), zmq_msg_size(&f[1]),
                n == 3 ? zmq_msg_data(&f[2]) : NULL, n == 3 ? zmq_msg_size(&f[2]) : 0 };
    int code;
    const char *why = s_check(ps, &m, &code);
    if (why)
        s_refuse(ps, rid, code, why);
    else
        s_route(ps, &m);
}

/* BATCH: one frame of packed records (docs/broker.md 4.1); a framing error drops the rest. */
static void s_on_batch(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *f, int n)
{
    if (n != 1) {
        s_refuse(ps, rid, 400, "batch publish needs exactly one frame of records");
        return;
    }
    const unsigned char *b = zmq_msg_data(&f[0]);
    size_t len = zmq_msg_size(&f[0]), off = 0;
    svc__brk1_msg r;
    int rc;
    while ((rc = svc__brk1_next_pub(b, len, &off, &r)) > 0) {
        s_msg m = { r.topic, r.tlen, r.body, r.blen, r.meta, r.mlen };
        int code;
        const char *why = s_check(ps, &m, &code);
        if (why)
            s_refuse(ps, rid, code, why);   /* framing is intact: go on with the next */
        else
            s_route(ps, &m);
    }
    if (rc < 0)
        s_refuse(ps, rid, 400, "truncated or overrunning record in batch publish");
}

/* ---- durable publishes on the BRK1 socket (BRK1W / BRK1K) --------------------------- */

#define S_MAX_INFLIGHT 65536       /* durable publishes in flight at most; beyond: 503 */
#define S_MAX_INFLIGHT_BYTES (256L * 1024 * 1024)  /* and their bodies */

typedef struct s_wop {
    brk_op op;                     /* first: the backend completes this */
    brk_pubsub *ps;
    Svc__Broker__PublishRequest req;
    Svc__Broker__PublishResponse rsp;
    uint64_t req_id;               /* the client's id for the ack */
    unsigned char rid[S_RID_MAX];  /* connection to answer */
    size_t rid_len;
    struct s_wop *next;            /* acks list */
} s_wop;

static void s_wake(brk_pubsub *ps, const char *what)
{
    pthread_mutex_lock(&ps->wake_mu);
    zmq_send(ps->ctl_send, what, 1, ZMQ_DONTWAIT);
    pthread_mutex_unlock(&ps->wake_mu);
}

/* On the commit thread: the publish is durable (or failed); hand it to the pub/sub thread. */
static void s_wop_done(brk_op *op)
{
    s_wop *w = (s_wop *)op;
    brk_pubsub *ps = w->ps;
    w->next = NULL;
    pthread_mutex_lock(&ps->ack_mu);
    bool was_empty = !ps->acks;
    if (ps->acks_tail)
        ps->acks_tail->next = w;
    else
        ps->acks = w;
    ps->acks_tail = w;
    pthread_mutex_unlock(&ps->ack_mu);
    if (was_empty)
        s_wake(ps, "W");
}

/* Appends one ack record to buf (grown); false on out-of-memory. */
static bool s_ack_rec(unsigned char **buf, size_t *len, size_t *cap, uint64_t req_id, uint64_t seq,
                      int code, bool dup, const char *detail)
{
    size_t dl = code ? strlen(detail) : 0;
    if (dl > 1024)
        dl = 1024;
    size_t need = 21 + dl;
    if (*len + need > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *len + need)
            c *= 2;
        unsigned char *n = realloc(*buf, c);
        if (!n)
            return false;
        *buf = n;
        *cap = c;
    }
    unsigned char *h = *buf + *len;
    for (int i = 0; i < 8; i++) {
        h[i] = (unsigned char)(req_id >> (8 * i));
        h[8 + i] = (unsigned char)(seq >> (8 * i));
    }
    s_put16(h + 16, (uint32_t)code);
    h[18] = dup;
    s_put16(h + 19, (uint32_t)dl);
    memcpy(h + 21, detail, dl);
    *len += need;
    return true;
}

/* Acks a connection's queue could not take yet; sent again each turn (in order). */
typedef struct s_deferred {
    unsigned char rid[S_RID_MAX];
    size_t rid_len;
    unsigned char *buf;            /* ack records, owned */
    size_t len;
    long n;                        /* acks in it: still counted in inflight */
    struct s_deferred *next;
} s_deferred;

/* Tries to send; 0 sent, -EAGAIN queue full, other -errno: connection gone. */
static int s_try_acks(brk_pubsub *ps, const unsigned char *rid, size_t rl, const unsigned char *buf,
                      size_t len)
{
    if (zmq_send(ps->router, rid, rl, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -errno;
    zmq_send(ps->router, "BRK1K", 5, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(ps->router, buf, len, ZMQ_DONTWAIT);
    return 0;
}

static bool s_has_deferred(brk_pubsub *ps, const unsigned char *rid, size_t rl)
{
    for (s_deferred *d = ps->deferred; d; d = d->next)
        if (d->rid_len == rl && memcmp(d->rid, rid, rl) == 0)
            return true;
    return false;
}

/*
 * Sends n acks to a connection.  Acks of finished publishes (defer) that its
 * full queue cannot take wait in the deferred list, still counted in
 * inflight (which bounds them); immediate refusals are just dropped then.
 */
static void s_send_acks_to(brk_pubsub *ps, const unsigned char *rid, size_t rl,
                           const unsigned char *buf, size_t len, long n, bool defer)
{
    if (!len)
        return;
    int rc = s_has_deferred(ps, rid, rl) ? -EAGAIN : s_try_acks(ps, rid, rl, buf, len);
    s_deferred *d = rc == -EAGAIN && defer && rl <= S_RID_MAX ? malloc(sizeof *d) : NULL;
    if (d && !(d->buf = malloc(len))) {
        free(d);
        d = NULL;
    }
    if (!d) {
        if (defer)
            atomic_fetch_sub(&ps->inflight, n);   /* sent, or lost: the client times out */
        return;
    }
    memcpy(d->rid, rid, rl);
    d->rid_len = rl;
    memcpy(d->buf, buf, len);
    d->len = len;
    d->n = n;
    d->next = NULL;
    s_deferred **t = &ps->deferred;
    while (*t)
        t = &(*t)->next;
    *t = d;
}

/* Sends deferred acks whose connections have room now. */
static void s_flush_deferred(brk_pubsub *ps)
{
    s_deferred **pp = &ps->deferred;
    unsigned char blocked[16][S_RID_MAX];
    size_t blocked_len[16], n_blocked = 0;
    while (*pp) {
        s_deferred *d = *pp;
        bool skip = false;
        for (size_t i = 0; i < n_blocked; i++)
            skip |= blocked_len[i] == d->rid_len && memcmp(blocked[i], d->rid, d->rid_len) == 0;
        int rc = skip ? -EAGAIN : s_try_acks(ps, d->rid, d->rid_len, d->buf, d->len);
        if (rc == -EAGAIN) {
            if (!skip && n_blocked < 16) {   /* keep this connection's acks in order */
                memcpy(blocked[n_blocked], d->rid, d->rid_len);
                blocked_len[n_blocked++] = d->rid_len;
            }
            pp = &d->next;
            continue;
        }
        atomic_fetch_sub(&ps->inflight, d->n);
        *pp = d->next;
        free(d->buf);
        free(d);
    }
}

/* Sends the acks of finished durable publishes, one BRK1K per run of one connection. */
static void s_send_acks(brk_pubsub *ps)
{
    pthread_mutex_lock(&ps->ack_mu);
    s_wop *w = ps->acks;
    ps->acks = ps->acks_tail = NULL;
    pthread_mutex_unlock(&ps->ack_mu);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    long n = 0;
    s_wop *cur = NULL;
    while (w) {
        s_wop *nx = w->next;
        if (cur && (cur->rid_len != w->rid_len || memcmp(cur->rid, w->rid, w->rid_len) != 0 ||
                    len > 60000)) {
            s_send_acks_to(ps, cur->rid, cur->rid_len, buf, len, n, true);
            len = 0;
            n = 0;
        }
        s_ack_rec(&buf, &len, &cap, w->req_id, w->rsp.seq, w->op.code, w->rsp.duplicate,
                  w->op.detail);
        n++;
        if (cur)
            free(cur);
        cur = w;
        atomic_fetch_sub(&ps->inflight_bytes, (long)w->req.body.len);
        w = nx;
    }
    if (cur) {
        s_send_acks_to(ps, cur->rid, cur->rid_len, buf, len, n, true);
        free(cur);
    }
    free(buf);
}

/* WRITE: one frame of durable publish records; each is answered in a BRK1K after commit. */
static void s_on_write(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *f, int n)
{
    if (n != 1) {
        s_refuse(ps, rid, 400, "durable publish needs exactly one frame of records");
        return;
    }
    const unsigned char *b = zmq_msg_data(&f[0]);
    size_t len = zmq_msg_size(&f[0]), off = 0, rl = zmq_msg_size(rid);
    unsigned char *now_buf = NULL;   /* immediate answers (refusals) */
    size_t now_len = 0, now_cap = 0;
    svc__brk1_write wr;
    int prc;
    while ((prc = svc__brk1_next_write(b, len, &off, &wr)) > 0) {
        uint64_t req_id = wr.req_id;
        size_t sl = wr.len[0], il = wr.len[1], tl = wr.len[2], cl = wr.len[3], bl = wr.blen;
        size_t total = sl + il + tl + cl;
        const unsigned char *d = (const unsigned char *)wr.str[0];
        if (!ps->backend || atomic_load(&ps->inflight) >= S_MAX_INFLIGHT ||
            atomic_load(&ps->inflight_bytes) >= S_MAX_INFLIGHT_BYTES || rl > S_RID_MAX) {
            s_ack_rec(&now_buf, &now_len, &now_cap, req_id, 0, 503, false,
                      ps->backend ? "too many durable publishes in flight" : "svc.broker is stopping");
            continue;
        }
        s_wop *w = malloc(sizeof *w + total + 4 + bl);
        if (!w) {
            s_ack_rec(&now_buf, &now_len, &now_cap, req_id, 0, 500, false, "out of memory");
            continue;
        }
        memset(w, 0, sizeof *w);
        char *str = (char *)(w + 1);
        svc__broker__publish_request__init(&w->req);
        svc__broker__publish_response__init(&w->rsp);
        const size_t lens[4] = { sl, il, tl, cl };
        char **dst[4] = { &w->req.stream, &w->req.id, &w->req.topic, &w->req.content_type };
        for (int k = 0; k < 4; k++) {
            memcpy(str, d, lens[k]);
            str[lens[k]] = 0;
            *dst[k] = str;
            str += lens[k] + 1;
            d += lens[k];
        }
        memcpy(str, d, bl);
        w->req.body.data = (uint8_t *)str;
        w->req.body.len = bl;
        char detail[256];
        int code = 0;
        for (int k = 0; k < 4 && !code; k++)
            if (strlen(*dst[k]) != lens[k]) {
                code = 400;
                snprintf(detail, sizeof detail, "NUL inside a string of a durable publish");
            }
        if (!code)
            code = brk_api_check_publish(&w->req, (uint32_t)ps->max_payload, detail, sizeof detail);
        if (code) {
            s_ack_rec(&now_buf, &now_len, &now_cap, req_id, 0, code, false, detail);
            free(w);
            continue;
        }
        w->ps = ps;
        w->req_id = req_id;
        memcpy(w->rid, zmq_msg_data(rid), rl);
        w->rid_len = rl;
        w->op.kind = BRK_OP_PUBLISH;
        w->op.req = &w->req.base;
        w->op.rsp = &w->rsp.base;
        w->op.done = s_wop_done;
        w->op.arg = w;
        atomic_fetch_add(&ps->inflight, 1);
        atomic_fetch_add(&ps->inflight_bytes, (long)bl);
        ps->backend->vt->submit(ps->backend, &w->op);
    }
    if (prc < 0)
        s_refuse(ps, rid, 400, "truncated or overrunning record in durable publish");
    s_send_acks_to(ps, zmq_msg_data(rid), rl, now_buf, now_len, 0, false);
    free(now_buf);
}

void brk_pubsub_detach_backend(brk_pubsub *ps)
{
    pthread_mutex_lock(&ps->mu);
    ps->backend = NULL;
    pthread_mutex_unlock(&ps->mu);
}

static char *s_str(zmq_msg_t *m)
{
    char *s = malloc(zmq_msg_size(m) + 1);
    if (s) {
        memcpy(s, zmq_msg_data(m), zmq_msg_size(m));
        s[zmq_msg_size(m)] = 0;
    }
    return s;
}

/* SUB: sid(8), pattern, queue. */
static void s_on_sub(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *f, int n)
{
    s_flush_all(ps);
    const void *r = zmq_msg_data(rid);
    size_t rl = zmq_msg_size(rid);
    if (n != 3 || zmq_msg_size(&f[0]) != 8) {
        ps->rejected++;
        s_reply(ps, r, rl, "BRK1E", 0, 400, "subscribe needs sid, topic and queue frames");
        return;
    }
    uint64_t sid = s_le64(zmq_msg_data(&f[0]));
    const char *pat = zmq_msg_data(&f[1]);
    size_t plen = zmq_msg_size(&f[1]), qlen = zmq_msg_size(&f[2]);
    if (!svc__topic_valid(pat, plen, true)) {
        s_reply(ps, r, rl, "BRK1E", sid, 400, "invalid topic pattern");
        return;
    }
    if (qlen && !svc__topic_valid(zmq_msg_data(&f[2]), qlen, false)) {
        s_reply(ps, r, rl, "BRK1E", sid, 400, "invalid queue group name");
        return;
    }
    s_peer *p = s_peer_get(ps, r, rl);
    if (!p || p->n_subs >= S_MAX_SUBS_PER_PEER) {
        s_reply(ps, r, rl, "BRK1E", sid, p ? 429 : 500,
                p ? "too many subscriptions on this connection" : "out of memory");
        return;
    }
    for (size_t i = 0; i < ps->n_subs; i++)
        if (ps->subs[i].peer == p && ps->subs[i].sid == sid) {
            s_reply(ps, r, rl, "BRK1E", sid, 409, "subscription id already in use");
            return;
        }
    if (ps->n_subs == ps->cap_subs) {
        size_t cap = ps->cap_subs ? ps->cap_subs * 2 : 16;
        s_sub *ns = realloc(ps->subs, cap * sizeof *ns);
        if (!ns) {
            s_reply(ps, r, rl, "BRK1E", sid, 500, "out of memory");
            return;
        }
        ps->subs = ns;
        ps->cap_subs = cap;
    }
    s_sub *s = &ps->subs[ps->n_subs];
    *s = (s_sub){ .peer = p, .sid = sid, .pattern = s_str(&f[1]), .queue = s_str(&f[2]) };
    if (!s->pattern || !s->queue) {
        free(s->pattern);
        free(s->queue);
        s_reply(ps, r, rl, "BRK1E", sid, 500, "out of memory");
        return;
    }
    ps->n_subs++;
    p->n_subs++;
    s_groups_rebuild(ps);
    s_reply(ps, r, rl, "BRK1A", sid, 0, NULL);
}

/* UNSUB: sid(8). */
static void s_on_unsub(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *f, int n)
{
    s_flush_all(ps);
    const void *r = zmq_msg_data(rid);
    size_t rl = zmq_msg_size(rid);
    if (n != 1 || zmq_msg_size(&f[0]) != 8) {
        ps->rejected++;
        s_reply(ps, r, rl, "BRK1E", 0, 400, "unsubscribe needs a sid frame");
        return;
    }
    uint64_t sid = s_le64(zmq_msg_data(&f[0]));
    s_peer *p = s_peer_find(ps, r, rl);
    for (size_t i = 0; p && i < ps->n_subs; i++) {
        if (ps->subs[i].peer == p && ps->subs[i].sid == sid) {
            s_sub_remove_at(ps, i);
            s_groups_rebuild(ps);
            s_reap(ps);
            s_reply(ps, r, rl, "BRK1A", sid, 0, NULL);
            return;
        }
    }
    s_reply(ps, r, rl, "BRK1E", sid, 404, "no such subscription");
}

/* PING: answered with the broker instance so a client notices a restart. */
static void s_on_ping(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *f, int n)
{
    s_reply(ps, zmq_msg_data(rid), zmq_msg_size(rid), "BRK1H", ps->instance, 0, NULL);
}

typedef struct s_cmd {
    const char *name;   /* the 5-octet first frame */
    void (*fn)(brk_pubsub *ps, zmq_msg_t *rid, zmq_msg_t *frames, int n);
} s_cmd;

static const s_cmd s_cmds[] = {
    { "BRK1P", s_on_pub },
    { "BRK1B", s_on_batch },
    { "BRK1W", s_on_write },
    { "BRK1S", s_on_sub },
    { "BRK1U", s_on_unsub },
    { "BRK1H", s_on_ping },
    { NULL, NULL },
};

#define S_MAX_FRAMES 6

/* Receives one whole message and dispatches it; false when nothing was waiting. */
static bool s_handle_one(brk_pubsub *ps)
{
    zmq_msg_t rid, cmd, f[S_MAX_FRAMES];
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, ps->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&rid);
        return false;
    }
    zmq_msg_init(&cmd);
    int n = 0;
    bool more = zmq_msg_more(&rid), too_many = false, has_cmd = false;
    if (more) {
        zmq_msg_recv(&cmd, ps->router, 0);
        has_cmd = true;
        more = zmq_msg_more(&cmd);
    }
    while (more) {
        zmq_msg_t *m = n < S_MAX_FRAMES ? &f[n] : &f[S_MAX_FRAMES - 1];
        if (n >= S_MAX_FRAMES) {
            zmq_msg_close(m);
            too_many = true;
        } else {
            n++;
        }
        zmq_msg_init(m);
        zmq_msg_recv(m, ps->router, 0);
        more = zmq_msg_more(m);
    }
    const s_cmd *c = NULL;
    if (has_cmd && zmq_msg_size(&cmd) == 5)
        for (c = s_cmds; c->name && memcmp(c->name, zmq_msg_data(&cmd), 5) != 0; c++)
            ;
    if (!c || !c->name || too_many) {
        ps->rejected++;
        s_reply(ps, zmq_msg_data(&rid), zmq_msg_size(&rid), "BRK1E", 0, 400,
                too_many ? "too many frames" : "unknown command: want BRK1P, BRK1S, BRK1U or BRK1H");
    } else {
        c->fn(ps, &rid, f, n);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    zmq_msg_close(&cmd);
    zmq_msg_close(&rid);
    return true;
}

/* Sends a probe to every connection with subscriptions; a gone one is reaped. */
static void s_probe(brk_pubsub *ps)
{
    s_flush_all(ps);
    for (size_t i = 0; i < ps->n_peers; i++) {
        s_peer *p = ps->peers[i];
        if (zmq_send(ps->router, p->rid, p->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            if (errno == EHOSTUNREACH)
                p->dead = true;
            continue;
        }
        unsigned char head[13] = "BRK1H";
        for (int k = 0; k < 8; k++)
            head[5 + k] = (unsigned char)(ps->instance >> (8 * k));
        zmq_send(ps->router, head, sizeof head, ZMQ_DONTWAIT);
    }
    s_reap(ps);
}

static void *s_thread(void *arg)
{
    brk_pubsub *ps = arg;
    zmq_pollitem_t items[2] = {
        { ps->router, 0, ZMQ_POLLIN, 0 },
        { ps->ctl_recv, 0, ZMQ_POLLIN, 0 },
    };
    int64_t next_probe = svc__now_ms() + S_PROBE_MS;
    for (;;) {
        int rc = zmq_poll(items, 2, ps->deferred ? 1 : S_PROBE_MS);
        if (rc < 0 && errno != EINTR)
            break;
        if (items[1].revents & ZMQ_POLLIN) {
            bool stop = false;
            char c;
            while (zmq_recv(ps->ctl_recv, &c, 1, ZMQ_DONTWAIT) >= 0)
                stop |= c == 'S';
            if (stop)
                break;
            s_send_acks(ps);
        }
        if (ps->deferred)
            s_flush_deferred(ps);
        pthread_mutex_lock(&ps->mu);
        for (int i = 0; i < S_BATCH && s_handle_one(ps); i++)
            ;
        s_flush_all(ps);
        bool reap = false;
        for (size_t i = 0; i < ps->n_peers; i++)
            reap |= ps->peers[i]->dead;
        if (reap)
            s_reap(ps);
        if (svc__now_ms() >= next_probe) {
            s_probe(ps);
            next_probe = svc__now_ms() + S_PROBE_MS;
        }
        pthread_mutex_unlock(&ps->mu);
    }
    return NULL;
}

int brk_pubsub_start(brk_pubsub **out, const brk_pubsub_cfg *cfg)
{
    brk_pubsub *ps = calloc(1, sizeof *ps);
    if (!ps)
        return -ENOMEM;
    pthread_mutex_init(&ps->mu, NULL);
    pthread_mutex_init(&ps->wake_mu, NULL);
    pthread_mutex_init(&ps->ack_mu, NULL);
    ps->backend = cfg->backend;
    ps->max_payload = cfg->max_payload;
    ps->instance = svc__rand() | 1;
    ps->zctx = zmq_ctx_new();
    int rc = -ENOMEM;
    if (!ps->zctx)
        goto out_free;
    ps->router = zmq_socket(ps->zctx, ZMQ_ROUTER);
    ps->ctl_recv = zmq_socket(ps->zctx, ZMQ_PAIR);
    ps->ctl_send = zmq_socket(ps->zctx, ZMQ_PAIR);
    if (!ps->router || !ps->ctl_recv || !ps->ctl_send)
        goto out_ctx;
    /* The queue counts ZeroMQ messages, and each is a batch of up to S_OUT_MAX_RECORDS. */
    int hwm = (cfg->sub_hwm + S_OUT_MAX_RECORDS - 1) / S_OUT_MAX_RECORDS;
    int one = 1, zero = 0, rcvhwm = 100000;
    if (hwm < 4)
        hwm = 4;
    /* A publish batch: up to 256 KiB of records, or one record of the largest payload. */
    int64_t maxmsg = (int64_t)(cfg->max_payload > 262144 ? cfg->max_payload : 262144) + 2 * 65536 + 1024;
    int hb = 1000, hbt = 5000;
    zmq_setsockopt(ps->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(ps->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(ps->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(ps->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(ps->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(ps->router, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(ps->router, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    if (zmq_bind(ps->router, cfg->address) < 0) {
        rc = -errno;
        svc_error_log("cannot bind pub/sub socket\taddress=%s error=\"%s\"", cfg->address,
                      zmq_strerror(errno));
        goto out_ctx;
    }
    char ep[512];
    size_t eplen = sizeof ep;
    zmq_getsockopt(ps->router, ZMQ_LAST_ENDPOINT, ep, &eplen);
    ps->address = strdup(ep);
    char inproc[64];
    snprintf(inproc, sizeof inproc, "inproc://brk-pubsub-%p", (void *)ps);
    if (!ps->address || zmq_bind(ps->ctl_recv, inproc) < 0 || zmq_connect(ps->ctl_send, inproc) < 0)
        goto out_ctx;
    rc = -pthread_create(&ps->thread, NULL, s_thread, ps);
    if (rc)
        goto out_ctx;
    *out = ps;
    return 0;

out_ctx:
    if (ps->router)
        zmq_close(ps->router);
    if (ps->ctl_recv)
        zmq_close(ps->ctl_recv);
    if (ps->ctl_send)
        zmq_close(ps->ctl_send);
    zmq_ctx_term(ps->zctx);
out_free:
    free(ps->address);
    pthread_mutex_destroy(&ps->mu);
    free(ps);
    return rc;
}

const char *brk_pubsub_address(const brk_pubsub *ps)
{
    return ps->address;
}

static char *s_hex(const unsigned char *b, size_t n)
{
    char *s = malloc(n * 2 + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", b[i]);
    s[n * 2] = 0;
    return s;
}

int brk_pubsub_stats(brk_pubsub *ps, Svc__Broker__StatsResponse *out)
{
    int rc = 0;
    pthread_mutex_lock(&ps->mu);
    out->published = ps->published;
    out->delivered = ps->delivered;
    out->dropped = ps->dropped;
    out->unrouted = ps->unrouted;
    out->rejected = ps->rejected;
    out->peers = calloc(ps->n_peers ? ps->n_peers : 1, sizeof *out->peers);
    if (!out->peers) {
        rc = -ENOMEM;
        goto out_unlock;
    }
    for (size_t i = 0; i < ps->n_peers; i++) {
        s_peer *p = ps->peers[i];
        Svc__Broker__PeerStats *ph = malloc(sizeof *ph);
        if (!ph) {
            rc = -ENOMEM;
            goto out_unlock;
        }
        svc__broker__peer_stats__init(ph);
        out->peers[out->n_peers++] = ph;
        ph->peer = s_hex(p->rid, p->rid_len);
        ph->delivered = p->delivered;
        ph->dropped = p->dropped;
        ph->subscriptions = calloc(p->n_subs ? p->n_subs : 1, sizeof *ph->subscriptions);
        if (!ph->peer || !ph->subscriptions) {
            rc = -ENOMEM;
            goto out_unlock;
        }
        for (size_t k = 0; k < ps->n_subs; k++) {
            s_sub *s = &ps->subs[k];
            if (s->peer != p || ph->n_subscriptions >= p->n_subs)
                continue;
            Svc__Broker__SubscriptionStats *ss = malloc(sizeof *ss);
            if (!ss) {
                rc = -ENOMEM;
                goto out_unlock;
            }
            svc__broker__subscription_stats__init(ss);
            ph->subscriptions[ph->n_subscriptions++] = ss;
            ss->topic = strdup(s->pattern);
            ss->queue = strdup(s->queue);
            ss->delivered = s->delivered;
            ss->dropped = s->dropped;
            if (!ss->topic || !ss->queue) {
                rc = -ENOMEM;
                goto out_unlock;
            }
        }
    }
out_unlock:
    pthread_mutex_unlock(&ps->mu);
    return rc;
}

void brk_pubsub_stop(brk_pubsub **psp)
{
    brk_pubsub *ps = *psp;
    if (!ps)
        return;
    *psp = NULL;
    s_wake(ps, "S");
    pthread_join(ps->thread, NULL);
    s_send_acks(ps);   /* frees what the backend finished after the thread ended */
    while (ps->deferred) {
        s_deferred *d = ps->deferred;
        ps->deferred = d->next;
        free(d->buf);
        free(d);
    }
    zmq_close(ps->router);
    zmq_close(ps->ctl_recv);
    zmq_close(ps->ctl_send);
    zmq_ctx_term(ps->zctx);
    for (size_t i = 0; i < ps->n_subs; i++) {
        free(ps->subs[i].pattern);
        free(ps->subs[i].queue);
    }
    free(ps->subs);
    for (size_t i = 0; i < ps->n_peers; i++) {
        free(ps->peers[i]->out);
        free(ps->peers[i]);
    }
    free(ps->peers);
    free(ps->groups);
    free(ps->address);
    pthread_mutex_destroy(&ps->mu);
    free(ps);
}
