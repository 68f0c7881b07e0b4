/*
 * libsvc/trace_int.h — where trace and span ids are made (internal).
 * See svc/trace.h for the rules and docs/protocol.md 6.1 for the keys.
 */
#ifndef SVC__TRACE_INT_H
#define SVC__TRACE_INT_H

#include "svc/meta.h"
#include "log_int.h"
#include "wire.pb-c.h"

/*
 * The ids of an outgoing call, into lc: the trace id is the first valid one
 * of m, dflt (either may be NULL) and the thread's context, else new; the
 * span is new; the parent is the first valid span of m, dflt and the
 * thread's context, else "".  lc->deadline is left alone.
 */
void svc__trace_pick(const svc_meta *m, const svc_meta *dflt, svc__logctx *lc);

/* Sets lc's three ids in m as svc__trace_outgoing does.  0 or -ENOMEM. */
int svc__trace_set(svc_meta *m, const svc_meta *dflt, const svc__logctx *lc);

/*
 * Without copying: makes *view the pairs of m (but its trace pairs) plus
 * lc's ids, in pairs[cap], all borrowed (from m and lc: valid while they
 * are; never release the view).  Returns the number of pairs, 0 when cap
 * is too small.
 */
size_t svc__trace_view(const svc_meta *m, const svc_meta *dflt, const svc__logctx *lc,
                       svc_meta_pair *pairs, size_t cap, svc_meta *view);

/* Room for svc__trace_call_meta: the ids and the borrowed pairs. */
typedef struct svc__trace_meta {
    svc__logctx lc;                /* the call's ids (lc.deadline: -1) */
    svc_meta_pair pairs[32];       /* the view's pairs, borrowed */
    svc_meta view;                 /* call_meta plus the trace pairs */
} svc__trace_meta;

/*
 * The metadata to send with a call that does not pass svc_client_call_raw
 * (a stream open, an asynchronous call): picks the call's ids into tm->lc
 * (svc__trace_pick; tm->lc.deadline becomes -1) and returns call_meta
 * (which may be NULL) plus the trace pairs, borrowed from call_meta and
 * *tm: valid while both are.  If call_meta has more than 29 pairs it
 * returns call_meta unchanged (the server then makes the ids).  Use:
 *     svc__trace_meta tm;
 *     h.metadata = svc__client_header_meta(c, svc__trace_call_meta(opts->meta,
 *                                          svc__client_meta(c), &tm), &h.n_metadata);
 */
const svc_meta *svc__trace_call_meta(const svc_meta *call_meta, const svc_meta *client_meta,
                                     svc__trace_meta *tm);

/*
 * svc__trace_pick then svc__trace_set: gives an outgoing call its trace
 * pairs in m (the call's own metadata, over the client's defaults dflt,
 * which may be NULL).  0 or -ENOMEM.
 */
int svc__trace_outgoing(svc_meta *m, const svc_meta *dflt, svc__logctx *lc);

/*
 * The ids of an incoming request from its header, into lc.  A missing or
 * invalid trace id or span id is replaced by a new one, which is also set
 * in overlay (so the handler and its onward calls see it).  0 or -ENOMEM.
 */
int svc__trace_incoming(const Svc__Header *h, svc_meta *overlay, svc__logctx *lc);

#endif
