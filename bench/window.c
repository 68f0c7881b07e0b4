/* bench/window.c — W requests in flight.  See window.h. */
#include "window.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int bm_measure_window(const bm_window_ops *ops, void *arg, unsigned window, double warmup_s,
                      double seconds, bm_result *r)
{
    memset(r, 0, sizeof *r);
    if (window < 1 || window > BM_WINDOW_MAX)
        return r->error = -EINVAL;
    uint64_t *sent = calloc(window, sizeof *sent);   /* start time of each slot's request */
    if (!sent)
        return r->error = -ENOMEM;
    uint64_t now = bm_now_ns();
    int rc = 0;
    for (unsigned i = 0; i < window && rc == 0; i++) {
        sent[i] = now;
        rc = ops->start(arg, i);
    }
    uint64_t start = now + (uint64_t)(warmup_s * 1e9);
    uint64_t end = start + (uint64_t)(seconds * 1e9);
    bool measuring = false;
    while (rc == 0) {
        unsigned slot;
        rc = ops->finish(arg, &slot);
        if (rc < 0)
            break;
        now = bm_now_ns();
        if (slot >= window) {
            rc = -EPROTO;
            break;
        }
        r->answers++;
        if (!measuring && now >= start) {
            measuring = true;
            start = now;
            end = start + (uint64_t)(seconds * 1e9);
        }
        if (measuring) {
            r->calls++;
            bm_result_record(r, now - sent[slot]);
        }
        if (measuring && now >= end)
            break;
        sent[slot] = now;
        rc = ops->start(arg, slot);
    }
    r->seconds = measuring ? (double)(now - start) / 1e9 : 0;
    free(sent);
    return r->error = rc < 0 ? rc : 0;
}
