/*
 * libsvc/store.c — the store client: typed calls to svc.store (svc/store.h).
 */
#include "svc/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const svc_store_opts s_none = { 0 };

static char *s_str(const char *s) { return (char *)(s ? s : ""); }

static int s_call(svc_client *c, const char *endpoint, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *rd, ProtobufCMessage **rsp, const svc_store_opts *o,
                  svc_error *err)
{
    svc_call_opts co = { .timeout_ms = o->timeout_ms };
    return svc_call(c, SVC_STORE_SERVICE, endpoint, req, rd, rsp, &co, err);
}

static void s_fence(const svc_store_opts *o, Svc__Store__Fence *f, Svc__Store__Fence **slot)
{
    if (!o->fence_lock)
        return;
    f->lock = (char *)o->fence_lock;
    f->token = o->fence_token;
    *slot = f;
}

/* The record of a Write or CAS: key, value bytes (borrowed), content type. */
static void s_record(Svc__Store__Record *rec, const char *key, const void *value, size_t len,
                     const char *content_type)
{
    rec->key = s_str(key);
    rec->value.data = (uint8_t *)value;
    rec->value.len = len;
    rec->content_type = s_str(content_type);
}

int svc_store_write(svc_client *c, const svc_store_opts *o, const char *key, const void *value,
                    size_t len, const char *content_type, int64_t *revision, svc_error *err)
{
    o = o ? o : &s_none;
    Svc__Store__WriteRequest req = SVC__STORE__WRITE_REQUEST__INIT;
    Svc__Store__Record rec = SVC__STORE__RECORD__INIT;
    Svc__Store__Fence f = SVC__STORE__FENCE__INIT;
    req.database = s_str(o->database);
    req.table = s_str(o->table);
    s_record(&rec, key, value, len, content_type);
    req.record = &rec;
    req.ttl_ms = o->ttl_ms;
    s_fence(o, &f, &req.fence);
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(c, "Store.Write", &req.base, &svc__store__write_response__descriptor, &rsp, o, err);
    if (rc == 0 && revision)
        *revision = ((Svc__Store__WriteResponse *)rsp)->revision;
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

int svc_store_read(svc_client *c, const svc_store_opts *o, const char *key,
                   Svc__Store__ReadResponse **out, svc_error *err)
{
    o = o ? o : &s_none;
    Svc__Store__ReadRequest req = SVC__STORE__READ_REQUEST__INIT;
    req.database = s_str(o->database);
    req.table = s_str(o->table);
    req.key = s_str(key);
    req.prefix = key ? "" : s_str(o->prefix);
    req.suffix = key ? "" : s_str(o->suffix);
    req.limit = o->limit;
    req.offset = o->offset;
    *out = NULL;
    return s_call(c, "Store.Read", &req.base, &svc__store__read_response__descriptor,
                  (ProtobufCMessage **)out, o, err);
}

void svc_store_read_free(Svc__Store__ReadResponse *r)
{
    if (r)
        svc__store__read_response__free_unpacked(r, NULL);
}

int svc_store_delete(svc_client *c, const svc_store_opts *o, const char *key, bool *deleted,
                     svc_error *err)
{
    o = o ? o : &s_none;
    Svc__Store__DeleteRequest req = SVC__STORE__DELETE_REQUEST__INIT;
    Svc__Store__Fence f = SVC__STORE__FENCE__INIT;
    req.database = s_str(o->database);
    req.table = s_str(o->table);
    req.key = s_str(key);
    s_fence(o, &f, &req.fence);
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(c, "Store.Delete", &req.base, &svc__store__delete_response__descriptor, &rsp, o, err);
    if (rc == 0 && deleted)
        *deleted = ((Svc__Store__DeleteResponse *)rsp)->deleted;
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

int svc_store_list(svc_client *c, const svc_store_opts *o, Svc__Store__ListResponse **out,
                   svc_error *err)
{
    o = o ? o : &s_none;
    Svc__Store__ListRequest req = SVC__STORE__LIST_REQUEST__INIT;
    req.database = s_str(o->database);
    req.table = s_str(o->table);
    req.prefix = s_str(o->prefix);
    req.suffix = s_str(o->suffix);
    req.limit = o->limit;
    req.offset = o->offset;
    *out = NULL;
    return s_call(c, "Store.List", &req.base, &svc__store__list_response__descriptor,
                  (ProtobufCMessage **)out, o, err);
}

void svc_store_list_free(Svc__Store__ListResponse *r)
{
    if (r)
        svc__store__list_response__free_unpacked(r, NULL);
}

int svc_store_cas(svc_client *c, const svc_store_opts *o, const char *key, const void *value,
                  size_t len, const char *content_type, int64_t expect_revision, bool *swapped,
                  int64_t *revision, svc_error *err)
{
    o = o ? o : &s_none;
    Svc__Store__CasRequest req = SVC__STORE__CAS_REQUEST__INIT;
    Svc__Store__Record rec = SVC__STORE__RECORD__INIT;
    Svc__Store__Fence f = SVC__STORE__FENCE__INIT;
    req.database = s_str(o->database);
    req.table = s_str(o->table);
    s_record(&rec, key, value, len, content_type);
    req.record = &rec;
    req.ttl_ms = o->ttl_ms;
    req.expect_revision = expect_revision;
    s_fence(o, &f, &req.fence);
    ProtobufCMessage *rsp = NULL;
    int rc = s_call(c, "Store.CAS", &req.base, &svc__store__cas_response__descriptor, &rsp, o, err);
    if (rc == 0) {
        Svc__Store__CasResponse *r = (Svc__Store__CasResponse *)rsp;
        if (swapped)
            *swapped = r->swapped;
        if (revision)
            *revision = r->swapped ? r->revision : r->current ? r->current->revision : 0;
    }
    if (rsp)
        protobuf_c_message_free_unpacked(rsp, NULL);
    return rc;
}

int svc_store_txn(svc_client *c, const Svc__Store__TxnRequest *req, Svc__Store__TxnResponse **out,
                  svc_error *err)
{
    *out = NULL;
    return s_call(c, "Store.Txn", &req->base, &svc__store__txn_response__descriptor,
                  (ProtobufCMessage **)out, &s_none, err);
}

void svc_store_names_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* Moves a repeated string field out of a response about to be freed. */
static int s_take_strv(char ***field, size_t *nfield, char ***names, size_t *n)
{
    *names = calloc(*nfield + 1, sizeof **names);
    if (!*names)
        return -ENOMEM;
    for (size_t i = 0; i < *nfield; i++)
        (*names)[i] = (*field)[i];
    *n = *nfield;
    *nfield = 0;   /* the strings are ours now; free_unpacked frees only the array */
    return 0;
}

int svc_store_databases(svc_client *c, char ***names, size_t *n, svc_error *err)
{
    Svc__Store__DatabasesRequest req = SVC__STORE__DATABASES_REQUEST__INIT;
    Svc__Store__DatabasesResponse *r = NULL;
    *names = NULL;
    *n = 0;
    int rc = s_call(c, "Store.Databases", &req.base, &svc__store__databases_response__descriptor,
                    (ProtobufCMessage **)&r, &s_none, err);
    if (rc == 0)
        rc = s_take_strv(&r->databases, &r->n_databases, names, n);
    if (r)
        svc__store__databases_response__free_unpacked(r, NULL);
    return rc;
}

int svc_store_tables(svc_client *c, const char *database, char ***names, size_t *n, svc_error *err)
{
    Svc__Store__TablesRequest req = SVC__STORE__TABLES_REQUEST__INIT;
    Svc__Store__TablesResponse *r = NULL;
    req.database = s_str(database);
    *names = NULL;
    *n = 0;
    int rc = s_call(c, "Store.Tables", &req.base, &svc__store__tables_response__descriptor,
                    (ProtobufCMessage **)&r, &s_none, err);
    if (rc == 0)
        rc = s_take_strv(&r->tables, &r->n_tables, names, n);
    if (r)
        svc__store__tables_response__free_unpacked(r, NULL);
    return rc;
}
