/*
 * svc/broker.h — pub/sub through brokerd (service "svc.broker").
 *
 *     svc_broker *b = svc_broker_new(NULL);
 *     svc_broker_subscribe(b, "orders.*", NULL, on_order, NULL, NULL);   // every message
 *     svc_broker_subscribe(b, "orders.>", "billing", on_bill, NULL, NULL); // one member of "billing"
 *     svc_broker_publish(b, "orders.created", "{\"id\":1}", 8, "application/json", NULL);
 *
 * Pub/sub is at most once and fast: messages go straight over brokerd's
 * BRK1 socket (docs/broker.md section 4), never to disk.  A subscription
 * gets every message whose topic matches its pattern ("*" one token, ">"
 * the rest); subscriptions that share a pattern and a queue group get each
 * message once between them (round robin over the members that keep up).
 * A subscriber that falls sub_hwm messages behind loses messages (counted
 * by brokerd, `svcctl call svc.broker Broker.Stats`); for messages that
 * must not be lost use event streams (svc/events.h).
 *
 * The broker is found by calling svc.broker's Broker.Info through the
 * registry, or given with svc_broker_set_address.  After a restart of
 * brokerd the client subscribes again by itself (within about 2 s);
 * messages published meanwhile are not delivered.
 *
 * Threads: publish is thread-safe.  Handlers run one at a time on the
 * broker object's receive thread, in the order messages arrive, so a
 * handler sees one publisher's messages on one topic in publish order.
 */
#ifndef SVC_BROKER_H
#define SVC_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "svc/error.h"
#include "svc/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct svc_broker svc_broker;

/* One delivered message; every pointer is borrowed for the handler call. */
typedef struct svc_message {
    const char *topic;          /* the topic it was published to */
    const void *body;           /* payload bytes */
    size_t len;                 /* payload length */
    const char *content_type;   /* "" when the publisher sent none */
    const svc_meta *meta;       /* metadata the publisher sent (may be empty) */
    uint64_t sid;               /* the subscription it arrived on */
} svc_message;

/* A subscription handler; arg is the one given to svc_broker_subscribe. */
typedef void (*svc_sub_fn)(const svc_message *m, void *arg);

/* Creates a broker client that finds svc.broker through registry (NULL: default). */
svc_broker *svc_broker_new(const char *registry);

/* Uses this BRK1 address instead of asking svc.broker (before first use). 0 or SVC_EINVAL. */
int svc_broker_set_address(svc_broker *b, const char *pubsub_address);

/*
 * Connects if not yet connected (Broker.Info, then the BRK1 socket).
 * Publish and subscribe call it themselves.  Returns 0, or the error of the
 * Broker.Info call (SVC_ENOTFOUND when no brokerd is registered ...) with
 * *err filled when err is not NULL.
 */
int svc_broker_connect(svc_broker *b, svc_error *err);

/*
 * Publishes body (len bytes, copied) to topic.  content_type and meta may
 * be NULL.  Returns 0 once the message is in the client's publish batch,
 * which a flusher thread sends to brokerd at once (no delivery guarantee:
 * pub/sub is at most once); SVC_EINVAL for an invalid topic or more than 64
 * metadata pairs, SVC_ETOOBIG above brokerd's max payload (or meta over
 * 64 KiB), SVC_EUNREACHABLE when svc.broker cannot be found.  Blocks
 * while 256 KiB of publishes wait to be sent.  When brokerd cannot take a
 * batch for 2 s it is dropped; svc_broker_flush reports that.
 */
int svc_broker_publish(svc_broker *b, const char *topic, const void *body, size_t len,
                       const char *content_type, const svc_meta *meta);

/*
 * Waits until brokerd has handled every message this client published so
 * far (one ping round trip on the publishing connection, which keeps
 * order).  Returns 0; SVC_EREMOTE with *err (if not NULL) holding the
 * first refusal brokerd sent since the last flush (e.g. 413); SVC_ETIMEOUT
 * after timeout_ms.  Call it before exiting a program that only publishes:
 * messages still queued at exit are lost.
 */
int svc_broker_flush(svc_broker *b, int timeout_ms, svc_error *err);

/*
 * Subscribes fn to pattern, in queue group queue (NULL or "" for none).
 * Returns 0 once brokerd confirmed it (messages published after that
 * reach it), with the subscription id in *sid when sid is not NULL;
 * SVC_EREMOTE with brokerd's reason (invalid pattern ...), SVC_ETIMEOUT
 * when brokerd did not answer within 5 s.
 */
int svc_broker_subscribe(svc_broker *b, const char *pattern, const char *queue, svc_sub_fn fn,
                         void *arg, uint64_t *sid);

/* Ends subscription sid; its handler is not called again once this returns.  0 or SVC_ENOTFOUND. */
int svc_broker_unsubscribe(svc_broker *b, uint64_t sid);

/* Messages published from, and delivered to, this client (stats). */
uint64_t svc_broker_published(const svc_broker *b);
uint64_t svc_broker_delivered(const svc_broker *b);

/*
 * Declares a subscriber on a service, as go-micro's RegisterSubscriber:
 * call before svc_run.  It is registered with the service (an endpoint
 * named after the pattern, metadata subscriber=true, topic, queue: shown by
 * `svcctl service NAME`), and subscribed through brokerd while the service
 * runs — retried every second until brokerd accepts, and again by itself
 * after brokerd restarts.  fn runs on the service's broker thread, one
 * message at a time.  Returns 0, SVC_EINVAL (bad pattern or queue), -ENOMEM.
 */
typedef struct svc_service svc_service;
int svc_subscribe(svc_service *s, const char *pattern, const char *queue, svc_sub_fn fn, void *arg);

/* Stops the receive thread, closes sockets, frees; *b becomes NULL.  Safe on NULL.
 * Not from inside a handler. */
void svc_broker_destroy(svc_broker **b);

#ifdef __cplusplus
}
#endif
#endif
