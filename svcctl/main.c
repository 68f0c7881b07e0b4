/*
 * svcctl — query and drive svc from the command line.
 *
 *   svcctl [--registry ADDR] [-o json] [--timeout MS] VERB [ARGS]
 *
 * Results go to stdout, diagnostics to stderr.  `svcctl --help` lists the
 * verbs; `svcctl VERB --help` explains one.
 */
#include "svcctl.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ctl_verb s_verbs[] = {
    { "services", ctl_services, "", "list registered services, one name per line", NULL },
    { "service", ctl_service, "NAME",
      "show a service: versions, nodes (id, address, metadata), endpoints with fields", NULL },
    { "call", ctl_call, "NAME ENDPOINT [JSON|-]",
      "call an endpoint with a JSON request (from stdin when absent or -), print the answer",
      "  --metadata K=V   send metadata with the call (repeatable)\n"
      "  --address ADDR   call this node directly, bypassing the registry\n"
      "  --version GLOB   only nodes of a matching version, e.g. '2.*'\n"
      "  --node-meta K=G  only nodes whose metadata match (comma-separated K=GLOB)\n"
      "  --timeout MS     deadline of the call (default 30000)\n"
      "  --trace          print the call's trace id on stderr first, as trace=ID (the\n"
      "                   services log it as trace=ID); taken from --metadata\n"
      "                   Micro-Trace-Id=ID when given\n"
      "The answer is printed as JSON on stdout.  An error is printed on stderr as\n"
      "go-micro error JSON {\"id\",\"code\",\"detail\",\"status\"} and the exit code is 1.\n" },
    { "health", ctl_health, "NAME", "call Debug.Health on every node: NODE ADDRESS STATUS",
      "Exit code 1 when any node is not ok.\n" },
    { "stats", ctl_stats, "NAME",
      "call Debug.Stats on every node: started, uptime, memory, threads, requests, errors",
      "Under the node table, one table per node: ENDPOINT REQUESTS ERRORS INFLIGHT P50 P99\n"
      "(latency of unary calls since the node started).  -o json: each node's \"endpoints\".\n" },
    { "watch", ctl_watch, "[NAME]",
      "print registry changes (create, update, delete) as they happen, until interrupted", NULL },
    { "publish", ctl_publish, "TOPIC JSON",
      "publish a JSON message to a topic (pub/sub), or with --stream durably to a stream",
      "  --stream NAME    publish to event stream NAME instead; prints the sequence number\n"
      "                   once brokerd committed it (TOPIC is kept with the event)\n"
      "  --id ID          stream only: publisher message id, stored once per dedup window\n"
      "  --metadata K=V   metadata sent with the message (repeatable)\n"
      "Exit code 65 when JSON does not parse.\n" },
    { "subscribe", ctl_subscribe, "PATTERN",
      "print messages published to topics matching PATTERN (* one token, > the rest)",
      "  --queue G        join queue group G: each message goes to one member of the group\n"
      "  --count N        exit after N messages (default: until interrupted)\n"
      "Each message is printed as a line: TOPIC BODY (-o json: one JSON object a line).\n" },
    { "streams", ctl_streams, "", "list event streams: messages, bytes, first/last sequence, consumers",
      NULL },
    { "stream-info", ctl_stream_info, "NAME",
      "show a stream's limits and each consumer group's position, pending and redelivered", NULL },
    { "consume", ctl_consume, "STREAM --group G",
      "print the events of STREAM as group G and acknowledge them, until interrupted",
      "  --group G        durable consumer name (required)\n"
      "  --count N        exit after N events\n"
      "  --once           one fetch: print what is ready now, acknowledge it, exit\n"
      "  --batch N        events per fetch (default 100)\n"
      "  --start WHERE    a new group starts at: beginning (default), end, seq=N, time=UNIX_MS\n"
      "  --ack-wait MS    a new group's redelivery delay for unacknowledged events\n"
      "  --max-deliver N  a new group's deliveries before an event goes to STREAM.dlq\n"
      "  --no-ack         print without acknowledging (events are delivered again later)\n"
      "Each event is printed as a line: SEQ DELIVERY BODY (-o json: one JSON object a line).\n" },
    { "stream", ctl_stream, "NAME ENDPOINT",
      "open a stream: JSON request lines on stdin, JSON answer lines on stdout",
      "  --metadata K=V   send metadata with the stream open (repeatable)\n"
      "  --address ADDR   open it on this node directly, bypassing the selector\n"
      "  --version GLOB   only nodes of a matching version, e.g. '2.*'\n"
      "  --node-meta K=G  only nodes whose metadata match (comma-separated K=GLOB)\n"
      "  --kind KIND      server, client or bidi (default: the endpoint's stream_kind\n"
      "                   metadata in the registry)\n"
      "Each stdin line is one request (a JSON object; blank lines are skipped); end\n"
      "of stdin half-closes the stream.  A server stream takes only the first line\n"
      "({} when stdin is empty).  Each message from the server is printed as one\n"
      "JSON line.  A clean end exits 0; an error is printed on stderr as go-micro\n"
      "error JSON and exits 1; an invalid input line cancels the stream and exits 65.\n" },
    { "ps", ctl_ps, "[NAME]",
      "supervised instances: SERVICE INSTANCE PID STATE UPTIME RESTARTS HEALTH",
      "States: stopped starting ready unhealthy stopping backoff failed.\n"
      "The supervisor is found through --supervisor, SVC_SUPERVISOR_ADDRESS, the socket\n"
      "$SVC_STATE_DIR/supervisor.sock (default /var/lib/svc), else by name in the registry.\n" },
    { "start", ctl_start, "NAME", "start a supervised service's instances (a failed one too)", NULL },
    { "stop", ctl_stop, "NAME", "stop a supervised service: stop signal, SIGKILL after stop_timeout", NULL },
    { "restart", ctl_restart, "NAME", "stop and start again every instance of a supervised service", NULL },
    { "reload", ctl_reload, "",
      "re-read the manifests: start new services, stop removed ones, restart changed ones",
      "A manifest with an error rejects the whole reload (FILE:LINE: reason, exit 1);\n"
      "the running services are left as they were.  SIGHUP to the supervisor does the same.\n" },
    { "logs", ctl_logs, "[-f] [-n N] NAME",
      "the last N (default 10) lines a service wrote on stdout/stderr; -f follows",
      "Lines: TIME SERVICE[INSTANCE] out|err|sup: TEXT (sup: the supervisor's own events).\n" },
    { "store", ctl_store, "read|write|delete|list|databases|tables [ARGS]",
      "read, write, delete and list records of svc.store; list databases and tables",
      "  store read KEY | --prefix P [--suffix S]   print the values (-v: KEY VALUE EXPIRY table)\n"
      "  store write KEY [VALUE|-]                 value from the argument or stdin\n"
      "  store delete KEY\n"
      "  store list [--prefix P] [--suffix S]      one key per line\n"
      "  store databases | store tables [--database D]\n"
      "  --database D, --table T   scope (default \"default\")\n"
      "  --limit N, --offset N     page through read and list answers\n"
      "  --ttl DURATION            write: expire after 500ms, 10s, 5m, 1h ...\n"
      "  --content-type CT         write: default application/json if VALUE is JSON, else text/plain\n"
      "  --metadata K=V            write: record metadata (repeatable)\n"
      "  -v, --verbose             read: KEY VALUE EXPIRY table\n"
      "-o json prints records with JSON values as JSON, text as strings, other bytes as base64.\n" },
    { "lock", ctl_lock, "ID [--ttl D] [--wait D]",
      "take lock ID (lease --ttl, default 10s), waiting up to --wait; print the fencing token", NULL },
    { "unlock", ctl_unlock, "ID TOKEN", "release lock ID held with TOKEN", NULL },
    { "locks", ctl_locks, "", "list held locks and leaderships: ID OWNER TOKEN EXPIRY", NULL },
    { "leader", ctl_leader, "NAME | campaign NAME CANDIDATE | resign NAME TERM",
      "show who leads election NAME (NAME LEADER TERM EXPIRY); campaign (prints the term) or resign",
      "  --ttl D    campaign: leadership lease (default 10s; renew with Sync.Refresh)\n"
      "  --wait D   campaign: wait this long to be elected\n" },
    { NULL, NULL, NULL, NULL, NULL },
};

void ctl_err(const char *fmt, ...)
{
    va_list ap;
    fputs("svcctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const ctl_verb *ctl_verb_find(const char *name)
{
    for (const ctl_verb *v = s_verbs; v->name; v++)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}

static void s_verb_usage(FILE *f, const ctl_verb *v)
{
    fprintf(f, "usage: svcctl [global options] %s %s\n\n%s\n", v->name, v->args, v->summary);
    if (v->help)
        fprintf(f, "\n%s", v->help);
}

bool ctl_usage(const ctl_verb *v, int argc, char **argv, int min, int max, int *code)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_verb_usage(stdout, v);
            *code = 0;
            return true;
        }
    }
    int n = argc - 1;
    if (n < min || n > max) {
        ctl_err("%s: expected %s", v->name, *v->args ? v->args : "no arguments");
        s_verb_usage(stderr, v);
        *code = EXIT_USAGE;
        return true;
    }
    return false;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: svcctl [--registry ADDR] [-o json] [--timeout MS] [--supervisor ADDR] VERB [ARGS]\n"
            "\n"
            "Query and drive svc services.\n"
            "\n"
            "verbs:\n");
    int w = 0;
    for (const ctl_verb *v = s_verbs; v->name; v++)
        if ((int)strlen(v->name) > w)
            w = (int)strlen(v->name);
    for (const ctl_verb *v = s_verbs; v->name; v++)
        fprintf(f, "  %-*s %-24s %s\n", w, v->name, v->args, v->summary);
    fprintf(f,
            "\n"
            "global options:\n"
            "  --registry ADDR   registry address (env SVC_REGISTRY_ADDRESS, default %s)\n"
            "  -o, --output FMT  table (default) or json\n"
            "  --timeout MS      deadline of each request (default 5000; call: 30000)\n"
            "  --supervisor ADDR supervisor control address (env SVC_SUPERVISOR_ADDRESS)\n"
            "  --help            show this help; `svcctl VERB --help` for one verb\n"
            "\n"
            "exit codes: 0 ok, 1 failure, 64 usage error, 65 invalid input data\n",
            SVC_DEFAULT_REGISTRY);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "registry", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, 'o' },
        { "timeout", required_argument, NULL, 't' },
        { "supervisor", required_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    ctl_opts o = { .registry = NULL, .json = false, .timeout_ms = 0, .supervisor = NULL };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            o.registry = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") == 0) {
                o.json = true;
            } else if (strcmp(optarg, "table") != 0) {
                ctl_err("unknown output format \"%s\": want table or json", optarg);
                return EXIT_USAGE;
            }
            break;
        case 't': {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (end == optarg || *end || t <= 0 || t > 3600000) {
                ctl_err("invalid timeout \"%s\": want milliseconds from 1 to 3600000", optarg);
                return EXIT_USAGE;
            }
            o.timeout_ms = (int)t;
            break;
        }
        case 'S':
            o.supervisor = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        case ':':
            ctl_err("option \"%s\" needs a value", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            ctl_err("unknown option \"%s\" (see svcctl --help)", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        s_usage(stderr);
        return EXIT_USAGE;
    }
    const ctl_verb *v = ctl_verb_find(argv[optind]);
    if (!v) {
        ctl_err("unknown verb \"%s\" (see svcctl --help)", argv[optind]);
        return EXIT_USAGE;
    }
    if (o.registry && strncmp(o.registry, "tcp://", 6) != 0 && strncmp(o.registry, "ipc://", 6) != 0) {
        ctl_err("invalid registry address \"%s\": want tcp://HOST:PORT or ipc://PATH", o.registry);
        return EXIT_USAGE;
    }
    /* Quiet libsvc's own logging unless asked: svcctl reports errors itself. */
    if (!getenv("SVC_LOG_LEVEL"))
        svc_log_set_level(SVC_LOG_ERROR);
    optind++;
    return v->run(&o, argc - optind + 1, argv + optind - 1);
}
