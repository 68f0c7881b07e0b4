/*
 * registryd — the svc service registry, served as service "svc.registry".
 *
 * Register, Deregister, GetService, ListServices and the Watch stream, over
 * a backend (in memory by default).  Nodes expire when their TTL passes
 * without a new registration; a pruning thread checks every second and
 * tells watchers.  registryd registers itself in itself like any service.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/svc.h"
#include "backend.h"
#include "registry.pb-c.h"
#include "watch.h"

#define REG_ID "svc.registry"

typedef struct reg_state {
    pthread_mutex_t mu;       /* serialises backend calls and event order */
    reg_backend *backend;
    reg_watchers *watchers;
    pthread_t pruner;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
} reg_state;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool s_name_ok(const char *s)
{
    return s && *s && strlen(s) <= REG_MAX_NAME && !strpbrk(s, " \t\r\n");
}

static bool s_address_ok(const char *a)
{
    return a && strlen(a) <= 1024 &&
           ((strncmp(a, "tcp://", 6) == 0 && a[6]) || (strncmp(a, "ipc://", 6) == 0 && a[6]) ||
            (strncmp(a, "inproc://", 9) == 0 && a[9]));
}

/* Validates a service in a Register/Deregister request; answers 400 if bad. */
static int s_check(svc_ctx *ctx, Svc__Registry__Service *svc, bool need_address)
{
    if (!svc)
        return svc_ctx_error(ctx, 400, "request carries no service");
    size_t bytes = protobuf_c_message_get_packed_size(&svc->base);
    if (bytes > REG_MAX_SERVICE_BYTES)
        return svc_ctx_error(ctx, 413, "service \"%.64s\" is %zu bytes encoded, over the %d byte "
                             "limit of a registration", svc->name, bytes, REG_MAX_SERVICE_BYTES);
    if (!s_name_ok(svc->name))
        return svc_ctx_error(ctx, 400, "invalid service name \"%.64s\"", svc->name);
    if (!svc->version[0]) {
        /* Unpacked proto3 strings may point at the shared empty string: replace, not free. */
        svc->version = strdup("latest");
        if (!svc->version)
            return -ENOMEM;
    } else if (!s_name_ok(svc->version)) {
        return svc_ctx_error(ctx, 400, "invalid version \"%.64s\" of service \"%s\"", svc->version,
                             svc->name);
    }
    if (svc->n_nodes == 0)
        return svc_ctx_error(ctx, 400, "service \"%s\" names no node", svc->name);
    for (size_t i = 0; i < svc->n_nodes; i++) {
        Svc__Registry__Node *n = svc->nodes[i];
        if (!s_name_ok(n->id))
            return svc_ctx_error(ctx, 400, "invalid node id \"%.64s\"", n->id);
        if (need_address && !s_address_ok(n->address))
            return svc_ctx_error(ctx, 400, "invalid address \"%.64s\" of node \"%s\"", n->address,
                                 n->id);
        n->expires = 0;
    }
    return 0;
}

static int s_register(svc_ctx *ctx, const void *req, void *rsp)
{
    reg_state *st = svc_ctx_data(ctx);
    Svc__Registry__RegisterRequest *in = (Svc__Registry__RegisterRequest *)req;
    char *orig_version = in->service ? in->service->version : NULL;
    int rc = s_check(ctx, in->service, true);
    if (rc < 0)
        goto out;
    uint32_t ttl = in->ttl ? in->ttl : REG_DEFAULT_TTL_S;
    if (ttl > REG_MAX_TTL_S) {
        rc = svc_ctx_error(ctx, 400, "ttl %u exceeds the maximum of %d seconds", ttl, REG_MAX_TTL_S);
        goto out;
    }
    reg_events ev = { 0 };
    pthread_mutex_lock(&st->mu);
    rc = st->backend->ops->register_(st->backend, in->service, ttl, s_now_ms(), &ev);
    reg_watchers_broadcast(st->watchers, &ev);
    pthread_mutex_unlock(&st->mu);
    reg_events_release(&ev);
    if (rc == -ENOSPC)
        rc = svc_ctx_error(ctx, 429, "registry full: too many services or nodes");
out:
    if (in->service && in->service->version != orig_version) {
        free(in->service->version);
        in->service->version = orig_version;
    }
    return rc;
}

static int s_deregister(svc_ctx *ctx, const void *req, void *rsp)
{
    reg_state *st = svc_ctx_data(ctx);
    Svc__Registry__DeregisterRequest *in = (Svc__Registry__DeregisterRequest *)req;
    char *orig_version = in->service ? in->service->version : NULL;
    int rc = s_check(ctx, in->service, false);
    if (rc == 0) {
        reg_events ev = { 0 };
        pthread_mutex_lock(&st->mu);
        rc = st->backend->ops->deregister(st->backend, in->service, &ev);
        reg_watchers_broadcast(st->watchers, &ev);
        pthread_mutex_unlock(&st->mu);
        reg_events_release(&ev);
        if (rc == -ENOENT)
            rc = 0;   /* idempotent: already gone */
    }
    if (in->service && in->service->version != orig_version) {
        free(in->service->version);
        in->service->version = orig_version;
    }
    return rc;
}

static int s_get(svc_ctx *ctx, const void *req, void *rsp)
{
    reg_state *st = svc_ctx_data(ctx);
    const Svc__Registry__GetServiceRequest *in = req;
    Svc__Registry__GetServiceResponse *out = rsp;
    if (!s_name_ok(in->service))
        return svc_ctx_error(ctx, 400, "invalid service name \"%.64s\"", in->service);
    svc_debug("get service\tservice=%s", in->service);   /* counted by the client-cache tests */
    pthread_mutex_lock(&st->mu);
    int rc = st->backend->ops->get(st->backend, in->service, s_now_ms(), &out->services,
                                   &out->n_services);
    pthread_mutex_unlock(&st->mu);
    if (rc < 0)
        return rc;
    size_t nodes = 0;
    for (size_t i = 0; i < out->n_services; i++)
        nodes += out->services[i]->n_nodes;
    if (!nodes)
        return svc_ctx_error(ctx, 404, "service \"%s\" not found", in->service);
    return 0;
}

static int s_list(svc_ctx *ctx, const void *req, void *rsp)
{
    reg_state *st = svc_ctx_data(ctx);
    Svc__Registry__ListServicesResponse *out = rsp;
    pthread_mutex_lock(&st->mu);
    int rc = st->backend->ops->list(st->backend, &out->services, &out->n_services);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static int s_watch(svc_ctx *ctx, const void *req, svc_stream *stream)
{
    reg_state *st = svc_ctx_data(ctx);
    const Svc__Registry__WatchRequest *in = req;
    if (in->service[0] && !s_name_ok(in->service))
        return svc_ctx_error(ctx, 400, "invalid service name \"%.64s\"", in->service);
    /* Under the lock, so no event can slip between the add and the next change. */
    pthread_mutex_lock(&st->mu);
    int rc = reg_watchers_add(st->watchers, stream, in->service);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static void *s_pruner(void *arg)
{
    reg_state *st = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_mutex_lock(&st->stop_mu);
        while (!st->stop && pthread_cond_timedwait(&st->stop_cv, &st->stop_mu, &ts) != ETIMEDOUT)
            ;
        bool stop = st->stop;
        pthread_mutex_unlock(&st->stop_mu);
        if (stop)
            return NULL;
        reg_events ev = { 0 };
        pthread_mutex_lock(&st->mu);
        st->backend->ops->expire(st->backend, s_now_ms(), &ev);
        for (size_t i = 0; i < ev.n; i++)
            svc_info("node expired\tservice=%s node=%s", ev.items[i]->service->name,
                     ev.items[i]->service->nodes[0]->id);
        reg_watchers_broadcast(st->watchers, &ev);
        pthread_mutex_unlock(&st->mu);
        reg_events_release(&ev);
        reg_watchers_sweep(st->watchers);
    }
}

static const struct {
    const char *name;
    svc_handler_fn fn;
    const ProtobufCMessageDescriptor *req, *rsp;
} s_endpoints[] = {
    { "Registry.Register", s_register, &svc__registry__register_request__descriptor,
      &svc__registry__register_response__descriptor },
    { "Registry.Deregister", s_deregister, &svc__registry__deregister_request__descriptor,
      &svc__registry__deregister_response__descriptor },
    { "Registry.GetService", s_get, &svc__registry__get_service_request__descriptor,
      &svc__registry__get_service_response__descriptor },
    { "Registry.ListServices", s_list, &svc__registry__list_services_request__descriptor,
      &svc__registry__list_services_response__descriptor },
    { NULL, NULL, NULL, NULL },
};

int main(int argc, char **argv)
{
    /* By default registryd binds the registry address everyone else calls. */
    const char *reg = getenv(SVC_ENV_REGISTRY);
    setenv("SVC_ADDRESS", reg && *reg ? reg : SVC_DEFAULT_REGISTRY, 0);

    svc_service *s = svc_new("svc.registry", argc, argv);
    if (!s)
        return 1;
    const char *bind = svc_bind_address(s);
    if (strchr(bind, '*')) {
        fprintf(stderr, "registryd: address \"%s\" must name a fixed port or path: services "
                        "must know where the registry is\n", bind);
        svc_destroy(&s);
        return 64;
    }
    svc_set_registry(s, bind);

    reg_state st = { .backend = reg_memory_new(), .watchers = reg_watchers_new() };
    if (!st.backend || !st.watchers) {
        fprintf(stderr, "registryd: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&st.mu, NULL);
    pthread_mutex_init(&st.stop_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st.stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    svc_set_data(s, &st);
    for (int i = 0; s_endpoints[i].name; i++)
        svc_handle(s, s_endpoints[i].name, s_endpoints[i].fn, s_endpoints[i].req,
                   s_endpoints[i].rsp);
    svc_handle_stream(s, "Registry.Watch", s_watch, &svc__registry__watch_request__descriptor,
                      &svc__registry__result__descriptor);
    svc_info("backend\tname=%s", st.backend->ops->name);

    int rc = pthread_create(&st.pruner, NULL, s_pruner, &st);
    if (rc) {
        fprintf(stderr, "registryd: cannot start the pruning thread: %s\n", strerror(rc));
        return 1;
    }
    int code = svc_run(s);

    pthread_mutex_lock(&st.stop_mu);
    st.stop = true;
    pthread_cond_signal(&st.stop_cv);
    pthread_mutex_unlock(&st.stop_mu);
    pthread_join(st.pruner, NULL);

    reg_watchers_destroy(&st.watchers);
    st.backend->ops->destroy(st.backend);
    pthread_mutex_destroy(&st.mu);
    pthread_mutex_destroy(&st.stop_mu);
    pthread_cond_destroy(&st.stop_cv);
    svc_destroy(&s);
    return code;
}
