/*
 * libsvc/epstats.h — per-endpoint counters and latency histogram (internal).
 *
 * The hot path is three relaxed atomic additions per request (started,
 * finished, one histogram bucket) plus one for an error: no lock, and
 * fixed memory (about 2 KiB per endpoint).  Latency is recorded in a
 * log-linear histogram of microseconds: exact below 16 µs, then 8
 * sub-buckets per power of two, so a reported percentile is within about
 * 6% of the true one; values from 2^36 µs (about 19 h) on share the last
 * bucket.  Counts are since the service started.
 */
#ifndef SVC__EPSTATS_H
#define SVC__EPSTATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SVC__HIST_BUCKETS 272   /* 16 exact + 32 powers of two x 8 */

typedef struct svc__epstats {
    atomic_ulong started;                 /* requests that reached the endpoint */
    atomic_ulong finished;                /* of those, done (started - finished = in flight) */
    atomic_ulong errors;                  /* of those, answered with an error */
    atomic_ulong hist[SVC__HIST_BUCKETS]; /* unary latencies by bucket */
} svc__epstats;

/* The histogram bucket of a latency of us microseconds. */
size_t svc__hist_bucket(uint64_t us);

/* The latency a bucket stands for (the middle of its range), in microseconds. */
uint64_t svc__hist_value(size_t bucket);

/* A request starts. */
void svc__epstats_begin(svc__epstats *st);

/*
 * A request ends after us microseconds; error: it was answered with an
 * error; timed: add us to the histogram (unary calls; not stream opens).
 */
void svc__epstats_end(svc__epstats *st, uint64_t us, bool error, bool timed);

/*
 * The q-quantile (0 < q <= 1) of the recorded latencies in microseconds,
 * 0 when none were recorded.  Reads while others write: a snapshot that
 * may miss the latest few.
 */
uint64_t svc__epstats_quantile(const svc__epstats *st, double q);

#endif
