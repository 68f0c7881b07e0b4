/*
 * svc-bench — how close svc's unary calls come to bare ZeroMQ.
 *
 *   svc-bench raw-server ADDR              bare ROUTER echo
 *   svc-bench raw-client ADDR [flags]      bare DEALER round trips, 1 in flight
 *   svc-bench bench-echo [svc options]     svc service "bench.echo", Echo.Call
 *   svc-bench svc-client [flags]           svc_call by name, 1 in flight
 *   svc-bench hotpath [flags]              ns per call of tracing and endpoint stats
 *
 * Clients print one JSON object per line on stdout:
 *   {"bench":"svc-unary.tcp","value":...,"unit":"calls/s",...}
 * plus "-p50"/"-p99" latency lines in "us".  bench/run.sh runs the whole
 * comparison.  Exit codes: 0 ok, 1 failure (server unreachable, call
 * failed), 64 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "echo.h"
#include "hotpath.h"
#include "raw.h"
#include "storecall.h"
#include "svccall.h"
#include "stream.h"

static const struct {
    const char *name;                 /* subcommand */
    int (*run)(int argc, char **argv); /* gets argv from the subcommand on */
    const char *summary;              /* one line for --help */
} s_commands[] = {
    { "raw-server", bm_raw_server, "bare ZeroMQ ROUTER echo server" },
    { "raw-client", bm_raw_client, "bare ZeroMQ round trips per second, 1 in flight" },
    { "bench-echo", bm_echo_service, "svc service \"bench.echo\" with endpoint Echo.Call" },
    { "svc-client", bm_svc_client, "svc unary calls per second by name, 1 in flight" },
    { "stream-source", bm_stream_service, "svc service \"bench.stream\": Stream.Source, Stream.Sink" },
    { "stream-client", bm_stream_client, "svc stream messages per second, one way" },
    { "raw-source", bm_raw_source, "bare ZeroMQ PUSH sending as fast as it can" },
    { "raw-sink", bm_raw_sink, "bare ZeroMQ one-way messages per second (PULL)" },
    { "hotpath", bm_hotpath, "ns per call added by tracing and endpoint stats (in-process)" },
    { "store-client", bm_store_client, "stored Store.Write / Store.Read per second, N clients" },
    { "lmdb-raw", bm_lmdb_raw, "raw LMDB puts (fsync'd commits) / gets per second, the floor" },
    { NULL, NULL, NULL },
};

static void s_usage(FILE *f)
{
    fprintf(f, "usage: svc-bench COMMAND [flags]   (svc-bench COMMAND --help for its flags)\n\n");
    for (int i = 0; s_commands[i].name; i++)
        fprintf(f, "  %-12s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(f, "\nClients print JSON result lines on stdout.  Exit 0 ok, 1 failure, 64 usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 64;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    for (int i = 0; s_commands[i].name; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "svc-bench: unknown command \"%s\" (see svc-bench --help)\n", argv[1]);
    return 64;
}
