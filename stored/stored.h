/*
 * stored/stored.h — what the parts of stored share.
 *
 *   main.c     flags, start and stop order
 *   store.c    Store.* endpoints: validation, then backend reads or queued writes
 *   sync.c     Sync.* endpoints: locks with fencing tokens, leader election, Observe
 *   commit.c   the group-commit writer
 *   reaper.c   expiry and housekeeping thread
 *   lmdb.c     the embedded backend
 *   clock.c    the clocks its threads wait on
 */
#ifndef KV_STORED_H
#define KV_STORED_H

#include "svc/svc.h"
#include "backend.h"
#include "commit.h"

typedef struct kv_sync kv_sync;

/* The daemon's state, handed to handlers through svc_ctx_data(). */
typedef struct kv_state {
    svc_service *svc;     /* the service */
    kv_backend *b;        /* records and locks */
    kv_commit *commit;    /* the writer every change goes through */
    kv_sync *sync;        /* lock waiters and leader observers */
} kv_state;

/* One endpoint of a table ending in { NULL }. */
typedef struct kv_endpoint {
    const char *name;                          /* "Store.Read" */
    svc_handler_fn fn;                         /* unary handler */
    svc_stream_fn sfn;                         /* or stream handler */
    const ProtobufCMessageDescriptor *req;     /* request type */
    const ProtobufCMessageDescriptor *rsp;     /* response / stream message type */
    bool inline_;                              /* never blocks: run on the loop thread */
} kv_endpoint;

extern const kv_endpoint kv_store_endpoints[];  /* store.c */
extern const kv_endpoint kv_sync_endpoints[];   /* sync.c */

/*
 * Validates a lock id / owner-like name: 1..KV_MAX_LOCK_ID bytes (owner may
 * be empty when empty_ok), no control characters.  Answers 400 naming
 * `what` and returns its code; 0 when fine.
 */
int kv_check_text(svc_ctx *ctx, const char *what, const char *v, size_t max, bool empty_ok);

/* A backend/commit error code as an answer: its status code, and its text into msg. */
int kv_error_code(int rc, const char *what, char *msg, size_t n);

/* Answers a backend/commit error code as an svc error (507, 503, 500; 0 stays 0). */
int kv_answer(svc_ctx *ctx, int rc, const char *what);

/* sync.c: waiters and observers. */
kv_sync *kv_sync_new(kv_state *st);
/* Commit hook: wakes lock waiters and leader observers after lock changes. */
void kv_sync_committed(void *arg, kv_op **ops, size_t n);
/* Starts the observer thread; 0 or a negative code. */
int kv_sync_start(kv_sync *s);
/*
 * Stops the thread, ends every Observe stream and answers every waiting
 * acquire 503; from then on a lock call that would wait is answered 503.
 * Before kv_commit_stop: the writer's last callbacks then find it stopped.
 * Safe on NULL, and twice.
 */
void kv_sync_stop(kv_sync *s);
/* kv_sync_stop, then frees; *s becomes NULL.  After kv_commit_stop. */
void kv_sync_destroy(kv_sync **s);

/* reaper.c: every interval_ms queues a REAP op; every second backend maintenance. */
typedef struct kv_reaper kv_reaper;
kv_reaper *kv_reaper_start(kv_state *st, int interval_ms);
void kv_reaper_stop(kv_reaper **r);

#endif
