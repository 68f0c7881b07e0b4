/*
 * svc/client.h — calling services by name.
 *
 * A client resolves a service name through the registry (a cached view,
 * refreshed every `cache_ms` and served stale while the registry is down),
 * picks a node with its selector, sends the request over ZeroMQ and waits
 * for the answer until the call's deadline.  When a node cannot be reached
 * — it refuses the connection, or drops it while the call is in flight —
 * or answers 503 because it is draining, the call is retried on another
 * node, up to `retries` more times, within the same deadline.  Errors from
 * handlers are never retried.
 *
 * A client is NOT thread-safe: use one per thread.  Handlers get their
 * worker thread's client from svc_ctx_client() (svc/service.h).
 */
#ifndef SVC_CLIENT_H
#define SVC_CLIENT_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "svc/error.h"
#include "svc/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct svc_client svc_client;

/* How a node is chosen among a service's nodes. */
typedef enum svc_strategy {
    SVC_SELECT_DEFAULT = 0,  /* in call options: the client's strategy */
    SVC_SELECT_RANDOM,       /* uniform random (the client default) */
    SVC_SELECT_ROUND_ROBIN,  /* rotates through the nodes across calls */
} svc_strategy;

/* Where the registry is when neither a flag nor $SVC_REGISTRY_ADDRESS says. */
#define SVC_DEFAULT_REGISTRY   "tcp://127.0.0.1:7700"
#define SVC_ENV_REGISTRY       "SVC_REGISTRY_ADDRESS"

/* Defaults, overridable per client and per call. */
#define SVC_DEFAULT_TIMEOUT_MS 30000  /* as go-micro's request timeout */
#define SVC_DEFAULT_RETRIES    2      /* further attempts on transport failure */
#define SVC_DEFAULT_CACHE_MS   5000   /* registry view freshness */
#define SVC_DEFAULT_BREAKER_FAILURES 3     /* consecutive failures that open a node's breaker */
#define SVC_DEFAULT_BREAKER_COOLDOWN_MS 2000 /* how long an open breaker keeps the node out */

/* Per-call options; zero-initialise and set what you need. */
typedef struct svc_call_opts {
    int timeout_ms;           /* 0 = client default; the call's whole deadline */
    int retries;              /* 0 = client default; -1 = no retries */
    const char *address;      /* call this node directly, bypassing registry and selector */
    const char *content_type; /* of the request body (raw calls); NULL = application/protobuf */
    const svc_meta *meta;     /* merged over the client's metadata for this call */
    svc_strategy strategy;    /* SVC_SELECT_DEFAULT = the client's */
    const char *version;      /* only nodes whose version matches this glob ("2.*"); NULL = any */
    const char *node_meta;    /* only nodes whose metadata match "k=glob[,k=glob]"; NULL = any */
} svc_call_opts;

/* A raw answer: the body bytes as the server sent them. */
typedef struct svc_reply {
    void *body;          /* malloc'd, owned; NULL when empty */
    size_t len;          /* bytes in body */
    char *content_type;  /* owned */
    char *node;          /* address of the node that answered, owned */
} svc_reply;

#define SVC_REPLY_INIT { NULL, 0, NULL, NULL }

/* Frees the reply's contents and zeroes it. */
void svc_reply_release(svc_reply *r);

/*
 * Creates a client that resolves names through the registry at
 * registry_address (NULL or "": $SVC_REGISTRY_ADDRESS, else SVC_DEFAULT_REGISTRY).  Returns NULL only on out-of-memory.
 */
svc_client *svc_client_new(const char *registry_address);

/* Closes sockets and frees the client; *c becomes NULL.  Safe on NULL. */
void svc_client_destroy(svc_client **c);

/* Client-wide defaults; each returns 0 or SVC_EINVAL. */
int svc_client_set_timeout(svc_client *c, int timeout_ms);
int svc_client_set_retries(svc_client *c, int retries);
int svc_client_set_strategy(svc_client *c, svc_strategy s);
int svc_client_set_cache(svc_client *c, int cache_ms);

/*
 * Circuit breaker: a node that fails `failures` calls in a row (transport
 * failure or deadline) is left out for `cooldown_ms`, then probed by one
 * call; success brings it back.  failures 0 turns it off.  Defaults 3 and
 * 2000 ms.  State is per client.
 */
int svc_client_set_breaker(svc_client *c, int failures, int cooldown_ms);

/* Metadata sent with every call of this client (copied). */
int svc_client_set_meta(svc_client *c, const char *key, const char *value);

/* The registry address this client uses; borrowed for the client's life. */
const char *svc_client_registry(const svc_client *c);

/*
 * Calls endpoint ("Struct.Method") of service with a body already encoded in
 * opts->content_type, through the client's wrappers (svc/wrap.h), with
 * trace ids (svc/trace.h); on a thread handling a request, within what is
 * left of its deadline (408 without sending when nothing is).  On success returns 0 and fills *out (release with
 * svc_reply_release).  On failure returns a negative code and, always, a
 * go-micro error in *err (release with svc_error_release):
 *   SVC_EREMOTE      the handler or server answered with an error (err as sent)
 *   SVC_ETIMEOUT     408: deadline passed
 *   SVC_ENOTFOUND    404: the service has no nodes in the registry, or none
 *                         matching opts->version / opts->node_meta
 *   SVC_EUNREACHABLE 503: no node could be reached (or the registry could not)
 *   SVC_ETOOBIG      413: body larger than 16 MiB; SVC_EINVAL, -ENOMEM
 * A malformed answer from a node is dropped (and logged): the call goes on
 * waiting for a well-formed one until its deadline.
 */
int svc_client_call_raw(svc_client *c, const char *service, const char *endpoint,
                        const void *body, size_t len, const svc_call_opts *opts,
                        svc_reply *out, svc_error *err);

/*
 * Typed call: encodes req as protobuf, decodes the answer into a new message
 * of rsp_desc stored in *rsp (caller frees with protobuf_c_message_free_unpacked).
 * opts->content_type is ignored.  Errors as svc_client_call_raw, plus
 * SVC_ECODEC when the answer does not decode.
 */
int svc_call(svc_client *c, const char *service, const char *endpoint,
             const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rsp_desc,
             ProtobufCMessage **rsp, const svc_call_opts *opts, svc_error *err);

/* ---- streams (client side) ------------------------------------------------ */

typedef struct svc_client_stream svc_client_stream;

/*
 * Opens a stream to endpoint, sending body (in opts->content_type) as the
 * first request, with the client's and opts->meta's metadata.  The stream
 * uses its own connection to one node (opts->address, or a random node from
 * the registry; no retry on another).  opts->timeout_ms bounds only the
 * opening; streams live until closed.
 */
int svc_client_stream_open(svc_client *c, const char *service, const char *endpoint,
                           const void *body, size_t len, const svc_call_opts *opts,
                           svc_client_stream **out, svc_error *err);

/*
 * Waits up to timeout_ms (-1 forever) for the next message.  Returns 0 with
 * *out filled; 1 when the server ended the stream cleanly; SVC_ETIMEOUT when
 * nothing came in time (the stream stays usable); SVC_EREMOTE with *err when
 * the server ended it with an error; SVC_EUNREACHABLE when the connection
 * to the node was lost.
 */
int svc_client_stream_recv(svc_client_stream *st, int timeout_ms, svc_reply *out, svc_error *err);

/* Cancels the stream if still open, closes its connection, frees it. */
void svc_client_stream_close(svc_client_stream **st);

#ifdef __cplusplus
}
#endif
#endif
