/*
 * libsvc/reqlog.c — the built-in request-logging wrappers (svc/wrap.h):
 * one line per call and per request, with its code and duration; the
 * trace and span come from the log context (svc/log.h).
 */
#include "svc/wrap.h"
#include "svc/log.h"
#include "svc/trace.h"

#include <time.h>

static double s_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int svc_log_call_wrapper(svc_call_info *call, void *arg)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = svc_call_next(call);
    double ms = s_ms_since(&t0);
    int code = rc == 0 ? 200 : call->err->code ? call->err->code : 500;
    const char *parent = svc_meta_get(call->meta, SVC_META_PARENT_ID);
    bool has_parent = svc_trace_id_valid(parent);
    const char *node = rc == 0 && call->reply->node ? call->reply->node : "";
    svc_info("call\tservice=%s endpoint=%s code=%d ms=%.3f%s%s%s%s", call->service,
             call->endpoint, code, ms, node[0] ? " node=" : "", node,
             has_parent ? " parent=" : "", has_parent ? parent : "");
    return rc;
}

int svc_log_handler_wrapper(svc_ctx *ctx, const void *req, void *rsp, void *arg)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = svc_ctx_next(ctx, req, rsp);
    double ms = s_ms_since(&t0);
    const svc_error *e = svc_ctx_last_error(ctx);
    int code = rc == 0 ? 200 : e ? e->code : 500;
    const char *parent = svc_ctx_meta(ctx, SVC_META_PARENT_ID);
    bool has_parent = svc_trace_id_valid(parent);
    svc_info("request\tendpoint=%s code=%d ms=%.3f%s%s", svc_ctx_endpoint(ctx), code, ms,
             has_parent ? " parent=" : "", has_parent ? parent : "");
    return rc;
}
