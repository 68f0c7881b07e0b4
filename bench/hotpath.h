/*
 * bench/hotpath.h — what tracing and endpoint statistics add to every call.
 *
 * Times, in one process, the steps docs/observability.md lists: the client
 * giving a call its trace ids (without and with wrappers), the server's
 * request bracket (trace ids from the header, log context, endpoint
 * counters and histogram), the histogram under two contending threads, and
 * protobuf-c unpacking the trace pairs of a header.  Each is compared with
 * a bare ZeroMQ inproc round trip measured in the same run, the cheapest
 * message exchange there is.
 */
#ifndef BM_HOTPATH_H
#define BM_HOTPATH_H

/*
 * svc-bench hotpath [--seconds S]: prints one JSON line per step,
 * {"bench":"hotpath.<step>","value":ns,"unit":"ns/op","against":
 * "raw-zmq-inproc","ratio":...}, after one for the round trip itself.
 * Exit 0, 1 when ZeroMQ fails, 64 on bad usage.
 */
int bm_hotpath(int argc, char **argv);

#endif
