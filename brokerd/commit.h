/*
 * brokerd/commit.h — group commit: one thread applies every op queued
 * since its last turn in one batch (one storage transaction, one fsync),
 * then completes them all.  Many concurrent publishes therefore share one
 * commit.  The batch function decides what each op does.
 */
#ifndef BRK_COMMIT_H
#define BRK_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define BRK_COMMIT_MAX_BATCH 4096   /* ops per batch at most */

/*
 * Applies n ops (n may be 0: a timer turn) and completes those it is done
 * with.  Returns the milliseconds after which it wants another turn even
 * when nothing is queued, or -1 for "only when ops come".
 */
typedef int64_t (*brk_batch_fn)(void *ctx, brk_op **ops, size_t n);

typedef struct brk_commit brk_commit;

/* Starts the thread.  0 and *out, or a negative errno. */
int brk_commit_start(brk_commit **out, brk_batch_fn fn, void *ctx);

/* Queues op for the next batch.  Thread-safe.  After stop began, fails it with 503. */
void brk_commit_submit(brk_commit *c, brk_op *op);

/* Ops applied and batches run so far. */
uint64_t brk_commit_batches(const brk_commit *c);
uint64_t brk_commit_ops(const brk_commit *c);

/* Finishes the batch in progress, fails queued ops with 503, joins; *c = NULL. */
void brk_commit_stop(brk_commit **c);

#endif
