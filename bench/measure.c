/* bench/measure.c — timed runs and result lines.  See measure.h. */
#include "measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bm_result_record(bm_result *r, uint64_t ns)
{
    if (r->n_lat == r->cap_lat) {
        size_t cap = r->cap_lat ? r->cap_lat * 2 : 1 << 16;
        uint32_t *n = realloc(r->lat_ns, cap * sizeof *n);
        if (!n)
            return;
        r->lat_ns = n;
        r->cap_lat = cap;
    }
    r->lat_ns[r->n_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

int bm_measure(bm_call_fn fn, void *arg, double warmup_s, double seconds, bm_result *r)
{
    memset(r, 0, sizeof *r);
    uint64_t t = bm_now_ns();
    uint64_t warm_end = t + (uint64_t)(warmup_s * 1e9);
    while (t < warm_end) {
        int rc = fn(arg);
        if (rc < 0)
            return r->error = rc;
        r->answers++;
        t = bm_now_ns();
    }
    uint64_t start = bm_now_ns();
    uint64_t end = start + (uint64_t)(seconds * 1e9);
    for (t = start; t < end;) {
        int rc = fn(arg);
        uint64_t done = bm_now_ns();
        if (rc < 0) {
            r->error = rc;
            break;
        }
        r->calls++;
        r->answers++;
        bm_result_record(r, done - t);
        t = done;
    }
    r->seconds = (double)(t - start) / 1e9;
    return r->error;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

double bm_result_quantile_us(bm_result *r, double q)
{
    if (!r->n_lat)
        return 0;
    /* Sorting in place is fine: the order of the samples means nothing. */
    qsort(r->lat_ns, r->n_lat, sizeof *r->lat_ns, s_cmp_u32);
    size_t rank = (size_t)(q * (double)r->n_lat + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > r->n_lat)
        rank = r->n_lat;
    return (double)r->lat_ns[rank - 1] / 1000.0;
}

void bm_result_release(bm_result *r)
{
    free(r->lat_ns);
    memset(r, 0, sizeof *r);
}

/* One JSON line; names and notes are ours, so they need no escaping. */
static void s_line(const bm_report *rep, const char *suffix, double value, const char *unit,
                   const bm_result *r)
{
    printf("{\"bench\":\"%s%s.%s\",\"value\":%.1f,\"unit\":\"%s\",\"transport\":\"%s\","
           "\"payload_bytes\":%ld,\"in_flight\":%u,\"calls\":%llu,\"answers\":%llu,"
           "\"seconds\":%.3f",
           rep->bench, suffix, rep->transport, value, unit, rep->transport, rep->payload,
           rep->in_flight ? rep->in_flight : 1,
           (unsigned long long)r->calls, (unsigned long long)r->answers, r->seconds);
    if (rep->note)
        printf(",\"note\":\"%s\"", rep->note);
    printf("}\n");
}

void bm_report_print(const bm_report *rep, bm_result *r)
{
    double rate = r->seconds > 0 ? (double)r->calls / r->seconds : 0;
    s_line(rep, "", rate, "calls/s", r);
    s_line(rep, "-p50", bm_result_quantile_us(r, 0.50), "us", r);
    s_line(rep, "-p99", bm_result_quantile_us(r, 0.99), "us", r);
    fflush(stdout);
}
