/*
 * registryd/memory.c — the in-memory registry backend (the default).
 *
 * Services are kept per (name, version) with their endpoints and metadata;
 * each node has its own expiry.  Nothing survives a restart: services come
 * back by registering again, which they do every register-interval.
 */
#include "backend.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct m_node {
    Svc__Registry__Node *node;  /* owned copy */
    int64_t expires;            /* monotonic ms */
} m_node;

typedef struct m_svc {
    Svc__Registry__Service *info;  /* owned copy, without nodes */
    m_node *nodes;                 /* owned */
    size_t n, cap;
} m_svc;

typedef struct m_state {
    m_svc *svcs;                   /* owned array */
    size_t n, cap;
} m_state;

static int64_t s_wall_minus_mono(void)
{
    struct timespec w, m;
    clock_gettime(CLOCK_REALTIME, &w);
    clock_gettime(CLOCK_MONOTONIC, &m);
    return ((int64_t)w.tv_sec - m.tv_sec) * 1000 + (w.tv_nsec - m.tv_nsec) / 1000000;
}

/* True when a and b encode to the same bytes. */
static bool s_same(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
    if (la != lb)
        return false;
    uint8_t *ba = malloc(la ? la : 1), *bb = malloc(lb ? lb : 1);
    bool same = false;
    if (ba && bb) {
        protobuf_c_message_pack(a, ba);
        protobuf_c_message_pack(b, bb);
        same = memcmp(ba, bb, la) == 0;
    }
    free(ba);
    free(bb);
    return same;
}

/* svc without its nodes, as a deep copy. */
static Svc__Registry__Service *s_info(const Svc__Registry__Service *svc)
{
    Svc__Registry__Service view = *svc;
    view.nodes = NULL;
    view.n_nodes = 0;
    return reg_copy(&view.base);
}

static m_svc *s_find(m_state *st, const char *name, const char *version)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->svcs[i].info->name, name) == 0 &&
            strcmp(st->svcs[i].info->version, version) == 0)
            return &st->svcs[i];
    return NULL;
}

static void s_svc_release(m_svc *s)
{
    for (size_t i = 0; i < s->n; i++)
        svc__registry__node__free_unpacked(s->nodes[i].node, NULL);
    free(s->nodes);
    svc__registry__service__free_unpacked(s->info, NULL);
}

static void s_remove_svc(m_state *st, m_svc *s)
{
    size_t i = (size_t)(s - st->svcs);
    s_svc_release(s);
    memmove(s, s + 1, (st->n - i - 1) * sizeof *s);
    st->n--;
}

static void s_remove_node(m_svc *s, size_t i)
{
    svc__registry__node__free_unpacked(s->nodes[i].node, NULL);
    memmove(&s->nodes[i], &s->nodes[i + 1], (s->n - i - 1) * sizeof *s->nodes);
    s->n--;
}

static m_svc *s_add_svc(m_state *st, const Svc__Registry__Service *svc)
{
    if (st->n >= REG_MAX_SERVICES)
        return NULL;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        m_svc *n = realloc(st->svcs, cap * sizeof *n);
        if (!n)
            return NULL;
        st->svcs = n;
        st->cap = cap;
    }
    m_svc *s = &st->svcs[st->n];
    memset(s, 0, sizeof *s);
    s->info = s_info(svc);
    if (!s->info)
        return NULL;
    st->n++;
    return s;
}

static int s_register(reg_backend *b, const Svc__Registry__Service *svc, uint32_t ttl_s,
                      int64_t now_ms, reg_events *ev)
{
    m_state *st = b->state;
    m_svc *s = s_find(st, svc->name, svc->version);
    bool changed = false;
    if (!s) {
        s = s_add_svc(st, svc);
        if (!s)
            return st->n >= REG_MAX_SERVICES ? -ENOSPC : -ENOMEM;
    } else {
        Svc__Registry__Service *info = s_info(svc);
        if (!info)
            return -ENOMEM;
        changed = !s_same(&info->base, &s->info->base);
        if (changed) {
            svc__registry__service__free_unpacked(s->info, NULL);
            s->info = info;
        } else {
            svc__registry__service__free_unpacked(info, NULL);
        }
    }
    int64_t expires = now_ms + (int64_t)ttl_s * 1000;
    for (size_t i = 0; i < svc->n_nodes; i++) {
        const Svc__Registry__Node *in = svc->nodes[i];
        m_node *known = NULL;
        for (size_t j = 0; j < s->n && !known; j++)
            if (strcmp(s->nodes[j].node->id, in->id) == 0)
                known = &s->nodes[j];
        if (known) {
            bool node_changed = strcmp(known->node->address, in->address) != 0 ||
                                !s_same(&known->node->base, &in->base);
            if (node_changed) {
                Svc__Registry__Node *copy = reg_copy(&in->base);
                if (!copy)
                    return -ENOMEM;
                copy->expires = 0;
                svc__registry__node__free_unpacked(known->node, NULL);
                known->node = copy;
            }
            known->expires = expires;
            if ((node_changed || changed) && reg_events_add(ev, "update", s->info, known->node) < 0)
                return -ENOMEM;
            continue;
        }
        if (s->n >= REG_MAX_NODES)
            return -ENOSPC;
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 4;
            m_node *n = realloc(s->nodes, cap * sizeof *n);
            if (!n)
                return -ENOMEM;
            s->nodes = n;
            s->cap = cap;
        }
        Svc__Registry__Node *copy = reg_copy(&in->base);
        if (!copy)
            return -ENOMEM;
        copy->expires = 0;
        s->nodes[s->n++] = (m_node){ copy, expires };
        if (reg_events_add(ev, "create", s->info, copy) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int s_deregister(reg_backend *b, const Svc__Registry__Service *svc, reg_events *ev)
{
    m_state *st = b->state;
    m_svc *s = s_find(st, svc->name, svc->version);
    if (!s)
        return -ENOENT;
    int removed = 0;
    for (size_t i = 0; i < svc->n_nodes; i++) {
        for (size_t j = 0; j < s->n; j++) {
            if (strcmp(s->nodes[j].node->id, svc->nodes[i]->id) != 0)
                continue;
            if (reg_events_add(ev, "delete", s->info, s->nodes[j].node) < 0)
                return -ENOMEM;
            s_remove_node(s, j);
            removed++;
            break;
        }
    }
    if (s->n == 0)
        s_remove_svc(st, s);
    return removed ? 0 : -ENOENT;
}

static int s_expire(reg_backend *b, int64_t now_ms, reg_events *ev)
{
    m_state *st = b->state;
    for (size_t i = 0; i < st->n;) {
        m_svc *s = &st->svcs[i];
        for (size_t j = 0; j < s->n;) {
            if (s->nodes[j].expires > now_ms) {
                j++;
                continue;
            }
            if (reg_events_add(ev, "delete", s->info, s->nodes[j].node) < 0)
                return -ENOMEM;
            s_remove_node(s, j);
        }
        if (s->n == 0)
            s_remove_svc(st, s);
        else
            i++;
    }
    return 0;
}

static void s_free_list(Svc__Registry__Service **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        svc__registry__service__free_unpacked(v[i], NULL);
    free(v);
}

static int s_get(reg_backend *b, const char *name, int64_t now_ms, Svc__Registry__Service ***out,
                 size_t *n)
{
    m_state *st = b->state;
    *out = NULL;
    *n = 0;
    size_t matches = 0;
    for (size_t i = 0; i < st->n; i++)
        matches += strcmp(st->svcs[i].info->name, name) == 0;
    if (!matches)
        return 0;
    Svc__Registry__Service **v = calloc(matches, sizeof *v);
    if (!v)
        return -ENOMEM;
    int64_t to_wall = s_wall_minus_mono();
    for (size_t i = 0; i < st->n; i++) {
        m_svc *s = &st->svcs[i];
        if (strcmp(s->info->name, name) != 0)
            continue;
        Svc__Registry__Node *live[s->n ? s->n : 1];
        size_t k = 0;
        for (size_t j = 0; j < s->n; j++)
            if (s->nodes[j].expires > now_ms)
                live[k++] = s->nodes[j].node;
        Svc__Registry__Service view = *s->info;
        view.nodes = live;
        view.n_nodes = k;
        Svc__Registry__Service *copy = reg_copy(&view.base);
        if (!copy) {
            s_free_list(v, *n);
            return -ENOMEM;
        }
        for (size_t j = 0, m = 0; j < s->n; j++)
            if (s->nodes[j].expires > now_ms)
                copy->nodes[m++]->expires = s->nodes[j].expires + to_wall;
        v[(*n)++] = copy;
    }
    *out = v;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    const Svc__Registry__Service *x = *(Svc__Registry__Service *const *)a;
    const Svc__Registry__Service *y = *(Svc__Registry__Service *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->version, y->version);
}

static int s_list(reg_backend *b, Svc__Registry__Service ***out, size_t *n)
{
    m_state *st = b->state;
    *n = 0;
    *out = calloc(st->n ? st->n : 1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < st->n; i++) {
        Svc__Registry__Service view = SVC__REGISTRY__SERVICE__INIT;
        view.name = st->svcs[i].info->name;
        view.version = st->svcs[i].info->version;
        Svc__Registry__Service *copy = reg_copy(&view.base);
        if (!copy) {
            s_free_list(*out, *n);
            *out = NULL;
            return -ENOMEM;
        }
        (*out)[(*n)++] = copy;
    }
    qsort(*out, *n, sizeof **out, s_cmp);
    return 0;
}

static void s_destroy(reg_backend *b)
{
    m_state *st = b->state;
    for (size_t i = 0; i < st->n; i++)
        s_svc_release(&st->svcs[i]);
    free(st->svcs);
    free(st);
    free(b);
}

static const reg_backend_ops s_ops = {
    .name = "memory",
    .register_ = s_register,
    .deregister = s_deregister,
    .get = s_get,
    .list = s_list,
    .expire = s_expire,
    .destroy = s_destroy,
};

reg_backend *reg_memory_new(void)
{
    reg_backend *b = calloc(1, sizeof *b);
    m_state *st = calloc(1, sizeof *st);
    if (!b || !st) {
        free(b);
        free(st);
        return NULL;
    }
    b->ops = &s_ops;
    b->state = st;
    return b;
}
