/* libsvc/conn.c — a monitored DEALER connection.  See conn.h. */
#include "conn.h"
#include "clock.h"
#include "zctx.h"
#include "svc/error.h"
#include "svc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

svc__conn *svc__conn_new(const char *address)
{
    static unsigned long s_seq;
    if (!svc__address_valid(address)) {
        errno = EINVAL;
        return NULL;
    }
    svc__conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->address = strdup(address);
    c->sock = svc__socket(ZMQ_DEALER);
    if (!c->address || !c->sock)
        goto out_destroy;

    int one = 1;
    int64_t maxmsg = SVC_WIRE_MAX_BODY + SVC_WIRE_MAX_HEADER + 64;
    zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);

    char mon[64];
    snprintf(mon, sizeof mon, "inproc://svc-conn-mon-%p-%lu", (void *)c,
             __atomic_add_fetch(&s_seq, 1, __ATOMIC_RELAXED));
    int events = ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED |
                 ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(c->sock, mon, events) < 0)
        goto out_destroy;
    c->mon = svc__socket(ZMQ_PAIR);
    if (!c->mon || zmq_connect(c->mon, mon) < 0)
        goto out_destroy;
    if (zmq_connect(c->sock, address) < 0)
        goto out_destroy;
    return c;

out_destroy:;
    int e = errno;
    svc__conn_destroy(&c);
    errno = e;
    return NULL;
}

void svc__conn_destroy(svc__conn **cp)
{
    svc__conn *c = *cp;
    if (!c)
        return;
    if (c->sock)
        zmq_socket_monitor(c->sock, NULL, 0);
    svc__socket_close(&c->mon);
    svc__socket_close(&c->sock);
    free(c->address);
    free(c);
    *cp = NULL;
}

/*
 * Reads every pending monitor event and updates c->up / c->lost, and
 * events_at once the monitor is empty.  A loss
 * while calls are in flight marks the connection (lost_at) at once: when
 * the client reads the events late, ZeroMQ may have connected again
 * already (c->lost false again), but what was sent before is gone.
 */
static void s_read_events(svc__conn *c)
{
    for (;;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            c->events_at = svc__now_ms();
            return;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&f) >= 2)
            memcpy(&ev, zmq_msg_data(&f), 2);
        bool more = zmq_msg_more(&f);
        zmq_msg_close(&f);
        while (more) {
            zmq_msg_init(&f);
            if (zmq_msg_recv(&f, c->mon, 0) < 0) {
                zmq_msg_close(&f);
                return;
            }
            more = zmq_msg_more(&f);
            zmq_msg_close(&f);
        }
        if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            c->up = true;
            c->lost = false;   /* ZeroMQ reconnected: the node is back */
        } else {
            c->up = false;
            c->lost = true;
            if (c->inflight && !c->lost_at)
                c->lost_at = svc__now_ms();
            svc_debug("connection event\taddress=%s event=%u", c->address, ev);
        }
    }
}

bool svc__conn_events(svc__conn *c)
{
    s_read_events(c);
    return c->lost;
}

int svc__conn_check(svc__conn *c)
{
    s_read_events(c);
    if (c->lost)
        return SVC_EUNREACHABLE;
    if (c->up)
        return 0;
    zmq_pollitem_t item = { c->sock, 0, ZMQ_POLLOUT, 0 };
    if (zmq_poll(&item, 1, 0) > 0 && (item.revents & ZMQ_POLLOUT)) {
        s_read_events(c);
        return c->lost ? SVC_EUNREACHABLE : 0;
    }
    return 1;
}

/* Milliseconds from now to deadline, clamped to [0, INT_MAX/2]; -1 for none. */
static long s_wait(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - svc__now_ms();
    return left < 0 ? 0 : left > 1 << 30 ? 1 << 30 : (long)left;
}

int svc__conn_ready(svc__conn *c, int64_t deadline_ms)
{
    /* Fast path: up and not lost.  Pending events are read first, so that a
     * drop (and reconnect) from before this call is not taken, later, for a
     * drop of this call's request. */
    s_read_events(c);
    if (c->up && !c->lost)
        return 0;
    int64_t connect_by = svc__now_ms() + SVC_CONNECT_TIMEOUT_MS;
    bool by_deadline = deadline_ms > 0 && deadline_ms < connect_by;
    int64_t until = by_deadline ? deadline_ms : connect_by;
    for (;;) {
        s_read_events(c);
        if (c->lost)
            return SVC_EUNREACHABLE;
        zmq_pollitem_t items[] = { { c->sock, 0, ZMQ_POLLOUT, 0 }, { c->mon, 0, ZMQ_POLLIN, 0 } };
        long wait = s_wait(until);
        int n = zmq_poll(items, 2, wait);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && (items[0].revents & ZMQ_POLLOUT)) {
            s_read_events(c);
            return c->lost ? SVC_EUNREACHABLE : 0;
        }
        if (n == 0 && svc__now_ms() >= until)
            return by_deadline ? SVC_ETIMEOUT : SVC_EUNREACHABLE;
    }
}

/* The connection dropped: read what the peer sent before it, for a moment. */
static int s_grace_recv(svc__conn *c, svc__msg *m, int64_t deadline_ms, char *err, size_t errlen)
{
    int64_t until = svc__now_ms() + SVC_DROP_GRACE_MS;
    if (deadline_ms >= 0 && deadline_ms < until)
        until = deadline_ms;
    for (;;) {
        int rc = svc__msg_recv(c->sock, m, ZMQ_DONTWAIT, false, err, errlen);
        if (rc == 0 || rc == SVC_EPROTO)
            return rc == SVC_EPROTO ? (svc__msg_close(m), rc) : 0;
        zmq_pollitem_t item = { c->sock, 0, ZMQ_POLLIN, 0 };
        long wait = s_wait(until);
        if (wait == 0 || zmq_poll(&item, 1, wait) <= 0)
            return SVC_EUNREACHABLE;
    }
}

int svc__conn_recv(svc__conn *c, svc__msg *m, int64_t deadline_ms, char *err, size_t errlen)
{
    /* Poll first: right after a send nothing can be there yet, and a
     * receive that finds nothing costs as much as the poll. */
    for (;;) {
        zmq_pollitem_t items[] = { { c->sock, 0, ZMQ_POLLIN, 0 }, { c->mon, 0, ZMQ_POLLIN, 0 } };
        int n = zmq_poll(items, 2, s_wait(deadline_ms));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
            int rc = svc__msg_recv(c->sock, m, ZMQ_DONTWAIT, false, err, errlen);
            if (rc == 0)
                return 0;
            if (rc == SVC_EPROTO) {
                svc__msg_close(m);
                return rc;
            }
            if (rc != -EAGAIN)
                return rc;
            continue;
        }
        /* Monitor events only when it has some: a drop while we wait. */
        if (n > 0 && (items[1].revents & ZMQ_POLLIN)) {
            s_read_events(c);
            if (c->lost)
                return s_grace_recv(c, m, deadline_ms, err, errlen);
        }
        if (n == 0 && deadline_ms >= 0 && svc__now_ms() >= deadline_ms)
            return SVC_ETIMEOUT;
    }
}

void svc__conn_quiesce(svc__conn *c, uint64_t id, int wait_ms)
{
    if (svc__conn_events(c))
        return;   /* the connection is lost: nothing more comes */
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__PING;
    h.id = id;
    int64_t until = svc__now_ms() + wait_ms;
    if (svc__wire_send(c->sock, NULL, &h, NULL, 0, ZMQ_DONTWAIT) < 0)
        return;
    while (svc__now_ms() < until) {
        svc__msg m;
        char why[128];
        int rc = svc__conn_recv(c, &m, until, why, sizeof why);
        if (rc == SVC_EPROTO)
            continue;
        if (rc < 0)
            return;   /* no PONG in time, or the connection is lost */
        bool pong = m.hdr->kind == SVC__KIND__PONG && m.hdr->id == id;
        svc__msg_close(&m);
        if (pong)
            return;
    }
}
