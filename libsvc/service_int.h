/*
 * libsvc/service_int.h — the parts of a running service (internal).
 *
 *   service.c    svc_new, settings, svc_run: the order of start and stop
 *   options.c    flags and environment
 *   server.c     the ROUTER socket on the libev loop: receive, dispatch, send
 *   worker.c     the handler thread pool and svc_ctx
 *   stream.c     server-side streams
 *   registrar.c  the thread that registers, re-registers and deregisters
 *   debug.c      Debug.Health and Debug.Stats
 *   schema.c     endpoint request/response descriptions for the registry
 *   subscriber.c subscribers declared with svc_subscribe (svc/broker.h)
 *
 * Threads: the loop thread owns the stream list and all libev watchers and
 * receives on the ROUTER; workers take jobs from `jobs` (under `mu`).  A
 * worker sends a unary answer itself, on the ROUTER under `sock_mu` (a
 * ZeroMQ socket may change threads behind a full memory barrier), which
 * saves a thread hop per call; stream messages go through `out` (under
 * `mu`) and the loop thread, which keeps each stream's order and its list.
 * A worker wakes the loop (`wake`) when it queued something, when input
 * may be pending after its send (ZMQ_FD is edge-triggered), or while the
 * server drains.
 */
#ifndef SVC__SERVICE_INT_H
#define SVC__SERVICE_INT_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "svc/service.h"
#include "flow.h"
#include "epstats.h"
#include "registry.pb-c.h"
#include "wire.h"
#include "wrap_int.h"

#define SVC_MAX_QUEUED_JOBS 4096   /* beyond: answer 503 busy */
#define SVC_MAX_QUEUED_BYTES (256L * 1024 * 1024)  /* request bytes queued; beyond: 503 busy */
#define SVC_DRAIN_BATCH     256    /* messages read per loop turn, so timers and signals run */
#define SVC_ROUTER_SNDHWM   10000  /* default --send-hwm: messages queued per peer before sends fail */
#define SVC_FLUSH_MS        2000   /* at stop, how long unsent answers may take to leave */
#define SVC_MAX_STREAMS     4096   /* open streams per service; beyond: 503 */
#define SVC_MAX_QUEUED_OUT  65536  /* beyond: stream sends get -EAGAIN */
#define SVC_STREAM_BUCKETS  1024   /* open streams hash table (power of 2) */
#define SVC_BLOCKED_US      1000   /* a handler running this long counts as blocked (worker.c) */

typedef struct svc__endpoint {
    char *name;                                /* "Struct.Method", owned */
    svc_handler_fn fn;                         /* unary handler, or NULL */
    svc_stream_fn sfn;                         /* server-stream handler, or NULL */
    svc_stream_io_fn iofn;                     /* client-stream / bidi handler, or NULL */
    svc_stream_kind kind;                      /* for stream endpoints */
    const ProtobufCMessageDescriptor *req;     /* request type */
    const ProtobufCMessageDescriptor *rsp;     /* response type */
    bool inline_;                              /* built-in: run on the loop thread */
    svc__epstats *stats;                       /* counters for Debug.Stats, owned */
} svc__endpoint;

/* One worker thread, as the wake policy sees it (worker.c). */
typedef struct svc__worker {
    svc_service *svc;             /* the service */
    atomic_llong busy_since;      /* monotonic us its current handler began; 0 = in none */
} svc__worker;

/* A request waiting for, or being handled by, a worker. */
typedef struct svc__job {
    svc__msg msg;                 /* the request as received (owns route, header, body) */
    const svc__endpoint *ep;      /* target endpoint */
    int64_t deadline;             /* monotonic ms, -1 for none */
    svc_stream *stream;           /* for STREAM_OPEN: the new stream (job holds a ref) */
    struct svc__job *next;
} svc__job;

/* An encoded message waiting for the loop thread to send it. */
typedef struct svc__out {
    zmq_msg_t route;              /* peer routing id */
    void *hdr;                    /* packed header, malloc'd */
    size_t hlen;
    void *body;                   /* malloc'd or NULL */
    size_t blen;
    svc_stream *stream;           /* stream this belongs to (holds a ref), or NULL */
    bool ends_stream;             /* STREAM_CLOSE: stream is done after this */
    bool is_error;                /* counts as an error in stats */
    bool one_block;               /* hdr and body live in o's own allocation (stream data) */
    int64_t since;                /* first send attempt (retried stream ends), monotonic ms */
    struct svc__out *next;
} svc__out;

/* A message received on a stream, waiting for svc_stream_recv. */
typedef struct svc__in {
    zmq_msg_t body;               /* the body frame, moved from the received message */
    struct svc__in *next;
} svc__in;

struct svc_stream {
    svc_service *svc;             /* owning service */
    zmq_msg_t route;              /* client routing id */
    uint64_t id;                  /* stream id chosen by the client */
    char *content_type;           /* for every message, owned */
    const ProtobufCMessageDescriptor *desc;     /* message type sent */
    const ProtobufCMessageDescriptor *in_desc;  /* message type received (client/bidi) */
    const char *ep_name;          /* endpoint, borrowed from the service */
    svc_stream_kind kind;         /* server, client or bidi */
    bool is_pb;                   /* content type is protobuf (encoded in place) */
    void *data_hdr;               /* packed header of every STREAM_DATA we send, owned */
    size_t data_hlen;             /* its length */
    atomic_int refs;              /* server table + handler (or job) + queued outs */
    atomic_bool closed;           /* client cancelled / gone, or ended */
    atomic_bool ending;           /* its STREAM_CLOSE is queued: the handler sends no more */
    bool listed;                  /* in svc->stream_tab (loop thread only) */
    struct svc_stream *next;      /* hash chain in svc->stream_tab (loop thread only) */
    pthread_mutex_t mu;           /* flow, in_* */
    pthread_cond_t cv;            /* signalled on data, credit, half-close, end */
    svc__flow flow;               /* credits both ways, half-close (under mu) */
    svc__in *in_head, *in_tail;   /* received, not yet recv'd (under mu; <= window) */
    size_t n_in;                  /* messages in that queue */
    ev_timer deadline_timer;      /* the STREAM_OPEN's timeout_ms: ends it with 408 (loop thread) */
    svc__out *pend_head, *pend_tail; /* sent by svc_stream_send without credit, in order, waiting
                                        for the client's grant (under mu; <= --send-hwm) */
    size_t n_pend;                /* messages in that queue */
};

typedef enum svc__state {
    SVC__IDLE = 0,        /* not running */
    SVC__SERVING,         /* normal */
    SVC__DEREGISTERING,   /* stop asked: deregistering, still serving */
    SVC__DRAINING,        /* new requests answered 503; waiting for in-flight */
    SVC__STOPPED,         /* loop about to exit */
} svc__state;

struct svc_service {
    /* settings */
    char *name, *version, *address, *advertise, *registry;
    svc_meta meta;              /* node metadata */
    svc_meta svc_meta_;         /* service-level metadata */
    int ttl_s, interval_s, workers, drain_s, send_hwm;
    char node_id[96];
    svc__endpoint *eps;
    size_t n_eps, cap_eps;
    void *data;

    /* runtime, loop thread */
    struct ev_loop *loop;
    void *zctx;                 /* the ROUTER's own context: terminating it flushes at stop */
    void *router;
    char *bound;                /* ZMQ_LAST_ENDPOINT */
    ev_io io;
    ev_idle more;               /* input left after a batch: read on at the next turn */
    ev_timer retry_timer;       /* resends the 429 ends of overflowed streams */
    svc__out *retry_list;       /* those ends (loop thread only) */
    ev_async wake;
    ev_signal sigterm, sigint;
    ev_timer drain_timer, dereg_timer;
    ev_timer watchdog;          /* WATCHDOG=1 every WATCHDOG_USEC/2 when asked (sd_watchdog_enabled) */
    svc__state state;
    bool drain_timed_out;       /* the loop ended with requests in flight */
    bool abandoned;             /* handlers never returned: keep shared state alive */
    svc_stream *stream_tab[SVC_STREAM_BUCKETS]; /* open streams by id (loop thread only) */
    size_t n_streams;           /* in `stream_tab` (loop thread only) */
    atomic_llong log_window, log_count; /* rate limit for bad-input logs */
    pthread_mutex_t sock_mu;    /* every use of `router` */
    atomic_bool draining;       /* stop asked: workers always wake the loop */
    atomic_ullong sent_bytes;   /* body bytes sent since start (flush pause at stop) */
    unsigned long long drain_sent; /* sent_bytes when the drain began */

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* workers: jobs or quit */
    svc__job *jobs, *jobs_tail;
    size_t n_jobs;
    size_t queued_bytes;        /* body bytes of queued jobs */
    svc__out *out, *out_tail;
    size_t n_out;
    bool quit_workers;
    bool out_open;              /* the loop takes outs; false once it is gone */
    pthread_t *threads;
    int n_threads;
    svc__worker *wk;            /* one per thread (busy_since read without mu) */
    int n_idle;                 /* workers waiting on cv */
    int n_woken;                /* of those, signalled and not yet up */
    int run_target;             /* workers kept running at once: online CPUs - 1, at least 1 */
    ev_timer wake_timer;        /* loop thread, while jobs wait: wakes a worker if runners block */

    /* registrar */
    pthread_t reg_thread;
    pthread_cond_t reg_cv;      /* under mu */
    bool reg_running, reg_stop, reg_done;
    atomic_bool stop_requested;

    /* stats */
    uint64_t started_unix;
    atomic_ulong requests, errors;
    atomic_uint inflight;
    Svc__Registry__Service *reg_service;  /* what the registrar registers */

    /* subscribers (subscriber.c) */
    struct svc__subscriber *subscribers;  /* declared with svc_subscribe, owned */
    struct svc_broker *broker;  /* their broker client while running */
    pthread_t sub_thread;       /* subscribes them, retrying until brokerd accepts */
    bool sub_running, sub_stop; /* sub_stop under mu, signalled on reg_cv */
    /* wrappers (wrap.c): fixed before svc_run, read by every thread after */
    svc__hwraps handler_wraps;  /* around every handler */
    svc__cwraps client_wraps;   /* given to each worker's client */
    bool log_requests;          /* --log-requests: the log wrappers are installed */
};

/* options.c */
int svc__options_parse(svc_service *s, int argc, char **argv);

/* server.c */
int svc__server_start(svc_service *s);          /* bind + watchers; 0 or <0 (logged) */
void svc__server_stop(svc_service *s);          /* close socket, release watchers */
void svc__server_push(svc_service *s, svc__out *o);  /* any thread; takes o */
/*
 * Sends o now and frees it.  Any thread for unary answers; stream messages
 * only on the loop thread.  Returns true when input is waiting on the
 * socket, which the loop must then be woken to read.
 */
bool svc__server_send(svc_service *s, svc__out *o);
void svc__out_append(svc_service *s, svc__out *o);   /* mu held, out_open true; takes o */
void svc__server_begin_drain(svc_service *s);   /* loop thread */
int svc__pack_out(svc__out *o, const zmq_msg_t *route, const Svc__Header *h,
                  const void *body, size_t blen);
void svc__out_free(svc__out *o);

/* Answers an error on the loop thread or builds it for a worker. */
svc__out *svc__error_out(svc_service *s, zmq_msg_t *route, uint64_t id, int code,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The RESPONSE to request id: rsp encoded in ct, or an ERROR 500 when it cannot be (any thread). */
svc__out *svc__answer_out(svc_service *s, zmq_msg_t *route, uint64_t id, const char *ct,
                          const svc__endpoint *ep, const ProtobufCMessage *rsp);

/*
 * deferred.c: a deferred answer to request id from route, taking req (freed
 * with the handle); t0 is when the request began (for its stats).  Counts
 * the request in flight until answered.  NULL when out of memory.
 */
svc_deferred *svc__deferred_new(svc_service *s, const svc__endpoint *ep, zmq_msg_t *route,
                                uint64_t id, const char *ct, ProtobufCMessage *req,
                                const struct timespec *t0);

/* Logs bad input from a peer, at most about 10 lines a second (any thread). */
void svc__server_log_bad(svc_service *s, const char *what, const char *why);

/* worker.c */
int svc__workers_start(svc_service *s);
int svc__workers_stop(svc_service *s, bool bounded);
void svc__job_free(svc__job *j);
/*
 * mu held, a job queued: wakes one idle worker unless run_target workers are
 * already running handlers that have not blocked (SVC_BLOCKED_US) — they
 * will take the job sooner than a sleeping thread could wake.
 */
void svc__workers_wake(svc_service *s);
/* Runs an endpoint's handler for job j and builds the answer (worker or loop thread). */
svc__out *svc__handle(svc_service *s, svc__job *j, svc_client **client);

/* The service a handler runs in. */
svc_service *svc__ctx_service(svc_ctx *ctx);

/* stream.c */
/*
 * A new stream of endpoint ep, put in the table with refs = 2 (table + job).
 * credit: the STREAM_OPEN's initial grant for the server's data (0 = none);
 * timeout_ms: its deadline for the whole stream (0 = none).  Loop thread.
 */
svc_stream *svc__stream_new(svc_service *s, zmq_msg_t *route, uint64_t id,
                            const char *content_type, const svc__endpoint *ep, uint32_t credit,
                            uint32_t timeout_ms);
void svc__stream_unref(svc_stream *st);
void svc__stream_ref(svc_stream *st);
/* The open stream (route, id), or NULL (loop thread). */
svc_stream *svc__stream_find(svc_service *s, zmq_msg_t *route, uint64_t id);
void svc__streams_cancel(svc_service *s, zmq_msg_t *route, uint64_t id);
void svc__streams_end_all(svc_service *s);  /* loop thread, at stop */
/* A STREAM_CLOSE of st carrying err, holding a ref to st; NULL on out-of-memory. */
svc__out *svc__stream_end_out(svc_stream *st, const svc_error *err);
/* A STREAM_CREDIT of st granting n, holding a ref to st; NULL on out-of-memory. */
svc__out *svc__stream_credit_out(svc_stream *st, uint32_t n);
void svc__stream_unlist(svc_service *s, svc_stream *st);
/* Marks st closed and wakes whoever waits on it (any thread). */
void svc__stream_mark_closed(svc_stream *st);
/* STREAM_DATA, STREAM_CLOSE, STREAM_CREDIT from the client (loop thread; takes m). */
void svc__stream_on_msg(svc_service *s, svc__msg *m);
/* Runs a client/bidi handler for its stream's whole life and ends the stream. */
void svc__stream_serve(svc_ctx *ctx, const svc__endpoint *ep, svc_stream *st);

/* registrar.c */
int svc__registrar_start(svc_service *s);
void svc__registrar_request_stop(svc_service *s);  /* wakes it to deregister */
void svc__registrar_join(svc_service *s);

/* subscriber.c */
typedef struct svc__subscriber svc__subscriber;
int svc__subscribers_describe(svc_service *s, Svc__Registry__Service *r);  /* adds endpoints */
int svc__subscribers_start(svc_service *s);   /* after the server serves */
void svc__subscribers_stop(svc_service *s);   /* joins, closes the broker client */
void svc__subscribers_free(svc_service *s);   /* at destroy */

/* debug.c */
void svc__debug_add(svc_service *s);

/* schema.c: the registry description of a message type; free with free_unpacked. */
Svc__Registry__Value *svc__schema(const ProtobufCMessageDescriptor *d);

#endif
