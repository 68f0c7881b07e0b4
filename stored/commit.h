/*
 * stored/commit.h — group commit: one writer thread, many queued changes.
 *
 * The Store.* and Sync.* handlers queue a kv_op with a callback
 * (kv_commit_submit) and defer their answers (svc_ctx_defer), which the
 * callback sends: no thread is held per change, and a commit can take
 * every change in flight.  A thread of stored's own (the reaper) may
 * instead wait for its op (kv_commit_run).  The writer waits for the rest
 * of a burst (commit.c, s_gather), takes everything queued (up to
 * KV_COMMIT_BATCH ops), applies it as one backend batch — for LMDB one
 * write transaction — then marks every op done, wakes the waiters and
 * runs the callbacks.  Ops queued while a commit is on disk ride in the
 * next one, so concurrent writers share an fsync and a change is
 * acknowledged only once it is durable.
 */
#ifndef KV_COMMIT_H
#define KV_COMMIT_H

#include "backend.h"

#define KV_COMMIT_BATCH 4096   /* most ops in one commit */
#define KV_COMMIT_WINDOW_US 1000   /* longest wait for the rest of a burst of writes (commit.c) */

typedef struct kv_commit kv_commit;

/* Called on the writer thread after every commit (e.g. to wake lock waiters). */
typedef void (*kv_commit_hook)(void *arg, kv_op **ops, size_t n);

/* Starts the writer over b.  hook may be NULL.  NULL on failure (logged). */
kv_commit *kv_commit_start(kv_backend *b, kv_commit_hook hook, void *arg);

/*
 * Queues op, waits until it is applied and durable, returns op->rc.
 * SVC_ECLOSED once the writer is stopping.  Any thread but a handler's:
 * handlers submit and defer their answer (a waiting handler holds a thread).
 */
int kv_commit_run(kv_commit *c, kv_op *op);

/*
 * Queues op without waiting: once it is applied and durable (op->rc set),
 * done(op, arg) runs on the writer thread — briefly: the next commit waits
 * for it — and may free op.  0, or SVC_ECLOSED (done is not called) once
 * the writer is stopping.  Any thread.
 */
int kv_commit_submit(kv_commit *c, kv_op *op, void (*done)(kv_op *op, void *arg), void *arg);

/* Counters since start. */
void kv_commit_stats(kv_commit *c, unsigned long long *commits, unsigned long long *ops);

/* Applies what is queued, stops the writer, frees c; *c becomes NULL.  Safe on NULL. */
void kv_commit_stop(kv_commit **c);

#endif
