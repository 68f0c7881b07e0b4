/* libsvc/regcache.c — registry views kept fresh by Registry.Watch.  See regcache.h. */
#include "regcache.h"
#include "svc/codec.h"
#include "svc/log.h"
#include "clock.h"
#include "conn.h"
#include "registry.pb-c.h"
#include "wire.h"
#include "zctx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ID "svc.client"
#define S_FOREVER INT64_MAX

/* The cached nodes of one service name. */
typedef struct s_view {
    char *service;        /* owned */
    svc__node *nodes;     /* owned array of n (cap allocated) */
    size_t n, cap;        /* nodes in use / allocated */
    int64_t fresh_until;  /* monotonic ms; S_FOREVER while the watch keeps it */
    bool resync;          /* the watch reopened since this view was fetched */
    struct s_view *next;
} s_view;

typedef enum s_watch_state { S_WATCH_OFF, S_WATCH_CONNECTING, S_WATCH_OPEN } s_watch_state;

/* One Registry.GetService of a service name, shared by every call that needs it. */
typedef struct s_lookup {
    char *service;        /* owned */
    uint64_t id;          /* the lookup's id (given to waiters) */
    uint64_t req;         /* id of its request once sent, else 0 */
    int64_t deadline;     /* monotonic ms: the latest of its waiters' (stale: capped) */
    int64_t connect_by;   /* unsent: the registry's connection must be up by then */
    bool async;           /* a client call waits on it: handed out by svc__regcache_done */
    bool done;            /* answered or failed: rc and err hold the outcome */
    int rc;               /* done: 0 (the view is there), or the failure */
    svc_error err;        /* done, rc < 0: the error for the waiters */
    struct s_lookup *next;
} s_lookup;

struct svc__regcache {
    char *address;          /* registry address, owned */
    const svc_meta *meta;   /* sent with registry calls, borrowed */
    int ttl_ms;             /* view lifetime without a watch */
    bool watch_on;          /* watch wanted */
    s_view *views;          /* cached views */
    svc__conn *conn;        /* for GetService, lazily made */
    uint64_t next_id;       /* ids of GetService calls and the watch */
    int64_t down_until;     /* registry failed: serve stale views until then */
    bool warned;            /* "using cached nodes" logged for this outage */
    s_watch_state wstate;   /* watch state (see regcache.h) */
    svc__conn *wconn;       /* the watch's connection */
    uint64_t wid;           /* the watch's stream id */
    int64_t wdue;           /* OFF: retry at; CONNECTING: give up at; OPEN: settled at */
    int64_t last_io;        /* monotonic ms of the last svc__regcache_io */
    s_lookup *lookups;      /* GetService calls in flight, and done ones not yet handed out */
};

static void s_view_free(s_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        svc__node_release(&v->nodes[i]);
    free(v->nodes);
    free(v->service);
    free(v);
}

svc__regcache *svc__regcache_new(const char *address, const svc_meta *meta)
{
    svc__regcache *r = calloc(1, sizeof *r);
    if (!r || !(r->address = strdup(address))) {
        free(r);
        return NULL;
    }
    r->meta = meta;
    r->ttl_ms = 5000;
    r->watch_on = true;
    r->next_id = svc__rand() >> 16;
    return r;
}

/* Ends the watch (cancelling it if open): OFF, retried after SVC_WATCH_RETRY_MS. */
static void s_watch_end(svc__regcache *r, bool cancel)
{
    if (r->wconn && cancel && r->wstate == S_WATCH_OPEN) {
        Svc__Header h = SVC__HEADER__INIT;
        h.kind = SVC__KIND__STREAM_CANCEL;
        h.id = r->wid;
        if (svc__wire_send(r->wconn->sock, NULL, &h, NULL, 0, ZMQ_DONTWAIT) == 0)
            svc__conn_quiesce(r->wconn, r->wid, 100);   /* no event half-received at close */
        int linger = 100;   /* if no PONG came: let the cancel leave before the socket closes */
        zmq_setsockopt(r->wconn->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    svc__conn_destroy(&r->wconn);
    int64_t now = svc__now_ms();
    if (r->wstate == S_WATCH_OPEN)
        for (s_view *v = r->views; v; v = v->next)
            if (v->fresh_until == S_FOREVER)
                v->fresh_until = now + r->ttl_ms;
    r->wstate = S_WATCH_OFF;
    r->wdue = now + SVC_WATCH_RETRY_MS;
}

static void s_lookup_free(s_lookup *l)
{
    free(l->service);
    svc_error_release(&l->err);
    free(l);
}

void svc__regcache_destroy(svc__regcache **rp)
{
    svc__regcache *r = *rp;
    if (!r)
        return;
    s_watch_end(r, true);
    while (r->views) {
        s_view *next = r->views->next;
        s_view_free(r->views);
        r->views = next;
    }
    while (r->lookups) {
        s_lookup *next = r->lookups->next;
        s_lookup_free(r->lookups);
        r->lookups = next;
    }
    svc__conn_destroy(&r->conn);
    free(r->address);
    free(r);
    *rp = NULL;
}

void svc__regcache_set_ttl(svc__regcache *r, int cache_ms)
{
    r->ttl_ms = cache_ms;
}

void svc__regcache_set_watch(svc__regcache *r, bool on)
{
    r->watch_on = on;
    if (!on && r->wstate != S_WATCH_OFF)
        s_watch_end(r, true);
}

bool svc__regcache_watching(const svc__regcache *r)
{
    return r->wstate == S_WATCH_OPEN && svc__now_ms() >= r->wdue;
}

/* How long a view fetched now stays fresh. */
static int64_t s_fresh_until(const svc__regcache *r, int64_t now)
{
    if (r->wstate == S_WATCH_OPEN)
        return now >= r->wdue ? S_FOREVER : r->wdue;
    return now + r->ttl_ms;
}

/* ---- the watch ------------------------------------------------------------------ */

static s_view *s_view_find(svc__regcache *r, const char *service)
{
    for (s_view *v = r->views; v; v = v->next)
        if (strcmp(v->service, service) == 0)
            return v;
    return NULL;
}

static int s_send_open(svc__regcache *r)
{
    Svc__Registry__WatchRequest req = SVC__REGISTRY__WATCH_REQUEST__INIT;
    uint8_t body[8];   /* an empty WatchRequest (every service) packs to 0 bytes */
    size_t len = svc__registry__watch_request__pack(&req, body);
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__STREAM_OPEN;
    h.id = r->wid = ++r->next_id;
    h.service = "svc.registry";
    h.endpoint = "Registry.Watch";
    h.content_type = SVC_CT_PROTOBUF;
    return svc__wire_send(r->wconn->sock, NULL, &h, body, len, ZMQ_DONTWAIT);
}

/* OFF -> CONNECTING, CONNECTING -> OPEN or OFF, as due. */
static void s_watch_step(svc__regcache *r, int64_t now)
{
    if (r->wstate == S_WATCH_OFF) {
        if (!r->watch_on || !r->views || now < r->wdue)
            return;
        r->wconn = svc__conn_new(r->address);
        if (!r->wconn) {
            r->wdue = now + SVC_WATCH_RETRY_MS;
            return;
        }
        r->wstate = S_WATCH_CONNECTING;
        r->wdue = now + SVC_CONNECT_TIMEOUT_MS;
    }
    if (r->wstate != S_WATCH_CONNECTING)
        return;
    int rc = svc__conn_check(r->wconn);
    if (rc == 1 && now < r->wdue)
        return;
    if (rc != 0 || s_send_open(r) < 0) {
        svc_debug("registry watch not opened\tregistry=%s", r->address);
        r->wstate = S_WATCH_CONNECTING;
        s_watch_end(r, false);
        return;
    }
    /* Resync: every view is fetched again once the watch has settled. */
    r->wstate = S_WATCH_OPEN;
    r->wdue = now + SVC_WATCH_SETTLE_MS;
    for (s_view *v = r->views; v; v = v->next) {
        v->resync = true;
        if (v->fresh_until > r->wdue)
            v->fresh_until = r->wdue;
    }
    svc_debug("registry watch open\tregistry=%s", r->address);
}

static int s_reason(char *why, size_t whylen, const char *what)
{
    snprintf(why, whylen, "%s", what);
    return SVC_EPROTO;
}

/* Replaces node's contents from a registry node of version. */
static int s_node_fill(svc__node *nd, const Svc__Registry__Node *rn, const char *version)
{
    svc__node fresh = { 0 };
    fresh.id = strdup(rn->id);
    fresh.address = strdup(rn->address);
    fresh.version = strdup(version);
    if (!fresh.id || !fresh.address || !fresh.version)
        goto out_release;
    for (size_t k = 0; k < rn->n_metadata; k++)
        if (svc_meta_set(&fresh.meta, rn->metadata[k]->key, rn->metadata[k]->value) < 0)
            goto out_release;
    svc__node_release(nd);
    *nd = fresh;
    return 0;

out_release:
    svc__node_release(&fresh);
    return -ENOMEM;
}

int svc__regcache_apply(svc__regcache *r, const void *body, size_t len, char *why, size_t whylen)
{
    Svc__Registry__Result *res = svc__registry__result__unpack(NULL, len, body);
    if (!res)
        return s_reason(why, whylen, "watch event does not decode");
    int rc = SVC_EPROTO;
    bool create = strcmp(res->action, "create") == 0, update = strcmp(res->action, "update") == 0;
    bool del = strcmp(res->action, "delete") == 0;
    const Svc__Registry__Service *s = res->service;
    if (!create && !update && !del) {
        s_reason(why, whylen, "unknown watch action");
        goto out_free;
    }
    if (!s || !s->name[0] || s->n_nodes != 1 || !s->nodes[0]->id[0]) {
        s_reason(why, whylen, "watch event must name a service and exactly one node");
        goto out_free;
    }
    const Svc__Registry__Node *rn = s->nodes[0];
    if (!del && !svc__address_valid(rn->address)) {
        s_reason(why, whylen, "watch event carries an invalid node address");
        goto out_free;
    }
    rc = 0;
    s_view *v = s_view_find(r, s->name);
    if (!v)
        goto out_free;   /* a service this client does not call */
    size_t i;
    for (i = 0; i < v->n; i++)
        if (v->nodes[i].id && strcmp(v->nodes[i].id, rn->id) == 0)
            break;
    if (del) {
        if (i < v->n) {
            svc__node_release(&v->nodes[i]);
            v->nodes[i] = v->nodes[--v->n];
        }
        goto out_free;
    }
    if (i == v->n) {
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 4;
            svc__node *nn = realloc(v->nodes, cap * sizeof *nn);
            if (!nn) {
                rc = -ENOMEM;
                goto out_free;
            }
            v->nodes = nn;
            v->cap = cap;
        }
        memset(&v->nodes[v->n++], 0, sizeof *v->nodes);
    }
    rc = s_node_fill(&v->nodes[i], rn, s->version[0] ? s->version : "latest");
    if (rc < 0 && i == v->n - 1 && !v->nodes[i].address)
        v->n--;

out_free:
    svc__registry__result__free_unpacked(res, NULL);
    return rc;
}

int svc__regcache_pollitems(svc__regcache *r, zmq_pollitem_t *items)
{
    if (r->wstate != S_WATCH_OPEN)
        return 0;
    items[0] = (zmq_pollitem_t){ r->wconn->sock, 0, ZMQ_POLLIN, 0 };
    items[1] = (zmq_pollitem_t){ r->wconn->mon, 0, ZMQ_POLLIN, 0 };
    return 2;
}

/* Reads every message the watch has; ends it on STREAM_CLOSE, ERROR or a lost connection. */
static void s_watch_read(svc__regcache *r)
{
    for (;;) {
        svc__msg m;
        char why[128] = "";
        int rc = svc__msg_recv(r->wconn->sock, &m, ZMQ_DONTWAIT, false, why, sizeof why);
        if (rc == SVC_EPROTO) {
            svc__msg_close(&m);
            svc_warn("malformed watch message dropped\tregistry=%s reason=\"%s\"", r->address, why);
            continue;
        }
        if (rc < 0)
            break;
        const Svc__Header *h = m.hdr;
        if (h->id != r->wid) {
            svc__msg_close(&m);
            continue;
        }
        if (h->kind == SVC__KIND__STREAM_DATA) {
            size_t blen;
            const void *b = svc__msg_body(&m, &blen);
            if (svc__regcache_apply(r, b ? b : "", blen, why, sizeof why) == SVC_EPROTO)
                svc_warn("watch event dropped\tregistry=%s reason=\"%s\"", r->address, why);
            svc__msg_close(&m);
            continue;
        }
        bool ends = h->kind == SVC__KIND__STREAM_CLOSE || h->kind == SVC__KIND__ERROR ||
                    h->kind == SVC__KIND__STREAM_CANCEL;
        if (ends)
            svc_info("registry watch ended, views fall back to their ttl\tregistry=%s code=%d",
                     r->address, h->error ? h->error->code : 0);
        svc__msg_close(&m);
        if (ends) {
            s_watch_end(r, false);
            return;
        }
    }
    if (svc__conn_events(r->wconn)) {
        svc_info("registry watch lost, views fall back to their ttl\tregistry=%s", r->address);
        s_watch_end(r, false);
    }
}

static void s_lookups_step(svc__regcache *r);

void svc__regcache_io(svc__regcache *r)
{
    int64_t now = svc__now_ms();
    r->last_io = now;
    if (r->wstate != S_WATCH_OPEN)
        s_watch_step(r, now);
    else
        s_watch_read(r);
    s_lookups_step(r);
}

/* ---- fetching ------------------------------------------------------------------- */

/* Header metadata from meta: one malloc'd block (free it), strings borrowed. */
static Svc__MetadataEntry **s_header_meta(const svc_meta *meta, size_t *n)
{
    size_t k = meta ? meta->n : 0;
    Svc__MetadataEntry **ptrs = calloc(1, (k ? k : 1) * (sizeof *ptrs + sizeof **ptrs));
    if (!ptrs)
        return NULL;
    Svc__MetadataEntry *ents = (Svc__MetadataEntry *)(ptrs + (k ? k : 1));
    for (size_t i = 0; i < k; i++) {
        svc__metadata_entry__init(&ents[i]);
        ents[i].key = meta->pairs[i].key;
        ents[i].value = meta->pairs[i].value;
        ptrs[i] = &ents[i];
    }
    *n = k;
    return ptrs;
}

/* Builds a view from a GetService answer: every node of every version. */
static s_view *s_view_from(const char *service, const Svc__Registry__GetServiceResponse *rsp)
{
    s_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < rsp->n_services; i++)
        total += rsp->services[i]->n_nodes;
    v->service = strdup(service);
    v->cap = total ? total : 1;
    v->nodes = calloc(v->cap, sizeof *v->nodes);
    if (!v->service || !v->nodes)
        goto out_free;
    for (size_t i = 0; i < rsp->n_services; i++) {
        const Svc__Registry__Service *s = rsp->services[i];
        for (size_t j = 0; j < s->n_nodes; j++) {
            if (!svc__address_valid(s->nodes[j]->address))
                continue;
            if (s_node_fill(&v->nodes[v->n], s->nodes[j], s->version[0] ? s->version : "latest") < 0)
                goto out_free;
            v->n++;
        }
    }
    return v;

out_free:
    s_view_free(v);
    return NULL;
}

static void s_view_drop(svc__regcache *r, const char *service)
{
    for (s_view **p = &r->views; *p; p = &(*p)->next) {
        if (strcmp((*p)->service, service) == 0) {
            s_view *v = *p;
            *p = v->next;
            s_view_free(v);
            return;
        }
    }
}

int svc__regcache_peek(svc__regcache *r, const char *service, svc__node **nodes, size_t *n)
{
    s_view *v = s_view_find(r, service);
    if (!v)
        return SVC_ENOTFOUND;
    *nodes = v->nodes;
    *n = v->n;
    return 0;
}

int svc__regcache_seed(svc__regcache *r, const char *service)
{
    if (s_view_find(r, service))
        return 0;
    s_view *v = calloc(1, sizeof *v);
    if (!v || !(v->service = strdup(service))) {
        free(v);
        return -ENOMEM;
    }
    v->fresh_until = S_FOREVER;
    v->next = r->views;
    r->views = v;
    return 0;
}

/* ---- lookups: GetService without blocking ----------------------------------------- */

/*
 * A lookup is over: makes its outcome (rc, err) from the registry's answer
 * (rc 0 with rsp, or the failure with rerr), updating the view as the
 * freshness rules say.  Takes rsp and rerr.
 */
static void s_lookup_end(svc__regcache *r, s_lookup *l, int rc,
                         Svc__Registry__GetServiceResponse *rsp, svc_error *rerr)
{
    int64_t now = svc__now_ms();
    const char *service = l->service;
    s_view *v = s_view_find(r, service);
    l->done = true;
    l->rc = 0;
    if (rc == SVC_EREMOTE && rerr->code == 404 && v && v->n && v->resync) {
        /* A registry that just came back may not have heard from the nodes
         * yet: keep the view a while (events add nodes that register). */
        v->resync = false;
        v->fresh_until = now + r->ttl_ms;
    } else if (rc == SVC_EREMOTE && rerr->code == 404) {
        s_view_drop(r, service);
        svc_error_set(&l->err, S_ID, 404, "service \"%s\" not found", service);
        l->rc = SVC_ENOTFOUND;
    } else if (rc < 0 && v && v->n) {
        if (!r->warned)
            svc_warn("registry unreachable, using cached nodes\tservice=%s error=\"%s\"",
                     service, rerr->detail ? rerr->detail : svc_strerror(rc));
        r->warned = true;
        r->down_until = now + SVC_REGISTRY_RETRY_MS;
    } else if (rc < 0) {
        svc_error_set(&l->err, S_ID, rc == SVC_ETIMEOUT ? 408 : 503, "%s",
                      rerr->detail ? rerr->detail : svc_strerror(rc));
        l->rc = rc == SVC_ETIMEOUT ? SVC_ETIMEOUT : rc == -ENOMEM ? rc : SVC_EUNREACHABLE;
    } else {
        r->warned = false;
        r->down_until = 0;
        s_view *nv = s_view_from(service, rsp);
        if (!nv) {
            svc_error_set(&l->err, S_ID, 500, "out of memory");
            l->rc = -ENOMEM;
        } else {
            nv->fresh_until = s_fresh_until(r, now);
            s_view_drop(r, service);
            nv->next = r->views;
            r->views = nv;
            if (r->wstate != S_WATCH_OPEN)
                s_watch_step(r, now);   /* the first view starts the watch */
            if (!nv->n) {
                svc_error_set(&l->err, S_ID, 404, "service \"%s\" has no nodes", service);
                l->rc = SVC_ENOTFOUND;
            }
        }
    }
    if (rsp)
        svc__registry__get_service_response__free_unpacked(rsp, NULL);
    svc_error_release(rerr);
}

/* A lookup failed locally (the registry was not asked, or did not answer). */
static void s_lookup_fail(svc__regcache *r, s_lookup *l, int rc)
{
    svc_error rerr = SVC_ERROR_INIT;
    svc_error_set(&rerr, S_ID, rc == SVC_ETIMEOUT ? 408 : 503, "registry at \"%s\" unavailable: %s",
                  r->address, svc_strerror(rc));
    s_lookup_end(r, l, rc, NULL, &rerr);
}

/* Sends l's Registry.GetService on the cache's connection (up).  0 or a failure. */
static int s_lookup_send(svc__regcache *r, s_lookup *l, int64_t now)
{
    Svc__Registry__GetServiceRequest req = SVC__REGISTRY__GET_SERVICE_REQUEST__INIT;
    req.service = l->service;
    size_t blen = svc__registry__get_service_request__get_packed_size(&req);
    uint8_t *body = malloc(blen + 1);
    if (!body)
        return -ENOMEM;
    svc__registry__get_service_request__pack(&req, body);
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;
    h.id = ++r->next_id;
    h.service = "svc.registry";
    h.endpoint = "Registry.GetService";
    h.content_type = SVC_CT_PROTOBUF;
    int64_t left = l->deadline - now;
    h.timeout_ms = left > 0 ? (uint32_t)left : 1;
    h.metadata = s_header_meta(r->meta, &h.n_metadata);
    int rc = h.metadata ? svc__wire_send(r->conn->sock, NULL, &h, body, blen, ZMQ_DONTWAIT)
                        : -ENOMEM;
    free(h.metadata);
    free(body);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return SVC_EUNREACHABLE;
    l->req = h.id;
    return 0;
}

/* Reads the answers waiting on the cache's connection and ends their lookups. */
static void s_lookups_read(svc__regcache *r)
{
    for (;;) {
        svc__msg m;
        char why[128] = "";
        int rc = svc__msg_recv(r->conn->sock, &m, ZMQ_DONTWAIT, false, why, sizeof why);
        if (rc == SVC_EPROTO) {
            svc__msg_close(&m);
            continue;
        }
        if (rc < 0)
            return;
        s_lookup *l = r->lookups;
        while (l && (l->done || !l->req || l->req != m.hdr->id))
            l = l->next;
        if (!l || (m.hdr->kind != SVC__KIND__RESPONSE && m.hdr->kind != SVC__KIND__ERROR)) {
            svc__msg_close(&m);   /* late: its lookup timed out */
            continue;
        }
        svc_error rerr = SVC_ERROR_INIT;
        if (m.hdr->kind == SVC__KIND__ERROR) {
            svc_error_set(&rerr, m.hdr->error->id, m.hdr->error->code, "%s", m.hdr->error->detail);
            svc__msg_close(&m);
            s_lookup_end(r, l, SVC_EREMOTE, NULL, &rerr);
            continue;
        }
        size_t len;
        const void *b = svc__msg_body(&m, &len);
        Svc__Registry__GetServiceResponse *rsp =
            svc__registry__get_service_response__unpack(NULL, len, b ? b : "");
        svc__msg_close(&m);
        if (!rsp)
            svc_error_set(&rerr, S_ID, 500, "answer of the registry does not decode");
        s_lookup_end(r, l, rsp ? 0 : SVC_ECODEC, rsp, &rerr);
    }
}

/*
 * Moves every lookup in flight on without blocking: connects, sends,
 * reads answers, and ends those whose connection failed or time is over.
 */
static void s_lookups_step(svc__regcache *r)
{
    bool any = false;
    for (s_lookup *l = r->lookups; l; l = l->next)
        any |= !l->done;
    if (!any)
        return;
    int64_t now = svc__now_ms();
    if (!r->conn && !(r->conn = svc__conn_new(r->address))) {
        for (s_lookup *l = r->lookups; l; l = l->next)
            if (!l->done)
                s_lookup_fail(r, l, SVC_EUNREACHABLE);
        return;
    }
    /* The requests on it count as its calls in flight: a drop then marks it
     * (lost_at), even one ZeroMQ repaired before the events were read. */
    r->conn->inflight = 0;
    for (s_lookup *l = r->lookups; l; l = l->next)
        r->conn->inflight += !l->done && l->req;
    int up = svc__conn_check(r->conn);
    if (r->conn->inflight)
        s_lookups_read(r);
    if (r->conn->lost && r->conn->inflight && !r->conn->lost_at)
        r->conn->lost_at = now;
    int64_t lost_at = r->conn->lost_at;
    bool sent = false;
    for (s_lookup *l = r->lookups; l; l = l->next) {
        if (l->done)
            continue;
        if (l->req) {
            /* A drop: what the registry sent just before it may still come (a moment). */
            if (lost_at && now >= lost_at + SVC_DROP_GRACE_MS)
                s_lookup_fail(r, l, SVC_EUNREACHABLE);
            else if (now >= l->deadline)
                s_lookup_fail(r, l, SVC_ETIMEOUT);
            else
                sent = true;
        } else if (lost_at || up < 0) {
            s_lookup_fail(r, l, SVC_EUNREACHABLE);
        } else if (up == 0) {
            int rc = s_lookup_send(r, l, now);
            if (rc < 0)
                s_lookup_fail(r, l, rc);
            else
                sent = true;
        } else if (now >= l->deadline || now >= l->connect_by) {
            s_lookup_fail(r, l, l->deadline <= l->connect_by ? SVC_ETIMEOUT : SVC_EUNREACHABLE);
        }
    }
    any = false;
    for (s_lookup *l = r->lookups; l; l = l->next)
        any |= !l->done;
    /* A fresh connection next time: after a drop, or one that never came up. */
    if (((lost_at || up < 0) && !sent) || (up == 1 && !any))
        svc__conn_destroy(&r->conn);
}

/* The earliest time a lookup needs s_lookups_step, or -1; now when one waits to be handed out. */
static int64_t s_lookups_due(const svc__regcache *r, bool handout)
{
    int64_t due = -1;
    for (const s_lookup *l = r->lookups; l; l = l->next) {
        int64_t t;
        if (l->done)
            t = handout && l->async ? 0 : -1;
        else if (l->req && r->conn && r->conn->lost_at &&
                 r->conn->lost_at + SVC_DROP_GRACE_MS < l->deadline)
            t = r->conn->lost_at + SVC_DROP_GRACE_MS;
        else if (l->req)
            t = l->deadline;
        else
            t = l->connect_by < l->deadline ? l->connect_by : l->deadline;
        if (t >= 0 && (due < 0 || t < due))
            due = t;
    }
    return due;
}

int64_t svc__regcache_lookup_due(const svc__regcache *r)
{
    return s_lookups_due(r, true);
}

int svc__regcache_lookup_items(svc__regcache *r, zmq_pollitem_t *items)
{
    bool any = false;
    for (s_lookup *l = r->lookups; l && !any; l = l->next)
        any = !l->done;
    if (!any || !r->conn)
        return 0;
    items[0] = (zmq_pollitem_t){ r->conn->sock, 0, ZMQ_POLLIN, 0 };
    items[1] = (zmq_pollitem_t){ r->conn->mon, 0, ZMQ_POLLIN, 0 };
    return 2;
}

bool svc__regcache_done(svc__regcache *r, uint64_t *lookup, int *rc, svc_error *err)
{
    for (s_lookup **p = &r->lookups; *p; p = &(*p)->next) {
        s_lookup *l = *p;
        if (!l->done || !l->async)
            continue;
        *p = l->next;
        *lookup = l->id;
        *rc = l->rc;
        svc_error_release(err);
        *err = l->err;
        memset(&l->err, 0, sizeof l->err);
        s_lookup_free(l);
        return true;
    }
    return false;
}

/*
 * The view of service when it can be served now (0, nodes filled), or the
 * lookup in flight for it, started or joined (SVC__LOOKUP_PENDING, *lp);
 * -ENOMEM.  See svc__regcache_lookup.
 */
static int s_lookup_get(svc__regcache *r, const char *service, int64_t deadline,
                        svc__node **nodes, size_t *n, s_lookup **lp, svc_error *err)
{
    /* An open watch is read by the client's pump when its socket is ready;
     * here only when the pump has not read it lately (the client was idle:
     * events may be waiting that change this choice). */
    int64_t now = svc__now_ms();
    if (r->wstate != S_WATCH_OPEN || now - r->last_io >= SVC_WATCH_READ_MS)
        svc__regcache_io(r);
    s_view *v = s_view_find(r, service);
    if (v && v->n && (now < v->fresh_until || now < r->down_until)) {
        *nodes = v->nodes;
        *n = v->n;
        return 0;
    }
    /* With a view to fall back on, a registry that does not answer soon
     * counts as unreachable: the call is not to spend its deadline here. */
    if (v && v->n && deadline > now + SVC_REGISTRY_STALE_WAIT_MS)
        deadline = now + SVC_REGISTRY_STALE_WAIT_MS;
    s_lookup *l = r->lookups;
    while (l && (l->done || strcmp(l->service, service) != 0))
        l = l->next;
    if (l) {
        if (deadline > l->deadline)
            l->deadline = deadline;   /* (its request already carries the first one's) */
        *lp = l;
        return SVC__LOOKUP_PENDING;
    }
    l = calloc(1, sizeof *l);
    if (!l || !(l->service = strdup(service))) {
        free(l);
        svc_error_set(err, S_ID, 500, "out of memory");
        return -ENOMEM;
    }
    l->id = ++r->next_id;
    l->deadline = deadline;
    l->connect_by = now + SVC_CONNECT_TIMEOUT_MS;
    l->next = r->lookups;
    r->lookups = l;
    s_lookups_step(r);   /* sent at once when the connection is up */
    *lp = l;
    return SVC__LOOKUP_PENDING;
}

int svc__regcache_lookup(svc__regcache *r, const char *service, int64_t deadline,
                         svc__node **nodes, size_t *n, uint64_t *lookup, svc_error *err)
{
    s_lookup *l = NULL;
    int rc = s_lookup_get(r, service, deadline, nodes, n, &l, err);
    if (rc == SVC__LOOKUP_PENDING) {
        l->async = true;
        *lookup = l->id;
    }
    return rc;
}

int svc__regcache_nodes(svc__regcache *r, const char *service, int64_t deadline,
                        svc__node **nodes, size_t *n, svc_error *err)
{
    s_lookup *l = NULL;
    int rc = s_lookup_get(r, service, deadline, nodes, n, &l, err);
    if (rc != SVC__LOOKUP_PENDING)
        return rc;
    /* Wait here on the cache's connection only: no call of the client moves. */
    while (!l->done) {
        zmq_pollitem_t items[2];
        int k = svc__regcache_lookup_items(r, items);
        int64_t due = s_lookups_due(r, false), now = svc__now_ms();
        long wait = due <= now ? 0 : due - now > 1 << 30 ? 1 << 30 : (long)(due - now);
        if (zmq_poll(items, k, wait) < 0 && errno != EINTR)
            svc_warn("poll failed\terror=\"%s\"", strerror(errno));
        s_lookups_step(r);
    }
    rc = l->rc;
    if (rc < 0) {
        svc_error_copy(err, &l->err);
    } else {
        s_view *v = s_view_find(r, service);
        if (v && v->n) {
            *nodes = v->nodes;
            *n = v->n;
        } else {
            svc_error_set(err, S_ID, 404, "service \"%s\" has no nodes", service);
            rc = SVC_ENOTFOUND;
        }
    }
    if (!l->async) {
        for (s_lookup **p = &r->lookups; *p; p = &(*p)->next) {
            if (*p == l) {
                *p = l->next;
                break;
            }
        }
        s_lookup_free(l);
    }
    return rc;
}
