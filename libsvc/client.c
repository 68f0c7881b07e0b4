/*
 * libsvc/client.c — calls by service name: registry view, selector, retries.
 * See svc/client.h.
 */
#include "svc/client.h"
#include "svc/codec.h"
#include "svc/log.h"
#include "clock.h"
#include "client_int.h"
#include "conn.h"
#include "selector.h"
#include "registry.pb-c.h"
#include "zctx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ID "svc.client"

/* The cached view of one service name. */
typedef struct s_view {
    char *service;        /* owned */
    svc__node *nodes;     /* owned array */
    size_t n;             /* nodes */
    int64_t fetched_ms;   /* monotonic time of the fetch */
    struct s_view *next;
} s_view;

struct svc_client {
    char *registry;          /* registry address, owned */
    svc_meta meta;           /* metadata for every call */
    int timeout_ms;          /* default call deadline */
    int retries;             /* default extra attempts */
    int cache_ms;            /* view freshness */
    svc_strategy strategy;   /* selector */
    svc__breaker *breakers;  /* breaker state per node address */
    int breaker_failures;    /* consecutive failures that open a breaker, 0 = off */
    int breaker_cooldown_ms; /* how long it stays open */
    uint64_t rr;             /* round-robin position */
    uint64_t next_id;        /* next call id */
    svc__conn *conns;        /* open connections by address */
    s_view *views;           /* cached registry views */
    svc__cwraps wraps;       /* call wrappers (wrap.c) */
};

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
    if (!c->registry) {
        free(c);
        return NULL;
    }
    c->timeout_ms = SVC_DEFAULT_TIMEOUT_MS;
    c->retries = SVC_DEFAULT_RETRIES;
    c->cache_ms = SVC_DEFAULT_CACHE_MS;
    c->strategy = SVC_SELECT_RANDOM;
    c->breaker_failures = SVC_DEFAULT_BREAKER_FAILURES;
    c->breaker_cooldown_ms = SVC_DEFAULT_BREAKER_COOLDOWN_MS;
    c->next_id = svc__rand() >> 16;
    return c;
}

static void s_view_free(s_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        svc__node_release(&v->nodes[i]);
    free(v->nodes);
    free(v->service);
    free(v);
}

void svc_client_destroy(svc_client **cp)
{
    svc_client *c = *cp;
    if (!c)
        return;
    while (c->conns) {
        svc__conn *next = c->conns->next;
        svc__conn_destroy(&c->conns);
        c->conns = next;
    }
    while (c->views) {
        s_view *next = c->views->next;
        s_view_free(c->views);
        c->views = next;
    }
    svc_meta_release(&c->meta);
    svc__breaker_free(&c->breakers);
    free(c->registry);
    free(c);
    *cp = NULL;
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
    c->retries = retries;
    return 0;
}

int svc_client_set_strategy(svc_client *c, svc_strategy s)
{
    if (s != SVC_SELECT_RANDOM && s != SVC_SELECT_ROUND_ROBIN)
        return SVC_EINVAL;
    c->strategy = s;
    return 0;
}

int svc_client_set_cache(svc_client *c, int cache_ms)
{
    if (cache_ms < 0)
        return SVC_EINVAL;
    c->cache_ms = cache_ms;
    return 0;
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

/* ---- connections ----------------------------------------------------------- */

static svc__conn *s_conn_get(svc_client *c, const char *address)
{
    for (svc__conn *k = c->conns; k; k = k->next)
        if (strcmp(k->address, address) == 0)
            return k;
    svc__conn *k = svc__conn_new(address);
    if (!k)
        return NULL;
    k->next = c->conns;
    c->conns = k;
    return k;
}

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

/* ---- registry view ------------------------------------------------------------ */

static s_view *s_view_find(svc_client *c, const char *service)
{
    for (s_view *v = c->views; v; v = v->next)
        if (strcmp(v->service, service) == 0)
            return v;
    return NULL;
}

static void s_view_drop(svc_client *c, const char *service)
{
    for (s_view **p = &c->views; *p; p = &(*p)->next) {
        if (strcmp((*p)->service, service) == 0) {
            s_view *v = *p;
            *p = v->next;
            s_view_free(v);
            return;
        }
    }
}

/* Builds a view from a GetService answer: every node of every version. */
static s_view *s_view_from(const char *service, const Svc__Registry__GetServiceResponse *r)
{
    s_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < r->n_services; i++)
        total += r->services[i]->n_nodes;
    v->service = strdup(service);
    v->nodes = calloc(total ? total : 1, sizeof *v->nodes);
    if (!v->service || !v->nodes)
        goto out_free;
    for (size_t i = 0; i < r->n_services; i++) {
        for (size_t j = 0; j < r->services[i]->n_nodes; j++) {
            const Svc__Registry__Node *rn = r->services[i]->nodes[j];
            if (!svc__address_valid(rn->address))
                continue;
            svc__node *nd = &v->nodes[v->n++];
            nd->address = strdup(rn->address);
            nd->version = strdup(r->services[i]->version);
            if (!nd->address || !nd->version)
                goto out_free;
            for (size_t k = 0; k < rn->n_metadata; k++)
                if (svc_meta_set(&nd->meta, rn->metadata[k]->key, rn->metadata[k]->value) < 0)
                    goto out_free;
        }
    }
    v->fetched_ms = svc__now_ms();
    return v;

out_free:
    s_view_free(v);
    return NULL;
}

/*
 * Returns the view of service: cached while fresh, otherwise fetched from the
 * registry; a stale view is served when the registry cannot be reached.
 */
static int s_resolve(svc_client *c, const char *service, int64_t deadline, s_view **out,
                     svc_error *err)
{
    s_view *v = s_view_find(c, service);
    int64_t now = svc__now_ms();
    if (v && now - v->fetched_ms < c->cache_ms && v->n) {
        bool any = false;
        for (size_t i = 0; i < v->n && !any; i++)
            any = !v->nodes[i].failed;
        if (any) {
            *out = v;
            return 0;
        }
    }

    Svc__Registry__GetServiceRequest req = SVC__REGISTRY__GET_SERVICE_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *rsp = NULL;
    int left = (int)(deadline - now);
    svc_call_opts o = { .timeout_ms = left > 0 ? left : 1, .retries = -1, .address = c->registry };
    svc_error rerr = SVC_ERROR_INIT;
    int rc = svc_call(c, "svc.registry", "Registry.GetService", &req.base,
                      &svc__registry__get_service_response__descriptor, &rsp, &o, &rerr);
    if (rc == SVC_EREMOTE && rerr.code == 404) {
        s_view_drop(c, service);
        svc_error_set(err, S_ID, 404, "service \"%s\" not found", service);
        svc_error_release(&rerr);
        return SVC_ENOTFOUND;
    }
    if (rc < 0) {
        if (v && v->n) {
            svc_warn("registry unreachable, using cached nodes\tservice=%s error=\"%s\"", service,
                     rerr.detail ? rerr.detail : svc_strerror(rc));
            svc_error_release(&rerr);
            for (size_t i = 0; i < v->n; i++)
                v->nodes[i].failed = false;
            *out = v;
            return 0;
        }
        svc_error_set(err, S_ID, rc == SVC_ETIMEOUT ? 408 : 503,
                      "registry at \"%s\" unavailable: %s", c->registry,
                      rerr.detail ? rerr.detail : svc_strerror(rc));
        svc_error_release(&rerr);
        return rc == SVC_ETIMEOUT ? SVC_ETIMEOUT : SVC_EUNREACHABLE;
    }
    s_view *nv = s_view_from(service, (Svc__Registry__GetServiceResponse *)rsp);
    protobuf_c_message_free_unpacked(rsp, NULL);
    if (!nv) {
        svc_error_set(err, S_ID, 500, "out of memory");
        return -ENOMEM;
    }
    s_view_drop(c, service);
    nv->next = c->views;
    c->views = nv;
    if (!nv->n) {
        svc_error_set(err, S_ID, 404, "service \"%s\" has no nodes", service);
        return SVC_ENOTFOUND;
    }
    *out = nv;
    return 0;
}

/* ---- one attempt -------------------------------------------------------------- */

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

/*
 * Sends one request to address and waits for its answer.  Returns 0,
 * SVC_EREMOTE (err filled from the answer), SVC_ETIMEOUT, SVC_EUNREACHABLE
 * (transport failure: the caller may try another node), SVC_EPROTO.
 */
static int s_attempt(svc_client *c, const char *address, const char *service,
                     const char *endpoint, const void *body, size_t len, const char *ct,
                     const svc_meta *extra, int64_t deadline, svc_reply *out, svc_error *err)
{
    svc__conn *k = s_conn_get(c, address);
    if (!k) {
        svc_error_set(err, S_ID, 500, "cannot connect to \"%s\": %s", address, strerror(errno));
        return SVC_EUNREACHABLE;
    }
    int rc = svc__conn_ready(k, deadline);
    if (rc < 0)
        goto out_fail;

    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;
    h.id = ++c->next_id;
    h.service = (char *)service;
    h.endpoint = (char *)endpoint;
    h.content_type = (char *)(ct ? ct : SVC_CT_PROTOBUF);
    int64_t left = deadline - svc__now_ms();
    if (left <= 0) {
        rc = SVC_ETIMEOUT;
        goto out_fail;
    }
    h.timeout_ms = (uint32_t)left;
    h.metadata = svc__client_header_meta(c, extra, &h.n_metadata);
    if (!h.metadata) {
        svc_error_set(err, S_ID, 500, "out of memory");
        return -ENOMEM;
    }
    rc = svc__wire_send(k->sock, NULL, &h, body ? body : "", len, ZMQ_DONTWAIT);
    free(h.metadata);
    if (rc == -EAGAIN) {
        rc = SVC_EUNREACHABLE;
        goto out_fail;
    }
    if (rc < 0) {
        svc_error_set(err, S_ID, 500, "send to \"%s\" failed: %s", address, svc_strerror(rc));
        return rc;
    }

    for (;;) {
        svc__msg m;
        char why[128] = "";
        rc = svc__conn_recv(k, &m, deadline, why, sizeof why);
        if (rc == SVC_EPROTO) {
            svc_warn("malformed answer dropped\tnode=%s reason=\"%s\"", address, why);
            continue;
        }
        if (rc < 0)
            goto out_fail;
        if (m.hdr->id != h.id ||
            (m.hdr->kind != SVC__KIND__RESPONSE && m.hdr->kind != SVC__KIND__ERROR)) {
            svc__msg_close(&m);   /* late answer to an earlier call, or a pong */
            continue;
        }
        if (m.hdr->kind == SVC__KIND__ERROR) {
            Svc__Error *e = m.hdr->error;
            svc_error_release(err);
            err->id = strdup(e->id);
            err->code = e->code;
            err->detail = strdup(e->detail);
            err->status = strdup(e->status[0] ? e->status : svc_status_text(e->code));
            svc__msg_close(&m);
            return SVC_EREMOTE;
        }
        size_t blen;
        const void *b = svc__msg_body(&m, &blen);
        out->body = blen ? malloc(blen + 1) : NULL;
        if (blen && out->body) {
            memcpy(out->body, b, blen);
            ((char *)out->body)[blen] = '\0';
        }
        out->len = blen;
        out->content_type = strdup(m.hdr->content_type[0] ? m.hdr->content_type : SVC_CT_PROTOBUF);
        out->node = strdup(address);
        svc__msg_close(&m);
        return 0;
    }

out_fail:
    if (rc == SVC_ETIMEOUT) {
        svc_error_set(err, S_ID, 408, "call to %s.%s timed out: deadline exceeded", service,
                      endpoint);
        return rc;
    }
    if (rc == SVC_EUNREACHABLE) {
        svc_error_set(err, S_ID, 503, "node \"%s\" of service \"%s\" unreachable", address,
                      service);
        s_conn_drop(c, k);
        return rc;
    }
    svc_error_set(err, S_ID, 500, "call to \"%s\" failed: %s", address, svc_strerror(rc));
    return rc;
}

int svc__client_call_raw(svc_client *c, const char *service, const char *endpoint,
                         const void *body, size_t len, const svc_call_opts *opts,
                         svc_reply *out, svc_error *err)
{
    static const svc_call_opts none = { 0 };
    const svc_call_opts *o = opts ? opts : &none;
    memset(out, 0, sizeof *out);
    if (!service || !*service || !endpoint || !*endpoint) {
        svc_error_set(err, S_ID, 400, "service and endpoint must be named");
        return SVC_EINVAL;
    }
    if (len > SVC_WIRE_MAX_BODY) {
        svc_error_set(err, S_ID, 413, "request body of %zu bytes exceeds the %d byte limit", len,
                      SVC_WIRE_MAX_BODY);
        return SVC_ETOOBIG;
    }
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : c->timeout_ms;
    int retries = o->retries < 0 ? 0 : o->retries > 0 ? o->retries : c->retries;
    int64_t deadline = svc__now_ms() + timeout;

    if (o->address)
        return s_attempt(c, o->address, service, endpoint, body, len, o->content_type, o->meta,
                         deadline, out, err);

    svc__select sel = { .strategy = o->strategy ? o->strategy : c->strategy,
                        .version = o->version, .node_meta = o->node_meta, .rr = &c->rr };
    int rc = SVC_EUNREACHABLE;
    for (int attempt = 0; attempt <= retries; attempt++) {
        s_view *v;
        rc = s_resolve(c, service, deadline, &v, err);
        if (rc < 0)
            return rc;
        bool matched;
        svc__node *n = svc__select_node(v->nodes, v->n, &sel, c->breakers, svc__now_ms(), &matched);
        if (!n && !matched) {
            svc_error_set(err, S_ID, 404, "no node of service \"%s\" matches version \"%s\" "
                          "and metadata \"%s\"", service, o->version ? o->version : "*",
                          o->node_meta ? o->node_meta : "");
            return SVC_ENOTFOUND;
        }
        if (!n)
            break;
        svc_error_release(err);
        rc = s_attempt(c, n->address, service, endpoint, body, len, o->content_type, o->meta,
                       deadline, out, err);
        bool draining = rc == SVC_EREMOTE && err->code == 503;
        bool node_failed = rc == SVC_EUNREACHABLE || rc == SVC_ETIMEOUT;
        if (!draining && svc__breaker_report(&c->breakers, n->address, !node_failed,
                                             c->breaker_failures, c->breaker_cooldown_ms,
                                             svc__now_ms()))
            svc_warn("circuit open: leaving node out\tservice=%s node=%s cooldown_ms=%d", service,
                     n->address, c->breaker_cooldown_ms);
        if (rc != SVC_EUNREACHABLE && !draining)
            return rc;
        n->failed = true;
        svc_debug("retrying on another node\tservice=%s failed=%s", service, n->address);
    }
    if (!svc_error_isset(err))
        svc_error_set(err, S_ID, 503, "no node of service \"%s\" could be reached", service);
    return rc == SVC_EREMOTE ? rc : SVC_EUNREACHABLE;
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
