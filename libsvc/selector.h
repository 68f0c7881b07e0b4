/*
 * libsvc/selector.h — choosing a node for a call (internal).
 *
 * Filters (version glob, node metadata k=v globs), a strategy (random,
 * round-robin, least outstanding requests), and a circuit breaker: a node that failed `failures` times
 * in a row (transport failure or timeout) is left out for `cooldown_ms`,
 * then one call probes it; success closes the breaker, failure reopens it.
 * Used by one thread at a time (each client owns its table).
 */
#ifndef SVC__SELECTOR_H
#define SVC__SELECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/client.h"
#include "svc/meta.h"

/* One node of a cached service view. */
typedef struct svc__node {
    char *id;             /* owned: registry node id ("" when unknown) */
    char *address;        /* owned */
    char *version;        /* owned: the service version it runs */
    svc_meta meta;        /* node metadata */
    bool failed;          /* failed during the current call: not again in this call */
    unsigned outstanding; /* calls of this client in flight to it (set before selecting) */
} svc__node;

void svc__node_release(svc__node *n);

/* Breaker state of one address. */
typedef struct svc__breaker {
    char *address;                 /* owned */
    int fails;                     /* consecutive failures */
    int64_t open_until;            /* monotonic ms; 0 = closed */
    int64_t last_fail;             /* monotonic ms of the latest failure */
    struct svc__breaker *next;
} svc__breaker;

/* What a call asks of the selector. */
typedef struct svc__select {
    svc_strategy strategy;         /* RANDOM, ROUND_ROBIN or LEAST_OUTSTANDING */
    const char *version;           /* fnmatch glob on the version, NULL = any */
    const char *node_meta;         /* "k=glob[,k=glob]", all must match; NULL = any */
    uint64_t *rr;                  /* round-robin position, advanced on use */
} svc__select;

/*
 * True when node matches the filters.  A malformed node_meta (a pair
 * without '=') matches nothing.
 */
bool svc__node_matches(const svc__node *n, const char *version, const char *node_meta);

/*
 * Picks a node: among those matching and not failed in this call, the ones
 * whose breaker is closed (or due for a probe); if every such node's
 * breaker is open, the one that reopens first (a probe beats no answer).
 * NULL when no node matches.  *matched (may be NULL) receives whether any
 * node matched the filters at all.  LEAST_OUTSTANDING takes, among the
 * eligible nodes, one with the fewest `outstanding` calls (ties at random).
 */
svc__node *svc__select_node(svc__node *nodes, size_t n, const svc__select *s,
                            svc__breaker *table, int64_t now, bool *matched);

/*
 * Records the outcome of a call to address.  failures 0 disables the
 * breaker.  Returns true when this failure opened the breaker.
 */
bool svc__breaker_report(svc__breaker **table, const char *address, bool ok, int failures,
                         int cooldown_ms, int64_t now);

/*
 * A call is about to go to address.  If its breaker is due for a probe
 * (open, cool-down over) this call is the probe: the breaker stays open to
 * every other call for another cooldown_ms, or until the probe's outcome
 * is reported.  Without it, every call started meanwhile (many in flight,
 * asynchronous) would go to the node.  failures 0: nothing.
 */
void svc__breaker_probing(svc__breaker *table, const char *address, int failures, int cooldown_ms,
                          int64_t now);

/* How long a breaker is kept without a failure (closed or due by then). */
#define SVC__BREAKER_FORGET_MS 60000

/*
 * Drops the breakers that saw no failure for SVC__BREAKER_FORGET_MS and are
 * not open, so the table does not grow with every address that ever
 * failed (nodes restarted on new ports, gone for good).
 */
void svc__breaker_prune(svc__breaker **table, int64_t now);

/* Frees the table. */
void svc__breaker_free(svc__breaker **table);

#endif
