/*
 * stored/overlay.h — changes kept in memory in front of LMDB's tables.
 *
 * A layer (kv_layer) is an ordered map of (table, key) -> value or
 * tombstone: the puts and deletes not yet in LMDB.  A view (kv_view) stacks
 * layers over an LMDB read transaction and reads them as one: the topmost
 * layer holding a key decides it (a tombstone hides what lies below), and
 * a seek walks every layer and LMDB in key order at once.  Writes through
 * a view go to its top layer.
 *
 * Keys order as LMDB's default comparison does (bytes, then length), so a
 * view's seek and an LMDB cursor agree.  Tables are small numbers (the
 * backend's DBIs, lmdb.c), values are the bytes LMDB would hold.
 *
 * A layer has no lock of its own: whoever shares one decides who may touch
 * it when (lmdb.c: the writer fills a private layer and moves it into the
 * shared one under a write lock; readers hold the read lock).
 */
#ifndef KV_OVERLAY_H
#define KV_OVERLAY_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_VIEW_TABLES 8    /* table numbers 0..KV_VIEW_TABLES-1 */
#define KV_VIEW_LAYERS 4    /* most layers in one view */
#define KV_VIEW_MAX_KEY 511 /* LMDB's longest key (mdb_env_get_maxkeysize without MDB_MAXKEYSIZE set) */

typedef struct kv_layer kv_layer;

/* One change in a layer; key and value live in it. */
typedef struct kv_change {
    unsigned table;         /* 0..KV_VIEW_TABLES-1 */
    bool del;               /* a tombstone: the key is deleted */
    const void *key;        /* klen bytes */
    size_t klen;
    void *val;              /* vlen bytes (puts) */
    size_t vlen;
} kv_change;

/* A new empty layer, or NULL (out of memory). */
kv_layer *kv_layer_new(void);
/* Frees l and every change in it; *l becomes NULL.  Safe on NULL. */
void kv_layer_destroy(kv_layer **l);
/* Drops every change: l is empty again. */
void kv_layer_clear(kv_layer *l);

/*
 * Puts vlen bytes under key in table, replacing what l held there, and
 * returns where the value goes (copy val in, or pack into it when val is
 * NULL); NULL when out of memory.  The pointer lives until the key next
 * changes in l.
 */
void *kv_layer_put(kv_layer *l, unsigned table, const void *key, size_t klen, const void *val,
                   size_t vlen);
/* A tombstone for key in table.  0 or -ENOMEM. */
int kv_layer_del(kv_layer *l, unsigned table, const void *key, size_t klen);
/* Moves every change of src into dst (replacing dst's for the same keys); src ends empty. */
void kv_layer_merge(kv_layer *dst, kv_layer *src);

/* Counts: changes, bytes of keys and values, and an upper bound of the LMDB pages they take. */
size_t kv_layer_count(const kv_layer *l);
size_t kv_layer_bytes(const kv_layer *l);
size_t kv_layer_pages(const kv_layer *l);

/*
 * Every change of l in order (table, then key): fn returns 0 to go on, or
 * a code that stops the walk and is returned.
 */
int kv_layer_walk(const kv_layer *l, int (*fn)(void *arg, const kv_change *c), void *arg);

/* Layers, top first, over an LMDB read transaction (or a write one). */
typedef struct kv_view {
    kv_layer *layers[KV_VIEW_LAYERS];   /* layers[0] takes the writes */
    size_t n_layers;
    MDB_txn *txn;                       /* below every layer */
    const MDB_dbi *dbis;                /* LMDB DBI of each table number */
    MDB_cursor *cursors[KV_VIEW_TABLES];/* opened on first seek; kv_view_release closes */
} kv_view;

/*
 * The value under key: 0 and *v (valid until the view's next write, or its
 * layers or txn change), MDB_NOTFOUND, or another LMDB code.
 */
int kv_view_get(kv_view *v, unsigned table, const void *key, size_t klen, MDB_val *val);
/*
 * The first live key at or after (after false) or after (after true) key:
 * 0 with *k and *val (valid as for kv_view_get), MDB_NOTFOUND, or an LMDB code.
 */
int kv_view_seek(kv_view *v, unsigned table, const void *key, size_t klen, bool after, MDB_val *k,
                 MDB_val *val);
/*
 * Writes to the top layer: 0, -ENOMEM, or -EINVAL for a key LMDB could not
 * take (empty, or over KV_VIEW_MAX_KEY): nothing LMDB would refuse at a
 * checkpoint gets into a layer.  put with val NULL leaves *out to be packed.
 */
int kv_view_put(kv_view *v, unsigned table, const void *key, size_t klen, const void *val,
                size_t vlen, void **out);
int kv_view_del(kv_view *v, unsigned table, const void *key, size_t klen);
/* Closes the view's cursors (before its txn ends). */
void kv_view_release(kv_view *v);

#endif
