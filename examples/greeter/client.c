/*
 * greeter-client — calls greeter's Say.Hello by name through the registry.
 *
 *   greeter-client [--registry ADDR] [--count N] [--timeout MS] NAME
 *
 * Prints each answer's msg on its own line.  Exits 0 when every call
 * succeeded, 1 when one failed (the error goes to stderr as JSON), 64 on
 * bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/svc.h"
#include "greeter.pb-c.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: greeter-client [--registry ADDR] [--count N] [--timeout MS] NAME\n"
               "\n"
               "Calls greeter Say.Hello with {\"name\": NAME} and prints the greeting.\n"
               "\n"
               "  --registry ADDR   registry address (env SVC_REGISTRY_ADDRESS, default %s)\n"
               "  --count N         number of calls (default 1)\n"
               "  --timeout MS      deadline of each call (default 30000)\n"
               "  --help            show this help\n",
            SVC_DEFAULT_REGISTRY);
}

static int s_number(const char *v, const char *flag, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "greeter-client: invalid value \"%s\" for %s\n", v, flag);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "registry", required_argument, NULL, 'r' },
        { "count", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *registry = NULL;
    long count = 1, timeout = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
        switch (c) {
        case 'r': registry = optarg; break;
        case 'c': if (s_number(optarg, "--count", 1, 100000000, &count) < 0) return 64; break;
        case 't': if (s_number(optarg, "--timeout", 1, 3600000, &timeout) < 0) return 64; break;
        case 'h': s_usage(stdout); return 0;
        default:
            fprintf(stderr, "greeter-client: %s \"%s\" (see --help)\n",
                    c == ':' ? "option needs a value" : "unknown option", argv[optind - 1]);
            return 64;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 64;
    }

    svc_client *client = svc_client_new(registry);
    if (!client)
        return 1;
    Greeter__HelloRequest req = GREETER__HELLO_REQUEST__INIT;
    req.name = argv[optind];
    svc_call_opts opts = { .timeout_ms = (int)timeout };
    int code = 0;
    for (long i = 0; i < count; i++) {
        ProtobufCMessage *rsp = NULL;
        svc_error err = SVC_ERROR_INIT;
        if (svc_call(client, "greeter", "Say.Hello", &req.base,
                     &greeter__hello_response__descriptor, &rsp, &opts, &err) < 0) {
            char *json = svc_error_json(&err);
            fprintf(stderr, "greeter-client: %s\n", json ? json : err.detail);
            free(json);
            svc_error_release(&err);
            code = 1;
            break;
        }
        printf("%s\n", ((Greeter__HelloResponse *)rsp)->msg);
        protobuf_c_message_free_unpacked(rsp, NULL);
    }
    svc_client_destroy(&client);
    return code;
}
