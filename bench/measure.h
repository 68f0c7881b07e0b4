/*
 * bench/measure.h — a timed run of round trips, and its result lines.
 *
 * One round trip at a time (1 in flight): run the call for `warmup`
 * seconds unmeasured, then for `seconds` seconds recording each call's
 * latency.  The rate is calls / elapsed time; latencies are exact
 * percentiles over every measured call (nearest rank).
 */
#ifndef BM_MEASURE_H
#define BM_MEASURE_H

#include <stddef.h>
#include <stdint.h>

/* One round trip.  Returns 0, or a negative code that ends the run. */
typedef int (*bm_call_fn)(void *arg);

/* What a run measured. */
typedef struct bm_result {
    uint64_t calls;     /* measured calls that succeeded */
    uint64_t answers;   /* every call that succeeded, warm-up included (server cost per call) */
    double seconds;     /* measured wall time (monotonic) */
    uint32_t *lat_ns;   /* latency of each call, ns (saturating); owned */
    size_t n_lat;       /* latencies recorded (== calls unless memory ran out) */
    size_t cap_lat;     /* allocated slots */
    int error;          /* the call's code if a call failed, else 0 */
} bm_result;

/* Labels of a result's output lines. */
typedef struct bm_report {
    const char *bench;      /* base name: "raw-zmq", "svc-unary" */
    const char *transport;  /* "tcp", "ipc", ... */
    long payload;           /* payload bytes per request */
    const char *note;       /* free text carried in every line, or NULL */
    unsigned in_flight;     /* requests in flight (window); 0 means 1 */
} bm_report;

/*
 * Runs fn(arg) back to back: warmup_s unmeasured, then seconds measured.
 * Fills *r (release with bm_result_release).  Returns 0, or the first
 * failing call's code (r->error) — the run stops there.
 */
int bm_measure(bm_call_fn fn, void *arg, double warmup_s, double seconds, bm_result *r);

/* Latency at quantile q in (0, 1], in microseconds; 0 when nothing was recorded. */
double bm_result_quantile_us(bm_result *r, double q);

void bm_result_release(bm_result *r);

/* Records one latency in r; past an allocation failure only the count grows. */
void bm_result_record(bm_result *r, uint64_t ns);

/*
 * Prints the run as three JSON lines on stdout: "<bench>.<transport>"
 * (calls/s), "<bench>-p50.<transport>" and "<bench>-p99.<transport>" (us).
 */
void bm_report_print(const bm_report *rep, bm_result *r);

/* Monotonic time in nanoseconds. */
uint64_t bm_now_ns(void);

#endif
