/*
 * libsvc/client_int.h — what client.c shares with client_stream.c (internal).
 */
#ifndef SVC__CLIENT_INT_H
#define SVC__CLIENT_INT_H

#include "svc/client.h"
#include "selector.h"
#include "wire.pb-c.h"
#include "wrap_int.h"

/*
 * The header metadata of a call: the client's pairs, then extra's (which
 * win).  Returns one malloc'd block holding the pointer array and the
 * entries (free() it); the strings stay borrowed from c and extra.  NULL on
 * out-of-memory.
 */
Svc__MetadataEntry **svc__client_header_meta(const svc_client *c, const svc_meta *extra, size_t *n);

/*
 * The call itself, under the wrappers: svc_client_call_raw (wrap.c) sets
 * the trace ids and runs the client's wrappers, and the innermost one
 * calls this.  Same contract as svc_client_call_raw.
 */
int svc__client_call_raw(svc_client *c, const char *service, const char *endpoint,
                         const void *body, size_t len, const svc_call_opts *opts,
                         svc_reply *out, svc_error *err);

/* The client's wrapper chain (wrap.c); borrowed for the client's life. */
svc__cwraps *svc__client_wraps(svc_client *c);

/* The client's default metadata (svc_client_set_meta); borrowed. */
const svc_meta *svc__client_meta(const svc_client *c);

/*
 * The nodes of service from the client's registry cache (watched, fetched
 * when missing or stale; see regcache.h), waiting at most until deadline
 * (monotonic ms).  *nodes is borrowed until the next call into the client.
 * 0, SVC_ENOTFOUND, SVC_EUNREACHABLE, SVC_ETIMEOUT, -ENOMEM; err filled on
 * failure.  For client_stream.c, so that streams pick nodes from the cache.
 */
int svc__client_nodes(svc_client *c, const char *service, int64_t deadline, svc__node **nodes,
                      size_t *n, svc_error *err);

#endif
