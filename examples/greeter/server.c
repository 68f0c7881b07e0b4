/*
 * greeter — the example service: Say.Hello {name} -> {msg: "Hello <name>"}.
 *
 *   greeter [service options]     (greeter --help lists them)
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

int main(int argc, char **argv)
{
    svc_service *s = svc_new("greeter", argc, argv);
    if (!s)
        return 1;
    svc_handle(s, "Say.Hello", say_hello, &greeter__hello_request__descriptor,
               &greeter__hello_response__descriptor);
    int code = svc_run(s);
    svc_destroy(&s);
    return code;
}
