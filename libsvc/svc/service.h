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
 * Every service also serves Debug.Health and Debug.Stats (proto/debug.proto).
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
 *                                                     429 (default 10000)
 *   --log-level LEVEL         SVC_LOG_LEVEL           debug|info|warn|error
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

/* Adds a server-streaming endpoint; registered with metadata stream=true. */
int svc_handle_stream(svc_service *s, const char *endpoint, svc_stream_fn fn,
                      const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp);

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

/* Milliseconds left before the caller's deadline; -1 when it set none. */
int svc_ctx_remaining_ms(const svc_ctx *ctx);

/* The service's data pointer (svc_set_data). */
void *svc_ctx_data(const svc_ctx *ctx);

/* The worker thread's client, for calling other services; owned by the worker. */
svc_client *svc_ctx_client(svc_ctx *ctx);

/*
 * Calls another service on behalf of this request: like svc_call with the
 * worker's client, the caller's remaining deadline (or opts->timeout_ms if
 * sooner), and all the incoming metadata passed on (trace ids, auth token,
 * ...: as go-micro does), opts->meta overriding it.  A deadline that has
 * already passed fails with SVC_ETIMEOUT (408) without sending anything.
 */
int svc_ctx_call(svc_ctx *ctx, const char *service, const char *endpoint,
                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rsp_desc,
                 ProtobufCMessage **rsp, const svc_call_opts *opts, svc_error *err);

/* ---- server streams ---------------------------------------------------------- */

/*
 * Sends one message on the stream.  Thread-safe.  Returns 0, SVC_ECLOSED
 * when the client cancelled, went away or could not keep up (stop sending
 * and close), -EAGAIN when the server's send queue is full, SVC_ETOOBIG for
 * a message over 16 MiB encoded, SVC_ECODEC / -ENOMEM.
 */
int svc_stream_send(svc_stream *st, const ProtobufCMessage *msg);

/* True once the client cancelled or is gone. */
bool svc_stream_closed(const svc_stream *st);

/*
 * Ends the stream (with err, or cleanly when err is NULL) if still open, and
 * releases the handler's reference; *st becomes NULL.  Thread-safe.
 */
void svc_stream_close(svc_stream **st, const svc_error *err);

#ifdef __cplusplus
}
#endif
#endif
