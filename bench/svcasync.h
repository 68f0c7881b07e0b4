/*
 * bench/svcasync.h — svc unary calls with many in flight through the
 * client's asynchronous API.
 *
 * One thread keeps W calls in flight with svc_call_cb (svc/client.h): the
 * client pipelines them on its DEALER to the node and runs each callback
 * inside svc_client_poll, which this bench calls while it waits.  Each call
 * encodes its request body and its callback decodes the answer, as an
 * application would.
 */
#ifndef BM_SVCASYNC_H
#define BM_SVCASYNC_H

#include <stddef.h>

#include "measure.h"
#include "svc/client.h"

/* One asynchronous run's inputs. */
typedef struct bm_async_args {
    svc_client *client;           /* the client, borrowed */
    const char *service;          /* called by name */
    const char *endpoint;
    const svc_call_opts *opts;    /* per call; content_type is the bodies' */
    size_t size;                  /* payload bytes (HelloRequest.name) */
    unsigned in_flight;           /* window */
    long wait_ms;                 /* longest wait for one answer */
    double warmup, seconds;       /* as bm_measure_window */
} bm_async_args;

/*
 * Runs the calls and fills *r (bm_result_release).  Returns 0, or a
 * negative code with a one-line reason in err (the failed call's error as
 * JSON, "no answer in time", ...).  Waits for the calls still in flight
 * before it returns, so the client may be destroyed afterwards.
 */
int bm_svc_async(const bm_async_args *a, bm_result *r, char *err, size_t errlen);

#endif
