/* bench/echo.c — service "bench.echo".  See echo.h. */
#include "echo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/svc.h"
#include "greeter.pb-c.h"

static int s_echo(svc_ctx *ctx, const void *req, void *rsp)
{
    const Greeter__HelloRequest *in = req;
    Greeter__HelloResponse *out = rsp;
    out->msg = strdup(in->name);
    return out->msg ? 0 : -ENOMEM;
}

int bm_echo_service(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("svc-bench bench-echo: serves Echo.Call (greeter.HelloRequest{name} -> "
                   "greeter.HelloResponse{msg: name}) on the worker pool, and the same as\n"
                   "Echo.Inline on the event-loop thread (svc_handle_inline)\n\n");
            break;
        }
    }
    svc_service *s = svc_new("bench.echo", argc, argv);
    if (!s)
        return 1;
    int code = 1;
    if (svc_handle(s, "Echo.Call", s_echo, &greeter__hello_request__descriptor,
                   &greeter__hello_response__descriptor) == 0 &&
        svc_handle_inline(s, "Echo.Inline", s_echo, &greeter__hello_request__descriptor,
                          &greeter__hello_response__descriptor) == 0)
        code = svc_run(s);
    svc_destroy(&s);
    return code;
}
