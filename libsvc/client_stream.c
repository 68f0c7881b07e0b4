/*
 * libsvc/client_stream.c — the client side of streams (docs/protocol.md 9).
 *
 * Each stream has its own connection, so its messages never mix with
 * unary answers.  The connection's monitor tells when the node goes away.
 * Credits (flow.h): we grant the server SVC_STREAM_WINDOW messages in the
 * STREAM_OPEN and more as recv consumes them; our sends spend the credit
 * the server granted in its first message.  While a send waits for credit
 * it reads the socket, keeping the server's data for recv — never more
 * than our window, since the server spends our credit for each.
 */
#include "svc/client.h"
#include "svc/codec.h"
#include "client_int.h"
#include "clock.h"
#include "conn.h"
#include "selector.h"
#include "flow.h"
#include "trace_int.h"
#include "zctx.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define S_ID "svc.client"

/* A message the server sent while send waited for credit, kept for recv. */
typedef struct s_queued {
    svc__msg m;                 /* owned */
    struct s_queued *next;
} s_queued;

struct svc_client_stream {
    svc__conn *conn;            /* owned */
    uint64_t id;                /* stream id */
    svc_stream_kind kind;       /* what the endpoint carries */
    svc__flow flow;             /* our window for the server's data; its credit for ours */
    bool got_first;             /* the server's first message (with its credit) came */
    bool ended;                 /* nothing more comes from the server */
    bool reported;              /* recv has returned the end */
    bool cancelled;             /* svc_client_stream_cancel was called */
    int end_rc;                 /* how it ended: 1, SVC_EREMOTE, SVC_EUNREACHABLE, SVC_ECLOSED */
    svc_error end_err;          /* the error it ended with, if any */
    s_queued *q_head, *q_tail;  /* data kept for recv (at most SVC_STREAM_WINDOW) */
    int64_t deadline;           /* the whole stream's (opts->deadline_ms), monotonic ms; -1 none */
    uint8_t data_hdr[32];       /* packed header of our STREAM_DATA (kind + id) */
    size_t data_hlen;           /* its length */
};

/*
 * The address of one random node of service from the client's registry
 * cache, among those matching opts' version and node metadata filters.
 */
static int s_pick(svc_client *c, const char *service, const svc_call_opts *opts,
                  int64_t deadline, char **address, svc_error *err)
{
    svc__node *nodes = NULL;
    size_t n = 0;
    int rc = svc__client_nodes(c, service, deadline, &nodes, &n, err);
    if (rc < 0)
        return rc;
    const char *version = opts ? opts->version : NULL, *meta = opts ? opts->node_meta : NULL;
    size_t match = 0;
    for (size_t i = 0; i < n; i++)
        match += svc__node_matches(&nodes[i], version, meta);
    if (!match) {
        svc_error_set(err, S_ID, 404, "service \"%s\" has no %snodes", service,
                      version || meta ? "matching " : "");
        return SVC_ENOTFOUND;
    }
    size_t k = (size_t)(svc__rand() % match);
    for (size_t i = 0; i < n; i++) {
        if (!svc__node_matches(&nodes[i], version, meta) || k--)
            continue;
        *address = strdup(nodes[i].address);
        return *address ? 0 : -ENOMEM;
    }
    return SVC_ENOTFOUND;
}

int svc_client_stream_open(svc_client *c, const char *service, const char *endpoint,
                           const void *body, size_t len, const svc_call_opts *opts,
                           svc_client_stream **out, svc_error *err)
{
    return svc_client_stream_open_kind(c, service, endpoint, SVC_STREAM_SERVER, body, len, opts,
                                       out, err);
}

int svc_client_stream_open_kind(svc_client *c, const char *service, const char *endpoint,
                                svc_stream_kind kind, const void *body, size_t len,
                                const svc_call_opts *opts, svc_client_stream **out,
                                svc_error *err)
{
    *out = NULL;
    if (!service || !*service || !endpoint || !*endpoint ||
        (kind != SVC_STREAM_SERVER && kind != SVC_STREAM_CLIENT && kind != SVC_STREAM_BIDI) ||
        (kind != SVC_STREAM_SERVER && len > 0)) {
        svc_error_set(err, S_ID, 400, kind != SVC_STREAM_SERVER && len > 0
                      ? "a %s stream opens without a body: send requests with "
                        "svc_client_stream_send" : "invalid stream open (%s)",
                      svc_stream_kind_name(kind));
        return SVC_EINVAL;
    }
    if (len > SVC_WIRE_MAX_BODY) {
        svc_error_set(err, S_ID, 413, "request body of %zu bytes exceeds the limit of %d bytes",
                      len, SVC_WIRE_MAX_BODY);
        return SVC_ETOOBIG;
    }
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : SVC_DEFAULT_TIMEOUT_MS;
    int64_t deadline = svc__now_ms() + timeout;
    int64_t stream_deadline = opts && opts->deadline_ms > 0 ? opts->deadline_ms : -1;
    if (stream_deadline >= 0 && stream_deadline <= svc__now_ms()) {
        svc_error_set(err, S_ID, 408, "deadline exceeded before opening %s.%s", service, endpoint);
        return SVC_ETIMEOUT;
    }
    if (stream_deadline >= 0 && stream_deadline < deadline)
        deadline = stream_deadline;
    char *address = NULL;
    int rc = opts && opts->address ? ((address = strdup(opts->address)) ? 0 : -ENOMEM)
                                   : s_pick(c, service, opts, deadline, &address, err);
    if (rc < 0) {
        if (!svc_error_isset(err))
            svc_error_set(err, S_ID, 500, "%s", svc_strerror(rc));
        return rc;
    }
    svc_client_stream *st = calloc(1, sizeof *st);
    if (!st || !(st->conn = svc__conn_new(address))) {
        svc_error_set(err, S_ID, st ? 503 : 500, "cannot connect to \"%s\"", address);
        rc = st ? SVC_EUNREACHABLE : -ENOMEM;
        goto out_free;
    }
    st->kind = kind;
    st->deadline = stream_deadline;
    svc__flow_init(&st->flow, true, SVC_STREAM_WINDOW, 0);
    rc = svc__conn_ready(st->conn, deadline);
    if (rc < 0) {
        svc_error_set(err, S_ID, rc == SVC_ETIMEOUT ? 408 : 503, "node \"%s\" unreachable",
                      address);
        goto out_free;
    }
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__STREAM_OPEN;
    st->id = svc__rand() >> 12;
    h.id = st->id;
    h.service = (char *)service;
    h.endpoint = (char *)endpoint;
    h.content_type = (char *)(opts && opts->content_type ? opts->content_type : SVC_CT_PROTOBUF);
    h.credit = SVC_STREAM_WINDOW;
    if (stream_deadline >= 0) {
        int64_t left = stream_deadline - svc__now_ms();
        h.timeout_ms = left > 0 ? (uint32_t)left : 1;   /* the server ends it with 408 then */
    }
    /* The open carries trace ids like a call (svc/trace.h): the stream's
     * own span, continuing the trace of the request being handled. */
    svc__trace_meta tm;
    h.metadata = svc__client_header_meta(
        c, svc__trace_call_meta(opts ? opts->meta : NULL, svc__client_meta(c), &tm),
        &h.n_metadata);
    if (!h.metadata) {
        svc_error_set(err, S_ID, 500, "out of memory");
        rc = -ENOMEM;
        goto out_free;
    }
    rc = svc__wire_send(st->conn->sock, NULL, &h, body ? body : "", len, ZMQ_DONTWAIT);
    free(h.metadata);
    if (rc < 0) {
        svc_error_set(err, S_ID, 503, "cannot send to \"%s\": %s", address, svc_strerror(rc));
        rc = SVC_EUNREACHABLE;
        goto out_free;
    }
    /* Every STREAM_DATA we send has the same header: pack it once. */
    Svc__Header dh = SVC__HEADER__INIT;
    dh.kind = SVC__KIND__STREAM_DATA;
    dh.id = st->id;
    st->data_hlen = svc__header__pack(&dh, st->data_hdr);
    free(address);
    *out = st;
    return 0;

out_free:
    if (st)
        svc__conn_destroy(&st->conn);
    free(st);
    free(address);
    return rc;
}

/*
 * Sends one message of the stream.  Credit bounds what we queue, but
 * libzmq learns that its peer has read messages only when it processes
 * commands, so a DEALER can report its queue full (EAGAIN) for a moment
 * although it holds less than its HWM: wait for room then, up to
 * SVC_CONNECT_TIMEOUT_MS (a node that is gone fails after that).
 */
/* Our STREAM_DATA with the packed header: [SVC01][header][body]. */
static int s_send_data(svc_client_stream *st, const void *body, size_t len)
{
    void *sock = st->conn->sock;
    if (zmq_send(sock, SVC_WIRE_SIGNATURE, SVC_WIRE_SIGNATURE_LEN, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return -errno;
    /* After the first part is queued the rest cannot fail with EAGAIN. */
    zmq_send(sock, st->data_hdr, st->data_hlen, ZMQ_SNDMORE);
    return zmq_send(sock, body, len, 0) < 0 ? -errno : 0;
}

static int s_put(svc_client_stream *st, const Svc__Header *h, const void *body, size_t len)
{
    int64_t until = svc__now_ms() + SVC_CONNECT_TIMEOUT_MS;
    for (;;) {
        int rc = h ? svc__wire_send(st->conn->sock, NULL, h, body, len, ZMQ_DONTWAIT)
                   : s_send_data(st, body, len);
        if (rc != -EAGAIN && rc != -EINTR)
            return rc;
        int64_t left = until - svc__now_ms();
        if (left <= 0)
            return rc;
        zmq_pollitem_t item = { st->conn->sock, 0, ZMQ_POLLOUT, 0 };
        zmq_poll(&item, 1, (long)left);
    }
}

/* Sends a body-less control message of the stream (CLOSE, CANCEL, CREDIT). */
static int s_control(svc_client_stream *st, Svc__Kind kind, uint32_t credit)
{
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = kind;
    h.id = st->id;
    h.credit = credit;
    return s_put(st, &h, NULL, 0);
}

/* How long a cancel waits for the PONG behind it (s_cancel). */
#define S_CANCEL_WAIT_MS 200

/* Sends STREAM_CANCEL, then waits for the connection to go quiet (svc__conn_quiesce). */
static void s_cancel(svc_client_stream *st)
{
    s_control(st, SVC__KIND__STREAM_CANCEL, 0);
    svc__conn_quiesce(st->conn, st->id, S_CANCEL_WAIT_MS);
}

/* Records the end of the stream (first end wins). */
static void s_end(svc_client_stream *st, int rc, const char *id, int code, const char *detail)
{
    if (st->ended)
        return;
    st->ended = true;
    st->end_rc = rc;
    if (code)
        svc_error_set(&st->end_err, id && *id ? id : S_ID, code, "%s", detail ? detail : "");
}

/* The server broke the rules of 9.6: cancel, and report it as the end. */
static void s_violation(svc_client_stream *st, const char *why)
{
    if (!st->ended)
        s_cancel(st);
    char d[256];
    snprintf(d, sizeof d, "%s by the server on \"%s\"", why, st->conn->address);
    s_end(st, SVC_EREMOTE, S_ID, 400, d);
}

/*
 * Reads the next message of this stream, waiting until deadline (monotonic
 * ms, -1 forever).  0 with *m set; SVC_ETIMEOUT; SVC_EUNREACHABLE when the
 * connection is lost (the stream then has ended).
 */
static int s_read(svc_client_stream *st, int64_t deadline, svc__msg *m)
{
    bool by_stream = st->deadline >= 0 && (deadline < 0 || st->deadline <= deadline);
    if (by_stream)
        deadline = st->deadline;
    for (;;) {
        char why[128];
        /* Fast path: a busy stream has its next message waiting already. */
        int rc = svc__msg_recv(st->conn->sock, m, ZMQ_DONTWAIT, false, why, sizeof why);
        if (rc == SVC_EPROTO) {
            svc__msg_close(m);
            continue;
        }
        if (rc == -EAGAIN)
            rc = svc__conn_recv(st->conn, m, deadline, why, sizeof why);
        if (rc == SVC_EPROTO)
            continue;
        if (rc == SVC_ETIMEOUT && by_stream) {
            /* The stream's own deadline: over, here as at the server (408). */
            s_cancel(st);
            s_end(st, SVC_EREMOTE, S_ID, 408, "stream deadline exceeded");
            return rc;
        }
        if (rc == SVC_ETIMEOUT)
            return rc;
        if (rc < 0) {
            char d[256];
            snprintf(d, sizeof d, "connection to \"%s\" lost%s%s", st->conn->address,
                     rc == SVC_EUNREACHABLE ? "" : ": ", rc == SVC_EUNREACHABLE ? "" : svc_strerror(rc));
            s_end(st, SVC_EUNREACHABLE, S_ID, 503, d);
            return SVC_EUNREACHABLE;
        }
        if (m->hdr->id == st->id && !st->ended)
            return 0;
        svc__msg_close(m);   /* another id, or after the end: discard (5.2, 9.5) */
    }
}

/*
 * Applies one message of the stream.  Returns true when it is data to hand
 * to the application (m still open), false when it was used up here.
 */
static bool s_apply(svc_client_stream *st, svc__msg *m)
{
    const Svc__Header *h = m->hdr;
    const char *why = NULL;
    if (!st->got_first) {
        /* Its first message carries the server's initial credit (9.6). */
        st->got_first = true;
        svc__flow_set_out(&st->flow, h->credit);
        if (h->kind == SVC__KIND__STREAM_CREDIT) {
            svc__msg_close(m);
            return false;
        }
    }
    switch (h->kind) {
    case SVC__KIND__STREAM_DATA:
        if (svc__flow_on_data(&st->flow, &why) == 0)
            return true;
        s_violation(st, why);
        break;
    case SVC__KIND__STREAM_CREDIT:
        if (svc__flow_on_credit(&st->flow, h->credit, &why) < 0)
            s_violation(st, why);
        break;
    case SVC__KIND__STREAM_CLOSE:
    case SVC__KIND__ERROR:
        if (h->error && h->error->code)
            s_end(st, SVC_EREMOTE, h->error->id, h->error->code, h->error->detail);
        else
            s_end(st, 1, NULL, 0, NULL);
        break;
    case SVC__KIND__STREAM_CANCEL:
        s_end(st, SVC_EREMOTE, S_ID, 499, "stream cancelled by the server");
        break;
    default:
        break;   /* PING (not answered yet), stray RESPONSE: ignored */
    }
    svc__msg_close(m);
    return false;
}

/* Keeps a data message for recv. */
static void s_keep(svc_client_stream *st, svc__msg *m)
{
    s_queued *q = malloc(sizeof *q);
    if (!q) {
        svc__msg_close(m);
        s_violation(st, "out of memory for a message");
        return;
    }
    q->m = *m;
    q->next = NULL;
    if (st->q_tail)
        st->q_tail->next = q;
    else
        st->q_head = q;
    st->q_tail = q;
}

/* Fills out from data message m (closes m) and returns credit to the server. */
static int s_deliver(svc_client_stream *st, svc__msg *m, svc_reply *out, svc_error *err)
{
    size_t blen;
    const void *b = svc__msg_body(m, &blen);
    const char *ct = m->hdr->content_type;
    out->body = malloc(blen + 1);
    out->content_type = strdup(ct[0] ? ct : SVC_CT_PROTOBUF);
    out->node = strdup(st->conn->address);
    if (out->body) {
        if (blen)
            memcpy(out->body, b, blen);
        ((char *)out->body)[blen] = '\0';
        out->len = blen;
    }
    svc__msg_close(m);
    if (!out->body || !out->content_type || !out->node) {
        svc_reply_release(out);
        svc_error_set(err, S_ID, 500, "out of memory");
        return -ENOMEM;
    }
    uint32_t grant = svc__flow_consumed(&st->flow);
    if (grant && !st->ended)
        s_control(st, SVC__KIND__STREAM_CREDIT, grant);
    return 0;
}

int svc_client_stream_recv(svc_client_stream *st, int timeout_ms, svc_reply *out, svc_error *err)
{
    memset(out, 0, sizeof *out);
    if (st->q_head) {
        s_queued *q = st->q_head;
        st->q_head = q->next;
        if (!st->q_head)
            st->q_tail = NULL;
        svc__msg m = q->m;
        free(q);
        return s_deliver(st, &m, out, err);
    }
    /* A busy stream has its next message waiting: no clock read for it. */
    while (!st->ended) {
        svc__msg m;
        char why[128];
        int rc = svc__msg_recv(st->conn->sock, &m, ZMQ_DONTWAIT, false, why, sizeof why);
        if (rc == 0 && m.hdr->id == st->id) {
            if (s_apply(st, &m))
                return s_deliver(st, &m, out, err);
            continue;
        }
        if (rc != 0 && rc != SVC_EPROTO)
            break;   /* nothing waiting (or a socket error, which s_read reports) */
        svc__msg_close(&m);   /* another id, or malformed: discard */
    }
    int64_t deadline = timeout_ms < 0 ? -1 : svc__now_ms() + timeout_ms;
    while (!st->ended) {
        svc__msg m;
        int rc = s_read(st, deadline, &m);
        if (rc == SVC_ETIMEOUT && !st->ended)
            return rc;
        if (rc == 0 && s_apply(st, &m))
            return s_deliver(st, &m, out, err);
    }
    if (st->reported)
        return 1;
    st->reported = true;
    if (svc_error_isset(&st->end_err))
        svc_error_copy(err, &st->end_err);
    return st->end_rc;
}

/* Why a send cannot go: *err set, the code returned. */
static int s_send_refused(svc_client_stream *st, svc_error *err)
{
    if (svc_error_isset(&st->end_err))
        svc_error_copy(err, &st->end_err);
    else if (st->ended)
        svc_error_set(err, S_ID, 499, "stream has ended");
    else
        svc_error_set(err, S_ID, 400, "stream is half-closed: no more sends");
    return st->end_rc == SVC_EUNREACHABLE ? SVC_EUNREACHABLE : SVC_ECLOSED;
}

int svc_client_stream_send(svc_client_stream *st, const void *body, size_t len, int timeout_ms,
                           svc_error *err)
{
    if (st->kind == SVC_STREAM_SERVER) {
        svc_error_set(err, S_ID, 400, "a server stream takes no messages after its open");
        return SVC_EINVAL;
    }
    if (len > SVC_WIRE_MAX_BODY) {
        svc_error_set(err, S_ID, 413, "stream message of %zu bytes exceeds the limit of %d bytes",
                      len, SVC_WIRE_MAX_BODY);
        return SVC_ETOOBIG;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : svc__now_ms() + timeout_ms;
    while (!st->ended && !st->flow.out_eof && (!st->got_first || !svc__flow_can_send(&st->flow))) {
        svc__msg m;
        int rc = s_read(st, deadline, &m);
        if (rc == SVC_ETIMEOUT && !st->ended) {
            svc_error_set(err, S_ID, 408, "no credit from the server within %d ms: it is not "
                          "reading", timeout_ms);
            return rc;
        }
        if (rc == 0 && s_apply(st, &m))
            s_keep(st, &m);
    }
    if (st->ended || st->flow.out_eof)
        return s_send_refused(st, err);
    int rc = s_put(st, NULL, body ? body : "", len);
    if (rc < 0) {
        char d[256];
        snprintf(d, sizeof d, "cannot send to \"%s\": %s", st->conn->address, svc_strerror(rc));
        svc_error_set(err, S_ID, 503, "%s", d);
        return SVC_EUNREACHABLE;
    }
    svc__flow_sent(&st->flow);
    return 0;
}

int svc_client_stream_close_send(svc_client_stream *st)
{
    if (st->ended || st->flow.out_eof)
        return SVC_ECLOSED;
    st->flow.out_eof = true;
    return s_control(st, SVC__KIND__STREAM_CLOSE, 0) < 0 ? SVC_EUNREACHABLE : 0;
}

static void s_drop_queue(svc_client_stream *st)
{
    while (st->q_head) {
        s_queued *q = st->q_head;
        st->q_head = q->next;
        svc__msg_close(&q->m);
        free(q);
    }
    st->q_tail = NULL;
}

void svc_client_stream_cancel(svc_client_stream *st)
{
    if (!st || st->cancelled)
        return;
    st->cancelled = true;
    if (!st->ended) {
        s_cancel(st);
        int linger = 200;   /* if no PONG came: let the cancel leave before the socket closes */
        zmq_setsockopt(st->conn->sock, ZMQ_LINGER, &linger, sizeof linger);
        s_end(st, SVC_ECLOSED, S_ID, 499, "stream cancelled");
    }
    s_drop_queue(st);
}

int svc_client_stream_fd(const svc_client_stream *st)
{
    int fd = -1;
    size_t sz = sizeof fd;
    zmq_getsockopt(st->conn->sock, ZMQ_FD, &fd, &sz);
    return fd;
}

void svc_client_stream_close(svc_client_stream **stp)
{
    svc_client_stream *st = *stp;
    if (!st)
        return;
    svc_client_stream_cancel(st);
    svc__conn_destroy(&st->conn);
    svc_error_release(&st->end_err);
    free(st);
    *stp = NULL;
}
