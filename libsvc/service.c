/*
 * libsvc/service.c — a service's life: svc_new, settings, svc_run.
 *
 * svc_run: bind -> start workers -> start registrar -> loop.  A stop
 * (signal or svc_stop) deregisters first while still serving, then drains:
 * new requests get 503 (clients retry elsewhere), requests in flight finish,
 * their answers are sent, and only then does the loop end.
 */
#include "service_int.h"
#include "zctx.h"
#include "svc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

svc_service *svc_new(const char *name, int argc, char **argv)
{
    svc_service *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = strdup(name && *name ? name : "service");
    s->version = strdup("latest");
    s->address = strdup("tcp://127.0.0.1:*");
    s->ttl_s = 90;
    s->interval_s = 30;
    s->workers = 16;
    s->drain_s = 10;
    s->send_hwm = SVC_ROUTER_SNDHWM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->sock_mu, NULL);
    atomic_init(&s->draining, false);
    atomic_init(&s->sent_bytes, 0);
    atomic_init(&s->log_window, 0);
    atomic_init(&s->log_count, 0);
    pthread_cond_init(&s->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->reg_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->requests, 0);
    atomic_init(&s->errors, 0);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->stop_requested, false);
    if (!s->name || !s->version || !s->address) {
        svc_destroy(&s);
        return NULL;
    }
    if (svc__options_parse(s, argc, argv) < 0) {
        svc_destroy(&s);
        exit(64);
    }
    if (!s->registry) {
        const char *env = getenv(SVC_ENV_REGISTRY);
        s->registry = strdup(env && *env ? env : SVC_DEFAULT_REGISTRY);
    }
    if (s->interval_s >= s->ttl_s)
        svc_warn("register-interval is not shorter than register-ttl: the node may expire "
                 "between registrations\tinterval=%d ttl=%d", s->interval_s, s->ttl_s);
    char rnd[17];
    svc__rand_hex(rnd);
    snprintf(s->node_id, sizeof s->node_id, "%.64s-%.8s", s->name, rnd);
    svc_log_set_name(s->name);
    if (s->log_requests && svc__wrap_log_requests(s) < 0) {
        svc_destroy(&s);
        return NULL;
    }
    svc__debug_add(s);
    return s;
}

static bool s_endpoint_name_ok(const char *e)
{
    const char *dot = e ? strchr(e, '.') : NULL;
    return dot && dot != e && dot[1] && !strchr(dot + 1, '.') && !strpbrk(e, " \t\n/");
}

static int s_add(svc_service *s, const char *endpoint, svc_handler_fn fn, svc_stream_fn sfn,
                 svc_stream_io_fn iofn, svc_stream_kind kind,
                 const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp)
{
    if (!s_endpoint_name_ok(endpoint) || !req || !rsp || (!fn && !sfn && !iofn))
        return SVC_EINVAL;
    for (size_t i = 0; i < s->n_eps; i++)
        if (strcmp(s->eps[i].name, endpoint) == 0)
            return SVC_EEXIST;
    if (s->n_eps == s->cap_eps) {
        size_t cap = s->cap_eps ? s->cap_eps * 2 : 8;
        svc__endpoint *n = realloc(s->eps, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->eps = n;
        s->cap_eps = cap;
    }
    svc__endpoint *ep = &s->eps[s->n_eps];
    *ep = (svc__endpoint){ .name = strdup(endpoint), .fn = fn, .sfn = sfn, .iofn = iofn,
                           .kind = kind, .req = req, .rsp = rsp,
                           .stats = calloc(1, sizeof(svc__epstats)) };
    if (!ep->name || !ep->stats) {
        free(ep->name);
        free(ep->stats);
        return -ENOMEM;
    }
    s->n_eps++;
    return 0;
}

int svc_handle(svc_service *s, const char *endpoint, svc_handler_fn fn,
               const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp)
{
    return fn ? s_add(s, endpoint, fn, NULL, NULL, SVC_STREAM_SERVER, req, rsp) : SVC_EINVAL;
}

int svc_handle_inline(svc_service *s, const char *endpoint, svc_handler_fn fn,
                      const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp)
{
    int rc = svc_handle(s, endpoint, fn, req, rsp);
    if (rc == 0)
        s->eps[s->n_eps - 1].inline_ = true;
    return rc;
}

int svc_handle_stream(svc_service *s, const char *endpoint, svc_stream_fn fn,
                      const ProtobufCMessageDescriptor *req, const ProtobufCMessageDescriptor *rsp)
{
    return fn ? s_add(s, endpoint, NULL, fn, NULL, SVC_STREAM_SERVER, req, rsp) : SVC_EINVAL;
}

int svc_handle_streaming(svc_service *s, const char *endpoint, svc_stream_kind kind,
                         svc_stream_io_fn fn, const ProtobufCMessageDescriptor *req,
                         const ProtobufCMessageDescriptor *rsp)
{
    if (!fn || (kind != SVC_STREAM_CLIENT && kind != SVC_STREAM_BIDI))
        return SVC_EINVAL;
    return s_add(s, endpoint, NULL, NULL, fn, kind, req, rsp);
}

static int s_replace(char **dst, const char *v)
{
    char *c = strdup(v ? v : "");
    if (!c)
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

int svc_set_version(svc_service *s, const char *v) { return s_replace(&s->version, v); }
int svc_set_metadata(svc_service *s, const char *k, const char *v) { return svc_meta_set(&s->svc_meta_, k, v); }

int svc_set_address(svc_service *s, const char *a)
{
    return svc__address_valid(a) ? s_replace(&s->address, a) : SVC_EINVAL;
}

int svc_set_registry(svc_service *s, const char *a)
{
    return svc__address_valid(a) ? s_replace(&s->registry, a) : SVC_EINVAL;
}

void svc_set_data(svc_service *s, void *data) { s->data = data; }
const char *svc_name(const svc_service *s) { return s->name; }
const char *svc_address(const svc_service *s) { return s->advertise; }
const char *svc_node_id(const svc_service *s) { return s->node_id; }
const char *svc_bind_address(const svc_service *s) { return s->address; }

bool svc_stopping(const svc_service *s)
{
    return atomic_load(&s->stop_requested) || atomic_load(&s->draining);
}

void svc_stop(svc_service *s)
{
    atomic_store(&s->stop_requested, true);
    pthread_mutex_lock(&s->mu);
    if (s->out_open)
        ev_async_send(s->loop, &s->wake);
    pthread_mutex_unlock(&s->mu);
}

/* Copies meta into a protobuf metadata array; 0 or -ENOMEM. */
static int s_meta_pb(const svc_meta *m, Svc__MetadataEntry ***out, size_t *n)
{
    *n = 0;
    *out = calloc(m->n ? m->n : 1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        Svc__MetadataEntry *e = malloc(sizeof *e);
        if (!e)
            return -ENOMEM;
        svc__metadata_entry__init(e);
        (*out)[(*n)++] = e;
        e->key = strdup(m->pairs[i].key);
        e->value = strdup(m->pairs[i].value);
        if (!e->key || !e->value)
            return -ENOMEM;
    }
    return 0;
}

/* Builds what the registrar registers: the service, its endpoints and this node. */
static int s_build_registration(svc_service *s)
{
    Svc__Registry__Service *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    svc__registry__service__init(r);
    s->reg_service = r;
    r->name = strdup(s->name);
    r->version = strdup(s->version);
    if (!r->name || !r->version || s_meta_pb(&s->svc_meta_, &r->metadata, &r->n_metadata) < 0)
        return -ENOMEM;

    r->endpoints = calloc(s->n_eps ? s->n_eps : 1, sizeof *r->endpoints);
    if (!r->endpoints)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_eps; i++) {
        Svc__Registry__Endpoint *e = malloc(sizeof *e);
        if (!e)
            return -ENOMEM;
        svc__registry__endpoint__init(e);
        r->endpoints[r->n_endpoints++] = e;
        e->name = strdup(s->eps[i].name);
        e->request = svc__schema(s->eps[i].req);
        e->response = svc__schema(s->eps[i].rsp);
        svc_meta em = SVC_META_INIT;
        if (s->eps[i].sfn || s->eps[i].iofn) {
            svc_meta_set(&em, "stream", "true");
            svc_meta_set(&em, "stream_kind", svc_stream_kind_name(s->eps[i].kind));
        }
        int rc = s_meta_pb(&em, &e->metadata, &e->n_metadata);
        svc_meta_release(&em);
        if (!e->name || !e->request || !e->response || rc < 0)
            return -ENOMEM;
    }

    r->nodes = calloc(1, sizeof *r->nodes);
    Svc__Registry__Node *n = malloc(sizeof *n);
    if (!r->nodes || !n) {
        free(n);
        return -ENOMEM;
    }
    svc__registry__node__init(n);
    r->nodes[r->n_nodes++] = n;
    n->id = strdup(s->node_id);
    n->address = strdup(s->advertise);
    if (!n->id || !n->address || s_meta_pb(&s->meta, &n->metadata, &n->n_metadata) < 0)
        return -ENOMEM;
    return svc__subscribers_describe(s, r);
}

/* The address others should call: the bound one, with a wildcard host made loopback. */
static int s_pick_advertise(svc_service *s)
{
    if (s->advertise)
        return 0;
    const char *b = s->bound;
    if (strncmp(b, "tcp://0.0.0.0:", 14) == 0 || strncmp(b, "tcp://[::]:", 11) == 0) {
        const char *port = strrchr(b, ':');
        if (asprintf(&s->advertise, "tcp://127.0.0.1%s", port) < 0)
            return -ENOMEM;
        svc_warn("bound to all interfaces; advertising loopback, set --advertise for other "
                 "hosts\tadvertise=%s", s->advertise);
        return 0;
    }
    s->advertise = strdup(b);
    return s->advertise ? 0 : -ENOMEM;
}

int svc_run(svc_service *s)
{
    int code = 1;
    s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!s->loop) {
        svc_error_log("cannot create event loop");
        return 1;
    }
    s->started_unix = (uint64_t)time(NULL);
    if (svc__server_start(s) < 0)
        goto out_loop;
    if (s_pick_advertise(s) < 0 || s_build_registration(s) < 0) {
        svc_error_log("out of memory");
        goto out_server;
    }
    if (svc__workers_start(s) < 0)
        goto out_workers;
    svc_info("serving\tnode=%s address=%s version=%s", s->node_id, s->advertise, s->version);
    if (svc__registrar_start(s) < 0) {
        svc_error_log("cannot start registrar thread");
        goto out_workers;
    }
    if (svc__subscribers_start(s) < 0)
        svc_error_log("cannot start subscriber thread");
    if (atomic_load(&s->stop_requested))
        ev_async_send(s->loop, &s->wake);   /* svc_stop came before the loop could be woken */
    ev_run(s->loop, 0);
    code = 0;
    svc__subscribers_stop(s);
    svc__registrar_join(s);
    /* End open streams now, so handlers waiting on them see them closed. */
    svc__streams_end_all(s);

out_workers:
    if (svc__workers_stop(s, s->drain_timed_out) > 0) {
        svc_error_log("handlers did not return after the drain timeout; abandoning them");
        s->abandoned = true;
        code = 1;
    }
out_server:
    svc__server_stop(s);
out_loop:
    ev_loop_destroy(s->loop);
    s->loop = NULL;
    s->state = SVC__IDLE;
    if (code == 0)
        svc_info("stopped\trequests=%lu errors=%lu", (unsigned long)atomic_load(&s->requests),
                 (unsigned long)atomic_load(&s->errors));
    return code;
}

void svc_destroy(svc_service **sp)
{
    svc_service *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    if (s->abandoned)
        return;   /* abandoned handlers may still use it: leak it to the exit */
    for (size_t i = 0; i < s->n_eps; i++) {
        free(s->eps[i].name);
        free(s->eps[i].stats);
    }
    free(s->eps);
    free(s->name);
    free(s->version);
    free(s->address);
    free(s->advertise);
    free(s->registry);
    free(s->bound);
    svc_meta_release(&s->meta);
    svc_meta_release(&s->svc_meta_);
    if (s->reg_service)
        svc__registry__service__free_unpacked(s->reg_service, NULL);
    svc__subscribers_free(s);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->sock_mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->reg_cv);
    free(s);
}
