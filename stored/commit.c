/*
 * stored/commit.c — the group-commit writer (see commit.h).
 */
#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/error.h"
#include "svc/log.h"

struct kv_commit {
    kv_backend *b;            /* applies batches */
    kv_commit_hook hook;      /* after each commit, or NULL */
    void *hook_arg;
    pthread_t thread;         /* the writer */
    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t work_cv;   /* writer: ops queued or stop */
    kv_op *head, *tail;       /* queued ops */
    size_t n_queued;          /* ops in that queue */
    size_t want;              /* the last batch's size: how many to wait for (s_gather) */
    int64_t last_us;          /* how long the last batch took to apply */
    bool stop;                /* no new ops; writer exits when the queue is empty */
    unsigned long long commits, ops;  /* stats */
};

/*
 * Waits (mu held) for the first op, then — when the last batch was larger
 * than what is queued — for as many ops as that batch had, at most as long
 * as that batch took to commit (and KV_COMMIT_WINDOW_US).  Clients that
 * wait for their answer before writing again come back in a burst after
 * each commit; a commit that starts at the first of them would carry one
 * or two and leave the rest for the next fsync.  Waiting for the burst
 * keeps the batch whole: one fsync for all (PostgreSQL's commit_delay and
 * MySQL's binlog_group_commit_sync_delay, sized by the load itself).  A
 * lone writer (last batch 1) never waits; fewer writers than last time
 * cost one window, after which the batch size has followed them.
 */
static void s_gather(kv_commit *c)
{
    while (!c->head && !c->stop)
        pthread_cond_wait(&c->work_cv, &c->mu);
    if (c->stop || c->n_queued >= c->want)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    kv_timespec_add_us(&until, c->last_us < KV_COMMIT_WINDOW_US ? c->last_us : KV_COMMIT_WINDOW_US);
    while (c->n_queued < c->want && !c->stop)
        if (pthread_cond_timedwait(&c->work_cv, &c->mu, &until) == ETIMEDOUT)
            break;
}

static void *s_writer(void *arg)
{
    kv_commit *c = arg;
    kv_op **batch = malloc(KV_COMMIT_BATCH * sizeof *batch);
    if (!batch) {
        svc_error_log("store writer: out of memory");
        abort();
    }
    pthread_mutex_lock(&c->mu);
    for (;;) {
        s_gather(c);
        if (!c->head)
            break;
        size_t n = 0;
        while (c->head && n < KV_COMMIT_BATCH) {
            batch[n++] = c->head;
            c->head = c->head->next;
        }
        if (!c->head)
            c->tail = NULL;
        c->n_queued -= n;
        c->want = n;
        pthread_mutex_unlock(&c->mu);

        int64_t now = kv_now_ms();
        for (size_t i = 0; i < n; i++)
            batch[i]->now = now;
        int64_t t0 = kv_mono_us();
        c->b->kv->apply(c->b, batch, n);
        int64_t took = kv_mono_us() - t0;
        if (c->hook)
            c->hook(c->hook_arg, batch, n);

        pthread_mutex_lock(&c->mu);
        /* Each waiter sleeps on its own condition: wake exactly the acked ones. */
        size_t n_cb = 0;
        for (size_t i = 0; i < n; i++) {
            if (batch[i]->on_done) {
                batch[n_cb++] = batch[i];   /* keeps the callbacks' ops, in order */
                continue;
            }
            batch[i]->done = true;
            pthread_cond_signal(batch[i]->cv);
        }
        c->commits++;
        c->ops += n;
        c->last_us = took;
        pthread_mutex_unlock(&c->mu);
        /* Callbacks outside the lock: they answer (and may free their op). */
        for (size_t i = 0; i < n_cb; i++)
            batch[i]->on_done(batch[i], batch[i]->on_done_arg);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    free(batch);
    return NULL;
}

kv_commit *kv_commit_start(kv_backend *b, kv_commit_hook hook, void *arg)
{
    kv_commit *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->b = b;
    c->hook = hook;
    c->hook_arg = arg;
    c->want = 1;
    pthread_mutex_init(&c->mu, NULL);
    kv_cond_init_mono(&c->work_cv);
    int rc = pthread_create(&c->thread, NULL, s_writer, c);
    if (rc) {
        svc_error_log("cannot start the store writer: %s", strerror(rc));
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->work_cv);
        free(c);
        return NULL;
    }
    return c;
}

/* Queues op (mu held); false once stopping. */
static bool s_queue(kv_commit *c, kv_op *op)
{
    if (c->stop)
        return false;
    op->done = false;
    op->next = NULL;
    op->rc = 0;
    if (c->tail)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    /* The writer waits for the first op, then for `want` (s_gather). */
    if (++c->n_queued == 1 || c->n_queued >= c->want)
        pthread_cond_signal(&c->work_cv);
    return true;
}

int kv_commit_submit(kv_commit *c, kv_op *op, void (*done)(kv_op *op, void *arg), void *arg)
{
    op->cv = NULL;
    op->on_done = done;
    op->on_done_arg = arg;
    pthread_mutex_lock(&c->mu);
    bool queued = s_queue(c, op);
    pthread_mutex_unlock(&c->mu);
    return queued ? 0 : SVC_ECLOSED;
}

int kv_commit_run(kv_commit *c, kv_op *op)
{
    pthread_cond_t cv;
    pthread_cond_init(&cv, NULL);
    op->cv = &cv;
    op->on_done = NULL;
    pthread_mutex_lock(&c->mu);
    if (!s_queue(c, op)) {
        pthread_mutex_unlock(&c->mu);
        pthread_cond_destroy(&cv);
        return SVC_ECLOSED;
    }
    while (!op->done)
        pthread_cond_wait(&cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&cv);
    op->cv = NULL;
    return op->rc;
}

void kv_commit_stats(kv_commit *c, unsigned long long *commits, unsigned long long *ops)
{
    pthread_mutex_lock(&c->mu);
    *commits = c->commits;
    *ops = c->ops;
    pthread_mutex_unlock(&c->mu);
}

void kv_commit_stop(kv_commit **cp)
{
    kv_commit *c = cp ? *cp : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->work_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->work_cv);
    free(c);
    *cp = NULL;
}
