/*
 * bench/echo.h — the svc side of the benchmark: service "bench.echo".
 *
 * Endpoint Echo.Call takes greeter.HelloRequest {name} and answers
 * greeter.HelloResponse {msg = name}: the payload comes back unchanged, so
 * a svc round trip carries the same bytes as a raw-zmq one, plus svc's
 * signature and header frames.
 */
#ifndef BM_ECHO_H
#define BM_ECHO_H

/*
 * svc-bench bench-echo [service options]: runs the service like any svc
 * service (svc/service.h: --name, --address, --registry, --workers, ...)
 * until SIGTERM.  Exit codes as svc_run; 64 on bad usage.
 */
int bm_echo_service(int argc, char **argv);

#endif
