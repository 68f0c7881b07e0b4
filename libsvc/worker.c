/*
 * libsvc/worker.c — the handler thread pool and svc_ctx.
 *
 * Workers take jobs from the service's queue, so a handler that blocks (on a
 * call to another service, say) holds only its own thread: the loop thread
 * keeps receiving and the other workers keep answering.  This is the zguide
 * multithreaded-server pattern with an in-process queue instead of inproc
 * sockets.
 */
#include "service_int.h"
#include "clock.h"
#include "svc/codec.h"
#include "svc/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct svc_ctx {
    svc_service *svc;          /* the service */
    const Svc__Header *hdr;    /* the request's header, borrowed */
    const svc__endpoint *ep;   /* the endpoint */
    int64_t deadline;          /* monotonic ms, -1 none */
    svc_client **client;       /* the worker's client slot (lazily created), or NULL */
    svc_client *own_client;    /* made for an inline call, destroyed after */
    svc_error err;             /* set by svc_ctx_error */
    svc__req *rq;              /* wrapper chain, metadata set by wrappers, trace (wrap.c) */
    zmq_msg_t *route;          /* the caller's routing id, borrowed (svc_ctx_defer) */
    ProtobufCMessage **req;    /* the decoded unary request, or NULL: svc_ctx_defer takes it */
    svc_deferred *deferred;    /* svc_ctx_defer's answer handle, or NULL */
};

void svc__job_free(svc__job *j)
{
    if (!j)
        return;
    svc__msg_close(&j->msg);
    if (j->stream)
        svc__stream_unref(j->stream);
    free(j);
}

/*
 * An error answer to j before its handler ran.  For a stream the answer
 * takes over the job's reference and ends the stream, so the loop unlists it.
 */
static svc__out *s_fail(svc_service *s, svc__job *j, int code, const char *what, const char *why)
{
    svc__out *o = svc__error_out(s, svc__msg_route(&j->msg), j->msg.hdr->id, code, "%s%s", what,
                                 why);
    if (o && j->stream) {
        o->stream = j->stream;
        o->ends_stream = true;
        j->stream = NULL;
    }
    return o;
}

svc__out *svc__answer_out(svc_service *s, zmq_msg_t *route, uint64_t id, const char *ct,
                          const svc__endpoint *ep, const ProtobufCMessage *rsp)
{
    void *buf = NULL;
    size_t len = 0;
    if (svc_codec_encode(ct, rsp, &buf, &len) < 0)
        return svc__error_out(s, route, id, 500, "cannot encode response of \"%s\"", ep->name);
    if (len > SVC_WIRE_MAX_BODY) {
        free(buf);
        return svc__error_out(s, route, id, 500,
                              "response of \"%s\" is %zu bytes, over the 16 MiB limit",
                              ep->name, len);
    }
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__RESPONSE;
    h.id = id;
    h.content_type = (char *)ct;
    svc__out *o = calloc(1, sizeof *o);
    if (o && svc__pack_out(o, route, &h, buf ? buf : "", len) < 0) {
        svc__out_free(o);
        o = NULL;
    }
    free(buf);
    return o;
}

/* Decodes, runs the handler through its wrappers (rq), builds the answer. */
static svc__out *s_handle(svc_service *s, svc__job *j, svc_client **client, svc__req *rq)
{
    const Svc__Header *h = j->msg.hdr;
    const svc__endpoint *ep = j->ep;
    zmq_msg_t *route = svc__msg_route(&j->msg);
    const char *ct = h->content_type[0] ? h->content_type : SVC_CT_PROTOBUF;

    char what[256];
    if (j->deadline >= 0 && svc__now_ms() >= j->deadline) {
        snprintf(what, sizeof what, "deadline exceeded before \"%s\" ran", ep->name);
        return s_fail(s, j, 408, what, "");
    }

    svc_ctx ctx = { .svc = s, .hdr = h, .ep = ep, .deadline = j->deadline, .client = client,
                    .rq = rq, .route = route };
    if (ep->iofn) {
        /* Client/bidi stream: requests come by svc_stream_recv (wrappers get
         * req NULL); the stream ends when the handler returns (stream.c). */
        svc_stream *st = j->stream;
        int rc = svc__req_run(rq, &ctx, NULL, st);
        if (rc != 0 && !svc_error_isset(&ctx.err))
            svc_error_set(&ctx.err, s->name, 500, "handler of \"%s\" failed: %s", ep->name,
                          svc_strerror(rc));
        j->stream = NULL;
        svc_stream_close(&st, rc != 0 ? &ctx.err : NULL);
        svc_error_release(&ctx.err);
        svc_client_destroy(&ctx.own_client);
        return NULL;
    }

    size_t blen;
    const void *body = svc__msg_body(&j->msg, &blen);
    ProtobufCMessage *req = NULL;
    char why[256] = "";
    if (svc_codec_decode(ct, ep->req, body ? body : "", blen, &req, why, sizeof why) < 0) {
        snprintf(what, sizeof what, "invalid request to \"%s\": ", ep->name);
        return s_fail(s, j, 400, what, why);
    }

    svc__out *o = NULL;
    int rc;
    if (ep->sfn) {
        svc_stream *st = j->stream;
        j->stream = NULL;          /* the handler owns the job's reference now */
        rc = svc__req_run(rq, &ctx, req, st);
        if (rc == 0)
            goto out;
        /* The handler failed: the stream ends with the error (handler kept no ref). */
        if (!svc_error_isset(&ctx.err))
            svc_error_set(&ctx.err, s->name, 500, "handler of \"%s\" failed: %s", ep->name,
                          svc_strerror(rc));
        svc_stream_close(&st, &ctx.err);
        goto out;
    }

    ProtobufCMessage *rsp = malloc(ep->rsp->sizeof_message);
    if (!rsp) {
        o = svc__error_out(s, route, h->id, 500, "out of memory");
        goto out;
    }
    protobuf_c_message_init(ep->rsp, rsp);
    ctx.req = &req;
    rc = svc__req_run(rq, &ctx, req, rsp);
    if (ctx.deferred) {
        /* The answer left with the handle (which took req); its stats too. */
        if (rc != 0)
            svc_error_log("handler of \"%s\" deferred its answer, then returned %d: ignored",
                          ep->name, rc);
        rq->deferred = true;
    } else if (rc == 0)
        o = svc__answer_out(s, route, h->id, ct, ep, rsp);
    else if (svc_error_isset(&ctx.err))
        o = svc__error_out(s, route, h->id, ctx.err.code, "%s", ctx.err.detail);
    else
        o = svc__error_out(s, route, h->id, 500, "handler of \"%s\" failed: %s", ep->name,
                           svc_strerror(rc));
    protobuf_c_message_free_unpacked(rsp, NULL);

out:
    protobuf_c_message_free_unpacked(req, NULL);
    svc_error_release(&ctx.err);
    svc_client_destroy(&ctx.own_client);
    return o;
}

/*
 * Every request, unary or stream open, on a worker or the loop thread: its
 * trace ids and endpoint stats bracket the work (wrap.c).
 */
svc__out *svc__handle(svc_service *s, svc__job *j, svc_client **client)
{
    svc__req rq;
    svc__req_begin(&rq, s, j->ep, j->msg.hdr, j->deadline);
    svc__out *o = s_handle(s, j, client, &rq);
    /* No answer: a unary call ran out of memory; a stream handler owns or ended its stream. */
    bool failed = o ? o->is_error : j->ep->fn != NULL || rq.rc != 0;
    svc__req_end(&rq, failed);
    return o;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Workers awake (running a handler or about to look for a job), less those
 * in a handler for SVC_BLOCKED_US or more (mu held).
 */
static int s_running(svc_service *s)
{
    int awake = s->n_threads - s->n_idle + s->n_woken;
    if (awake < s->run_target)
        return awake;
    int64_t now = s_now_us();
    for (int i = 0; i < s->n_threads; i++) {
        int64_t since = atomic_load_explicit(&s->wk[i].busy_since, memory_order_relaxed);
        if (since && now - since >= SVC_BLOCKED_US)
            awake--;
    }
    return awake;
}

/*
 * Waking a thread per job costs more than a short handler, and on a small
 * machine the woken threads only take turns on the same CPUs: so a job
 * wakes a worker only when fewer than run_target are running.  A handler
 * that blocks (calls another service, sleeps) stops counting after
 * SVC_BLOCKED_US, and the loop's wake_timer then wakes another for the
 * jobs behind it.
 */
void svc__workers_wake(svc_service *s)
{
    if (s->n_idle > s->n_woken && s_running(s) < s->run_target) {
        s->n_woken++;
        pthread_cond_signal(&s->cv);
    }
}

/* The worker running on this thread; NULL on any other thread. */
static __thread svc__worker *s_self;

void svc_handler_blocking(void)
{
    svc__worker *me = s_self;
    if (!me || atomic_load_explicit(&me->busy_since, memory_order_relaxed) == 1)
        return;
    /* busy_since 1 reads as "in its handler since long ago": blocked. */
    atomic_store_explicit(&me->busy_since, 1, memory_order_relaxed);
    svc_service *s = me->svc;
    pthread_mutex_lock(&s->mu);
    if (s->jobs)
        svc__workers_wake(s);
    pthread_mutex_unlock(&s->mu);
}

static void *s_worker(void *arg)
{
    svc__worker *me = arg;
    svc_service *s = me->svc;
    svc_client *client = NULL;
    s_self = me;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->jobs && !s->quit_workers) {
            s->n_idle++;
            pthread_cond_wait(&s->cv, &s->mu);
            s->n_idle--;
            if (s->n_woken > 0)
                s->n_woken--;
        }
        if (!s->jobs) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        svc__job *j = s->jobs;
        s->jobs = j->next;
        bool more = s->jobs != NULL;   /* others wait: answer through the loop */
        if (!s->jobs)
            s->jobs_tail = NULL;
        s->n_jobs--;
        size_t blen;
        svc__msg_body(&j->msg, &blen);
        s->queued_bytes -= blen;
        atomic_fetch_add(&s->inflight, 1);
        pthread_mutex_unlock(&s->mu);

        atomic_store_explicit(&me->busy_since, s_now_us(), memory_order_relaxed);
        svc__out *o = svc__handle(s, j, &client);
        atomic_store_explicit(&me->busy_since, 0, memory_order_relaxed);
        svc__job_free(j);
        /* A unary answer goes out from here when no other job waits; a
         * stream's, and one among many (under load), through the loop,
         * which sends them in a batch and then drains the socket: that
         * saves the ZMQ_EVENTS read (a poll(2)) a send from here needs. */
        bool wake = false;
        if (o && !o->stream && !more) {
            wake = svc__server_send(s, o);
            o = NULL;
        }
        /* In-flight drops under the lock, after the send, so a draining
         * loop never sees "nothing in flight" with an answer unsent; the
         * wake-up too, so it never touches a loop that is gone (out_open). */
        pthread_mutex_lock(&s->mu);
        atomic_fetch_sub(&s->inflight, 1);
        if (s->out_open) {
            if (o) {
                svc__out_append(s, o);
                wake = true;
                o = NULL;
            }
            if (wake || atomic_load(&s->draining))
                ev_async_send(s->loop, &s->wake);
        }
        pthread_mutex_unlock(&s->mu);
        svc__out_free(o);
    }
    svc_client_destroy(&client);
    return NULL;
}

int svc__workers_start(svc_service *s)
{
    s->threads = calloc((size_t)s->workers, sizeof *s->threads);
    s->wk = calloc((size_t)s->workers, sizeof *s->wk);
    if (!s->threads || !s->wk)
        return -ENOMEM;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->run_target = cpus > 2 ? (int)cpus - 1 : 1;
    if (s->run_target > s->workers)
        s->run_target = s->workers;
    for (int i = 0; i < s->workers; i++) {
        s->wk[i].svc = s;
        atomic_init(&s->wk[i].busy_since, 0);
        /* Under mu, so that the loop's wake checks see a consistent n_threads. */
        pthread_mutex_lock(&s->mu);
        int rc = pthread_create(&s->threads[i], NULL, s_worker, &s->wk[i]);
        if (rc == 0)
            s->n_threads++;
        pthread_mutex_unlock(&s->mu);
        if (rc) {
            svc_error_log("cannot start worker thread\terror=\"%s\"", strerror(rc));
            return -rc;
        }
    }
    return 0;
}

/*
 * Stops the workers.  After a drain timeout a handler may never return:
 * then each worker gets until `grace` to finish, and those that do not are
 * abandoned (detached); returns how many were.
 */
int svc__workers_stop(svc_service *s, bool bounded)
{
    pthread_mutex_lock(&s->mu);
    s->quit_workers = true;
    /* Jobs still queued (drain timed out) are answered by nobody: drop them. */
    while (s->jobs) {
        svc__job *j = s->jobs;
        s->jobs = j->next;
        svc__job_free(j);
    }
    s->jobs_tail = NULL;
    s->n_jobs = 0;
    s->queued_bytes = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    struct timespec grace;
    clock_gettime(CLOCK_REALTIME, &grace);
    grace.tv_sec += 1;
    int abandoned = 0;
    for (int i = 0; i < s->n_threads; i++) {
        if (!bounded) {
            pthread_join(s->threads[i], NULL);
        } else if (pthread_timedjoin_np(s->threads[i], NULL, &grace) != 0) {
            pthread_detach(s->threads[i]);
            abandoned++;
        }
    }
    pthread_mutex_lock(&s->mu);
    free(s->threads);
    s->threads = NULL;
    s->n_threads = 0;
    pthread_mutex_unlock(&s->mu);
    /* An abandoned worker still writes its busy_since: keep wk then. */
    if (!abandoned) {
        free(s->wk);
        s->wk = NULL;
    }
    return abandoned;
}

/* ---- svc_ctx --------------------------------------------------------------- */

int svc_ctx_error(svc_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    svc_error_setv(&ctx->err, ctx->svc->name, code, fmt, ap);
    va_end(ap);
    return SVC_EREMOTE;
}

const char *svc_ctx_meta(const svc_ctx *ctx, const char *key)
{
    const char *v = ctx->rq ? svc_meta_get(&ctx->rq->meta, key) : NULL;
    return v ? v : svc__header_meta(ctx->hdr, key);
}

const char *svc_ctx_endpoint(const svc_ctx *ctx)
{
    return ctx->ep->name;
}

int svc_ctx_remaining_ms(const svc_ctx *ctx)
{
    if (ctx->deadline < 0)
        return -1;
    int64_t left = ctx->deadline - svc__now_ms();
    return left < 0 ? 0 : (int)left;
}

svc_service *svc__ctx_service(svc_ctx *ctx)
{
    return ctx->svc;
}

void *svc_ctx_data(const svc_ctx *ctx)
{
    return ctx->svc->data;
}

svc_client *svc_ctx_client(svc_ctx *ctx)
{
    svc_client **slot = ctx->client ? ctx->client : &ctx->own_client;
    if (!*slot) {
        *slot = svc_client_new(ctx->svc->registry);
        if (*slot)
            svc__wrap_worker_client(ctx->svc, *slot);
    }
    return *slot;
}

int svc_ctx_call(svc_ctx *ctx, const char *service, const char *endpoint,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rsp_desc,
                 ProtobufCMessage **rsp, const svc_call_opts *opts, svc_error *err)
{
    svc_call_opts o = opts ? *opts : (svc_call_opts){ 0 };
    if (ctx->ep->inline_) {
        *rsp = NULL;
        svc_error_set(err, ctx->svc->name, 500, "inline handler of \"%s\" must not call other "
                      "services (register it with svc_handle)", ctx->ep->name);
        return SVC_EINVAL;
    }
    int left = svc_ctx_remaining_ms(ctx);
    if (left == 0) {
        *rsp = NULL;
        svc_error_set(err, ctx->svc->name, 408, "deadline exceeded before calling %s.%s",
                      service, endpoint);
        return SVC_ETIMEOUT;
    }
    if (left > 0 && (o.timeout_ms <= 0 || o.timeout_ms > left))
        o.timeout_ms = left;

    svc_meta meta = SVC_META_INIT;
    for (size_t i = 0; i < ctx->hdr->n_metadata; i++)
        svc_meta_set(&meta, ctx->hdr->metadata[i]->key, ctx->hdr->metadata[i]->value);
    if (ctx->rq)
        svc_meta_merge(&meta, &ctx->rq->meta);
    if (opts && opts->meta)
        svc_meta_merge(&meta, opts->meta);
    o.meta = &meta;
    svc_client *c = svc_ctx_client(ctx);
    int rc;
    if (!c) {
        svc_error_set(err, ctx->svc->name, 500, "out of memory");
        rc = -ENOMEM;
    } else {
        rc = svc_call(c, service, endpoint, req, rsp_desc, rsp, &o, err);
    }
    svc_meta_release(&meta);
    return rc;
}

svc_deferred *svc_ctx_defer(svc_ctx *ctx)
{
    if (ctx->deferred || !ctx->req || !*ctx->req || !ctx->rq)
        return NULL;
    const char *ct = ctx->hdr->content_type[0] ? ctx->hdr->content_type : SVC_CT_PROTOBUF;
    ctx->deferred = svc__deferred_new(ctx->svc, ctx->ep, ctx->route, ctx->hdr->id, ct,
                                      *ctx->req, &ctx->rq->t0);
    if (ctx->deferred)
        *ctx->req = NULL;   /* the handle owns the request now */
    return ctx->deferred;
}

/* ---- wrappers (svc/wrap.h) ------------------------------------------------------- */

int svc_ctx_next(svc_ctx *ctx, const void *req, void *rsp)
{
    return ctx->rq ? svc__req_next(ctx->rq, ctx, req, rsp) : SVC_EINVAL;
}

int svc_ctx_set_meta(svc_ctx *ctx, const char *key, const char *value)
{
    return ctx->rq ? svc_meta_set(&ctx->rq->meta, key, value) : SVC_EINVAL;
}

const svc_error *svc_ctx_last_error(const svc_ctx *ctx)
{
    return svc_error_isset(&ctx->err) ? &ctx->err : NULL;
}

bool svc_ctx_is_stream(const svc_ctx *ctx)
{
    return ctx->ep->sfn != NULL;
}
