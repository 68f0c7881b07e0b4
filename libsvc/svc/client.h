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
 * opts->content_type.  On success returns 0 and fills *out (release with
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

/*
 *     svc_client_stream *st;
 *     svc_client_stream_open_kind(c, "testsvc", "Test.Echo", SVC_STREAM_BIDI, NULL, 0,
 *                                 &opts, &st, &err);
 *     svc_client_stream_send(st, body, len, -1, &err);      // as many as you like
 *     svc_client_stream_close_send(st);                      // the server's recv sees EOF
 *     while ((rc = svc_client_stream_recv(st, -1, &r, &err)) == 0)
 *         ...use r, svc_reply_release(&r)...
 *     // rc 1: the server ended the stream cleanly; < 0: how it failed
 *     svc_client_stream_close(&st);
 *
 * Flow control (docs/protocol.md 9.6) is always on for libsvc streams: the
 * client grants the server SVC_STREAM_WINDOW (512) messages and grants more
 * as recv consumes them, so a client that stops reading stops the server's
 * handler instead of filling memory; send waits for the server's credit the
 * same way.  A stream object is used by one thread at a time.
 */
typedef struct svc_client_stream svc_client_stream;

/* Credit each end of a libsvc stream grants the other: messages in flight at most. */
#define SVC_STREAM_WINDOW 512

/* What a stream endpoint carries, and which way. */
typedef enum svc_stream_kind {
    SVC_STREAM_SERVER = 0,  /* one request in the open, then messages server -> client */
    SVC_STREAM_CLIENT,      /* messages client -> server; the server answers at the end */
    SVC_STREAM_BIDI,        /* messages both ways, independently */
} svc_stream_kind;

/* "server", "client" or "bidi": the value of the endpoint's `stream_kind` registry metadata. */
const char *svc_stream_kind_name(svc_stream_kind kind);

/*
 * Opens a server stream to endpoint, sending body (in opts->content_type)
 * as the first request, with the client's and opts->meta's metadata.  The stream
 * uses its own connection to one node (opts->address, or a random node from
 * the registry; no retry on another).  opts->timeout_ms bounds only the
 * opening; streams live until closed.  Same as svc_client_stream_open_kind
 * with SVC_STREAM_SERVER.
 */
int svc_client_stream_open(svc_client *c, const char *service, const char *endpoint,
                           const void *body, size_t len, const svc_call_opts *opts,
                           svc_client_stream **out, svc_error *err);

/*
 * Opens a stream of the given kind.  For SVC_STREAM_SERVER, body is the one
 * request; for SVC_STREAM_CLIENT and SVC_STREAM_BIDI it must be NULL/0 and
 * the requests go with svc_client_stream_send.  kind must match the
 * endpoint's (its registry metadata `stream_kind`); a server-streaming
 * endpoint refuses stream data with 400.  Returns 0 with *out set (free
 * with svc_client_stream_close), or, with *err set: SVC_ENOTFOUND (404),
 * SVC_EUNREACHABLE (503), SVC_ETIMEOUT (408), SVC_EINVAL, -ENOMEM.
 */
int svc_client_stream_open_kind(svc_client *c, const char *service, const char *endpoint,
                                svc_stream_kind kind, const void *body, size_t len,
                                const svc_call_opts *opts, svc_client_stream **out,
                                svc_error *err);

/*
 * Sends one request message (already encoded in the stream's content type;
 * body is copied).  Waits up to timeout_ms (-1 forever, 0 not at all) for
 * the server's credit.  Returns 0; SVC_ETIMEOUT when no credit came in time
 * (nothing sent: the server is not reading — receive, or try again);
 * SVC_ECLOSED when the stream has ended or was half-closed or cancelled
 * (recv tells how it ended); SVC_EINVAL on a server stream; SVC_ETOOBIG
 * over 16 MiB; SVC_EUNREACHABLE when the connection is lost (*err set).
 * Messages the server sends meanwhile are kept for recv.
 */
int svc_client_stream_send(svc_client_stream *st, const void *body, size_t len, int timeout_ms,
                           svc_error *err);

/*
 * Half-close: tells the server no more requests come (its svc_stream_recv
 * returns 1, end of stream, after the ones sent).  The stream stays open for
 * receiving until the server ends it.  Returns 0, SVC_ECLOSED if already
 * half-closed or ended, SVC_EUNREACHABLE if it cannot be sent.
 */
int svc_client_stream_close_send(svc_client_stream *st);

/*
 * Waits up to timeout_ms (-1 forever, 0 not at all) for the next message.
 * Returns 0 with *out filled (release with svc_reply_release); 1 when the
 * server ended the stream cleanly, after every message it sent; SVC_ETIMEOUT when
 * nothing came in time (the stream stays usable); SVC_EREMOTE with *err
 * when the server ended it with an error (or a 400 for a protocol
 * violation found here); SVC_EUNREACHABLE when the connection to the node
 * was lost; SVC_ECLOSED after svc_client_stream_cancel.  Once the end has been
 * reported, further calls return 1.
 */
int svc_client_stream_recv(svc_client_stream *st, int timeout_ms, svc_reply *out, svc_error *err);

/*
 * Abandons the stream now: STREAM_CANCEL to the server (whose handler sees
 * the stream closed), and messages still arriving are dropped.  Safe to
 * call more than once or after the end.
 */
void svc_client_stream_cancel(svc_client_stream *st);

/*
 * A file descriptor to poll(2) for POLLIN together with your own (svcctl
 * polls it with stdin): it becomes readable when something may have
 * arrived.  It is edge-triggered (ZeroMQ's ZMQ_FD): after it wakes you, and
 * after every send, call recv with timeout 0 until it returns SVC_ETIMEOUT,
 * and bound the poll (e.g. 200 ms) so a lost connection is noticed.
 * Borrowed for the stream's life.
 */
int svc_client_stream_fd(const svc_client_stream *st);

/* Cancels the stream if still open, closes its connection, frees it; *st becomes NULL. */
void svc_client_stream_close(svc_client_stream **st);

#ifdef __cplusplus
}
#endif
#endif
