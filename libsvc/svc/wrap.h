/*
 * svc/wrap.h — wrappers around calls and handlers (middleware), as
 * go-micro's WrapCall / WrapHandler.
 *
 * A wrapper is a function that gets the call (or the request) before it
 * happens and decides what to do with it: look at or change its metadata,
 * refuse it with an error, or pass it on with svc_call_next() /
 * svc_ctx_next() and then look at the result and the time it took.
 * Wrappers chain in the order they were added: the first added is the
 * outermost, so it runs first on the way in and last on the way out.
 *
 *     static int timing(svc_ctx *ctx, const void *req, void *rsp, void *arg)
 *     {
 *         if (!svc_ctx_meta(ctx, "Authorization"))
 *             return svc_ctx_error(ctx, 401, "no token");     // handler never runs
 *         struct timespec t0, t1;
 *         clock_gettime(CLOCK_MONOTONIC, &t0);
 *         int rc = svc_ctx_next(ctx, req, rsp);               // inner wrappers + handler
 *         clock_gettime(CLOCK_MONOTONIC, &t1);
 *         ...record rc and t1 - t0...
 *         return rc;
 *     }
 *     svc_wrap_handler(s, timing, NULL);
 *
 * Where they apply:
 *   svc_wrap_handler  every endpoint of the service (Debug.* and streams
 *                     included), on the thread that runs the handler
 *   svc_wrap_client   every call the service's handlers make (the worker
 *                     clients behind svc_ctx_client / svc_ctx_call)
 *   svc_client_wrap   every call of one client (svc_call,
 *                     svc_client_call_raw), e.g. in a client program
 * The registry lookups a client makes for itself during a call are not
 * wrapped (they are traced).
 *
 * Add wrappers before svc_run (or before the client's first call); they
 * are kept for the life of the service or client.  They run on several
 * threads at once (one per worker): a wrapper's arg must be safe to use so.
 * At most SVC_MAX_WRAPPERS per chain.
 *
 * Trace ids (svc/trace.h) are set before the first wrapper runs, so
 * wrappers see them in the metadata and in svc_trace_current().
 */
#ifndef SVC_WRAP_H
#define SVC_WRAP_H

#include <stdbool.h>
#include <stddef.h>

#include "svc/client.h"
#include "svc/error.h"
#include "svc/meta.h"
#include "svc/service.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SVC_MAX_WRAPPERS 32   /* per chain; adding more fails with SVC_EINVAL */

/* ---- client side ------------------------------------------------------------ */

/*
 * One call on its way through the client wrappers.  Everything is borrowed
 * for the duration of the wrapper call.  A wrapper may change opts and
 * meta (and point service/endpoint/body elsewhere) before svc_call_next.
 */
typedef struct svc_call_info {
    svc_client *client;       /* the client making the call */
    const char *service;      /* target service */
    const char *endpoint;     /* target endpoint ("Struct.Method") */
    const void *body;         /* request body, encoded in opts->content_type */
    size_t len;               /* bytes in body */
    svc_call_opts *opts;      /* this call's options (a copy the wrapper may change; meta ignored) */
    svc_meta *meta;           /* this call's metadata, trace ids included: set and delete freely */
    svc_reply *reply;         /* filled by a successful svc_call_next */
    svc_error *err;           /* filled when the call fails */
    size_t depth_;            /* private: position in the chain */
} svc_call_info;

/*
 * A client wrapper.  Returns what the call should return: usually
 * svc_call_next(call); or a negative code with call->err set, without
 * calling next, to refuse the call (nothing is sent).
 */
typedef int (*svc_call_wrapper_fn)(svc_call_info *call, void *arg);

/* Adds a wrapper to every later call of c.  0, or SVC_EINVAL (NULL fn, chain full). */
int svc_client_wrap(svc_client *c, svc_call_wrapper_fn fn, void *arg);

/*
 * Runs the rest of the chain and then the call itself (registry, selector,
 * retries: svc/client.h).  Returns 0 with call->reply filled, or a negative
 * code with call->err filled — the codes of svc_client_call_raw.  May be
 * called more than once (a retrying wrapper); each call replaces the reply.
 */
int svc_call_next(svc_call_info *call);

/*
 * Refuses the call from a wrapper: sets call->err to {id "svc.client",
 * code, detail} and returns SVC_EREMOTE, so that
 * `return svc_call_fail(call, 401, "no token for \"%s\"", call->service);`
 * makes the caller see that error as if a server had answered it.
 */
int svc_call_fail(svc_call_info *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- server side ------------------------------------------------------------ */

/*
 * A handler wrapper.  req is the decoded request (NULL for client-streaming
 * and bidirectional endpoints, whose requests come by svc_stream_recv); rsp
 * is the response message being filled for a unary endpoint, or the
 * svc_stream * for a stream endpoint (svc_ctx_is_stream).  Returns what the handler would:
 * usually svc_ctx_next(ctx, req, rsp); or svc_ctx_error(...) without
 * calling next, to answer that error instead of running the handler.
 */
typedef int (*svc_handler_wrapper_fn)(svc_ctx *ctx, const void *req, void *rsp, void *arg);

/* Adds a handler wrapper to every endpoint of s.  0, or SVC_EINVAL (NULL fn, chain full). */
int svc_wrap_handler(svc_service *s, svc_handler_wrapper_fn fn, void *arg);

/*
 * Adds a client wrapper to the clients s's handlers call through
 * (svc_ctx_client, svc_ctx_call).  0, or SVC_EINVAL (NULL fn, chain full).
 */
int svc_wrap_client(svc_service *s, svc_call_wrapper_fn fn, void *arg);

/*
 * Runs the rest of the handler chain and then the endpoint's handler;
 * returns its result (SVC_EINVAL outside a request).  Call it only from a
 * handler wrapper, with the req and rsp it got, and at most once: the
 * handler fills rsp, and a second run would fill it again.
 */
int svc_ctx_next(svc_ctx *ctx, const void *req, void *rsp);

/*
 * Sets metadata of the request being handled, as seen from here on by
 * svc_ctx_meta() and passed on by svc_ctx_call() (e.g. an auth wrapper
 * adding the caller's account).  Copies key and value.  0 or -ENOMEM.
 */
int svc_ctx_set_meta(svc_ctx *ctx, const char *key, const char *value);

/* The error set by svc_ctx_error() for this request so far, or NULL; borrowed. */
const svc_error *svc_ctx_last_error(const svc_ctx *ctx);

/* True when the endpoint being served is a stream endpoint. */
bool svc_ctx_is_stream(const svc_ctx *ctx);

/* ---- built-in wrappers -------------------------------------------------------- */

/*
 * Request logging: one info line per call or request, after it ends:
 *   msg="call" service=greeter endpoint=Say.Hello code=200 ms=0.412 trace=... span=...
 *   msg="request" endpoint=Say.Hello code=200 ms=0.180 parent=... trace=... span=...
 * code is 200 on success, else the error's code.  Off by default; a
 * service turns both on with --log-requests or SVC_LOG_REQUESTS=1 (they
 * are then the outermost wrappers).  arg is unused.
 */
int svc_log_call_wrapper(svc_call_info *call, void *arg);
int svc_log_handler_wrapper(svc_ctx *ctx, const void *req, void *rsp, void *arg);

#ifdef __cplusplus
}
#endif
#endif
