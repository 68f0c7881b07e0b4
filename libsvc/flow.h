/*
 * libsvc/flow.h — one stream's flow control and half-close, as a state
 * machine with no I/O (internal).  docs/protocol.md 9.6 is the rule book.
 *
 * Each end of a stream keeps one svc__flow.  The *in* side counts what the
 * peer sends us against the credit we granted; the *out* side counts what we
 * may still send against the credit the peer granted.  The functions say
 * what the protocol allows; the caller sends the messages (STREAM_CREDIT,
 * STREAM_CLOSE with 400) they call for.  Both the server (stream.c) and the
 * client (client_stream.c) use it; tests/fuzz/fuzz_flow.c drives it with
 * arbitrary event sequences.  Not thread-safe: the owner locks.
 *
 *   in side:   OPEN --data (credit left)--> OPEN        --close--> EOF
 *              OPEN --data (no credit)----> violation   (stream fails 400)
 *              EOF  --data----------------> violation
 *   out side:  credit n  --send--> n-1;  0 and limited: the sender waits
 */
#ifndef SVC__FLOW_H
#define SVC__FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/client.h"   /* SVC_STREAM_WINDOW */

/* Largest credit a sender may hold (protocol.md 9.6). */
#define SVC_FLOW_MAX_CREDIT 0xffffffffu

typedef struct svc__flow {
    /* in: what the peer sends us */
    bool in_accepts;        /* this end takes data at all (else any data is a violation) */
    bool in_limited;        /* we granted credit (flow control on for the peer's data) */
    uint32_t window;        /* credit granted per round when limited */
    uint64_t in_allowed;    /* data messages the peer may send in total (granted so far) */
    uint64_t in_got;        /* data messages received */
    uint32_t in_unacked;    /* consumed since the last grant */
    bool in_eof;            /* the peer half-closed */
    /* out: what we send the peer */
    bool out_limited;       /* the peer granted an initial credit (flow control on) */
    uint64_t out_credit;    /* data messages we may still send (when limited) */
    bool out_eof;           /* we half-closed */
} svc__flow;

/*
 * Sets up a flow.  accepts: this end takes data from the peer; window: the
 * credit it grants (0 = unlimited, no flow control for the peer's data).
 * out_credit: the peer's initial grant to us (0 = unlimited).
 */
void svc__flow_init(svc__flow *f, bool accepts, uint32_t window, uint32_t out_credit);

/*
 * The peer's first message carried `credit` (the initial grant for our
 * data; 0 = unlimited).  For the client, which learns it from the server's
 * first message.
 */
void svc__flow_set_out(svc__flow *f, uint32_t credit);

/*
 * A data message arrived.  Returns 0 when allowed (counted), or SVC_EPROTO
 * with *why set to a static reason ("stream credit exceeded", ...).
 */
int svc__flow_on_data(svc__flow *f, const char **why);

/* The peer half-closed.  Returns 0, or SVC_EPROTO (*why) if it already had. */
int svc__flow_on_close(svc__flow *f, const char **why);

/*
 * The peer granted n more credit.  Returns 0 (n = 0, or our side unlimited:
 * ignored), or SVC_EPROTO (*why) when the total would pass
 * SVC_FLOW_MAX_CREDIT.
 */
int svc__flow_on_credit(svc__flow *f, uint32_t n, const char **why);

/* True when we may send one more data message now. */
bool svc__flow_can_send(const svc__flow *f);

/* We sent one data message (call only when svc__flow_can_send). */
void svc__flow_sent(svc__flow *f);

/*
 * The application consumed one received message.  Returns the credit to
 * grant the peer now in a STREAM_CREDIT (and counts it as granted), or 0
 * when none is due: about half the window is consumed before a grant.
 */
uint32_t svc__flow_consumed(svc__flow *f);

#endif
