/*
 * libsvc/stream.c — server side of streams: server-streaming, client-streaming
 * and bidirectional, with credits both ways (docs/protocol.md 9).
 *
 * A stream is referenced by the server's table (until it ends or the client
 * cancels or vanishes), by the job and then the handler, and by every queued
 * message of it.  The table is touched only by the loop thread, which also
 * receives the client's STREAM_DATA / STREAM_CLOSE / STREAM_CREDIT and hands
 * them to the stream under its mutex; the handler's thread takes them with
 * svc_stream_recv.  Every message the server sends on a stream goes through
 * the loop thread's out queue, so a stream's messages keep their order.
 *
 * Memory is bounded both ways by credit (flow.h): the client may have at most
 * SVC_STREAM_WINDOW messages queued here, and the handler may have at most
 * the client's grant queued towards the client.
 */
#include "service_int.h"
#include "clock.h"
#include "svc/codec.h"
#include "svc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *svc_stream_kind_name(svc_stream_kind kind)
{
    switch (kind) {
    case SVC_STREAM_SERVER: return "server";
    case SVC_STREAM_CLIENT: return "client";
    case SVC_STREAM_BIDI: return "bidi";
    }
    return "unknown";
}

static size_t s_bucket(uint64_t id)
{
    id ^= id >> 29;
    id *= 0xbf58476d1ce4e5b9ull;
    id ^= id >> 32;
    return (size_t)(id & (SVC_STREAM_BUCKETS - 1));
}

static bool s_same_route(zmq_msg_t *a, zmq_msg_t *b)
{
    return zmq_msg_size(a) == zmq_msg_size(b) &&
           memcmp(zmq_msg_data(a), zmq_msg_data(b), zmq_msg_size(a)) == 0;
}

static void s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents);

svc_stream *svc__stream_new(svc_service *s, zmq_msg_t *route, uint64_t id,
                            const char *content_type, const svc__endpoint *ep, uint32_t credit,
                            uint32_t timeout_ms)
{
    svc_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->content_type = strdup(content_type && *content_type ? content_type : SVC_CT_PROTOBUF);
    if (!st->content_type) {
        free(st);
        return NULL;
    }
    st->svc = s;
    zmq_msg_init(&st->route);
    zmq_msg_copy(&st->route, route);
    st->id = id;
    st->desc = ep->rsp;
    st->in_desc = ep->req;
    st->ep_name = ep->name;
    st->kind = ep->kind;
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    st->is_pb = svc_codec_for(st->content_type) == SVC_CODEC_PROTOBUF;
    /* Every STREAM_DATA we send has the same header: pack it once. */
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__STREAM_DATA;
    h.id = id;
    h.content_type = st->content_type;
    st->data_hlen = svc__header__get_packed_size(&h);
    st->data_hdr = malloc(st->data_hlen);
    if (!st->data_hdr) {
        zmq_msg_close(&st->route);
        free(st->content_type);
        free(st);
        return NULL;
    }
    svc__header__pack(&h, st->data_hdr);
    bool takes = ep->kind != SVC_STREAM_SERVER;
    svc__flow_init(&st->flow, takes, takes ? SVC_STREAM_WINDOW : 0, credit);
    atomic_init(&st->refs, 2);   /* the table's and the job's */
    atomic_init(&st->closed, false);
    atomic_init(&st->ending, false);
    st->listed = true;
    ev_timer_init(&st->deadline_timer, s_on_deadline, timeout_ms / 1000.0, 0.);
    st->deadline_timer.data = st;
    if (timeout_ms)
        ev_timer_start(s->loop, &st->deadline_timer);
    size_t b = s_bucket(id);
    st->next = s->stream_tab[b];
    s->stream_tab[b] = st;
    s->n_streams++;
    return st;
}

void svc__stream_ref(svc_stream *st)
{
    atomic_fetch_add(&st->refs, 1);
}

void svc__stream_unref(svc_stream *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    while (st->in_head) {
        svc__in *in = st->in_head;
        st->in_head = in->next;
        zmq_msg_close(&in->body);
        free(in);
    }
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    zmq_msg_close(&st->route);
    free(st->data_hdr);
    free(st->content_type);
    free(st);
}

/* Appends o to st's pending queue (mu held). */
static void s_pend(svc_stream *st, svc__out *o)
{
    o->next = NULL;
    if (st->pend_tail)
        st->pend_tail->next = o;
    else
        st->pend_head = o;
    st->pend_tail = o;
    st->n_pend++;
}

/* Takes st's whole pending queue (mu held); the caller frees or sends it. */
static svc__out *s_take_pending(svc_stream *st)
{
    svc__out *o = st->pend_head;
    st->pend_head = st->pend_tail = NULL;
    st->n_pend = 0;
    return o;
}

static void s_free_list(svc__out *o)
{
    while (o) {
        svc__out *next = o->next;
        svc__out_free(o);
        o = next;
    }
}

void svc__stream_mark_closed(svc_stream *st)
{
    pthread_mutex_lock(&st->mu);
    atomic_store(&st->closed, true);
    svc__out *pend = s_take_pending(st);
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    s_free_list(pend);   /* the caller holds a reference: st outlives this */
}

void svc__stream_unlist(svc_service *s, svc_stream *st)
{
    if (!st->listed)
        return;
    for (svc_stream **p = &s->stream_tab[s_bucket(st->id)]; *p; p = &(*p)->next) {
        if (*p == st) {
            *p = st->next;
            st->listed = false;
            ev_timer_stop(s->loop, &st->deadline_timer);
            s->n_streams--;
            svc__stream_unref(st);
            return;
        }
    }
}

svc_stream *svc__stream_find(svc_service *s, zmq_msg_t *route, uint64_t id)
{
    for (svc_stream *st = s->stream_tab[s_bucket(id)]; st; st = st->next)
        if (st->id == id && s_same_route(&st->route, route))
            return st;
    return NULL;
}

void svc__streams_cancel(svc_service *s, zmq_msg_t *route, uint64_t id)
{
    svc_stream *st = svc__stream_find(s, route, id);
    if (!st)
        return;
    svc__stream_mark_closed(st);
    svc__stream_unlist(s, st);
}

/* Builds a message of st: STREAM_DATA, STREAM_CLOSE or STREAM_CREDIT. */
static svc__out *s_out(svc_stream *st, Svc__Kind kind, const void *body, size_t blen,
                       const svc_error *err, uint32_t credit)
{
    Svc__Header h = SVC__HEADER__INIT;
    Svc__Error e = SVC__ERROR__INIT;
    h.kind = kind;
    h.id = st->id;
    if (kind != SVC__KIND__STREAM_CREDIT)
        h.content_type = st->content_type;
    h.credit = credit;
    if (err && svc_error_isset(err)) {
        e.id = err->id ? err->id : st->svc->name;
        e.code = err->code;
        e.detail = err->detail ? err->detail : "";
        e.status = err->status ? err->status : (char *)svc_status_text(err->code);
        h.error = &e;
    }
    svc__out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    if (svc__pack_out(o, &st->route, &h, body, blen) < 0) {
        svc__out_free(o);
        return NULL;
    }
    svc__stream_ref(st);
    o->stream = st;
    o->ends_stream = kind == SVC__KIND__STREAM_CLOSE;
    o->is_error = h.error != NULL;   /* a stream ended with an error counts in Debug.Stats */
    return o;
}

svc__out *svc__stream_end_out(svc_stream *st, const svc_error *err)
{
    return s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, err, 0);
}

svc__out *svc__stream_credit_out(svc_stream *st, uint32_t n)
{
    return s_out(st, SVC__KIND__STREAM_CREDIT, NULL, 0, NULL, n);
}

/* Queues the end of st with an error from the handler's side; further sends fail. */
static void s_end_from_handler(svc_stream *st, int code, const char *fmt, const char *a,
                               const char *b)
{
    if (atomic_exchange(&st->ending, true))
        return;
    svc_error e = SVC_ERROR_INIT;
    svc_error_set(&e, st->svc->name, code, fmt, a, b);
    svc__out *o = s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, &e, 0);
    svc_error_release(&e);
    if (o)
        svc__server_push(st->svc, o);
    pthread_mutex_lock(&st->mu);
    svc__out *pend = s_take_pending(st);   /* the stream failed: what waited is dropped */
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    s_free_list(pend);
}

/* An absolute CLOCK_MONOTONIC time timeout_ms from now. */
static struct timespec s_abs(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/*
 * Waits on st->cv (mu held) for timeout_ms (-1 forever) from the first wait
 * (*at is 0 until then: the clock is read only when waiting).  False on timeout.
 */
static bool s_wait(svc_stream *st, int timeout_ms, struct timespec *at)
{
    svc_handler_blocking();
    if (timeout_ms < 0) {
        pthread_cond_wait(&st->cv, &st->mu);
        return true;
    }
    if (at->tv_sec == 0 && at->tv_nsec == 0)
        *at = s_abs(timeout_ms);
    return pthread_cond_timedwait(&st->cv, &st->mu, at) != ETIMEDOUT;
}

static bool s_ended(svc_stream *st)
{
    return atomic_load(&st->closed) || atomic_load(&st->ending);
}

/*
 * Takes one credit for data message o, waiting up to timeout_ms (-1
 * forever).  Messages sent without waiting while the client has no credit
 * left queue behind in st's pending queue, at most --send-hwm of them, and
 * leave as credit comes (s_flush); a waiting send waits for that queue too,
 * so the stream keeps its order.  Returns 0 (send o), 1 (send o; the
 * stream has no flow control), 2 (o was queued: the stream owns it now),
 * SVC_ECLOSED, -EAGAIN or SVC_ETIMEOUT.
 */
static int s_take_credit(svc_stream *st, svc__out *o, int timeout_ms)
{
    struct timespec at = { 0, 0 };
    int rc;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (s_ended(st)) {
            rc = SVC_ECLOSED;
            break;
        }
        if (st->n_pend == 0 && svc__flow_can_send(&st->flow)) {
            svc__flow_sent(&st->flow);
            rc = st->flow.out_limited ? 0 : 1;   /* 1: unlimited, the global queue bounds */
            break;
        }
        if (timeout_ms == 0) {
            rc = -EAGAIN;
            if (st->n_pend < (size_t)st->svc->send_hwm) {
                s_pend(st, o);
                rc = 2;
            }
            break;
        }
        if (!s_wait(st, timeout_ms, &at)) {
            rc = SVC_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/*
 * Credit came (loop thread): pending messages it covers go to the out
 * queue, behind what is already there, so the stream keeps its order.
 */
static void s_flush(svc_stream *st)
{
    svc__out *ready = NULL, **tail = &ready;
    pthread_mutex_lock(&st->mu);
    while (st->pend_head && (st->pend_head->ends_stream || svc__flow_can_send(&st->flow))) {
        svc__out *o = st->pend_head;
        st->pend_head = o->next;
        if (!st->pend_head)
            st->pend_tail = NULL;
        st->n_pend--;
        if (!o->ends_stream)
            svc__flow_sent(&st->flow);
        o->next = NULL;
        *tail = o;
        tail = &o->next;
    }
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    while (ready) {
        svc__out *next = ready->next;
        ready->next = NULL;
        svc__server_push(st->svc, ready);
        ready = next;
    }
}

/* True when the server's send queue has room (for streams without credit). */
static bool s_queue_room(svc_service *s)
{
    pthread_mutex_lock(&s->mu);
    size_t queued = s->n_out;
    pthread_mutex_unlock(&s->mu);
    return queued < SVC_MAX_QUEUED_OUT;
}

/*
 * A STREAM_DATA of st carrying msg, in one allocation with the cached
 * header; protobuf is packed in place.  NULL with *rc set on failure.
 */
static svc__out *s_data_out(svc_stream *st, const ProtobufCMessage *msg, int *rc)
{
    void *json = NULL;
    size_t len;
    if (st->is_pb) {
        len = protobuf_c_message_get_packed_size(msg);
    } else if ((*rc = svc_codec_encode(st->content_type, msg, &json, &len)) < 0) {
        return NULL;
    }
    if (len > SVC_WIRE_MAX_BODY) {
        free(json);
        *rc = SVC_ETOOBIG;
        return NULL;
    }
    svc__out *o = malloc(sizeof *o + st->data_hlen + (len ? len : 1));
    if (!o) {
        free(json);
        *rc = -ENOMEM;
        return NULL;
    }
    memset(o, 0, sizeof *o);
    o->one_block = true;
    o->hdr = (char *)(o + 1);
    o->hlen = st->data_hlen;
    memcpy(o->hdr, st->data_hdr, st->data_hlen);
    o->body = (char *)o->hdr + st->data_hlen;
    o->blen = len;
    if (json)
        memcpy(o->body, json, len);
    else if (len)
        protobuf_c_message_pack(msg, o->body);
    free(json);
    zmq_msg_init(&o->route);
    zmq_msg_copy(&o->route, &st->route);
    svc__stream_ref(st);
    o->stream = st;
    return o;
}

static int s_send(svc_stream *st, const ProtobufCMessage *msg, int timeout_ms)
{
    if (s_ended(st))
        return SVC_ECLOSED;
    svc_service *s = st->svc;
    int rc = 0;
    svc__out *o = s_data_out(st, msg, &rc);
    if (!o)
        return rc;
    int64_t until = -2;   /* read the clock only if the queue makes us wait */
    /* Without credit from the client only the server's queue bounds us. */
    while ((rc = s_take_credit(st, o, timeout_ms)) == 1 && !s_queue_room(s)) {
        int64_t now = svc__now_ms();
        if (until == -2)
            until = timeout_ms < 0 ? -1 : now + timeout_ms;
        if (until >= 0 && now >= until) {
            rc = timeout_ms == 0 ? -EAGAIN : SVC_ETIMEOUT;
            break;
        }
        struct timespec ms = { 0, 1000000L };
        nanosleep(&ms, NULL);
    }
    if (rc == 2)
        return 0;   /* queued until the client grants credit */
    if (rc < 0) {
        svc__out_free(o);
        return rc;
    }
    svc__server_push(s, o);
    return 0;
}

int svc_stream_send(svc_stream *st, const ProtobufCMessage *msg)
{
    return s_send(st, msg, 0);
}

int svc_stream_send_wait(svc_stream *st, const ProtobufCMessage *msg, int timeout_ms)
{
    return s_send(st, msg, timeout_ms < 0 ? -1 : timeout_ms);
}

int svc_stream_recv(svc_stream *st, int timeout_ms, ProtobufCMessage **msg)
{
    *msg = NULL;
    if (st->kind == SVC_STREAM_SERVER)
        return SVC_EINVAL;
    struct timespec at = { 0, 0 };
    svc__in *in = NULL;
    uint32_t grant = 0;
    int rc;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (s_ended(st)) {
            rc = SVC_ECLOSED;
            break;
        }
        if (st->in_head) {
            in = st->in_head;
            st->in_head = in->next;
            if (!st->in_head)
                st->in_tail = NULL;
            st->n_in--;
            grant = svc__flow_consumed(&st->flow);
            rc = 0;
            break;
        }
        if (st->flow.in_eof) {
            rc = 1;
            break;
        }
        if (timeout_ms == 0) {
            rc = SVC_ETIMEOUT;
            break;
        }
        if (!s_wait(st, timeout_ms, &at)) {
            rc = SVC_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    if (!in)
        return rc;
    if (grant) {
        svc__out *o = svc__stream_credit_out(st, grant);
        if (o)
            svc__server_push(st->svc, o);
    }
    char why[200] = "";
    rc = svc_codec_decode(st->content_type, st->in_desc, zmq_msg_size(&in->body) ?
                          zmq_msg_data(&in->body) : "", zmq_msg_size(&in->body), msg,
                          why, sizeof why);
    zmq_msg_close(&in->body);
    free(in);
    if (rc < 0) {
        *msg = NULL;
        s_end_from_handler(st, 400, "invalid stream message to \"%s\": %s", st->ep_name, why);
        return SVC_ECODEC;
    }
    return 0;
}

bool svc_stream_closed(const svc_stream *st)
{
    svc_stream *m = (svc_stream *)st;
    return atomic_load(&m->closed) || atomic_load(&m->ending);
}

void svc_stream_close(svc_stream **stp, const svc_error *err)
{
    svc_stream *st = *stp;
    if (!st)
        return;
    *stp = NULL;
    if (!atomic_load(&st->closed) && !atomic_exchange(&st->ending, true)) {
        svc__out *o = s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, err, 0);
        if (o) {
            /* Behind messages still waiting for credit, if any. */
            pthread_mutex_lock(&st->mu);
            bool behind = st->n_pend > 0;
            if (behind)
                s_pend(st, o);
            pthread_mutex_unlock(&st->mu);
            if (!behind)
                svc__server_push(st->svc, o);
        }
    }
    svc__stream_unref(st);
}

/* Ends st now with code and detail, whatever the handler does (loop thread). */
static void s_end_now(svc_service *s, svc_stream *st, int code, const char *why)
{
    svc_error e = SVC_ERROR_INIT;
    svc_error_set(&e, s->name, code, "%s (stream %llu of \"%s\")", why,
                  (unsigned long long)st->id, st->ep_name);
    svc__out *o = s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, &e, 0);
    svc_error_release(&e);
    svc__stream_ref(st);
    atomic_store(&st->ending, true);
    if (o)
        svc__server_send(s, o);   /* sends even though ending; marks closed, unlists */
    svc__stream_mark_closed(st);
    svc__stream_unlist(s, st);
    svc__stream_unref(st);
}

/* The client broke the rules of 9.6: the stream ends with 400 (loop thread). */
static void s_violation(svc_service *s, svc_stream *st, const char *why)
{
    svc__server_log_bad(s, "stream protocol violation", why);
    s_end_now(s, st, 400, why);
}

/* The STREAM_OPEN's deadline passed: the stream ends with 408 (5.3). */
static void s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    svc_stream *st = w->data;
    if (st->listed && !atomic_load(&st->closed))
        s_end_now(st->svc, st, 408, "stream deadline exceeded");
}

/* STREAM_DATA of st: queued for svc_stream_recv within the credit granted. */
static void s_on_data(svc_service *s, svc_stream *st, svc__msg *m)
{
    const char *why = NULL;
    if (st->kind == SVC_STREAM_SERVER) {
        s_violation(s, st, "server-streaming endpoint takes no stream data from the client");
        return;
    }
    svc__in *in = malloc(sizeof *in);
    if (!in) {
        s_violation(s, st, "out of memory");
        return;
    }
    zmq_msg_init(&in->body);
    in->next = NULL;
    int body = m->first + 2;
    if (body < m->nframes)
        zmq_msg_move(&in->body, &m->frames[body]);
    pthread_mutex_lock(&st->mu);
    int rc = svc__flow_on_data(&st->flow, &why);
    if (rc == 0) {
        if (st->in_tail)
            st->in_tail->next = in;
        else
            st->in_head = in;
        st->in_tail = in;
        st->n_in++;
        pthread_cond_broadcast(&st->cv);
        in = NULL;
    }
    pthread_mutex_unlock(&st->mu);
    if (in) {
        zmq_msg_close(&in->body);
        free(in);
        s_violation(s, st, why);
    }
}

void svc__stream_on_msg(svc_service *s, svc__msg *m)
{
    const Svc__Header *h = m->hdr;
    zmq_msg_t *route = svc__msg_route(m);
    svc_stream *st = svc__stream_find(s, route, h->id);
    if (!st || atomic_load(&st->closed)) {
        /* Close and credit may cross an end or a cancel: not an error.  Data
         * for a stream this connection never opened (or that ended) is. */
        if (h->kind == SVC__KIND__STREAM_DATA) {
            svc__out *o = svc__error_out(s, route, h->id, 404,
                                         "no open stream %llu on this connection",
                                         (unsigned long long)h->id);
            if (o) {
                o->is_error = false;   /* not a call: not in the stats */
                svc__server_send(s, o);
            }
        }
        svc__msg_close(m);
        return;
    }
    const char *why = NULL;
    int rc = 0;
    switch (h->kind) {
    case SVC__KIND__STREAM_DATA:
        s_on_data(s, st, m);
        break;
    case SVC__KIND__STREAM_CLOSE:
        if (st->kind == SVC_STREAM_SERVER)
            break;   /* half-close of a direction that carries nothing */
        pthread_mutex_lock(&st->mu);
        rc = svc__flow_on_close(&st->flow, &why);
        pthread_cond_broadcast(&st->cv);
        pthread_mutex_unlock(&st->mu);
        break;
    case SVC__KIND__STREAM_CREDIT:
        pthread_mutex_lock(&st->mu);
        rc = svc__flow_on_credit(&st->flow, h->credit, &why);
        pthread_cond_broadcast(&st->cv);
        pthread_mutex_unlock(&st->mu);
        if (rc == 0)
            s_flush(st);
        break;
    default:
        break;
    }
    if (rc < 0)
        s_violation(s, st, why);
    svc__msg_close(m);
}

void svc__streams_end_all(svc_service *s)
{
    svc_error e = SVC_ERROR_INIT;
    svc_error_set(&e, s->name, 503, "service \"%s\" stopped", s->name);
    for (size_t b = 0; b < SVC_STREAM_BUCKETS; b++) {
        while (s->stream_tab[b]) {
            svc_stream *st = s->stream_tab[b];
            svc__out *o = atomic_load(&st->closed) ? NULL : s_out(st, SVC__KIND__STREAM_CLOSE,
                                                                  NULL, 0, &e, 0);
            svc__stream_ref(st);
            if (o)
                svc__server_send(s, o);   /* unlists st */
            svc__stream_mark_closed(st);
            svc__stream_unlist(s, st);
            svc__stream_unref(st);
        }
    }
    svc_error_release(&e);
}
