/*
 * fanout — calls several services (or every node of one) in parallel from
 * one thread with the asynchronous client API, and gathers the answers.
 *
 *   fanout [options] SERVICE ENDPOINT JSON [SERVICE ENDPOINT JSON ...]
 *   fanout [options] --each-node SERVICE ENDPOINT JSON
 *
 * All calls are started at once (svc_call_async), then awaited; the answers
 * are printed in the order the calls were given, one JSON object a line:
 *   {"service":"greeter","endpoint":"Say.Hello","node":"tcp://...","response":{...}}
 *   {"service":"nosuch","endpoint":"X.Y","error":{"id":...,"code":404,...}}
 * A summary with the total time goes to stderr.  Exits 0 when every call succeeded, 1 when one
 * failed, 64 on bad usage.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/svc.h"

#define MAX_CALLS 1024

static void s_usage(FILE *f)
{
    fprintf(f, "usage: fanout [options] SERVICE ENDPOINT JSON [SERVICE ENDPOINT JSON ...]\n"
               "       fanout [options] --each-node SERVICE ENDPOINT JSON\n"
               "\n"
               "Calls every SERVICE ENDPOINT with its JSON request at once (asynchronously, from\n"
               "one thread) and prints each answer as a JSON line, in the order given.\n"
               "\n"
               "  --each-node        call every registered node of the one SERVICE given\n"
               "  --registry ADDR    registry address (env SVC_REGISTRY_ADDRESS, default %s)\n"
               "  --timeout MS       deadline shared by all the calls (default 30000)\n"
               "  --strategy S       random (default), round-robin or least\n"
               "  --help             show this help\n"
               "\n"
               "Exit status: 0 every call succeeded, 1 one failed, 64 bad usage.\n",
            SVC_DEFAULT_REGISTRY);
}

typedef struct target {
    const char *service;   /* borrowed from argv */
    const char *endpoint;  /* borrowed from argv */
    const char *json;      /* borrowed from argv */
    char *address;         /* --each-node: the node, owned */
    svc_future *f;         /* the call in flight */
} target;

/* The addresses of every node of service, from the registry (JSON). */
static int s_nodes(svc_client *c, const char *service, int timeout, target *t, int max, int *n)
{
    json_t *req = json_pack("{s:s}", "service", service);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return -1;
    svc_call_opts o = { .address = svc_client_registry(c), .content_type = SVC_CT_JSON,
                        .timeout_ms = timeout };
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_client_call_raw(c, "svc.registry", "Registry.GetService", body, strlen(body), &o,
                                 &r, &err);
    free(body);
    if (rc < 0) {
        char *j = svc_error_json(&err);
        fprintf(stderr, "fanout: cannot list the nodes of \"%s\": %s\n", service, j ? j : "");
        free(j);
        svc_error_release(&err);
        return -1;
    }
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    svc_reply_release(&r);
    size_t i, j;
    json_t *s, *node;
    *n = 0;
    json_array_foreach(json_object_get(doc, "services"), i, s) {
        json_array_foreach(json_object_get(s, "nodes"), j, node) {
            const char *addr = json_string_value(json_object_get(node, "address"));
            if (addr && *n < max && (t[*n].address = strdup(addr)))
                (*n)++;
        }
    }
    json_decref(doc);
    return 0;
}

/* Prints the outcome of one call as a JSON line; returns 0 for success. */
static int s_print(target *t)
{
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_future_result(t->f, &r, &err);
    json_t *line = json_pack("{s:s,s:s}", "service", t->service, "endpoint", t->endpoint);
    const char *node = r.node ? r.node : svc_future_node(t->f);
    if (node)
        json_object_set_new(line, "node", json_string(node));
    if (rc == 0) {
        json_t *rsp = json_loadb(r.body ? r.body : "{}", r.body ? r.len : 2, JSON_DECODE_ANY, NULL);
        json_object_set_new(line, "response", rsp ? rsp : json_null());
    } else {
        json_object_set_new(line, "error", json_pack("{s:s,s:i,s:s,s:s}", "id",
                                                     err.id ? err.id : "", "code", err.code,
                                                     "detail", err.detail ? err.detail : "",
                                                     "status", err.status ? err.status : ""));
    }
    char *out = json_dumps(line, JSON_COMPACT);
    printf("%s\n", out ? out : "{}");
    free(out);
    json_decref(line);
    svc_reply_release(&r);
    svc_error_release(&err);
    return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "each-node", no_argument, NULL, 'e' },
        { "registry", required_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "strategy", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *registry = NULL;
    bool each = false;
    int timeout = SVC_DEFAULT_TIMEOUT_MS;
    svc_strategy strategy = SVC_SELECT_DEFAULT;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
        char *end;
        long v;
        switch (c) {
        case 'e': each = true; break;
        case 'r': registry = optarg; break;
        case 't':
            v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > 3600000) {
                fprintf(stderr, "fanout: invalid value \"%s\" for --timeout\n", optarg);
                return 64;
            }
            timeout = (int)v;
            break;
        case 's':
            strategy = strcmp(optarg, "random") == 0        ? SVC_SELECT_RANDOM
                       : strcmp(optarg, "round-robin") == 0 ? SVC_SELECT_ROUND_ROBIN
                       : strcmp(optarg, "least") == 0       ? SVC_SELECT_LEAST_OUTSTANDING
                                                            : SVC_SELECT_DEFAULT;
            if (!strategy) {
                fprintf(stderr, "fanout: invalid value \"%s\" for --strategy: want random, "
                                "round-robin or least\n", optarg);
                return 64;
            }
            break;
        case 'h': s_usage(stdout); return 0;
        default:
            fprintf(stderr, "fanout: %s \"%s\" (see --help)\n",
                    c == ':' ? "option needs a value" : "unknown option", argv[optind - 1]);
            return 64;
        }
    }
    int npos = argc - optind;
    if (npos < 3 || npos % 3 || (each && npos != 3) || npos / 3 > MAX_CALLS) {
        s_usage(stderr);
        return 64;
    }
    for (int i = optind + 2; i < argc; i += 3) {
        json_t *check = json_loads(argv[i], JSON_DECODE_ANY, NULL);
        bool ok = json_is_object(check);
        json_decref(check);
        if (!ok) {
            fprintf(stderr, "fanout: invalid JSON request \"%s\": want an object\n", argv[i]);
            return 65;
        }
    }

    svc_client *client = svc_client_new(registry);
    target *t = calloc(MAX_CALLS, sizeof *t);
    if (!client || !t)
        return 1;
    int n = 0;
    if (each) {
        if (s_nodes(client, argv[optind], timeout, t, MAX_CALLS, &n) < 0) {
            free(t);
            svc_client_destroy(&client);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            t[i].service = argv[optind];
            t[i].endpoint = argv[optind + 1];
            t[i].json = argv[optind + 2];
        }
    } else {
        for (int i = optind; i < argc; i += 3, n++) {
            t[n].service = argv[i];
            t[n].endpoint = argv[i + 1];
            t[n].json = argv[i + 2];
        }
    }

    /* One deadline for the whole fan-out; every call starts before any is awaited. */
    int64_t t0 = svc_now_ms();
    svc_call_opts o = { .content_type = SVC_CT_JSON, .strategy = strategy,
                        .deadline_ms = t0 + timeout, .timeout_ms = timeout };
    for (int i = 0; i < n; i++) {
        o.address = t[i].address;
        if (svc_call_async(client, t[i].service, t[i].endpoint, t[i].json, strlen(t[i].json), &o,
                           &t[i].f) < 0) {
            fprintf(stderr, "fanout: out of memory\n");
            return 1;
        }
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        svc_future_wait(t[i].f, -1);
        failed += s_print(&t[i]) < 0;
        svc_future_destroy(&t[i].f);
        free(t[i].address);
    }
    fflush(stdout);
    fprintf(stderr, "fanout: %d calls, %d ok, %d failed in %lld ms\n", n, n - failed, failed,
            (long long)(svc_now_ms() - t0));
    free(t);
    svc_client_destroy(&client);
    return failed ? 1 : 0;
}
