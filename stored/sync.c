/*
 * stored/sync.c — the Sync.* endpoints: locks with fencing tokens, leaders.
 *
 * A lock is a lease: granted with the next store revision as its fencing
 * token, durable like any write (so a restart of stored does not hand a
 * held lock to a second client), and free again when its holder unlocks it
 * or lets its TTL pass without Sync.Refresh.  Every Sync.* call runs on the
 * loop thread and defers its answer (svc_ctx_defer): its lock op goes to
 * the group-commit writer, whose callback answers it.  A Lock or Campaign
 * with wait_ms > 0 that finds the lock held is parked, holding no thread,
 * and tried again when its lock changes (the commit hook) or the
 * holder's lease ends (the sync thread), until wait_ms, the caller's
 * deadline or the service stopping ends the wait.
 *
 * An election NAME is lock "leader/NAME" whose owner is the candidate; the
 * term is the lock's token.  Observe streams are served by one thread that
 * looks at every observed election when a lock changes and at least every
 * KV_OBSERVE_TICK_MS (to see leases that simply ran out).
 */
#include "stored.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_OBSERVE_TICK_MS 100
#define KV_MAX_OBSERVERS   4096
#define S_REL_SLOTS        256    /* lock-change counters parked calls watch (by hash of the id) */

typedef struct s_observer {
    svc_stream *stream;       /* owned reference */
    char *name;               /* election, owned */
    char *leader;             /* last sent, owned; NULL before the first */
    int64_t term;             /* last sent */
    struct s_observer *next;
} s_observer;

/* What a lock call answers. */
typedef enum s_answer { S_ANS_LOCK, S_ANS_CAMPAIGN, S_ANS_UNLOCK, S_ANS_RESIGN } s_answer;

/*
 * A lock call on its way: its op goes through the writer, whose callback
 * (s_done) answers it — or parks it (kv_sync.parked) when it may wait for
 * a held lock.
 */
typedef struct s_call {
    kv_op op;                      /* KV_OP_LOCK; id points at `id` */
    kv_sync *sync;
    svc_deferred *d;               /* the answer; keeps the request (owner) alive */
    s_answer answer;
    const char *what;              /* "lock", "leadership", "refresh", "unlock", "resign" */
    char id[KV_MAX_LOCK_ID + 1];   /* the lock id (a Campaign's "leader/NAME") */
    int64_t deadline;              /* acquire: unix ms it may wait until */
    bool waits;                    /* acquire with wait_ms > 0 */
    unsigned long long rel;        /* its id's change count (kv_sync.changes) when last submitted */
    int64_t retry_at;              /* parked: try again at the latest then (lease end) */
    struct s_call *next;           /* in kv_sync.parked */
} s_call;

struct kv_sync {
    kv_state *st;             /* the daemon */
    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t cv;        /* lock changed (CLOCK_REALTIME) */
    unsigned long long gen;   /* bumps at every lock change (observers) */
    unsigned long long changes[S_REL_SLOTS];   /* lock changes, by hash of the lock id */
    s_observer *observers;
    size_t n_observers;
    s_call *parked;           /* acquires waiting for a held lock */
    pthread_t thread;         /* serves observers, retries parked acquires at lease ends */
    bool running, stop;
};

static void s_submit(kv_sync *s, s_call *c);

/* ---- waiting ----------------------------------------------------------------- */

/* The changes[] slot of lock id (FNV-1a): ids sharing one only cost a spurious retry. */
static unsigned s_slot(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % S_REL_SLOTS;
}

/*
 * The commit hook.  The waiters for a lock that changed in this batch try
 * again: a release lets one in, a grant or refresh gives them a new lease
 * end to wait for (a refresh can shorten it).  A lease that simply ends is
 * the sync thread's (it wakes at retry_at).  Observers hear of every change.
 */
void kv_sync_committed(void *arg, kv_op **ops, size_t n)
{
    kv_sync *s = arg;
    bool changed = false, touched = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        const kv_op *op = ops[i];
        changed |= (op->kind == KV_OP_LOCK && op->rc == 0) || (op->kind == KV_OP_REAP && op->reaped > 0);
        if (op->kind == KV_OP_LOCK && op->rc == 0) {
            s->changes[s_slot(op->lock.id)]++;
            touched = true;
        }
    }
    if (!changed) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->gen++;
    pthread_cond_broadcast(&s->cv);
    s_call *list = NULL;
    for (s_call **cp = &s->parked; touched && *cp;) {
        s_call *c = *cp;
        if (c->rel == s->changes[s_slot(c->id)]) {
            cp = &c->next;
            continue;
        }
        *cp = c->next;   /* its lock changed: it tries again */
        c->next = list;
        list = c;
    }
    pthread_mutex_unlock(&s->mu);
    for (s_call *c = list, *next; c; c = next) {
        next = c->next;
        s_submit(s, c);
    }
}

/* ---- answering ------------------------------------------------------------------ */

static void s_call_free(s_call *c)
{
    free(c);
}

/* Answers c with an error and frees it. */
static void s_fail(s_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fail(s_call *c, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    svc_deferred_error(&c->d, code, "%s", msg);
    s_call_free(c);
}

/* Answers c from its granted, refreshed or released op and frees it. */
static void s_succeed(s_call *c)
{
    const kv_lock *lk = &c->op.lock;
    switch (c->answer) {
    case S_ANS_LOCK: {
        Svc__Store__LockResponse out = SVC__STORE__LOCK_RESPONSE__INIT;
        out.token = lk->kind == KV_LOCK_ACQUIRE ? lk->new_token : lk->token;
        out.expiry = lk->expiry;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    case S_ANS_CAMPAIGN: {
        Svc__Store__CampaignResponse out = SVC__STORE__CAMPAIGN_RESPONSE__INIT;
        out.term = lk->new_token;
        out.expiry = lk->expiry;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    case S_ANS_UNLOCK: {
        Svc__Store__UnlockResponse out = SVC__STORE__UNLOCK_RESPONSE__INIT;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    case S_ANS_RESIGN: {
        Svc__Store__ResignResponse out = SVC__STORE__RESIGN_RESPONSE__INIT;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    }
    s_call_free(c);
}

/* Parks c until a lock changes or retry_at; answers 503 when the sync is stopping. */
static void s_park(kv_sync *s, s_call *c, int64_t retry_at)
{
    c->retry_at = retry_at;
    pthread_mutex_lock(&s->mu);
    if (s->stop || svc_stopping(s->st->svc)) {
        pthread_mutex_unlock(&s->mu);
        s_fail(c, 503, "stored is stopping");
        return;
    }
    if (s->changes[s_slot(c->id)] != c->rel) {
        /* Its lock changed since it was submitted: at once again. */
        pthread_mutex_unlock(&s->mu);
        s_submit(s, c);
        return;
    }
    c->next = s->parked;
    s->parked = c;
    pthread_cond_broadcast(&s->cv);   /* the sync thread's next wake may now be sooner */
    pthread_mutex_unlock(&s->mu);
}

/* The writer's callback: answers c, or parks it to wait for the lock. */
static void s_done(kv_op *op, void *arg)
{
    s_call *c = arg;
    int rc = op->rc;
    if (rc == 0) {
        s_succeed(c);
        return;
    }
    if (rc == -EBUSY) {
        int64_t now = kv_now_ms();
        if (c->waits && now < c->deadline) {
            int64_t lease_end = op->lock.expiry;
            s_park(c->sync, c, lease_end < c->deadline ? lease_end : c->deadline);
            return;
        }
        s_fail(c, 409, "%s \"%s\" is held%s", c->what, c->id,
               c->waits ? " (waited until the deadline)" : "");
        return;
    }
    if (rc == -ESTALE) {
        s_fail(c, 409, "token %lld no longer holds \"%s\"", (long long)op->lock.token, c->id);
        return;
    }
    char msg[256];
    int code = kv_error_code(rc, c->what, msg, sizeof msg);
    s_fail(c, code, "%s", msg);
}

/* (Re)submits c's op to the writer. */
static void s_submit(kv_sync *s, s_call *c)
{
    pthread_mutex_lock(&s->mu);
    c->rel = s->changes[s_slot(c->id)];
    pthread_mutex_unlock(&s->mu);
    if (kv_commit_submit(s->st->commit, &c->op, s_done, c) != 0)
        s_fail(c, 503, "stored is stopping");
}

/* Takes the answer of the current call into c and hands its op to the writer. */
static int s_start(svc_ctx *ctx, s_call *c)
{
    kv_state *st = svc_ctx_data(ctx);
    c->sync = st->sync;
    c->op.kind = KV_OP_LOCK;
    c->op.lock.id = c->id;
    if (!(c->d = svc_ctx_defer(ctx))) {
        s_call_free(c);
        return svc_ctx_error(ctx, 500, "out of memory");
    }
    s_submit(st->sync, c);
    return 0;   /* c may be answered and gone already */
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

/* A new call on lock id (1..KV_MAX_LOCK_ID bytes, checked by the caller). */
static s_call *s_call_new(s_answer answer, const char *what, const char *id)
{
    s_call *c = calloc(1, sizeof *c);
    if (c) {
        c->answer = answer;
        c->what = what;
        snprintf(c->id, sizeof c->id, "%s", id);
    }
    return c;
}

/* Acquires lock id for owner (borrowed from the request), waiting up to wait_ms. */
static int s_acquire(svc_ctx *ctx, s_answer answer, const char *id, const char *owner, int64_t ttl,
                     int64_t wait_ms, const char *what)
{
    kv_state *st = svc_ctx_data(ctx);
    if (wait_ms < 0 || wait_ms > KV_MAX_LOCK_TTL_MS)
        return svc_ctx_error(ctx, 400, "wait_ms %lld is outside 0 .. %lld", (long long)wait_ms,
                             (long long)KV_MAX_LOCK_TTL_MS);
    if (svc_stopping(st->svc))
        return svc_ctx_error(ctx, 503, "stored is stopping");
    int left = svc_ctx_remaining_ms(ctx);
    /* Leave the answer time to travel before the caller's deadline. */
    if (left >= 0 && wait_ms > left - 50)
        wait_ms = left > 50 ? left - 50 : 0;
    s_call *c = s_call_new(answer, what, id);
    if (!c)
        return -ENOMEM;
    c->op.lock = (kv_lock){ .kind = KV_LOCK_ACQUIRE, .owner = owner, .ttl_ms = ttl };
    c->waits = wait_ms > 0;
    c->deadline = kv_now_ms() + wait_ms;
    return s_start(ctx, c);
}

/* Refresh or release of id by token, answered as `answer`. */
static int s_holder_op(svc_ctx *ctx, s_answer answer, kv_lock_kind kind, const char *id,
                       int64_t token, int64_t ttl, const char *what)
{
    s_call *c = s_call_new(answer, what, id);
    if (!c)
        return -ENOMEM;
    c->op.lock = (kv_lock){ .kind = kind, .token = token, .ttl_ms = ttl };
    return s_start(ctx, c);
}

/* ---- locks -------------------------------------------------------------------- */

static int s_lock(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__LockRequest *in = req;
    int64_t ttl = in->ttl_ms;
    int rc = kv_check_text(ctx, "lock id", in->id, KV_MAX_LOCK_ID, false) ?:
             kv_check_text(ctx, "owner", in->owner, KV_MAX_LOCK_ID, true) ?: s_ttl(ctx, &ttl);
    if (rc)
        return rc;
    return s_acquire(ctx, S_ANS_LOCK, in->id, in->owner, ttl, in->wait_ms, "lock");
}

static int s_refresh(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__RefreshRequest *in = req;
    int64_t ttl = in->ttl_ms;
    int rc = kv_check_text(ctx, "lock id", in->id, KV_MAX_LOCK_ID, false) ?: s_ttl(ctx, &ttl);
    if (rc)
        return rc;
    return s_holder_op(ctx, S_ANS_LOCK, KV_LOCK_REFRESH, in->id, in->token, ttl, "refresh");
}

static int s_unlock(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__UnlockRequest *in = req;
    int rc = kv_check_text(ctx, "lock id", in->id, KV_MAX_LOCK_ID, false);
    return rc ?: s_holder_op(ctx, S_ANS_UNLOCK, KV_LOCK_RELEASE, in->id, in->token, 0, "unlock");
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
    char id[KV_MAX_LOCK_ID + 1];
    int64_t ttl = in->ttl_ms;
    int rc = s_election(ctx, in->name, id, sizeof id) ?:
             kv_check_text(ctx, "candidate", in->candidate, KV_MAX_LOCK_ID, false) ?: s_ttl(ctx, &ttl);
    if (rc)
        return rc;
    return s_acquire(ctx, S_ANS_CAMPAIGN, id, in->candidate, ttl, in->wait_ms, "leadership");
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
    return rc ?: s_holder_op(ctx, S_ANS_RESIGN, KV_LOCK_RELEASE, id, in->term, 0, "resign");
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
        /* Parked acquires whose holder's lease (or own wait) is over try again;
         * while the service stops they are answered 503, so its drain ends. */
        int64_t now = kv_now_ms(), until = now + KV_OBSERVE_TICK_MS;
        bool stopping = svc_stopping(s->st->svc);
        s_call *due = NULL;
        for (s_call **cp = &s->parked; *cp;) {
            s_call *c = *cp;
            if (stopping || c->retry_at <= now) {
                *cp = c->next;
                c->next = due;
                due = c;
            } else {
                if (c->retry_at < until)
                    until = c->retry_at;
                cp = &c->next;
            }
        }
        if (due) {
            pthread_mutex_unlock(&s->mu);
            for (s_call *c = due, *cnext; c; c = cnext) {
                cnext = c->next;
                if (stopping)
                    s_fail(c, 503, "stored is stopping");
                else
                    s_submit(s, c);
            }
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->gen == gen && !s->stop) {
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

void kv_sync_stop(kv_sync *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    s_call *parked = s->parked;
    s->parked = NULL;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->running)
        pthread_join(s->thread, NULL);
    s->running = false;
    for (s_observer *o = s->observers, *next; o; o = next) {
        next = o->next;
        s_observer_free(o);
    }
    s->observers = NULL;
    s->n_observers = 0;
    for (s_call *c = parked, *next; c; c = next) {
        next = c->next;
        s_fail(c, 503, "stored is stopping");
    }
}

void kv_sync_destroy(kv_sync **sp)
{
    kv_sync *s = sp ? *sp : NULL;
    if (!s)
        return;
    kv_sync_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    *sp = NULL;
}

#define EP(n, f, rq, rs) { "Sync." #n, f, NULL, &svc__store__##rq##__descriptor, \
                           &svc__store__##rs##__descriptor, true }

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
