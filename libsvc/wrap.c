/*
 * libsvc/wrap.c — wrapper chains around calls and handlers, and the
 * per-request bracket (trace ids, log context, endpoint stats).
 * See svc/wrap.h and wrap_int.h.
 */
#include "wrap_int.h"
#include "client_int.h"
#include "epstats.h"
#include "service_int.h"
#include "trace_int.h"

#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define S_ID "svc.client"

/* ---- chains ------------------------------------------------------------------ */

static int s_cadd(svc__cwraps *w, svc_call_wrapper_fn fn, void *arg)
{
    if (!fn || w->n >= SVC_MAX_WRAPPERS)
        return SVC_EINVAL;
    w->fn[w->n] = fn;
    w->arg[w->n] = arg;
    w->n++;
    return 0;
}

int svc_client_wrap(svc_client *c, svc_call_wrapper_fn fn, void *arg)
{
    return s_cadd(svc__client_wraps(c), fn, arg);
}

int svc_wrap_client(svc_service *s, svc_call_wrapper_fn fn, void *arg)
{
    return s_cadd(&s->client_wraps, fn, arg);
}

int svc_wrap_handler(svc_service *s, svc_handler_wrapper_fn fn, void *arg)
{
    svc__hwraps *w = &s->handler_wraps;
    if (!fn || w->n >= SVC_MAX_WRAPPERS)
        return SVC_EINVAL;
    w->fn[w->n] = fn;
    w->arg[w->n] = arg;
    w->n++;
    return 0;
}

void svc__wrap_worker_client(svc_service *s, svc_client *c)
{
    *svc__client_wraps(c) = s->client_wraps;
}

int svc__wrap_log_requests(svc_service *s)
{
    int rc = svc_wrap_handler(s, svc_log_handler_wrapper, NULL);
    return rc ? rc : svc_wrap_client(s, svc_log_call_wrapper, NULL);
}

/* ---- client side --------------------------------------------------------------- */

/*
 * The public entry of every unary call: the call's metadata (the client's
 * defaults under the call's own pairs) gets its trace ids, the ids become
 * the thread's context for the call, and the wrappers run (the registry
 * lookups a client makes for itself are not calls: regcache.c asks the
 * registry on its own connection).  On a thread handling a request the
 * call ends by the request's deadline: one already passed fails with 408
 * and nothing is sent.
 */
int svc_client_call_raw(svc_client *c, const char *service, const char *endpoint,
                        const void *body, size_t len, const svc_call_opts *opts,
                        svc_reply *out, svc_error *err)
{
    memset(out, 0, sizeof *out);
    svc_call_opts o = opts ? *opts : (svc_call_opts){ 0 };
    const svc__logctx *cur = svc__logctx_get();
    svc__logctx lc;
    lc.deadline = cur ? cur->deadline : -1;
    if (lc.deadline >= 0) {
        int64_t left = lc.deadline - svc__now_ms();
        if (left <= 0) {
            svc_error_set(err, S_ID, 408, "deadline exceeded before calling %s.%s", service,
                          endpoint);
            return SVC_ETIMEOUT;
        }
        if (o.timeout_ms <= 0 || o.timeout_ms > left)
            o.timeout_ms = (int)left;
    }
    const svc_meta *dflt = svc__client_meta(c);
    bool wrapped = svc__client_wraps(c)->n > 0;
    int rc;

    if (!wrapped && (!o.meta || o.meta->n <= 29)) {
        /* No wrapper to change the metadata: send the call's pairs and the
         * trace ids as they are, without copying (the common, hot case). */
        svc__trace_meta tm;
        o.meta = svc__trace_call_meta(o.meta, dflt, &tm);
        tm.lc.deadline = lc.deadline;
        const svc__logctx *prev = svc__logctx_set(&tm.lc);
        rc = svc__client_call_raw(c, service, endpoint, body, len, &o, out, err);
        svc__logctx_set(prev);
        return rc;
    }

    /* Wrappers see (and may change) the whole metadata: the client's
     * defaults under the call's own pairs, trace ids included. */
    svc_meta meta = SVC_META_INIT;
    rc = svc_meta_merge(&meta, dflt);
    if (rc == 0 && opts && opts->meta)
        rc = svc_meta_merge(&meta, opts->meta);
    if (rc == 0)
        rc = svc__trace_outgoing(&meta, dflt, &lc);
    if (rc < 0) {
        svc_meta_release(&meta);
        svc_error_set(err, S_ID, 500, "out of memory");
        return -ENOMEM;
    }
    const svc__logctx *prev = svc__logctx_set(&lc);
    svc_call_info ci = { .client = c, .service = service, .endpoint = endpoint, .body = body,
                         .len = len, .opts = &o, .meta = &meta, .reply = out, .err = err };
    if (!wrapped)
        ci.depth_ = svc__client_wraps(c)->n;
    rc = svc_call_next(&ci);
    svc__logctx_set(prev);
    svc_meta_release(&meta);
    return rc;
}

int svc_call_next(svc_call_info *ci)
{
    const svc__cwraps *w = svc__client_wraps(ci->client);
    size_t i = ci->depth_;
    if (i < w->n) {
        ci->depth_ = i + 1;
        int rc = w->fn[i](ci, w->arg[i]);
        ci->depth_ = i;
        return rc;
    }
    svc_reply_release(ci->reply);
    svc_call_opts o = *ci->opts;
    o.meta = ci->meta;
    return svc__client_call_raw(ci->client, ci->service, ci->endpoint, ci->body, ci->len, &o,
                                ci->reply, ci->err);
}

int svc_call_fail(svc_call_info *ci, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    svc_error_setv(ci->err, S_ID, code, fmt, ap);
    va_end(ap);
    return SVC_EREMOTE;
}

/* ---- server side --------------------------------------------------------------- */

void svc__req_begin(svc__req *rq, svc_service *s, const svc__endpoint *ep, const Svc__Header *h,
                    int64_t deadline)
{
    *rq = (svc__req){ .svc = s, .ep = ep, .meta = SVC_META_INIT };
    clock_gettime(CLOCK_MONOTONIC, &rq->t0);
    svc__epstats_begin(ep->stats);
    /* Out of memory only loses the made-up ids for onward calls; the log keeps them. */
    (void)svc__trace_incoming(h, &rq->meta, &rq->lc);
    rq->lc.deadline = deadline;
    rq->prev = svc__logctx_set(&rq->lc);
}

int svc__req_next(svc__req *rq, svc_ctx *ctx, const void *req, void *rsp)
{
    const svc__hwraps *w = &rq->svc->handler_wraps;
    size_t i = rq->pos;
    if (i < w->n) {
        rq->pos = i + 1;
        int rc = w->fn[i](ctx, req, rsp, w->arg[i]);
        rq->pos = i;
        return rc;
    }
    if (rq->ep->fn)
        return rq->ep->fn(ctx, req, rsp);
    if (rq->ep->iofn)
        return rq->ep->iofn(ctx, (svc_stream *)rsp);
    return rq->ep->sfn(ctx, req, (svc_stream *)rsp);
}

int svc__req_run(svc__req *rq, svc_ctx *ctx, const void *req, void *rsp)
{
    rq->pos = 0;
    rq->rc = svc__req_next(rq, ctx, req, rsp);
    return rq->rc;
}

void svc__req_end(svc__req *rq, bool failed)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t us = (int64_t)(t1.tv_sec - rq->t0.tv_sec) * 1000000 +
                 (t1.tv_nsec - rq->t0.tv_nsec) / 1000;
    if (!rq->deferred)
        svc__epstats_end(rq->ep->stats, us > 0 ? (uint64_t)us : 0, failed, rq->ep->fn != NULL);
    svc__logctx_set(rq->prev);
    svc_meta_release(&rq->meta);
}
