/*
 * tests/fuzz/fuzz_store.c — libFuzzer target for stored's LMDB backend.
 *
 * The input is a svc.store.TxnRequest in protobuf (protobuf-c decodes it;
 * what fails to decode is skipped).  Its compares and ops, with names and
 * keys clipped to the limits stored's handlers enforce, are applied to one
 * LMDB store (a temp dir, 16 MiB map, kept across runs so it fills up and
 * the store-full path runs too), then read back by prefix.  Invariants,
 * abort() when broken: revisions only grow; a successful transaction
 * carries a revision above every earlier one; a read by prefix returns keys
 * in strictly increasing byte order that start with the prefix, no more
 * than the limit; every record read has a revision no higher than the
 * store's; the key layout decodes back in the expiry sweep without error.
 */
#include "backend.h"
#include "store.pb-c.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kv_backend *s_b;
static int64_t s_rev;   /* highest revision seen */

static void s_die(const char *what)
{
    fprintf(stderr, "fuzz_store: %s\n", what);
    abort();
}

/* A key or name as stored's handlers would accept it, else `dflt`. */
static const char *s_clip(const char *s, size_t max, const char *dflt)
{
    size_t n = strlen(s);
    if (!n || n > max)
        return dflt;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return dflt;
    return s;
}

static char s_dir[] = "/tmp/fuzz-store-XXXXXX";

/* At exit: close the store and remove its temp dir. */
static void s_cleanup(void)
{
    static const char *const files[] = { "data.mdb", "lock.mdb", "stored.lock", "wal.0", "wal.1" };
    char path[sizeof s_dir + 16];
    if (s_b)
        s_b->kv->destroy(s_b);
    s_b = NULL;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", s_dir, files[i]);
        unlink(path);
    }
    rmdir(s_dir);
}

static void s_open(void)
{
    char err[256];
    if (!mkdtemp(s_dir))
        s_die("mkdtemp");
    atexit(s_cleanup);
    s_b = kv_lmdb_open(s_dir, 16, 64 << 10, err, sizeof err);   /* small: checkpoints run too */
    if (!s_b)
        s_die(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_b)
        s_open();
    Svc__Store__TxnRequest *in = svc__store__txn_request__unpack(NULL, size, data);
    if (!in)
        return 0;
    if (in->n_compares + in->n_ops > KV_MAX_TXN_OPS || in->n_ops == 0)
        goto out;
    kv_cmp cmps[KV_MAX_TXN_OPS];
    kv_mut muts[KV_MAX_TXN_OPS];
    kv_txn t = { .database = s_clip(in->database, KV_MAX_NAME, KV_DEFAULT_NAME),
                 .table = s_clip(in->table, KV_MAX_NAME, KV_DEFAULT_NAME),
                 .cmps = cmps, .n_cmps = in->n_compares, .muts = muts, .n_muts = in->n_ops,
                 .want_current = in->n_compares > 0 };
    for (size_t i = 0; i < in->n_compares; i++)
        cmps[i] = (kv_cmp){ s_clip(in->compares[i]->key, KV_MAX_KEY, "k"),
                            in->compares[i]->revision < 0 ? 0 : in->compares[i]->revision };
    for (size_t i = 0; i < in->n_ops; i++) {
        Svc__Store__Op *op = in->ops[i];
        if (op->put && op->put->value.len <= KV_MAX_VALUE) {
            int64_t ttl = op->ttl_ms > 0 && op->ttl_ms < 1000000 ? op->ttl_ms : 0;
            muts[i] = (kv_mut){ s_clip(op->put->key, KV_MAX_KEY, "k"), op->put, ttl ? kv_now_ms() + ttl : 0 };
        } else {
            muts[i] = (kv_mut){ s_clip(op->delete_, KV_MAX_KEY, "k"), NULL, 0 };
        }
    }
    if (in->fence && in->fence->token > 0) {
        t.fence_lock = s_clip(in->fence->lock, KV_MAX_LOCK_ID, "lock");
        t.fence_token = in->fence->token;
    }
    kv_op op = { .kind = KV_OP_TXN, .txn = t, .now = kv_now_ms() };
    kv_op reap = { .kind = KV_OP_REAP, .now = kv_now_ms() };
    kv_op lock = { .kind = KV_OP_LOCK, .now = kv_now_ms(),
                   .lock = { .kind = KV_LOCK_ACQUIRE, .id = t.fence_lock ? t.fence_lock : "lock",
                             .owner = "fuzz", .ttl_ms = 1 + (int64_t)(size % 50) } };
    kv_op *ops[] = { &lock, &op, &reap };
    int64_t before = s_rev;
    int rc = s_b->kv->apply(s_b, ops, 3);
    if (rc == 0 && lock.rc == 0) {
        if (lock.lock.new_token <= before)
            s_die("a lock token did not grow");
        s_rev = lock.lock.new_token;
    }
    if (rc == 0 && op.rc == 0 && op.txn.succeeded) {
        if (op.txn.revision <= s_rev)
            s_die("a transaction's revision did not grow");
        s_rev = op.txn.revision;
    }
    if (op.txn.current)
        svc__store__record__free_unpacked(op.txn.current, NULL);

    /* Read back by the first op's key prefix. */
    char prefix[8];
    snprintf(prefix, sizeof prefix, "%.2s", muts[0].key);
    kv_query q = { .database = t.database, .table = t.table, .prefix = prefix, .suffix = "",
                   .limit = (uint32_t)(size % 7), .now = kv_now_ms() };
    Svc__Store__Record **recs = NULL;
    char **keys = NULL;
    size_t nr = 0, nk = 0;
    bool more = false;
    rc = s_b->kv->read(s_b, &q, &recs, &nr, &keys, &nk, &more);
    if (rc == 0) {
        if (q.limit && nr > q.limit)
            s_die("read returned more than the limit");
        for (size_t i = 0; i < nr; i++) {
            if (strncmp(recs[i]->key, prefix, strlen(prefix)) != 0)
                s_die("read returned a key without the prefix");
            if (i && strcmp(recs[i - 1]->key, recs[i]->key) >= 0)
                s_die("read returned keys out of order");
            if (recs[i]->revision > s_rev || recs[i]->revision <= 0)
                s_die("a record's revision is out of range");
        }
    } else if (rc != -ENODEV) {
        s_die("read failed");
    }
    for (size_t i = 0; i < nr; i++)
        svc__store__record__free_unpacked(recs[i], NULL);
    free(recs);
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    free(keys);
out:
    svc__store__txn_request__free_unpacked(in, NULL);
    return 0;
}
