/*
 * libsvc/client_stream.c — the client side of a server stream.
 *
 * Each stream has its own connection, so its messages never mix with
 * unary answers.  The connection's monitor tells when the node goes away.
 */
#include "svc/client.h"
#include "svc/codec.h"
#include "client_int.h"
#include "clock.h"
#include "conn.h"
#include "registry.pb-c.h"
#include "zctx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_ID "svc.client"

struct svc_client_stream {
    svc__conn *conn;   /* owned */
    uint64_t id;       /* stream id */
    bool ended;        /* the server closed it, or the connection is gone */
};

/* The address of one random node of service, from the registry. */
static int s_pick(svc_client *c, const char *service, int timeout_ms, char **address,
                  svc_error *err)
{
    Svc__Registry__GetServiceRequest req = SVC__REGISTRY__GET_SERVICE_REQUEST__INIT;
    req.service = (char *)service;
    svc_call_opts ro = { .timeout_ms = timeout_ms, .retries = -1,
                         .address = svc_client_registry(c) };
    ProtobufCMessage *m = NULL;
    int rc = svc_call(c, "svc.registry", "Registry.GetService", &req.base,
                      &svc__registry__get_service_response__descriptor, &m, &ro, err);
    if (rc < 0)
        return rc == SVC_EREMOTE && err->code == 404 ? SVC_ENOTFOUND : rc;
    Svc__Registry__GetServiceResponse *r = (Svc__Registry__GetServiceResponse *)m;
    size_t total = 0;
    for (size_t i = 0; i < r->n_services; i++)
        total += r->services[i]->n_nodes;
    rc = SVC_ENOTFOUND;
    if (total) {
        size_t k = (size_t)(svc__rand() % total);
        for (size_t i = 0; i < r->n_services; i++) {
            if (k < r->services[i]->n_nodes) {
                *address = strdup(r->services[i]->nodes[k]->address);
                rc = *address ? 0 : -ENOMEM;
                break;
            }
            k -= r->services[i]->n_nodes;
        }
    }
    if (rc == SVC_ENOTFOUND)
        svc_error_set(err, S_ID, 404, "service \"%s\" has no nodes", service);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int svc_client_stream_open(svc_client *c, const char *service, const char *endpoint,
                           const void *body, size_t len, const svc_call_opts *opts,
                           svc_client_stream **out, svc_error *err)
{
    *out = NULL;
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : SVC_DEFAULT_TIMEOUT_MS;
    int64_t deadline = svc__now_ms() + timeout;
    char *address = NULL;
    int rc = opts && opts->address ? ((address = strdup(opts->address)) ? 0 : -ENOMEM)
                                   : s_pick(c, service, timeout, &address, err);
    if (rc < 0) {
        if (!svc_error_isset(err))
            svc_error_set(err, S_ID, 500, "%s", svc_strerror(rc));
        return rc;
    }
    svc_client_stream *st = calloc(1, sizeof *st);
    if (!st || !(st->conn = svc__conn_new(address))) {
        svc_error_set(err, S_ID, 500, "cannot connect to \"%s\"", address);
        rc = st ? SVC_EUNREACHABLE : -ENOMEM;
        goto out_free;
    }
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
    h.metadata = svc__client_header_meta(c, opts ? opts->meta : NULL, &h.n_metadata);
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

int svc_client_stream_recv(svc_client_stream *st, int timeout_ms, svc_reply *out, svc_error *err)
{
    memset(out, 0, sizeof *out);
    if (st->ended)
        return 1;
    int64_t deadline = timeout_ms < 0 ? -1 : svc__now_ms() + timeout_ms;
    for (;;) {
        svc__msg m;
        char why[128];
        int rc = svc__conn_recv(st->conn, &m, deadline, why, sizeof why);
        if (rc == SVC_EPROTO)
            continue;
        if (rc == SVC_ETIMEOUT)
            return rc;
        if (rc < 0) {
            st->ended = true;
            svc_error_set(err, S_ID, 503, "connection to \"%s\" lost", st->conn->address);
            return SVC_EUNREACHABLE;
        }
        Svc__Header *h = m.hdr;
        if (h->id != st->id) {
            svc__msg_close(&m);
            continue;
        }
        if (h->kind == SVC__KIND__STREAM_DATA) {
            size_t blen;
            const void *b = svc__msg_body(&m, &blen);
            out->body = malloc(blen + 1);
            if (out->body) {
                memcpy(out->body, b ? b : "", blen);
                ((char *)out->body)[blen] = '\0';
            }
            out->len = blen;
            out->content_type = strdup(h->content_type[0] ? h->content_type : SVC_CT_PROTOBUF);
            out->node = strdup(st->conn->address);
            svc__msg_close(&m);
            return 0;
        }
        if (h->kind == SVC__KIND__STREAM_CLOSE || h->kind == SVC__KIND__ERROR) {
            st->ended = true;
            int result = 1;
            if (h->error && h->error->code) {
                svc_error_set(err, h->error->id, h->error->code, "%s", h->error->detail);
                result = SVC_EREMOTE;
            }
            svc__msg_close(&m);
            return result;
        }
        svc__msg_close(&m);
    }
}

void svc_client_stream_close(svc_client_stream **stp)
{
    svc_client_stream *st = *stp;
    if (!st)
        return;
    if (!st->ended) {
        Svc__Header h = SVC__HEADER__INIT;
        h.kind = SVC__KIND__STREAM_CANCEL;
        h.id = st->id;
        svc__wire_send(st->conn->sock, NULL, &h, NULL, 0, ZMQ_DONTWAIT);
        int linger = 200;   /* let the cancel leave before the socket closes */
        zmq_setsockopt(st->conn->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    svc__conn_destroy(&st->conn);
    free(st);
    *stp = NULL;
}
