/*
 * stored/reaper.c — the expiry and housekeeping thread.
 *
 * Every interval it queues a REAP op (records and locks whose expiry has
 * passed are deleted in the writer's next commit; reads already skip them)
 * and every KV_MAINTAIN_MS (1 s) it lets the backend clear stale LMDB reader
 * slots left by dead readers (mdb_reader_check).
 */
#include "stored.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_MAINTAIN_MS 1000

struct kv_reaper {
    kv_state *st;            /* the daemon */
    int interval_ms;         /* between reaps */
    pthread_t thread;
    pthread_mutex_t mu;      /* guards stop */
    pthread_cond_t cv;       /* stop asked (CLOCK_MONOTONIC) */
    bool stop;
};

static void *s_run(void *arg)
{
    kv_reaper *r = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    int64_t since_maint = 0;
    for (;;) {
        kv_timespec_add_us(&next, (int64_t)r->interval_ms * 1000);
        pthread_mutex_lock(&r->mu);
        while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &next) != ETIMEDOUT)
            ;
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return NULL;
        kv_op op = { .kind = KV_OP_REAP };
        int rc = kv_commit_run(r->st->commit, &op);
        if (rc && rc != SVC_ECLOSED)
            svc_warn("expiry sweep failed\terror=%s", svc_strerror(rc));
        else if (op.reaped)
            svc_debug("expired\tcount=%zu", op.reaped);
        since_maint += r->interval_ms;
        if (since_maint >= KV_MAINTAIN_MS) {
            since_maint = 0;
            r->st->b->kv->maintain(r->st->b);
        }
    }
}

kv_reaper *kv_reaper_start(kv_state *st, int interval_ms)
{
    kv_reaper *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->st = st;
    r->interval_ms = interval_ms;
    pthread_mutex_init(&r->mu, NULL);
    kv_cond_init_mono(&r->cv);
    int rc = pthread_create(&r->thread, NULL, s_run, r);
    if (rc) {
        svc_error_log("cannot start the expiry thread: %s", strerror(rc));
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return NULL;
    }
    return r;
}

void kv_reaper_stop(kv_reaper **rp)
{
    kv_reaper *r = rp ? *rp : NULL;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    *rp = NULL;
}
