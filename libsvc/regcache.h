/*
 * libsvc/regcache.h — a client's cached view of the registry (internal).
 *
 * One view per service name the client calls: its nodes, fetched with
 * Registry.GetService and kept current by one Registry.Watch stream (every
 * service: events of names not cached are ignored).  The watch is a small
 * state machine, driven without blocking from the client's I/O:
 *
 *   state       event                                  action                         next
 *   OFF         a view exists, now >= retry_at         connect to the registry        CONNECTING
 *   CONNECTING  connection up                          send STREAM_OPEN; every view   OPEN
 *                                                      fresh at most until settled
 *   CONNECTING  refused / not up within 1 s            close                          OFF (+1 s)
 *   OPEN        STREAM_DATA (a Result)                 apply create/update/delete     OPEN
 *   OPEN        STREAM_CLOSE, ERROR, connection lost   close; watched views get       OFF (+1 s)
 *                                                      cache_ms from now
 *
 * A view's freshness: fetched while the watch is OPEN and settled (open for
 * SVC_WATCH_SETTLE_MS: registryd has surely added it by then) it stays fresh
 * as long as the watch does; fetched while the watch is young, until it
 * settles (then fetched once more: events may have slipped between fetch
 * and watch); fetched without a watch, cache_ms.  A view that is not fresh
 * is fetched again; if the registry cannot be reached the stale view is
 * served, and the registry is not asked again for SVC_REGISTRY_RETRY_MS.
 * The first refetch after the watch reopened (a registry that restarted)
 * keeps a view the registry answers 404 for another cache_ms: its nodes
 * re-register within their interval, and their create events re-add them.
 * Used by one thread at a time (its client's).
 */
#ifndef SVC__REGCACHE_H
#define SVC__REGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "selector.h"
#include "svc/error.h"
#include "svc/meta.h"

/* After the registry failed, how long stale views are served without asking it again. */
#define SVC_REGISTRY_RETRY_MS 1000
/* A lookup reads an open watch itself when nothing read it for this long. */
#define SVC_WATCH_READ_MS 10
/* Pause before a watch that ended or failed to open is tried again. */
#define SVC_WATCH_RETRY_MS 1000

typedef struct svc__regcache svc__regcache;

/*
 * A cache for the registry at address (copied).  meta (borrowed for the
 * cache's life: the client's) is sent with registry calls.  NULL on
 * out-of-memory.
 */
svc__regcache *svc__regcache_new(const char *address, const svc_meta *meta);

/* Cancels the watch, closes connections, frees; *r becomes NULL.  Safe on NULL. */
void svc__regcache_destroy(svc__regcache **r);

/* View lifetime without a watch, ms (>= 0). */
void svc__regcache_set_ttl(svc__regcache *r, int cache_ms);

/* Watch on (default) or off; off closes an open watch. */
void svc__regcache_set_watch(svc__regcache *r, bool on);

/*
 * The nodes of service, fetched if the view is missing or not fresh (the
 * lookup waits at most until deadline, monotonic ms).  *nodes is borrowed
 * until the next call into the cache (events change it).  Returns 0;
 * SVC_ENOTFOUND (404: no such service, or no nodes); SVC_EUNREACHABLE /
 * SVC_ETIMEOUT when the registry cannot be asked and nothing is cached;
 * -ENOMEM.  err is filled on failure.
 */
int svc__regcache_nodes(svc__regcache *r, const char *service, int64_t deadline,
                        svc__node **nodes, size_t *n, svc_error *err);

/* Adds the watch's sockets (0 to 2 items) to items; returns how many. */
int svc__regcache_pollitems(svc__regcache *r, zmq_pollitem_t *items);

/*
 * Does the watch's pending work without blocking: connecting, events,
 * ending.  The owner calls it when the items of svc__regcache_pollitems are
 * ready, or when there are none (the watch is not open: it may be due to
 * connect).  svc__regcache_nodes reads an open watch only through this.
 */
void svc__regcache_io(svc__regcache *r);

/* True while the watch is open and settled. */
bool svc__regcache_watching(const svc__regcache *r);

/*
 * Applies one Registry.Watch Result (protobuf body) to the cached views.
 * Returns 0, or SVC_EPROTO with a reason in why when the message does not
 * decode or breaks the event rules (action, exactly one node, id, address).
 * The decoder of outside input: fuzzed by tests/fuzz/fuzz_watch.c.
 */
int svc__regcache_apply(svc__regcache *r, const void *body, size_t len, char *why,
                        size_t whylen);

/* The cached view of service as it is, never fetched: 0, or SVC_ENOTFOUND if none. */
int svc__regcache_peek(svc__regcache *r, const char *service, svc__node **nodes, size_t *n);

/* Test hook: makes service's view exist (empty, fresh) so events apply to it. */
int svc__regcache_seed(svc__regcache *r, const char *service);

#endif
