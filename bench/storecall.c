/* bench/storecall.c — stored and raw LMDB throughput.  See storecall.h. */
#include "storecall.h"
#include "measure.h"

#include <errno.h>
#include <getopt.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "svc/svc.h"
#include "store.pb-c.h"

typedef struct s_flags {
    const char *op;        /* write|read|put|get */
    int clients;           /* threads */
    double seconds;        /* measured time */
    long size;             /* value bytes */
    long keys;             /* key space */
    long batch;            /* lmdb-raw put: puts per commit */
    const char *registry;  /* borrowed from argv */
    const char *label;     /* bench name */
    const char *dir;       /* lmdb-raw: the positional DIR */
    bool async;            /* store-client: --clients calls in flight from one thread */
} s_flags;

static long s_num(const char *v, const char *flag, long lo, long hi, int *bad)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "svc-bench: invalid value \"%s\" for %s (want %ld..%ld)\n", v, flag, lo, hi);
        *bad = 1;
    }
    return (long)d;
}

static int s_parse(int argc, char **argv, s_flags *f, bool raw)
{
    static const struct option longs[] = {
        { "op", required_argument, NULL, 'o' }, { "clients", required_argument, NULL, 'c' },
        { "seconds", required_argument, NULL, 's' }, { "size", required_argument, NULL, 'z' },
        { "keys", required_argument, NULL, 'k' }, { "batch", required_argument, NULL, 'b' },
        { "registry", required_argument, NULL, 'r' },
        { "label", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
        { "async", no_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    *f = (s_flags){ .op = raw ? "put" : "write", .clients = 1, .seconds = 3, .size = 100,
                    .keys = 1000, .batch = 1 };
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1 && !bad) {
        switch (c) {
        case 'o': f->op = optarg; break;
        case 'c': f->clients = (int)s_num(optarg, "--clients", 1, 1000, &bad); break;
        case 's': f->seconds = strtod(optarg, NULL); if (f->seconds <= 0) bad = 1; break;
        case 'z': f->size = s_num(optarg, "--size", 1, 1 << 20, &bad); break;
        case 'k': f->keys = s_num(optarg, "--keys", 1, 10000000, &bad); break;
        case 'b': f->batch = s_num(optarg, "--batch", 1, 100000, &bad); break;
        case 'r': f->registry = optarg; break;
        case 'l': f->label = optarg; break;
        case 'a': f->async = true; break;
        case 'h':
            printf("%s", raw ? "usage: svc-bench lmdb-raw --op put|get|hold DIR [--batch B] [--seconds S] "
                               "[--size BYTES] [--keys K] [--label NAME]\n"
                             : "usage: svc-bench store-client --op write|read [--clients N] [--seconds S] "
                               "[--size BYTES] [--keys K] [--registry ADDR] [--label NAME] [--async]\n"
                               "  --async: the N clients are N calls in flight from one thread (svc_call_cb),\n"
                               "  as redis-benchmark drives its connections from one event loop\n");
            return 1;
        default:
            fprintf(stderr, "svc-bench: bad option \"%s\"\n", argv[optind - 1]);
            return 64;
        }
    }
    if (bad)
        return 64;
    if (raw) {
        if (optind != argc - 1) {
            fprintf(stderr, "svc-bench: lmdb-raw wants one DIR\n");
            return 64;
        }
        f->dir = argv[optind];
    } else if (optind != argc) {
        fprintf(stderr, "svc-bench: unexpected argument \"%s\"\n", argv[optind]);
        return 64;
    }
    bool ok = raw ? (!strcmp(f->op, "put") || !strcmp(f->op, "get") || !strcmp(f->op, "hold"))
                  : (!strcmp(f->op, "write") || !strcmp(f->op, "read"));
    if (!ok) {
        fprintf(stderr, "svc-bench: unknown --op \"%s\"\n", f->op);
        return 64;
    }
    return 0;
}

static void s_print(const char *label, double rate, const s_flags *f, const char *note)
{
    printf("{\"bench\":\"%s\",\"value\":%.1f,\"unit\":\"ops/s\",\"clients\":%d,\"payload\":%ld,"
           "\"note\":\"%s\"}\n", label, rate, f->clients, f->size, note);
    fflush(stdout);
}

/* ---- store-client -------------------------------------------------------------- */

typedef struct s_worker {
    const s_flags *f;
    pthread_t thread;
    unsigned long long ops;   /* acknowledged calls */
    int rc;                   /* first failure */
    svc_error err;
    unsigned seed;
} s_worker;

static atomic_bool s_go, s_stop;

static void *s_store_thread(void *arg)
{
    s_worker *w = arg;
    const s_flags *f = w->f;
    svc_client *c = svc_client_new(f->registry);
    char *value = malloc((size_t)f->size);
    if (!c || !value) {
        w->rc = -ENOMEM;
        goto out;
    }
    memset(value, 'v', (size_t)f->size);
    svc_store_opts o = { .timeout_ms = 30000 };
    bool write = strcmp(f->op, "write") == 0;
    while (!atomic_load(&s_go))
        ;
    while (!atomic_load(&s_stop)) {
        char key[32];
        snprintf(key, sizeof key, "bench-%ld", (long)(rand_r(&w->seed) % f->keys));
        int rc;
        if (write) {
            rc = svc_store_write(c, &o, key, value, (size_t)f->size, NULL, NULL, &w->err);
        } else {
            Svc__Store__ReadResponse *r = NULL;
            rc = svc_store_read(c, &o, key, &r, &w->err);
            if (rc == 0 && (r->n_records != 1 || r->records[0]->value.len != (size_t)f->size))
                rc = SVC_EPROTO;
            svc_store_read_free(r);
        }
        if (rc) {
            w->rc = rc;
            break;
        }
        w->ops++;
    }
out:
    free(value);
    svc_client_destroy(&c);
    return NULL;
}

/* Writes every key once (reads need them) and checks the store answers. */
static int s_preload(const s_flags *f)
{
    svc_client *c = svc_client_new(f->registry);
    char *value = malloc((size_t)f->size);
    int rc = c && value ? 0 : -ENOMEM;
    if (value)
        memset(value, 'v', (size_t)f->size);
    svc_error err = SVC_ERROR_INIT;
    svc_store_opts o = { .timeout_ms = 10000 };
    for (long i = 0; rc == 0 && i < f->keys; i++) {
        char key[32];
        snprintf(key, sizeof key, "bench-%ld", i);
        for (int tries = 0; tries < 100; tries++) {
            rc = svc_store_write(c, &o, key, value, (size_t)f->size, NULL, NULL, &err);
            if (rc != SVC_ENOTFOUND && rc != SVC_EUNREACHABLE)
                break;
            nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);   /* not registered yet */
        }
    }
    if (rc) {
        char *j = svc_error_json(&err);
        fprintf(stderr, "svc-bench: preloading the store failed: %s\n", j ? j : svc_strerror(rc));
        free(j);
    }
    svc_error_release(&err);
    free(value);
    svc_client_destroy(&c);
    return rc;
}

/* ---- store-client --async: N calls in flight from one thread ------------------------ */

typedef struct s_async {
    const s_flags *f;
    svc_client *c;
    char *value;                /* the value written, f->size bytes */
    unsigned seed;              /* key choice */
    unsigned long long ops;     /* answers counted while measuring */
    bool stop;                  /* time is up: start no more calls */
    int rc;                     /* first failure, 0 if none */
    svc_error err;              /* its error */
} s_async;

static void s_async_done(void *arg, int rc, svc_reply *reply, svc_error *err);

/* Starts one call; its callback starts the next. */
static int s_async_start(s_async *a)
{
    char key[32];
    snprintf(key, sizeof key, "bench-%ld", (long)(rand_r(&a->seed) % (unsigned)a->f->keys));
    Svc__Store__Record rec = SVC__STORE__RECORD__INIT;
    Svc__Store__WriteRequest wr = SVC__STORE__WRITE_REQUEST__INIT;
    Svc__Store__ReadRequest rr = SVC__STORE__READ_REQUEST__INIT;
    const ProtobufCMessage *m;
    if (!strcmp(a->f->op, "write")) {
        rec.key = key;
        rec.value = (ProtobufCBinaryData){ (size_t)a->f->size, (uint8_t *)a->value };
        wr.record = &rec;
        m = &wr.base;
    } else {
        rr.key = key;
        m = &rr.base;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t buf[512];
    uint8_t *b = len <= sizeof buf ? buf : malloc(len);
    if (!b)
        return -ENOMEM;
    protobuf_c_message_pack(m, b);
    svc_call_opts o = { .timeout_ms = 30000 };
    int rc = svc_call_cb(a->c, SVC_STORE_SERVICE, strcmp(a->f->op, "write") ? "Store.Read"
                                                                            : "Store.Write",
                         b, len, &o, s_async_done, a);
    if (b != buf)
        free(b);
    return rc;
}

static void s_async_done(void *arg, int rc, svc_reply *reply, svc_error *err)
{
    s_async *a = arg;
    if (rc < 0) {
        if (!a->rc) {
            a->rc = rc;
            svc_error_release(&a->err);
            a->err = *err;
            memset(err, 0, sizeof *err);
        }
        return;
    }
    if (a->stop || a->rc)
        return;
    a->ops++;
    if ((rc = s_async_start(a)) < 0 && !a->rc)
        a->rc = rc;
}

static int s_async_run(const s_flags *f)
{
    s_async a = { .f = f, .seed = 12345, .err = SVC_ERROR_INIT };
    a.c = svc_client_new(f->registry);
    a.value = malloc((size_t)f->size);
    if (!a.c || !a.value)
        return 1;
    memset(a.value, 'v', (size_t)f->size);
    uint64_t t0 = bm_now_ns(), end = t0 + (uint64_t)(f->seconds * 1e9);
    for (int i = 0; i < f->clients && !a.rc; i++)
        if ((a.rc = s_async_start(&a)) < 0)
            break;
    while (!a.rc && bm_now_ns() < end)
        svc_client_poll(a.c, 50);
    a.stop = true;
    double secs = (double)(bm_now_ns() - t0) / 1e9;
    for (int i = 0; i < 100 && svc_client_pending(a.c) > 0; i++)
        svc_client_poll(a.c, 100);
    int code = 0;
    if (a.rc) {
        char *j = svc_error_json(&a.err);
        fprintf(stderr, "svc-bench: store %s failed: %s\n", f->op, j ? j : svc_strerror(a.rc));
        free(j);
        code = 1;
    } else {
        s_print(f->label ? f->label : f->op, (double)a.ops / secs, f,
                "N svc store calls in flight from one thread, each write acked after fsync");
    }
    svc_error_release(&a.err);
    free(a.value);
    svc_client_destroy(&a.c);
    return code;
}

int bm_store_client(int argc, char **argv)
{
    s_flags f;
    int rc = s_parse(argc, argv, &f, false);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (s_preload(&f) < 0)
        return 1;
    if (f.async)
        return s_async_run(&f);
    s_worker *w = calloc((size_t)f.clients, sizeof *w);
    if (!w)
        return 1;
    atomic_store(&s_go, false);
    atomic_store(&s_stop, false);
    for (int i = 0; i < f.clients; i++) {
        w[i].f = &f;
        w[i].seed = (unsigned)i * 7919u + 1;
        pthread_create(&w[i].thread, NULL, s_store_thread, &w[i]);
    }
    uint64_t t0 = bm_now_ns();
    atomic_store(&s_go, true);
    nanosleep(&(struct timespec){ .tv_sec = (time_t)f.seconds,
                                  .tv_nsec = (long)((f.seconds - (long)f.seconds) * 1e9) }, NULL);
    atomic_store(&s_stop, true);
    unsigned long long ops = 0;
    int code = 0;
    for (int i = 0; i < f.clients; i++) {
        pthread_join(w[i].thread, NULL);
        ops += w[i].ops;
        if (w[i].rc && !code) {
            char *j = svc_error_json(&w[i].err);
            fprintf(stderr, "svc-bench: store %s failed: %s\n", f.op, j ? j : svc_strerror(w[i].rc));
            free(j);
            code = 1;
        }
        svc_error_release(&w[i].err);
    }
    double secs = (double)(bm_now_ns() - t0) / 1e9;
    free(w);
    if (code)
        return code;
    char label[96];
    snprintf(label, sizeof label, "%s", f.label ? f.label : f.op);
    s_print(label, (double)ops / secs, &f, "svc store calls by name, each write acked after fsync");
    return 0;
}

/* ---- lmdb-raw ---------------------------------------------------------------------- */

int bm_lmdb_raw(int argc, char **argv)
{
    s_flags f;
    int rc = s_parse(argc, argv, &f, true);
    if (rc)
        return rc == 1 ? 0 : rc;
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    mkdir(f.dir, 0700);
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, 1UL << 30)) ||
        (rc = mdb_env_open(env, f.dir, MDB_NOTLS, 0600))) {
        fprintf(stderr, "svc-bench: lmdb \"%s\": %s\n", f.dir, mdb_strerror(rc));
        return 1;
    }
    if (strcmp(f.op, "hold") == 0) {
        /* A reader that never ends, to leave a stale reader slot when killed (tests). */
        if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
            fprintf(stderr, "svc-bench: lmdb: %s\n", mdb_strerror(rc));
            mdb_env_close(env);
            return 1;
        }
        printf("holding a read transaction\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    char *value = malloc((size_t)f.size);
    memset(value, 'v', (size_t)f.size);
    /* Every key exists first (gets need them). */
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)))
        goto fail;
    for (long i = 0; i < f.keys; i++) {
        char key[32];
        MDB_val k = { (size_t)snprintf(key, sizeof key, "bench-%ld", i), key }, v = { (size_t)f.size, value };
        if ((rc = mdb_put(txn, dbi, &k, &v, 0)))
            goto fail;
    }
    if ((rc = mdb_txn_commit(txn)))
        goto fail;
    bool put = strcmp(f.op, "put") == 0;
    unsigned seed = 1;
    unsigned long long ops = 0;
    /* 0.5 s unmeasured first: the file grows to its working size (as stored's has after its preload). */
    uint64_t t0 = bm_now_ns(), warm = t0 + 500000000ull, end = warm + (uint64_t)(f.seconds * 1e9);
    bool measuring = false;
    while (bm_now_ns() < end) {
        if (!measuring && bm_now_ns() >= warm) {
            measuring = true;
            ops = 0;
            t0 = bm_now_ns();
        }
        if ((rc = mdb_txn_begin(env, NULL, put ? 0 : MDB_RDONLY, &txn)))
            goto fail;
        for (long b = 0; b < (put ? f.batch : 1); b++) {
            char key[32];
            MDB_val k = { (size_t)snprintf(key, sizeof key, "bench-%ld", (long)(rand_r(&seed) % f.keys)), key };
            MDB_val v = { (size_t)f.size, value };
            rc = put ? mdb_put(txn, dbi, &k, &v, 0) : mdb_get(txn, dbi, &k, &v);
            if (rc) {
                mdb_txn_abort(txn);
                goto fail;
            }
            ops++;
        }
        if (put ? (rc = mdb_txn_commit(txn)) != 0 : (mdb_txn_abort(txn), 0))
            goto fail;
    }
    double secs = (double)(bm_now_ns() - t0) / 1e9;
    f.clients = 1;
    char label[96];
    snprintf(label, sizeof label, "%s", f.label ? f.label : f.op);
    s_print(label, (double)ops / secs, &f, put ? "raw LMDB puts, fsync'd commits" : "raw LMDB gets");
    free(value);
    mdb_env_close(env);
    return 0;
fail:
    fprintf(stderr, "svc-bench: lmdb: %s\n", mdb_strerror(rc));
    free(value);
    mdb_env_close(env);
    return 1;
}
