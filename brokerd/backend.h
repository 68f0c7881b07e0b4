/*
 * brokerd/backend.h — where event streams are kept: the storage interface.
 *
 * Every event-stream operation is an asynchronous brk_op: the API layer
 * (brokerd/api.c) fills in the request, submits it and waits; the backend
 * completes it exactly once, from any thread, by calling op->done — for a
 * publish or an acknowledgement only after the change is durable.  The
 * embedded backend (brokerd/lmdb.c) applies the ops queued at one moment
 * in one LMDB transaction (group commit, brokerd/commit.h).  A NATS
 * JetStream backend maps the same ops one to one: PUBLISH → a JetStream
 * publish with Nats-Msg-Id, CONSUME → a pull-consumer fetch, ACK →
 * AckSync/Nak(delay), STREAMS/STREAM_INFO → stream and consumer info.
 */
#ifndef BRK_BACKEND_H
#define BRK_BACKEND_H

#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "broker.pb-c.h"

typedef enum brk_op_kind {
    BRK_OP_PUBLISH = 1,    /* req PublishRequest,      rsp PublishResponse */
    BRK_OP_CREATE_STREAM,  /* req CreateStreamRequest, rsp StreamInfo */
    BRK_OP_STREAMS,        /* req StreamsRequest,      rsp StreamsResponse */
    BRK_OP_STREAM_INFO,    /* req StreamInfoRequest,   rsp StreamInfo */
    BRK_OP_CONSUME,        /* req ConsumeRequest,      rsp ConsumeResponse */
    BRK_OP_ACK,            /* req AckRequest,          rsp AckResponse */
} brk_op_kind;

typedef struct brk_op brk_op;

struct brk_op {
    brk_op_kind kind;              /* what to do */
    const ProtobufCMessage *req;   /* the request; borrowed until done */
    ProtobufCMessage *rsp;         /* initialised response; the backend fills it with malloc'd data */
    int code;                      /* 0, or the HTTP-like error code when it failed */
    char detail[256];              /* the error, one line, when code != 0 */
    int64_t wait_until;            /* CONSUME: unix ms until which it may wait for events */
    int stage;                     /* the backend's own progress marker (0 when submitted) */
    void (*done)(brk_op *op);      /* called once when finished (any thread) */
    void *arg;                     /* for done */
    brk_op *next;                  /* the backend's queue link */
};

typedef struct brk_backend brk_backend;

typedef struct brk_backend_vt {
    const char *name;                              /* "lmdb", ... */
    void (*submit)(brk_backend *b, brk_op *op);    /* takes op; completes it exactly once */
    uint64_t (*batches)(const brk_backend *b);     /* commits so far (stats) */
    uint64_t (*ops)(const brk_backend *b);         /* operations carried by them */
    void (*close)(brk_backend **b);                /* fails queued ops with 503, frees; *b = NULL */
} brk_backend_vt;

struct brk_backend {
    const brk_backend_vt *vt;      /* the implementation */
};

/* Settings of the embedded backend. */
typedef struct brk_lmdb_cfg {
    const char *dir;               /* data directory, created if missing */
    size_t map_size;               /* LMDB map size, bytes */
    uint32_t max_payload;          /* default and upper limit of a stream's max_msg_size */
} brk_lmdb_cfg;

/*
 * Opens (creating if needed) the LMDB event store in cfg->dir and starts
 * its commit thread.  Returns 0 and *out, or a negative errno with the
 * reason logged (directory not writable, locked by another brokerd, ...).
 */
int brk_lmdb_open(brk_backend **out, const brk_lmdb_cfg *cfg);

/* Sets op->code and op->detail; returns code. */
int brk_op_fail(brk_op *op, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
