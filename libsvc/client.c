/*
 * libsvc/client.c — calls by service name: futures, selector, retries.
 * See svc/client.h.
 *
 * Every call, synchronous or not, is a future moving through this state
 * machine (one attempt = one node, one id; a retry is a new attempt):
 *
 *   state       event                                   next
 *   (start)     deadline passed                         DONE 408, nothing sent
 *   (start)     no view to serve: lookup started/joined LOOKUP
 *   LOOKUP      the registry answered (nodes)           (start), taking the answer
 *   LOOKUP      404 / registry unreachable / timed out  DONE with that failure
 *   LOOKUP      call deadline passed                    DONE 408, nothing sent
 *   (start)     node chosen, connection up              SENT (request sent)
 *   (start)     node chosen, connection coming up       CONNECTING
 *   CONNECTING  connection up                           SENT
 *   CONNECTING  refused, or not up in 1 s               failed(transport)
 *   SENT        RESPONSE with the attempt's id          DONE 0
 *   SENT        ERROR with the attempt's id             failed(remote, code)
 *   SENT        attempt time over (SVC_RETRY_TIMEOUT)   failed(timeout)
 *   SENT        call deadline passed                    DONE 408
 *   SENT        connection lost (+200 ms grace)         failed(transport)
 *   failed      policy retries it, time left            BACKOFF (pause) or a new attempt
 *   failed      otherwise                               DONE with the failure
 *   BACKOFF     pause over                              a new attempt (start)
 *
 * The I/O that moves calls (s_pump) runs only inside the client's public
 * functions.  Attempts in flight are found by id in a hash table; each
 * node's DEALER counts its calls in flight, which is what
 * SVC_SELECT_LEAST_OUTSTANDING compares.
 */
#include "svc/client.h"
#include "svc/codec.h"
#include "svc/log.h"
#include "svc/service.h"
#include "clock.h"
#include "client_int.h"
#include "conn.h"
#include "regcache.h"
#include "retry.h"
#include "selector.h"
#include "trace_int.h"
#include "zctx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ID "svc.client"
#define S_TABLE 1024          /* id hash buckets (chained) */
#define S_MAX_POLL 256        /* sockets polled at once; more connections wait their turn */
#define S_FULL_POLL_MS 10     /* how often a round also polls monitors and the watch */
#define S_SWEEP_MS 1000       /* how often idle connections are checked for loss */

typedef enum s_state { S_LOOKUP, S_CONNECTING, S_SENT, S_BACKOFF, S_DONE } s_state;

struct svc_future {
    svc_client *c;            /* the client; NULL once it is destroyed */
    s_state state;            /* see the table above */
    uint64_t id;              /* id of the attempt in flight (S_SENT), else 0 */
    char *service;            /* owned copies of the call's arguments ... */
    char *endpoint;
    char *ct;                 /* content type */
    char *version;            /* filter, or NULL */
    char *node_meta;          /* filter, or NULL */
    char *address;            /* explicit address, or NULL */
    void *body;               /* request body (kept for retries) */
    size_t len;               /* ... its length */
    svc_meta meta;            /* the call's metadata */
    svc_strategy strategy;    /* resolved: never SVC_SELECT_DEFAULT */
    svc_retry_policy policy;  /* resolved */
    int attempts;             /* attempts started */
    int64_t deadline;         /* of the whole call, monotonic ms */
    int64_t attempt_deadline; /* S_SENT: when this attempt gives up */
    int64_t due;              /* S_BACKOFF: retry at; S_CONNECTING, S_LOOKUP: give up at */
    uint64_t lookup;          /* S_LOOKUP: the registry cache's lookup it waits for */
    bool looked_up;           /* that lookup answered: the next choice takes the view as is */
    svc__conn *conn;          /* S_CONNECTING / S_SENT: borrowed from the client's list */
    char *node;               /* address of the latest attempt, owned */
    char **tried;             /* addresses that failed during this call, owned */
    size_t n_tried;           /* ... how many */
    int rc;                   /* S_DONE: the result code */
    svc_reply reply;          /* S_DONE, rc 0: the answer */
    svc_error err;            /* S_DONE, rc < 0: the error */
    svc_done_fn fn;           /* callback form: called once, then the future is freed */
    void *arg;                /* ... its argument */
    bool abandoned;           /* destroyed while pending: freed when it ends */
    struct svc_future *prev, *next; /* pending list; next also chains the done list */
    struct svc_future *hnext; /* id table chain */
};

struct svc_client {
    char *registry;            /* registry address, owned */
    svc_meta meta;             /* metadata for every call */
    int timeout_ms;            /* default call deadline */
    svc_retry_policy retry;    /* default retry policy */
    svc_strategy strategy;     /* default selector */
    svc__breaker *breakers;    /* breaker state per node address */
    int breaker_failures;      /* consecutive failures that open a breaker, 0 = off */
    int breaker_cooldown_ms;   /* how long it stays open */
    uint64_t rr;               /* round-robin position */
    uint64_t next_id;          /* next call id */
    svc__conn *conns;          /* open connections */
    svc__regcache *cache;      /* registry views and the watch */
    svc_future *pending;       /* calls not done (doubly linked) */
    size_t n_pending;          /* ... how many */
    svc_future *done_head;     /* callback calls done, callbacks not yet run */
    svc_future *done_tail;
    uint64_t completions;      /* calls completed so far (for svc_client_poll) */
    int64_t next_full;         /* monotonic ms of the next full poll round (s_pump) */
    int64_t next_sweep;        /* monotonic ms of the next idle-connection sweep */
    bool closing;              /* svc_client_destroy is running */
    svc_future *table[S_TABLE]; /* S_SENT attempts by id */
    svc__cwraps wraps;         /* call wrappers (wrap.c) */
};

int64_t svc_now_ms(void)
{
    return svc__now_ms();
}

void svc_reply_release(svc_reply *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->content_type);
    free(r->node);
    memset(r, 0, sizeof *r);
}

svc_client *svc_client_new(const char *registry_address)
{
    svc_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    const char *reg = registry_address && *registry_address ? registry_address
                                                             : getenv(SVC_ENV_REGISTRY);
    c->registry = strdup(reg && *reg ? reg : SVC_DEFAULT_REGISTRY);
    if (!c->registry || !(c->cache = svc__regcache_new(c->registry, &c->meta))) {
        free(c->registry);
        free(c);
        return NULL;
    }
    c->timeout_ms = SVC_DEFAULT_TIMEOUT_MS;
    c->retry = (svc_retry_policy)SVC_RETRY_POLICY_INIT;
    svc__regcache_set_ttl(c->cache, SVC_DEFAULT_CACHE_MS);
    c->strategy = SVC_SELECT_RANDOM;
    c->breaker_failures = SVC_DEFAULT_BREAKER_FAILURES;
    c->breaker_cooldown_ms = SVC_DEFAULT_BREAKER_COOLDOWN_MS;
    c->next_id = svc__rand() >> 16;
    return c;
}

int svc_client_set_timeout(svc_client *c, int timeout_ms)
{
    if (timeout_ms <= 0)
        return SVC_EINVAL;
    c->timeout_ms = timeout_ms;
    return 0;
}

int svc_client_set_retries(svc_client *c, int retries)
{
    if (retries < 0 || retries > 100)
        return SVC_EINVAL;
    c->retry.retries = retries;
    return 0;
}

int svc_client_set_retry(svc_client *c, const svc_retry_policy *p)
{
    if (svc_retry_policy_check(p) < 0)
        return SVC_EINVAL;
    c->retry = *p;
    return 0;
}

int svc_client_set_strategy(svc_client *c, svc_strategy s)
{
    if (s != SVC_SELECT_RANDOM && s != SVC_SELECT_ROUND_ROBIN && s != SVC_SELECT_LEAST_OUTSTANDING)
        return SVC_EINVAL;
    c->strategy = s;
    return 0;
}

int svc_client_set_cache(svc_client *c, int cache_ms)
{
    if (cache_ms < 0)
        return SVC_EINVAL;
    svc__regcache_set_ttl(c->cache, cache_ms);
    return 0;
}

void svc_client_set_watch(svc_client *c, bool on)
{
    svc__regcache_set_watch(c->cache, on);
}

int svc_client_set_breaker(svc_client *c, int failures, int cooldown_ms)
{
    if (failures < 0 || failures > 1000 || cooldown_ms < 0 || cooldown_ms > 3600000)
        return SVC_EINVAL;
    c->breaker_failures = failures;
    c->breaker_cooldown_ms = cooldown_ms;
    return 0;
}

int svc_client_set_meta(svc_client *c, const char *key, const char *value)
{
    return svc_meta_set(&c->meta, key, value);
}

const char *svc_client_registry(const svc_client *c)
{
    return c->registry;
}

svc__cwraps *svc__client_wraps(svc_client *c)
{
    return &c->wraps;
}

const svc_meta *svc__client_meta(const svc_client *c)
{
    return &c->meta;
}

size_t svc_client_pending(const svc_client *c)
{
    return c->n_pending;
}

int svc__client_nodes(svc_client *c, const char *service, int64_t deadline, svc__node **nodes,
                      size_t *n, svc_error *err)
{
    return svc__regcache_nodes(c->cache, service, deadline, nodes, n, err);
}

/* ---- connections ----------------------------------------------------------- */

static void s_conn_drop(svc_client *c, svc__conn *k)
{
    for (svc__conn **p = &c->conns; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            svc__conn_destroy(&k);
            return;
        }
    }
}

/*
 * Whether k's state can be taken as it is, without reading its monitor:
 * every empty read of a ZeroMQ socket costs libzmq a poll(2) and a
 * getpid(2), and with calls in flight the pump polls the monitor anyway
 * (every full round) and reads it when it has events.  So a connection up,
 * not lost, with calls on it and its monitor found empty less than
 * S_FULL_POLL_MS ago is taken as up: a drop is then at most as old as the
 * full-round period, which is how late the pump sees it for the calls
 * already on it.  An idle connection (nobody polls its monitor) or one
 * whose monitor went unread longer (a client busy elsewhere) is read.
 */
static bool s_conn_known(const svc__conn *k, int64_t now)
{
    return k->inflight && k->up && !k->lost && !k->lost_at && now - k->events_at < S_FULL_POLL_MS;
}

/*
 * The connection to address that is not lost, made if needed.  A lost one
 * is marked (lost_at): its calls fail after the grace, and s_conn_sweep
 * closes it once it holds none; meanwhile it stays beside the new one.  It
 * is never freed here: s_attempt runs inside the pump's loops over
 * connections (a retry at once from s_conn_waiters or s_conn_read), which
 * still hold it.  One marked lost is not reused even if ZeroMQ has
 * reconnected it since: every call on it would fail with its grace.
 */
static svc__conn *s_conn_get(svc_client *c, const char *address, int64_t now)
{
    for (svc__conn *k = c->conns; k; k = k->next) {
        if (strcmp(k->address, address) != 0)
            continue;
        if (s_conn_known(k, now))
            return k;
        if (!svc__conn_events(k) && !k->lost_at)
            return k;
        if (!k->lost_at)
            k->lost_at = svc__now_ms();
    }
    svc__conn *k = svc__conn_new(address);
    if (!k)
        return NULL;
    k->next = c->conns;
    c->conns = k;
    return k;
}

/* Calls of this client in flight or waiting on connections to address. */
static unsigned s_outstanding(const svc_client *c, const char *address)
{
    unsigned n = 0;
    for (const svc__conn *k = c->conns; k; k = k->next)
        if (strcmp(k->address, address) == 0)
            n += k->inflight + k->waiting;
    return n;
}

/* ---- the id table and the lists ------------------------------------------------ */

static void s_table_add(svc_client *c, svc_future *f)
{
    svc_future **b = &c->table[f->id % S_TABLE];
    f->hnext = *b;
    *b = f;
}

static svc_future *s_table_find(svc_client *c, uint64_t id)
{
    for (svc_future *f = c->table[id % S_TABLE]; f; f = f->hnext)
        if (f->id == id)
            return f;
    return NULL;
}

static void s_table_del(svc_client *c, svc_future *f)
{
    for (svc_future **p = &c->table[f->id % S_TABLE]; *p; p = &(*p)->hnext) {
        if (*p == f) {
            *p = f->hnext;
            break;
        }
    }
    f->hnext = NULL;
    f->id = 0;
}

/*
 * Ends the current attempt's hold on its connection (and id), whatever its
 * state; f is left in S_BACKOFF (holding nothing) unless it is done.
 */
static void s_detach(svc_client *c, svc_future *f)
{
    if (f->state == S_SENT) {
        s_table_del(c, f);
        f->conn->inflight--;
    } else if (f->state == S_CONNECTING) {
        f->conn->waiting--;
    }
    if (f->state != S_DONE)
        f->state = S_BACKOFF;
    f->conn = NULL;
}

static void s_future_free(svc_future *f)
{
    free(f->service);
    free(f->endpoint);
    free(f->ct);
    free(f->version);
    free(f->node_meta);
    free(f->address);
    free(f->body);
    svc_meta_release(&f->meta);
    free(f->node);
    for (size_t i = 0; i < f->n_tried; i++)
        free(f->tried[i]);
    free(f->tried);
    svc_reply_release(&f->reply);
    svc_error_release(&f->err);
    free(f);
}

/* The call is over with rc (f->reply or f->err already filled). */
static void s_finish(svc_client *c, svc_future *f, int rc)
{
    s_detach(c, f);
    f->rc = rc;
    f->state = S_DONE;
    if (f->prev)
        f->prev->next = f->next;
    else
        c->pending = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    c->n_pending--;
    c->completions++;
    if (f->abandoned) {
        s_future_free(f);
    } else if (f->fn) {
        if (c->done_tail)
            c->done_tail->next = f;
        else
            c->done_head = f;
        c->done_tail = f;
    }
}

/* Finishes f with a locally made error. */
static void s_fail(svc_client *c, svc_future *f, int rc, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void s_fail(svc_client *c, svc_future *f, int rc, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    svc_error_setv(&f->err, S_ID, code, fmt, ap);
    va_end(ap);
    s_finish(c, f, rc);
}

/* Runs the callbacks of finished calls, one at a time (a callback may start or wait on others). */
static void s_run_callbacks(svc_client *c)
{
    while (c->done_head) {
        svc_future *f = c->done_head;
        c->done_head = f->next;
        if (!c->done_head)
            c->done_tail = NULL;
        f->next = NULL;
        f->fn(f->arg, f->rc, &f->reply, &f->err);
        s_future_free(f);
    }
}

/* ---- attempts ------------------------------------------------------------------- */

/*
 * Builds the header's metadata from the client's pairs and the call's (which
 * win).  Pointers and entries live in one malloc'd block (free the returned
 * array); the strings are borrowed from c and extra.
 */
Svc__MetadataEntry **svc__client_header_meta(const svc_client *c, const svc_meta *extra, size_t *n)
{
    size_t cap = c->meta.n + (extra ? extra->n : 0);
    void *block = calloc(1, (cap ? cap : 1) * (sizeof(Svc__MetadataEntry *) + sizeof(Svc__MetadataEntry)));
    if (!block)
        return NULL;
    Svc__MetadataEntry **ptrs = block;
    Svc__MetadataEntry *store = (Svc__MetadataEntry *)(ptrs + (cap ? cap : 1));
    size_t k = 0;
    const svc_meta *srcs[] = { &c->meta, extra };
    for (int s = 0; s < 2; s++) {
        if (!srcs[s])
            continue;
        for (size_t i = 0; i < srcs[s]->n; i++) {
            const svc_meta_pair *p = &srcs[s]->pairs[i];
            size_t j;
            for (j = 0; j < k; j++)
                if (strcmp(store[j].key, p->key) == 0)
                    break;
            svc__metadata_entry__init(&store[j]);
            store[j].key = p->key;
            store[j].value = p->value;
            ptrs[j] = &store[j];
            if (j == k)
                k++;
        }
    }
    *n = k;
    return ptrs;
}

static void s_attempt(svc_client *c, svc_future *f);

/* An attempt failed: retry (now or after a pause) or finish, as the policy says. */
static void s_failed(svc_client *c, svc_future *f, svc__fail kind, int rc)
{
    int64_t now = svc__now_ms();
    s_detach(c, f);
    if (!f->address && kind != SVC__FAIL_REMOTE &&
        svc__breaker_report(&c->breakers, f->node, false, c->breaker_failures,
                            c->breaker_cooldown_ms, now))
        svc_warn("circuit open: leaving node out\tservice=%s node=%s cooldown_ms=%d", f->service,
                 f->node, c->breaker_cooldown_ms);
    bool again = !f->address && !f->abandoned && f->attempts <= f->policy.retries &&
                 svc__retry_wants(&f->policy, kind, f->err.code);
    int64_t pause = again ? svc__retry_pause(&f->policy, f->attempts, svc__rand()) : 0;
    if (!again || now + pause >= f->deadline) {
        s_finish(c, f, rc);
        return;
    }
    char **t = realloc(f->tried, (f->n_tried + 1) * sizeof *t);
    if (t) {
        f->tried = t;
        if ((t[f->n_tried] = strdup(f->node)))
            f->n_tried++;
    }
    svc_debug("retrying on another node\tservice=%s failed=%s pause_ms=%lld", f->service, f->node,
              (long long)pause);
    if (pause > 0) {
        f->state = S_BACKOFF;
        f->due = now + pause;
        return;
    }
    s_attempt(c, f);
}

static void s_transport_failed(svc_client *c, svc_future *f)
{
    svc_error_set(&f->err, S_ID, 503, "node \"%s\" of service \"%s\" unreachable", f->node,
                  f->service);
    s_failed(c, f, SVC__FAIL_TRANSPORT, SVC_EUNREACHABLE);
}

/*
 * Sends the request of f on its connection, which is up.  Returns 0 when
 * sent or f is finished; -EAGAIN when the connection would not take it
 * (f is then pending, in S_BACKOFF, holding nothing).
 */
static int s_send_try(svc_client *c, svc_future *f)
{
    svc__conn *k = f->conn;
    int64_t now = svc__now_ms();
    s_detach(c, f);
    int64_t until = f->deadline;
    if (f->policy.on & SVC_RETRY_TIMEOUT) {
        int per = f->policy.attempt_timeout_ms;
        if (per <= 0)
            per = (int)((f->deadline - now) / (f->policy.retries + 2 - f->attempts));
        if (per > 0 && now + per < until)
            until = now + per;
    }
    if (until <= now) {
        s_fail(c, f, SVC_ETIMEOUT, 408, "call to %s.%s timed out: deadline exceeded before it "
               "was sent", f->service, f->endpoint);
        return 0;
    }
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;
    h.id = ++c->next_id;
    h.service = f->service;
    h.endpoint = f->endpoint;
    h.content_type = f->ct;
    h.timeout_ms = (uint32_t)(until - now);
    h.metadata = svc__client_header_meta(c, &f->meta, &h.n_metadata);
    if (!h.metadata) {
        s_fail(c, f, -ENOMEM, 500, "out of memory");
        return 0;
    }
    int rc = svc__wire_send(k->sock, NULL, &h, f->body ? f->body : "", f->len, ZMQ_DONTWAIT);
    free(h.metadata);
    if (rc == -EAGAIN)
        return rc;
    if (rc < 0) {
        s_fail(c, f, rc, 500, "send to \"%s\" failed: %s", k->address, svc_strerror(rc));
        return 0;
    }
    f->conn = k;
    f->id = h.id;
    f->state = S_SENT;
    f->attempt_deadline = until;
    k->inflight++;
    s_table_add(c, f);
    return 0;
}

/* Sends the request of f on its connection, which is up; one that would not take it fails f. */
static void s_send(svc_client *c, svc_future *f)
{
    if (s_send_try(c, f) == -EAGAIN)
        s_transport_failed(c, f);
}

/* The node for the next attempt of f, or NULL after finishing f. */
static const char *s_choose(svc_client *c, svc_future *f)
{
    svc__node *nodes;
    size_t n;
    int rc;
    if (f->looked_up) {
        /* Just answered: taken whatever its freshness (cache_ms 0 is stale at once). */
        f->looked_up = false;
        rc = svc__regcache_peek(c->cache, f->service, &nodes, &n);
        if (rc < 0 || !n) {
            svc_error_set(&f->err, S_ID, 404, "service \"%s\" has no nodes", f->service);
            rc = SVC_ENOTFOUND;
        }
    } else {
        rc = svc__regcache_lookup(c->cache, f->service, f->deadline, &nodes, &n, &f->lookup,
                                  &f->err);
    }
    if (rc == SVC__LOOKUP_PENDING) {
        f->state = S_LOOKUP;   /* holding nothing; s_lookups_done moves it on */
        f->due = f->deadline;
        return NULL;
    }
    if (rc < 0) {
        s_finish(c, f, rc);
        return NULL;
    }
    /* Only a call's first attempt moves the rotation: retries would skew it. */
    uint64_t rr = c->rr;
    svc__select sel = { .strategy = f->strategy, .version = f->version,
                        .node_meta = f->node_meta, .rr = f->attempts ? &rr : &c->rr };
    for (size_t i = 0; i < n; i++) {
        nodes[i].failed = false;
        for (size_t j = 0; j < f->n_tried && !nodes[i].failed; j++)
            nodes[i].failed = strcmp(nodes[i].address, f->tried[j]) == 0;
        if (f->strategy == SVC_SELECT_LEAST_OUTSTANDING)
            nodes[i].outstanding = s_outstanding(c, nodes[i].address);
    }
    bool matched;
    svc__node *pick = svc__select_node(nodes, n, &sel, c->breakers, svc__now_ms(), &matched);
    if (!pick && matched) {
        /* Every matching node failed during this call: they may try again. */
        for (size_t i = 0; i < n; i++)
            nodes[i].failed = false;
        pick = svc__select_node(nodes, n, &sel, c->breakers, svc__now_ms(), &matched);
    }
    for (size_t i = 0; i < n; i++)
        nodes[i].failed = false;
    if (pick)
        svc__breaker_probing(c->breakers, pick->address, c->breaker_failures,
                             c->breaker_cooldown_ms, svc__now_ms());
    if (!pick) {
        s_fail(c, f, SVC_ENOTFOUND, 404, "no node of service \"%s\" matches version \"%s\" "
               "and metadata \"%s\"", f->service, f->version ? f->version : "*",
               f->node_meta ? f->node_meta : "");
        return NULL;
    }
    return pick->address;
}

/* Starts the next attempt of f: choose a node, then send or wait for its connection. */
static void s_attempt(svc_client *c, svc_future *f)
{
    int64_t now = svc__now_ms();
    if (now >= f->deadline) {
        if (f->attempts == 0)
            s_fail(c, f, SVC_ETIMEOUT, 408, "call to %s.%s not sent: its deadline has passed",
                   f->service, f->endpoint);
        else
            s_fail(c, f, SVC_ETIMEOUT, 408, "call to %s.%s timed out: deadline exceeded",
                   f->service, f->endpoint);
        return;
    }
    const char *address = f->address ? f->address : s_choose(c, f);
    if (!address)
        return;
    char *node = strdup(address);
    if (!node) {
        s_fail(c, f, -ENOMEM, 500, "out of memory");
        return;
    }
    free(f->node);
    f->node = node;
    f->attempts++;
    svc_error_release(&f->err);
    now = svc__now_ms();
    svc__conn *k = s_conn_get(c, node, now);
    if (k && s_conn_known(k, now)) {
        /* Taken as up without reading its monitor (s_conn_known).  If it
         * will not take the request, a drop may be waiting there unread:
         * read it, and go on as if it had been read first (a lost
         * connection is left for a new one, which the call waits for). */
        f->conn = k;
        if (s_send_try(c, f) != -EAGAIN)
            return;
        if (svc__conn_events(k) && !k->lost_at)
            k->lost_at = now;
        if (k->lost_at)
            k = s_conn_get(c, node, now);
    }
    if (!k) {
        svc_error_set(&f->err, S_ID, 503, "cannot connect to \"%s\": %s", node, strerror(errno));
        s_failed(c, f, SVC__FAIL_TRANSPORT, SVC_EUNREACHABLE);
        return;
    }
    int rc = svc__conn_check(k);
    f->conn = k;   /* in S_BACKOFF: not holding it yet */
    if (rc == 0) {
        s_send(c, f);
    } else if (rc == 1) {
        f->state = S_CONNECTING;
        k->waiting++;
        f->due = now + SVC_CONNECT_TIMEOUT_MS < f->deadline ? now + SVC_CONNECT_TIMEOUT_MS
                                                            : f->deadline;
    } else {
        s_transport_failed(c, f);
    }
}

/* An answer to the attempt f has in flight. */
static void s_answer(svc_client *c, svc_future *f, svc__msg *m)
{
    if (m->hdr->kind == SVC__KIND__ERROR) {
        const Svc__Error *e = m->hdr->error;
        svc_error_release(&f->err);
        f->err.id = strdup(e->id);
        f->err.code = e->code;
        f->err.detail = strdup(e->detail);
        f->err.status = strdup(e->status[0] ? e->status : svc_status_text(e->code));
        if (!f->address && e->code != 503)
            svc__breaker_report(&c->breakers, f->node, true, c->breaker_failures,
                                c->breaker_cooldown_ms, svc__now_ms());
        s_failed(c, f, SVC__FAIL_REMOTE, SVC_EREMOTE);
        return;
    }
    size_t blen;
    const void *b = svc__msg_body(m, &blen);
    svc_reply *out = &f->reply;
    out->body = blen ? malloc(blen + 1) : NULL;
    if (blen && out->body) {
        memcpy(out->body, b, blen);
        ((char *)out->body)[blen] = '\0';
    }
    out->len = blen;
    out->content_type = strdup(m->hdr->content_type[0] ? m->hdr->content_type : SVC_CT_PROTOBUF);
    out->node = strdup(f->node);
    if (!f->address)
        svc__breaker_report(&c->breakers, f->node, true, c->breaker_failures,
                            c->breaker_cooldown_ms, svc__now_ms());
    if ((blen && !out->body) || !out->content_type || !out->node) {
        svc_reply_release(out);
        s_fail(c, f, -ENOMEM, 500, "out of memory");
        return;
    }
    s_finish(c, f, 0);
}

/*
 * Reads the messages waiting on k and hands answers to their calls, while
 * any call waits on k (what comes later is only late answers: read then).
 */
static void s_conn_read(svc_client *c, svc__conn *k)
{
    while (k->inflight) {
        svc__msg m;
        char why[128] = "";
        int rc = svc__msg_recv(k->sock, &m, ZMQ_DONTWAIT, false, why, sizeof why);
        if (rc == SVC_EPROTO) {
            svc__msg_close(&m);
            svc_warn("malformed answer dropped\tnode=%s reason=\"%s\"", k->address, why);
            continue;
        }
        if (rc < 0)
            return;
        svc_future *f = s_table_find(c, m.hdr->id);
        if (f && f->conn == k &&
            (m.hdr->kind == SVC__KIND__RESPONSE || m.hdr->kind == SVC__KIND__ERROR))
            s_answer(c, f, &m);
        /* else: a late answer to an abandoned attempt, or a pong: dropped */
        svc__msg_close(&m);
    }
}

/* ---- the pump ----------------------------------------------------------------------- */

/* The earliest time a pending call needs attention, or -1. */
static int64_t s_next_due(const svc_client *c)
{
    int64_t due = -1;
    for (const svc_future *f = c->pending; f; f = f->next) {
        int64_t t = f->state == S_SENT ? f->attempt_deadline : f->due;
        if (f->state == S_SENT && f->conn->lost_at && f->conn->lost_at + SVC_DROP_GRACE_MS < t)
            t = f->conn->lost_at + SVC_DROP_GRACE_MS;
        if (due < 0 || t < due)
            due = t;
    }
    return due;
}

/* Timers: deadlines, attempt timeouts, connection give-ups, lost connections, backoffs. */
static void s_timers(svc_client *c)
{
    int64_t now = svc__now_ms();
    for (svc_future *f = c->pending, *next; f; f = next) {
        next = f->next;
        switch (f->state) {
        case S_SENT:
            if (f->conn->lost_at && now >= f->conn->lost_at + SVC_DROP_GRACE_MS) {
                s_transport_failed(c, f);
            } else if (now >= f->attempt_deadline) {
                svc_error_set(&f->err, S_ID, 408, "call to %s.%s timed out: deadline exceeded",
                              f->service, f->endpoint);
                s_failed(c, f, SVC__FAIL_TIMEOUT, SVC_ETIMEOUT);
            }
            break;
        case S_CONNECTING:
            if (now >= f->due) {
                if (now >= f->deadline)
                    s_fail(c, f, SVC_ETIMEOUT, 408, "call to %s.%s timed out: deadline exceeded",
                           f->service, f->endpoint);
                else
                    s_transport_failed(c, f);
            }
            break;
        case S_BACKOFF:
            if (now >= f->due)
                s_attempt(c, f);
            break;
        case S_LOOKUP:
            if (now >= f->due)
                s_fail(c, f, SVC_ETIMEOUT, 408, "call to %s.%s timed out: no answer from the "
                       "registry at \"%s\" before its deadline", f->service, f->endpoint,
                       c->registry);
            break;
        case S_DONE:
            break;
        }
    }
}

/*
 * Lookups of the registry cache that ended: their calls choose a node now
 * (from the answer), or finish with the lookup's failure.
 */
static void s_lookups_done(svc_client *c)
{
    uint64_t id;
    int rc;
    svc_error err = SVC_ERROR_INIT;
    while (svc__regcache_done(c->cache, &id, &rc, &err)) {
        for (svc_future *f = c->pending, *next; f; f = next) {
            next = f->next;
            if (f->state != S_LOOKUP || f->lookup != id)
                continue;
            f->lookup = 0;
            f->state = S_BACKOFF;
            if (rc < 0) {
                svc_error_copy(&f->err, &err);
                s_finish(c, f, rc);
            } else {
                f->looked_up = true;
                s_attempt(c, f);
            }
        }
    }
    svc_error_release(&err);
}

/* A connection with calls waiting for it: send them once it is up, fail them if it is lost. */
static void s_conn_waiters(svc_client *c, svc__conn *k)
{
    int rc = svc__conn_check(k);
    if (rc == 1)
        return;
    for (svc_future *f = c->pending, *next; f && k->waiting; f = next) {
        next = f->next;
        if (f->state != S_CONNECTING || f->conn != k)
            continue;
        if (rc == 0)
            s_send(c, f);
        else
            s_transport_failed(c, f);
    }
}

/*
 * Closes lost connections that no call uses any more: at once those lost
 * with calls on them; idle ones (a node that went away between calls,
 * which ZeroMQ would retry for ever) when a sweep every S_SWEEP_MS reads
 * their monitors.  The sweep also forgets breakers of nodes long quiet.
 */
static void s_conn_sweep(svc_client *c)
{
    int64_t now = svc__now_ms();
    bool idle_too = now >= c->next_sweep;
    if (idle_too) {
        c->next_sweep = now + S_SWEEP_MS;
        svc__breaker_prune(&c->breakers, now);
    }
    for (svc__conn *k = c->conns, *next; k; k = next) {
        next = k->next;
        if (k->inflight || k->waiting)
            continue;
        if (k->lost_at || (idle_too && svc__conn_events(k)))
            s_conn_drop(c, k);
    }
}

/*
 * One round of I/O: waits for sockets or the next timer, at most until
 * `until` (monotonic ms; -1 = no limit but the calls' own), reads answers,
 * moves connections, timers and the registry watch on, then runs callbacks.
 *
 * Every socket zmq_poll watches costs it a syscall, so most rounds watch
 * only the DEALERs with calls on them; a "full" round, at most every
 * S_FULL_POLL_MS, also watches their monitors (drops) and the registry
 * watch (events).  A drop is therefore seen within S_FULL_POLL_MS; a
 * monitor found empty dates the connection's state (events_at), which new
 * calls trust for as long (s_conn_known) instead of reading it again.
 */
static void s_pump(svc_client *c, int64_t until)
{
    zmq_pollitem_t items[S_MAX_POLL + 4];   /* + the watch's 2 and the lookups' 2 */
    struct { svc__conn *k; int mon; } owners[S_MAX_POLL];
    int n = 0, no = 0;
    int64_t now = svc__now_ms();
    bool full = now >= c->next_full;
    if (full)
        c->next_full = now + S_FULL_POLL_MS;
    for (svc__conn *k = c->conns; k && n + 2 <= S_MAX_POLL; k = k->next) {
        if (!k->inflight && !k->waiting)
            continue;
        owners[no].k = k;
        owners[no].mon = -1;
        items[n++] = (zmq_pollitem_t){ k->sock, 0, ZMQ_POLLIN | (k->waiting ? ZMQ_POLLOUT : 0), 0 };
        if (full || k->waiting) {
            owners[no].mon = n;
            items[n++] = (zmq_pollitem_t){ k->mon, 0, ZMQ_POLLIN, 0 };
        }
        no++;
    }
    int nconn = n;
    int nwatch = full ? svc__regcache_pollitems(c->cache, items + n) : 0;
    n += nwatch;
    n += svc__regcache_lookup_items(c->cache, items + n);   /* every round: they are waited on */

    int64_t due = s_next_due(c), lookup_due = svc__regcache_lookup_due(c->cache);
    if (lookup_due >= 0 && (due < 0 || lookup_due < due))
        due = lookup_due;
    if (until >= 0 && (due < 0 || until < due))
        due = until;
    if (!full && c->n_pending && (due < 0 || c->next_full < due))
        due = c->next_full;   /* come back for a full round */
    long wait = due < 0 ? -1 : due <= now ? 0 : due - now > 1 << 30 ? 1 << 30 : (long)(due - now);
    if (!c->n_pending && wait < 0)
        wait = 0;   /* nothing to wait for */
    int got = zmq_poll(items, n, wait);
    if (got < 0 && errno != EINTR)
        svc_warn("poll failed\terror=\"%s\"", strerror(errno));
    for (int i = 0, it = 0; i < no; i++) {
        svc__conn *k = owners[i].k;
        if (got > 0 && (items[it].revents & ZMQ_POLLIN))
            s_conn_read(c, k);
        it += owners[i].mon >= 0 ? 2 : 1;
        if (got > 0 && owners[i].mon >= 0 && (items[owners[i].mon].revents & ZMQ_POLLIN))
            svc__conn_events(k);
        else if (got >= 0 && owners[i].mon >= 0)
            k->events_at = now;   /* polled and empty: its state is known (s_conn_known) */
        if (k->lost && !k->lost_at) {
            k->lost_at = svc__now_ms();
            s_conn_read(c, k);   /* what came before the drop */
        }
    }
    for (int i = 0; i < no; i++)
        if (owners[i].k->waiting)
            s_conn_waiters(c, owners[i].k);
    bool cache_ready = full && !nwatch;   /* not open: let it take its next step */
    for (int i = nconn; i < n; i++)
        cache_ready |= items[i].revents != 0;
    lookup_due = svc__regcache_lookup_due(c->cache);
    cache_ready |= lookup_due >= 0 && svc__now_ms() >= lookup_due;
    if (cache_ready)
        svc__regcache_io(c->cache);
    s_lookups_done(c);
    s_timers(c);
    s_conn_sweep(c);
    s_run_callbacks(c);
}

/* ---- the public call API ---------------------------------------------------------- */

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Makes the future of a call (copying its arguments) and lists it as pending. */
static svc_future *s_future_new(svc_client *c, const char *service, const char *endpoint,
                                const void *body, size_t len, const svc_call_opts *o)
{
    svc_future *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->c = c;
    f->state = S_BACKOFF;
    f->service = strdup(service ? service : "");
    f->endpoint = strdup(endpoint ? endpoint : "");
    f->ct = strdup(o->content_type ? o->content_type : SVC_CT_PROTOBUF);
    f->version = s_dup(o->version);
    f->node_meta = s_dup(o->node_meta);
    f->address = s_dup(o->address);
    f->len = len;
    f->body = len ? malloc(len) : NULL;
    if (!f->service || !f->endpoint || !f->ct || (o->version && !f->version) ||
        (o->node_meta && !f->node_meta) || (o->address && !f->address) || (len && !f->body) ||
        (o->meta && svc_meta_merge(&f->meta, o->meta) < 0)) {
        s_future_free(f);
        return NULL;
    }
    if (len)
        memcpy(f->body, body, len);
    f->strategy = o->strategy ? o->strategy : c->strategy;
    f->policy = o->retry ? *o->retry : c->retry;
    if (o->retries)
        f->policy.retries = o->retries < 0 ? 0 : o->retries > 100 ? 100 : o->retries;
    int64_t now = svc__now_ms();
    f->deadline = now + (o->timeout_ms > 0 ? o->timeout_ms : c->timeout_ms);
    if (o->deadline_ms > 0 && o->deadline_ms < f->deadline)
        f->deadline = o->deadline_ms;
    f->next = c->pending;
    if (c->pending)
        c->pending->prev = f;
    c->pending = f;
    c->n_pending++;
    return f;
}

/* Validates and starts f; a failure finishes it. */
static void s_start(svc_client *c, svc_future *f, const void *body, const svc_call_opts *o)
{
    if (!f->service[0] || !f->endpoint[0]) {
        s_fail(c, f, SVC_EINVAL, 400, "service and endpoint must be named");
    } else if (f->len > SVC_WIRE_MAX_BODY) {
        s_fail(c, f, SVC_ETOOBIG, 413, "request body of %zu bytes exceeds the %d byte limit",
               f->len, SVC_WIRE_MAX_BODY);
    } else if (f->len && !body) {
        s_fail(c, f, SVC_EINVAL, 400, "request body of %zu bytes given as NULL", f->len);
    } else if (o->retry && svc_retry_policy_check(o->retry) < 0) {
        s_fail(c, f, SVC_EINVAL, 400, "invalid retry policy");
    } else if (o->strategy < SVC_SELECT_DEFAULT || o->strategy > SVC_SELECT_LEAST_OUTSTANDING) {
        s_fail(c, f, SVC_EINVAL, 400, "invalid strategy %d", (int)o->strategy);
    } else {
        s_attempt(c, f);
    }
}

static int s_call_start(svc_client *c, const char *service, const char *endpoint,
                        const void *body, size_t len, const svc_call_opts *opts, svc_done_fn fn,
                        void *arg, svc_future **out)
{
    static const svc_call_opts none = { 0 };
    const svc_call_opts *o = opts ? opts : &none;
    if (!c)
        return SVC_EINVAL;
    if (c->closing)
        return SVC_ECLOSED;
    /* The body is copied whole before it is checked: cap the copy. */
    svc_future *f = s_future_new(c, service, endpoint, len <= SVC_WIRE_MAX_BODY ? body : NULL,
                                 len <= SVC_WIRE_MAX_BODY && body ? len : 0, o);
    if (!f)
        return -ENOMEM;
    f->len = len;
    f->fn = fn;
    f->arg = arg;
    /* On a thread handling a request the call ends with that request's
     * deadline at the latest (s_attempt answers 408 unsent once it passed). */
    const svc__logctx *cur = svc__logctx_get();
    if (cur && cur->deadline >= 0 && cur->deadline < f->deadline)
        f->deadline = cur->deadline;
    if (out)
        *out = f;
    s_start(c, f, body, o);
    return 0;
}

/*
 * The asynchronous entry points: the call carries trace ids (continuing
 * the thread's trace, svc/trace.h) as a synchronous one does, but runs no
 * wrappers (a wrapper brackets a whole call on one stack, svc/wrap.h).
 */
static int s_call_traced(svc_client *c, const char *service, const char *endpoint,
                         const void *body, size_t len, const svc_call_opts *opts,
                         svc_done_fn fn, void *arg, svc_future **out)
{
    if (!c)
        return SVC_EINVAL;
    svc_call_opts o = opts ? *opts : (svc_call_opts){ 0 };
    svc__trace_meta tm;
    o.meta = svc__trace_call_meta(o.meta, svc__client_meta(c), &tm);
    return s_call_start(c, service, endpoint, body, len, &o, fn, arg, out);
}

int svc_call_async(svc_client *c, const char *service, const char *endpoint,
                   const void *body, size_t len, const svc_call_opts *opts, svc_future **out)
{
    if (!out)
        return SVC_EINVAL;
    *out = NULL;
    return s_call_traced(c, service, endpoint, body, len, opts, NULL, NULL, out);
}

int svc_call_cb(svc_client *c, const char *service, const char *endpoint, const void *body,
                size_t len, const svc_call_opts *opts, svc_done_fn fn, void *arg)
{
    if (!fn)
        return SVC_EINVAL;
    return s_call_traced(c, service, endpoint, body, len, opts, fn, arg, NULL);
}

int svc_future_wait(svc_future *f, int timeout_ms)
{
    int64_t until = timeout_ms < 0 ? -1 : svc__now_ms() + timeout_ms;
    for (bool pumped = false;; pumped = true) {
        if (f->state == S_DONE)
            return 0;
        if (pumped && until >= 0 && svc__now_ms() >= until)
            return SVC_ETIMEOUT;   /* (at least one round of I/O, even for 0 ms) */
        s_pump(f->c, until);
    }
}

bool svc_future_ready(svc_future *f)
{
    if (f->state != S_DONE)
        s_pump(f->c, 0);
    return f->state == S_DONE;
}

int svc_future_result(svc_future *f, svc_reply *out, svc_error *err)
{
    if (f->state != S_DONE)
        return -EAGAIN;
    if (out) {
        svc_reply_release(out);
        *out = f->reply;
        memset(&f->reply, 0, sizeof f->reply);
    }
    if (err) {
        svc_error_release(err);
        *err = f->err;
        memset(&f->err, 0, sizeof f->err);
    }
    return f->rc;
}

const char *svc_future_node(const svc_future *f)
{
    return f->node;
}

int svc_future_attempts(const svc_future *f)
{
    return f->attempts;
}

void svc_future_destroy(svc_future **fp)
{
    svc_future *f = *fp;
    if (!f)
        return;
    *fp = NULL;
    if (f->state == S_DONE) {
        s_future_free(f);
        return;
    }
    f->abandoned = true;
    if (f->state != S_SENT)
        s_finish(f->c, f, SVC_ECLOSED);   /* nothing on the wire: free it now */
}

size_t svc_client_poll(svc_client *c, int timeout_ms)
{
    int64_t until = timeout_ms < 0 ? -1 : svc__now_ms() + timeout_ms;
    uint64_t before = c->completions;
    do {
        s_pump(c, until);
    } while (c->n_pending && c->completions == before &&
             (until < 0 || svc__now_ms() < until));
    return c->n_pending;
}

void svc_client_destroy(svc_client **cp)
{
    svc_client *c = *cp;
    if (!c)
        return;
    c->closing = true;
    while (c->pending) {
        svc_future *f = c->pending;
        bool users = !f->fn && !f->abandoned;
        svc_error_set(&f->err, S_ID, 503, "client closed before the call to %s.%s ended",
                      f->service, f->endpoint);
        s_finish(c, f, SVC_ECLOSED);
        if (users)
            f->c = NULL;   /* the user's: stays valid, done */
    }
    s_run_callbacks(c);
    while (c->conns) {
        svc__conn *next = c->conns->next;
        svc__conn_destroy(&c->conns);
        c->conns = next;
    }
    svc__regcache_destroy(&c->cache);
    svc_meta_release(&c->meta);
    svc__breaker_free(&c->breakers);
    free(c->registry);
    free(c);
    *cp = NULL;
}

/* ---- synchronous calls ------------------------------------------------------------- */

int svc__client_call_raw(svc_client *c, const char *service, const char *endpoint,
                         const void *body, size_t len, const svc_call_opts *opts,
                         svc_reply *out, svc_error *err)
{
    memset(out, 0, sizeof *out);
    svc_future *f;
    int rc = s_call_start(c, service, endpoint, body, len, opts, NULL, NULL, &f);
    if (rc < 0) {
        svc_error_set(err, S_ID, 500, "%s", svc_strerror(rc));
        return rc;
    }
    svc_handler_blocking();   /* a handler waiting on an onward call lets another worker run */
    svc_future_wait(f, -1);
    rc = svc_future_result(f, out, err);
    svc_future_destroy(&f);
    return rc;
}

int svc_call(svc_client *c, const char *service, const char *endpoint,
             const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rsp_desc,
             ProtobufCMessage **rsp, const svc_call_opts *opts, svc_error *err)
{
    *rsp = NULL;
    svc_call_opts o = opts ? *opts : (svc_call_opts){ 0 };
    o.content_type = SVC_CT_PROTOBUF;
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        svc_error_set(err, S_ID, 500, "out of memory");
        return -ENOMEM;
    }
    protobuf_c_message_pack(req, buf);
    svc_reply r = SVC_REPLY_INIT;
    int rc = svc_client_call_raw(c, service, endpoint, buf, len, &o, &r, err);
    free(buf);
    if (rc < 0)
        return rc;
    char why[256];
    rc = svc_codec_decode(r.content_type, rsp_desc, r.body, r.len, rsp, why, sizeof why);
    if (rc < 0)
        svc_error_set(err, S_ID, 500, "answer of %s.%s does not decode: %s", service, endpoint,
                      why);
    svc_reply_release(&r);
    return rc;
}
