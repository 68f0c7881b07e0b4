/* bench/svcpipe.c — pipelined svc calls over the wire encoder.  See svcpipe.h. */
#include "svcpipe.h"
#include "window.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "svc/svc.h"
#include "svc/codec.h"
#include "wire.h"
#include "zctx.h"
#include "greeter.pb-c.h"

#define S_SLOT_BITS 12   /* low bits of a call id: its window slot (BM_WINDOW_MAX) */

/* The pipeline's state. */
typedef struct s_pipe {
    const bm_pipe_args *a;       /* inputs, borrowed */
    void *sock;                  /* DEALER to the node, owned */
    Greeter__HelloRequest req;   /* request; name is the payload, owned */
    uint64_t seq;                /* calls started */
    char *err;                   /* reason of a failure */
    size_t errlen;
} s_pipe;

static int s_start(void *arg, unsigned slot)
{
    s_pipe *p = arg;
    void *buf;
    size_t len;
    int rc = svc_codec_encode(p->a->content_type, &p->req.base, &buf, &len);
    if (rc < 0)
        return rc;
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;
    h.id = (++p->seq << S_SLOT_BITS) | slot;
    h.service = (char *)p->a->service;
    h.endpoint = (char *)p->a->endpoint;
    h.content_type = (char *)p->a->content_type;
    h.timeout_ms = (uint32_t)p->a->wait_ms;
    rc = svc__wire_send(p->sock, NULL, &h, buf, len, 0);
    free(buf);
    if (rc < 0)
        snprintf(p->err, p->errlen, "send failed: %s", zmq_strerror(-rc));
    return rc;
}

static int s_finish(void *arg, unsigned *slot)
{
    s_pipe *p = arg;
    svc__msg m;
    char why[160] = "";
    int rc = svc__msg_recv(p->sock, &m, 0, false, why, sizeof why);
    if (rc == -EAGAIN) {
        snprintf(p->err, p->errlen, "no answer in %ld ms", p->a->wait_ms);
        return rc;
    }
    if (rc < 0 && rc != SVC_EPROTO)
        return rc;
    if (rc == SVC_EPROTO) {
        snprintf(p->err, p->errlen, "malformed answer: %s", why);
        goto out_close;
    }
    if (m.hdr->kind != SVC__KIND__RESPONSE) {
        Svc__Error *e = m.hdr->error;
        snprintf(p->err, p->errlen, "answer of kind %d: %d %s", m.hdr->kind, e ? e->code : 0,
                 e ? e->detail : "");
        rc = SVC_EREMOTE;
        goto out_close;
    }
    size_t blen;
    const void *body = svc__msg_body(&m, &blen);
    ProtobufCMessage *rsp = NULL;
    rc = svc_codec_decode(p->a->content_type, &greeter__hello_response__descriptor,
                          body ? body : "", blen, &rsp, why, sizeof why);
    if (rc < 0) {
        snprintf(p->err, p->errlen, "answer does not decode: %s", why);
        goto out_close;
    }
    if (strlen(((Greeter__HelloResponse *)rsp)->msg) < p->a->size) {
        snprintf(p->err, p->errlen, "answer shorter than the request");
        rc = SVC_EPROTO;
    }
    protobuf_c_message_free_unpacked(rsp, NULL);
    *slot = (unsigned)(m.hdr->id & ((1u << S_SLOT_BITS) - 1));

out_close:
    svc__msg_close(&m);
    return rc;
}

static const bm_window_ops s_ops = { s_start, s_finish };

int bm_svc_pipe(const bm_pipe_args *a, bm_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    s_pipe p = { .a = a, .err = err, .errlen = errlen };
    snprintf(err, errlen, "failed");
    greeter__hello_request__init(&p.req);
    p.req.name = malloc(a->size + 1);
    p.sock = svc__socket(ZMQ_DEALER);
    int rc = -ENOMEM;
    if (!p.req.name || !p.sock) {
        snprintf(err, errlen, "cannot set up: %s", strerror(errno));
        goto out_free;
    }
    memset(p.req.name, 'x', a->size);
    p.req.name[a->size] = '\0';
    int wait = (int)a->wait_ms;
    zmq_setsockopt(p.sock, ZMQ_RCVTIMEO, &wait, sizeof wait);
    if (zmq_connect(p.sock, a->node) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot connect to \"%s\": %s", a->node, zmq_strerror(errno));
        goto out_free;
    }
    rc = bm_measure_window(&s_ops, &p, a->in_flight, a->warmup, a->seconds, r);

out_free:
    svc__socket_close(&p.sock);
    free(p.req.name);
    return rc;
}
