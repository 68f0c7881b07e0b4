/* brokerd/commit.c — the group-commit thread. */
#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct brk_commit {
    brk_batch_fn fn;            /* applies a batch */
    void *ctx;                  /* for fn */
    pthread_t thread;
    pthread_mutex_t mu;         /* queue, stop */
    pthread_cond_t cv;          /* ops queued or stop */
    brk_op *head, *tail;        /* queued ops */
    bool stop;
    atomic_ullong batches, ops; /* stats */
};

static void s_fail(brk_op *op)
{
    brk_op_fail(op, 503, "svc.broker is shutting down");
    op->done(op);
}

static void *s_thread(void *arg)
{
    brk_commit *c = arg;
    brk_op **batch = malloc(BRK_COMMIT_MAX_BATCH * sizeof *batch);
    int64_t wait_ms = -1;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (!c->head && !c->stop && wait_ms != 0) {
            if (wait_ms < 0) {
                pthread_cond_wait(&c->cv, &c->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += wait_ms / 1000;
                ts.tv_nsec += (wait_ms % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            }
        }
        if (c->stop) {
            brk_op *q = c->head;
            c->head = c->tail = NULL;
            pthread_mutex_unlock(&c->mu);
            while (q) {
                brk_op *nx = q->next;
                s_fail(q);
                q = nx;
            }
            break;
        }
        size_t n = 0;
        while (c->head && n < BRK_COMMIT_MAX_BATCH && batch) {
            batch[n++] = c->head;
            c->head = c->head->next;
        }
        if (!c->head)
            c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        if (!batch)
            break;
        for (size_t i = 0; i < n; i++)
            batch[i]->next = NULL;
        wait_ms = c->fn(c->ctx, batch, n);
        if (n) {
            atomic_fetch_add(&c->batches, 1);
            atomic_fetch_add(&c->ops, n);
        }
    }
    /* The batch function's own parked ops (waiting consumes) are failed by it at close. */
    free(batch);
    return NULL;
}

int brk_commit_start(brk_commit **out, brk_batch_fn fn, void *ctx)
{
    brk_commit *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fn = fn;
    c->ctx = ctx;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&c->thread, NULL, s_thread, c);
    if (rc) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return -rc;
    }
    *out = c;
    return 0;
}

void brk_commit_submit(brk_commit *c, brk_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->stop) {
        pthread_mutex_unlock(&c->mu);
        s_fail(op);
        return;
    }
    if (c->tail)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

uint64_t brk_commit_batches(const brk_commit *c)
{
    return atomic_load(&((brk_commit *)c)->batches);
}

uint64_t brk_commit_ops(const brk_commit *c)
{
    return atomic_load(&((brk_commit *)c)->ops);
}

void brk_commit_stop(brk_commit **cp)
{
    brk_commit *c = *cp;
    if (!c)
        return;
    *cp = NULL;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
