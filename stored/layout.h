/*
 * stored/layout.h — the store's tables, and what each op and read does with them.
 *
 * The embedded backend (lmdb.c) keeps five LMDB tables (layout.c's header
 * has their keys and values).  This is their logic, on a kv_view
 * (overlay.h): an op reads through the view and writes its changes into the
 * view's top layer; a read reads through it.  Where the view's layers and
 * transaction come from, and when changes become durable, is lmdb.c's
 * business.
 *
 * Every change takes the next store revision; lock grants too, so fencing
 * tokens and record revisions come from one counter that only grows.
 */
#ifndef KV_LAYOUT_H
#define KV_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "overlay.h"

/* Table numbers of a kv_view (index into its dbis). */
enum { KV_T_RECORDS, KV_T_EXPIRY, KV_T_TABLES, KV_T_LOCKS, KV_T_META, KV_T_N };

/* The LMDB names of the tables, by number. */
extern const char *const kv_table_names[KV_T_N];

/* An LMDB code as a negative errno (MDB_MAP_FULL -> -ENOSPC, ...). */
int kv_layout_err(int mdb_rc);

/*
 * Applies op through v: sets op's results and returns its rc (kv_op).  *rev
 * is the last revision handed out; it grows by one per change made.  A
 * failed op may have written part of itself into v's top layer: drop that
 * layer's changes (and *rev's growth) and call kv_layout_reset.
 */
int kv_layout_run(kv_view *v, int64_t *rev, kv_op *op);
/* Clears what applying op filled in, for a failed op. */
void kv_layout_reset(kv_op *op);
/* Whether op may take more room: puts and lock grants (deletes and reaps only free it). */
bool kv_layout_grows(const kv_op *op);
/* Writes the revision counter (meta "revision") through v. */
int kv_layout_put_rev(kv_view *v, int64_t rev);

/* kv_kv_ops.read, databases (db NULL) / tables, kv_sync_ops.lock_get, lock_list, through v. */
int kv_layout_read(kv_view *v, const kv_query *q, Svc__Store__Record ***recs, size_t *n_recs,
                   char ***keys, size_t *n_keys, bool *more);
int kv_layout_names(kv_view *v, const char *db, char ***out, size_t *n);
int kv_layout_lock_get(kv_view *v, const char *id, int64_t now, Svc__Store__LockInfo **out);
int kv_layout_lock_list(kv_view *v, int64_t now, Svc__Store__LockInfo ***out, size_t *n);

#endif
