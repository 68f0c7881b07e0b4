/*
 * svc/service.h — writing a service.
 *
 *     static int say_hello(svc_ctx *ctx, const void *req, void *rsp)
 *     {
 *         const Greeter__HelloRequest *in = req;
 *         Greeter__HelloResponse *out = rsp;
 *         if (!in->name[0])
 *             return svc_ctx_error(ctx, 400, "name is empty");
 *         if (asprintf(&out->msg, "Hello %s", in->name) < 0)
 *             return -ENOMEM;
 *         return 0;
 *     }
 *
 *     int main(int argc, char **argv)
 *     {
 *         svc_service *s = svc_new("greeter", argc, argv);
 *         svc_handle(s, "Say.Hello", say_hello, &greeter__hello_request__descriptor,
 *                    &greeter__hello_response__descriptor);
 *         return svc_run(s);
 *     }
 *
 * svc_run binds the server, registers the service with the registry (and
 * registers again every register-interval, with register-ttl), serves
 * requests on a pool of worker threads, and on SIGTERM or SIGINT deregisters
 * at once, stops taking new requests, lets the ones in flight finish (up to
 * the drain timeout) and returns 0.
 *
 * Every service also serves Debug.Health and Debug.Stats (proto/debug.proto),
 * with per-endpoint counters and latency percentiles.  Wrappers around
 * handlers and onward calls: svc/wrap.h.  Trace ids: svc/trace.h.
 *
 * Under systemd or svc's supervisor (the notify protocol, $NOTIFY_SOCKET):
 * READY=1 (with STATUS= and SVC_ADDRESS=<advertised address>) once the
 * first registration succeeded; when $WATCHDOG_USEC is set for this process,
 * WATCHDOG=1 every half of it from the event-loop thread, so a service whose
 * loop stalls stops pinging and is restarted.
 *
 * Options (flag, else environment variable, else default):
 *   --name NAME               SVC_NAME                service name (default: svc_new's)
 *   --version V               SVC_VERSION             default "latest"
 *   --address ADDR            SVC_ADDRESS             bind, default tcp://127.0.0.1:* (any free port)
 *   --advertise ADDR          SVC_ADVERTISE           address others call, default: the bound one
 *   --metadata K=V            SVC_METADATA            node metadata; repeatable / comma-separated
 *   --registry ADDR           SVC_REGISTRY_ADDRESS    default tcp://127.0.0.1:7700
 *   --register-ttl SECONDS    SVC_REGISTER_TTL        default 90
 *   --register-interval SEC   SVC_REGISTER_INTERVAL   default 30
 *   --workers N               SVC_WORKERS             handler threads, default 16
 *   --drain-timeout SECONDS   SVC_DRAIN_TIMEOUT       default 10
 *   --send-hwm N              SVC_SEND_HWM            messages queued per caller; a stream whose
 *                                                     receiver falls this far behind ends with
 *                                                     429 (default 10000; keep it at 2000 or
 *                                                     more for streams with credit)
 *   --log-level LEVEL         SVC_LOG_LEVEL           debug|info|warn|error
 *   --log-requests            SVC_LOG_REQUESTS        1|0: log one line per request and per
 *                                                     onward call (svc/wrap.h), default off
 *   --help
 */
#ifndef SVC_SERVICE_H
#define SVC_SERVICE_H

#include <stdbool.h>
#include <protobuf-c/protobuf-c.h>

#include "svc/client.h"
#include "svc/error.h"
#include "svc/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct svc_service svc_service;
typedef struct svc_ctx svc_ctx;
typedef struct svc_stream svc_stream;

/*
 * A unary handler.  req is the decoded request (a message of the endpoint's
 * request type, borrowed for the call); rsp is an initialised message of the
 * response type to fill in.  Every pointer stored into rsp must be malloc'd:
 * the server frees rsp with protobuf_c_message_free_unpacked() after sending.
 * Return 0 for success, the value of svc_ctx_error() for an error reply, or
 * any other negative code (answered as 500 naming the code).
 * Handlers run on worker threads: several run at once.
 */
typedef int (*svc_handler_fn)(svc_ctx *ctx, const void *req, void *rsp);

/*
 * A server-streaming handler: gets the first request and the stream.
 * Returning 0, it owns the stream from then on — it may send on it from any
 * thread, and must end it with svc_stream_close() when done.  Returning an
 * error (e.g. svc_ctx_error), it must not have closed or kept the stream:
 * the server ends it with that error.
 */
typedef int (*svc_stream_fn)(svc_ctx *ctx, const void *req, svc_stream *stream);

/*
 * A client-streaming or bidirectional handler: reads requests with
 * svc_stream_recv until it returns 1 (the client half-closed), sends with
 * svc_stream_send_wait, on its worker thread, for as long as the stream
 * lasts.  When it returns, the stream ends: 0 closes it cleanly, an error
 * (e.g. svc_ctx_error) ends it with that error — which is also how the
 * server cancels a stream the client is still sending on.  The stream is
 * borrowed for the call: the handler must not svc_stream_close it nor use
 * it after returning.  Each open stream of this kind holds one worker: size
 * --workers for the streams you expect at once.
 */
typedef int (*svc_stream_io_fn)(svc_ctx *ctx, svc_stream *stream);

/*
 * Creates a service named name and applies options from argv and the
 * environment (see above).  argv may be NULL.  On --help prints usage to
 * stdout and exits 0; on an invalid flag or value prints one line naming it
 * to stderr and exits 64 (EX_USAGE).  Returns NULL only on out-of-memory.
 */
svc_service *svc_new(const char *name, int argc, char **argv);

/*
 * Adds a unary endpoint ("Struct.Method").  Returns 0, SVC_EEXIST if the
 * name is taken, SVC_EINVAL for a malformed name or missing descriptor.
 */
int svc_handle(svc_service *s, const char *endpoint, svc_handler_fn fn,
               const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp);

/*
 * Adds a unary endpoint whose handler runs on the server's event-loop thread
 * instead of a worker: no thread hand-off, so a call costs about a third
 * less (see bench/).  Only for handlers that never block — no sleeping, no
 * disk or network I/O, no lock held for long: while one runs, the service
 * receives nothing.  svc_ctx_call() from such a handler fails with 500.
 * Same returns as svc_handle.
 */
int svc_handle_inline(svc_service *s, const char *endpoint, svc_handler_fn fn,
                      const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp);

/*
 * Adds a server-streaming endpoint; registered with endpoint metadata
 * stream=true and stream_kind=server.
 */
int svc_handle_stream(svc_service *s, const char *endpoint, svc_stream_fn fn,
                      const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp);

/*
 * Adds a client-streaming (SVC_STREAM_CLIENT) or bidirectional
 * (SVC_STREAM_BIDI) endpoint: req is the type of every message the client
 * sends, rsp of every message the server sends.  Registered with endpoint
 * metadata stream=true and stream_kind=client|bidi.  Same returns as
 * svc_handle; SVC_EINVAL for kind SVC_STREAM_SERVER (use svc_handle_stream).
 */
int svc_handle_streaming(svc_service *s, const char *endpoint, svc_stream_kind kind,
                         svc_stream_io_fn fn, const ProtobufCMessageDescriptor *req,
                         const ProtobufCMessageDescriptor *rsp);

/* Service-level settings; call before svc_run.  Strings are copied. */
int svc_set_version(svc_service *s, const char *version);
int svc_set_metadata(svc_service *s, const char *key, const char *value);
int svc_set_address(svc_service *s, const char *address);
int svc_set_registry(svc_service *s, const char *address);

/* Pointer handed to handlers through svc_ctx_data(); not owned. */
void svc_set_data(svc_service *s, void *data);

/* Service name / bound address / node id; borrowed for the service's life. */
const char *svc_name(const svc_service *s);
const char *svc_address(const svc_service *s);  /* after svc_run bound it; else NULL */
const char *svc_node_id(const svc_service *s);
const char *svc_bind_address(const svc_service *s);  /* as configured (--address) */

/*
 * Binds, registers, serves until stopped.  Returns the process exit code:
 * 0 after a clean stop, 1 if the address cannot be bound, on a fatal error,
 * or when handlers still ran a second after the drain timeout (they are
 * abandoned; the process should exit).  All logged.  Frees nothing: call
 * svc_destroy afterwards.
 */
int svc_run(svc_service *s);

/* Asks a running service to stop as on SIGTERM.  Thread-safe. */
void svc_stop(svc_service *s);

/*
 * True once the service was asked to stop (SIGTERM, SIGINT, svc_stop):
 * handlers that wait for something (a lock, an event) should give up and
 * answer 503.  Thread-safe.
 */
bool svc_stopping(const svc_service *s);

/* Frees the service; *s becomes NULL.  Safe on NULL.  Not while svc_run runs. */
void svc_destroy(svc_service **s);

/* ---- inside a handler ---------------------------------------------------------- */

/*
 * Sets the error answered for this request and returns SVC_EREMOTE, so that
 * `return svc_ctx_error(ctx, 404, "user \"%s\" not found", id);` answers
 * {"id":<service>,"code":404,"detail":...,"status":"Not Found"}.
 */
int svc_ctx_error(svc_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Metadata value sent by the caller, or NULL; borrowed for the call. */
const char *svc_ctx_meta(const svc_ctx *ctx, const char *key);

/* The endpoint being served ("Say.Hello"); borrowed for the call. */
const char *svc_ctx_endpoint(const svc_ctx *ctx);

/*
 * Milliseconds left before the caller's deadline; -1 when it set none.  A
 * handler doing long work should stop when it reaches 0: nobody waits for
 * the answer any more.
 */
int svc_ctx_remaining_ms(const svc_ctx *ctx);

/* The service's data pointer (svc_set_data). */
void *svc_ctx_data(const svc_ctx *ctx);

/* The worker thread's client, for calling other services; owned by the worker. */
svc_client *svc_ctx_client(svc_ctx *ctx);

/*
 * Calls another service on behalf of this request: like svc_call with the
 * worker's client, the caller's remaining deadline (or opts->timeout_ms if
 * sooner), and all the incoming metadata passed on (auth token, ...: as
 * go-micro does) with what wrappers set (svc_ctx_set_meta), opts->meta
 * overriding it; the trace continues with a new span (svc/trace.h).  A
 * deadline that has already passed fails with SVC_ETIMEOUT (408) without
 * sending anything.  (A plain svc_call on svc_ctx_client(ctx) keeps the
 * trace and the deadline too, but passes no other metadata on.)
 */
int svc_ctx_call(svc_ctx *ctx, const char *service, const char *endpoint,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rsp_desc,
                 ProtobufCMessage **rsp, const svc_call_opts *opts, svc_error *err);

/*
 * Tells the worker pool that the calling handler is about to wait — for a
 * disk commit, a lock, a condition — rather than compute, so that another
 * worker takes the requests queued behind it at once.  (The pool keeps only
 * as many workers running as there are CPUs less one, and otherwise counts
 * a handler as blocked only after it has run 1 ms.)  Lasts until the
 * handler returns.  Onward calls and stream receives that wait do this
 * themselves.  A no-op on any thread that is not a worker running a handler.
 */
void svc_handler_blocking(void);

/* ---- deferred answers ---------------------------------------------------------- */

/*
 * An answer that is not ready when the handler returns — it waits for a
 * disk commit, a batch, an event on another thread — goes out later:
 *
 *     svc_deferred *d = svc_ctx_defer(ctx);
 *     queue_for_the_writer(d, svc_deferred_request(d));  // to some other thread
 *     return 0;                                          // rsp is not sent
 *     ...                                                // later, on that thread:
 *     Store__WriteResponse out = STORE__WRITE_RESPONSE__INIT;
 *     svc_deferred_send(&d, &out.base);
 *
 * The handler's thread (a worker, or the loop thread for svc_handle_inline)
 * is free at once, so any number of requests can wait for their answers on
 * a few threads: this is how stored acknowledges a whole group commit with
 * no thread held per write.  The decoded request stays valid until the
 * answer (svc_deferred_request); the request counts as in flight until then,
 * so a draining service waits for it (up to --drain-timeout) and the
 * endpoint's stats time it to the answer.  Answer every deferred request
 * exactly once, from any thread, before svc_destroy; an answer made after
 * svc_run has returned is dropped (freed, not sent).  After deferring, the
 * handler's return value is ignored (logged when not 0), and server
 * wrappers (svc/wrap.h) see the handler return, not the answer.
 */
typedef struct svc_deferred svc_deferred;

/*
 * Takes the answer to the current unary request out of the handler.  NULL
 * (answer as usual) for a stream endpoint, when already deferred, or out of
 * memory.
 */
svc_deferred *svc_ctx_defer(svc_ctx *ctx);

/* The request being answered (the endpoint's request type), owned by d. */
const void *svc_deferred_request(const svc_deferred *d);

/*
 * Answers with rsp (the endpoint's response type; the caller keeps it), in
 * the request's content type, and frees *d (NULL after).  0, or a negative
 * code when the answer could not be encoded or sent (the caller then got a
 * 500 or nothing; either way *d is freed).  Any thread.
 */
int svc_deferred_send(svc_deferred **d, const ProtobufCMessage *rsp);

/* Answers with an error (code as svc_ctx_error) and frees *d.  Any thread. */
int svc_deferred_error(svc_deferred **d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- server streams ---------------------------------------------------------- */

/*
 * Flow control: when the client granted credit (every libsvc client does:
 * SVC_STREAM_WINDOW messages, more as it reads), the server may have at most
 * that many messages unread at the client.  Beyond that svc_stream_send
 * keeps messages at the server, in order, until the client grants more —
 * at most --send-hwm of them, then it fails with -EAGAIN — and
 * svc_stream_send_wait waits, so a client that stops reading stalls the
 * sender (or makes it drop the stream) instead of growing memory.
 * The other way, the server grants the client SVC_STREAM_WINDOW messages and
 * grants more as svc_stream_recv consumes them.
 */

/*
 * Sends one message on the stream without waiting.  Thread-safe.  Returns
 * 0 (sent, or kept in order until the client grants credit); SVC_ECLOSED
 * when the client cancelled, went away or could not keep up, or the stream
 * was closed (stop sending and close); -EAGAIN when --send-hwm messages
 * already wait for the client's credit (it is not reading: registryd ends
 * such a watch with 429) or the server's send queue is full; SVC_ETOOBIG for a message over 16 MiB encoded;
 * SVC_ECODEC / -ENOMEM.
 */
int svc_stream_send(svc_stream *st, const ProtobufCMessage *msg);

/*
 * Like svc_stream_send, but waits up to timeout_ms (-1 forever) for the
 * client's credit.  Returns SVC_ETIMEOUT when none came in time (nothing
 * sent), SVC_ECLOSED as soon as the stream ends while waiting, else as
 * svc_stream_send.
 */
int svc_stream_send_wait(svc_stream *st, const ProtobufCMessage *msg, int timeout_ms);

/*
 * Receives the next request of a client-streaming or bidirectional stream,
 * waiting up to timeout_ms (-1 forever, 0 not at all).  Returns 0 with *msg
 * a new message of the endpoint's request type (the caller frees it with
 * protobuf_c_message_free_unpacked); 1 when the client half-closed and every
 * message before it was received (end of input; the handler may go on
 * sending); SVC_ETIMEOUT; SVC_ECLOSED when the client cancelled or went away,
 * or the stream ended; SVC_ECODEC when the message did not decode — the stream
 * is then ended with 400 naming the reason; SVC_EINVAL on a server stream.
 * One thread at a time.
 */
int svc_stream_recv(svc_stream *st, int timeout_ms, ProtobufCMessage **msg);

/* True once the client cancelled or is gone, or the stream was ended. */
bool svc_stream_closed(const svc_stream *st);

/*
 * Ends the stream (with err, or cleanly when err is NULL) if still open, and
 * releases the handler's reference; *st becomes NULL.  Thread-safe.  For
 * server streams (svc_stream_fn) only: a client-streaming or bidirectional
 * handler ends its stream by returning.
 */
void svc_stream_close(svc_stream **st, const svc_error *err);

#ifdef __cplusplus
}
#endif
#endif
