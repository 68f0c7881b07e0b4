/*
 * libsvc/conn.h — one client connection to one node (internal).
 *
 * A DEALER socket connected to the node's address with ZMQ_IMMEDIATE, so
 * nothing is queued for a node that is not there, plus a socket monitor so
 * that a refused connection or a dropped one is known at once instead of at
 * the deadline.  Used by one thread at a time.
 */
#ifndef SVC__CONN_H
#define SVC__CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

/* Longest wait for a connection to come up before the node counts as unreachable. */
#define SVC_CONNECT_TIMEOUT_MS 1000

/*
 * After the monitor reports a drop, how long to keep reading the socket: the
 * peer may have sent its answer just before closing (a server finishing its
 * drain), and the event can overtake the data, which comes on another path.
 */
#define SVC_DROP_GRACE_MS 200

typedef struct svc__conn {
    char *address;           /* node address, owned */
    void *sock;              /* DEALER */
    void *mon;               /* PAIR receiving the DEALER's monitor events */
    bool up;                 /* handshake done and not disconnected since */
    bool lost;               /* refused or disconnected, and not reconnected since */
    unsigned inflight;       /* async calls sent on it and not answered (client.c) */
    unsigned waiting;        /* async calls waiting for it to come up (client.c) */
    int64_t lost_at;         /* monotonic ms the client saw it lost with calls on it, 0 = not
                                (set by the event reader too: a drop ZeroMQ repaired counts) */
    int64_t events_at;       /* monotonic ms its monitor was last found empty: up / lost are
                                known as of then (set here and by client.c's pump) */
    struct svc__conn *next;  /* client's list */
} svc__conn;

/* Connects to address.  NULL with errno set if sockets cannot be made or address is invalid. */
svc__conn *svc__conn_new(const char *address);

void svc__conn_destroy(svc__conn **c);

/*
 * Waits until the connection can take a message, at most until deadline_ms
 * (monotonic; 0 = SVC_CONNECT_TIMEOUT_MS from now).  Returns 0,
 * SVC_EUNREACHABLE if the node refused or dropped the connection or did not
 * answer within SVC_CONNECT_TIMEOUT_MS, SVC_ETIMEOUT if deadline_ms passed first.
 */
int svc__conn_ready(svc__conn *c, int64_t deadline_ms);

/*
 * Non-blocking readiness: reads pending monitor events and returns 0 when
 * the connection can take a message, 1 while it is still coming up,
 * SVC_EUNREACHABLE when it was refused or dropped.
 */
int svc__conn_check(svc__conn *c);

/* Reads every pending monitor event (sets events_at); true when the connection is (now) lost. */
bool svc__conn_events(svc__conn *c);

/*
 * Receives the next message, waiting until deadline_ms (monotonic, -1 =
 * forever).  Returns 0 with *m filled (close it), SVC_ETIMEOUT,
 * SVC_EUNREACHABLE when the connection dropped, SVC_EPROTO for a malformed
 * message (already closed; err says why).
 */
int svc__conn_recv(svc__conn *c, svc__msg *m, int64_t deadline_ms, char *err, size_t errlen);

/*
 * Before closing a connection on which the server may still be sending (a
 * stream or a watch just cancelled): sends a PING with id and drops what
 * arrives until its PONG, at most wait_ms.  The server answers the PING
 * after everything it sent before, so afterwards nothing is arriving when
 * the socket closes.  That matters: libzmq 4.3 closing a socket while its
 * I/O thread is still taking what the socket just sent drops the frames of
 * a message it is half-way receiving without closing them
 * (pipe_t::process_pipe_term in state delimiter_received does not roll
 * back), which leaks them and the 18 KB receive buffer they hold.
 */
void svc__conn_quiesce(svc__conn *c, uint64_t id, int wait_ms);

#endif
