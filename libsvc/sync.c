/*
 * libsvc/sync.c — locks and leaders over svc.store (svc/sync.h).
 */
#include "svc/sync.h"
#include "svc/store.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_LEADER_PREFIX "leader/"

static int s_call(svc_client *c, const char *endpoint, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *rd, ProtobufCMessage **rsp, int timeout_ms,
                  svc_error *err)
{
    svc_call_opts o = { .timeout_ms = timeout_ms };
    ProtobufCMessage *tmp = NULL;
    int rc = svc_call(c, SVC_STORE_SERVICE, endpoint, req, rd, rsp ? rsp : &tmp, &o, err);
    if (tmp)
        protobuf_c_message_free_unpacked(tmp, NULL);
    return rc;
}

/* A deadline that covers the wait plus time to answer. */
static int s_wait_timeout(int64_t wait_ms)
{
    int64_t t = wait_ms + 5000;
    return t > 3600000 ? 3600000 : (int)t;
}

int svc_lock(svc_client *c, const char *id, int64_t ttl_ms, int64_t wait_ms, int64_t *token,
             svc_error *err)
{
    Svc__Store__LockRequest req = SVC__STORE__LOCK_REQUEST__INIT;
    req.id = (char *)id;
    req.ttl_ms = ttl_ms;
    req.wait_ms = wait_ms;
    char owner[64];
    snprintf(owner, sizeof owner, "%s:%d", program_invocation_short_name, (int)getpid());
    req.owner = owner;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(c, "Sync.Lock", &req.base, &svc__store__lock_response__descriptor, &rsp,
                    s_wait_timeout(wait_ms), err);
    if (rc == 0)
        *token = ((Svc__Store__LockResponse *)rsp)->token;
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

int svc_lock_refresh(svc_client *c, const char *id, int64_t token, int64_t ttl_ms, svc_error *err)
{
    Svc__Store__RefreshRequest req = SVC__STORE__REFRESH_REQUEST__INIT;
    req.id = (char *)id;
    req.token = token;
    req.ttl_ms = ttl_ms;
    return s_call(c, "Sync.Refresh", &req.base, &svc__store__lock_response__descriptor, NULL, 0, err);
}

int svc_unlock(svc_client *c, const char *id, int64_t token, svc_error *err)
{
    Svc__Store__UnlockRequest req = SVC__STORE__UNLOCK_REQUEST__INIT;
    req.id = (char *)id;
    req.token = token;
    return s_call(c, "Sync.Unlock", &req.base, &svc__store__unlock_response__descriptor, NULL, 0, err);
}

/* ---- leaders --------------------------------------------------------------------- */

struct svc_leader {
    char *registry;          /* for the renewer's own client */
    char *lock_id;           /* "leader/<name>" */
    char *name;              /* election */
    int64_t term;            /* the token won */
    int64_t ttl_ms;          /* lease */
    pthread_t thread;        /* renewer */
    pthread_mutex_t mu;      /* guards below */
    pthread_cond_t cv;       /* stop asked / lost (CLOCK_MONOTONIC) */
    bool stop;
    atomic_bool lost;
};

static struct timespec s_abs(int64_t ms_from_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms_from_now / 1000;
    ts.tv_nsec += (ms_from_now % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static void *s_renew(void *arg)
{
    svc_leader *l = arg;
    svc_client *c = svc_client_new(l->registry);
    int64_t last_ok = svc__now_ms();
    pthread_mutex_lock(&l->mu);
    while (!l->stop && !atomic_load(&l->lost)) {
        struct timespec ts = s_abs(l->ttl_ms / 3);
        while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &ts) != ETIMEDOUT)
            ;
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        svc_error err = SVC_ERROR_INIT;
        int rc = c ? svc_lock_refresh(c, l->lock_id, l->term, l->ttl_ms, &err) : -ENOMEM;
        bool refused = rc == SVC_EREMOTE && err.code == 409;
        svc_error_release(&err);
        if (rc == 0)
            last_ok = svc__now_ms();
        pthread_mutex_lock(&l->mu);
        if (refused || svc__now_ms() - last_ok >= l->ttl_ms) {
            atomic_store(&l->lost, true);
            pthread_cond_broadcast(&l->cv);
        }
    }
    pthread_mutex_unlock(&l->mu);
    svc_client_destroy(&c);
    return NULL;
}

int svc_leader_campaign(svc_client *c, const char *name, const char *candidate, int64_t ttl_ms,
                        int64_t wait_ms, svc_leader **out, svc_error *err)
{
    *out = NULL;
    if (ttl_ms == 0)
        ttl_ms = 10000;
    Svc__Store__CampaignRequest req = SVC__STORE__CAMPAIGN_REQUEST__INIT;
    req.name = (char *)name;
    req.candidate = (char *)candidate;
    req.ttl_ms = ttl_ms;
    req.wait_ms = wait_ms;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(c, "Sync.Campaign", &req.base, &svc__store__campaign_response__descriptor, &rsp,
                    s_wait_timeout(wait_ms), err);
    if (rc < 0)
        return rc;
    int64_t term = ((Svc__Store__CampaignResponse *)rsp)->term;
    protobuf_c_message_free_unpacked(rsp, NULL);

    svc_leader *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->registry = strdup(svc_client_registry(c));
    l->name = strdup(name);
    l->term = term;
    l->ttl_ms = ttl_ms;
    if (!l->registry || !l->name || asprintf(&l->lock_id, "%s%s", S_LEADER_PREFIX, name) < 0)
        goto out_free;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&l->lost, false);
    if (pthread_create(&l->thread, NULL, s_renew, l) != 0) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        goto out_free;
    }
    *out = l;
    return 0;
out_free:
    svc_unlock(c, l->lock_id ? l->lock_id : "", term, err);
    free(l->registry);
    free(l->name);
    free(l->lock_id);
    free(l);
    svc_error_set(err, "svc.client", 500, "cannot start the leadership renewer");
    return -ENOMEM;
}

int64_t svc_leader_term(const svc_leader *l) { return l->term; }

bool svc_leader_lost(const svc_leader *l) { return atomic_load(&l->lost); }

bool svc_leader_wait_lost(svc_leader *l, int timeout_ms)
{
    struct timespec ts = s_abs(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&l->mu);
    while (!atomic_load(&l->lost)) {
        if (timeout_ms < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        else if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&l->mu);
    return atomic_load(&l->lost);
}

void svc_leader_resign(svc_leader **lp)
{
    svc_leader *l = lp ? *lp : NULL;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (!atomic_load(&l->lost)) {
        svc_client *c = svc_client_new(l->registry);
        if (c) {
            Svc__Store__ResignRequest req = SVC__STORE__RESIGN_REQUEST__INIT;
            req.name = l->name;
            req.term = l->term;
            svc_error err = SVC_ERROR_INIT;
            s_call(c, "Sync.Resign", &req.base, &svc__store__resign_response__descriptor, NULL, 0, &err);
            svc_error_release(&err);
            svc_client_destroy(&c);
        }
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->registry);
    free(l->name);
    free(l->lock_id);
    free(l);
    *lp = NULL;
}

int svc_leader_get(svc_client *c, const char *name, char **leader, int64_t *term, svc_error *err)
{
    Svc__Store__LeaderRequest req = SVC__STORE__LEADER_REQUEST__INIT;
    req.name = (char *)name;
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(c, "Sync.Leader", &req.base, &svc__store__leader_response__descriptor, &rsp, 0, err);
    if (rc == 0) {
        Svc__Store__LeaderResponse *r = (Svc__Store__LeaderResponse *)rsp;
        *leader = strdup(r->leader);
        *term = r->term;
        if (!*leader)
            rc = -ENOMEM;
    }
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}
