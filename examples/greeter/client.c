/*
 * greeter-client — calls greeter's Say.Hello by name through the registry.
 *
 *   greeter-client [options] NAME
 *
 * Prints each answer's msg on its own line (with --report: "ok ADDRESS msg"
 * or "error CODE detail" per call).  Exits 0 when every call succeeded, 1
 * when one failed (the error goes to stderr as JSON), 64 on bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/svc.h"
#include "greeter.pb-c.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: greeter-client [options] NAME\n"
               "\n"
               "Calls greeter Say.Hello with {\"name\": NAME} and prints the greeting.\n"
               "\n"
               "  --registry ADDR     registry address (env SVC_REGISTRY_ADDRESS, default %s)\n"
               "  --count N           number of calls (default 1)\n"
               "  --timeout MS        deadline of each call (default 30000)\n"
               "  --interval MS       pause between calls (default 0)\n"
               "  --strategy S        random (default), round-robin or least (fewest calls in flight)\n"
               "  --version GLOB      only nodes of a matching version, e.g. '2.*'\n"
               "  --node-meta K=GLOB  only nodes whose metadata match (comma-separated pairs)\n"
               "  --report            print \"ok ADDRESS msg\" or \"error CODE detail\" per call\n"
               "  --keep-going        go on after a failed call (exit 1 at the end)\n"
               "  --help              show this help\n",
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

/* One call; prints its outcome; returns 0 or -1. */
static int s_call(svc_client *client, const char *name, const svc_call_opts *opts, bool report)
{
    Greeter__HelloRequest req = GREETER__HELLO_REQUEST__INIT;
    req.name = (char *)name;
    size_t len = greeter__hello_request__get_packed_size(&req);
    uint8_t buf[len + 1];
    greeter__hello_request__pack(&req, buf);
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_client_call_raw(client, "greeter", "Say.Hello", buf, len, opts, &r, &err);
    Greeter__HelloResponse *rsp = NULL;
    if (rc == 0 && !(rsp = greeter__hello_response__unpack(NULL, r.len, r.body))) {
        svc_error_set(&err, "greeter-client", 500, "answer does not decode");
        rc = -1;
    }
    if (rc == 0) {
        if (report)
            printf("ok %s %s\n", r.node, rsp->msg);
        else
            printf("%s\n", rsp->msg);
    } else if (report) {
        printf("error %d %s\n", err.code, err.detail ? err.detail : "");
    } else {
        char *json = svc_error_json(&err);
        fprintf(stderr, "greeter-client: %s\n", json ? json : err.detail);
        free(json);
    }
    fflush(stdout);
    if (rsp)
        greeter__hello_response__free_unpacked(rsp, NULL);
    svc_reply_release(&r);
    svc_error_release(&err);
    return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "registry", required_argument, NULL, 'r' },
        { "count", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "interval", required_argument, NULL, 'i' },
        { "strategy", required_argument, NULL, 's' },
        { "version", required_argument, NULL, 'v' },
        { "node-meta", required_argument, NULL, 'm' },
        { "report", no_argument, NULL, 'R' },
        { "keep-going", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *registry = NULL;
    long count = 1, timeout = 0, interval = 0;
    bool report = false, keep_going = false;
    svc_call_opts opts = { 0 };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
        switch (c) {
        case 'r': registry = optarg; break;
        case 'c': if (s_number(optarg, "--count", 1, 100000000, &count) < 0) return 64; break;
        case 't': if (s_number(optarg, "--timeout", 1, 3600000, &timeout) < 0) return 64; break;
        case 'i': if (s_number(optarg, "--interval", 0, 3600000, &interval) < 0) return 64; break;
        case 's':
            if (strcmp(optarg, "random") == 0) {
                opts.strategy = SVC_SELECT_RANDOM;
            } else if (strcmp(optarg, "round-robin") == 0) {
                opts.strategy = SVC_SELECT_ROUND_ROBIN;
            } else if (strcmp(optarg, "least") == 0) {
                opts.strategy = SVC_SELECT_LEAST_OUTSTANDING;
            } else {
                fprintf(stderr, "greeter-client: invalid value \"%s\" for --strategy: want random, "
                                "round-robin or least\n", optarg);
                return 64;
            }
            break;
        case 'v': opts.version = optarg; break;
        case 'm': opts.node_meta = optarg; break;
        case 'R': report = true; break;
        case 'k': keep_going = true; break;
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
    opts.timeout_ms = (int)timeout;
    int code = 0;
    for (long i = 0; i < count; i++) {
        if (i && interval) {
            struct timespec ts = { interval / 1000, (interval % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (s_call(client, argv[optind], &opts, report) < 0) {
            code = 1;
            if (!keep_going)
                break;
        }
    }
    svc_client_destroy(&client);
    return code;
}
