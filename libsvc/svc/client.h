/*
 * svc/client.h — calling services by name.
 *
 * A client resolves a service name through its registry cache, picks a
 * node with its selector, sends the request over ZeroMQ and waits for the
 * answer until the call's deadline.  When a node cannot be reached — it
 * refuses the connection, or drops it while the call is in flight — or
 * answers 503 because it is draining, the call is retried on another node
 * with backoff, within the same deadline, as its retry policy says
 * (svc_retry_policy: how often, how long to pause, which errors).
 *
 * Registry cache.  The first call to a name fetches its nodes
 * (Registry.GetService) and opens one Registry.Watch stream for the client;
 * from then on create/update/delete events keep every cached view current,
 * so a steady-state call makes no registry round trip.  Without a watch
 * (registryd down, watch disabled, or the first SVC_WATCH_SETTLE_MS after a
 * watch opened) a view is trusted for `cache_ms` and then fetched again;
 * when the registry cannot be reached, or does not answer a refetch within
 * 500 ms, the stale view is served (a refetch is tried at most once a
 * second), and the watch is reopened every second
 * until it works; every reopen refetches the views (events were missed).
 *
 * Asynchronous calls.  svc_call_async() sends a call and returns a future
 * at once; svc_call_cb() takes a callback instead.  Any number of calls may
 * be in flight from one thread: they are pipelined on one DEALER per node
 * and told apart by id.  Nothing runs in the background: the client does
 * I/O (receives answers, retries, reconnects, applies registry events,
 * runs callbacks) only inside svc_future_wait(), svc_future_ready(),
 * svc_client_poll() and the synchronous calls, which are an async call
 * plus a wait.  Waiting on one future moves every other call on too.
 *
 * A client is NOT thread-safe: use one per thread (its futures belong to
 * that thread too).  Handlers get their worker thread's client from
 * svc_ctx_client() (svc/service.h).
 */
#ifndef SVC_CLIENT_H
#define SVC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
    SVC_SELECT_LEAST_OUTSTANDING, /* the node with the fewest of this client's calls in
                                     flight (ties at random): steers away from slow nodes */
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
#define SVC_WATCH_SETTLE_MS    500    /* a view fetched this soon after the watch opened is
                                         fetched once more (the watch may not have been live) */

/* Which failures a retry policy retries (bits of svc_retry_policy.on). */
enum {
    SVC_RETRY_TRANSPORT   = 1 << 0, /* node unreachable, or the connection dropped while waiting */
    SVC_RETRY_UNAVAILABLE = 1 << 1, /* ERROR 503 from the node (draining, busy, wrong service) */
    SVC_RETRY_TIMEOUT     = 1 << 2, /* no answer within attempt_timeout_ms (the node may
                                       have run the handler: only for idempotent calls) */
};
#define SVC_RETRY_DEFAULT (SVC_RETRY_TRANSPORT | SVC_RETRY_UNAVAILABLE)
#define SVC_RETRY_MAX_CODES 8

/*
 * A retry policy.  Each retry goes to a node this call has not tried yet
 * when there is one (else any, the tried ones again), after a pause:
 * the n-th pause (n = 1, 2, ...) is backoff_ms * backoff_factor^(n-1),
 * capped at backoff_max_ms, then shortened by a random fraction of at most
 * `jitter` (pause * (1 - jitter * U[0,1))).  The pause, the attempts and
 * the registry lookups all fit in the call's one deadline: a retry that
 * would start after it is not made.  A call to an explicit address
 * (svc_call_opts.address) is never retried.
 */
typedef struct svc_retry_policy {
    int retries;            /* further attempts after the first, 0..100 */
    int backoff_ms;         /* first pause, 0..60000 (0 = retry at once) */
    double backoff_factor;  /* growth of each further pause, 1..16 */
    int backoff_max_ms;     /* cap of one pause, >= backoff_ms, <= 600000 */
    double jitter;          /* 0..1: how much of each pause may be cut at random */
    unsigned on;            /* SVC_RETRY_* bits: the failures that are retried */
    int codes[SVC_RETRY_MAX_CODES]; /* further error codes (answered by a node) that are
                                       retried; 0 ends the list */
    int attempt_timeout_ms; /* with SVC_RETRY_TIMEOUT: how long one attempt waits; 0 = the
                               call's timeout / (retries + 1) */
} svc_retry_policy;

/* The client default: 2 retries, 10 ms doubling up to 1 s, jitter 0.5, transport and 503. */
#define SVC_RETRY_POLICY_INIT { SVC_DEFAULT_RETRIES, 10, 2.0, 1000, 0.5, SVC_RETRY_DEFAULT, \
                                { 0 }, 0 }

/* 0 when p is a valid policy, else SVC_EINVAL. */
int svc_retry_policy_check(const svc_retry_policy *p);

/* Per-call options; zero-initialise and set what you need. */
typedef struct svc_call_opts {
    int timeout_ms;           /* 0 = client default; the call's whole deadline */
    int retries;              /* 0 = the policy's count; -1 = no retries; else 1..100 */
    const char *address;      /* call this node directly, bypassing registry and selector */
    const char *content_type; /* of the request body (raw calls); NULL = application/protobuf */
    const svc_meta *meta;     /* merged over the client's metadata for this call */
    svc_strategy strategy;    /* SVC_SELECT_DEFAULT = the client's */
    const char *version;      /* only nodes whose version matches this glob ("2.*"); NULL = any */
    const char *node_meta;    /* only nodes whose metadata match "k=glob[,k=glob]"; NULL = any */
    const svc_retry_policy *retry; /* NULL = the client's; replaces it whole (then `retries`,
                                      if set, still overrides its count); copied */
    int64_t deadline_ms;      /* absolute deadline on svc_now_ms()'s clock, 0 = none; the
                                 sooner of it and timeout_ms applies.  Already passed: the
                                 call fails with 408 and nothing is sent */
} svc_call_opts;

/* Milliseconds on the monotonic clock: the clock of svc_call_opts.deadline_ms. */
int64_t svc_now_ms(void);

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

/*
 * Client-wide defaults; each returns 0 or SVC_EINVAL.  cache_ms is how long
 * a registry view is trusted without a live watch (0: fetched every call).
 */
int svc_client_set_timeout(svc_client *c, int timeout_ms);
int svc_client_set_retries(svc_client *c, int retries);
int svc_client_set_strategy(svc_client *c, svc_strategy s);
int svc_client_set_cache(svc_client *c, int cache_ms);

/* The client's retry policy (copied); svc_client_set_retries sets only its count. */
int svc_client_set_retry(svc_client *c, const svc_retry_policy *p);

/* Turns the registry watch on (the default) or off (views then live cache_ms). */
void svc_client_set_watch(svc_client *c, bool on);

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
 * left of its deadline (408 without sending when nothing is); and waits for
 * the answer (svc_call_async + svc_future_wait: other calls of this client
 * move on meanwhile).  On success returns 0 and fills *out (release with
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

/* ---- asynchronous calls ----------------------------------------------------------- */

/* A call in flight, and later its result. */
typedef struct svc_future svc_future;

/*
 * Starts a call like svc_client_call_raw and returns at once with *out, a
 * future of its result.  body is copied.  The call is sent before this
 * returns when the node's connection is up (a new connection is made in
 * the background, up to SVC_CONNECT_TIMEOUT_MS).  It never waits for the
 * registry either: when the cache has no view of the service to serve (or
 * only a stale one), a Registry.GetService is started (one per name, shared
 * by every call that needs it) and the call waits for its answer in the
 * pump, then goes on as if the view had been there; a stale view is still
 * served when the registry does not answer within 500 ms.
 * Every failure of the call itself — 400, 404, 408, 413, 503, remote
 * errors — is delivered through the future, never here.  The call carries
 * trace ids like a synchronous one (svc/trace.h) and, made on a thread
 * handling a request, ends by that request's deadline (408 unsent once it
 * has passed); it does not run the client's wrappers (svc/wrap.h), which
 * bracket synchronous calls only.  Returns 0, or
 * -ENOMEM / SVC_EINVAL (c or out NULL) / SVC_ECLOSED (called while the
 * client is being destroyed) with *out NULL and nothing started.
 */
int svc_call_async(svc_client *c, const char *service, const char *endpoint,
                   const void *body, size_t len, const svc_call_opts *opts, svc_future **out);

/*
 * Does the client's I/O until f has its result, at most timeout_ms (-1:
 * until it has, which the call's deadline bounds).  Every other call of the
 * client progresses meanwhile, and callbacks (svc_call_cb) may run.
 * Returns 0 when f is done, SVC_ETIMEOUT when timeout_ms passed first (f
 * stays pending).  Always does at least one round of I/O, even for 0.
 */
int svc_future_wait(svc_future *f, int timeout_ms);

/* Does the I/O that is ready without blocking; true when f is done. */
bool svc_future_ready(svc_future *f);

/*
 * The result of a done future: the return value svc_client_call_raw would
 * have given, with *out and *err filled the same way (they are moved out:
 * asking again gives the code with an empty reply and error).  -EAGAIN
 * (out and err untouched) while pending.  out or err may be NULL.
 */
int svc_future_result(svc_future *f, svc_reply *out, svc_error *err);

/* The node address the last attempt went to, borrowed from f; NULL before any. */
const char *svc_future_node(const svc_future *f);

/* Attempts made so far (1 + retries). */
int svc_future_attempts(const svc_future *f);

/*
 * Frees f; *f becomes NULL; safe on NULL.  A pending call is abandoned: it
 * is not retried again and its answer is dropped when it comes.  A future
 * may outlive its client: svc_client_destroy completes pending futures with
 * SVC_ECLOSED (503), and they must still be destroyed.
 */
void svc_future_destroy(svc_future **f);

/*
 * Called once with the outcome of an svc_call_cb call: rc as
 * svc_client_call_raw returns it, reply filled when rc is 0, err when it is
 * negative.  Both belong to the library and are released when the callback
 * returns: take what you keep (e.g. move reply->body out and set it NULL).
 * Runs inside this client's svc_client_poll / svc_future_wait /
 * svc_future_ready / synchronous calls, never inside svc_call_cb itself; it
 * may start new calls, and wait on them, but must not destroy the client.
 */
typedef void (*svc_done_fn)(void *arg, int rc, svc_reply *reply, svc_error *err);

/*
 * Starts a call like svc_call_async, reporting to fn(arg, ...) instead of a
 * future.  Returns 0 (fn will be called exactly once: with SVC_ECLOSED if
 * the client is destroyed first), or -ENOMEM / SVC_EINVAL (fn NULL) /
 * SVC_ECLOSED, and then fn is never called.
 */
int svc_call_cb(svc_client *c, const char *service, const char *endpoint, const void *body,
                size_t len, const svc_call_opts *opts, svc_done_fn fn, void *arg);

/*
 * Does the client's I/O for at most timeout_ms (0: only what is ready; -1:
 * until a call completes or nothing is pending).  Returns how many calls
 * are still pending afterwards, so `while (svc_client_poll(c, -1) > 0) ;`
 * runs every callback.
 */
size_t svc_client_poll(svc_client *c, int timeout_ms);

/* Calls started and not yet done (abandoned ones included until they end). */
size_t svc_client_pending(const svc_client *c);

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
 * uses its own connection to one node (opts->address, or a random node of
 * the client's cached registry view matching opts->version and
 * opts->node_meta; no retry on another).  opts->timeout_ms bounds only the
 * opening; opts->deadline_ms, when set, is the whole stream's deadline (see
 * svc_client_stream_open_kind); else streams live until closed.  Same as
 * svc_client_stream_open_kind with SVC_STREAM_SERVER.
 */
int svc_client_stream_open(svc_client *c, const char *service, const char *endpoint,
                           const void *body, size_t len, const svc_call_opts *opts,
                           svc_client_stream **out, svc_error *err);

/*
 * Opens a stream of the given kind.  For SVC_STREAM_SERVER, body is the one
 * request; for SVC_STREAM_CLIENT and SVC_STREAM_BIDI it must be NULL/0 and
 * the requests go with svc_client_stream_send.  kind must match the
 * endpoint's (its registry metadata `stream_kind`); a server-streaming
 * endpoint refuses stream data with 400.  opts->timeout_ms (default 30 s)
 * bounds the opening only.  opts->deadline_ms (absolute, svc_now_ms()'s
 * clock; 0 = none) is the deadline of the whole stream: it travels as the
 * STREAM_OPEN's timeout_ms, the handler sees it in svc_ctx_remaining_ms,
 * and when it passes the stream ends on both sides — recv then returns
 * SVC_EREMOTE with 408 "stream deadline exceeded", send SVC_ECLOSED.
 * Returns 0 with *out set (free with svc_client_stream_close), or, with
 * *err set: SVC_ENOTFOUND (404), SVC_EUNREACHABLE (503), SVC_ETIMEOUT (408,
 * also when deadline_ms has passed: nothing is sent), SVC_EINVAL, -ENOMEM.
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
 * the stream closed), and messages still arriving are dropped.  A PING
 * follows the cancel and this waits for its PONG, one round trip and at
 * most 200 ms, so that nothing is still arriving when the connection
 * closes.  Safe to call more than once or after the end.
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
