/*
 * stored/sync.c — the Sync.* endpoints: locks with fencing tokens, leaders.
 *
 * A lock is a lease: granted with the next store revision as its fencing
 * token, durable like any write (so a restart of stored does not hand a
 * held lock to a second client), and free again when its holder unlocks it
 * or lets its TTL pass without Sync.Refresh.  Lock with wait_ms > 0 blocks
 * its worker until the lock is released (woken by the commit hook) or the
 * holder's lease ends, whichever is first, bounded by wait_ms, the caller's
 * deadline and the service stopping.
 *
 * An election NAME is lock "leader/NAME" whose owner is the candidate; the
 * term is the lock's token.  Observe streams are served by one thread that
 * looks at every observed election when a lock changes and at least every
 * KV_OBSERVE_TICK_MS (to see leases that simply ran out).
 */
#include "stored.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_OBSERVE_TICK_MS 100
#define KV_MAX_OBSERVERS   4096

typedef struct s_observer {
    svc_stream *stream;       /* owned reference */
    char *name;               /* election, owned */
    char *leader;             /* last sent, owned; NULL before the first */
    int64_t term;             /* last sent */
    struct s_observer *next;
} s_observer;

struct kv_sync {
    kv_state *st;             /* the daemon */
    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t cv;        /* lock changed (CLOCK_REALTIME) */
    unsigned long long gen;   /* bumps at every lock change */
    s_observer *observers;
    size_t n_observers;
    pthread_t thread;         /* serves observers */
    bool running, stop;
};

/* ---- waiting ----------------------------------------------------------------- */

void kv_sync_committed(void *arg, kv_op **ops, size_t n)
{
    kv_sync *s = arg;
    bool changed = false;
    for (size_t i = 0; i < n && !changed; i++)
        changed = (ops[i]->kind == KV_OP_LOCK && ops[i]->rc == 0) ||
                  (ops[i]->kind == KV_OP_REAP && ops[i]->reaped > 0);
    if (!changed)
        return;
    pthread_mutex_lock(&s->mu);
    s->gen++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits until the lock generation moves past gen or unix ms `until`. */
static void s_wait(kv_sync *s, unsigned long long gen, int64_t until)
{
    struct timespec ts = { .tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000 };
    svc_handler_blocking();
    pthread_mutex_lock(&s->mu);
    while (s->gen == gen && !s->stop && kv_now_ms() < until)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->mu);
}

static unsigned long long s_gen(kv_sync *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned long long g = s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

static int s_ttl(svc_ctx *ctx, int64_t *ttl)
{
    if (*ttl == 0)
        *ttl = KV_DEFAULT_LOCK_TTL_MS;
    if (*ttl < KV_MIN_LOCK_TTL_MS || *ttl > KV_MAX_LOCK_TTL_MS)
        return svc_ctx_error(ctx, 400, "ttl_ms %lld is outside %d .. %lld", (long long)*ttl,
                             KV_MIN_LOCK_TTL_MS, (long long)KV_MAX_LOCK_TTL_MS);
    return 0;
}

/*
 * Acquires lock id for owner, waiting up to wait_ms.  0 with *token and
 * *expiry, or the answered error.
 */
static int s_acquire(svc_ctx *ctx, const char *id, const char *owner, int64_t ttl, int64_t wait_ms,
                     const char *what, int64_t *token, int64_t *expiry)
{
    kv_state *st = svc_ctx_data(ctx);
    if (wait_ms < 0 || wait_ms > KV_MAX_LOCK_TTL_MS)
        return svc_ctx_error(ctx, 400, "wait_ms %lld is outside 0 .. %lld", (long long)wait_ms,
                             (long long)KV_MAX_LOCK_TTL_MS);
    int left = svc_ctx_remaining_ms(ctx);
    /* Leave the answer time to travel before the caller's deadline. */
    if (left >= 0 && wait_ms > left - 50)
        wait_ms = left > 50 ? left - 50 : 0;
    int64_t deadline = kv_now_ms() + wait_ms;
    for (;;) {
        unsigned long long gen = s_gen(st->sync);
        kv_op op = { .kind = KV_OP_LOCK, .lock = { .kind = KV_LOCK_ACQUIRE, .id = id,
                                                   .owner = owner, .ttl_ms = ttl } };
        int rc = kv_commit_run(st->commit, &op);
        if (rc == 0) {
            *token = op.lock.new_token;
            *expiry = op.lock.expiry;
            return 0;
        }
        if (rc != -EBUSY)
            return kv_answer(ctx, rc, what);
        int64_t now = kv_now_ms();
        if (now >= deadline)
            return svc_ctx_error(ctx, 409, "%s \"%s\" is held%s", what, id,
                                 wait_ms ? " (waited until the deadline)" : "");
        if (svc_stopping(st->svc))
            return svc_ctx_error(ctx, 503, "stored is stopping");
        /* Wake at release, at the holder's lease end, or every 200 ms to see a stop. */
        int64_t until = op.lock.expiry < deadline ? op.lock.expiry : deadline;
        if (until > now + 200)
            until = now + 200;
        s_wait(st->sync, gen, until);
    }
}

/* Refresh or release of id by token; the answered error, or 0 with *expiry. */
static int s_holder_op(svc_ctx *ctx, kv_lock_kind kind, const char *id, int64_t token, int64_t ttl,
                       const char *what, int64_t *expiry)
{
    kv_state *st = svc_ctx_data(ctx);
    kv_op op = { .kind = KV_OP_LOCK, .lock = { .kind = kind, .id = id, .token = token, .ttl_ms = ttl } };
    int rc = kv_commit_run(st->commit, &op);
    if (rc == -ESTALE)
        return svc_ctx_error(ctx, 409, "token %lld no longer holds \"%s\"", (long long)token, id);
    if (rc)
        return kv_answer(ctx, rc, what);
    if (expiry)
        *expiry = op.lock.expiry;
    return 0;
}

/* ---- locks -------------------------------------------------------------------- */

static int s_lock(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__LockRequest *in = req;
    Svc__Store__LockResponse *out = rsp;
    int64_t ttl = in->ttl_ms;
    int rc = kv_check_text(ctx, "lock id", in->id, KV_MAX_LOCK_ID, false) ?:
             kv_check_text(ctx, "owner", in->owner, KV_MAX_LOCK_ID, true) ?: s_ttl(ctx, &ttl);
    if (rc)
        return rc;
    return s_acquire(ctx, in->id, in->owner, ttl, in->wait_ms, "lock", &out->token, &out->expiry);
}

static int s_refresh(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__RefreshRequest *in = req;
    Svc__Store__LockResponse *out = rsp;
    int64_t ttl = in->ttl_ms;
    int rc = kv_check_text(ctx, "lock id", in->id, KV_MAX_LOCK_ID, false) ?: s_ttl(ctx, &ttl);
    if (rc)
        return rc;
    out->token = in->token;
    return s_holder_op(ctx, KV_LOCK_REFRESH, in->id, in->token, ttl, "refresh", &out->expiry);
}

static int s_unlock(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__UnlockRequest *in = req;
    int rc = kv_check_text(ctx, "lock id", in->id, KV_MAX_LOCK_ID, false);
    return rc ?: s_holder_op(ctx, KV_LOCK_RELEASE, in->id, in->token, 0, "unlock", NULL);
}

static int s_locks(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    Svc__Store__LocksResponse *out = rsp;
    return kv_answer(ctx, st->b->sync->lock_list(st->b, kv_now_ms(), &out->locks, &out->n_locks),
                     "locks");
}

/* ---- leaders ------------------------------------------------------------------- */

/* "leader/NAME" into buf after validating name; the answered error or 0. */
static int s_election(svc_ctx *ctx, const char *name, char *buf, size_t len)
{
    int rc = kv_check_text(ctx, "election name", name, KV_MAX_LOCK_ID - strlen(KV_LEADER_PREFIX), false);
    if (!rc)
        snprintf(buf, len, "%s%s", KV_LEADER_PREFIX, name);
    return rc;
}

static int s_campaign(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__CampaignRequest *in = req;
    Svc__Store__CampaignResponse *out = rsp;
    char id[KV_MAX_LOCK_ID + 1];
    int64_t ttl = in->ttl_ms;
    int rc = s_election(ctx, in->name, id, sizeof id) ?:
             kv_check_text(ctx, "candidate", in->candidate, KV_MAX_LOCK_ID, false) ?: s_ttl(ctx, &ttl);
    if (rc)
        return rc;
    return s_acquire(ctx, id, in->candidate, ttl, in->wait_ms, "leadership", &out->term, &out->expiry);
}

static int s_leader(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    const Svc__Store__LeaderRequest *in = req;
    Svc__Store__LeaderResponse *out = rsp;
    char id[KV_MAX_LOCK_ID + 1];
    int rc = s_election(ctx, in->name, id, sizeof id);
    if (rc)
        return rc;
    Svc__Store__LockInfo *li;
    rc = st->b->sync->lock_get(st->b, id, kv_now_ms(), &li);
    if (rc == -ENOENT)
        return svc_ctx_error(ctx, 404, "election \"%s\" has no leader", in->name);
    if (rc)
        return kv_answer(ctx, rc, "leader");
    out->leader = li->owner;
    li->owner = NULL;
    out->term = li->token;
    out->expiry = li->expiry;
    svc__store__lock_info__free_unpacked(li, NULL);
    return 0;
}

static int s_resign(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__ResignRequest *in = req;
    char id[KV_MAX_LOCK_ID + 1];
    int rc = s_election(ctx, in->name, id, sizeof id);
    return rc ?: s_holder_op(ctx, KV_LOCK_RELEASE, id, in->term, 0, "resign", NULL);
}

/* ---- observers ------------------------------------------------------------------- */

static void s_observer_free(s_observer *o)
{
    svc_stream_close(&o->stream, NULL);
    free(o->name);
    free(o->leader);
    free(o);
}

static int s_observe(svc_ctx *ctx, const void *req, svc_stream *stream)
{
    kv_state *st = svc_ctx_data(ctx);
    const Svc__Store__ObserveRequest *in = req;
    char id[KV_MAX_LOCK_ID + 1];
    int rc = s_election(ctx, in->name, id, sizeof id);
    if (rc)
        return rc;
    s_observer *o = calloc(1, sizeof *o);
    if (!o || !(o->name = strdup(id))) {
        free(o);
        return -ENOMEM;
    }
    o->stream = stream;
    kv_sync *s = st->sync;
    pthread_mutex_lock(&s->mu);
    if (s->n_observers >= KV_MAX_OBSERVERS || s->stop) {
        pthread_mutex_unlock(&s->mu);
        free(o->name);
        free(o);
        return svc_ctx_error(ctx, 503, "too many Observe streams (%d)", KV_MAX_OBSERVERS);
    }
    o->next = s->observers;
    s->observers = o;
    s->n_observers++;
    s->gen++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Sends o the election's state if it changed; false when the stream is gone. */
static bool s_observe_one(kv_sync *s, s_observer *o)
{
    if (svc_stream_closed(o->stream))
        return false;
    Svc__Store__LockInfo *li = NULL;
    int rc = s->st->b->sync->lock_get(s->st->b, o->name, kv_now_ms(), &li);
    if (rc && rc != -ENOENT)
        return true;   /* try again at the next tick */
    const char *leader = li ? li->owner : "";
    int64_t term = li ? li->token : 0;
    bool alive = true;
    if (!o->leader || term != o->term || strcmp(leader, o->leader) != 0) {
        Svc__Store__LeaderResponse ev = SVC__STORE__LEADER_RESPONSE__INIT;
        ev.leader = (char *)leader;
        ev.term = term;
        ev.expiry = li ? li->expiry : 0;
        rc = svc_stream_send(o->stream, &ev.base);
        if (rc == 0) {
            free(o->leader);
            o->leader = strdup(leader);
            o->term = term;
        }
        alive = rc != SVC_ECLOSED;
    }
    if (li)
        svc__store__lock_info__free_unpacked(li, NULL);
    return alive;
}

static void *s_observer_thread(void *arg)
{
    kv_sync *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        unsigned long long gen = s->gen;
        s_observer *list = s->observers;
        s->observers = NULL;
        pthread_mutex_unlock(&s->mu);

        /* Serve the detached list, then put the live ones back. */
        s_observer *keep = NULL, *next;
        size_t dropped = 0;
        for (s_observer *o = list; o; o = next) {
            next = o->next;
            if (s_observe_one(s, o)) {
                o->next = keep;
                keep = o;
            } else {
                s_observer_free(o);
                dropped++;
            }
        }
        pthread_mutex_lock(&s->mu);
        s->n_observers -= dropped;
        while (keep) {
            next = keep->next;
            keep->next = s->observers;
            s->observers = keep;
            keep = next;
        }
        if (s->gen == gen && !s->stop) {
            int64_t until = kv_now_ms() + KV_OBSERVE_TICK_MS;
            struct timespec ts = { .tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000 };
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

kv_sync *kv_sync_new(kv_state *st)
{
    kv_sync *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->st = st;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);   /* CLOCK_REALTIME: waits end at unix-ms lease ends */
    return s;
}

int kv_sync_start(kv_sync *s)
{
    int rc = pthread_create(&s->thread, NULL, s_observer_thread, s);
    if (rc)
        return -rc;
    s->running = true;
    return 0;
}

void kv_sync_destroy(kv_sync **sp)
{
    kv_sync *s = sp ? *sp : NULL;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->running)
        pthread_join(s->thread, NULL);
    for (s_observer *o = s->observers, *next; o; o = next) {
        next = o->next;
        s_observer_free(o);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    *sp = NULL;
}

#define EP(n, f, rq, rs) { "Sync." #n, f, NULL, &svc__store__##rq##__descriptor, \
                           &svc__store__##rs##__descriptor, false }

const kv_endpoint kv_sync_endpoints[] = {
    EP(Lock, s_lock, lock_request, lock_response),
    EP(Refresh, s_refresh, refresh_request, lock_response),
    EP(Unlock, s_unlock, unlock_request, unlock_response),
    EP(Locks, s_locks, locks_request, locks_response),
    EP(Campaign, s_campaign, campaign_request, campaign_response),
    EP(Leader, s_leader, leader_request, leader_response),
    EP(Resign, s_resign, resign_request, resign_response),
    { "Sync.Observe", NULL, s_observe, &svc__store__observe_request__descriptor,
      &svc__store__leader_response__descriptor, false },
    { NULL, NULL, NULL, NULL, NULL, false },
};
