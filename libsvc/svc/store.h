/*
 * svc/store.h — the key-value store client (go-micro's store interface).
 *
 *     svc_client *c = svc_client_new(NULL);
 *     svc_store_opts o = { .database = "users", .table = "profiles", .ttl_ms = 60000 };
 *     int64_t rev;
 *     svc_error err = SVC_ERROR_INIT;
 *     if (svc_store_write(c, &o, "alice", "{\"age\":3}", 9, "application/json", &rev, &err) < 0)
 *         ...err.code 400 / 413 / 409 (fence) / 507 (full) / 503 ...
 *     Svc__Store__ReadResponse *r;
 *     svc_store_read(c, &o, "alice", &r, &err);      // r->records[0]->value
 *     svc_store_read_free(r);
 *
 * Calls go to service "svc.store" (stored) through the client's registry
 * view like any call.  A write is answered only once it is durable on
 * stored's disk.  Records carry a revision that only grows (a store-wide
 * counter); svc_store_cas and svc_store_txn build on it.  Types are the
 * protobuf-c messages of proto/store.proto (store.pb-c.h), so every field
 * documented there is at hand.  See docs/store.md.
 *
 * Every call returns 0 or a negative code with *err set, as svc_call
 * (svc/client.h): SVC_EREMOTE carries stored's error (404 key or database
 * not found, 400 invalid input, 409 fence refused, ...).  Not thread-safe
 * beyond the client's own rules: one svc_client per thread.
 */
#ifndef SVC_STORE_H
#define SVC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/client.h"
#include "svc/error.h"
#include "store.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SVC_STORE_SERVICE "svc.store"

/* Scope and options of a store call; zero-initialise and set what you need. */
typedef struct svc_store_opts {
    const char *database;   /* NULL or "" = "default" */
    const char *table;      /* NULL or "" = "default" */
    const char *prefix;     /* read/list: keys starting with this (reads: when key is NULL) */
    const char *suffix;     /* read/list: keys ending with this */
    uint32_t limit;         /* read/list: at most this many (0 = no limit) */
    uint32_t offset;        /* read/list: skip this many matches */
    int64_t ttl_ms;         /* write/cas: expire this long from now (0 = never) */
    const char *fence_lock; /* write/delete/cas: refuse unless this lock is held ... */
    int64_t fence_token;    /* ... with exactly this fencing token (svc/sync.h) */
    int timeout_ms;         /* the call's deadline, 0 = the client's */
} svc_store_opts;

/*
 * Writes value (len bytes, in content_type, NULL = opaque bytes) under key.
 * *revision (may be NULL) gets the record's new revision.
 */
int svc_store_write(svc_client *c, const svc_store_opts *o, const char *key, const void *value,
                    size_t len, const char *content_type, int64_t *revision, svc_error *err);

/*
 * Reads key, or with key NULL every record matching o->prefix / o->suffix
 * (with limit and offset).  *out is the caller's (svc_store_read_free).
 * A missing key is SVC_EREMOTE with err->code 404.
 */
int svc_store_read(svc_client *c, const svc_store_opts *o, const char *key,
                   Svc__Store__ReadResponse **out, svc_error *err);
void svc_store_read_free(Svc__Store__ReadResponse *r);

/* Deletes key; *deleted (may be NULL) says whether a live record was there. */
int svc_store_delete(svc_client *c, const svc_store_opts *o, const char *key, bool *deleted,
                     svc_error *err);

/* Keys matching o->prefix / o->suffix / limit / offset; *out the caller's (svc_store_list_free). */
int svc_store_list(svc_client *c, const svc_store_opts *o, Svc__Store__ListResponse **out,
                   svc_error *err);
void svc_store_list_free(Svc__Store__ListResponse *r);

/*
 * Writes key only if its revision is expect_revision (0: only if absent).
 * *swapped says whether it did; *revision gets the new revision (swapped)
 * or the current one (0 when absent).  Both may be NULL.
 */
int svc_store_cas(svc_client *c, const svc_store_opts *o, const char *key, const void *value,
                  size_t len, const char *content_type, int64_t expect_revision, bool *swapped,
                  int64_t *revision, svc_error *err);

/*
 * Runs a transaction (compares and ops of proto/store.proto; database and
 * table from req).  *out is the caller's (protobuf_c_message_free_unpacked);
 * (*out)->succeeded false means a compare failed and nothing was applied.
 */
int svc_store_txn(svc_client *c, const Svc__Store__TxnRequest *req, Svc__Store__TxnResponse **out,
                  svc_error *err);

/* Databases holding records, or the tables of database (NULL = "default"); free with svc_store_names_free. */
int svc_store_databases(svc_client *c, char ***names, size_t *n, svc_error *err);
int svc_store_tables(svc_client *c, const char *database, char ***names, size_t *n, svc_error *err);

/* Frees an array of n malloc'd strings. */
void svc_store_names_free(char **v, size_t n);

#ifdef __cplusplus
}
#endif
#endif
