/*
 * bench/window.h — a timed run with up to W requests in flight.
 *
 * The driver keeps a window of W slots busy: it starts one request per
 * slot, then every time an answer comes back it records that request's
 * latency and starts the next one in the same slot.  W = 1 is the plain
 * round trip.  The rate is answers / elapsed time; latencies are exact
 * percentiles over every measured answer (bm_result, measure.h).  A
 * backend (raw ZeroMQ, svc's wire protocol, ...) supplies two functions.
 */
#ifndef BM_WINDOW_H
#define BM_WINDOW_H

#include "measure.h"

/* How a backend starts a request and waits for an answer. */
typedef struct bm_window_ops {
    /* Starts one request tagged `slot` (0 .. W-1).  Returns 0 or a negative code. */
    int (*start)(void *arg, unsigned slot);
    /*
     * Waits for the next answer and stores its tag in *slot.  Returns 0, or
     * a negative code that ends the run (-EAGAIN: nothing in the backend's
     * wait time).
     */
    int (*finish)(void *arg, unsigned *slot);
} bm_window_ops;

#define BM_WINDOW_MAX 4096   /* largest window */

/*
 * Runs ops on arg with `window` requests in flight: warmup_s unmeasured,
 * then seconds measured.  Fills *r (release with bm_result_release).
 * Returns 0, or the first failing start/finish code (r->error).  The
 * requests still in flight at the end are left unanswered: the caller
 * closes its connection.
 */
int bm_measure_window(const bm_window_ops *ops, void *arg, unsigned window, double warmup_s,
                      double seconds, bm_result *r);

#endif
