/*
 * libsvc/epstats.c — per-endpoint counters and latency percentiles for
 * Debug.Stats.  See epstats.h.
 */
#include "epstats.h"
#include "service_int.h"
#include "debug.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t svc__hist_bucket(uint64_t us)
{
    if (us < 16)
        return (size_t)us;
    int e = 63 - __builtin_clzll(us);   /* position of the leading one, >= 4 */
    if (e > 35)
        return SVC__HIST_BUCKETS - 1;
    size_t sub = (size_t)(us >> (e - 3)) & 7;
    return 16 + (size_t)(e - 4) * 8 + sub;
}

uint64_t svc__hist_value(size_t b)
{
    if (b < 16)
        return b;
    if (b >= SVC__HIST_BUCKETS)
        b = SVC__HIST_BUCKETS - 1;
    int e = 4 + (int)((b - 16) / 8);
    uint64_t sub = (b - 16) % 8;
    uint64_t width = 1ULL << (e - 3);
    return ((8 + sub) << (e - 3)) + width / 2;
}

void svc__epstats_begin(svc__epstats *st)
{
    atomic_fetch_add_explicit(&st->started, 1, memory_order_relaxed);
}

void svc__epstats_end(svc__epstats *st, uint64_t us, bool error, bool timed)
{
    if (timed)
        atomic_fetch_add_explicit(&st->hist[svc__hist_bucket(us)], 1, memory_order_relaxed);
    if (error)
        atomic_fetch_add_explicit(&st->errors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->finished, 1, memory_order_release);
}

uint64_t svc__epstats_quantile(const svc__epstats *st, double q)
{
    unsigned long counts[SVC__HIST_BUCKETS];
    unsigned long total = 0;
    for (size_t b = 0; b < SVC__HIST_BUCKETS; b++) {
        counts[b] = atomic_load_explicit(&st->hist[b], memory_order_relaxed);
        total += counts[b];
    }
    if (!total)
        return 0;
    unsigned long rank = (unsigned long)ceil(q * (double)total);
    if (rank < 1)
        rank = 1;
    unsigned long seen = 0;
    for (size_t b = 0; b < SVC__HIST_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= rank)
            return svc__hist_value(b);
    }
    return svc__hist_value(SVC__HIST_BUCKETS - 1);
}
