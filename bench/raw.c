/* bench/raw.c — bare ZeroMQ echo server and client.  See raw.h. */
#include "raw.h"
#include "args.h"
#include "measure.h"
#include "window.h"

#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = 1;
}

/* SIGTERM/SIGINT interrupt blocking ZeroMQ calls (no SA_RESTART) and set s_stop. */
static void s_catch_signals(void)
{
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Echoes frames as they come: a ROUTER sends each back to the routing id in front. */
static int s_echo_loop(void *sock)
{
    while (!s_stop) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(&f);
            if (e == EINTR)
                continue;
            fprintf(stderr, "svc-bench: raw-server receive failed: %s\n", zmq_strerror(e));
            return 1;
        }
        int more = zmq_msg_more(&f);
        if (zmq_msg_send(&f, sock, more ? ZMQ_SNDMORE : 0) < 0)
            zmq_msg_close(&f);
    }
    return 0;
}

int bm_raw_server(int argc, char **argv)
{
    static const char usage[] = "svc-bench raw-server ADDR\n\n"
        "Echoes every message on a ZeroMQ ROUTER bound at ADDR (e.g. tcp://127.0.0.1:*,\n"
        "ipc:///tmp/x.ipc) until SIGTERM; prints the bound endpoint on stdout.";
    bm_args a;
    int rc = bm_args_parse(argc, argv, 0, "ADDR", usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;

    s_catch_signals();
    int code = 1;
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_ROUTER) : NULL;
    if (!sock) {
        fprintf(stderr, "svc-bench: cannot create socket: %s\n", zmq_strerror(errno));
        goto out_term;
    }
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(sock, a.positional) < 0) {
        fprintf(stderr, "svc-bench: cannot bind \"%s\": %s\n", a.positional, zmq_strerror(errno));
        goto out_close;
    }
    char bound[512];
    size_t len = sizeof bound;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &len);
    printf("%s\n", bound);
    fflush(stdout);
    code = s_echo_loop(sock);
    if (strncmp(bound, "ipc://", 6) == 0 && bound[6] != '@')
        unlink(bound + 6);

out_close:
    zmq_close(sock);
out_term:
    if (ctx)
        zmq_ctx_term(ctx);
    return code;
}

/* The client's state for one round trip. */
typedef struct s_client {
    void *sock;     /* DEALER */
    char *out;      /* payload sent */
    char *in;       /* echo received */
    size_t size;    /* payload bytes */
} s_client;

static int s_roundtrip(void *arg)
{
    s_client *c = arg;
    if (zmq_send(c->sock, c->out, c->size, 0) < 0)
        return -errno;
    int n = zmq_recv(c->sock, c->in, c->size + 1, 0);
    if (n < 0)
        return -errno;
    return (size_t)n == c->size ? 0 : -EPROTO;
}

/* Window backend: the slot travels in the payload's first 4 bytes. */
static int s_start(void *arg, unsigned slot)
{
    s_client *c = arg;
    uint32_t tag = slot;
    memcpy(c->out, &tag, sizeof tag);
    return zmq_send(c->sock, c->out, c->size, 0) < 0 ? -errno : 0;
}

static int s_finish(void *arg, unsigned *slot)
{
    s_client *c = arg;
    int n = zmq_recv(c->sock, c->in, c->size + 1, 0);
    if (n < 0)
        return -errno;
    if ((size_t)n != c->size)
        return -EPROTO;
    uint32_t tag;
    memcpy(&tag, c->in, sizeof tag);
    *slot = tag;
    return 0;
}

static const bm_window_ops s_window_ops = { s_start, s_finish };

int bm_raw_client(int argc, char **argv)
{
    static const char usage[] = "svc-bench raw-client ADDR [flags]\n\n"
        "Round trips to a raw-server at ADDR, --in-flight at a time; prints JSON result\n"
        "lines raw-zmq.<transport> (calls/s) and raw-zmq-p50/-p99.<transport> (us).";
    bm_args a;
    int rc = bm_args_parse(argc, argv, BM_F_SECONDS | BM_F_WARMUP | BM_F_SIZE | BM_F_WAIT |
                           BM_F_INFLIGHT | BM_F_LABEL,
                           "ADDR", usage, &a);
    if (rc)
        return rc == 1 ? 0 : rc;

    if (a.in_flight > 1 && a.size < 4) {
        fprintf(stderr, "svc-bench: --in-flight above 1 needs --size 4 or more (the tag)\n");
        return 64;
    }
    int code = 1;
    s_client c = { .size = (size_t)a.size };
    c.out = malloc(c.size);
    c.in = malloc(c.size + 1);
    void *ctx = zmq_ctx_new();
    c.sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    if (!c.out || !c.in || !c.sock) {
        fprintf(stderr, "svc-bench: cannot set up raw-client: %s\n", zmq_strerror(errno));
        goto out_free;
    }
    memset(c.out, 'x', c.size);
    int zero = 0, wait = (int)a.wait_ms;
    zmq_setsockopt(c.sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c.sock, ZMQ_RCVTIMEO, &wait, sizeof wait);
    if (zmq_connect(c.sock, a.positional) < 0) {
        fprintf(stderr, "svc-bench: cannot connect to \"%s\": %s\n", a.positional,
                zmq_strerror(errno));
        goto out_free;
    }
    /* The first round trip waits for the connection (up to --wait). */
    rc = s_roundtrip(&c);
    bm_result r = { 0 };
    if (rc == 0 && a.in_flight == 1)
        rc = bm_measure(s_roundtrip, &c, a.warmup, a.seconds, &r);
    else if (rc == 0)
        rc = bm_measure_window(&s_window_ops, &c, (unsigned)a.in_flight, a.warmup, a.seconds, &r);
    if (rc < 0) {
        fprintf(stderr, "svc-bench: raw round trip to \"%s\" failed: %s\n", a.positional,
                rc == -EAGAIN ? "no answer in time" : zmq_strerror(-rc));
        bm_result_release(&r);
        goto out_free;
    }
    bm_report rep = { .bench = a.label ? a.label : "raw-zmq",
                      .transport = bm_transport(a.positional), .payload = a.size,
                      .in_flight = (unsigned)a.in_flight };
    bm_report_print(&rep, &r);
    bm_result_release(&r);
    code = 0;

out_free:
    if (c.sock)
        zmq_close(c.sock);
    if (ctx)
        zmq_ctx_term(ctx);
    free(c.out);
    free(c.in);
    return code;
}
