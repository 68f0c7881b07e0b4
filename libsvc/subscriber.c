/*
 * libsvc/subscriber.c — subscribers declared on a service (svc_subscribe),
 * go-micro's RegisterSubscriber: registered with the service as endpoints
 * carrying metadata subscriber=true, topic, queue; subscribed through
 * brokerd while the service runs.
 *
 * A thread subscribes them once svc_run serves, retrying every second until
 * brokerd accepted all (it may start after the service); the broker client
 * then subscribes again by itself after a restart of brokerd.  Handlers run
 * on the broker client's receive thread, one at a time.
 */
#include "service_int.h"
#include "svc/broker.h"
#include "svc/log.h"
#include "topic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct svc__subscriber {
    char *pattern;                 /* topic pattern, owned */
    char *queue;                   /* queue group, "" for none, owned */
    svc_sub_fn fn;                 /* the handler */
    void *arg;                     /* its argument */
    bool subscribed;               /* brokerd accepted it (subscriber thread only) */
    struct svc__subscriber *next;
};

int svc_subscribe(svc_service *s, const char *pattern, const char *queue, svc_sub_fn fn, void *arg)
{
    if (!s || !pattern || !fn || !svc__topic_valid(pattern, strlen(pattern), true) ||
        (queue && *queue && !svc__topic_valid(queue, strlen(queue), false)))
        return SVC_EINVAL;
    svc__subscriber *sub = calloc(1, sizeof *sub);
    if (!sub)
        return -ENOMEM;
    sub->pattern = strdup(pattern);
    sub->queue = strdup(queue ? queue : "");
    sub->fn = fn;
    sub->arg = arg;
    if (!sub->pattern || !sub->queue) {
        free(sub->pattern);
        free(sub->queue);
        free(sub);
        return -ENOMEM;
    }
    svc__subscriber **tail = &s->subscribers;
    while (*tail)
        tail = &(*tail)->next;
    *tail = sub;
    return 0;
}

/* A registry Value {name, type} with no fields. */
static Svc__Registry__Value *s_value(const char *type)
{
    Svc__Registry__Value *v = malloc(sizeof *v);
    if (!v)
        return NULL;
    svc__registry__value__init(v);
    v->name = strdup("");
    v->type = strdup(type);
    if (!v->name || !v->type) {
        svc__registry__value__free_unpacked(v, NULL);
        return NULL;
    }
    return v;
}

static Svc__MetadataEntry *s_entry(const char *k, const char *val)
{
    Svc__MetadataEntry *e = malloc(sizeof *e);
    if (!e)
        return NULL;
    svc__metadata_entry__init(e);
    e->key = strdup(k);
    e->value = strdup(val);
    if (!e->key || !e->value) {
        svc__metadata_entry__free_unpacked(e, NULL);
        return NULL;
    }
    return e;
}

int svc__subscribers_describe(svc_service *s, Svc__Registry__Service *r)
{
    size_t n = 0;
    for (svc__subscriber *sub = s->subscribers; sub; sub = sub->next)
        n++;
    if (!n)
        return 0;
    Svc__Registry__Endpoint **eps = realloc(r->endpoints, (r->n_endpoints + n) * sizeof *eps);
    if (!eps)
        return -ENOMEM;
    r->endpoints = eps;
    for (svc__subscriber *sub = s->subscribers; sub; sub = sub->next) {
        Svc__Registry__Endpoint *e = malloc(sizeof *e);
        if (!e)
            return -ENOMEM;
        svc__registry__endpoint__init(e);
        r->endpoints[r->n_endpoints++] = e;
        e->name = strdup(sub->pattern);
        e->request = s_value("svc.broker.Message");
        e->response = s_value("");
        e->metadata = calloc(3, sizeof *e->metadata);
        if (!e->name || !e->request || !e->response || !e->metadata)
            return -ENOMEM;
        const char *kv[3][2] = { { "subscriber", "true" }, { "topic", sub->pattern },
                                 { "queue", sub->queue } };
        for (int i = 0; i < 3; i++)
            if (!(e->metadata[e->n_metadata++] = s_entry(kv[i][0], kv[i][1])))
                return -ENOMEM;
    }
    return 0;
}

/* Waits up to ms, or until stop; true when stop was asked. */
static bool s_wait(svc_service *s, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->sub_stop && pthread_cond_timedwait(&s->reg_cv, &s->mu, &ts) != ETIMEDOUT)
        ;
    bool stop = s->sub_stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *s_thread(void *arg)
{
    svc_service *s = arg;
    bool warned = false;
    for (;;) {
        bool all = true;
        for (svc__subscriber *sub = s->subscribers; sub; sub = sub->next) {
            if (sub->subscribed)
                continue;
            int rc = svc_broker_subscribe(s->broker, sub->pattern, sub->queue, sub->fn, sub->arg, NULL);
            sub->subscribed = rc == 0;
            all &= sub->subscribed;
            if (rc == 0)
                svc_info("subscribed\ttopic=%s queue=%s", sub->pattern, sub->queue);
            else if (!warned)
                svc_warn("cannot subscribe yet; retrying\ttopic=%s error=\"%s\"", sub->pattern,
                         svc_strerror(rc));
            if (rc < 0)
                warned = true;
        }
        if (all || s_wait(s, 1000))
            break;
    }
    return NULL;
}

int svc__subscribers_start(svc_service *s)
{
    if (!s->subscribers)
        return 0;
    if (!(s->broker = svc_broker_new(s->registry)))
        return -ENOMEM;
    int rc = pthread_create(&s->sub_thread, NULL, s_thread, s);
    if (rc) {
        svc_broker_destroy(&s->broker);
        return -rc;
    }
    s->sub_running = true;
    return 0;
}

void svc__subscribers_stop(svc_service *s)
{
    if (s->sub_running) {
        pthread_mutex_lock(&s->mu);
        s->sub_stop = true;
        pthread_cond_broadcast(&s->reg_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sub_thread, NULL);
        s->sub_running = false;
    }
    svc_broker_destroy(&s->broker);
}

void svc__subscribers_free(svc_service *s)
{
    while (s->subscribers) {
        svc__subscriber *sub = s->subscribers;
        s->subscribers = sub->next;
        free(sub->pattern);
        free(sub->queue);
        free(sub);
    }
}
