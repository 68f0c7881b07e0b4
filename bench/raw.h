/*
 * bench/raw.h — the floor: a bare ZeroMQ DEALER/ROUTER echo.
 *
 * The same sockets and transports svc uses, with nothing on top — no
 * header, no codec, no event loop, no worker thread — so its round trips
 * per second are what this design could reach at best.
 */
#ifndef BM_RAW_H
#define BM_RAW_H

/*
 * svc-bench raw-server ADDR: binds a ROUTER at ADDR ("tcp://127.0.0.1:*"
 * picks a port), prints the bound endpoint on stdout, and echoes every
 * message back to its sender until SIGTERM or SIGINT.  Exit 0, 1 if ADDR
 * cannot be bound, 64 on bad usage.
 */
int bm_raw_server(int argc, char **argv);

/*
 * svc-bench raw-client ADDR [--seconds S] [--warmup S] [--size N]
 * [--wait MS] [--in-flight N] [--label NAME]: a DEALER at ADDR sends SIZE
 * bytes and waits for the echo, one at a time, or keeps N in flight (each
 * tagged in its first 4 bytes; window.h); prints the result lines
 * (measure.h).  Exit 0, 1 when the
 * server does not answer, 64 on bad usage.
 */
int bm_raw_client(int argc, char **argv);

#endif
