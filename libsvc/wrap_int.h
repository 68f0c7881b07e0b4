/*
 * libsvc/wrap_int.h — wrapper chains and the state of one request being
 * handled (internal).  See svc/wrap.h.
 *
 *   client side: svc_client_call_raw (wrap.c) gives the call its trace ids,
 *     runs the client's wrappers, and the innermost step is
 *     svc__client_call_raw (client.c: registry, selector, retries).
 *   server side: svc__handle (worker.c) brackets each request with
 *     svc__req_begin / svc__req_end (trace ids, log context, endpoint
 *     stats) and runs the handler through svc__req_run.
 */
#ifndef SVC__WRAP_INT_H
#define SVC__WRAP_INT_H

#include <time.h>

#include "svc/wrap.h"
#include "log_int.h"
#include "wire.pb-c.h"

/* A chain of client wrappers, in the order added (0 = outermost). */
typedef struct svc__cwraps {
    svc_call_wrapper_fn fn[SVC_MAX_WRAPPERS];  /* the wrappers */
    void *arg[SVC_MAX_WRAPPERS];               /* their args */
    size_t n;                                  /* in use */
} svc__cwraps;

/* A chain of handler wrappers, in the order added (0 = outermost). */
typedef struct svc__hwraps {
    svc_handler_wrapper_fn fn[SVC_MAX_WRAPPERS];  /* the wrappers */
    void *arg[SVC_MAX_WRAPPERS];                  /* their args */
    size_t n;                                     /* in use */
} svc__hwraps;

struct svc__endpoint;

/* One request on a worker (or the loop thread), from svc__req_begin to svc__req_end. */
typedef struct svc__req {
    svc_service *svc;                   /* the service */
    const struct svc__endpoint *ep;     /* the endpoint */
    size_t pos;                         /* next handler wrapper to run */
    int rc;                             /* what the chain returned (svc__req_run) */
    svc_meta meta;                      /* pairs set by wrappers or made here (trace ids);
                                           they hide the header's pairs of the same key */
    svc__logctx lc;                     /* this request's trace ids */
    const svc__logctx *prev;            /* the thread's log context before it */
    struct timespec t0;                 /* when it began */
    bool deferred;                      /* answered later (svc_ctx_defer): its stats too */
} svc__req;

/*
 * Begins request h on ep: counts it, takes its trace ids (making them when
 * missing) and makes them and its deadline (monotonic ms, -1 none) the
 * thread's context.
 */
void svc__req_begin(svc__req *rq, svc_service *s, const struct svc__endpoint *ep,
                    const Svc__Header *h, int64_t deadline);

/* Runs the handler chain from the outermost wrapper; stores and returns its result. */
int svc__req_run(svc__req *rq, svc_ctx *ctx, const void *req, void *rsp);

/* The step of svc_ctx_next: the next wrapper, or the endpoint's handler. */
int svc__req_next(svc__req *rq, svc_ctx *ctx, const void *req, void *rsp);

/*
 * Ends the request: records its latency and whether it failed in the
 * endpoint's stats, restores the thread's log context, frees rq->meta.
 */
void svc__req_end(svc__req *rq, bool failed);

/* Sets up a new worker client of s: gives it s's client wrappers. */
void svc__wrap_worker_client(svc_service *s, svc_client *c);

/* Turns request logging on for s (--log-requests): both log wrappers, outermost. */
int svc__wrap_log_requests(svc_service *s);

#endif
