/*
 * stored/backend.h — where stored keeps records and locks.
 *
 * A backend is two tables of operations over its private state: kv_kv_ops
 * (records: read, list, databases, tables, and the write batch) and
 * kv_sync_ops (locks: read one, list).  Changes to either go through
 * `apply`, which takes a whole batch of operations (kv_op) and must make
 * them durable before it returns (and visible to reads no sooner): the group-commit writer (commit.h) is the
 * only caller of apply, so a backend needs no write locking; reads may run
 * on any thread at the same time.
 *
 * The embedded default is LMDB (lmdb.c, with layout.c), which serves both
 * tables from one environment and so checks a write's fence in the same
 * batch.  The
 * shape leaves room for a PostgreSQL backend of kv_kv_ops (apply = one SQL
 * transaction with a savepoint per op) and an etcd backend of kv_sync_ops
 * (leases and revisions map one to one).
 *
 * Times are unix milliseconds (wall clock): expiries survive restarts.
 */
#ifndef KV_BACKEND_H
#define KV_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store.pb-c.h"

/* Limits (docs/store.md). */
#define KV_MAX_NAME        64        /* bytes in a database or table name */
#define KV_MAX_KEY         368       /* bytes in a key: LMDB keys are at most 511, with db, table and the expiry index's 8 */
#define KV_MAX_VALUE       (1 << 20) /* bytes in a value */
#define KV_MAX_META        (64 << 10)/* encoded metadata of one record */
#define KV_MAX_ANSWER      (8 << 20) /* a Read or List answer stops here (more = true) */
#define KV_MAX_TXN_OPS     1024      /* compares + ops in one transaction */
#define KV_MAX_LOCK_ID     256       /* bytes in a lock id, owner, election name, candidate */
#define KV_DEFAULT_LOCK_TTL_MS 10000
#define KV_MIN_LOCK_TTL_MS 100
#define KV_MAX_LOCK_TTL_MS (24LL * 3600 * 1000)
#define KV_DEFAULT_NAME    "default" /* database and table when a request names none */
#define KV_LEADER_PREFIX   "leader/" /* election NAME is lock "leader/NAME" */

/* One compare of a transaction: key's revision must be `revision` (0 = absent). */
typedef struct kv_cmp {
    const char *key;       /* borrowed from the request */
    int64_t revision;      /* expected; 0 = the key must have no live record */
} kv_cmp;

/* One change of a transaction: put rec under key, or delete key (rec NULL). */
typedef struct kv_mut {
    const char *key;                      /* borrowed */
    const Svc__Store__Record *rec;        /* borrowed; NULL = delete */
    int64_t expiry;                       /* absolute unix ms, 0 = never (puts) */
} kv_mut;

/* A conditional, atomic group of changes to one database and table. */
typedef struct kv_txn {
    const char *database, *table;         /* borrowed, validated */
    const kv_cmp *cmps;                   /* borrowed */
    size_t n_cmps;
    const kv_mut *muts;                   /* borrowed */
    size_t n_muts;
    const char *fence_lock;               /* NULL = unfenced; else lock that must be held */
    int64_t fence_token;                  /* ...with exactly this token */
    bool want_current;                    /* on a failed compare, copy the first compare's record */
    /* results */
    bool succeeded;                       /* every compare held and the changes were applied */
    int64_t revision;                     /* the store revision of the changes */
    size_t deleted;                       /* live records the deletes removed */
    Svc__Store__Record *current;          /* want_current and failed: the record (owned; NULL if absent) */
} kv_txn;

/* What a lock operation does. */
typedef enum kv_lock_kind {
    KV_LOCK_ACQUIRE,   /* grant if free or expired */
    KV_LOCK_REFRESH,   /* extend; the token must hold it */
    KV_LOCK_RELEASE,   /* delete; the token must hold it */
} kv_lock_kind;

typedef struct kv_lock {
    kv_lock_kind kind;
    const char *id;        /* borrowed */
    const char *owner;     /* borrowed (acquire) */
    int64_t ttl_ms;        /* acquire, refresh */
    int64_t token;         /* refresh, release: the holder's token */
    /* results */
    int64_t new_token;     /* acquire: the fencing token granted */
    int64_t expiry;        /* acquire/refresh: lease end; acquire refused (-EBUSY): holder's lease end */
} kv_lock;

typedef enum kv_op_kind {
    KV_OP_TXN,     /* op.txn */
    KV_OP_LOCK,    /* op.lock */
    KV_OP_REAP,    /* delete records and locks whose expiry passed; op.reaped counts them */
} kv_op_kind;

/*
 * One queued change.  rc after apply: 0; -EPERM the fence does not hold;
 * -EBUSY lock held by another; -ESTALE the token no longer holds the lock;
 * -ENOSPC the store is full; -EIO or another negative code (logged).
 */
typedef struct kv_op {
    kv_op_kind kind;       /* which member below */
    kv_txn txn;            /* KV_OP_TXN */
    kv_lock lock;          /* KV_OP_LOCK */
    size_t reaped;         /* KV_OP_REAP: records and locks removed */
    int64_t now;           /* unix ms, set by the writer before apply */
    int rc;                /* result */
    bool done;             /* set by the writer after the commit (under its lock) */
    pthread_cond_t *cv;    /* the waiter's, signalled with done (commit.c), or NULL */
    void (*on_done)(struct kv_op *op, void *arg);  /* or this, called by the writer (commit.c) */
    void *on_done_arg;
    struct kv_op *next;    /* queue link (writer) */
} kv_op;

/* A read by key, or by prefix and suffix with offset and limit. */
typedef struct kv_query {
    const char *database, *table;  /* validated */
    const char *key;               /* exact key, or NULL */
    const char *prefix, *suffix;   /* "" = any */
    uint32_t limit, offset;        /* limit 0 = none */
    bool keys_only;                /* List: fill keys, not records */
    int64_t now;                   /* unix ms: records expired by then are skipped */
} kv_query;

typedef struct kv_backend kv_backend;

typedef struct kv_kv_ops {
    const char *name;  /* "lmdb", ... */
    /*
     * Reads q into out->records (keys_only false) or out keys (List).
     * Answers stop before KV_MAX_ANSWER bytes with *more = true.  Records are
     * new messages the caller frees (with out).  Returns 0, -ENOENT when q->key
     * is absent or expired, -ENODEV when the database holds no records, -EIO.
     */
    int (*read)(kv_backend *b, const kv_query *q, Svc__Store__Record ***recs, size_t *n_recs,
                char ***keys, size_t *n_keys, bool *more);
    /* Sorted names of databases holding records (malloc'd array of malloc'd strings). */
    int (*databases)(kv_backend *b, char ***out, size_t *n);
    /* Sorted tables of database; -ENODEV when it holds none. */
    int (*tables)(kv_backend *b, const char *database, char ***out, size_t *n);
    /*
     * Applies ops[0..n) in order, each all-or-nothing (one failing leaves the
     * others applied), and makes them durable before returning; sets each
     * op's rc and results.  Returns 0, or a negative code when the batch
     * could not be committed (then every op's rc is that code; a backend
     * that commits a large batch in parts says so, and gives the code to
     * the ops of the parts that failed).
     */
    int (*apply)(kv_backend *b, kv_op **ops, size_t n);
    /* Checkpoints since open, and keys changed but not yet in the B-tree.  Any thread. */
    void (*stats)(kv_backend *b, uint64_t *checkpoints, uint64_t *pending);
    /* Housekeeping (stale reader slots...); logs what it did.  Any thread. */
    void (*maintain)(kv_backend *b);
    void (*destroy)(kv_backend *b);
} kv_kv_ops;

typedef struct kv_sync_ops {
    /* The live lock id as of now: 0 and *out filled (new message), -ENOENT when free or expired. */
    int (*lock_get)(kv_backend *b, const char *id, int64_t now, Svc__Store__LockInfo **out);
    /* Every live lock, by id; new messages. */
    int (*lock_list)(kv_backend *b, int64_t now, Svc__Store__LockInfo ***out, size_t *n);
} kv_sync_ops;

struct kv_backend {
    const kv_kv_ops *kv;      /* records */
    const kv_sync_ops *sync;  /* locks */
    void *state;              /* the backend's own */
};

/*
 * Opens (creating if needed) the LMDB store in directory dir with a map of
 * map_mb MiB, fronted by a write-ahead log there (wal.h) that is put into
 * LMDB each time checkpoint_bytes of it have been written; replays the log
 * first.  One per process (a second open fails with -EALREADY); not to be
 * used across fork.  Clears stale reader slots.  Takes an exclusive lock
 * on dir (-EBUSY when another stored has it).  On failure returns NULL and
 * writes a one-line reason into err.
 */
kv_backend *kv_lmdb_open(const char *dir, size_t map_mb, size_t checkpoint_bytes, char *err,
                         size_t errlen);

/* Clocks (clock.c).  Unix milliseconds now: the clock of expiries and leases. */
int64_t kv_now_ms(void);
/* Monotonic microseconds now. */
int64_t kv_mono_us(void);
/* Moves *t (a CLOCK_MONOTONIC deadline, say) us microseconds later. */
void kv_timespec_add_us(struct timespec *t, int64_t us);
/* Initialises cv with its timed waits on CLOCK_MONOTONIC. */
void kv_cond_init_mono(pthread_cond_t *cv);

#endif
