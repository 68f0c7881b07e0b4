/*
 * libsvc/server.c — the ROUTER socket on the libev loop.
 *
 * ZMQ_FD is edge-triggered: it only says "something changed".  After every
 * wake-up and after every send we re-read ZMQ_EVENTS and receive until the
 * socket has nothing more (s_drain_in), or messages would sit unseen.
 */
#include "service_int.h"
#include "clock.h"
#include "zctx.h"
#include "svc/codec.h"
#include "svc/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

void svc__out_free(svc__out *o)
{
    if (!o)
        return;
    zmq_msg_close(&o->route);
    if (!o->one_block) {
        free(o->hdr);
        free(o->body);
    }
    if (o->stream)
        svc__stream_unref(o->stream);
    free(o);
}

int svc__pack_out(svc__out *o, const zmq_msg_t *route, const Svc__Header *h,
                  const void *body, size_t blen)
{
    zmq_msg_init(&o->route);
    zmq_msg_copy(&o->route, (zmq_msg_t *)route);
    o->hlen = svc__header__get_packed_size(h);
    o->hdr = malloc(o->hlen ? o->hlen : 1);
    if (!o->hdr)
        return -ENOMEM;
    svc__header__pack(h, o->hdr);
    if (body) {
        o->body = malloc(blen ? blen : 1);
        if (!o->body)
            return -ENOMEM;
        memcpy(o->body, body, blen);
        o->blen = blen;
    }
    return 0;
}

svc__out *svc__error_out(svc_service *s, zmq_msg_t *route, uint64_t id, int code,
                         const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);

    Svc__Error e = SVC__ERROR__INIT;
    e.id = s->name;
    e.code = code;
    e.detail = detail;
    e.status = (char *)svc_status_text(code);
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__ERROR;
    h.id = id;
    h.error = &e;
    svc__out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    if (svc__pack_out(o, route, &h, NULL, 0) < 0) {
        svc__out_free(o);
        return NULL;
    }
    o->is_error = true;
    return o;
}

static void s_drain_in(svc_service *s);

/* Logs bad input at most about 10 times a second, so a flood cannot flood the log. */
void svc__server_log_bad(svc_service *s, const char *what, const char *why)
{
    int64_t now = svc__now_ms();
    if (now - atomic_load(&s->log_window) >= 1000) {
        atomic_store(&s->log_window, now);
        atomic_store(&s->log_count, 0);
    }
    if (atomic_fetch_add(&s->log_count, 1) < 10)
        svc_warn("%s\treason=\"%s\"", what, why);
}

/* True when the ROUTER has a message to read (sock_mu held). */
static bool s_input_pending(svc_service *s)
{
    int events = 0;
    size_t sz = sizeof events;
    return zmq_getsockopt(s->router, ZMQ_EVENTS, &events, &sz) == 0 && (events & ZMQ_POLLIN);
}

/*
 * Puts o's frames on the ROUTER (sock_mu taken here).  Returns 0 or -errno
 * (EAGAIN: the peer's queue is full; EHOSTUNREACH: the peer is gone); o's
 * route is consumed either way.  *pending: input is waiting — read only
 * when pending is not NULL (a ZMQ_EVENTS read: a poll(2) in libzmq); the
 * loop thread passes NULL when it drains the socket until EAGAIN next.
 */
static int s_put(svc_service *s, svc__out *o, bool *pending)
{
    pthread_mutex_lock(&s->sock_mu);
    if (!s->router) {
        pthread_mutex_unlock(&s->sock_mu);
        *pending = false;
        return -ENOTSOCK;
    }
    zmq_msg_t r;
    zmq_msg_init(&r);
    zmq_msg_copy(&r, &o->route);
    int rc = 0;
    if (zmq_msg_send(&r, s->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        rc = -errno;
        zmq_msg_close(&r);
    } else {
        /* After the first part is queued the rest cannot fail. */
        zmq_send(s->router, SVC_WIRE_SIGNATURE, SVC_WIRE_SIGNATURE_LEN, ZMQ_SNDMORE);
        zmq_send(s->router, o->hdr, o->hlen, o->body ? ZMQ_SNDMORE : 0);
        if (o->body)
            zmq_send(s->router, o->body, o->blen, 0);
        atomic_fetch_add(&s->sent_bytes, o->blen);
    }
    if (pending)
        *pending = s_input_pending(s);
    pthread_mutex_unlock(&s->sock_mu);
    return rc;
}

/* Queues o (a stream's last word) to be sent again until it leaves (loop thread). */
static void s_retry_later(svc_service *s, svc__out *o)
{
    o->next = s->retry_list;
    s->retry_list = o;
    if (!ev_is_active(&s->retry_timer))
        ev_timer_start(s->loop, &s->retry_timer);
}

/*
 * The stream's receiver has fallen SVC_ROUTER_SNDHWM messages behind: the
 * stream is over (its handler now gets SVC_ECLOSED), and the receiver is
 * told with STREAM_CLOSE 429, retried until its queue has room.
 */
static void s_stream_overflow(svc_service *s, svc_stream *st)
{
    svc__stream_mark_closed(st);
    svc_error e = SVC_ERROR_INIT;
    svc_error_set(&e, s->name, 429, "stream receiver too slow: more than %d messages behind; "
                  "messages were dropped", s->send_hwm);
    svc__out *c = svc__stream_end_out(st, &e);
    svc_error_release(&e);
    if (c) {
        c->since = svc__now_ms();
        s_retry_later(s, c);
    }
    svc__server_log_bad(s, "stream receiver too slow", "ended with 429");
}

/* svc__server_send; check: re-read ZMQ_EVENTS after the send (see s_put). */
static bool s_send(svc_service *s, svc__out *o, bool check)
{
    if (o->stream && atomic_load(&o->stream->closed)) {
        svc__out_free(o);   /* cancelled or gone: nothing more is sent (protocol 9.5) */
        return false;
    }
    bool pending = false;
    int rc = s_put(s, o, check ? &pending : NULL);
    if (rc == -EAGAIN && o->stream) {
        s_stream_overflow(s, o->stream);
    } else if (rc < 0) {
        if (o->stream)
            svc__stream_mark_closed(o->stream);
        if (rc != -EHOSTUNREACH && rc != -ENOTSOCK)
            svc__server_log_bad(s, "answer dropped", zmq_strerror(-rc));
    }
    if (o->is_error)
        atomic_fetch_add(&s->errors, 1);
    if (o->stream && (o->ends_stream || atomic_load(&o->stream->closed))) {
        svc__stream_mark_closed(o->stream);
        svc__stream_unlist(s, o->stream);
    }
    svc__out_free(o);
    return pending;
}

bool svc__server_send(svc_service *s, svc__out *o)
{
    return s_send(s, o, true);
}

/* Sends the queued last words of overflowed streams; gives up after 5 s. */
static void s_on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    svc_service *s = w->data;
    svc__out *o = s->retry_list;
    s->retry_list = NULL;
    while (o) {
        svc__out *next = o->next;
        bool pending;
        int rc = s_put(s, o, &pending);
        if (rc == -EAGAIN && svc__now_ms() - o->since < 5000)
            s_retry_later(s, o);
        else
            svc__out_free(o);
        o = next;
    }
    if (!s->retry_list)
        ev_timer_stop(loop, w);
    s_drain_in(s);
}

void svc__out_append(svc_service *s, svc__out *o)
{
    if (s->out_tail)
        s->out_tail->next = o;
    else
        s->out = o;
    s->out_tail = o;
    s->n_out++;
}

/* Takes every queued out off the queue (mu held); optionally closes it. */
static svc__out *s_take_outs(svc_service *s, bool close)
{
    svc__out *o = s->out;
    s->out = s->out_tail = NULL;
    s->n_out = 0;
    if (close)
        s->out_open = false;
    return o;
}

/*
 * Sends a list of outs taken off the queue (loop thread), without a
 * ZMQ_EVENTS read after each: the caller drains the socket next.
 */
static void s_send_all(svc_service *s, svc__out *o)
{
    while (o) {
        svc__out *next = o->next;
        o->next = NULL;
        s_send(s, o, false);
        o = next;
    }
}

void svc__server_push(svc_service *s, svc__out *o)
{
    pthread_mutex_lock(&s->mu);
    if (!s->out_open) {
        /* The server stopped: nobody will send this. */
        pthread_mutex_unlock(&s->mu);
        svc__out_free(o);
        return;
    }
    /* Only the first out of a batch wakes the loop: it takes them all. */
    bool first = s->n_out == 0;
    svc__out_append(s, o);
    if (first)
        ev_async_send(s->loop, &s->wake);
    pthread_mutex_unlock(&s->mu);
}

static void s_enqueue(svc_service *s, svc__job *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->jobs_tail)
        s->jobs_tail->next = j;
    else
        s->jobs = j;
    s->jobs_tail = j;
    s->n_jobs++;
    size_t blen;
    svc__msg_body(&j->msg, &blen);
    s->queued_bytes += blen;
    svc__workers_wake(s);
    pthread_mutex_unlock(&s->mu);
    if (!ev_is_active(&s->wake_timer))
        ev_timer_start(s->loop, &s->wake_timer);
}

/* While jobs wait: wake a worker if the running ones have blocked; stop when none wait. */
static void s_on_wake_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    svc_service *s = w->data;
    pthread_mutex_lock(&s->mu);
    bool waiting = s->jobs != NULL;
    if (waiting)
        svc__workers_wake(s);
    pthread_mutex_unlock(&s->mu);
    if (!waiting)
        ev_timer_stop(loop, w);
}

static const svc__endpoint *s_endpoint(svc_service *s, const char *name)
{
    for (size_t i = 0; i < s->n_eps; i++)
        if (strcmp(s->eps[i].name, name) == 0)
            return &s->eps[i];
    return NULL;
}

static void s_reply_error(svc_service *s, svc__msg *m, int code, const char *fmt, const char *a,
                          const char *b)
{
    svc__out *o = svc__error_out(s, svc__msg_route(m), m->hdr ? m->hdr->id : m->bad_id, code, fmt,
                                 a, b);
    if (o)
        s_send(s, o, false);   /* in s_drain_in: it drains next */
}

/* Handles a REQUEST or STREAM_OPEN: answers at once or queues a job.  Takes m. */
static void s_on_call(svc_service *s, svc__msg *m)
{
    Svc__Header *h = m->hdr;
    bool stream = h->kind == SVC__KIND__STREAM_OPEN;
    atomic_fetch_add(&s->requests, 1);
    size_t blen;
    svc__msg_body(m, &blen);
    if (blen > SVC_WIRE_MAX_BODY) {
        char n[32];
        snprintf(n, sizeof n, "%zu", blen);
        s_reply_error(s, m, 413, "request body of %s bytes exceeds the limit of %s bytes", n,
                      SVC_WIRE_MAX_BODY_STR);
        goto out_close;
    }
    if (s->state >= SVC__DRAINING) {
        s_reply_error(s, m, 503, "service \"%s\" is shutting down%s", s->name, "");
        goto out_close;
    }
    if (strcmp(h->service, s->name) != 0) {
        s_reply_error(s, m, 503, "this node serves \"%s\", not \"%s\"", s->name, h->service);
        goto out_close;
    }
    const svc__endpoint *ep = s_endpoint(s, h->endpoint);
    if (!ep) {
        s_reply_error(s, m, 404, "endpoint \"%s\" not found on service \"%s\"", h->endpoint,
                      s->name);
        goto out_close;
    }
    if (stream != (ep->sfn != NULL || ep->iofn != NULL)) {
        s_reply_error(s, m, 400, "endpoint \"%s\" %s", h->endpoint,
                      stream ? "is not a stream endpoint" : "is a stream: open it as a stream");
        goto out_close;
    }
    if (stream && ep->iofn && blen > 0) {
        s_reply_error(s, m, 400, "stream open of \"%s\" carries a body: a %s stream sends its "
                      "messages as STREAM_DATA", h->endpoint, svc_stream_kind_name(ep->kind));
        goto out_close;
    }
    if (stream && svc__stream_find(s, svc__msg_route(m), h->id)) {
        char n[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long)h->id);
        s_reply_error(s, m, 409, "stream id %s is already open on this connection%s", n, "");
        goto out_close;
    }
    if (stream && s->n_streams >= SVC_MAX_STREAMS) {
        s_reply_error(s, m, 503, "service \"%s\" has too many open streams%s", s->name, "");
        goto out_close;
    }
    if (svc_codec_for(h->content_type) == SVC_CODEC_UNKNOWN) {
        s_reply_error(s, m, 415, "unsupported content type \"%s\"%s", h->content_type, "");
        goto out_close;
    }

    svc__job *j = calloc(1, sizeof *j);
    if (!j) {
        s_reply_error(s, m, 500, "out of memory%s%s", "", "");
        goto out_close;
    }
    j->msg = *m;            /* the job owns the frames from here on */
    memset(m, 0, sizeof *m);
    j->ep = ep;
    j->deadline = h->timeout_ms ? svc__now_ms() + h->timeout_ms : -1;
    if (stream) {
        j->stream = svc__stream_new(s, svc__msg_route(&j->msg), h->id, h->content_type, ep,
                                    h->credit, h->timeout_ms);
        if (!j->stream) {
            svc__out *o = svc__error_out(s, svc__msg_route(&j->msg), h->id, 500, "out of memory");
            if (o)
                svc__server_send(s, o);
            svc__job_free(j);
            return;
        }
    }
    if (ep->inline_) {
        svc__out *o = svc__handle(s, j, NULL);
        svc__job_free(j);
        if (o)
            s_send(s, o, false);   /* in s_drain_in: it drains next */
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool busy = s->n_jobs >= SVC_MAX_QUEUED_JOBS ||
                s->queued_bytes + blen > (size_t)SVC_MAX_QUEUED_BYTES;
    pthread_mutex_unlock(&s->mu);
    if (busy) {
        svc__out *o = svc__error_out(s, svc__msg_route(&j->msg), h->id, 503,
                                     "service \"%s\" is busy: too many requests queued",
                                     s->name);
        if (o)
            svc__server_send(s, o);
        if (j->stream) {
            svc__stream_mark_closed(j->stream);
            svc__stream_unlist(s, j->stream);
        }
        svc__job_free(j);
        return;
    }
    svc_stream *grant = j->stream && ep->iofn ? j->stream : NULL;
    if (grant)
        svc__stream_ref(grant);
    s_enqueue(s, j);
    if (grant) {
        /* The server's first message: the client's initial credit (9.6). */
        svc__out *o = svc__stream_credit_out(grant, SVC_STREAM_WINDOW);
        if (o)
            svc__server_send(s, o);
        svc__stream_unref(grant);
    }
    return;

out_close:
    svc__msg_close(m);
}

static void s_on_ping(svc_service *s, svc__msg *m)
{
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__PONG;
    h.id = m->hdr->id;
    svc__out *o = calloc(1, sizeof *o);
    if (o && svc__pack_out(o, svc__msg_route(m), &h, NULL, 0) == 0)
        s_send(s, o, false);   /* in s_drain_in: it drains next */
    else
        svc__out_free(o);
}

/* Receives and dispatches every message waiting on the ROUTER (until EAGAIN). */
static void s_drain_in(svc_service *s)
{
    for (int n = 0;; n++) {
        svc__msg m;
        char why[160] = "";
        pthread_mutex_lock(&s->sock_mu);
        if (!s->router) {
            pthread_mutex_unlock(&s->sock_mu);
            ev_idle_stop(s->loop, &s->more);
            return;
        }
        if (n == SVC_DRAIN_BATCH) {
            /* Leave the rest for the next loop turn, so that signals, timers
             * and queued stream messages are not starved by a flood.  ZMQ_FD
             * is edge-triggered: without the idle watcher it would sit unseen. */
            pthread_mutex_unlock(&s->sock_mu);
            ev_idle_start(s->loop, &s->more);
            return;
        }
        /* Receiving until EAGAIN re-arms ZMQ_FD as reading ZMQ_EVENTS would,
         * without a ZMQ_EVENTS read (a poll(2) inside libzmq) per message. */
        int rc = svc__msg_recv(s->router, &m, ZMQ_DONTWAIT, true, why, sizeof why);
        pthread_mutex_unlock(&s->sock_mu);
        if (rc == -EAGAIN) {
            ev_idle_stop(s->loop, &s->more);
            return;
        }
        if (rc == -EINTR)
            continue;
        if (rc < 0 && rc != SVC_EPROTO)
            return;
        if (rc == SVC_EPROTO) {
            svc__server_log_bad(s, "malformed message", why);
            /* Answer in our protocol only if the peer speaks it. */
            zmq_msg_t *sig = m.nframes > 1 ? &m.frames[1] : NULL;
            if (sig && zmq_msg_size(sig) == SVC_WIRE_SIGNATURE_LEN &&
                memcmp(zmq_msg_data(sig), SVC_WIRE_SIGNATURE, SVC_WIRE_SIGNATURE_LEN) == 0) {
                svc__out *o = svc__error_out(s, svc__msg_route(&m), m.bad_id, 400,
                                             "malformed message: %s", why);
                if (o) {
                    o->is_error = false;   /* not a call: not in the stats */
                    s_send(s, o, false);   /* in s_drain_in: it drains next */
                }
            }
            svc__msg_close(&m);
            continue;
        }
        switch (m.hdr->kind) {
        case SVC__KIND__REQUEST:
        case SVC__KIND__STREAM_OPEN:
            s_on_call(s, &m);
            break;
        case SVC__KIND__PING:
            s_on_ping(s, &m);
            svc__msg_close(&m);
            break;
        case SVC__KIND__STREAM_CANCEL:
            svc__streams_cancel(s, svc__msg_route(&m), m.hdr->id);
            svc__msg_close(&m);
            break;
        case SVC__KIND__STREAM_DATA:
        case SVC__KIND__STREAM_CLOSE:
        case SVC__KIND__STREAM_CREDIT:
            svc__stream_on_msg(s, &m);
            break;
        default:
            /* RESPONSE, ERROR, PONG from a client: nothing to do. */
            svc__msg_close(&m);
            break;
        }
    }
}

static bool s_drained(svc_service *s)
{
    pthread_mutex_lock(&s->mu);
    bool idle = !s->jobs && !s->out && atomic_load(&s->inflight) == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

static void s_maybe_finish(svc_service *s)
{
    if (s->state == SVC__DRAINING && s_drained(s)) {
        s->state = SVC__STOPPED;
        ev_break(s->loop, EVBREAK_ONE);
    }
}

/*
 * Enters DRAINING: new calls get 503; open streams end now (503), so that
 * handlers waiting on them return and the drain need not time out.
 */
static void s_enter_draining(svc_service *s)
{
    s->state = SVC__DRAINING;
    svc_info("draining\tinflight=%u", atomic_load(&s->inflight));
    svc__streams_end_all(s);
}

static void s_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    svc_service *s = w->data;
    pthread_mutex_lock(&s->mu);
    svc__out *o = s_take_outs(s, false);
    bool stop = atomic_load(&s->stop_requested);
    bool reg_done = s->reg_done;
    pthread_mutex_unlock(&s->mu);
    s_send_all(s, o);
    s_drain_in(s);
    if (stop && s->state == SVC__SERVING)
        svc__server_begin_drain(s);
    if (reg_done && s->state == SVC__DEREGISTERING) {
        ev_timer_stop(loop, &s->dereg_timer);
        s_enter_draining(s);
    }
    s_maybe_finish(s);
}

static void s_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    svc_service *s = w->data;
    s_drain_in(s);
    s_maybe_finish(s);
}

static void s_on_more(struct ev_loop *loop, ev_idle *w, int revents)
{
    svc_service *s = w->data;
    s_drain_in(s);
    s_maybe_finish(s);
}


static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    svc_service *s = w->data;
    svc_info("stopping\tsignal=%d", w->signum);
    if (s->state == SVC__SERVING)
        svc__server_begin_drain(s);
}

/* Pings the watchdog from the loop thread: a stalled loop stops the pings. */
static void s_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    sd_notify(0, "WATCHDOG=1");
}

static void s_on_dereg_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    svc_service *s = w->data;
    if (s->state == SVC__DEREGISTERING) {
        svc_warn("deregistration did not finish in time; draining anyway");
        s_enter_draining(s);
    }
    s_maybe_finish(s);
}

static void s_on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    svc_service *s = w->data;
    svc_warn("drain timeout: stopping with requests in flight\tinflight=%u",
             atomic_load(&s->inflight));
    s->drain_timed_out = true;
    s->state = SVC__STOPPED;
    ev_break(loop, EVBREAK_ONE);
}

void svc__server_begin_drain(svc_service *s)
{
    s->state = SVC__DEREGISTERING;
    atomic_store(&s->draining, true);
    s->drain_sent = atomic_load(&s->sent_bytes);
    svc__registrar_request_stop(s);
    ev_timer_start(s->loop, &s->dereg_timer);
    ev_timer_start(s->loop, &s->drain_timer);
}

int svc__server_start(svc_service *s)
{
    s->zctx = zmq_ctx_new();
    s->router = s->zctx ? zmq_socket(s->zctx, ZMQ_ROUTER) : NULL;
    if (!s->router) {
        int e = errno;
        svc_error_log("cannot create socket\terror=\"%s\"", zmq_strerror(e));
        if (s->zctx)
            zmq_ctx_term(s->zctx);
        s->zctx = NULL;
        return -e;
    }
    int zero = 0;
    zmq_setsockopt(s->router, ZMQ_LINGER, &zero, sizeof zero);
    int one = 1;
    int64_t maxmsg = SVC_WIRE_MAX_BODY + SVC_WIRE_MAX_HEADER + 64;
    int hwm = s->send_hwm;
    zmq_setsockopt(s->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(s->router, s->address) < 0) {
        int e = errno;
        svc_error_log("cannot bind address\taddress=\"%s\" error=\"%s\"", s->address,
                      zmq_strerror(e));
        svc__socket_close(&s->router);
        zmq_ctx_term(s->zctx);
        s->zctx = NULL;
        return -e;
    }
    char last[512];
    size_t len = sizeof last;
    zmq_getsockopt(s->router, ZMQ_LAST_ENDPOINT, last, &len);
    s->bound = strdup(last);

    int fd;
    size_t fdlen = sizeof fd;
    zmq_getsockopt(s->router, ZMQ_FD, &fd, &fdlen);
    ev_io_init(&s->io, s_on_io, fd, EV_READ);
    s->io.data = s;
    ev_io_start(s->loop, &s->io);
    ev_timer_init(&s->retry_timer, s_on_retry, 0.1, 0.1);
    s->retry_timer.data = s;
    ev_timer_init(&s->wake_timer, s_on_wake_timer, SVC_BLOCKED_US / 1e6, SVC_BLOCKED_US / 1e6);
    s->wake_timer.data = s;
    ev_idle_init(&s->more, s_on_more);
    s->more.data = s;
    ev_async_init(&s->wake, s_on_wake);
    s->wake.data = s;
    ev_async_start(s->loop, &s->wake);
    ev_signal_init(&s->sigterm, s_on_signal, SIGTERM);
    s->sigterm.data = s;
    ev_signal_start(s->loop, &s->sigterm);
    ev_signal_init(&s->sigint, s_on_signal, SIGINT);
    s->sigint.data = s;
    ev_signal_start(s->loop, &s->sigint);
    ev_timer_init(&s->dereg_timer, s_on_dereg_timeout, 3.0, 0.);
    s->dereg_timer.data = s;
    ev_timer_init(&s->drain_timer, s_on_drain_timeout, (double)s->drain_s + 3.0, 0.);
    s->drain_timer.data = s;
    uint64_t wd_usec = 0;
    ev_timer_init(&s->watchdog, s_on_watchdog, 0., 0.);
    if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
        double every = (double)wd_usec / 2e6;
        ev_timer_set(&s->watchdog, every, every);
        ev_timer_start(s->loop, &s->watchdog);
        sd_notify(0, "WATCHDOG=1");
    }
    pthread_mutex_lock(&s->mu);
    s->out_open = true;
    pthread_mutex_unlock(&s->mu);
    s->state = SVC__SERVING;
    /* Messages may already be waiting: the edge was before the watcher. */
    ev_feed_event(s->loop, &s->io, EV_READ);
    return 0;
}

void svc__server_stop(svc_service *s)
{
    if (!s->loop)
        return;
    ev_io_stop(s->loop, &s->io);
    ev_idle_stop(s->loop, &s->more);
    ev_timer_stop(s->loop, &s->retry_timer);
    ev_timer_stop(s->loop, &s->wake_timer);
    ev_async_stop(s->loop, &s->wake);
    ev_signal_stop(s->loop, &s->sigterm);
    ev_signal_stop(s->loop, &s->sigint);
    ev_timer_stop(s->loop, &s->dereg_timer);
    ev_timer_stop(s->loop, &s->drain_timer);
    ev_timer_stop(s->loop, &s->watchdog);
    if (s->router) {
        /* Send what the workers left, then end open streams. */
        pthread_mutex_lock(&s->mu);
        svc__out *o = s_take_outs(s, true);
        pthread_mutex_unlock(&s->mu);
        s_send_all(s, o);
        svc__streams_end_all(s);
        /* Last try for the ends of overflowed streams. */
        while (s->retry_list) {
            svc__out *r = s->retry_list;
            bool pending;
            s->retry_list = r->next;
            s_put(s, r, &pending);
            svc__out_free(r);
        }
        /* Answers and stream ends sent just now may still be in ZeroMQ's
         * queues: close with a bounded linger and wait for them to leave.
         * libzmq 4.3's linger does not cover a large message its engine is
         * still writing (libzmq issues 1922, 4660), so first pause in
         * proportion to what the drain sent: 20 ms + 1 ms per 10 KB (as slow
         * as 10 MB/s: the pace of ZeroMQ's I/O thread on a loaded machine,
         * where 50 KB/ms lost a 12 MB answer), within SVC_FLUSH_MS. */
        unsigned long long sent = atomic_load(&s->sent_bytes) - s->drain_sent;
        if (atomic_load(&s->draining) && sent > 0) {
            long ms = 20 + (long)(sent / 10000);
            if (ms > SVC_FLUSH_MS)
                ms = SVC_FLUSH_MS;
            struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        int linger = SVC_FLUSH_MS;
        pthread_mutex_lock(&s->sock_mu);
        zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger);
        svc__socket_close(&s->router);
        pthread_mutex_unlock(&s->sock_mu);
    }
    if (s->zctx) {
        while (zmq_ctx_term(s->zctx) < 0 && errno == EINTR)
            ;
        s->zctx = NULL;
    }
    /* ZeroMQ removes an ipc socket file asynchronously; make sure it is gone. */
    if (s->bound && strncmp(s->bound, "ipc://", 6) == 0 && s->bound[6] != '@')
        unlink(s->bound + 6);
}
