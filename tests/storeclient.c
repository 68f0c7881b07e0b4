/*
 * svc-storeclient — the libsvc store and sync clients (svc/store.h,
 * svc/sync.h) used from C, for tests/integration/test_store.py.
 *
 *   svc-storeclient api
 *       Runs every store and lock call once against svc.store and checks
 *       the answers; prints "ok" (exit 0) or the first mismatch (exit 1).
 *   svc-storeclient leader NAME CANDIDATE TTL_MS
 *       Campaigns (waiting up to 10 s), prints "elected TERM", waits until
 *       leadership is lost, prints "lost TERM", exits 0.
 *
 * The registry comes from $SVC_REGISTRY_ADDRESS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/svc.h"

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            char *j_ = svc_error_json(&err);                                    \
            fprintf(stderr, "storeclient: line %d: ", __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, " (last error: %s)\n", j_ ? j_ : "none");           \
            free(j_);                                                           \
            return 1;                                                           \
        }                                                                       \
    } while (0)

static int s_api(svc_client *c)
{
    svc_error err = SVC_ERROR_INIT;
    svc_store_opts o = { .database = "capi", .table = "t" };
    int64_t rev1 = 0, rev2 = 0;
    CHECK(svc_store_write(c, &o, "a/1", "{\"n\":1}", 7, "application/json", &rev1, &err) == 0, "write a/1");
    CHECK(svc_store_write(c, &o, "a/2", "two", 3, NULL, &rev2, &err) == 0 && rev2 > rev1, "write a/2");
    Svc__Store__ReadResponse *r = NULL;
    CHECK(svc_store_read(c, &o, "a/1", &r, &err) == 0 && r->n_records == 1 &&
          r->records[0]->value.len == 7 && !memcmp(r->records[0]->value.data, "{\"n\":1}", 7) &&
          !strcmp(r->records[0]->content_type, "application/json") && r->records[0]->revision == rev1,
          "read a/1");
    svc_store_read_free(r);
    svc_store_opts po = o;
    po.prefix = "a/";
    po.offset = 1;
    CHECK(svc_store_read(c, &po, NULL, &r, &err) == 0 && r->n_records == 1 &&
          !strcmp(r->records[0]->key, "a/2"), "read by prefix with offset");
    svc_store_read_free(r);
    Svc__Store__ListResponse *l = NULL;
    po.offset = 0;
    po.limit = 1;
    CHECK(svc_store_list(c, &po, &l, &err) == 0 && l->n_keys == 1 && !strcmp(l->keys[0], "a/1"), "list");
    svc_store_list_free(l);

    bool swapped = true;
    int64_t rev = 0;
    CHECK(svc_store_cas(c, &o, "a/1", "x", 1, NULL, rev1 + 1000, &swapped, &rev, &err) == 0 && !swapped &&
          rev == rev1, "cas with a wrong revision");
    CHECK(svc_store_cas(c, &o, "a/1", "x", 1, NULL, rev1, &swapped, &rev, &err) == 0 && swapped && rev > rev2,
          "cas with the right revision");

    char **names = NULL;
    size_t n = 0;
    CHECK(svc_store_databases(c, &names, &n, &err) == 0 && n == 1 && !strcmp(names[0], "capi"), "databases");
    svc_store_names_free(names, n);
    CHECK(svc_store_tables(c, "capi", &names, &n, &err) == 0 && n == 1 && !strcmp(names[0], "t"), "tables");
    svc_store_names_free(names, n);

    Svc__Store__TxnRequest tx = SVC__STORE__TXN_REQUEST__INIT;
    Svc__Store__Compare cmp = SVC__STORE__COMPARE__INIT;
    Svc__Store__Op op = SVC__STORE__OP__INIT, *ops[] = { &op };
    Svc__Store__Compare *cmps[] = { &cmp };
    cmp.key = "a/2";
    cmp.revision = rev2;
    op.delete_ = "a/1";
    tx.database = "capi";
    tx.table = "t";
    tx.compares = cmps;
    tx.n_compares = 1;
    tx.ops = ops;
    tx.n_ops = 1;
    Svc__Store__TxnResponse *tr = NULL;
    CHECK(svc_store_txn(c, &tx, &tr, &err) == 0 && tr->succeeded, "txn");
    protobuf_c_message_free_unpacked(&tr->base, NULL);
    bool deleted = true;
    CHECK(svc_store_delete(c, &o, "a/1", &deleted, &err) == 0 && !deleted, "delete after txn delete");
    CHECK(svc_store_read(c, &o, "a/1", &r, &err) == SVC_EREMOTE && err.code == 404, "read of a deleted key");
    svc_error_release(&err);

    int64_t token = 0, token2 = 0;
    CHECK(svc_lock(c, "capi-lock", 5000, 0, &token, &err) == 0 && token > 0, "lock");
    CHECK(svc_lock(c, "capi-lock", 5000, 0, &token2, &err) == SVC_EREMOTE && err.code == 409, "lock held");
    svc_error_release(&err);
    svc_store_opts fo = o;
    fo.fence_lock = "capi-lock";
    fo.fence_token = token;
    CHECK(svc_store_write(c, &fo, "fenced", "1", 1, NULL, NULL, &err) == 0, "fenced write");
    fo.fence_token = token + 1;
    CHECK(svc_store_write(c, &fo, "fenced", "2", 1, NULL, NULL, &err) == SVC_EREMOTE && err.code == 409,
          "write fenced with a wrong token");
    svc_error_release(&err);
    CHECK(svc_lock_refresh(c, "capi-lock", token, 5000, &err) == 0, "refresh");
    CHECK(svc_unlock(c, "capi-lock", token, &err) == 0, "unlock");
    CHECK(svc_unlock(c, "capi-lock", token, &err) == SVC_EREMOTE && err.code == 409, "second unlock");
    svc_error_release(&err);

    svc_leader *ld = NULL;
    CHECK(svc_leader_campaign(c, "capi-e", "me", 2000, 0, &ld, &err) == 0 && svc_leader_term(ld) > token,
          "campaign");
    char *who = NULL;
    int64_t term = 0;
    CHECK(svc_leader_get(c, "capi-e", &who, &term, &err) == 0 && !strcmp(who, "me") &&
          term == svc_leader_term(ld), "leader");
    free(who);
    CHECK(!svc_leader_wait_lost(ld, 2500), "leadership lost although renewed: a whole lease passed");
    svc_leader_resign(&ld);
    CHECK(svc_leader_get(c, "capi-e", &who, &term, &err) == SVC_EREMOTE && err.code == 404, "leader after resign");
    svc_error_release(&err);
    printf("ok\n");
    return 0;
}

static int s_leader(svc_client *c, const char *name, const char *candidate, long ttl)
{
    svc_error err = SVC_ERROR_INIT;
    svc_leader *ld = NULL;
    CHECK(svc_leader_campaign(c, name, candidate, ttl, 10000, &ld, &err) == 0, "campaign");
    printf("elected %lld\n", (long long)svc_leader_term(ld));
    fflush(stdout);
    svc_leader_wait_lost(ld, -1);
    printf("lost %lld\n", (long long)svc_leader_term(ld));
    fflush(stdout);
    svc_leader_resign(&ld);
    return 0;
}

int main(int argc, char **argv)
{
    svc_client *c = svc_client_new(NULL);
    int rc = 64;
    if (!c)
        return 1;
    if (argc == 2 && !strcmp(argv[1], "api"))
        rc = s_api(c);
    else if (argc == 5 && !strcmp(argv[1], "leader"))
        rc = s_leader(c, argv[2], argv[3], atol(argv[4]));
    else
        fprintf(stderr, "usage: svc-storeclient api | leader NAME CANDIDATE TTL_MS\n");
    svc_client_destroy(&c);
    return rc;
}
