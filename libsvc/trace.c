/*
 * libsvc/trace.c — trace and span ids: made at the edge, a new span per
 * call, the parent recorded.  See svc/trace.h.
 */
#include "trace_int.h"
#include "wire.h"
#include "zctx.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void svc_trace_new_id(char buf[SVC_TRACE_ID_LEN + 1])
{
    snprintf(buf, SVC_TRACE_ID_LEN + 1, "%016llx%016llx", (unsigned long long)svc__rand(),
             (unsigned long long)svc__rand());
}

void svc_span_new_id(char buf[SVC_SPAN_ID_LEN + 1])
{
    svc__rand_hex(buf);
}

bool svc_trace_id_valid(const char *id)
{
    if (!id || !*id)
        return false;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_';
        if (!ok || n >= SVC_TRACE_ID_MAX)
            return false;
    }
    return true;
}

/* The first valid value of key in m, then in dflt; NULL if neither has one. */
static const char *s_pick(const svc_meta *m, const svc_meta *dflt, const char *key)
{
    const char *v = svc_meta_get(m, key);
    if (svc_trace_id_valid(v))
        return v;
    v = dflt ? svc_meta_get(dflt, key) : NULL;
    return svc_trace_id_valid(v) ? v : NULL;
}

int svc__trace_outgoing(svc_meta *m, const svc_meta *dflt, svc__logctx *lc)
{
    const svc__logctx *cur = svc__logctx_get();
    const char *trace = s_pick(m, dflt, SVC_META_TRACE_ID);
    if (!trace && cur && cur->trace[0])
        trace = cur->trace;
    if (trace)
        snprintf(lc->trace, sizeof lc->trace, "%s", trace);
    else
        svc_trace_new_id(lc->trace);
    const char *parent = s_pick(m, dflt, SVC_META_SPAN_ID);
    if (!parent && cur && cur->span[0])
        parent = cur->span;
    snprintf(lc->parent, sizeof lc->parent, "%s", parent ? parent : "");
    svc_span_new_id(lc->span);

    int rc = svc_meta_set(m, SVC_META_TRACE_ID, lc->trace);
    if (rc == 0)
        rc = svc_meta_set(m, SVC_META_SPAN_ID, lc->span);
    if (rc == 0 && lc->parent[0])
        rc = svc_meta_set(m, SVC_META_PARENT_ID, lc->parent);
    else if (rc == 0 && dflt && svc_meta_get(dflt, SVC_META_PARENT_ID))
        rc = svc_meta_set(m, SVC_META_PARENT_ID, "");   /* hide a stale default */
    else if (rc == 0)
        svc_meta_del(m, SVC_META_PARENT_ID);
    return rc;
}

int svc__trace_incoming(const Svc__Header *h, svc_meta *overlay, svc__logctx *lc)
{
    const char *trace = svc__header_meta(h, SVC_META_TRACE_ID);
    const char *span = svc__header_meta(h, SVC_META_SPAN_ID);
    const char *parent = svc__header_meta(h, SVC_META_PARENT_ID);
    int rc = 0;
    if (svc_trace_id_valid(trace)) {
        snprintf(lc->trace, sizeof lc->trace, "%s", trace);
    } else {
        svc_trace_new_id(lc->trace);
        rc = svc_meta_set(overlay, SVC_META_TRACE_ID, lc->trace);
    }
    if (svc_trace_id_valid(span)) {
        snprintf(lc->span, sizeof lc->span, "%s", span);
    } else {
        svc_span_new_id(lc->span);
        if (rc == 0)
            rc = svc_meta_set(overlay, SVC_META_SPAN_ID, lc->span);
    }
    snprintf(lc->parent, sizeof lc->parent, "%s", svc_trace_id_valid(parent) ? parent : "");
    return rc;
}
