/*
 * bench/args.h — the flags shared by svc-bench's client commands.
 *
 * Every command accepts a subset of one flag table (a mask says which), so
 * a flag is spelled, checked and documented in one place.
 */
#ifndef BM_ARGS_H
#define BM_ARGS_H

#include <stdio.h>

/* Which flags a command takes (bits of bm_args_parse's mask). */
enum {
    BM_F_SECONDS  = 1 << 0,  /* --seconds S */
    BM_F_WARMUP   = 1 << 1,  /* --warmup S */
    BM_F_SIZE     = 1 << 2,  /* --size BYTES */
    BM_F_REGISTRY = 1 << 3,  /* --registry ADDR */
    BM_F_SERVICE  = 1 << 4,  /* --service NAME */
    BM_F_ENDPOINT = 1 << 5,  /* --endpoint NAME */
    BM_F_ADDRESS  = 1 << 6,  /* --address ADDR */
    BM_F_WAIT     = 1 << 7,  /* --wait MS */
    BM_F_LABEL    = 1 << 8,  /* --label NAME */
    BM_F_INFLIGHT = 1 << 9,  /* --in-flight N */
    BM_F_CODEC    = 1 << 10, /* --codec protobuf|json */
    BM_F_CLIENT   = 1 << 11, /* --client async|wire */
};

/* Parsed flags; unset ones keep their defaults. */
typedef struct bm_args {
    double seconds;        /* measured time, default 3 */
    double warmup;         /* unmeasured time before it, default 0.5 */
    long size;             /* payload bytes, default 64 */
    const char *registry;  /* registry address, NULL = libsvc's default; borrowed from argv */
    const char *service;   /* service called, default "bench.echo" */
    const char *endpoint;  /* endpoint called, default "Echo.Call" */
    const char *address;   /* node to call directly (skips the registry), or NULL */
    long wait_ms;          /* how long to wait for the server to answer at all, default 10000 */
    const char *label;     /* bench name in the result lines, NULL = the command's default */
    const char *positional; /* the one positional argument, if the command takes one */
    long in_flight;        /* requests in flight, default 1 */
    const char *codec;     /* "protobuf" (default) or "json": the bodies' content type */
    const char *client;    /* "async" (default: svc_call_cb) or "wire" (svcpipe.h), W > 1 */
} bm_args;

/*
 * Parses argv (argv[0] is the command name) into *a.  mask: the BM_F_* flags
 * allowed; positional: the name of the one required positional argument, or
 * NULL for none; usage: the command's synopsis line.  Returns 0 when the
 * command should run, 1 when --help was printed (exit 0), 64 on a usage
 * error (one line on stderr naming the bad flag or value).
 */
int bm_args_parse(int argc, char **argv, unsigned mask, const char *positional,
                  const char *usage, bm_args *a);

/* Prints usage plus the allowed flags to f. */
void bm_args_usage(FILE *f, unsigned mask, const char *usage);

/* "tcp", "ipc", "inproc" or "other": the transport of a ZeroMQ address. */
const char *bm_transport(const char *address);

#endif
