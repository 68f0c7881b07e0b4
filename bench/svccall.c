/* bench/svccall.c — svc unary calls per second.  See svccall.h. */
#include "svccall.h"
#include "args.h"
#include "measure.h"
#include "svcasync.h"
#include "svcpipe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/svc.h"
#include "svc/codec.h"
#include "greeter.pb-c.h"

/* What every call needs, and the error of the call that failed. */
typedef struct s_caller {
    svc_client *client;          /* owned */
    const char *service;         /* borrowed from argv */
    const char *endpoint;        /* borrowed from argv */
    svc_call_opts opts;          /* per call */
    Greeter__HelloRequest req;   /* name: the payload, owned */
    size_t size;                 /* payload bytes */
    svc_error err;               /* of the failed call */
    bool json;                   /* bodies in application/json (raw calls) */
} s_caller;

/* A JSON call: the request encoded to JSON and the answer decoded, per call. */
static int s_call_json(s_caller *c)
{
    void *buf;
    size_t len;
    int rc = svc_codec_encode(SVC_CT_JSON, &c->req.base, &buf, &len);
    if (rc < 0)
        return rc;
    svc_reply r = SVC_REPLY_INIT;
    rc = svc_client_call_raw(c->client, c->service, c->endpoint, buf, len, &c->opts, &r, &c->err);
    free(buf);
    if (rc < 0)
        return rc;
    ProtobufCMessage *rsp = NULL;
    char why[160];
    rc = svc_codec_decode(r.content_type, &greeter__hello_response__descriptor, r.body, r.len,
                          &rsp, why, sizeof why);
    svc_reply_release(&r);
    if (rc < 0) {
        svc_error_set(&c->err, "svc-bench", 500, "answer does not decode: %s", why);
        return rc;
    }
    if (strlen(((Greeter__HelloResponse *)rsp)->msg) < c->size) {
        svc_error_set(&c->err, "svc-bench", 500, "answer shorter than the request");
        rc = SVC_EPROTO;
    }
    protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

static int s_call(void *arg)
{
    s_caller *c = arg;
    if (c->json)
        return s_call_json(c);
    ProtobufCMessage *rsp = NULL;
    int rc = svc_call(c->client, c->service, c->endpoint, &c->req.base,
                      &greeter__hello_response__descriptor, &rsp, &c->opts, &c->err);
    if (rc < 0)
        return rc;
    const Greeter__HelloResponse *out = (const Greeter__HelloResponse *)rsp;
    if (strlen(out->msg) < c->size) {
        svc_error_set(&c->err, "svc-bench", 500, "answer of %zu bytes is shorter than the "
                      "request", strlen(out->msg));
        rc = SVC_EPROTO;
    }
    protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

/*
 * Calls until the first success or wait_ms, to let the server register;
 * returns 0 with the address of the node that answered in *node (the
 * caller's), or the last call's code.
 */
static int s_first_call(s_caller *c, long wait_ms, char **node)
{
    void *buf;
    size_t len;
    if (svc_codec_encode(c->opts.content_type, &c->req.base, &buf, &len) < 0)
        return -ENOMEM;
    uint64_t until = bm_now_ns() + (uint64_t)wait_ms * 1000000u;
    int rc;
    for (;;) {
        svc_reply r = SVC_REPLY_INIT;
        svc_error_release(&c->err);
        rc = svc_client_call_raw(c->client, c->service, c->endpoint, buf, len, &c->opts, &r,
                                 &c->err);
        if (rc == 0) {
            *node = r.node;
            r.node = NULL;
        }
        svc_reply_release(&r);
        bool not_yet = rc == SVC_ENOTFOUND || rc == SVC_EUNREACHABLE;
        if (!not_yet || bm_now_ns() >= until)
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    }
    free(buf);
    return rc;
}

static void s_report_error(const s_caller *c, int rc)
{
    char *json = svc_error_isset(&c->err) ? svc_error_json(&c->err) : NULL;
    fprintf(stderr, "svc-bench: call to %s %s failed: %s\n", c->service, c->endpoint,
            json ? json : svc_strerror(rc));
    free(json);
}

int bm_svc_client(int argc, char **argv)
{
    static const char usage[] = "svc-bench svc-client [flags]\n\n"
        "svc unary calls by name, --in-flight at a time; prints JSON result lines\n"
        "svc-unary.<transport> (calls/s) and svc-unary-p50/-p99.<transport> (us).\n"
        "1 in flight: svc_call (protobuf) or svc_client_call_raw (json).  More: svc_call_cb\n"
        "(--client async), or REQUESTs from the bare wire encoder on one DEALER to the\n"
        "node the first call found (--client wire, bench/svcpipe.h).";
    bm_args a;
    unsigned mask = BM_F_SECONDS | BM_F_WARMUP | BM_F_SIZE | BM_F_REGISTRY | BM_F_SERVICE |
                    BM_F_ENDPOINT | BM_F_ADDRESS | BM_F_WAIT | BM_F_LABEL | BM_F_INFLIGHT |
                    BM_F_CODEC | BM_F_CLIENT;
    int rc = bm_args_parse(argc, argv, mask, NULL, usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;

    int code = 1;
    s_caller c = { .service = a.service, .endpoint = a.endpoint, .size = (size_t)a.size,
                   .opts = { .timeout_ms = 5000, .address = a.address },
                   .json = strcmp(a.codec, "json") == 0 };
    c.opts.content_type = c.json ? SVC_CT_JSON : SVC_CT_PROTOBUF;
    greeter__hello_request__init(&c.req);
    c.req.name = malloc(c.size + 1);
    c.client = svc_client_new(a.registry);
    if (!c.req.name || !c.client) {
        fprintf(stderr, "svc-bench: out of memory\n");
        goto out_free;
    }
    memset(c.req.name, 'x', c.size);
    c.req.name[c.size] = '\0';

    char *node = NULL;
    rc = s_first_call(&c, a.wait_ms, &node);
    bm_result r = { 0 };
    if (rc == 0 && a.in_flight == 1) {
        rc = bm_measure(s_call, &c, a.warmup, a.seconds, &r);
    } else if (rc == 0 && strcmp(a.client, "async") == 0) {
        bm_async_args aa = { .client = c.client, .service = c.service, .endpoint = c.endpoint,
                             .opts = &c.opts, .size = c.size, .in_flight = (unsigned)a.in_flight,
                             .wait_ms = a.wait_ms, .warmup = a.warmup, .seconds = a.seconds };
        char why[512];
        rc = bm_svc_async(&aa, &r, why, sizeof why);
        if (rc < 0) {
            fprintf(stderr, "svc-bench: asynchronous calls to %s %s failed: %s\n", c.service,
                    c.endpoint, why);
            goto out_release;
        }
    } else if (rc == 0) {
        bm_pipe_args pa = { .node = node, .service = c.service, .endpoint = c.endpoint,
                            .content_type = c.opts.content_type, .size = c.size,
                            .in_flight = (unsigned)a.in_flight, .wait_ms = a.wait_ms,
                            .warmup = a.warmup, .seconds = a.seconds };
        char why[256];
        rc = bm_svc_pipe(&pa, &r, why, sizeof why);
        if (rc < 0) {
            fprintf(stderr, "svc-bench: pipelined calls to %s %s at \"%s\" failed: %s\n",
                    c.service, c.endpoint, node, why);
            goto out_release;
        }
    }
    if (rc < 0) {
        s_report_error(&c, rc);
        goto out_release;
    }
    bm_report rep = { .bench = a.label ? a.label : "svc-unary", .transport = bm_transport(node), .payload = a.size,
                      .in_flight = (unsigned)a.in_flight,
                      .note = a.in_flight > 1 && strcmp(a.client, "wire") == 0
                                  ? "bare wire encoder on one DEALER, no client library"
                              : a.in_flight > 1 ? "svc_call_cb by name, one client, one thread"
                              : a.address ? "svc_call to a fixed node address"
                                          : "svc_call by name, cached registry view" };
    bm_report_print(&rep, &r);
    code = 0;

out_release:
    bm_result_release(&r);
    free(node);
out_free:
    svc_error_release(&c.err);
    svc_client_destroy(&c.client);
    free(c.req.name);
    return code;
}
