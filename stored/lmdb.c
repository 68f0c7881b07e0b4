/*
 * stored/lmdb.c — the embedded backend: LMDB, fronted by a write-ahead log.
 *
 * One LMDB environment in the data dir holds the tables of layout.h (what
 * ops and reads do with them is layout.c's); this file decides where their
 * changes go and when they are durable.
 *
 * A batch (apply, on the writer thread) is worked out in memory: each op
 * writes into a layer of its own (overlay.h) over the batch's layer, the
 * shared ones and an LMDB read transaction, and joins the batch's layer
 * when it succeeds, so a failing op leaves nothing behind.  The batch's
 * changes are then one record of the write-ahead log (wal.h), flushed with
 * one fdatasync: only then do they join the shared `active` layer, which
 * readers see, and are the ops answered.  An LMDB commit flushes twice and
 * writes a page per changed record; the log flushes once and appends.
 *
 * The B-tree catches up in checkpoints: once the log file in use holds
 * checkpoint_bytes (or active S_FREEZE_COUNT changes, or could fill half
 * of what LMDB has free), active is frozen, the log moves to its other
 * file, and the checkpoint thread writes the frozen layer into LMDB in
 * synchronous transactions (s_bulk), the last with the LSN of its last
 * record as meta "wal_lsn", then drops it.  Readers hold `mu` (read) across
 * a read; the writer takes it to publish a batch or freeze, the checkpoint
 * thread to drop what it wrote.  At open, records after wal_lsn are put
 * into LMDB before anything is served; a clean stop checkpoints everything.
 *
 * Space: LMDB can only say "full" when it commits, which for a checkpoint
 * is after the writes were acknowledged.  So an op whose puts would take
 * the pending changes past the pages LMDB had free at the last checkpoint
 * (an upper bound per change, overlay.c) waits for a checkpoint, and is
 * refused (-ENOSPC) only when nothing else is pending.
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

#include "layout.h"
#include "overlay.h"
#include "svc/error.h"
#include "svc/log.h"
#include "wal.h"

#define S_FREEZE_COUNT 200000          /* changes in active that start a checkpoint */
#define S_MAX_PENDING (512u << 20)     /* bytes in active past which the writer waits for one */
#define S_MAX_RECORD (64u << 20)       /* a batch past this many bytes goes out as several records */
#define S_SLACK_PAGES 64               /* pages kept free for LMDB's own (branches, freelist) */

typedef struct s_lmdb {
    MDB_env *env;
    MDB_dbi dbi[KV_T_N];   /* by table number */
    int64_t rev;        /* last revision handed out (writer thread only) */
    int lock_fd;        /* flock'd data-dir/stored.lock */
    pid_t pid;          /* opener: the env is not used across fork */
    kv_wal *wal;        /* the log (writer thread only, after open) */
    size_t ckpt_bytes;  /* log bytes in the current file that start a checkpoint */
    pthread_rwlock_t mu;/* guards active and frozen (read: readers and the writer's view) */
    kv_layer *active;   /* durable changes not yet in LMDB; the writer adds to it */
    kv_layer *frozen;   /* or NULL: the changes the checkpoint thread is putting into LMDB */
    uint64_t active_lsn;/* LSN of the last record in active (writer) */
    kv_layer *batch, *op;/* the writer's own: this batch's changes, this op's */
    atomic_llong avail; /* pages LMDB had free for new data at the last checkpoint */
    atomic_int failed;  /* once the log or a checkpoint failed: every write's code */
    atomic_ullong checkpoints;  /* done since open */
    pthread_t ck;       /* the checkpoint thread */
    bool ck_started;
    pthread_mutex_t ck_mu;  /* guards the three below */
    pthread_cond_t ck_cv;   /* checkpoint thread: frozen or stop; writer: frozen dropped */
    bool ck_pending;    /* frozen is set: being written into LMDB, not yet dropped */
    uint64_t ck_lsn;    /* its last LSN */
    bool ck_stop;
} s_lmdb;

static atomic_bool s_opened;

/* The view the writer works out a batch in: this op over the batch over what is shared. */
static void s_writer_view(s_lmdb *l, kv_view *vw, MDB_txn *txn, kv_layer *top)
{
    *vw = (kv_view){ .txn = txn, .dbis = l->dbi };
    vw->layers[vw->n_layers++] = top;
    if (top == l->op)
        vw->layers[vw->n_layers++] = l->batch;
    vw->layers[vw->n_layers++] = l->active;
    if (l->frozen)
        vw->layers[vw->n_layers++] = l->frozen;
}

/*
 * Works out ops[0..n) into l->batch (mu held for reading), stopping after
 * the op that takes it past S_MAX_RECORD bytes; *used is how many.  Their
 * rcs are set.  An op that might not fit in LMDB is refused (-ENOSPC) only
 * when nothing else is pending; else the batch stops before it with *room
 * set: a checkpoint is to make room (or say it is really full) first.
 */
static int s_work_out(s_lmdb *l, kv_op **ops, size_t n, size_t *used, bool *room)
{
    MDB_txn *txn;
    int rc = kv_layout_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
    if (rc)
        return rc;
    int64_t rev0 = l->rev;
    long long pending = (long long)(kv_layer_pages(l->active) + (l->frozen ? kv_layer_pages(l->frozen) : 0));
    kv_view vw;
    s_writer_view(l, &vw, txn, l->op);
    size_t i;
    for (i = 0; i < n && kv_layer_bytes(l->batch) < S_MAX_RECORD; i++) {
        kv_op *op = ops[i];
        int64_t rev = l->rev;
        op->rc = kv_layout_run(&vw, &l->rev, op);
        if (op->rc == 0 && kv_layout_grows(op) &&
            pending + (long long)(kv_layer_pages(l->batch) + kv_layer_pages(l->op)) > atomic_load(&l->avail)) {
            op->rc = -ENOSPC;
            if (pending + (long long)kv_layer_pages(l->batch) > 0) {
                kv_layer_clear(l->op);   /* run again after a checkpoint */
                l->rev = rev;
                kv_layout_reset(op);
                *room = true;
                break;
            }
        }
        if (op->rc == 0) {
            kv_layer_merge(l->batch, l->op);
            continue;
        }
        kv_layer_clear(l->op);   /* a failed op leaves nothing behind */
        l->rev = rev;
        kv_layout_reset(op);
    }
    *used = i;
    kv_view_release(&vw);
    if (l->rev != rev0) {
        /* The counter once per batch: it goes out with every revision it handed out. */
        s_writer_view(l, &vw, txn, l->batch);
        rc = kv_layout_put_rev(&vw, l->rev);
        kv_view_release(&vw);
    }
    mdb_txn_abort(txn);
    return rc;
}

static int s_wal_size(void *arg, const kv_change *c)
{
    *(size_t *)arg += kv_wal_change_size(c);
    return 0;
}

static int s_wal_put(void *arg, const kv_change *c)
{
    unsigned char **p = arg;
    *p = kv_wal_put_change(*p, c);
    return 0;
}

/* l->batch as one log record, on disk when this returns 0. */
static int s_log_batch(s_lmdb *l, uint64_t *lsn)
{
    size_t len = 0;
    kv_layer_walk(l->batch, s_wal_size, &len);
    if (len > KV_WAL_MAX_RECORD)
        return -ENOSPC;
    unsigned char *p = kv_wal_reserve(l->wal, len);
    if (!p)
        return -ENOMEM;
    kv_layer_walk(l->batch, s_wal_put, &p);
    return kv_wal_append(l->wal, len, lsn);
}

/* After a batch is published (mu held for writing): freezes active when it is due (or now). */
static void s_maybe_freeze(s_lmdb *l, bool now)
{
    /* Due: the log file holds checkpoint_bytes, or active many changes or half the free room. */
    if (l->frozen || !kv_layer_count(l->active) ||
        (!now && kv_wal_used(l->wal) < l->ckpt_bytes &&
                      kv_layer_count(l->active) < S_FREEZE_COUNT &&
                      (long long)kv_layer_pages(l->active) * 2 < atomic_load(&l->avail)))
        return;
    kv_layer *fresh = kv_layer_new();
    if (!fresh)
        return;   /* try again after the next batch */
    l->frozen = l->active;
    l->active = fresh;
    kv_wal_switch(l->wal);
    pthread_mutex_lock(&l->ck_mu);
    l->ck_pending = true;
    l->ck_lsn = l->active_lsn;
    pthread_cond_signal(&l->ck_cv);
    pthread_mutex_unlock(&l->ck_mu);
}

/* Some of ops[0..n) as one log record (*used of them), published; or a code for all n. */
static int s_apply_some(s_lmdb *l, kv_op **ops, size_t n, size_t *used)
{
    int64_t rev0 = l->rev;
    bool room = false;
    int rc = atomic_load(&l->failed);
    bool known = rc != 0;   /* logged when it happened */
    if (!rc) {
        pthread_rwlock_rdlock(&l->mu);
        rc = s_work_out(l, ops, n, used, &room);
        pthread_rwlock_unlock(&l->mu);
    }
    uint64_t lsn = 0;
    if (!rc && kv_layer_count(l->batch))
        rc = s_log_batch(l, &lsn);
    if (rc) {
        if (!known)
            svc_error_log("store commit failed\terror=%s", svc_strerror(rc));
        if (rc == -EIO)
            atomic_store(&l->failed, rc);
        kv_layer_clear(l->batch);
        l->rev = rev0;
        for (size_t i = 0; i < n; i++) {
            ops[i]->rc = rc;
            kv_layout_reset(ops[i]);
        }
        return rc;
    }
    if (!lsn && !room)
        return 0;
    pthread_rwlock_wrlock(&l->mu);
    if (lsn) {
        kv_layer_merge(l->active, l->batch);
        l->active_lsn = lsn;
    }
    s_maybe_freeze(l, room);
    /* Writes outrun the checkpoints, or the next op needs the room one makes: wait for it. */
    bool wait = l->frozen && (room || kv_layer_bytes(l->active) > S_MAX_PENDING);
    /* No memory for a fresh layer: no checkpoint to wait for.  (Nothing pending: just go on.) */
    bool stuck = room && !l->frozen && kv_layer_count(l->active);
    pthread_rwlock_unlock(&l->mu);
    if (stuck) {
        for (size_t i = *used; i < n; i++) {
            ops[i]->rc = -ENOMEM;
            kv_layout_reset(ops[i]);
        }
        *used = n;
    }
    if (wait) {
        pthread_mutex_lock(&l->ck_mu);
        while (l->ck_pending && !atomic_load(&l->failed))
            pthread_cond_wait(&l->ck_cv, &l->ck_mu);
        pthread_mutex_unlock(&l->ck_mu);
    }
    return 0;
}

static int s_apply(kv_backend *b, kv_op **ops, size_t n)
{
    s_lmdb *l = b->state;
    for (size_t i = 0, used; i < n; i += used) {
        int rc = s_apply_some(l, ops + i, n - i, &used);
        if (rc)
            return rc;   /* the ops before i are durable and answered as such */
    }
    return 0;
}

/* ---- reads ---------------------------------------------------------------------- */

/* A reader's view of the store: mu held for reading until s_read_end. */
static int s_read_begin(s_lmdb *l, kv_view *vw)
{
    MDB_txn *txn;
    pthread_rwlock_rdlock(&l->mu);
    int rc = kv_layout_err(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn));
    if (rc) {
        pthread_rwlock_unlock(&l->mu);
        return rc;
    }
    *vw = (kv_view){ .txn = txn, .dbis = l->dbi };
    vw->layers[vw->n_layers++] = l->active;
    if (l->frozen)
        vw->layers[vw->n_layers++] = l->frozen;
    return 0;
}

static void s_read_end(s_lmdb *l, kv_view *vw)
{
    kv_view_release(vw);
    mdb_txn_abort(vw->txn);
    pthread_rwlock_unlock(&l->mu);
}

static int s_read_fn(kv_backend *b, const kv_query *q, Svc__Store__Record ***recs, size_t *n_recs,
                     char ***keys, size_t *n_keys, bool *more)
{
    s_lmdb *l = b->state;
    kv_view vw;
    *more = false;
    int rc = s_read_begin(l, &vw);
    if (rc)
        return rc;
    rc = kv_layout_read(&vw, q, recs, n_recs, keys, n_keys, more);
    s_read_end(l, &vw);
    return rc;
}

/* Names from the tables index: databases (db NULL) or the tables of db. */
static int s_names(kv_backend *b, const char *db, char ***out, size_t *n)
{
    s_lmdb *l = b->state;
    kv_view vw;
    *out = NULL;
    *n = 0;
    int rc = s_read_begin(l, &vw);
    if (rc)
        return rc;
    rc = kv_layout_names(&vw, db, out, n);
    s_read_end(l, &vw);
    return rc;
}

static int s_databases(kv_backend *b, char ***out, size_t *n) { return s_names(b, NULL, out, n); }
static int s_tables(kv_backend *b, const char *db, char ***out, size_t *n) { return s_names(b, db, out, n); }

static int s_lock_get(kv_backend *b, const char *id, int64_t now, Svc__Store__LockInfo **out)
{
    s_lmdb *l = b->state;
    kv_view vw;
    int rc = s_read_begin(l, &vw);
    if (rc)
        return rc;
    rc = kv_layout_lock_get(&vw, id, now, out);
    s_read_end(l, &vw);
    return rc;
}

static int s_lock_list(kv_backend *b, int64_t now, Svc__Store__LockInfo ***out, size_t *n)
{
    s_lmdb *l = b->state;
    kv_view vw;
    *out = NULL;
    *n = 0;
    int rc = s_read_begin(l, &vw);
    if (rc)
        return rc;
    rc = kv_layout_lock_list(&vw, now, out, n);
    s_read_end(l, &vw);
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------------- */

static int s_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
    MDB_val k = { strlen(key), (void *)key }, val = { sizeof v, &v };
    return mdb_put(txn, dbi, &k, &val, 0);
}

/*
 * Changes going into LMDB in bulk (a checkpoint, a replay): committed every
 * S_BULK_PAGES pages or so, so that no transaction outgrows LMDB's dirty
 * page limit; the LSN goes in with the last.  A crash between two commits
 * is harmless: wal_lsn is still the old one, and replaying from it puts
 * every key's last value again.
 */
#define S_BULK_PAGES 32768   /* 128 MiB of 4 KiB pages; LMDB allows 131072 dirty */

typedef struct s_bulk {
    s_lmdb *l;
    MDB_txn *txn;        /* the open write transaction, or NULL */
    size_t pages;        /* estimate of the pages it dirtied */
} s_bulk;

static int s_bulk_put(void *arg, const kv_change *c)
{
    s_bulk *bk = arg;
    int rc;
    if (c->table >= KV_T_N)
        return -EBADMSG;
    if (bk->txn && bk->pages >= S_BULK_PAGES) {
        bk->pages = 0;
        rc = mdb_txn_commit(bk->txn);
        bk->txn = NULL;
        if (rc)
            return kv_layout_err(rc);
    }
    if (!bk->txn && (rc = mdb_txn_begin(bk->l->env, NULL, 0, &bk->txn)) != 0) {
        bk->txn = NULL;
        return kv_layout_err(rc);
    }
    bk->pages += 1 + (c->klen + c->vlen + 32 + 4095) / 4096;
    MDB_val k = { c->klen, (void *)c->key }, v = { c->vlen, c->val };
    MDB_dbi dbi = bk->l->dbi[c->table];
    rc = c->del ? mdb_del(bk->txn, dbi, &k, NULL) : mdb_put(bk->txn, dbi, &k, &v, 0);
    return rc == MDB_NOTFOUND && c->del ? 0 : kv_layout_err(rc);
}

/* Ends the bulk: on rc 0 commits with wal_lsn = lsn, else abandons the open part. */
static int s_bulk_end(s_bulk *bk, int rc, uint64_t lsn)
{
    if (!rc && !bk->txn && (rc = kv_layout_err(mdb_txn_begin(bk->l->env, NULL, 0, &bk->txn))) != 0)
        bk->txn = NULL;
    if (!rc)
        rc = kv_layout_err(s_put_u64(bk->txn, bk->l->dbi[KV_T_META], "wal_lsn", lsn));
    if (bk->txn) {
        if (rc)
            mdb_txn_abort(bk->txn);
        else
            rc = kv_layout_err(mdb_txn_commit(bk->txn));   /* durable: the env syncs on commit */
    }
    bk->txn = NULL;
    return rc;
}

/* What LMDB has free for new data: the map past its last page, its freelist, less a reserve. */
static int s_update_avail(s_lmdb *l)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn;
    long long free_pages = 0;
    int rc;
    if ((rc = mdb_env_info(l->env, &info)) != 0 || (rc = mdb_env_stat(l->env, &st)) != 0 ||
        (rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) != 0)
        return kv_layout_err(rc);   /* avail stays as it was */
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, 0 /* FREE_DBI, as mdb_stat -f reads it */, &cur) == 0) {
        MDB_val k, v;
        for (int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0;
             m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
            if (v.mv_size >= sizeof(size_t)) {
                size_t count;   /* an IDL: its count first */
                memcpy(&count, v.mv_data, sizeof count);
                free_pages += (long long)count;
            }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    long long map = (long long)(info.me_mapsize / st.ms_psize);
    long long avail = map - (long long)info.me_last_pgno - 1 + free_pages - S_SLACK_PAGES - map / 32;
    atomic_store(&l->avail, avail > 0 ? avail : 0);
    return 0;
}

/* Puts layer into LMDB with wal_lsn = lsn, in synchronous commits (s_bulk). */
static int s_checkpoint(s_lmdb *l, const kv_layer *layer, uint64_t lsn)
{
    s_bulk bk = { .l = l };
    int rc = s_bulk_end(&bk, kv_layer_walk(layer, s_bulk_put, &bk), lsn);
    if (!rc)
        s_update_avail(l);
    return rc;
}

static void *s_checkpointer(void *arg)
{
    s_lmdb *l = arg;
    pthread_mutex_lock(&l->ck_mu);
    for (;;) {
        while (!l->ck_pending && !l->ck_stop)
            pthread_cond_wait(&l->ck_cv, &l->ck_mu);
        if (!l->ck_pending)
            break;
        uint64_t lsn = l->ck_lsn;
        pthread_mutex_unlock(&l->ck_mu);
        int64_t t0 = kv_mono_us();
        int rc = s_checkpoint(l, l->frozen, lsn);   /* only this thread frees frozen */
        if (rc) {
            /* The changes stay in memory and in the log: reads still see them. */
            svc_error_log("store checkpoint failed; refusing writes until restart\terror=%s",
                          svc_strerror(rc));
            atomic_store(&l->failed, rc);
            pthread_mutex_lock(&l->ck_mu);
            pthread_cond_broadcast(&l->ck_cv);
            break;
        }
        svc_debug("store checkpoint\tchanges=%zu lsn=%llu ms=%lld", kv_layer_count(l->frozen),
                  (unsigned long long)lsn, (long long)(kv_mono_us() - t0) / 1000);
        atomic_fetch_add(&l->checkpoints, 1);
        /* frozen goes and the flags clear at once (mu, then ck_mu: the writer's order). */
        pthread_rwlock_wrlock(&l->mu);
        kv_layer *done = l->frozen;
        l->frozen = NULL;
        pthread_mutex_lock(&l->ck_mu);
        l->ck_pending = false;
        pthread_cond_broadcast(&l->ck_cv);
        pthread_mutex_unlock(&l->ck_mu);
        pthread_rwlock_unlock(&l->mu);
        kv_layer_destroy(&done);
        pthread_mutex_lock(&l->ck_mu);
    }
    pthread_mutex_unlock(&l->ck_mu);
    return NULL;
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

static void s_stats(kv_backend *b, uint64_t *checkpoints, uint64_t *pending)
{
    s_lmdb *l = b->state;
    *checkpoints = atomic_load(&l->checkpoints);
    pthread_rwlock_rdlock(&l->mu);
    *pending = kv_layer_count(l->active) + (l->frozen ? kv_layer_count(l->frozen) : 0);
    pthread_rwlock_unlock(&l->mu);
}

static void s_free(s_lmdb *l)
{
    if (l->env)
        mdb_env_close(l->env);
    if (l->lock_fd >= 0)
        close(l->lock_fd);
    kv_wal_close(&l->wal);
    kv_layer_destroy(&l->active);
    kv_layer_destroy(&l->frozen);
    kv_layer_destroy(&l->batch);
    kv_layer_destroy(&l->op);
    pthread_rwlock_destroy(&l->mu);
    pthread_mutex_destroy(&l->ck_mu);
    pthread_cond_destroy(&l->ck_cv);
    free(l);
}

/* Stops the checkpoint thread after its last checkpoint, then puts active into LMDB too. */
static void s_destroy(kv_backend *b)
{
    if (!b)
        return;
    s_lmdb *l = b->state;
    if (l->ck_started) {
        pthread_mutex_lock(&l->ck_mu);
        l->ck_stop = true;
        pthread_cond_signal(&l->ck_cv);
        pthread_mutex_unlock(&l->ck_mu);
        pthread_join(l->ck, NULL);
    }
    if (!atomic_load(&l->failed) && !l->frozen && kv_layer_count(l->active)) {
        int rc = s_checkpoint(l, l->active, l->active_lsn);
        if (rc)   /* nothing lost: the log still has it, the next start replays it */
            svc_error_log("store checkpoint at stop failed\terror=%s", svc_strerror(rc));
    }
    s_free(l);
    free(b);
    atomic_store(&s_opened, false);
}

static const kv_kv_ops s_kv_ops = {
    .name = "lmdb",
    .read = s_read_fn,
    .databases = s_databases,
    .tables = s_tables,
    .apply = s_apply,
    .stats = s_stats,
    .maintain = s_maintain,
    .destroy = s_destroy,
};

static const kv_sync_ops s_sync_ops = {
    .lock_get = s_lock_get,
    .lock_list = s_lock_list,
};

/* A u64 of the meta table: 0 and *out (0 when absent), or -EIO when it is malformed. */
static int s_get_u64(MDB_txn *txn, s_lmdb *l, const char *key, uint64_t *out)
{
    MDB_val k = { strlen(key), (void *)key }, v;
    *out = 0;
    int rc = mdb_get(txn, l->dbi[KV_T_META], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc || v.mv_size != sizeof *out)
        return -EIO;
    memcpy(out, v.mv_data, sizeof *out);
    return 0;
}

static int s_replay_record(void *arg, uint64_t lsn, const unsigned char *payload, size_t len)
{
    return kv_wal_changes(payload, len, s_bulk_put, arg);
}

/*
 * Opens the tables, puts the log's records after wal_lsn into LMDB
 * (s_bulk), reads the revision counter, and starts the log.
 */
static int s_open_dbis(s_lmdb *l, char *err, size_t errlen)
{
    MDB_txn *txn;
    uint64_t after, last, rev;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc)
        goto fail;
    for (int i = 0; i < KV_T_N; i++)
        if ((rc = mdb_dbi_open(txn, kv_table_names[i], MDB_CREATE, &l->dbi[i])) != 0) {
            mdb_txn_abort(txn);
            goto fail;
        }
    if (s_get_u64(txn, l, "wal_lsn", &after) < 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "store metadata is corrupt");
        return -EIO;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail;
    s_bulk bk = { .l = l };
    int64_t t0 = kv_mono_us();
    rc = kv_wal_replay(l->wal, after, s_replay_record, &bk, &last, err, errlen);
    if (rc)
        s_bulk_end(&bk, rc, last);   /* err says why */
    else if (last > after && (rc = s_bulk_end(&bk, 0, last)) != 0)
        snprintf(err, errlen, "cannot put the write-ahead log into the store: %s", svc_strerror(rc));
    if (rc == -ENOSPC)
        snprintf(err, errlen, "the write-ahead log does not fit in the map: restart with a larger --map-size");
    if (rc)
        return rc;
    if (last > after)
        svc_info("replayed the write-ahead log\trecords=%llu ms=%lld",
                 (unsigned long long)(last - after), (long long)(kv_mono_us() - t0) / 1000);
    if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) != 0)
        goto fail;
    int mrc = s_get_u64(txn, l, "revision", &rev);
    mdb_txn_abort(txn);
    if (mrc < 0) {
        snprintf(err, errlen, "store metadata is corrupt");
        return -EIO;
    }
    l->rev = (int64_t)rev;
    kv_wal_start(l->wal, last + 1);
    l->active_lsn = last;
    if ((rc = s_update_avail(l)) != 0) {
        snprintf(err, errlen, "cannot read the store's free space: %s", svc_strerror(rc));
        return rc;
    }
    return 0;
fail:
    snprintf(err, errlen, "cannot open the store's tables: %s", mdb_strerror(rc));
    return kv_layout_err(rc);
}

kv_backend *kv_lmdb_open(const char *dir, size_t map_mb, size_t checkpoint_bytes, char *err,
                         size_t errlen)
{
    if (atomic_exchange(&s_opened, true)) {
        snprintf(err, errlen, "an LMDB store is already open in this process");
        return NULL;
    }
    kv_backend *b = calloc(1, sizeof *b);
    s_lmdb *l = calloc(1, sizeof *l);
    if (!b || !l) {
        snprintf(err, errlen, "out of memory");
        free(l);
        l = NULL;
        goto out_free;
    }
    l->lock_fd = -1;
    l->pid = getpid();
    l->ckpt_bytes = checkpoint_bytes;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* Readers come and go all the time: without this the writer could wait for ever. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l->mu, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&l->ck_mu, NULL);
    pthread_cond_init(&l->ck_cv, NULL);
    b->kv = &s_kv_ops;
    b->sync = &s_sync_ops;
    b->state = l;
    l->active = kv_layer_new();
    l->batch = kv_layer_new();
    l->op = kv_layer_new();
    if (!l->active || !l->batch || !l->op) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
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
    if (kv_wal_open(dir, &l->wal, err, errlen) < 0)
        goto out_free;
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
    if ((rc = pthread_create(&l->ck, NULL, s_checkpointer, l)) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint thread: %s", strerror(rc));
        goto out_free;
    }
    l->ck_started = true;
    return b;
out_free:
    if (l)
        s_free(l);
    free(b);
    atomic_store(&s_opened, false);
    return NULL;
}
