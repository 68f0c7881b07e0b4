/*
 * libsvc/deferred.c — deferred answers (svc_ctx_defer, svc/service.h).
 *
 * A handle keeps what the answer needs once the handler and its job are
 * gone: the caller's routing id, the request id and content type, the
 * endpoint (for its stats) and the decoded request.  It counts in the
 * service's in-flight requests, so a drain waits for it.  The answer is
 * sent from the answering thread, as a worker sends its own (server.c,
 * under sock_mu), and wakes the loop when input may be waiting behind that
 * send or the service drains.
 */
#include "service_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/log.h"

struct svc_deferred {
    svc_service *svc;            /* the service answering */
    const svc__endpoint *ep;     /* the endpoint (name, response type, stats) */
    zmq_msg_t route;             /* the caller's routing id (a copy) */
    uint64_t id;                 /* the request id */
    char *ct;                    /* content type of the answer, owned */
    ProtobufCMessage *req;       /* the decoded request, owned */
    struct timespec t0;          /* when the request began */
};

svc_deferred *svc__deferred_new(svc_service *s, const svc__endpoint *ep, zmq_msg_t *route,
                                uint64_t id, const char *ct, ProtobufCMessage *req,
                                const struct timespec *t0)
{
    svc_deferred *r = calloc(1, sizeof *r);
    if (!r || !(r->ct = strdup(ct))) {
        free(r);
        return NULL;
    }
    zmq_msg_init(&r->route);
    if (zmq_msg_copy(&r->route, route) < 0) {
        zmq_msg_close(&r->route);
        free(r->ct);
        free(r);
        return NULL;
    }
    r->svc = s;
    r->ep = ep;
    r->id = id;
    r->req = req;
    r->t0 = *t0;
    atomic_fetch_add(&s->inflight, 1);
    return r;
}

const void *svc_deferred_request(const svc_deferred *r)
{
    return r ? r->req : NULL;
}

/* Sends o (may be NULL: out of memory), settles the stats, frees *rp. */
static int s_finish(svc_deferred **rp, svc__out *o)
{
    svc_deferred *r = *rp;
    svc_service *s = r->svc;
    *rp = NULL;

    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t us = (int64_t)(t1.tv_sec - r->t0.tv_sec) * 1000000 +
                 (t1.tv_nsec - r->t0.tv_nsec) / 1000;
    bool failed = !o || o->is_error;
    svc__epstats_end(r->ep->stats, us > 0 ? (uint64_t)us : 0, failed, true);

    int rc = o ? 0 : -ENOMEM;
    bool wake = o ? svc__server_send(s, o) : false;
    /* As a worker does: in-flight drops after the send, under mu, and the
     * wake-up only while the loop is there to take it (out_open). */
    pthread_mutex_lock(&s->mu);
    atomic_fetch_sub(&s->inflight, 1);
    if (s->out_open && (wake || atomic_load(&s->draining)))
        ev_async_send(s->loop, &s->wake);
    pthread_mutex_unlock(&s->mu);

    zmq_msg_close(&r->route);
    protobuf_c_message_free_unpacked(r->req, NULL);
    free(r->ct);
    free(r);
    return rc;
}

int svc_deferred_send(svc_deferred **rp, const ProtobufCMessage *rsp)
{
    if (!rp || !*rp)
        return SVC_EINVAL;
    svc_deferred *r = *rp;
    svc__out *o;
    if (!rsp || rsp->descriptor != r->ep->rsp)
        o = svc__error_out(r->svc, &r->route, r->id, 500,
                           "handler of \"%s\" answered with the wrong message type", r->ep->name);
    else
        o = svc__answer_out(r->svc, &r->route, r->id, r->ct, r->ep, rsp);
    bool bad = o && o->is_error;
    int rc = s_finish(rp, o);
    return rc ? rc : bad ? SVC_EINVAL : 0;
}

int svc_deferred_error(svc_deferred **rp, int code, const char *fmt, ...)
{
    if (!rp || !*rp)
        return SVC_EINVAL;
    svc_deferred *r = *rp;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (code < 400 || code > 599)
        code = 500;
    return s_finish(rp, svc__error_out(r->svc, &r->route, r->id, code, "%s", detail));
}
