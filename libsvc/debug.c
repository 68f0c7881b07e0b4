/*
 * libsvc/debug.c — Debug.Health and Debug.Stats, served by every service on
 * the loop thread (they never block), so they answer even when every worker
 * is busy.
 */
#include "service_int.h"
#include "epstats.h"
#include "debug.pb-c.h"

#include <errno.h>
#include <stdlib.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_health(svc_ctx *ctx, const void *req, void *rsp)
{
    Svc__Debug__HealthResponse *out = rsp;
    out->status = strdup("ok");
    return out->status ? 0 : -ENOMEM;
}

/* Resident set size in bytes and thread count, from /proc/self. */
static void s_proc(uint64_t *rss, uint32_t *threads)
{
    *rss = 0;
    *threads = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        unsigned long size, res;
        if (fscanf(f, "%lu %lu", &size, &res) == 2)
            *rss = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    f = fopen("/proc/self/status", "re");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Threads: %u", threads) == 1)
                break;
        fclose(f);
    }
}

static uint32_t s_u32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* One EndpointStats per endpoint (epstats.h); freed with the response. */
static int s_endpoints(svc_service *s, Svc__Debug__StatsResponse *out)
{
    out->endpoints = calloc(s->n_eps ? s->n_eps : 1, sizeof *out->endpoints);
    if (!out->endpoints)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_eps; i++) {
        const svc__epstats *st = s->eps[i].stats;
        Svc__Debug__EndpointStats *e = malloc(sizeof *e);
        if (!e)
            return -ENOMEM;
        svc__debug__endpoint_stats__init(e);
        out->endpoints[out->n_endpoints++] = e;
        e->name = strdup(s->eps[i].name);
        if (!e->name)
            return -ENOMEM;
        /* finished before started: a request may end between the two loads. */
        uint64_t done = atomic_load_explicit(&st->finished, memory_order_acquire);
        uint64_t started = atomic_load_explicit(&st->started, memory_order_relaxed);
        e->requests = started;
        e->errors = atomic_load_explicit(&st->errors, memory_order_relaxed);
        e->inflight = s_u32(started > done ? started - done : 0);
        e->p50_us = s_u32(svc__epstats_quantile(st, 0.50));
        e->p99_us = s_u32(svc__epstats_quantile(st, 0.99));
    }
    return 0;
}

static int s_stats(svc_ctx *ctx, const void *req, void *rsp)
{
    Svc__Debug__StatsResponse *out = rsp;
    svc_service *s = svc__ctx_service(ctx);
    uint64_t now = (uint64_t)time(NULL);
    out->started = s->started_unix;
    out->uptime = now > s->started_unix ? now - s->started_unix : 0;
    s_proc(&out->memory, &out->threads);
    out->requests = atomic_load(&s->requests);
    out->errors = atomic_load(&s->errors);
    out->inflight = atomic_load(&s->inflight);
    return s_endpoints(s, out);
}

void svc__debug_add(svc_service *s)
{
    svc_handle(s, "Debug.Health", s_health, &svc__debug__health_request__descriptor,
               &svc__debug__health_response__descriptor);
    svc_handle(s, "Debug.Stats", s_stats, &svc__debug__stats_request__descriptor,
               &svc__debug__stats_response__descriptor);
    for (size_t i = 0; i < s->n_eps; i++)
        if (strncmp(s->eps[i].name, "Debug.", 6) == 0)
            s->eps[i].inline_ = true;
}
