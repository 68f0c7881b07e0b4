/*
 * brokerd/pubsub.h — plain pub/sub: the BRK1 ROUTER socket and its thread.
 *
 * Publishers and subscribers connect DEALER sockets to one ROUTER that
 * brokerd binds (docs/broker.md section 4).  One thread receives every
 * message, matches its topic against the subscriptions (libsvc/topic.h)
 * and sends a copy to every plain subscription and to one member of every
 * queue group (round robin, skipping members whose queue is full).
 *
 * Memory stays bounded whatever subscribers do: each subscriber connection
 * has a ZeroMQ send queue of sub_hwm messages; a message for a connection
 * whose queue is full is dropped and counted (per connection and per
 * subscription, shown by Broker.Stats).  A connection that goes away is
 * forgotten with its subscriptions (probed every 2 s).
 *
 * Durable publishes may come this way too (BRK1W, docs/broker.md 5.7):
 * each record becomes a backend PUBLISH op; the commit thread hands the
 * finished ones back (ack_mu, a wake on the control pipe) and this thread
 * answers them in BRK1K batches.
 */
#ifndef BRK_PUBSUB_H
#define BRK_PUBSUB_H

#include <stddef.h>

#include "broker.pb-c.h"

typedef struct brk_pubsub brk_pubsub;

typedef struct brk_pubsub_cfg {
    const char *address;   /* ZeroMQ endpoint to bind (tcp:// or ipc://) */
    int sub_hwm;           /* messages queued per subscriber connection */
    size_t max_payload;    /* largest body accepted, bytes */
    struct brk_backend *backend;  /* event store for durable publishes (BRK1W); borrowed */
} brk_pubsub_cfg;

/*
 * Binds cfg->address and starts the thread.  Returns 0 and *out, or a
 * negative errno (address in use, bad address: logged).
 */
int brk_pubsub_start(brk_pubsub **out, const brk_pubsub_cfg *cfg);

/* The bound endpoint (ZMQ_LAST_ENDPOINT); borrowed for the object's life. */
const char *brk_pubsub_address(const brk_pubsub *ps);

/*
 * Fills the pub/sub part of out (counters, peers with their subscriptions).
 * Every string and array put into out is malloc'd: free out with
 * protobuf_c_message_free_unpacked as the server does.  0 or -ENOMEM.
 */
int brk_pubsub_stats(brk_pubsub *ps, Svc__Broker__StatsResponse *out);

/*
 * Stops using the backend for durable publishes (they are refused with 503
 * from now on): call before closing the backend.  The backend's last
 * completions are still answered or freed by brk_pubsub_stop.
 */
void brk_pubsub_detach_backend(brk_pubsub *ps);

/* Stops the thread, closes the socket, frees; *ps becomes NULL.  Safe on NULL. */
void brk_pubsub_stop(brk_pubsub **ps);

#endif
