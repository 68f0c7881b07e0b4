/*
 * stored/store.c — the Store.* endpoints.
 *
 * Each handler validates its request (every limit answered with a 400 or
 * 413 naming the field), then reads through the backend directly, or turns
 * the change into a kv_txn, hands it to the group-commit writer and
 * returns with its answer deferred (svc_ctx_defer): the writer answers
 * only after the change is durable, and no thread waits meanwhile, so one
 * commit takes every write in flight.  Write, Delete and CAS are
 * transactions of one change.
 */
#include "stored.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation ------------------------------------------------------------ */

int kv_check_text(svc_ctx *ctx, const char *what, const char *v, size_t max, bool empty_ok)
{
    size_t n = strlen(v);
    if (!n && !empty_ok)
        return svc_ctx_error(ctx, 400, "%s is empty", what);
    if (n > max)
        return svc_ctx_error(ctx, 400, "%s \"%.32s...\" is %zu bytes, over the %zu byte limit", what,
                             v, n, max);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return svc_ctx_error(ctx, 400, "%s \"%.64s\" contains a control character", what, v);
    return 0;
}

/* database / table: "" means KV_DEFAULT_NAME. */
static int s_names(svc_ctx *ctx, const char **db, const char **table)
{
    if (!**db)
        *db = KV_DEFAULT_NAME;
    if (!**table)
        *table = KV_DEFAULT_NAME;
    return kv_check_text(ctx, "database name", *db, KV_MAX_NAME, false) ?:
           kv_check_text(ctx, "table name", *table, KV_MAX_NAME, false);
}

static int s_key(svc_ctx *ctx, const char *key)
{
    size_t n = strlen(key);
    if (!n)
        return svc_ctx_error(ctx, 400, "key is empty");
    if (n > KV_MAX_KEY)
        return svc_ctx_error(ctx, 400, "key \"%.32s...\" is %zu bytes, over the %d byte limit", key, n,
                             KV_MAX_KEY);
    return 0;
}

/* A record to write: key, value, metadata; its absolute expiry into *expiry. */
static int s_record(svc_ctx *ctx, const Svc__Store__Record *r, int64_t ttl_ms, int64_t *expiry)
{
    if (!r)
        return svc_ctx_error(ctx, 400, "request carries no record");
    int rc = s_key(ctx, r->key);
    if (rc)
        return rc;
    if (r->value.len > KV_MAX_VALUE)
        return svc_ctx_error(ctx, 413, "value of key \"%.64s\" is %zu bytes, over the %d byte limit",
                             r->key, r->value.len, KV_MAX_VALUE);
    if (strlen(r->content_type) > 256)
        return svc_ctx_error(ctx, 400, "content type of key \"%.64s\" is over 256 bytes", r->key);
    size_t meta = 0;
    for (size_t i = 0; i < r->n_metadata; i++)
        meta += strlen(r->metadata[i]->key) + strlen(r->metadata[i]->value) + 4;
    if (meta > KV_MAX_META)
        return svc_ctx_error(ctx, 413, "metadata of key \"%.64s\" is %zu bytes, over the %d byte limit",
                             r->key, meta, KV_MAX_META);
    if (ttl_ms < 0)
        return svc_ctx_error(ctx, 400, "ttl_ms %lld is negative", (long long)ttl_ms);
    if (r->expiry < 0)
        return svc_ctx_error(ctx, 400, "expiry %lld is negative", (long long)r->expiry);
    if (ttl_ms && r->expiry)
        return svc_ctx_error(ctx, 400, "give ttl_ms or record.expiry, not both");
    if (ttl_ms > 100LL * 365 * 86400 * 1000)
        return svc_ctx_error(ctx, 400, "ttl_ms %lld is over 100 years", (long long)ttl_ms);
    *expiry = ttl_ms ? kv_now_ms() + ttl_ms : r->expiry;
    return 0;
}

static int s_fence(svc_ctx *ctx, const Svc__Store__Fence *f, kv_txn *t)
{
    if (!f || (!f->lock[0] && !f->token))
        return 0;
    int rc = kv_check_text(ctx, "fence lock id", f->lock, KV_MAX_LOCK_ID, false);
    if (rc)
        return rc;
    if (f->token <= 0)
        return svc_ctx_error(ctx, 400, "fence token %lld of lock \"%s\" is not positive",
                             (long long)f->token, f->lock);
    t->fence_lock = f->lock;
    t->fence_token = f->token;
    return 0;
}

int kv_error_code(int rc, const char *what, char *msg, size_t n)
{
    switch (rc) {
    case -ENOSPC:
        snprintf(msg, n, "store is full: %s refused (raise --map-size)", what);
        return 507;
    case -EAGAIN:
        snprintf(msg, n, "store busy: too many readers");
        return 503;
    case SVC_ECLOSED:
        snprintf(msg, n, "stored is stopping");
        return 503;
    default:
        snprintf(msg, n, "%s failed: %s", what, svc_strerror(rc));
        return 500;
    }
}

int kv_answer(svc_ctx *ctx, int rc, const char *what)
{
    if (!rc)
        return 0;
    char msg[256];
    int code = kv_error_code(rc, what, msg, sizeof msg);
    return svc_ctx_error(ctx, code, "%s", msg);
}

/* ---- reads -------------------------------------------------------------------- */

static int s_read_err(svc_ctx *ctx, int rc, const kv_query *q)
{
    if (rc == -ENODEV)
        return svc_ctx_error(ctx, 404, "database \"%s\" not found", q->database);
    if (rc == -ENOENT)
        return svc_ctx_error(ctx, 404, "key \"%.64s\" not found in table \"%s\" of database \"%s\"",
                             q->key, q->table, q->database);
    return kv_answer(ctx, rc, "read");
}

static int s_filters(svc_ctx *ctx, const char *prefix, const char *suffix)
{
    if (strlen(prefix) > KV_MAX_KEY)
        return svc_ctx_error(ctx, 400, "prefix is over the %d byte key limit", KV_MAX_KEY);
    if (strlen(suffix) > KV_MAX_KEY)
        return svc_ctx_error(ctx, 400, "suffix is over the %d byte key limit", KV_MAX_KEY);
    return 0;
}

static int s_read(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    const Svc__Store__ReadRequest *in = req;
    Svc__Store__ReadResponse *out = rsp;
    kv_query q = { .database = in->database, .table = in->table, .prefix = in->prefix,
                   .suffix = in->suffix, .limit = in->limit, .offset = in->offset,
                   .now = kv_now_ms() };
    int rc = s_names(ctx, &q.database, &q.table) ?: s_filters(ctx, in->prefix, in->suffix);
    if (rc)
        return rc;
    if (in->key[0]) {
        if ((rc = s_key(ctx, in->key)) != 0)
            return rc;
        if (in->prefix[0] || in->suffix[0])
            return svc_ctx_error(ctx, 400, "give key, or prefix and suffix, not both");
        q.key = in->key;
    }
    char **keys = NULL;
    size_t nk = 0;
    bool more = false;
    rc = st->b->kv->read(st->b, &q, &out->records, &out->n_records, &keys, &nk, &more);
    out->more = more;
    return s_read_err(ctx, rc, &q);
}

static int s_list(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    const Svc__Store__ListRequest *in = req;
    Svc__Store__ListResponse *out = rsp;
    kv_query q = { .database = in->database, .table = in->table, .prefix = in->prefix,
                   .suffix = in->suffix, .limit = in->limit, .offset = in->offset,
                   .keys_only = true, .now = kv_now_ms() };
    int rc = s_names(ctx, &q.database, &q.table) ?: s_filters(ctx, in->prefix, in->suffix);
    if (rc)
        return rc;
    Svc__Store__Record **recs = NULL;
    size_t nr = 0;
    bool more = false;
    rc = st->b->kv->read(st->b, &q, &recs, &nr, &out->keys, &out->n_keys, &more);
    out->more = more;
    return s_read_err(ctx, rc, &q);
}

static int s_databases(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    Svc__Store__DatabasesResponse *out = rsp;
    return kv_answer(ctx, st->b->kv->databases(st->b, &out->databases, &out->n_databases),
                     "databases");
}

static int s_tables(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    const Svc__Store__TablesRequest *in = req;
    Svc__Store__TablesResponse *out = rsp;
    const char *db = in->database[0] ? in->database : KV_DEFAULT_NAME;
    int rc = kv_check_text(ctx, "database name", db, KV_MAX_NAME, false);
    if (rc)
        return rc;
    rc = st->b->kv->tables(st->b, db, &out->tables, &out->n_tables);
    if (rc == -ENODEV)
        return svc_ctx_error(ctx, 404, "database \"%s\" not found", db);
    return kv_answer(ctx, rc, "tables");
}

/* ---- changes: queued for the writer, answered by it ------------------------------ */

typedef enum kv_change_kind { KV_CH_WRITE, KV_CH_DELETE, KV_CH_CAS, KV_CH_TXN } kv_change_kind;

/*
 * A change on its way to disk.  Its handler deferred the answer (the
 * handle keeps the request, which op.txn borrows from) and returned; the
 * writer answers once the commit is durable (s_committed) and frees it.
 */
typedef struct kv_change {
    kv_op op;                 /* KV_OP_TXN */
    kv_change_kind kind;      /* which answer */
    const char *what;         /* "write", ...: names it in errors */
    svc_deferred *d;          /* the answer */
    kv_cmp cmp;               /* CAS: its compare */
    kv_mut mut;               /* Write, Delete, CAS: its change */
    kv_cmp *cmps;             /* Txn: owned */
    kv_mut *muts;             /* Txn: owned */
} kv_change;

static kv_change *s_change(kv_change_kind kind, const char *what, const char *db, const char *table)
{
    kv_change *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        c->what = what;
        c->op.kind = KV_OP_TXN;
        c->op.txn = (kv_txn){ .database = db, .table = table };
    }
    return c;
}

static void s_change_free(kv_change *c)
{
    if (c->op.txn.current)
        protobuf_c_message_free_unpacked(&c->op.txn.current->base, NULL);
    free(c->cmps);
    free(c->muts);
    free(c);
}

/* The writer's callback: answers c from its op's result. */
static void s_committed(kv_op *op, void *arg)
{
    kv_change *c = arg;
    const kv_txn *t = &op->txn;
    if (op->rc) {
        char msg[512];
        int code = 409;
        if (op->rc == -EPERM)
            snprintf(msg, sizeof msg, "fencing token %lld does not hold lock \"%s\": %s refused",
                     (long long)t->fence_token, t->fence_lock, c->what);
        else
            code = kv_error_code(op->rc, c->what, msg, sizeof msg);
        svc_deferred_error(&c->d, code, "%s", msg);
        s_change_free(c);
        return;
    }
    switch (c->kind) {
    case KV_CH_WRITE: {
        Svc__Store__WriteResponse out = SVC__STORE__WRITE_RESPONSE__INIT;
        out.revision = t->revision;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    case KV_CH_DELETE: {
        Svc__Store__DeleteResponse out = SVC__STORE__DELETE_RESPONSE__INIT;
        out.deleted = t->deleted > 0;
        out.revision = t->revision;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    case KV_CH_CAS: {
        Svc__Store__CasResponse out = SVC__STORE__CAS_RESPONSE__INIT;
        out.swapped = t->succeeded;
        out.revision = t->succeeded ? t->revision : 0;
        out.current = t->current;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    case KV_CH_TXN: {
        Svc__Store__TxnResponse out = SVC__STORE__TXN_RESPONSE__INIT;
        out.succeeded = t->succeeded;
        out.revision = t->revision;
        svc_deferred_send(&c->d, &out.base);
        break;
    }
    }
    s_change_free(c);
}

/*
 * Hands a validated change to the writer and returns at once: the answer
 * goes out from the writer after the commit.  Takes c.
 */
static int s_submit(svc_ctx *ctx, kv_change *c)
{
    kv_state *st = svc_ctx_data(ctx);
    c->d = svc_ctx_defer(ctx);
    if (!c->d) {
        s_change_free(c);
        return svc_ctx_error(ctx, 500, "out of memory");
    }
    if (kv_commit_submit(st->commit, &c->op, s_committed, c) != 0) {
        svc_deferred_error(&c->d, 503, "stored is stopping");
        s_change_free(c);
    }
    return 0;   /* c may be answered and gone already */
}

/*
 * A new change of kind for database / table, its names and fence checked:
 * 0 with *out, or the error answered (nothing to free).
 */
static int s_begin(svc_ctx *ctx, kv_change_kind kind, const char *what, const char *db,
                   const char *table, const Svc__Store__Fence *fence, kv_change **out)
{
    kv_change *c = s_change(kind, what, db, table);
    if (!c)
        return -ENOMEM;
    kv_txn *t = &c->op.txn;
    int rc = s_names(ctx, &t->database, &t->table) ?: s_fence(ctx, fence, t);
    if (rc) {
        s_change_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int s_write(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__WriteRequest *in = req;
    kv_change *c;
    int rc = s_begin(ctx, KV_CH_WRITE, "write", in->database, in->table, in->fence, &c);
    if (rc)
        return rc;
    c->mut = (kv_mut){ .rec = in->record };
    if ((rc = s_record(ctx, in->record, in->ttl_ms, &c->mut.expiry)) != 0) {
        s_change_free(c);
        return rc;
    }
    c->mut.key = in->record->key;
    c->op.txn.muts = &c->mut;
    c->op.txn.n_muts = 1;
    return s_submit(ctx, c);
}

static int s_delete(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__DeleteRequest *in = req;
    kv_change *c;
    int rc = s_begin(ctx, KV_CH_DELETE, "delete", in->database, in->table, in->fence, &c);
    if (rc)
        return rc;
    if ((rc = s_key(ctx, in->key)) != 0) {
        s_change_free(c);
        return rc;
    }
    c->mut = (kv_mut){ .key = in->key };
    c->op.txn.muts = &c->mut;
    c->op.txn.n_muts = 1;
    return s_submit(ctx, c);
}

static int s_cas(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__CasRequest *in = req;
    kv_change *c;
    int rc = s_begin(ctx, KV_CH_CAS, "compare-and-swap", in->database, in->table, in->fence, &c);
    if (rc)
        return rc;
    c->mut = (kv_mut){ .rec = in->record };
    rc = s_record(ctx, in->record, in->ttl_ms, &c->mut.expiry);
    if (!rc && in->expect_revision < 0)
        rc = svc_ctx_error(ctx, 400, "expect_revision %lld is negative",
                           (long long)in->expect_revision);
    if (rc) {
        s_change_free(c);
        return rc;
    }
    c->mut.key = c->cmp.key = in->record->key;
    c->cmp.revision = in->expect_revision;
    kv_txn *t = &c->op.txn;
    t->cmps = &c->cmp;
    t->n_cmps = 1;
    t->muts = &c->mut;
    t->n_muts = 1;
    t->want_current = true;
    return s_submit(ctx, c);
}

/* A Txn's compares and ops into c's arrays, each checked. */
static int s_txn_parts(svc_ctx *ctx, const Svc__Store__TxnRequest *in, kv_change *c)
{
    if (in->n_compares + in->n_ops > KV_MAX_TXN_OPS)
        return svc_ctx_error(ctx, 400, "transaction has %zu compares and ops, over the limit of %d",
                             in->n_compares + in->n_ops, KV_MAX_TXN_OPS);
    if (!in->n_ops)
        return svc_ctx_error(ctx, 400, "transaction has no ops");
    c->cmps = calloc(in->n_compares + 1, sizeof *c->cmps);
    c->muts = calloc(in->n_ops, sizeof *c->muts);
    if (!c->cmps || !c->muts)
        return -ENOMEM;
    int rc = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < in->n_compares && !rc; i++) {
        c->cmps[i] = (kv_cmp){ in->compares[i]->key, in->compares[i]->revision };
        rc = s_key(ctx, c->cmps[i].key);
        if (!rc && c->cmps[i].revision < 0)
            rc = svc_ctx_error(ctx, 400, "compares[%zu]: revision is negative", i);
    }
    for (size_t i = 0; i < in->n_ops && !rc; i++) {
        const Svc__Store__Op *op = in->ops[i];
        if (!op->put == !op->delete_[0]) {
            rc = svc_ctx_error(ctx, 400, "ops[%zu]: give exactly one of put and delete", i);
        } else if (op->put) {
            c->muts[i] = (kv_mut){ .key = op->put->key, .rec = op->put };
            rc = s_record(ctx, op->put, op->ttl_ms, &c->muts[i].expiry);
            bytes += op->put->value.len;
        } else {
            c->muts[i] = (kv_mut){ .key = op->delete_ };
            rc = s_key(ctx, op->delete_);
        }
    }
    if (!rc && bytes > 4 * KV_MAX_VALUE)
        rc = svc_ctx_error(ctx, 413, "transaction writes %zu bytes of values, over the %d byte limit",
                           bytes, 4 * KV_MAX_VALUE);
    return rc;
}

static int s_txn(svc_ctx *ctx, const void *req, void *rsp)
{
    const Svc__Store__TxnRequest *in = req;
    kv_change *c;
    int rc = s_begin(ctx, KV_CH_TXN, "transaction", in->database, in->table, in->fence, &c);
    if (rc)
        return rc;
    if ((rc = s_txn_parts(ctx, in, c)) != 0) {
        s_change_free(c);
        return rc;
    }
    c->op.txn.cmps = c->cmps;
    c->op.txn.n_cmps = in->n_compares;
    c->op.txn.muts = c->muts;
    c->op.txn.n_muts = in->n_ops;
    return s_submit(ctx, c);
}

static int s_stats(svc_ctx *ctx, const void *req, void *rsp)
{
    kv_state *st = svc_ctx_data(ctx);
    Svc__Store__StatsResponse *out = rsp;
    unsigned long long commits, ops;
    kv_commit_stats(st->commit, &commits, &ops);
    out->commits = commits;
    out->ops = ops;
    st->b->kv->stats(st->b, &out->checkpoints, &out->pending);
    return 0;
}

#define EP(n, f, r, inl) { "Store." #n, f, NULL, &svc__store__##r##_request__descriptor, \
                           &svc__store__##r##_response__descriptor, inl }

const kv_endpoint kv_store_endpoints[] = {
    EP(Read, s_read, read, true),
    EP(Write, s_write, write, true),
    EP(Delete, s_delete, delete, true),
    EP(List, s_list, list, false),
    EP(Databases, s_databases, databases, false),
    EP(Tables, s_tables, tables, false),
    EP(CAS, s_cas, cas, true),
    EP(Txn, s_txn, txn, true),
    EP(Stats, s_stats, stats, true),
    { NULL, NULL, NULL, NULL, NULL, false },
};
