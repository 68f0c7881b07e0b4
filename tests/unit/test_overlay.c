/*
 * Unit tests: stored's in-memory layers and merged views (stored/overlay.h),
 * checked against a reference model.
 *
 * Keys are drawn from a small universe (every string of 1..3 bytes over
 * {0x00, 'a', 'b', 0xff}), so random puts and deletes collide, share
 * prefixes and include keys that are prefixes of others.  The model keeps,
 * per table and key of the universe, what LMDB holds and what each layer
 * holds; the view's answer is LMDB's overridden by the layers from the
 * bottom up.  Order is computed here independently of overlay.c.
 */
#include "testlib.h"
#include "../../stored/overlay.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define S_TABLES 3                          /* tables used (DBIs "t0".."t2") */
#define S_ALPHA 4
#define S_MAXK 3
#define S_KEYS (4 + 16 + 64)                /* keys in the universe */
#define S_MAXV 12
#define S_ROUNDS 300

static const unsigned char s_alpha[S_ALPHA] = { 0x00, 'a', 'b', 0xff };

typedef struct s_key {
    unsigned char b[S_MAXK + 1];
    size_t len;
} s_key;

static s_key s_univ[S_KEYS];   /* sorted in LMDB's order once built */

/* One slot of the model: nothing, a put, or a tombstone (layers only). */
enum { S_NONE, S_PUT, S_DEL };
typedef struct s_slot {
    int state;
    unsigned char v[S_MAXV];
    size_t vlen;
} s_slot;

typedef s_slot s_level[S_TABLES][S_KEYS];

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint32_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}

/* LMDB's default order, written out byte by byte: a proper prefix comes first. */
static int s_ref_cmp(const void *a, size_t la, const void *b, size_t lb)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < la && i < lb; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return la == lb ? 0 : la < lb ? -1 : 1;
}

static int s_key_qcmp(const void *a, const void *b)
{
    const s_key *x = a, *y = b;
    return s_ref_cmp(x->b, x->len, y->b, y->len);
}

static void s_build_universe(void)
{
    size_t n = 0;
    for (size_t len = 1; len <= S_MAXK; len++) {
        size_t combos = 1;
        for (size_t i = 0; i < len; i++)
            combos *= S_ALPHA;
        for (size_t c = 0; c < combos; c++) {
            size_t x = c;
            for (size_t i = 0; i < len; i++, x /= S_ALPHA)
                s_univ[n].b[i] = s_alpha[x % S_ALPHA];
            s_univ[n++].len = len;
        }
    }
    qsort(s_univ, S_KEYS, sizeof *s_univ, s_key_qcmp);
}

static void s_rand_val(s_slot *s)
{
    s->state = S_PUT;
    s->vlen = s_rand() % (S_MAXV + 1);
    for (size_t i = 0; i < s->vlen; i++)
        s->v[i] = (unsigned char)s_rand();
}

/* The model's answer: LMDB, then each layer from the bottom (index n-1) to the top (0). */
static const s_slot *s_model(s_level *lmdb, s_level **layers, size_t n, unsigned t, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (layers[i][0][t][k].state != S_NONE)
            return layers[i][0][t][k].state == S_PUT ? &layers[i][0][t][k] : NULL;
    return lmdb[0][t][k].state == S_PUT ? &lmdb[0][t][k] : NULL;
}

static bool s_same_val(const MDB_val *v, const s_slot *s)
{
    return v->mv_size == s->vlen && (s->vlen == 0 || memcmp(v->mv_data, s->v, s->vlen) == 0);
}

static bool s_same_key(const MDB_val *k, const s_key *u)
{
    return k->mv_size == u->len && memcmp(k->mv_data, u->b, u->len) == 0;
}

/* ---- an LMDB env in a temp dir ------------------------------------------------ */

typedef struct s_env {
    char dir[64];
    MDB_env *env;
    MDB_dbi dbis[S_TABLES];
} s_env;

static bool s_env_open(s_env *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/test-overlay-XXXXXX");
    if (!mkdtemp(e->dir))
        return false;
    MDB_txn *txn;
    if (mdb_env_create(&e->env) || mdb_env_set_maxdbs(e->env, 8) ||
        mdb_env_set_mapsize(e->env, 16u << 20) ||
        mdb_env_open(e->env, e->dir, MDB_NOSYNC, 0600) || mdb_txn_begin(e->env, NULL, 0, &txn))
        return false;
    for (unsigned t = 0; t < S_TABLES; t++) {
        char name[8];
        snprintf(name, sizeof name, "t%u", t);
        if (mdb_dbi_open(txn, name, MDB_CREATE, &e->dbis[t])) {
            mdb_txn_abort(txn);
            return false;
        }
    }
    return mdb_txn_commit(txn) == 0;
}

static void s_env_close(s_env *e)
{
    char path[96];
    mdb_env_close(e->env);
    snprintf(path, sizeof path, "%s/data.mdb", e->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", e->dir);
    unlink(path);
    rmdir(e->dir);
}

/* Replaces every table's contents with random puts (model in lmdb); 0 or an LMDB code. */
static int s_env_fill(s_env *e, s_level *lmdb)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (rc)
        return rc;
    memset(lmdb, 0, sizeof *lmdb);
    for (unsigned t = 0; t < S_TABLES && !rc; t++) {
        rc = mdb_drop(txn, e->dbis[t], 0);
        unsigned density = s_rand() % 4;   /* 0: empty table; else about density/4 of the keys */
        for (size_t k = 0; k < S_KEYS && !rc; k++) {
            if (s_rand() % 4 >= density)
                continue;
            s_slot *s = &lmdb[0][t][k];
            s_rand_val(s);
            MDB_val mk = { s_univ[k].len, s_univ[k].b }, mv = { s->vlen, s->v };
            rc = mdb_put(txn, e->dbis[t], &mk, &mv, 0);
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* ---- model-checking one view -------------------------------------------------- */

/* Random puts and deletes into layer l (model m), through the view v when given. */
static void s_fill_layer(kv_layer *l, s_level *m, kv_view *v, size_t ops)
{
    for (size_t i = 0; i < ops; i++) {
        unsigned t = s_rand() % S_TABLES;
        size_t k = s_rand() % S_KEYS;
        s_slot *s = &m[0][t][k];
        if (s_rand() % 3 == 0) {
            s->state = S_DEL;
            s->vlen = 0;
            CHECK_INT(v ? kv_view_del(v, t, s_univ[k].b, s_univ[k].len)
                        : kv_layer_del(l, t, s_univ[k].b, s_univ[k].len), 0);
            continue;
        }
        s_rand_val(s);
        void *p = NULL;
        if (s_rand() % 2) {   /* pack into the returned room */
            if (v)
                CHECK_INT(kv_view_put(v, t, s_univ[k].b, s_univ[k].len, NULL, s->vlen, &p), 0);
            else
                p = kv_layer_put(l, t, s_univ[k].b, s_univ[k].len, NULL, s->vlen);
            CHECK(p != NULL);
            if (p && s->vlen)
                memcpy(p, s->v, s->vlen);
        } else {
            if (v)
                CHECK_INT(kv_view_put(v, t, s_univ[k].b, s_univ[k].len, s->v, s->vlen, &p), 0);
            else
                p = kv_layer_put(l, t, s_univ[k].b, s_univ[k].len, s->v, s->vlen);
            CHECK(p != NULL);
        }
    }
}

/* A probe key: mostly from the universe, sometimes longer or empty (for seeks). */
static size_t s_probe(unsigned char *b, bool allow_empty)
{
    uint32_t r = s_rand() % 10;
    if (r == 0 && allow_empty)
        return 0;
    size_t len = r < 8 ? 1 + s_rand() % S_MAXK : S_MAXK + 1;
    for (size_t i = 0; i < len; i++)
        b[i] = s_alpha[s_rand() % S_ALPHA];
    return len;
}

/* Index in the universe of the first key >= (after: >) b, or S_KEYS. */
static size_t s_lower(const unsigned char *b, size_t len, bool after)
{
    for (size_t k = 0; k < S_KEYS; k++) {
        int c = s_ref_cmp(s_univ[k].b, s_univ[k].len, b, len);
        if (c > 0 || (c == 0 && !after))
            return k;
    }
    return S_KEYS;
}

/* The model's first live key of table t at index >= k, or S_KEYS. */
static size_t s_next_live(s_level *lmdb, s_level **layers, size_t n, unsigned t, size_t k)
{
    while (k < S_KEYS && !s_model(lmdb, layers, n, t, k))
        k++;
    return k;
}

static void s_check_view(kv_view *v, s_level *lmdb, s_level **layers, size_t n)
{
    MDB_val k, val;
    unsigned char pb[S_MAXK + 2];

    /* Point reads. */
    for (int i = 0; i < 100; i++) {
        unsigned t = s_rand() % S_TABLES;
        size_t len = s_probe(pb, false);
        int rc = kv_view_get(v, t, pb, len, &val);
        size_t u = s_lower(pb, len, false);
        const s_slot *want = u < S_KEYS && s_univ[u].len == len && memcmp(s_univ[u].b, pb, len) == 0
                                 ? s_model(lmdb, layers, n, t, u) : NULL;
        if (want) {
            CHECK_INT(rc, 0);
            CHECK(rc != 0 || s_same_val(&val, want));
        } else {
            CHECK_INT(rc, MDB_NOTFOUND);
        }
    }

    /* Whole tables in order: from the empty key, then after the last one. */
    for (unsigned t = 0; t < S_TABLES; t++) {
        size_t want = s_next_live(lmdb, layers, n, t, 0), steps = 0;
        int rc = kv_view_seek(v, t, "", 0, false, &k, &val);
        while (rc == 0 && steps++ <= S_KEYS) {
            CHECK(want < S_KEYS);
            if (want >= S_KEYS)
                break;
            CHECK(s_same_key(&k, &s_univ[want]));
            CHECK(s_same_val(&val, s_model(lmdb, layers, n, t, want)));
            want = s_next_live(lmdb, layers, n, t, want + 1);
            unsigned char last[S_MAXK + 1];
            size_t ll = k.mv_size <= sizeof last ? k.mv_size : sizeof last;
            memcpy(last, k.mv_data, ll);
            rc = kv_view_seek(v, t, last, ll, true, &k, &val);
        }
        CHECK_INT(rc, MDB_NOTFOUND);
        CHECK_INT(want, S_KEYS);   /* every live key was returned */
    }

    /* Seeks from random keys, at-or-after and strictly after. */
    for (int i = 0; i < 100; i++) {
        unsigned t = s_rand() % S_TABLES;
        bool after = s_rand() % 2;
        size_t len = s_probe(pb, true);
        size_t want = s_next_live(lmdb, layers, n, t, s_lower(pb, len, after));
        int rc = kv_view_seek(v, t, pb, len, after, &k, &val);
        if (want < S_KEYS) {
            CHECK_INT(rc, 0);
            CHECK(rc != 0 || s_same_key(&k, &s_univ[want]));
            CHECK(rc != 0 || s_same_val(&val, s_model(lmdb, layers, n, t, want)));
        } else {
            CHECK_INT(rc, MDB_NOTFOUND);
        }
    }
}

/* ---- a layer against its model: counts and walk -------------------------------- */

typedef struct s_walk {
    s_level *m;
    unsigned t;       /* where the walk should be next */
    size_t k;
    size_t seen;
    bool ok;
} s_walk;

/* The model's next slot of a layer at or after (t, k) that holds a change. */
static bool s_walk_next(s_walk *w)
{
    for (; w->t < S_TABLES; w->t++, w->k = 0)
        for (; w->k < S_KEYS; w->k++)
            if (w->m[0][w->t][w->k].state != S_NONE)
                return true;
    return false;
}

static int s_walk_fn(void *arg, const kv_change *c)
{
    s_walk *w = arg;
    w->seen++;
    if (!s_walk_next(w)) {
        w->ok = false;
        return 0;
    }
    const s_slot *s = &w->m[0][w->t][w->k];
    MDB_val ck = { c->klen, (void *)c->key }, cv = { c->vlen, c->val };
    if (c->table != w->t || !s_same_key(&ck, &s_univ[w->k]) || c->del != (s->state == S_DEL) ||
        (!c->del && !s_same_val(&cv, s)) || (c->del && c->vlen != 0))
        w->ok = false;
    w->k++;
    return 0;
}

static void s_check_layer(const kv_layer *l, s_level *m)
{
    size_t count = 0, bytes = 0;
    for (unsigned t = 0; t < S_TABLES; t++)
        for (size_t k = 0; k < S_KEYS; k++)
            if (m[0][t][k].state != S_NONE) {
                count++;
                bytes += s_univ[k].len + m[0][t][k].vlen;
            }
    CHECK_INT(kv_layer_count(l), count);
    CHECK_INT(kv_layer_bytes(l), bytes);
    CHECK(kv_layer_pages(l) >= count);
    CHECK(count || kv_layer_pages(l) == 0);
    s_walk w = { .m = m, .ok = true };
    CHECK_INT(kv_layer_walk(l, s_walk_fn, &w), 0);
    CHECK(w.ok);
    CHECK_INT(w.seen, count);
    CHECK(!s_walk_next(&w));   /* nothing of the model left unvisited */
}

/* A fresh layer holding exactly m, as put there once each. */
static kv_layer *s_layer_of(s_level *m)
{
    kv_layer *l = kv_layer_new();
    for (unsigned t = 0; l && t < S_TABLES; t++)
        for (size_t k = 0; k < S_KEYS; k++) {
            const s_slot *s = &m[0][t][k];
            if (s->state == S_PUT)
                CHECK(kv_layer_put(l, t, s_univ[k].b, s_univ[k].len, s->v, s->vlen) != NULL);
            else if (s->state == S_DEL)
                CHECK_INT(kv_layer_del(l, t, s_univ[k].b, s_univ[k].len), 0);
        }
    return l;
}

/* ---- tests ---------------------------------------------------------------------- */

static s_level s_lmdb_m, s_layer_m[3];

/* Random LMDB contents and 1..3 random layers; every read of the view agrees with the model. */
TEST(view_matches_model)
{
    s_env e;
    if (!s_env_open(&e)) {
        CHECK(!"cannot open an LMDB env in a temp dir");
        return;
    }
    for (int round = 0; round < S_ROUNDS; round++) {
        CHECK_INT(s_env_fill(&e, &s_lmdb_m), 0);
        size_t n = 1 + s_rand() % 3;
        kv_layer *layers[3] = { NULL, NULL, NULL };
        s_level *lm[3] = { &s_layer_m[0], &s_layer_m[1], &s_layer_m[2] };
        MDB_txn *txn;
        CHECK_INT(mdb_txn_begin(e.env, NULL, MDB_RDONLY, &txn), 0);
        kv_view v = { .n_layers = n, .txn = txn, .dbis = e.dbis };
        for (size_t i = 0; i < n; i++) {
            layers[i] = v.layers[i] = kv_layer_new();
            CHECK(layers[i] != NULL);
            memset(lm[i], 0, sizeof *lm[i]);
        }
        /* The lower layers first; the top one through the view's writes. */
        for (size_t i = n; i-- > 1;)
            s_fill_layer(layers[i], lm[i], NULL, s_rand() % 120);
        s_fill_layer(layers[0], lm[0], &v, s_rand() % 120);
        for (size_t i = 0; i < n; i++)
            s_check_layer(layers[i], lm[i]);
        s_check_view(&v, &s_lmdb_m, lm, n);

        /*
         * Merging the top layer into the one below (how a batch joins the
         * active layer) keeps what the view reads, and the merged layer
         * counts as one built with its contents from scratch.
         */
        if (n > 1) {
            for (unsigned t = 0; t < S_TABLES; t++)
                for (size_t k = 0; k < S_KEYS; k++)
                    if (lm[0][0][t][k].state != S_NONE)
                        lm[1][0][t][k] = lm[0][0][t][k];
            kv_layer_merge(layers[1], layers[0]);
            memset(lm[0], 0, sizeof *lm[0]);
            s_check_layer(layers[0], lm[0]);
            s_check_layer(layers[1], lm[1]);
            kv_layer *fresh = s_layer_of(lm[1]);
            CHECK(fresh && kv_layer_pages(fresh) == kv_layer_pages(layers[1]));
            kv_layer_destroy(&fresh);
            s_check_view(&v, &s_lmdb_m, lm, n);   /* an empty top layer changes nothing */
            kv_view_release(&v);
            v.layers[0] = layers[1];
            v.layers[1] = n > 2 ? layers[2] : NULL;
            v.n_layers = n - 1;
            s_level *lm2[2] = { lm[1], lm[2] };
            s_check_view(&v, &s_lmdb_m, lm2, n - 1);
        }

        /* Cleared, the bottom layer hides nothing more. */
        kv_layer_clear(layers[n - 1]);
        memset(lm[n - 1], 0, sizeof *lm[n - 1]);
        s_check_layer(layers[n - 1], lm[n - 1]);
        kv_view_release(&v);
        v.layers[0] = layers[n - 1];
        v.n_layers = 1;
        s_check_view(&v, &s_lmdb_m, &lm[n - 1], 1);

        kv_view_release(&v);
        mdb_txn_abort(txn);
        for (size_t i = 0; i < n; i++) {
            kv_layer_destroy(&layers[i]);
            CHECK(layers[i] == NULL);
        }
    }
    s_env_close(&e);
}

/* The end of one table's keys is the end: a seek never runs into the next table. */
TEST(tables_do_not_leak)
{
    s_env e;
    if (!s_env_open(&e)) {
        CHECK(!"cannot open an LMDB env in a temp dir");
        return;
    }
    MDB_txn *txn;
    CHECK_INT(mdb_txn_begin(e.env, NULL, 0, &txn), 0);
    MDB_val mk = { 1, "b" }, mv = { 1, "2" };
    CHECK_INT(mdb_put(txn, e.dbis[2], &mk, &mv, 0), 0);
    CHECK_INT(mdb_txn_commit(txn), 0);
    CHECK_INT(mdb_txn_begin(e.env, NULL, MDB_RDONLY, &txn), 0);

    kv_layer *l = kv_layer_new();
    kv_view v = { .layers = { l }, .n_layers = 1, .txn = txn, .dbis = e.dbis };
    CHECK(kv_layer_put(l, 0, "a", 1, "0", 1) != NULL);
    CHECK(kv_layer_put(l, 1, "a", 1, "1", 1) != NULL);
    CHECK_INT(kv_layer_del(l, 1, "b", 1), 0);   /* hides nothing: "b" is in table 2 */
    MDB_val k, val;
    CHECK_INT(kv_view_seek(&v, 0, "a", 1, true, &k, &val), MDB_NOTFOUND);
    CHECK_INT(kv_view_seek(&v, 0, "b", 1, false, &k, &val), MDB_NOTFOUND);
    CHECK_INT(kv_view_seek(&v, 1, "a", 1, true, &k, &val), MDB_NOTFOUND);
    CHECK_INT(kv_view_get(&v, 1, "b", 1, &val), MDB_NOTFOUND);
    CHECK_INT(kv_view_get(&v, 2, "a", 1, &val), MDB_NOTFOUND);
    CHECK_INT(kv_view_get(&v, 2, "b", 1, &val), 0);
    CHECK(val.mv_size == 1 && memcmp(val.mv_data, "2", 1) == 0);
    CHECK_INT(kv_view_seek(&v, 2, "", 0, false, &k, &val), 0);
    CHECK(k.mv_size == 1 && memcmp(k.mv_data, "b", 1) == 0);
    CHECK_INT(kv_view_seek(&v, 1, "", 0, false, &k, &val), 0);
    CHECK(k.mv_size == 1 && memcmp(k.mv_data, "a", 1) == 0 && memcmp(val.mv_data, "1", 1) == 0);
    kv_view_release(&v);
    for (int i = 0; i < KV_VIEW_TABLES; i++)
        CHECK(v.cursors[i] == NULL);
    mdb_txn_abort(txn);
    kv_layer_destroy(&l);
    kv_layer_destroy(&l);   /* safe twice */
    s_env_close(&e);
}

/* A put replaces the change held for its key, a delete too; counts follow. */
TEST(layer_replacement)
{
    kv_layer *l = kv_layer_new(), *src = kv_layer_new();
    CHECK(l && src);
    if (!l || !src)
        return;
    CHECK(kv_layer_put(l, 0, "k", 1, "vvvv", 4) != NULL);
    CHECK(kv_layer_put(l, 0, "k", 1, "w", 1) != NULL);
    CHECK_INT(kv_layer_count(l), 1);
    CHECK_INT(kv_layer_bytes(l), 2);
    CHECK_INT(kv_layer_del(l, 0, "k", 1), 0);
    CHECK_INT(kv_layer_count(l), 1);
    CHECK_INT(kv_layer_bytes(l), 1);
    CHECK(kv_layer_put(l, 0, "kk", 2, "x", 1) != NULL);
    CHECK(kv_layer_put(l, 1, "k", 1, "y", 1) != NULL);

    /* merge: src's change wins for the same key, src ends empty. */
    CHECK(kv_layer_put(src, 0, "k", 1, "zz", 2) != NULL);
    CHECK_INT(kv_layer_del(src, 0, "kk", 2), 0);
    CHECK(kv_layer_put(src, 2, "a", 1, "", 0) != NULL);
    kv_layer_merge(l, src);
    CHECK_INT(kv_layer_count(src), 0);
    CHECK_INT(kv_layer_bytes(src), 0);
    CHECK_INT(kv_layer_pages(src), 0);
    CHECK_INT(kv_layer_count(l), 4);
    CHECK_INT(kv_layer_bytes(l), (1 + 2) + 2 + (1 + 1) + 1);

    /* Merging into an empty layer moves everything. */
    kv_layer_merge(src, l);
    CHECK_INT(kv_layer_count(l), 0);
    CHECK_INT(kv_layer_count(src), 4);
    kv_layer_clear(src);
    CHECK_INT(kv_layer_count(src), 0);
    CHECK_INT(kv_layer_bytes(src), 0);
    CHECK_INT(kv_layer_pages(src), 0);
    CHECK(kv_layer_put(src, 0, "k", 1, "again", 5) != NULL);   /* usable after clear */
    CHECK_INT(kv_layer_count(src), 1);
    kv_layer_destroy(&l);
    kv_layer_destroy(&src);
}

/* Random layers merged into each other keep matching their models (counts, bytes, walk). */
TEST(layer_merge_random)
{
    for (int round = 0; round < S_ROUNDS; round++) {
        kv_layer *dst = kv_layer_new(), *src = kv_layer_new();
        memset(&s_layer_m[0], 0, sizeof s_layer_m[0]);
        memset(&s_layer_m[1], 0, sizeof s_layer_m[1]);
        s_fill_layer(dst, &s_layer_m[0], NULL, s_rand() % 200);
        s_fill_layer(src, &s_layer_m[1], NULL, s_rand() % 200);
        s_check_layer(dst, &s_layer_m[0]);
        s_check_layer(src, &s_layer_m[1]);
        kv_layer_merge(dst, src);
        for (unsigned t = 0; t < S_TABLES; t++)
            for (size_t k = 0; k < S_KEYS; k++)
                if (s_layer_m[1][t][k].state != S_NONE)
                    s_layer_m[0][t][k] = s_layer_m[1][t][k];
        memset(&s_layer_m[1], 0, sizeof s_layer_m[1]);
        s_check_layer(dst, &s_layer_m[0]);
        s_check_layer(src, &s_layer_m[1]);
        kv_layer *fresh = s_layer_of(&s_layer_m[0]);
        CHECK(fresh && kv_layer_pages(fresh) == kv_layer_pages(dst));
        kv_layer_destroy(&fresh);
        kv_layer_destroy(&dst);
        kv_layer_destroy(&src);
    }
}

/* A walk stops at the first non-zero code and returns it. */
static int s_stop_at_two(void *arg, const kv_change *c)
{
    return ++*(int *)arg == 2 ? -ECANCELED : 0;
}

TEST(layer_walk_stops)
{
    kv_layer *l = kv_layer_new();
    CHECK(kv_layer_put(l, 0, "a", 1, "1", 1) && kv_layer_put(l, 0, "b", 1, "2", 1) &&
          kv_layer_put(l, 0, "c", 1, "3", 1));
    int calls = 0;
    CHECK_INT(kv_layer_walk(l, s_stop_at_two, &calls), -ECANCELED);
    CHECK_INT(calls, 2);
    kv_layer_destroy(&l);
}

static const test_case tests[] = {
    T(view_matches_model), T(tables_do_not_leak), T(layer_replacement), T(layer_merge_random),
    T(layer_walk_stops), { NULL, NULL },
};

int main(int argc, char **argv)
{
    s_build_universe();
    return test_main("overlay", tests, argc, argv);
}
