/*
 * bench/stream.h — stream messages per second, one way, against bare ZeroMQ.
 *
 * The svc side is a service "bench.stream" with a server stream
 * Stream.Source (sends SIZE-byte messages until cancelled, waiting for the
 * client's credit) and a client stream Stream.Sink (counts what it gets);
 * stream-client measures either direction.  The floor is a bare ZeroMQ
 * PUSH/PULL pair moving SIZE-byte single-frame messages (raw-source,
 * raw-sink): what the transport does with nothing on top.
 *
 * Result lines, one JSON object each on stdout:
 *   {"bench":"svc-stream-down.tcp","value":...,"unit":"msgs/s",...}
 *   {"bench":"svc-stream-up.tcp",...}   {"bench":"raw-oneway.tcp",...}
 */
#ifndef BM_STREAM_H
#define BM_STREAM_H

/* svc-bench stream-source [service options]: the svc service, until SIGTERM. */
int bm_stream_service(int argc, char **argv);

/*
 * svc-bench stream-client [--service S] [--endpoint Stream.Source|Stream.Sink]
 * [--address A] [--registry R] [--seconds S] [--warmup S] [--size N] [--wait MS]:
 * opens one stream and moves messages for warmup + seconds; prints the rate
 * of the measured part.  Exit 0, 1 when the stream fails, 64 on usage.
 */
int bm_stream_client(int argc, char **argv);

/* svc-bench raw-source ADDR [--size N]: PUSH bound at ADDR, sends until SIGTERM. */
int bm_raw_source(int argc, char **argv);

/* svc-bench raw-sink ADDR [--seconds S] [--warmup S] [--size N]: PULL, measures. */
int bm_raw_sink(int argc, char **argv);

#endif
