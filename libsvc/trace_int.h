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
 * Gives an outgoing call its trace pairs, in m (the call's own metadata,
 * which win over the client's defaults dflt, which may be NULL): the trace
 * id is the first valid one of m, dflt and the thread's log context, else
 * new; the span is new; the parent is the first valid span of m, dflt and
 * the thread's context, else none (the pair is removed).  lc gets the
 * three ids.  0 or -ENOMEM.
 */
int svc__trace_outgoing(svc_meta *m, const svc_meta *dflt, svc__logctx *lc);

/*
 * The ids of an incoming request from its header, into lc.  A missing or
 * invalid trace id or span id is replaced by a new one, which is also set
 * in overlay (so the handler and its onward calls see it).  0 or -ENOMEM.
 */
int svc__trace_incoming(const Svc__Header *h, svc_meta *overlay, svc__logctx *lc);

#endif
