/*
 * brokerd/consumer.h — a durable consumer's delivery state, in memory.
 *
 * A consumer (a named group on a stream) has a position, next_seq: the
 * first event never delivered to it.  Events delivered and not yet
 * acknowledged are *pending*, each with its delivery count and the unix ms
 * at which it becomes due for redelivery (ack wait, or a nack's delay).
 * Every event below the first pending one (and below next_seq) is
 * acknowledged: that is the ack floor.
 *
 * An ack names the delivery attempt it answers (Event.delivery); it only
 * counts when that attempt is the latest, so a late ack for delivery 1
 * cannot acknowledge delivery 2, which another member may be processing.
 *
 * Pending events are kept sorted by sequence; lookups are binary searches.
 * The store (brokerd/lmdb.c) mirrors every change durably.
 */
#ifndef BRK_CONSUMER_H
#define BRK_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BRK_GROUP_MAX 64

typedef struct brk_pend {
    uint64_t seq;          /* event sequence */
    uint32_t deliveries;   /* times delivered so far (>= 1) */
    int64_t due_ms;        /* unix ms when it may be delivered again */
} brk_pend;

typedef struct brk_consumer {
    char group[BRK_GROUP_MAX + 1];  /* the consumer's name */
    uint32_t ack_wait_ms;           /* redeliver after this long without ack */
    uint32_t max_deliver;           /* deliveries before dead-lettering */
    uint32_t max_ack_pending;       /* pending events at most */
    int start;                      /* Svc__Broker__StartPolicy it was created with */
    uint64_t start_seq;             /* its start_seq */
    int64_t start_time_ms;          /* its start_time_ms */
    uint64_t next_seq;              /* first event never delivered */
    uint64_t dead_lettered;         /* events moved to the dead-letter stream */
    uint64_t missed;                /* events removed by retention before delivery or ack */
    uint64_t missed_unreported;     /* of those, not yet told to a fetch */
    brk_pend *pend;                 /* pending events by seq, owned */
    size_t n_pend, cap_pend;        /* in use / allocated */
} brk_consumer;

/* Ack verdicts. */
typedef enum brk_ack_result {
    BRK_ACK_OK = 0,     /* was pending with this delivery: now acknowledged */
    BRK_ACK_STALE,      /* pending, but delivered again since: ignored */
    BRK_ACK_UNKNOWN,    /* not pending: acknowledged already, or never delivered */
} brk_ack_result;

/* Index of seq among c's pending events, or -1. */
long brk_pend_find(const brk_consumer *c, uint64_t seq);

/* Adds or updates pending seq (kept sorted).  0 or -ENOMEM. */
int brk_pend_put(brk_consumer *c, uint64_t seq, uint32_t deliveries, int64_t due_ms);

/* Removes the pending event at index i. */
void brk_pend_remove(brk_consumer *c, size_t i);

/* Checks an ack for (seq, delivery) without changing anything. */
brk_ack_result brk_ack_check(const brk_consumer *c, uint64_t seq, uint32_t delivery);

/* Every event up to the returned sequence is acknowledged (or gone). */
uint64_t brk_ack_floor(const brk_consumer *c);

/* Pending events delivered more than once. */
uint64_t brk_redelivered(const brk_consumer *c);

/* Frees the pending array. */
void brk_consumer_release(brk_consumer *c);

#endif
