/*
 * greeter — the example service:
 *
 *   Say.Hello {name} -> {msg: "Hello <name>"}
 *   Say.Chat  bidirectional stream: each {name} is answered by its greeting
 *             as it arrives; the stream ends cleanly after the client's
 *             half-close, or with 400 at the first empty name
 *
 *   greeter [service options]     (greeter --help lists them)
 *   printf '{"name":"a"}\n{"name":"b"}\n' | svcctl stream greeter Say.Chat
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "svc/svc.h"
#include "greeter.pb-c.h"

static int say_hello(svc_ctx *ctx, const void *req, void *rsp)
{
    const Greeter__HelloRequest *in = req;
    Greeter__HelloResponse *out = rsp;
    if (!in->name[0])
        return svc_ctx_error(ctx, 400, "name must not be empty");
    if (asprintf(&out->msg, "Hello %s", in->name) < 0)
        return -ENOMEM;
    return 0;
}

/*
 * A bidirectional stream handler runs on a worker for the stream's whole
 * life: receive until the client half-closes (1), answer each request.
 * svc_stream_send_wait waits while the client has no credit left for us, so
 * a client that stops reading stops this loop instead of filling memory.
 */
static int say_chat(svc_ctx *ctx, svc_stream *st)
{
    ProtobufCMessage *m;
    int rc;
    while ((rc = svc_stream_recv(st, -1, &m)) == 0) {
        const Greeter__HelloRequest *in = (const Greeter__HelloRequest *)m;
        Greeter__HelloResponse out = GREETER__HELLO_RESPONSE__INIT;
        if (!in->name[0]) {
            protobuf_c_message_free_unpacked(m, NULL);
            return svc_ctx_error(ctx, 400, "name must not be empty");
        }
        rc = asprintf(&out.msg, "Hello %s", in->name) < 0 ? -ENOMEM
             : svc_stream_send_wait(st, &out.base, -1);
        free(out.msg);
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc < 0)
            break;
    }
    /* 1: the client is done, and so are we (a clean end).  SVC_ECLOSED: it
     * cancelled or went away; nothing more can be sent anyway. */
    return rc == 1 || rc == SVC_ECLOSED ? 0 : rc;
}

int main(int argc, char **argv)
{
    svc_service *s = svc_new("greeter", argc, argv);
    if (!s)
        return 1;
    svc_handle(s, "Say.Hello", say_hello, &greeter__hello_request__descriptor,
               &greeter__hello_response__descriptor);
    svc_handle_streaming(s, "Say.Chat", SVC_STREAM_BIDI, say_chat,
                         &greeter__hello_request__descriptor, &greeter__hello_response__descriptor);
    int code = svc_run(s);
    svc_destroy(&s);
    return code;
}
