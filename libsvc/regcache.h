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
 * is fetched again; if the registry cannot be reached (or does not answer
 * within SVC_REGISTRY_STALE_WAIT_MS) the stale view is served, and the
 * registry is not asked again for SVC_REGISTRY_RETRY_MS.
 *
 * Fetching never blocks the client (svc__regcache_lookup): a view that
 * cannot be served starts a lookup, one per service name, which the
 * client's calls wait for; its GetService goes on the cache's own
 * connection (never through the client's call table), whose socket the
 * client's pump polls (svc__regcache_lookup_items) every round:
 *
 *   lookup      event                                  outcome
 *   unsent      connection up                          sent (timeout_ms: deadline)
 *   unsent      refused / lost / not up within 1 s     503 (stale view: served)
 *   sent        RESPONSE                               view replaced; 404 if no nodes
 *   sent        ERROR 404                              view dropped, 404 (but see resync)
 *   sent        other ERROR, bad answer, lost (+200ms) 503 (stale view: served)
 *   any         deadline                               408 (stale view: served)
 *
 * The client takes the outcome with svc__regcache_done.  There is no
 * stale-while-revalidate: a stale view waits for its refetch (at most
 * SVC_REGISTRY_STALE_WAIT_MS) like a missing one.  svc__regcache_nodes is
 * the blocking form (streams), waiting on that connection alone.
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
/* How long a refetch waits for the registry when a stale view could be served instead. */
#define SVC_REGISTRY_STALE_WAIT_MS 500
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

/* svc__regcache_lookup: the view is being fetched; the caller waits for svc__regcache_done. */
#define SVC__LOOKUP_PENDING 1

/*
 * The nodes of service without blocking: 0 with *nodes (borrowed until the
 * next call into the cache) when the view can be served now (fresh, or
 * stale while the registry is down); otherwise a Registry.GetService is
 * started, or the one in flight for service joined (one per name), and
 * SVC__LOOKUP_PENDING returned with its id in *lookup: the lookup waits at
 * most until deadline (monotonic ms; SVC_REGISTRY_STALE_WAIT_MS from now
 * when a stale view could be served instead), and the latest deadline of
 * those that joined it.  Its outcome comes from svc__regcache_done.
 * -ENOMEM with err filled.
 */
int svc__regcache_lookup(svc__regcache *r, const char *service, int64_t deadline,
                         svc__node **nodes, size_t *n, uint64_t *lookup, svc_error *err);

/*
 * Hands out one ended lookup of svc__regcache_lookup: true with its id,
 * and rc 0 (the view is there: svc__regcache_peek it, whatever its
 * freshness — the answer is as fresh as it gets) or its failure as
 * svc__regcache_nodes returns it, with err filled (released first).
 * False when none has ended.  The lookup is forgotten.
 */
bool svc__regcache_done(svc__regcache *r, uint64_t *lookup, int *rc, svc_error *err);

/* Adds the lookups' socket and monitor (0 or 2 items) to items; returns how many. */
int svc__regcache_lookup_items(svc__regcache *r, zmq_pollitem_t *items);

/*
 * When svc__regcache_io is due for the lookups (a connection give-up, a
 * deadline; now when one has ended and waits for svc__regcache_done),
 * monotonic ms, or -1 when no lookup is in flight.
 */
int64_t svc__regcache_lookup_due(const svc__regcache *r);

/*
 * The same, blocking: the nodes of service, fetched if the view is
 * missing or not fresh (waiting on the cache's own connection, at most
 * until deadline, monotonic ms: no call of the client moves meanwhile).
 * *nodes is borrowed until the next call into the cache (events change
 * it).  Returns 0; SVC_ENOTFOUND (404: no such service, or no nodes);
 * SVC_EUNREACHABLE / SVC_ETIMEOUT when the registry cannot be asked and
 * nothing is cached; -ENOMEM.  err is filled on failure.  For streams.
 */
int svc__regcache_nodes(svc__regcache *r, const char *service, int64_t deadline,
                        svc__node **nodes, size_t *n, svc_error *err);

/* Adds the watch's sockets (0 to 2 items) to items; returns how many. */
int svc__regcache_pollitems(svc__regcache *r, zmq_pollitem_t *items);

/*
 * Does the watch's and the lookups' pending work without blocking:
 * connecting, events, ending; sending, answers, time-outs.  The owner calls
 * it when the items of svc__regcache_pollitems or
 * svc__regcache_lookup_items are ready, when there are none of the watch's
 * (it is not open: it may be due to connect), or at
 * svc__regcache_lookup_due.  svc__regcache_lookup reads an open watch only
 * through this.
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
