/* registryd/watch.c — Registry.Watch streams.  See watch.h. */
#include "watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "svc/log.h"

typedef struct w_item {
    svc_stream *stream;   /* owned */
    char *filter;         /* owned; "" = all */
    struct w_item *next;
} w_item;

struct reg_watchers {
    pthread_mutex_t mu;
    w_item *items;
    size_t n;
};

reg_watchers *reg_watchers_new(void)
{
    reg_watchers *w = calloc(1, sizeof *w);
    if (w)
        pthread_mutex_init(&w->mu, NULL);
    return w;
}

int reg_watchers_add(reg_watchers *w, svc_stream *stream, const char *filter)
{
    w_item *it = calloc(1, sizeof *it);
    if (!it || !(it->filter = strdup(filter ? filter : ""))) {
        free(it);
        return -ENOMEM;   /* the stream stays the caller's */
    }
    it->stream = stream;
    pthread_mutex_lock(&w->mu);
    it->next = w->items;
    w->items = it;
    w->n++;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static void s_drop(w_item *it, const svc_error *err)
{
    svc_stream_close(&it->stream, err);
    free(it->filter);
    free(it);
}

void reg_watchers_broadcast(reg_watchers *w, const reg_events *ev)
{
    pthread_mutex_lock(&w->mu);
    for (w_item **p = &w->items; *p;) {
        w_item *it = *p;
        int rc = 0;
        for (size_t i = 0; i < ev->n && rc == 0; i++) {
            const Svc__Registry__Result *r = ev->items[i];
            if (it->filter[0] && strcmp(it->filter, r->service->name) != 0)
                continue;
            rc = svc_stream_send(it->stream, &r->base);
        }
        if (rc == 0) {
            p = &it->next;
            continue;
        }
        svc_error err = SVC_ERROR_INIT;
        if (rc == -EAGAIN)
            svc_error_set(&err, "svc.registry", 429, "watcher too slow: events dropped, watch again");
        *p = it->next;
        w->n--;
        s_drop(it, rc == -EAGAIN ? &err : NULL);
        svc_error_release(&err);
    }
    pthread_mutex_unlock(&w->mu);
}

void reg_watchers_sweep(reg_watchers *w)
{
    pthread_mutex_lock(&w->mu);
    for (w_item **p = &w->items; *p;) {
        w_item *it = *p;
        if (!svc_stream_closed(it->stream)) {
            p = &it->next;
            continue;
        }
        *p = it->next;
        w->n--;
        s_drop(it, NULL);
    }
    pthread_mutex_unlock(&w->mu);
}

size_t reg_watchers_count(reg_watchers *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void reg_watchers_destroy(reg_watchers **wp)
{
    reg_watchers *w = *wp;
    if (!w)
        return;
    while (w->items) {
        w_item *it = w->items;
        w->items = it->next;
        s_drop(it, NULL);
    }
    pthread_mutex_destroy(&w->mu);
    free(w);
    *wp = NULL;
}
