/*
 * libsvc/retry.h — what a retry policy decides (internal).
 *
 * Pure functions over svc_retry_policy (svc/client.h): whether a failed
 * attempt is retried, and how long to pause first.  The client's call state
 * machine (client.c) asks them; tests/unit/test_client.c checks them.
 */
#ifndef SVC__RETRY_H
#define SVC__RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/client.h"

/* How an attempt failed. */
typedef enum svc__fail {
    SVC__FAIL_TRANSPORT, /* unreachable, refused, dropped while waiting, send would block */
    SVC__FAIL_TIMEOUT,   /* no answer within the attempt's time */
    SVC__FAIL_REMOTE,    /* the node answered ERROR with a code */
} svc__fail;

/* True when p retries a failure of this kind (code: the ERROR's, for SVC__FAIL_REMOTE). */
bool svc__retry_wants(const svc_retry_policy *p, svc__fail kind, int code);

/*
 * The pause before retry number n (1 = the first retry), in ms: backoff_ms *
 * factor^(n-1), capped, minus up to `jitter` of it; rnd is a uniform random
 * 64-bit number (the caller's, so tests can pin it).
 */
int64_t svc__retry_pause(const svc_retry_policy *p, int n, uint64_t rnd);

#endif
