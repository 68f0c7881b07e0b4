/* libsvc/selector.c — filters, strategies, circuit breaker.  See selector.h. */
#include "selector.h"
#include "zctx.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

void svc__node_release(svc__node *n)
{
    free(n->id);
    free(n->address);
    free(n->version);
    svc_meta_release(&n->meta);
    memset(n, 0, sizeof *n);
}

bool svc__node_matches(const svc__node *n, const char *version, const char *node_meta)
{
    if (version && *version && fnmatch(version, n->version ? n->version : "", 0) != 0)
        return false;
    if (!node_meta || !*node_meta)
        return true;
    char *copy = strdup(node_meta), *save = NULL;
    bool ok = copy != NULL;
    for (char *kv = ok ? strtok_r(copy, ",", &save) : NULL; kv && ok;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            ok = false;
            break;
        }
        *eq = '\0';
        const char *have = svc_meta_get(&n->meta, kv);
        ok = have && fnmatch(eq + 1, have, 0) == 0;
    }
    free(copy);
    return ok;
}

static svc__breaker *s_find(svc__breaker *t, const char *address)
{
    for (; t; t = t->next)
        if (strcmp(t->address, address) == 0)
            return t;
    return NULL;
}

/* True when nd may be chosen now: matches, not failed, breaker closed. */
static bool s_eligible(const svc__node *nd, const svc__select *s, svc__breaker *table, int64_t now)
{
    if (nd->failed || !svc__node_matches(nd, s->version, s->node_meta))
        return false;
    svc__breaker *b = s_find(table, nd->address);
    return !(b && b->open_until > now);
}

/* The eligible node with the fewest calls in flight; ties broken at random. */
static svc__node *s_least(svc__node *nodes, size_t n, const svc__select *s, svc__breaker *table,
                          int64_t now)
{
    svc__node *best = NULL;
    size_t ties = 0;
    for (size_t i = 0; i < n; i++) {
        svc__node *nd = &nodes[i];
        if (!s_eligible(nd, s, table, now))
            continue;
        if (!best || nd->outstanding < best->outstanding) {
            best = nd;
            ties = 1;
        } else if (nd->outstanding == best->outstanding && svc__rand() % ++ties == 0) {
            best = nd;   /* reservoir sampling: each tie equally likely */
        }
    }
    return best;
}

svc__node *svc__select_node(svc__node *nodes, size_t n, const svc__select *s,
                            svc__breaker *table, int64_t now, bool *matched)
{
    size_t ready = 0;
    svc__node *probe = NULL;
    int64_t probe_at = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        svc__node *nd = &nodes[i];
        if (!svc__node_matches(nd, s->version, s->node_meta))
            continue;
        any = true;
        if (nd->failed)
            continue;
        svc__breaker *b = s_find(table, nd->address);
        if (b && b->open_until > now) {
            if (!probe || b->open_until < probe_at) {
                probe = nd;
                probe_at = b->open_until;
            }
            continue;
        }
        ready++;
    }
    if (matched)
        *matched = any;
    if (!ready)
        return probe;
    if (s->strategy == SVC_SELECT_LEAST_OUTSTANDING)
        return s_least(nodes, n, s, table, now);
    size_t k = s->strategy == SVC_SELECT_ROUND_ROBIN ? (size_t)((*s->rr)++ % ready)
                                                     : (size_t)(svc__rand() % ready);
    for (size_t i = 0; i < n; i++) {
        svc__node *nd = &nodes[i];
        if (!s_eligible(nd, s, table, now))
            continue;
        if (k-- == 0)
            return nd;
    }
    return NULL;
}

bool svc__breaker_report(svc__breaker **table, const char *address, bool ok, int failures,
                         int cooldown_ms, int64_t now)
{
    if (failures <= 0)
        return false;
    svc__breaker *b = s_find(*table, address);
    if (ok) {
        if (b) {
            b->fails = 0;
            b->open_until = 0;
        }
        return false;
    }
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || !(b->address = strdup(address))) {
            free(b);
            return false;
        }
        b->next = *table;
        *table = b;
    }
    b->fails++;
    b->last_fail = now;
    /* A failed probe (breaker was open) reopens at once. */
    if (b->fails >= failures) {
        bool opened = b->open_until <= now;
        b->open_until = now + cooldown_ms;
        return opened;
    }
    return false;
}

void svc__breaker_probing(svc__breaker *table, const char *address, int failures, int cooldown_ms,
                          int64_t now)
{
    svc__breaker *b = failures > 0 ? s_find(table, address) : NULL;
    if (b && b->fails >= failures && b->open_until && b->open_until <= now)
        b->open_until = now + cooldown_ms;
}

void svc__breaker_prune(svc__breaker **table, int64_t now)
{
    for (svc__breaker **p = table; *p;) {
        svc__breaker *b = *p;
        if (now - b->last_fail < SVC__BREAKER_FORGET_MS || b->open_until > now) {
            p = &b->next;
            continue;
        }
        *p = b->next;
        free(b->address);
        free(b);
    }
}

void svc__breaker_free(svc__breaker **table)
{
    while (*table) {
        svc__breaker *next = (*table)->next;
        free((*table)->address);
        free(*table);
        *table = next;
    }
}
