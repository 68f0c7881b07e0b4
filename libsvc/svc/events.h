/*
 * svc/events.h — durable event streams through brokerd (service "svc.broker").
 *
 *     svc_events *ev = svc_events_new(NULL);
 *     svc_event_publish_opts po = { .id = "order-42" };         // dedup id, optional
 *     uint64_t seq;
 *     svc_events_publish(ev, "orders", body, len, &po, &seq, NULL, &err);
 *                                            // returns once the event is on disk
 *     svc_consume_opts co = { .start = SVC_START_BEGINNING, .ack_wait_ms = 30000 };
 *     Svc__Broker__ConsumeResponse *batch;
 *     svc_events_fetch(ev, "orders", "billing", &co, 100, 1000, &batch, &err);
 *     for (size_t i = 0; i < batch->n_events; i++) {
 *         handle(batch->events[i]);
 *         svc_events_ack(ev, "orders", "billing", batch->events[i], &err);
 *     }
 *     protobuf_c_message_free_unpacked(&batch->base, NULL);
 *
 * Guarantees (docs/broker.md section 5): a publish is acknowledged only
 * after brokerd committed it durably; an event not acknowledged by the
 * group within ack_wait_ms (or nacked) is delivered again, with a higher
 * Event.delivery; after max_deliver deliveries it moves to the stream
 * "<stream>.dlq".  So a consumer sees every event at least once, and
 * sometimes twice: make handlers idempotent (Event.seq identifies it).
 * Several processes fetching as the same group share its events.
 *
 * Every call takes the client's default deadline unless said otherwise;
 * errors come as a negative code plus *err (svc/client.h conventions):
 * SVC_EREMOTE with brokerd's code: 400 invalid request, 404 unknown
 * stream or group, 409 stale ack / conflicting consumer options, 413 too
 * big, 503 brokerd stopping; SVC_EUNREACHABLE / SVC_ETIMEOUT as for calls.
 *
 * Not thread-safe (it wraps one svc_client): one per thread.
 */
#ifndef SVC_EVENTS_H
#define SVC_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/error.h"
#include "svc/meta.h"
#include "broker.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct svc_events svc_events;

/* Optional fields of a publish; zero-initialise. */
typedef struct svc_event_publish_opts {
    const char *id;            /* publisher message id: stored once per dedup window; NULL = none */
    const char *topic;         /* kept with the event; NULL = none */
    const char *content_type;  /* of the body; NULL = none */
    const svc_meta *meta;      /* metadata stored with the event; NULL = none */
} svc_event_publish_opts;

/* Where a new group starts reading. */
typedef enum svc_start {
    SVC_START_BEGINNING = 0,   /* the oldest retained event */
    SVC_START_END = 1,         /* events published after the group is created */
    SVC_START_SEQ = 2,         /* start_seq */
    SVC_START_TIME = 3,        /* first event stored at or after start_time_ms (unix ms) */
} svc_start;

/* Consumer (group) options, used when the group is created; zero = defaults. */
typedef struct svc_consume_opts {
    svc_start start;           /* default SVC_START_BEGINNING */
    uint64_t start_seq;        /* SVC_START_SEQ */
    int64_t start_time_ms;     /* SVC_START_TIME */
    uint32_t ack_wait_ms;      /* redelivery after this long without ack; default 30000 */
    uint32_t max_deliver;      /* deliveries before dead-lettering; default 5 */
    uint32_t max_ack_pending;  /* unacked events outstanding at most; default 1000 */
} svc_consume_opts;

/* Creates a client that finds svc.broker through registry (NULL: default). */
svc_events *svc_events_new(const char *registry);

/* Calls this node directly instead of resolving svc.broker (copied; NULL to resolve again). */
int svc_events_set_address(svc_events *e, const char *address);

/* Deadline of each call in ms (default SVC_DEFAULT_TIMEOUT_MS).  0 or SVC_EINVAL. */
int svc_events_set_timeout(svc_events *e, int timeout_ms);

/* Frees the client; *e becomes NULL.  Safe on NULL. */
void svc_events_destroy(svc_events **e);

/*
 * Publishes body (len bytes) to stream (created with default limits if new)
 * and returns 0 once it is durably stored, with its sequence in *seq and
 * whether it was a duplicate of an id seen within the window in *duplicate
 * (either may be NULL).  When this fails, the event may or may not have
 * been stored: publish again with the same id, it is stored at most once.
 */
int svc_events_publish(svc_events *e, const char *stream, const void *body, size_t len,
                       const svc_event_publish_opts *o, uint64_t *seq, bool *duplicate,
                       svc_error *err);

/*
 * Creates stream with the limits in cfg (cfg->name is ignored: stream is
 * used), or changes the limits of an existing one (applied at once).
 */
int svc_events_create_stream(svc_events *e, const char *stream,
                             const Svc__Broker__StreamConfig *cfg, svc_error *err);

/*
 * Fetches up to max (1..1000) events for group (created with o, or with
 * defaults when o is NULL; an existing group must have been created with
 * the same options, or o NULL), waiting up to wait_ms (0..5000) for the
 * first one.  Each returned event is pending for the group until acked.
 * *out is the caller's (protobuf_c_message_free_unpacked); its `missed`
 * counts events retention removed before the group read them.
 */
int svc_events_fetch(svc_events *e, const char *stream, const char *group,
                     const svc_consume_opts *o, unsigned max, int wait_ms,
                     Svc__Broker__ConsumeResponse **out, svc_error *err);

/*
 * Acknowledges n events (evs, from earlier fetches) and fetches the next
 * ones in one call and one commit: the loop of a consumer that handles
 * batches.  Otherwise as svc_events_fetch; (*out)->acked says how many
 * acks counted.
 */
int svc_events_ack_fetch(svc_events *e, const char *stream, const char *group,
                         Svc__Broker__Event *const *evs, size_t n, const svc_consume_opts *o,
                         unsigned max, int wait_ms, Svc__Broker__ConsumeResponse **out,
                         svc_error *err);

/*
 * Acknowledges ev (durably, before returning) for group.  An ack for an
 * older delivery of an event that has been delivered again fails with
 * SVC_EREMOTE / 409 and acknowledges nothing.  Acking an event that is not
 * pending (acked already) succeeds.
 */
int svc_events_ack(svc_events *e, const char *stream, const char *group,
                   const Svc__Broker__Event *ev, svc_error *err);

/* Acknowledges n events in one call; *acked (may be NULL) gets how many counted. */
int svc_events_ack_many(svc_events *e, const char *stream, const char *group,
                        Svc__Broker__Event *const *evs, size_t n, unsigned *acked,
                        svc_error *err);

/* Negative ack: deliver ev again after delay_ms (0..3600000).  Same errors as ack. */
int svc_events_nack(svc_events *e, const char *stream, const char *group,
                    const Svc__Broker__Event *ev, uint32_t delay_ms, svc_error *err);

/*
 * Asynchronous durable publish, for many events in flight from one thread
 * (as JetStream's PublishAsync, but answered only after the commit).  The
 * event goes over brokerd's BRK1 socket (docs/broker.md 5.7); fn(seq,
 * duplicate, err, arg) is called once, on the client's publish thread:
 * err NULL when the event is durably stored, else why not (408 when no
 * answer came within the client's timeout — publish again with the same
 * id).  At most 4096 are in flight: beyond, this call waits for room.
 * o->meta is not carried on this path (SVC_EINVAL): use
 * svc_events_publish for metadata.  Returns 0 once queued, SVC_EINVAL,
 * SVC_ETOOBIG (over 16 MiB), or the error of finding brokerd.
 * fn must not call back into e.
 */
typedef void (*svc_event_ack_fn)(uint64_t seq, bool duplicate, const svc_error *err, void *arg);
int svc_events_publish_async(svc_events *e, const char *stream, const void *body, size_t len,
                             const svc_event_publish_opts *o, svc_event_ack_fn fn, void *arg);

/*
 * Waits until every asynchronous publish was answered and its callback has
 * returned; 0, or SVC_ETIMEOUT after timeout_ms.
 */
int svc_events_flush(svc_events *e, int timeout_ms);

/* Stream info (with consumers); *out is the caller's. 404 when unknown. */
int svc_events_info(svc_events *e, const char *stream, Svc__Broker__StreamInfo **out,
                    svc_error *err);

#ifdef __cplusplus
}
#endif
#endif
