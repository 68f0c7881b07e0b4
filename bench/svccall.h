/*
 * bench/svccall.h — svc unary calls, one in flight, through the normal path.
 *
 * svc_call by service name: the client resolves the name through the
 * registry once and then serves it from its cached view, so the steady
 * state is selector + encode + send + wait + decode, with no registry
 * round trip.
 */
#ifndef BM_SVCCALL_H
#define BM_SVCCALL_H

/*
 * svc-bench svc-client [--registry ADDR] [--service NAME] [--endpoint NAME]
 * [--address ADDR] [--seconds S] [--warmup S] [--size N] [--wait MS]
 * [--in-flight N] [--codec protobuf|json] [--client async|wire] [--label NAME]:
 * calls the endpoint (default bench.echo Echo.Call) with a
 * greeter.HelloRequest whose name is SIZE bytes, expecting a
 * greeter.HelloResponse whose msg is at least as long (an echo, or
 * greeter's "Hello <name>").  Waits up to --wait for the service to appear
 * in the registry and answer, then prints the result lines (measure.h) as
 * svc-unary.<transport of the node that answered>.  With --in-flight above
 * 1 the calls go through svc_call_cb (svcasync.h), or with --client wire
 * are pipelined to that node by the bare wire encoder (svcpipe.h).
 * Exit 0, 1 when a call
 * fails (the error goes to stderr as JSON), 64 on bad usage.
 */
int bm_svc_client(int argc, char **argv);

#endif
