/*
 * stored/overlay.c — in-memory layers of changes and merged views (see overlay.h).
 *
 * A layer is a red-black tree (libbsd's <sys/tree.h>, the BSD kernels'
 * macros) of nodes that carry their key and value inline: one allocation
 * per change.
 */
#include "overlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* tree.h marks its static functions __unused, which libbsd leaves undefined. */
#define __unused __attribute__((__unused__))
#include <bsd/sys/tree.h>

#define S_PAGE 4096   /* LMDB's page on the hosts we run on: only for the estimate */

typedef struct s_node {
    RB_ENTRY(s_node) rb;
    kv_change c;          /* c.key and c.val point into data */
    size_t pages;         /* estimate of LMDB pages this change takes */
    char data[];          /* key, then value */
} s_node;

RB_HEAD(s_tree, s_node);

struct kv_layer {
    struct s_tree tree;
    size_t count, bytes, pages;
};

/* LMDB's default order: table, then bytes, then the shorter first. */
static int s_cmp3(unsigned ta, const void *ka, size_t la, unsigned tb, const void *kb, size_t lb)
{
    if (ta != tb)
        return ta < tb ? -1 : 1;
    int c = memcmp(ka, kb, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

static int s_cmp(const s_node *a, const s_node *b)
{
    return s_cmp3(a->c.table, a->c.key, a->c.klen, b->c.table, b->c.key, b->c.klen);
}

RB_GENERATE_STATIC(s_tree, s_node, rb, s_cmp)
#undef __unused

kv_layer *kv_layer_new(void)
{
    kv_layer *l = calloc(1, sizeof *l);
    if (l)
        RB_INIT(&l->tree);
    return l;
}

static void s_account(kv_layer *l, const s_node *n, int sign)
{
    size_t b = n->c.klen + n->c.vlen;
    if (sign > 0) {
        l->count++;
        l->bytes += b;
        l->pages += n->pages;
    } else {
        l->count--;
        l->bytes -= b;
        l->pages -= n->pages;
    }
}

void kv_layer_clear(kv_layer *l)
{
    s_node *n, *next;
    for (n = RB_MIN(s_tree, &l->tree); n; n = next) {
        next = RB_NEXT(s_tree, &l->tree, n);
        RB_REMOVE(s_tree, &l->tree, n);
        free(n);
    }
    l->count = l->bytes = l->pages = 0;
}

void kv_layer_destroy(kv_layer **lp)
{
    if (!lp || !*lp)
        return;
    kv_layer_clear(*lp);
    free(*lp);
    *lp = NULL;
}

/* Links n into l, replacing (and freeing) a node with its key. */
static void s_insert(kv_layer *l, s_node *n)
{
    s_node *old = RB_INSERT(s_tree, &l->tree, n);
    if (old) {
        RB_REMOVE(s_tree, &l->tree, old);
        s_account(l, old, -1);
        free(old);
        RB_INSERT(s_tree, &l->tree, n);
    }
    s_account(l, n, +1);
}

static s_node *s_node_new(unsigned table, bool del, const void *key, size_t klen, size_t vlen)
{
    s_node *n = malloc(sizeof *n + klen + vlen);
    if (!n)
        return NULL;
    memcpy(n->data, key, klen);
    n->c = (kv_change){ .table = table, .del = del, .key = n->data, .klen = klen,
                        .val = n->data + klen, .vlen = vlen };
    /* A put may need overflow pages for its value and dirties a leaf; a delete a leaf. */
    n->pages = del ? 1 : 1 + (klen + vlen + 32 + S_PAGE - 1) / S_PAGE;
    return n;
}

void *kv_layer_put(kv_layer *l, unsigned table, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    s_node *n = s_node_new(table, false, key, klen, vlen);
    if (!n)
        return NULL;
    if (val && vlen)
        memcpy(n->c.val, val, vlen);
    s_insert(l, n);
    return n->c.val;
}

int kv_layer_del(kv_layer *l, unsigned table, const void *key, size_t klen)
{
    s_node *n = s_node_new(table, true, key, klen, 0);
    if (!n)
        return -ENOMEM;
    s_insert(l, n);
    return 0;
}

void kv_layer_merge(kv_layer *dst, kv_layer *src)
{
    s_node *n, *next;
    for (n = RB_MIN(s_tree, &src->tree); n; n = next) {
        next = RB_NEXT(s_tree, &src->tree, n);
        RB_REMOVE(s_tree, &src->tree, n);
        s_insert(dst, n);
    }
    src->count = src->bytes = src->pages = 0;
}

size_t kv_layer_count(const kv_layer *l) { return l->count; }
size_t kv_layer_bytes(const kv_layer *l) { return l->bytes; }
size_t kv_layer_pages(const kv_layer *l) { return l->pages; }

int kv_layer_walk(const kv_layer *l, int (*fn)(void *arg, const kv_change *c), void *arg)
{
    struct s_tree *t = (struct s_tree *)&l->tree;
    for (s_node *n = RB_MIN(s_tree, t); n; n = RB_NEXT(s_tree, t, n)) {
        int rc = fn(arg, &n->c);
        if (rc)
            return rc;
    }
    return 0;
}

/* The node for key exactly, or NULL. */
static s_node *s_find(kv_layer *l, unsigned table, const void *key, size_t klen)
{
    s_node probe = { .c = { .table = table, .key = key, .klen = klen } };
    return RB_FIND(s_tree, &l->tree, &probe);
}

/* The first node at or after key (after: strictly after), within table, or NULL. */
static s_node *s_lower(kv_layer *l, unsigned table, const void *key, size_t klen, bool after)
{
    s_node probe = { .c = { .table = table, .key = key, .klen = klen } };
    s_node *n = RB_NFIND(s_tree, &l->tree, &probe);
    if (n && after && s_cmp(n, &probe) == 0)
        n = RB_NEXT(s_tree, &l->tree, n);
    return n && n->c.table == table ? n : NULL;
}

/* ---- views ------------------------------------------------------------------ */

int kv_view_get(kv_view *v, unsigned table, const void *key, size_t klen, MDB_val *val)
{
    for (size_t i = 0; i < v->n_layers; i++) {
        s_node *n = v->layers[i] ? s_find(v->layers[i], table, key, klen) : NULL;
        if (!n)
            continue;
        if (n->c.del)
            return MDB_NOTFOUND;
        val->mv_data = n->c.val;
        val->mv_size = n->c.vlen;
        return 0;
    }
    MDB_val k = { klen, (void *)key };
    return mdb_get(v->txn, v->dbis[table], &k, val);
}

/* LMDB's first key at or after key (after: strictly after). */
static int s_lmdb_seek(kv_view *v, unsigned table, const void *key, size_t klen, bool after,
                       MDB_val *k, MDB_val *val)
{
    if (!v->cursors[table]) {
        int rc = mdb_cursor_open(v->txn, v->dbis[table], &v->cursors[table]);
        if (rc)
            return rc;
    }
    MDB_cursor *cur = v->cursors[table];
    *k = (MDB_val){ klen, (void *)key };
    int rc = klen ? mdb_cursor_get(cur, k, val, MDB_SET_RANGE) : mdb_cursor_get(cur, k, val, MDB_FIRST);
    if (rc == 0 && after && k->mv_size == klen && memcmp(k->mv_data, key, klen) == 0)
        rc = mdb_cursor_get(cur, k, val, MDB_NEXT);
    return rc;
}

int kv_view_seek(kv_view *v, unsigned table, const void *key, size_t klen, bool after, MDB_val *k,
                 MDB_val *val)
{
    MDB_val fk, fv;
    for (;;) {
        /* The smallest key of every source; among equals the topmost layer's. */
        s_node *best = NULL;
        for (size_t i = 0; i < v->n_layers; i++) {
            s_node *n = v->layers[i] ? s_lower(v->layers[i], table, key, klen, after) : NULL;
            if (n && (!best || s_cmp(n, best) < 0))
                best = n;
        }
        int rc = s_lmdb_seek(v, table, key, klen, after, &fk, &fv);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        bool from_lmdb = rc == 0 &&
            (!best || s_cmp3(table, fk.mv_data, fk.mv_size, table, best->c.key, best->c.klen) < 0);
        if (from_lmdb) {
            *k = fk;
            *val = fv;
            return 0;
        }
        if (!best)
            return MDB_NOTFOUND;
        if (!best->c.del) {
            *k = (MDB_val){ best->c.klen, (void *)best->c.key };
            *val = (MDB_val){ best->c.vlen, best->c.val };
            return 0;
        }
        key = best->c.key;   /* deleted: go on past it */
        klen = best->c.klen;
        after = true;
    }
}

int kv_view_put(kv_view *v, unsigned table, const void *key, size_t klen, const void *val,
                size_t vlen, void **out)
{
    if (klen == 0 || klen > KV_VIEW_MAX_KEY)
        return -EINVAL;
    void *p = kv_layer_put(v->layers[0], table, key, klen, val, vlen);
    if (!p)
        return -ENOMEM;
    if (out)
        *out = p;
    return 0;
}

int kv_view_del(kv_view *v, unsigned table, const void *key, size_t klen)
{
    if (klen == 0 || klen > KV_VIEW_MAX_KEY)
        return -EINVAL;
    return kv_layer_del(v->layers[0], table, key, klen);
}

void kv_view_release(kv_view *v)
{
    for (size_t i = 0; i < KV_VIEW_TABLES; i++)
        if (v->cursors[i]) {
            mdb_cursor_close(v->cursors[i]);
            v->cursors[i] = NULL;
        }
}
