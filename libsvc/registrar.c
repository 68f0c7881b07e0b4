/*
 * libsvc/registrar.c — keeps the service registered.
 *
 * Its own thread with its own client, so a slow or absent registry never
 * stalls the loop: register at start (retrying every second until the first
 * success), again every register-interval with register-ttl, and on stop
 * deregister at once and tell the loop (reg_done) that draining may begin.
 * The first success also sends READY=1 to systemd (or to a supervisor that
 * speaks the notify protocol), with SVC_ADDRESS=<advertised address>, which
 * systemd ignores and svc's supervisor uses for rpc health checks.
 */
#include "service_int.h"
#include "clock.h"
#include "svc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#define S_CALL_TIMEOUT_MS 2000

static int s_register(svc_service *s, svc_client *c, bool quiet)
{
    Svc__Registry__RegisterRequest req = SVC__REGISTRY__REGISTER_REQUEST__INIT;
    req.service = s->reg_service;
    req.ttl = (uint32_t)s->ttl_s;
    ProtobufCMessage *rsp = NULL;
    svc_error err = SVC_ERROR_INIT;
    svc_call_opts o = { .timeout_ms = S_CALL_TIMEOUT_MS, .retries = -1, .address = s->registry };
    int rc = svc_call(c, "svc.registry", "Registry.Register", &req.base,
                      &svc__registry__register_response__descriptor, &rsp, &o, &err);
    if (rc < 0 && !quiet)
        svc_warn("registration failed; will retry\tregistry=%s error=\"%s\"", s->registry,
                 err.detail ? err.detail : svc_strerror(rc));
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    svc_error_release(&err);
    return rc;
}

static void s_deregister(svc_service *s, svc_client *c)
{
    Svc__Registry__DeregisterRequest req = SVC__REGISTRY__DEREGISTER_REQUEST__INIT;
    req.service = s->reg_service;
    ProtobufCMessage *rsp = NULL;
    svc_error err = SVC_ERROR_INIT;
    svc_call_opts o = { .timeout_ms = 1000, .retries = -1, .address = s->registry };
    int rc = svc_call(c, "svc.registry", "Registry.Deregister", &req.base,
                      &svc__registry__deregister_response__descriptor, &rsp, &o, &err);
    if (rc < 0)
        svc_warn("deregistration failed\terror=\"%s\"", err.detail ? err.detail : svc_strerror(rc));
    else
        svc_info("deregistered\tnode=%s", s->node_id);
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    svc_error_release(&err);
}

/* Waits up to ms or until stop is asked; returns true if stop was asked. */
static bool s_sleep(svc_service *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->reg_stop && pthread_cond_timedwait(&s->reg_cv, &s->mu, &ts) != ETIMEDOUT)
        ;
    bool stop = s->reg_stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *s_registrar(void *arg)
{
    svc_service *s = arg;
    svc_client *c = svc_client_new(s->registry);
    bool registered = false, failing = false;
    while (c) {
        int rc = s_register(s, c, failing);
        if (rc == 0 && !registered) {
            registered = true;
            svc_info("registered\tnode=%s address=%s registry=%s", s->node_id, s->advertise,
                     s->registry);
            sd_notifyf(0, "READY=1\nSTATUS=serving %s at %s\nSVC_ADDRESS=%s", s->name, s->advertise,
                       s->advertise);
        } else if (rc == 0 && failing) {
            svc_info("registered again\tnode=%s", s->node_id);
        }
        failing = rc < 0;
        int64_t wait = rc < 0 ? 1000 : (int64_t)s->interval_s * 1000;
        if (rc < 0 && wait > (int64_t)s->interval_s * 1000)
            wait = (int64_t)s->interval_s * 1000;
        if (s_sleep(s, wait))
            break;
    }
    if (c && registered)
        s_deregister(s, c);
    svc_client_destroy(&c);
    pthread_mutex_lock(&s->mu);
    s->reg_done = true;
    pthread_mutex_unlock(&s->mu);
    ev_async_send(s->loop, &s->wake);
    return NULL;
}

int svc__registrar_start(svc_service *s)
{
    int rc = pthread_create(&s->reg_thread, NULL, s_registrar, s);
    if (rc)
        return -rc;
    s->reg_running = true;
    return 0;
}

void svc__registrar_request_stop(svc_service *s)
{
    pthread_mutex_lock(&s->mu);
    s->reg_stop = true;
    pthread_cond_signal(&s->reg_cv);
    pthread_mutex_unlock(&s->mu);
}

void svc__registrar_join(svc_service *s)
{
    if (!s->reg_running)
        return;
    svc__registrar_request_stop(s);
    pthread_join(s->reg_thread, NULL);
    s->reg_running = false;
}
