/*
 * libsvc/debug.c — Debug.Health and Debug.Stats, served by every service on
 * the loop thread (they never block), so they answer even when every worker
 * is busy.
 */
#include "service_int.h"
#include "debug.pb-c.h"

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
    return 0;
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
