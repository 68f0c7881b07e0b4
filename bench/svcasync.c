/* bench/svcasync.c — W calls in flight with svc_call_cb.  See svcasync.h. */
#include "svcasync.h"
#include "window.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/svc.h"
#include "svc/codec.h"
#include "greeter.pb-c.h"

typedef struct s_async s_async;

/* A window slot, the argument of its calls' callback. */
typedef struct s_slot {
    s_async *owner;
    unsigned slot;
} s_slot;

struct s_async {
    const bm_async_args *a;      /* inputs, borrowed */
    Greeter__HelloRequest req;   /* request; name is the payload, owned */
    s_slot *slots;               /* one per window slot, owned */
    unsigned *done;              /* ring of finished slots, owned (in_flight entries) */
    unsigned head, n;            /* ring start and length */
    int failed;                  /* first failure's code, 0 if none */
    bool draining;               /* measuring is over: answers only counted down */
    char *err;                   /* reason of the failure */
    size_t errlen;
};

static void s_fail(s_async *p, int rc, const char *fmt, const char *what)
{
    if (p->failed)
        return;
    p->failed = rc;
    snprintf(p->err, p->errlen, fmt, what);
}

static void s_on_done(void *arg, int rc, svc_reply *reply, svc_error *err)
{
    s_slot *sl = arg;
    s_async *p = sl->owner;
    if (p->draining)
        return;
    if (rc < 0) {
        char *json = svc_error_json(err);
        s_fail(p, rc, "%s", json ? json : svc_strerror(rc));
        free(json);
        return;
    }
    ProtobufCMessage *rsp = NULL;
    char why[160];
    if (svc_codec_decode(reply->content_type, &greeter__hello_response__descriptor, reply->body,
                         reply->len, &rsp, why, sizeof why) < 0) {
        s_fail(p, SVC_ECODEC, "answer does not decode: %s", why);
        return;
    }
    if (strlen(((Greeter__HelloResponse *)rsp)->msg) < p->a->size)
        s_fail(p, SVC_EPROTO, "%s", "answer shorter than the request");
    protobuf_c_message_free_unpacked(rsp, NULL);
    p->done[(p->head + p->n++) % p->a->in_flight] = sl->slot;
}

static int s_start(void *arg, unsigned slot)
{
    s_async *p = arg;
    void *buf;
    size_t len;
    const char *ct = p->a->opts->content_type ? p->a->opts->content_type : SVC_CT_PROTOBUF;
    int rc = svc_codec_encode(ct, &p->req.base, &buf, &len);
    if (rc < 0)
        return rc;
    rc = svc_call_cb(p->a->client, p->a->service, p->a->endpoint, buf, len, p->a->opts,
                     s_on_done, &p->slots[slot]);
    free(buf);
    if (rc < 0)
        s_fail(p, rc, "svc_call_cb: %s", svc_strerror(rc));
    return rc;
}

static int s_finish(void *arg, unsigned *slot)
{
    s_async *p = arg;
    while (!p->n && !p->failed) {
        if (!svc_client_pending(p->a->client))
            return -EPROTO;   /* nothing in flight: cannot happen in a window */
        size_t before = svc_client_pending(p->a->client);
        svc_client_poll(p->a->client, (int)p->a->wait_ms);
        if (!p->n && !p->failed && svc_client_pending(p->a->client) == before) {
            snprintf(p->err, p->errlen, "no answer in %ld ms", p->a->wait_ms);
            return -EAGAIN;
        }
    }
    if (p->failed)
        return p->failed;
    *slot = p->done[p->head];
    p->head = (p->head + 1) % p->a->in_flight;
    p->n--;
    return 0;
}

static const bm_window_ops s_ops = { s_start, s_finish };

int bm_svc_async(const bm_async_args *a, bm_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    s_async *pp = calloc(1, sizeof *pp);
    if (!pp) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s_async p_init = { .a = a, .err = err, .errlen = errlen };
    *pp = p_init;
#define p (*pp)
    snprintf(err, errlen, "failed");
    greeter__hello_request__init(&p.req);
    p.req.name = malloc(a->size + 1);
    p.slots = calloc(a->in_flight, sizeof *p.slots);
    p.done = calloc(a->in_flight, sizeof *p.done);
    int rc = -ENOMEM;
    if (!p.req.name || !p.slots || !p.done) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    memset(p.req.name, 'x', a->size);
    p.req.name[a->size] = '\0';
    for (unsigned i = 0; i < a->in_flight; i++)
        p.slots[i] = (s_slot){ &p, i };
    rc = bm_measure_window(&s_ops, &p, a->in_flight, a->warmup, a->seconds, r);
    /* The callbacks of the calls still in flight point at p: let them end. */
    p.draining = true;
    for (int i = 0; i < 100 && svc_client_pending(a->client) > 0; i++)
        svc_client_poll(a->client, 100);
    if (svc_client_pending(a->client) > 0)
        return rc;   /* their callbacks still point at *pp: leave it to the process's exit */

out_free:
    free(p.done);
    free(p.slots);
    free(p.req.name);
    free(pp);
    return rc;
#undef p
}
