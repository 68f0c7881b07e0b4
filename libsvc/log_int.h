/*
 * libsvc/log_int.h — the request context of a thread (internal): the
 * trace ids its log lines carry and the deadline its calls inherit.
 *
 * Each thread has a current context, set while it handles a request
 * (svc__req_begin, wrap.c) or makes a call (svc_client_call_raw, wrap.c);
 * svc_log appends its trace and span to every line, and a call made on the
 * thread continues its trace and is bounded by its deadline.  Contexts
 * live on the stack of whoever set them and are restored in reverse order.
 */
#ifndef SVC__LOG_INT_H
#define SVC__LOG_INT_H

#include <stdint.h>

#include "svc/trace.h"

typedef struct svc__logctx {
    char trace[SVC_TRACE_ID_MAX + 1];   /* trace id, "" when none */
    char span[SVC_TRACE_ID_MAX + 1];    /* span id, "" when none */
    char parent[SVC_TRACE_ID_MAX + 1];  /* parent span id, "" when none */
    int64_t deadline;                   /* monotonic ms the request must end by, -1 none */
} svc__logctx;

/*
 * Makes c (borrowed: it must outlive its use) the calling thread's context
 * and returns the previous one (NULL for none), to be set back later.
 */
const svc__logctx *svc__logctx_set(const svc__logctx *c);

/* The calling thread's context, or NULL. */
const svc__logctx *svc__logctx_get(void);

#endif
