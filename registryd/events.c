/* registryd/events.c — watch events and message copies.  See backend.h. */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *reg_copy(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(m, buf);
    void *copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    return copy;
}

void reg_events_release(reg_events *ev)
{
    for (size_t i = 0; i < ev->n; i++)
        svc__registry__result__free_unpacked(ev->items[i], NULL);
    free(ev->items);
    memset(ev, 0, sizeof *ev);
}

int reg_events_add(reg_events *ev, const char *action, const Svc__Registry__Service *svc,
                   const Svc__Registry__Node *node)
{
    if (ev->n == ev->cap) {
        size_t cap = ev->cap ? ev->cap * 2 : 8;
        Svc__Registry__Result **items = realloc(ev->items, cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        ev->items = items;
        ev->cap = cap;
    }
    /* Shallow view with just this node, then one deep copy. */
    Svc__Registry__Service view = *svc;
    Svc__Registry__Node *nodes[1] = { (Svc__Registry__Node *)node };
    view.nodes = nodes;
    view.n_nodes = 1;
    Svc__Registry__Result r = SVC__REGISTRY__RESULT__INIT;
    r.action = (char *)action;
    r.service = &view;
    r.timestamp = s_wall_ms();
    Svc__Registry__Result *copy = reg_copy(&r.base);
    if (!copy)
        return -ENOMEM;
    ev->items[ev->n++] = copy;
    return 0;
}
