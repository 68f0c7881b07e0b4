/*
 * stored/lmdb.c — the embedded backend: one LMDB environment in the data dir.
 *
 * Named databases (LMDB "DBIs"):
 *   records  "DB\0TABLE\0KEY"            -> Record, protobuf, key left empty
 *   expiry   be64(expiry ms) "DB\0TABLE\0KEY" -> ""   (the reaper's index)
 *   tables   "DB\0TABLE"                 -> u64 live-or-unreaped record count
 *   locks    "ID"                        -> LockInfo, protobuf
 *   meta     "revision"                  -> u64, the last revision handed out
 *
 * Every change takes the next store revision; lock grants too, so fencing
 * tokens and record revisions come from one counter that only grows.  A
 * batch is one write transaction with a nested transaction per op, so a
 * failing op rolls back alone (see s_batch); the commit is synchronous (no
 * MDB_NOSYNC / MDB_NOMETASYNC): when apply returns, the batch is on disk.
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "svc/error.h"
#include "svc/log.h"

typedef struct s_lmdb {
    MDB_env *env;
    MDB_dbi records, expiry, tables, locks, meta;
    int64_t rev;        /* last revision handed out (writer thread only) */
    int lock_fd;        /* flock'd data-dir/stored.lock */
    pid_t pid;          /* opener: the env is not used across fork */
} s_lmdb;

static atomic_bool s_opened;

static int s_err(int mdb_rc)
{
    switch (mdb_rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return -ENOENT;
    case MDB_MAP_FULL: return -ENOSPC;
    case MDB_TXN_FULL: return -ENOSPC;
    case MDB_READERS_FULL: return -EAGAIN;
    default: return mdb_rc > 0 ? -mdb_rc : -EIO;
    }
}

/* ---- keys ---------------------------------------------------------------- */

/* "DB\0TABLE\0KEY" into buf (at least 2*KV_MAX_NAME+KV_MAX_KEY+2 bytes); returns length. */
static size_t s_rkey(char *buf, const char *db, const char *table, const char *key, size_t klen)
{
    size_t dl = strlen(db), tl = strlen(table);
    memcpy(buf, db, dl + 1);
    memcpy(buf + dl + 1, table, tl + 1);
    memcpy(buf + dl + tl + 2, key, klen);
    return dl + tl + 2 + klen;
}

#define S_RKEY_MAX (2 * KV_MAX_NAME + KV_MAX_KEY + 2)

static void s_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t s_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- record codec ---------------------------------------------------------- */

static Svc__Store__Record *s_decode(const MDB_val *v)
{
    return svc__store__record__unpack(NULL, v->mv_size, v->mv_data);
}

/* Gets the record under rkey; 0 and *out (NULL if absent), or a negative code. */
static int s_get_record(MDB_txn *txn, s_lmdb *l, const char *rkey, size_t rlen,
                        Svc__Store__Record **out)
{
    MDB_val k = { rlen, (void *)rkey }, v;
    *out = NULL;
    int rc = mdb_get(txn, l->records, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return s_err(rc);
    *out = s_decode(&v);
    if (!*out) {
        svc_error_log("corrupt record in the store\tkey=%.*s", (int)rlen, rkey);
        return -EIO;
    }
    return 0;
}

static bool s_live(const Svc__Store__Record *r, int64_t now)
{
    return r && (r->expiry == 0 || r->expiry > now);
}

/* ---- the tables index ------------------------------------------------------- */

static int s_count_add(MDB_txn *txn, s_lmdb *l, const char *db, const char *table, int delta)
{
    char buf[2 * KV_MAX_NAME + 2];
    size_t dl = strlen(db), tl = strlen(table);
    memcpy(buf, db, dl + 1);
    memcpy(buf + dl + 1, table, tl);
    MDB_val k = { dl + 1 + tl, buf }, v;
    uint64_t n = 0;
    int rc = mdb_get(txn, l->tables, &k, &v);
    if (rc == 0 && v.mv_size == sizeof n)
        memcpy(&n, v.mv_data, sizeof n);
    else if (rc && rc != MDB_NOTFOUND)
        return s_err(rc);
    n = (delta < 0 && n < (uint64_t)-delta) ? 0 : n + (uint64_t)(int64_t)delta;
    if (n == 0)
        return s_err(rc == MDB_NOTFOUND ? 0 : mdb_del(txn, l->tables, &k, NULL));
    v.mv_size = sizeof n;
    v.mv_data = &n;
    return s_err(mdb_put(txn, l->tables, &k, &v, 0));
}

static int s_expiry_index(MDB_txn *txn, s_lmdb *l, int64_t expiry, const char *rkey, size_t rlen,
                          bool add)
{
    unsigned char buf[8 + S_RKEY_MAX];
    s_be64(buf, (uint64_t)expiry);
    memcpy(buf + 8, rkey, rlen);
    MDB_val k = { 8 + rlen, buf }, v = { 0, "" };
    int rc = add ? mdb_put(txn, l->expiry, &k, &v, 0) : mdb_del(txn, l->expiry, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : s_err(rc);
}

/* Removes the record under rkey (old, already read) with its index entries. */
static int s_remove(MDB_txn *txn, s_lmdb *l, const char *db, const char *table, const char *rkey,
                    size_t rlen, const Svc__Store__Record *old)
{
    MDB_val k = { rlen, (void *)rkey };
    int rc = s_err(mdb_del(txn, l->records, &k, NULL));
    if (!rc && old->expiry)
        rc = s_expiry_index(txn, l, old->expiry, rkey, rlen, false);
    if (!rc)
        rc = s_count_add(txn, l, db, table, -1);
    return rc;
}

/* ---- writes --------------------------------------------------------------------- */

static int s_put_meta_rev(MDB_txn *txn, s_lmdb *l)
{
    MDB_val k = { 8, "revision" }, v = { sizeof l->rev, &l->rev };
    return s_err(mdb_put(txn, l->meta, &k, &v, 0));
}

static int s_fence_ok(MDB_txn *txn, s_lmdb *l, const kv_txn *t, int64_t now)
{
    if (!t->fence_lock)
        return 0;
    MDB_val k = { strlen(t->fence_lock), (void *)t->fence_lock }, v;
    int rc = mdb_get(txn, l->locks, &k, &v);
    if (rc == MDB_NOTFOUND)
        return -EPERM;
    if (rc)
        return s_err(rc);
    Svc__Store__LockInfo *li = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
    if (!li)
        return -EIO;
    bool ok = li->token == t->fence_token && li->expiry > now;
    svc__store__lock_info__free_unpacked(li, NULL);
    return ok ? 0 : -EPERM;
}

static int s_put(MDB_txn *txn, s_lmdb *l, const kv_txn *t, const kv_mut *m, const char *rkey,
                 size_t rlen, const Svc__Store__Record *old, int64_t now)
{
    Svc__Store__Record rec = *m->rec;
    rec.key = "";
    rec.expiry = m->expiry;
    rec.revision = l->rev;
    rec.create_revision = s_live(old, now) ? old->create_revision : l->rev;
    size_t len = svc__store__record__get_packed_size(&rec);
    MDB_val k = { rlen, (void *)rkey }, v = { len, NULL };
    int rc = s_err(mdb_put(txn, l->records, &k, &v, MDB_RESERVE));
    if (rc)
        return rc;
    svc__store__record__pack(&rec, v.mv_data);
    if (old && old->expiry && old->expiry != m->expiry)
        rc = s_expiry_index(txn, l, old->expiry, rkey, rlen, false);
    if (!rc && m->expiry && (!old || old->expiry != m->expiry))
        rc = s_expiry_index(txn, l, m->expiry, rkey, rlen, true);
    if (!rc && !old)
        rc = s_count_add(txn, l, t->database, t->table, +1);
    return rc;
}

/* The compares of t: 0 when all hold, 1 when one fails (t->current set if wanted). */
static int s_compare(MDB_txn *txn, s_lmdb *l, kv_txn *t, int64_t now)
{
    char rkey[S_RKEY_MAX];
    for (size_t i = 0; i < t->n_cmps; i++) {
        const kv_cmp *c = &t->cmps[i];
        size_t rlen = s_rkey(rkey, t->database, t->table, c->key, strlen(c->key));
        Svc__Store__Record *r;
        int rc = s_get_record(txn, l, rkey, rlen, &r);
        if (rc)
            return rc;
        int64_t have = s_live(r, now) ? r->revision : 0;
        if (have == c->revision) {
            if (r)
                svc__store__record__free_unpacked(r, NULL);
            continue;
        }
        if (t->want_current && i == 0 && have) {
            r->key = strdup(c->key);   /* replaces the static default */
            t->current = r;
        } else if (r) {
            svc__store__record__free_unpacked(r, NULL);
        }
        return 1;
    }
    return 0;
}

static int s_apply_txn(MDB_txn *txn, s_lmdb *l, kv_txn *t, int64_t now)
{
    int rc = s_fence_ok(txn, l, t, now);
    if (rc)
        return rc;
    rc = s_compare(txn, l, t, now);
    if (rc)
        return rc < 0 ? rc : 0;   /* failed compare: succeeded stays false */
    l->rev++;
    char rkey[S_RKEY_MAX];
    for (size_t i = 0; i < t->n_muts && !rc; i++) {
        const kv_mut *m = &t->muts[i];
        size_t rlen = s_rkey(rkey, t->database, t->table, m->key, strlen(m->key));
        Svc__Store__Record *old;
        rc = s_get_record(txn, l, rkey, rlen, &old);
        if (rc)
            break;
        if (m->rec) {
            rc = s_put(txn, l, t, m, rkey, rlen, old, now);
        } else if (old) {
            if (s_live(old, now))
                t->deleted++;
            rc = s_remove(txn, l, t->database, t->table, rkey, rlen, old);
        }
        if (old)
            svc__store__record__free_unpacked(old, NULL);
    }
    if (!rc) {
        t->succeeded = true;
        t->revision = l->rev;
    }
    return rc;
}

static int s_lock_read(MDB_txn *txn, s_lmdb *l, const char *id, Svc__Store__LockInfo **out)
{
    MDB_val k = { strlen(id), (void *)id }, v;
    *out = NULL;
    int rc = mdb_get(txn, l->locks, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return s_err(rc);
    *out = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
    return *out ? 0 : -EIO;
}

static int s_lock_write(MDB_txn *txn, s_lmdb *l, const Svc__Store__LockInfo *li)
{
    MDB_val k = { strlen(li->id), li->id }, v = { svc__store__lock_info__get_packed_size(li), NULL };
    int rc = s_err(mdb_put(txn, l->locks, &k, &v, MDB_RESERVE));
    if (!rc)
        svc__store__lock_info__pack(li, v.mv_data);
    return rc;
}

static int s_apply_lock(MDB_txn *txn, s_lmdb *l, kv_lock *lk, int64_t now)
{
    Svc__Store__LockInfo *cur;
    int rc = s_lock_read(txn, l, lk->id, &cur);
    if (rc)
        return rc;
    bool live = cur && cur->expiry > now;
    if (lk->kind == KV_LOCK_ACQUIRE) {
        if (live) {
            lk->expiry = cur->expiry;
            rc = -EBUSY;
            goto out;
        }
        l->rev++;
        Svc__Store__LockInfo li = SVC__STORE__LOCK_INFO__INIT;
        li.id = (char *)lk->id;
        li.owner = (char *)lk->owner;
        li.token = l->rev;
        li.expiry = now + lk->ttl_ms;
        rc = s_lock_write(txn, l, &li);
        if (!rc) {
            lk->new_token = li.token;
            lk->expiry = li.expiry;
        }
        goto out;
    }
    if (!live || cur->token != lk->token) {
        rc = -ESTALE;
        goto out;
    }
    if (lk->kind == KV_LOCK_REFRESH) {
        cur->expiry = now + lk->ttl_ms;
        rc = s_lock_write(txn, l, cur);
        lk->expiry = cur->expiry;
    } else {
        MDB_val k = { strlen(lk->id), (void *)lk->id };
        rc = s_err(mdb_del(txn, l->locks, &k, NULL));
    }
out:
    if (cur)
        svc__store__lock_info__free_unpacked(cur, NULL);
    return rc;
}

/* Splits "DB\0TABLE\0KEY" (n bytes) into its parts; false when malformed. */
static bool s_split(const char *p, size_t n, const char **db, const char **table)
{
    const char *z1 = memchr(p, 0, n);
    if (!z1)
        return false;
    const char *z2 = memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - p));
    if (!z2)
        return false;
    *db = p;
    *table = z1 + 1;
    return true;
}

#define S_REAP_BATCH 10000

static int s_apply_reap(MDB_txn *txn, s_lmdb *l, kv_op *op)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, l->expiry, &cur);
    if (rc)
        return s_err(rc);
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0 && op->reaped < S_REAP_BATCH) {
        bool malformed = k.mv_size <= 8 || k.mv_size > 8 + S_RKEY_MAX;
        int64_t exp = malformed ? 0 : (int64_t)s_get_be64(k.mv_data);
        if (exp > op->now)
            break;
        if (malformed) {
            if ((rc = s_err(mdb_cursor_del(cur, 0))) != 0)
                break;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
            continue;
        }
        char rkey[S_RKEY_MAX];
        size_t rlen = k.mv_size - 8;
        memcpy(rkey, (char *)k.mv_data + 8, rlen);
        rc = s_err(mdb_cursor_del(cur, 0));
        if (rc)
            break;
        const char *db, *table;
        Svc__Store__Record *r = NULL;
        if (s_split(rkey, rlen, &db, &table) && (rc = s_get_record(txn, l, rkey, rlen, &r)) == 0 &&
            r && r->expiry == exp) {
            MDB_val rk = { rlen, rkey };
            rc = s_err(mdb_del(txn, l->records, &rk, NULL)) ?: s_count_add(txn, l, db, table, -1);
            op->reaped++;
        }
        if (r)
            svc__store__record__free_unpacked(r, NULL);
        if (rc)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);   /* every entry seen is deleted */
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    /* Expired locks: few, so a full scan. */
    if ((rc = mdb_cursor_open(txn, l->locks, &cur)) != 0)
        return s_err(rc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Svc__Store__LockInfo *li = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
        bool dead = !li || li->expiry <= op->now;
        if (li)
            svc__store__lock_info__free_unpacked(li, NULL);
        if (dead && (rc = s_err(mdb_cursor_del(cur, 0))) != 0)
            break;
        if (dead)
            op->reaped++;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int s_run(MDB_txn *txn, s_lmdb *l, kv_op *op)
{
    switch (op->kind) {
    case KV_OP_TXN: return s_apply_txn(txn, l, &op->txn, op->now);
    case KV_OP_LOCK: return s_apply_lock(txn, l, &op->lock, op->now);
    case KV_OP_REAP: return s_apply_reap(txn, l, op);
    }
    return -EINVAL;
}

/* Outcomes decided before anything was written: the transaction is as it was. */
static bool s_clean(int rc)
{
    return rc == 0 || rc == -EPERM || rc == -EBUSY || rc == -ESTALE;
}

/* Clears what an op's application filled in, for a retry or a failed batch. */
static void s_reset(kv_op *op)
{
    op->txn.succeeded = false;
    op->txn.deleted = 0;
    op->txn.revision = 0;
    if (op->txn.current)
        svc__store__record__free_unpacked(op->txn.current, NULL);
    op->txn.current = NULL;
    op->lock.new_token = 0;
    op->reaped = 0;
}

/* op in a transaction nested in parent, so that a failure rolls back this op alone. */
static int s_apply_nested(MDB_txn *parent, s_lmdb *l, kv_op *op)
{
    MDB_txn *txn;
    int64_t rev0 = l->rev;
    int rc = s_err(mdb_txn_begin(l->env, parent, 0, &txn));
    if (rc)
        return rc;
    rc = s_run(txn, l, op);
    if (rc == 0 && (rc = s_err(mdb_txn_commit(txn))) == 0)
        return 0;
    if (rc)
        mdb_txn_abort(txn);
    l->rev = rev0;
    if (op->kind == KV_OP_TXN)
        s_reset(op);
    return rc;
}

/*
 * The batch in one write transaction.  Flat (nested false): 1 when an op
 * failed after it may have written part of itself (store full, I/O error):
 * the transaction is then abandoned and the caller runs the batch again
 * nested, one child transaction per op (LMDB allocates some 3 MiB for each
 * child, so the common case does without).  0 when committed.
 */
static int s_batch(s_lmdb *l, kv_op **ops, size_t n, bool nested)
{
    MDB_txn *txn;
    int64_t rev0 = l->rev;
    int rc = s_err(mdb_txn_begin(l->env, NULL, 0, &txn));
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ops[i]->rc = nested ? s_apply_nested(txn, l, ops[i]) : s_run(txn, l, ops[i]);
        if (!nested && !s_clean(ops[i]->rc)) {
            mdb_txn_abort(txn);
            l->rev = rev0;
            for (size_t j = 0; j <= i; j++)
                s_reset(ops[j]);
            return 1;
        }
    }
    /* The counter once per batch: it commits with every revision it handed out. */
    rc = l->rev != rev0 ? s_put_meta_rev(txn, l) : 0;
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = s_err(mdb_txn_commit(txn));   /* durable: the env syncs on commit */
    if (rc)
        l->rev = rev0;
    return rc;
}

static int s_apply(kv_backend *b, kv_op **ops, size_t n)
{
    s_lmdb *l = b->state;
    int rc = s_batch(l, ops, n, false);
    if (rc == 1)
        rc = s_batch(l, ops, n, true);
    if (rc) {
        svc_error_log("store commit failed\terror=%s", svc_strerror(rc));
        for (size_t i = 0; i < n; i++) {
            ops[i]->rc = rc;
            s_reset(ops[i]);
        }
    }
    return rc;
}

/* ---- reads ---------------------------------------------------------------------- */

static bool s_suffix(const char *key, size_t klen, const char *suf)
{
    size_t sl = strlen(suf);
    return sl <= klen && memcmp(key + klen - sl, suf, sl) == 0;
}

static int s_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * size);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static bool s_db_exists(MDB_txn *txn, s_lmdb *l, const char *db)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, l->tables, &cur))
        return false;
    size_t dl = strlen(db);
    MDB_val k = { dl + 1, (void *)db }, v;
    bool ok = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 && k.mv_size > dl &&
              memcmp(k.mv_data, db, dl + 1) == 0;
    mdb_cursor_close(cur);
    return ok;
}

typedef struct s_read {
    Svc__Store__Record **recs;
    size_t n_recs, cap_recs;
    char **keys;
    size_t n_keys, cap_keys;
    size_t bytes;
} s_read;

/* Adds one matching record to the answer; 1 when the answer is full. */
static int s_take(s_read *r, const kv_query *q, const char *key, size_t klen, Svc__Store__Record *rec)
{
    size_t add = klen + 8 + (q->keys_only ? 0 : svc__store__record__get_packed_size(rec));
    if (r->bytes + add > KV_MAX_ANSWER)
        return 1;
    r->bytes += add;
    char *k = strndup(key, klen);
    if (!k)
        return -ENOMEM;
    if (q->keys_only) {
        if (s_grow((void **)&r->keys, &r->cap_keys, r->n_keys, sizeof *r->keys) < 0) {
            free(k);
            return -ENOMEM;
        }
        r->keys[r->n_keys++] = k;
        return 0;
    }
    if (s_grow((void **)&r->recs, &r->cap_recs, r->n_recs, sizeof *r->recs) < 0) {
        free(k);
        return -ENOMEM;
    }
    rec->key = k;   /* stored records have no key: it was protobuf-c's static default */
    return 0;
}

static int s_scan(MDB_txn *txn, s_lmdb *l, const kv_query *q, s_read *r, bool *more)
{
    char start[S_RKEY_MAX];
    size_t plen = strlen(q->prefix);
    size_t base = s_rkey(start, q->database, q->table, "", 0);
    size_t slen = s_rkey(start, q->database, q->table, q->prefix, plen);
    MDB_cursor *cur;
    int rc = s_err(mdb_cursor_open(txn, l->records, &cur));
    if (rc)
        return rc;
    MDB_val k = { slen, start }, v;
    uint32_t skipped = 0;
    for (int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); m == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < slen || memcmp(k.mv_data, start, slen) != 0)
            break;
        const char *key = (const char *)k.mv_data + base;
        size_t klen = k.mv_size - base;
        if (!s_suffix(key, klen, q->suffix))
            continue;
        Svc__Store__Record *rec = s_decode(&v);
        if (!rec) {
            rc = -EIO;
            break;
        }
        if (!s_live(rec, q->now) || skipped++ < q->offset) {
            svc__store__record__free_unpacked(rec, NULL);
            continue;
        }
        rc = s_take(r, q, key, klen, rec);
        if (rc || q->keys_only)
            svc__store__record__free_unpacked(rec, NULL);
        else
            r->recs[r->n_recs++] = rec;
        if (rc == 1) {
            *more = true;
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        if (q->limit && r->n_recs + r->n_keys >= q->limit)
            break;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int s_read_fn(kv_backend *b, const kv_query *q, Svc__Store__Record ***recs, size_t *n_recs,
                     char ***keys, size_t *n_keys, bool *more)
{
    s_lmdb *l = b->state;
    MDB_txn *txn;
    *more = false;
    int rc = s_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
    if (rc)
        return rc;
    s_read r = { 0 };
    if (!s_db_exists(txn, l, q->database)) {
        rc = -ENODEV;
    } else if (q->key) {
        char rkey[S_RKEY_MAX];
        size_t rlen = s_rkey(rkey, q->database, q->table, q->key, strlen(q->key));
        Svc__Store__Record *rec;
        rc = s_get_record(txn, l, rkey, rlen, &rec);
        if (rc == 0 && !s_live(rec, q->now))
            rc = -ENOENT;
        if (rc == 0 && (rc = s_take(&r, q, q->key, strlen(q->key), rec)) == 0) {
            r.recs[r.n_recs++] = rec;
            rec = NULL;
        }
        if (rec)
            svc__store__record__free_unpacked(rec, NULL);
    } else {
        rc = s_scan(txn, l, q, &r, more);
    }
    mdb_txn_abort(txn);
    if (rc) {
        for (size_t i = 0; i < r.n_recs; i++)
            svc__store__record__free_unpacked(r.recs[i], NULL);
        for (size_t i = 0; i < r.n_keys; i++)
            free(r.keys[i]);
        free(r.recs);
        free(r.keys);
        return rc;
    }
    *recs = r.recs;
    *n_recs = r.n_recs;
    *keys = r.keys;
    *n_keys = r.n_keys;
    return 0;
}

/* Names from the tables index: databases (db NULL) or the tables of db. */
static int s_names(kv_backend *b, const char *db, char ***out, size_t *n)
{
    s_lmdb *l = b->state;
    MDB_txn *txn;
    *out = NULL;
    *n = 0;
    int rc = s_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
    if (rc)
        return rc;
    MDB_cursor *cur;
    if ((rc = s_err(mdb_cursor_open(txn, l->tables, &cur))) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    size_t cap = 0, dl = db ? strlen(db) + 1 : 0;
    MDB_val k = { dl, (void *)db }, v;
    int m = mdb_cursor_get(cur, &k, &v, db ? MDB_SET_RANGE : MDB_FIRST);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *p = k.mv_data, *z = memchr(p, 0, k.mv_size);
        if (!z)
            continue;
        if (db && (k.mv_size < dl || memcmp(p, db, dl) != 0))
            break;
        const char *name = db ? z + 1 : p;
        size_t len = db ? k.mv_size - (size_t)(z + 1 - p) : (size_t)(z - p);
        if (!db && *n && strlen((*out)[*n - 1]) == len && memcmp((*out)[*n - 1], name, len) == 0)
            continue;   /* one database, several tables */
        if ((rc = s_grow((void **)out, &cap, *n, sizeof **out)) == 0 &&
            !((*out)[*n] = strndup(name, len)))
            rc = -ENOMEM;
        if (!rc)
            (*n)++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc == 0 && db && *n == 0)
        rc = -ENODEV;
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free((*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int s_databases(kv_backend *b, char ***out, size_t *n) { return s_names(b, NULL, out, n); }
static int s_tables(kv_backend *b, const char *db, char ***out, size_t *n) { return s_names(b, db, out, n); }

/* ---- locks (reads) ------------------------------------------------------------------ */

static int s_lock_get(kv_backend *b, const char *id, int64_t now, Svc__Store__LockInfo **out)
{
    s_lmdb *l = b->state;
    MDB_txn *txn;
    int rc = s_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
    if (rc)
        return rc;
    rc = s_lock_read(txn, l, id, out);
    mdb_txn_abort(txn);
    if (rc == 0 && (!*out || (*out)->expiry <= now)) {
        if (*out)
            svc__store__lock_info__free_unpacked(*out, NULL);
        *out = NULL;
        rc = -ENOENT;
    }
    return rc;
}

static int s_lock_list(kv_backend *b, int64_t now, Svc__Store__LockInfo ***out, size_t *n)
{
    s_lmdb *l = b->state;
    MDB_txn *txn;
    MDB_cursor *cur;
    *out = NULL;
    *n = 0;
    int rc = s_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
    if (rc)
        return rc;
    if ((rc = s_err(mdb_cursor_open(txn, l->locks, &cur))) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    size_t cap = 0;
    MDB_val k, v;
    for (int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && rc == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Svc__Store__LockInfo *li = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
        if (!li || li->expiry <= now) {
            if (li)
                svc__store__lock_info__free_unpacked(li, NULL);
            continue;
        }
        if ((rc = s_grow((void **)out, &cap, *n, sizeof **out)) == 0)
            (*out)[(*n)++] = li;
        else
            svc__store__lock_info__free_unpacked(li, NULL);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void s_maintain(kv_backend *b)
{
    s_lmdb *l = b->state;
    int dead = 0;
    if (getpid() != l->pid)
        return;
    if (mdb_reader_check(l->env, &dead) == 0 && dead > 0)
        svc_info("cleared stale reader slots\tcount=%d", dead);
}

static void s_destroy(kv_backend *b)
{
    if (!b)
        return;
    s_lmdb *l = b->state;
    if (l->env)
        mdb_env_close(l->env);
    if (l->lock_fd >= 0)
        close(l->lock_fd);
    free(l);
    free(b);
    atomic_store(&s_opened, false);
}

static const kv_kv_ops s_kv_ops = {
    .name = "lmdb",
    .read = s_read_fn,
    .databases = s_databases,
    .tables = s_tables,
    .apply = s_apply,
    .maintain = s_maintain,
    .destroy = s_destroy,
};

static const kv_sync_ops s_sync_ops = {
    .lock_get = s_lock_get,
    .lock_list = s_lock_list,
};

static int s_open_dbis(s_lmdb *l, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc)
        goto fail;
    struct { const char *name; MDB_dbi *dbi; } dbis[] = {
        { "records", &l->records }, { "expiry", &l->expiry }, { "tables", &l->tables },
        { "locks", &l->locks }, { "meta", &l->meta },
    };
    for (size_t i = 0; i < sizeof dbis / sizeof *dbis; i++)
        if ((rc = mdb_dbi_open(txn, dbis[i].name, MDB_CREATE, dbis[i].dbi)) != 0) {
            mdb_txn_abort(txn);
            goto fail;
        }
    MDB_val k = { 8, "revision" }, v;
    rc = mdb_get(txn, l->meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof l->rev)
        memcpy(&l->rev, v.mv_data, sizeof l->rev);
    else if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "store metadata is corrupt");
        return -EIO;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot open the store's tables: %s", mdb_strerror(rc));
    return s_err(rc);
}

kv_backend *kv_lmdb_open(const char *dir, size_t map_mb, char *err, size_t errlen)
{
    if (atomic_exchange(&s_opened, true)) {
        snprintf(err, errlen, "an LMDB store is already open in this process");
        return NULL;
    }
    kv_backend *b = calloc(1, sizeof *b);
    s_lmdb *l = calloc(1, sizeof *l);
    if (!b || !l) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    l->lock_fd = -1;
    l->pid = getpid();
    b->kv = &s_kv_ops;
    b->sync = &s_sync_ops;
    b->state = l;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data dir \"%s\": %s", dir, strerror(errno));
        goto out_free;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/stored.lock", dir);
    l->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->lock_fd < 0) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        goto out_free;
    }
    int frc;
    while ((frc = flock(l->lock_fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
        ;
    if (frc < 0) {
        snprintf(err, errlen, "data dir \"%s\" is in use by another stored", dir);
        goto out_free;
    }
    int rc = mdb_env_create(&l->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(l->env, 8);
    if (!rc)
        rc = mdb_env_set_maxreaders(l->env, 1024);
    if (!rc)
        rc = mdb_env_set_mapsize(l->env, map_mb << 20);
    /* MDB_NOTLS: read transactions are not tied to threads (inline handlers, workers). */
    if (!rc)
        rc = mdb_env_open(l->env, dir, MDB_NOTLS, 0600);
    if (rc) {
        snprintf(err, errlen, "cannot open the store in \"%s\": %s", dir, mdb_strerror(rc));
        goto out_free;
    }
    int dead = 0;
    mdb_reader_check(l->env, &dead);
    if (dead)
        svc_info("cleared stale reader slots\tcount=%d", dead);
    if (s_open_dbis(l, err, errlen) < 0)
        goto out_free;
    return b;
out_free:
    if (l && l->env)
        mdb_env_close(l->env);
    if (l && l->lock_fd >= 0)
        close(l->lock_fd);
    free(l);
    free(b);
    atomic_store(&s_opened, false);
    return NULL;
}
