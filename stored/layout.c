/*
 * stored/layout.c — the store's tables and what ops and reads do with them
 * (see layout.h).
 *
 *   records  "DB\0TABLE\0KEY"            -> Record, protobuf, key left empty
 *   expiry   be64(expiry ms) "DB\0TABLE\0KEY" -> ""   (the reaper's index)
 *   tables   "DB\0TABLE"                 -> u64 live-or-unreaped record count
 *   locks    "ID"                        -> LockInfo, protobuf
 *   meta     "revision"                  -> u64, the last revision handed out
 *            "wal_lsn"                   -> u64, the last log record in LMDB (lmdb.c)
 */
#include "layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "svc/log.h"

const char *const kv_table_names[KV_T_N] = { "records", "expiry", "tables", "locks", "meta" };

int kv_layout_err(int mdb_rc)
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
static int s_get_record(kv_view *vw, const char *rkey, size_t rlen, Svc__Store__Record **out)
{
    MDB_val v;
    *out = NULL;
    int rc = kv_view_get(vw, KV_T_RECORDS, rkey, rlen, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return kv_layout_err(rc);
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

static int s_count_add(kv_view *vw, const char *db, const char *table, int delta)
{
    char buf[2 * KV_MAX_NAME + 2];
    size_t dl = strlen(db), tl = strlen(table);
    memcpy(buf, db, dl + 1);
    memcpy(buf + dl + 1, table, tl);
    MDB_val v;
    uint64_t n = 0;
    int rc = kv_view_get(vw, KV_T_TABLES, buf, dl + 1 + tl, &v);
    if (rc == 0 && v.mv_size == sizeof n)
        memcpy(&n, v.mv_data, sizeof n);
    else if (rc && rc != MDB_NOTFOUND)
        return kv_layout_err(rc);
    n = (delta < 0 && n < (uint64_t)-delta) ? 0 : n + (uint64_t)(int64_t)delta;
    if (n == 0)
        return rc == MDB_NOTFOUND ? 0 : kv_view_del(vw, KV_T_TABLES, buf, dl + 1 + tl);
    return kv_view_put(vw, KV_T_TABLES, buf, dl + 1 + tl, &n, sizeof n, NULL);
}

static int s_expiry_index(kv_view *vw, int64_t expiry, const char *rkey, size_t rlen, bool add)
{
    unsigned char buf[8 + S_RKEY_MAX];
    s_be64(buf, (uint64_t)expiry);
    memcpy(buf + 8, rkey, rlen);
    return add ? kv_view_put(vw, KV_T_EXPIRY, buf, 8 + rlen, "", 0, NULL)
               : kv_view_del(vw, KV_T_EXPIRY, buf, 8 + rlen);
}

/* Removes the record under rkey (old, already read) with its index entries. */
static int s_remove(kv_view *vw, const char *db, const char *table, const char *rkey, size_t rlen,
                    const Svc__Store__Record *old)
{
    int rc = kv_view_del(vw, KV_T_RECORDS, rkey, rlen);
    if (!rc && old->expiry)
        rc = s_expiry_index(vw, old->expiry, rkey, rlen, false);
    if (!rc)
        rc = s_count_add(vw, db, table, -1);
    return rc;
}

/* ---- writes --------------------------------------------------------------------- */

int kv_layout_put_rev(kv_view *vw, int64_t rev)
{
    return kv_view_put(vw, KV_T_META, "revision", 8, &rev, sizeof rev, NULL);
}

static int s_fence_ok(kv_view *vw, const kv_txn *t, int64_t now)
{
    if (!t->fence_lock)
        return 0;
    MDB_val v;
    int rc = kv_view_get(vw, KV_T_LOCKS, t->fence_lock, strlen(t->fence_lock), &v);
    if (rc == MDB_NOTFOUND)
        return -EPERM;
    if (rc)
        return kv_layout_err(rc);
    Svc__Store__LockInfo *li = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
    if (!li)
        return -EIO;
    bool ok = li->token == t->fence_token && li->expiry > now;
    svc__store__lock_info__free_unpacked(li, NULL);
    return ok ? 0 : -EPERM;
}

static int s_put(kv_view *vw, int64_t rev, const kv_txn *t, const kv_mut *m, const char *rkey,
                 size_t rlen, const Svc__Store__Record *old, int64_t now)
{
    Svc__Store__Record rec = *m->rec;
    rec.key = "";
    rec.expiry = m->expiry;
    rec.revision = rev;
    rec.create_revision = s_live(old, now) ? old->create_revision : rev;
    size_t len = svc__store__record__get_packed_size(&rec);
    void *p;
    int rc = kv_view_put(vw, KV_T_RECORDS, rkey, rlen, NULL, len, &p);
    if (rc)
        return rc;
    svc__store__record__pack(&rec, p);
    if (old && old->expiry && old->expiry != m->expiry)
        rc = s_expiry_index(vw, old->expiry, rkey, rlen, false);
    if (!rc && m->expiry && (!old || old->expiry != m->expiry))
        rc = s_expiry_index(vw, m->expiry, rkey, rlen, true);
    if (!rc && !old)
        rc = s_count_add(vw, t->database, t->table, +1);
    return rc;
}

/* The compares of t: 0 when all hold, 1 when one fails (t->current set if wanted). */
static int s_compare(kv_view *vw, kv_txn *t, int64_t now)
{
    char rkey[S_RKEY_MAX];
    for (size_t i = 0; i < t->n_cmps; i++) {
        const kv_cmp *c = &t->cmps[i];
        size_t rlen = s_rkey(rkey, t->database, t->table, c->key, strlen(c->key));
        Svc__Store__Record *r;
        int rc = s_get_record(vw, rkey, rlen, &r);
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

static int s_apply_txn(kv_view *vw, int64_t *rev, kv_txn *t, int64_t now)
{
    int rc = s_fence_ok(vw, t, now);
    if (rc)
        return rc;
    rc = s_compare(vw, t, now);
    if (rc)
        return rc < 0 ? rc : 0;   /* failed compare: succeeded stays false */
    ++*rev;
    char rkey[S_RKEY_MAX];
    for (size_t i = 0; i < t->n_muts && !rc; i++) {
        const kv_mut *m = &t->muts[i];
        size_t rlen = s_rkey(rkey, t->database, t->table, m->key, strlen(m->key));
        Svc__Store__Record *old;
        rc = s_get_record(vw, rkey, rlen, &old);
        if (rc)
            break;
        if (m->rec) {
            rc = s_put(vw, *rev, t, m, rkey, rlen, old, now);
        } else if (old) {
            if (s_live(old, now))
                t->deleted++;
            rc = s_remove(vw, t->database, t->table, rkey, rlen, old);
        }
        if (old)
            svc__store__record__free_unpacked(old, NULL);
    }
    if (!rc) {
        t->succeeded = true;
        t->revision = *rev;
    }
    return rc;
}

static int s_lock_read(kv_view *vw, const char *id, Svc__Store__LockInfo **out)
{
    MDB_val v;
    *out = NULL;
    int rc = kv_view_get(vw, KV_T_LOCKS, id, strlen(id), &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return kv_layout_err(rc);
    *out = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
    return *out ? 0 : -EIO;
}

static int s_lock_write(kv_view *vw, const Svc__Store__LockInfo *li)
{
    void *p;
    int rc = kv_view_put(vw, KV_T_LOCKS, li->id, strlen(li->id), NULL,
                         svc__store__lock_info__get_packed_size(li), &p);
    if (!rc)
        svc__store__lock_info__pack(li, p);
    return rc;
}

static int s_apply_lock(kv_view *vw, int64_t *rev, kv_lock *lk, int64_t now)
{
    Svc__Store__LockInfo *cur;
    int rc = s_lock_read(vw, lk->id, &cur);
    if (rc)
        return rc;
    bool live = cur && cur->expiry > now;
    if (lk->kind == KV_LOCK_ACQUIRE) {
        if (live) {
            lk->expiry = cur->expiry;
            rc = -EBUSY;
            goto out;
        }
        ++*rev;
        Svc__Store__LockInfo li = SVC__STORE__LOCK_INFO__INIT;
        li.id = (char *)lk->id;
        li.owner = (char *)lk->owner;
        li.token = *rev;
        li.expiry = now + lk->ttl_ms;
        rc = s_lock_write(vw, &li);
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
        rc = s_lock_write(vw, cur);
        lk->expiry = cur->expiry;
    } else {
        rc = kv_view_del(vw, KV_T_LOCKS, lk->id, strlen(lk->id));
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

static int s_apply_reap(kv_view *vw, kv_op *op)
{
    /* The expiry index in order, each entry seen deleted: go on after the last. */
    unsigned char last[8 + S_RKEY_MAX];
    size_t last_len = 0;
    MDB_val k, v;
    int rc = 0, m = 0;
    while (op->reaped < S_REAP_BATCH &&
           (m = kv_view_seek(vw, KV_T_EXPIRY, last, last_len, last_len > 0, &k, &v)) == 0) {
        bool malformed = k.mv_size <= 8 || k.mv_size > 8 + S_RKEY_MAX;
        int64_t exp = malformed ? 0 : (int64_t)s_get_be64(k.mv_data);
        if (exp > op->now)
            break;
        last_len = k.mv_size > sizeof last ? sizeof last : k.mv_size;
        memcpy(last, k.mv_data, last_len);
        if ((rc = kv_view_del(vw, KV_T_EXPIRY, k.mv_data, k.mv_size)) != 0)
            break;
        if (malformed)
            continue;
        const char *rkey = (const char *)last + 8, *db, *table;
        size_t rlen = last_len - 8;
        Svc__Store__Record *r = NULL;
        if (s_split(rkey, rlen, &db, &table) && (rc = s_get_record(vw, rkey, rlen, &r)) == 0 &&
            r && r->expiry == exp) {
            rc = kv_view_del(vw, KV_T_RECORDS, rkey, rlen) ?: s_count_add(vw, db, table, -1);
            op->reaped++;
        }
        if (r)
            svc__store__record__free_unpacked(r, NULL);
        if (rc)
            break;
    }
    if (rc)
        return rc;
    if (m != 0 && m != MDB_NOTFOUND && op->reaped < S_REAP_BATCH)
        return kv_layout_err(m);
    /* Expired locks: few, so a full scan. */
    char id[KV_MAX_LOCK_ID + 1];
    size_t id_len = 0;
    while ((m = kv_view_seek(vw, KV_T_LOCKS, id, id_len, id_len > 0, &k, &v)) == 0) {
        Svc__Store__LockInfo *li = svc__store__lock_info__unpack(NULL, v.mv_size, v.mv_data);
        bool dead = !li || li->expiry <= op->now;
        if (li)
            svc__store__lock_info__free_unpacked(li, NULL);
        id_len = k.mv_size > sizeof id ? sizeof id : k.mv_size;
        memcpy(id, k.mv_data, id_len);
        if (dead && (rc = kv_view_del(vw, KV_T_LOCKS, id, id_len)) != 0)
            return rc;
        if (dead)
            op->reaped++;
    }
    return m == MDB_NOTFOUND ? 0 : kv_layout_err(m);
}

int kv_layout_run(kv_view *vw, int64_t *rev, kv_op *op)
{
    switch (op->kind) {
    case KV_OP_TXN: return s_apply_txn(vw, rev, &op->txn, op->now);
    case KV_OP_LOCK: return s_apply_lock(vw, rev, &op->lock, op->now);
    case KV_OP_REAP: return s_apply_reap(vw, op);
    }
    return -EINVAL;
}

void kv_layout_reset(kv_op *op)
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

bool kv_layout_grows(const kv_op *op)
{
    if (op->kind == KV_OP_LOCK)
        return op->lock.kind != KV_LOCK_RELEASE;
    if (op->kind != KV_OP_TXN)
        return false;
    for (size_t i = 0; i < op->txn.n_muts; i++)
        if (op->txn.muts[i].rec)
            return true;
    return false;
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

static bool s_db_exists(kv_view *vw, const char *db)
{
    size_t dl = strlen(db);
    MDB_val k, v;
    return kv_view_seek(vw, KV_T_TABLES, db, dl + 1, false, &k, &v) == 0 && k.mv_size > dl &&
           memcmp(k.mv_data, db, dl + 1) == 0;
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

static int s_scan(kv_view *vw, const kv_query *q, s_read *r, bool *more)
{
    char start[S_RKEY_MAX], at[S_RKEY_MAX];
    size_t plen = strlen(q->prefix);
    size_t base = s_rkey(start, q->database, q->table, "", 0);
    size_t slen = s_rkey(start, q->database, q->table, q->prefix, plen);
    memcpy(at, start, slen);
    size_t at_len = slen;
    MDB_val k, v;
    uint32_t skipped = 0;
    int rc = 0, m;
    for (bool after = false; (m = kv_view_seek(vw, KV_T_RECORDS, at, at_len, after, &k, &v)) == 0;
         after = true) {
        if (k.mv_size < slen || k.mv_size > sizeof at || memcmp(k.mv_data, start, slen) != 0)
            break;
        memcpy(at, k.mv_data, k.mv_size);
        at_len = k.mv_size;
        const char *key = at + base;
        size_t klen = at_len - base;
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
    if (!rc && m && m != MDB_NOTFOUND)
        rc = kv_layout_err(m);
    return rc;
}

int kv_layout_read(kv_view *vw, const kv_query *q, Svc__Store__Record ***recs, size_t *n_recs,
                   char ***keys, size_t *n_keys, bool *more)
{
    int rc = 0;
    *more = false;
    s_read r = { 0 };
    if (!s_db_exists(vw, q->database)) {
        rc = -ENODEV;
    } else if (q->key) {
        char rkey[S_RKEY_MAX];
        size_t rlen = s_rkey(rkey, q->database, q->table, q->key, strlen(q->key));
        Svc__Store__Record *rec;
        rc = s_get_record(vw, rkey, rlen, &rec);
        if (rc == 0 && !s_live(rec, q->now))
            rc = -ENOENT;
        if (rc == 0 && (rc = s_take(&r, q, q->key, strlen(q->key), rec)) == 0) {
            r.recs[r.n_recs++] = rec;
            rec = NULL;
        }
        if (rec)
            svc__store__record__free_unpacked(rec, NULL);
    } else {
        rc = s_scan(vw, q, &r, more);
    }
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

int kv_layout_names(kv_view *vw, const char *db, char ***out, size_t *n)
{
    int rc = 0;
    *out = NULL;
    *n = 0;
    size_t cap = 0, dl = db ? strlen(db) + 1 : 0;
    char at[2 * KV_MAX_NAME + 2];
    size_t at_len = dl;
    if (db)
        memcpy(at, db, dl);
    MDB_val k, v;
    int m;
    for (bool after = false; rc == 0 && (m = kv_view_seek(vw, KV_T_TABLES, at, at_len, after, &k, &v)) == 0;
         after = true) {
        const char *p = k.mv_data, *z = memchr(p, 0, k.mv_size);
        if (db && (k.mv_size < dl || memcmp(p, db, dl) != 0))
            break;
        at_len = k.mv_size > sizeof at ? sizeof at : k.mv_size;
        memcpy(at, p, at_len);
        if (!z)
            continue;
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

/* ---- locks (reads) ------------------------------------------------------------------ */

int kv_layout_lock_get(kv_view *vw, const char *id, int64_t now, Svc__Store__LockInfo **out)
{
    int rc = s_lock_read(vw, id, out);
    if (rc == 0 && (!*out || (*out)->expiry <= now)) {
        if (*out)
            svc__store__lock_info__free_unpacked(*out, NULL);
        *out = NULL;
        rc = -ENOENT;
    }
    return rc;
}

int kv_layout_lock_list(kv_view *vw, int64_t now, Svc__Store__LockInfo ***out, size_t *n)
{
    int rc = 0;
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    char id[KV_MAX_LOCK_ID + 1];
    size_t id_len = 0;
    MDB_val k, v;
    int m;
    while (rc == 0 && (m = kv_view_seek(vw, KV_T_LOCKS, id, id_len, id_len > 0, &k, &v)) == 0) {
        id_len = k.mv_size > sizeof id ? sizeof id : k.mv_size;
        memcpy(id, k.mv_data, id_len);
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
    return rc;
}

