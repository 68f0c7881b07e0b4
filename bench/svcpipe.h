/*
 * bench/svcpipe.h — svc unary calls with many in flight, on one thread.
 *
 * Until libsvc's client has an asynchronous call API, this is how one
 * thread keeps W svc calls in flight: a DEALER connected to the node sends
 * REQUEST messages built with libsvc's own wire encoder (libsvc/wire.h) and
 * codecs, and matches the RESPONSEs by id (window.h).  Each call encodes
 * its request body and header and decodes the answer's header and body, as
 * the client does; what it skips is the client's per-call bookkeeping
 * (selector, metadata merge, connection check).  The server side — what
 * this bench measures — is the real one, unchanged.
 */
#ifndef BM_SVCPIPE_H
#define BM_SVCPIPE_H

#include "measure.h"

/* One pipelined run's inputs. */
typedef struct bm_pipe_args {
    const char *node;          /* node address (from a first call by name) */
    const char *service;       /* service name in the header */
    const char *endpoint;      /* endpoint in the header */
    const char *content_type;  /* of request and answer bodies */
    size_t size;               /* payload bytes (HelloRequest.name) */
    unsigned in_flight;        /* window */
    long wait_ms;              /* longest wait for one answer */
    double warmup, seconds;    /* as bm_measure_window */
} bm_pipe_args;

/*
 * Runs the calls and fills *r (bm_result_release).  Returns 0, or a
 * negative code with a one-line reason in err (an error answer's detail,
 * "no answer in time", ...).
 */
int bm_svc_pipe(const bm_pipe_args *a, bm_result *r, char *err, size_t errlen);

#endif
