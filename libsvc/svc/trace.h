/*
 * svc/trace.h — following one request across services.
 *
 * Every call carries three metadata pairs (docs/protocol.md section 6.1):
 *
 *   Micro-Trace-Id        one id for the whole request, kept at every hop
 *   Micro-Span-Id         the span of this call (one client → server hop)
 *   Micro-Parent-Span-Id  the span of the request the caller was handling
 *
 * libsvc sets them itself.  A call that has no trace id — the first call
 * at the edge: svcctl, a client program — gets a new one (32 hex digits);
 * every call gets a new span id (16 hex digits) and, when it is made while
 * handling a request, that request's span as its parent.  A handler's
 * onward calls (svc_ctx_call, or any client used on the handler's thread)
 * therefore continue the trace with no code.  A request that arrives
 * without a trace id (a caller that does not speak svc tracing) gets one
 * from the server, so its own onward calls still share one.
 *
 * Every line logged while a handler runs, or while a call is in flight,
 * carries `trace=<id> span=<id>` (svc/log.h), so
 * `grep trace=4bf92f3577b34da6a3ce929d0e0e4736` over the logs of every
 * service shows one request's path.
 *
 * Ids from the wire are only trusted when valid (svc_trace_id_valid): a
 * malformed one is replaced by a new id, never logged.
 */
#ifndef SVC_TRACE_H
#define SVC_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SVC_META_TRACE_ID  "Micro-Trace-Id"        /* metadata key of the trace id */
#define SVC_META_SPAN_ID   "Micro-Span-Id"         /* metadata key of the call's span */
#define SVC_META_PARENT_ID "Micro-Parent-Span-Id"  /* metadata key of the calling span */

#define SVC_TRACE_ID_LEN 32   /* hex digits of a trace id libsvc makes */
#define SVC_SPAN_ID_LEN  16   /* hex digits of a span id libsvc makes */
#define SVC_TRACE_ID_MAX 64   /* longest id accepted from the wire */

/* Writes a new random trace id (SVC_TRACE_ID_LEN hex digits and a NUL) into buf. */
void svc_trace_new_id(char buf[SVC_TRACE_ID_LEN + 1]);

/* Writes a new random span id (SVC_SPAN_ID_LEN hex digits and a NUL) into buf. */
void svc_span_new_id(char buf[SVC_SPAN_ID_LEN + 1]);

/*
 * True when id can be used as a trace or span id: 1 to SVC_TRACE_ID_MAX
 * characters from [0-9A-Za-z_-].  NULL is not valid.
 */
bool svc_trace_id_valid(const char *id);

/*
 * The trace id of the request the calling thread is handling, or of the
 * call it is making; NULL when there is none.  Borrowed: valid until the
 * handler returns (or the call ends).
 */
const char *svc_trace_current(void);

#ifdef __cplusplus
}
#endif
#endif
