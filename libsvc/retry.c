/* libsvc/retry.c — retry decisions and backoff.  See retry.h. */
#include "retry.h"

#include <math.h>

int svc_retry_policy_check(const svc_retry_policy *p)
{
    if (!p || p->retries < 0 || p->retries > 100 || p->backoff_ms < 0 || p->backoff_ms > 60000 ||
        !(p->backoff_factor >= 1.0 && p->backoff_factor <= 16.0) ||
        p->backoff_max_ms < p->backoff_ms || p->backoff_max_ms > 600000 ||
        !(p->jitter >= 0.0 && p->jitter <= 1.0) || p->attempt_timeout_ms < 0 ||
        (p->on & ~(unsigned)(SVC_RETRY_TRANSPORT | SVC_RETRY_UNAVAILABLE | SVC_RETRY_TIMEOUT)))
        return SVC_EINVAL;
    for (int i = 0; i < SVC_RETRY_MAX_CODES && p->codes[i]; i++)
        if (p->codes[i] < 100 || p->codes[i] > 999)
            return SVC_EINVAL;
    return 0;
}

bool svc__retry_wants(const svc_retry_policy *p, svc__fail kind, int code)
{
    switch (kind) {
    case SVC__FAIL_TRANSPORT:
        return p->on & SVC_RETRY_TRANSPORT;
    case SVC__FAIL_TIMEOUT:
        return p->on & SVC_RETRY_TIMEOUT;
    case SVC__FAIL_REMOTE:
        if (code == 503 && (p->on & SVC_RETRY_UNAVAILABLE))
            return true;
        for (int i = 0; i < SVC_RETRY_MAX_CODES && p->codes[i]; i++)
            if (p->codes[i] == code)
                return true;
        return false;
    }
    return false;
}

int64_t svc__retry_pause(const svc_retry_policy *p, int n, uint64_t rnd)
{
    if (p->backoff_ms <= 0 || n < 1)
        return 0;
    double d = p->backoff_ms * pow(p->backoff_factor, n - 1);
    if (d > p->backoff_max_ms)
        d = p->backoff_max_ms;
    double u = (double)(rnd >> 11) / 9007199254740992.0;   /* [0, 1) from 53 bits */
    d *= 1.0 - p->jitter * u;
    return (int64_t)d;
}
