/* bench/svccall.c — svc unary calls per second.  See svccall.h. */
#include "svccall.h"
#include "args.h"
#include "measure.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/svc.h"
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
} s_caller;

static int s_call(void *arg)
{
    s_caller *c = arg;
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
    size_t len = protobuf_c_message_get_packed_size(&c->req.base);
    void *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    protobuf_c_message_pack(&c->req.base, buf);
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
        "svc unary calls by name, one in flight; prints JSON result lines\n"
        "svc-unary.<transport> (calls/s) and svc-unary-p50/-p99.<transport> (us).";
    bm_args a;
    unsigned mask = BM_F_SECONDS | BM_F_WARMUP | BM_F_SIZE | BM_F_REGISTRY | BM_F_SERVICE |
                    BM_F_ENDPOINT | BM_F_ADDRESS | BM_F_WAIT | BM_F_LABEL;
    int rc = bm_args_parse(argc, argv, mask, NULL, usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;

    int code = 1;
    s_caller c = { .service = a.service, .endpoint = a.endpoint, .size = (size_t)a.size,
                   .opts = { .timeout_ms = 5000, .address = a.address } };
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
    if (rc == 0)
        rc = bm_measure(s_call, &c, a.warmup, a.seconds, &r);
    if (rc < 0) {
        s_report_error(&c, rc);
        goto out_release;
    }
    bm_report rep = { .bench = a.label ? a.label : "svc-unary", .transport = bm_transport(node), .payload = a.size,
                      .note = a.address ? "svc_call to a fixed node address"
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
