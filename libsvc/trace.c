/*
 * libsvc/trace.c — trace and span ids: made at the edge, a new span per
 * call, the parent recorded.  See svc/trace.h.
 *
 * Every call passes through here, so nothing on the way allocates or
 * formats with printf: ids are hex-encoded by hand and copied by length.
 */
#include "trace_int.h"
#include "wire.h"
#include "zctx.h"

#include <errno.h>
#include <string.h>

/* Writes 16 hex digits of a fresh random number at out (no NUL). */
static void s_hex16(char *out)
{
    static const char digits[] = "0123456789abcdef";
    uint64_t x = svc__rand();
    for (int i = 15; i >= 0; i--, x >>= 4)
        out[i] = digits[x & 15];
}

void svc_trace_new_id(char buf[SVC_TRACE_ID_LEN + 1])
{
    s_hex16(buf);
    s_hex16(buf + 16);
    buf[SVC_TRACE_ID_LEN] = '\0';
}

void svc_span_new_id(char buf[SVC_SPAN_ID_LEN + 1])
{
    s_hex16(buf);
    buf[SVC_SPAN_ID_LEN] = '\0';
}

/* The length of id when it is a valid trace or span id, else 0. */
static size_t s_valid_len(const char *id)
{
    if (!id)
        return 0;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_';
        if (!ok || n >= SVC_TRACE_ID_MAX)
            return 0;
    }
    return n;
}

bool svc_trace_id_valid(const char *id)
{
    return s_valid_len(id) > 0;
}

/* Copies id into dst (SVC_TRACE_ID_MAX + 1 bytes) when valid; returns whether it was. */
static bool s_take(char *dst, const char *id)
{
    size_t n = s_valid_len(id);
    if (n)
        memcpy(dst, id, n + 1);
    return n > 0;
}

/* The value of key in m, then in dflt (which may be NULL); NULL if neither has one. */
static bool s_take_from(char *dst, const svc_meta *m, const svc_meta *dflt, const char *key)
{
    return (m && s_take(dst, svc_meta_get(m, key))) ||
           (dflt && s_take(dst, svc_meta_get(dflt, key)));
}

void svc__trace_pick(const svc_meta *m, const svc_meta *dflt, svc__logctx *lc)
{
    const svc__logctx *cur = svc__logctx_get();
    if (!s_take_from(lc->trace, m, dflt, SVC_META_TRACE_ID) &&
        !(cur && s_take(lc->trace, cur->trace)))
        svc_trace_new_id(lc->trace);
    if (!s_take_from(lc->parent, m, dflt, SVC_META_SPAN_ID) &&
        !(cur && s_take(lc->parent, cur->span)))
        lc->parent[0] = '\0';
    svc_span_new_id(lc->span);
}

int svc__trace_set(svc_meta *m, const svc_meta *dflt, const svc__logctx *lc)
{
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

int svc__trace_outgoing(svc_meta *m, const svc_meta *dflt, svc__logctx *lc)
{
    svc__trace_pick(m, dflt, lc);
    return svc__trace_set(m, dflt, lc);
}

size_t svc__trace_view(const svc_meta *m, const svc_meta *dflt, const svc__logctx *lc,
                       svc_meta_pair *pairs, size_t cap, svc_meta *view)
{
    static const char *const keys[] = { SVC_META_TRACE_ID, SVC_META_SPAN_ID,
                                        SVC_META_PARENT_ID };
    size_t n = 0, extra = m ? m->n : 0;
    if (extra + 3 > cap)
        return 0;
    for (size_t i = 0; i < extra; i++) {
        const char *k = m->pairs[i].key;
        if (strcmp(k, keys[0]) == 0 || strcmp(k, keys[1]) == 0 || strcmp(k, keys[2]) == 0)
            continue;
        pairs[n++] = m->pairs[i];
    }
    pairs[n++] = (svc_meta_pair){ (char *)keys[0], (char *)lc->trace };
    pairs[n++] = (svc_meta_pair){ (char *)keys[1], (char *)lc->span };
    if (lc->parent[0] || (dflt && svc_meta_get(dflt, SVC_META_PARENT_ID)))
        pairs[n++] = (svc_meta_pair){ (char *)keys[2], (char *)lc->parent };
    *view = (svc_meta){ .pairs = pairs, .n = n, .cap = cap };
    return n;
}

const svc_meta *svc__trace_call_meta(const svc_meta *call_meta, const svc_meta *client_meta,
                                     svc__trace_meta *tm)
{
    svc__trace_pick(call_meta, client_meta, &tm->lc);
    tm->lc.deadline = -1;
    size_t cap = sizeof tm->pairs / sizeof tm->pairs[0];
    if (svc__trace_view(call_meta, client_meta, &tm->lc, tm->pairs, cap, &tm->view) == 0)
        return call_meta;
    return &tm->view;
}

int svc__trace_incoming(const Svc__Header *h, svc_meta *overlay, svc__logctx *lc)
{
    int rc = 0;
    if (!s_take(lc->trace, svc__header_meta(h, SVC_META_TRACE_ID))) {
        svc_trace_new_id(lc->trace);
        rc = svc_meta_set(overlay, SVC_META_TRACE_ID, lc->trace);
    }
    if (!s_take(lc->span, svc__header_meta(h, SVC_META_SPAN_ID))) {
        svc_span_new_id(lc->span);
        if (rc == 0)
            rc = svc_meta_set(overlay, SVC_META_SPAN_ID, lc->span);
    }
    if (!s_take(lc->parent, svc__header_meta(h, SVC_META_PARENT_ID)))
        lc->parent[0] = '\0';
    return rc;
}
