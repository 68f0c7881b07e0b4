/*
 * brokerd/lmdb.c — the embedded event store: streams, events, dedup ids,
 * consumers and their pending events in one LMDB environment.
 *
 * Layout (named databases; "S" is a stream name, "G" a group, seq 8 octets
 * big-endian so keys sort by sequence):
 *   streams    S            -> StreamInfo (config and counters, no consumers)
 *   msgs       S\0 seq      -> Event (stream and delivery left empty)
 *   dedup      S\0 id       -> seq(8) time_ms(8), host order
 *   consumers  S\0 G        -> ConsumerInfo (config, next_seq, counters)
 *   pending    S\0 G\0 seq  -> deliveries(4) pad(4) due_ms(8), host order
 *
 * One thread (brokerd/commit.c) owns all of it: every op queued since its
 * last turn runs in one write transaction, which is committed (fsync'd by
 * LMDB's default durability) before any op of the batch is answered.  The
 * in-memory copy (streams, consumers, pending sets) changes along with the
 * transaction; when a commit fails, it is reloaded from disk, so memory
 * never runs ahead of what is durable.
 */
#include "backend.h"
#include "commit.h"
#include "consumer.h"
#include "topic.h"
#include "svc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_NAME_MAX 128
#define S_KEY_MAX  480
#define S_DEFAULT_DEDUP_MS 120000
#define S_DEFAULT_ACK_WAIT 30000
#define S_DEFAULT_MAX_DELIVER 5
#define S_DEFAULT_MAX_ACK_PENDING 1000
#define S_TICK_MS 50

typedef struct s_stream {
    char name[S_NAME_MAX + 1];   /* stream name */
    uint64_t max_msgs, max_bytes, max_age_ms, dedup_window_ms;  /* config */
    uint32_t max_msg_size;       /* config: largest body */
    uint64_t msgs, bytes;        /* stored events and their body bytes */
    uint64_t first_seq, last_seq;  /* oldest stored (last+1 when empty), newest ever */
    int64_t first_time, last_time; /* their unix ms */
    brk_consumer **cons;         /* consumers, owned */
    size_t n_cons;
    bool dirty;                  /* counters changed in this batch: record written before commit */
} s_stream;

typedef struct s_db {
    brk_backend base;            /* vtable first */
    MDB_env *env;
    MDB_dbi d_streams, d_msgs, d_dedup, d_cons, d_pend;
    brk_commit *commit;          /* the thread that runs every op */
    s_stream **streams;          /* in memory, owned */
    size_t n_streams;
    uint32_t max_payload;        /* --max-payload */
    brk_op *waiting;             /* consumes parked until events come or wait_until */
    int lock_fd;                 /* flock'd: one brokerd per directory */
    char *dir;
} s_db;

int brk_op_fail(brk_op *op, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->detail, sizeof op->detail, fmt, ap);
    va_end(ap);
    op->code = code;
    return code;
}

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- keys ---------------------------------------------------------------------- */

typedef struct s_key {
    unsigned char b[S_KEY_MAX];
    size_t n;
} s_key;

static void s_key_str(s_key *k, const char *s, bool nul)
{
    size_t l = strlen(s);
    if (k->n + l + 1 > S_KEY_MAX)
        l = S_KEY_MAX - k->n - 1;
    memcpy(k->b + k->n, s, l);
    k->n += l;
    if (nul)
        k->b[k->n++] = 0;
}

static void s_key_seq(s_key *k, uint64_t seq)
{
    for (int i = 7; i >= 0; i--)
        k->b[k->n++] = (unsigned char)(seq >> (8 * i));
}

static s_key s_k_msg(const char *stream, uint64_t seq)
{
    s_key k = { .n = 0 };
    s_key_str(&k, stream, true);
    s_key_seq(&k, seq);
    return k;
}

static s_key s_k2(const char *a, const char *b)
{
    s_key k = { .n = 0 };
    s_key_str(&k, a, true);
    s_key_str(&k, b, false);
    return k;
}

static s_key s_k_pend(const char *stream, const char *group, uint64_t seq)
{
    s_key k = { .n = 0 };
    s_key_str(&k, stream, true);
    s_key_str(&k, group, true);
    s_key_seq(&k, seq);
    return k;
}

static MDB_val s_val(s_key *k)
{
    return (MDB_val){ k->n, k->b };
}

typedef struct s_pend_rec {
    uint32_t deliveries;
    uint32_t pad;
    int64_t due_ms;
} s_pend_rec;

typedef struct s_dedup_rec {
    uint64_t seq;
    int64_t time_ms;
} s_dedup_rec;

/* ---- in-memory state ------------------------------------------------------------- */

static void s_stream_free(s_stream *st)
{
    for (size_t i = 0; i < st->n_cons; i++) {
        brk_consumer_release(st->cons[i]);
        free(st->cons[i]);
    }
    free(st->cons);
    free(st);
}

static void s_state_free(s_db *db)
{
    for (size_t i = 0; i < db->n_streams; i++)
        s_stream_free(db->streams[i]);
    free(db->streams);
    db->streams = NULL;
    db->n_streams = 0;
}

static s_stream *s_find(s_db *db, const char *name)
{
    for (size_t i = 0; i < db->n_streams; i++)
        if (strcmp(db->streams[i]->name, name) == 0)
            return db->streams[i];
    return NULL;
}

static brk_consumer *s_cons_find(s_stream *st, const char *group)
{
    for (size_t i = 0; i < st->n_cons; i++)
        if (strcmp(st->cons[i]->group, group) == 0)
            return st->cons[i];
    return NULL;
}

static s_stream *s_stream_add(s_db *db, const char *name)
{
    s_stream **n = realloc(db->streams, (db->n_streams + 1) * sizeof *n);
    if (!n)
        return NULL;
    db->streams = n;
    s_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    snprintf(st->name, sizeof st->name, "%s", name);
    st->first_seq = 1;
    st->dedup_window_ms = S_DEFAULT_DEDUP_MS;
    db->streams[db->n_streams++] = st;
    return st;
}

static brk_consumer *s_cons_add(s_stream *st, const char *group)
{
    brk_consumer **n = realloc(st->cons, (st->n_cons + 1) * sizeof *n);
    if (!n)
        return NULL;
    st->cons = n;
    brk_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->group, sizeof c->group, "%s", group);
    st->cons[st->n_cons++] = c;
    return c;
}

/* ---- records ------------------------------------------------------------------ */

static int s_put_stream(s_db *db, MDB_txn *txn, const s_stream *st)
{
    Svc__Broker__StreamConfig cfg = SVC__BROKER__STREAM_CONFIG__INIT;
    Svc__Broker__StreamInfo si = SVC__BROKER__STREAM_INFO__INIT;
    cfg.name = (char *)st->name;
    cfg.max_msgs = st->max_msgs;
    cfg.max_bytes = st->max_bytes;
    cfg.max_age_ms = st->max_age_ms;
    cfg.dedup_window_ms = st->dedup_window_ms;
    cfg.max_msg_size = st->max_msg_size;
    si.config = &cfg;
    si.messages = st->msgs;
    si.bytes = st->bytes;
    si.first_seq = st->first_seq;
    si.last_seq = st->last_seq;
    si.first_time_ms = st->first_time;
    si.last_time_ms = st->last_time;
    uint8_t buf[1024];
    size_t len = svc__broker__stream_info__pack(&si, buf);
    MDB_val k = { strlen(st->name), (void *)st->name }, v = { len, buf };
    return mdb_put(txn, db->d_streams, &k, &v, 0);
}

static void s_cons_config(const brk_consumer *c, Svc__Broker__ConsumerConfig *cc)
{
    cc->start = (Svc__Broker__StartPolicy)c->start;
    cc->start_seq = c->start_seq;
    cc->start_time_ms = c->start_time_ms;
    cc->ack_wait_ms = c->ack_wait_ms;
    cc->max_deliver = c->max_deliver;
    cc->max_ack_pending = c->max_ack_pending;
}

static int s_put_cons(s_db *db, MDB_txn *txn, const s_stream *st, const brk_consumer *c)
{
    Svc__Broker__ConsumerConfig cc = SVC__BROKER__CONSUMER_CONFIG__INIT;
    Svc__Broker__ConsumerInfo ci = SVC__BROKER__CONSUMER_INFO__INIT;
    s_cons_config(c, &cc);
    ci.config = &cc;
    ci.group = (char *)c->group;
    ci.next_seq = c->next_seq;
    ci.dead_lettered = c->dead_lettered;
    ci.missed = c->missed;
    uint8_t buf[512];
    size_t len = svc__broker__consumer_info__pack(&ci, buf);
    s_key k = s_k2(st->name, c->group);
    MDB_val kv = s_val(&k), v = { len, buf };
    return mdb_put(txn, db->d_cons, &kv, &v, 0);
}

static int s_put_pend(s_db *db, MDB_txn *txn, const s_stream *st, const brk_consumer *c,
                      const brk_pend *p)
{
    s_pend_rec r = { p->deliveries, 0, p->due_ms };
    s_key k = s_k_pend(st->name, c->group, p->seq);
    MDB_val kv = s_val(&k), v = { sizeof r, &r };
    return mdb_put(txn, db->d_pend, &kv, &v, 0);
}

static int s_del_pend(s_db *db, MDB_txn *txn, const s_stream *st, const brk_consumer *c,
                      uint64_t seq)
{
    s_key k = s_k_pend(st->name, c->group, seq);
    MDB_val kv = s_val(&k);
    int rc = mdb_del(txn, db->d_pend, &kv, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Reads event seq of st (NULL when absent); free with svc__broker__event__free_unpacked. */
static Svc__Broker__Event *s_get_event(s_db *db, MDB_txn *txn, const s_stream *st, uint64_t seq)
{
    s_key k = s_k_msg(st->name, seq);
    MDB_val kv = s_val(&k), v;
    if (mdb_get(txn, db->d_msgs, &kv, &v) != 0)
        return NULL;
    return svc__broker__event__unpack(NULL, v.mv_size, v.mv_data);
}

/* ---- loading -------------------------------------------------------------------- */

/* Splits a "S\0rest" key; returns the length of S or -1. */
static long s_split(const MDB_val *k)
{
    const char *z = memchr(k->mv_data, 0, k->mv_size);
    return z ? z - (const char *)k->mv_data : -1;
}

static int s_load(s_db *db)
{
    s_state_free(db);
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    MDB_cursor *cur;
    MDB_val k, v;
    mdb_cursor_open(txn, db->d_streams, &cur);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Svc__Broker__StreamInfo *si = svc__broker__stream_info__unpack(NULL, v.mv_size, v.mv_data);
        if (!si || !si->config) {
            if (si)
                svc__broker__stream_info__free_unpacked(si, NULL);
            continue;
        }
        s_stream *st = s_stream_add(db, si->config->name);
        if (st) {
            st->max_msgs = si->config->max_msgs;
            st->max_bytes = si->config->max_bytes;
            st->max_age_ms = si->config->max_age_ms;
            st->dedup_window_ms = si->config->dedup_window_ms;
            st->max_msg_size = si->config->max_msg_size;
            st->msgs = si->messages;
            st->bytes = si->bytes;
            st->first_seq = si->first_seq;
            st->last_seq = si->last_seq;
            st->first_time = si->first_time_ms;
            st->last_time = si->last_time_ms;
        }
        svc__broker__stream_info__free_unpacked(si, NULL);
    }
    mdb_cursor_close(cur);

    mdb_cursor_open(txn, db->d_cons, &cur);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        long sl = s_split(&k);
        Svc__Broker__ConsumerInfo *ci = svc__broker__consumer_info__unpack(NULL, v.mv_size, v.mv_data);
        if (sl < 0 || !ci || !ci->config) {
            if (ci)
                svc__broker__consumer_info__free_unpacked(ci, NULL);
            continue;
        }
        char name[S_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)sl, (const char *)k.mv_data);
        s_stream *st = s_find(db, name);
        brk_consumer *c = st ? s_cons_add(st, ci->group) : NULL;
        if (c) {
            c->start = ci->config->start;
            c->start_seq = ci->config->start_seq;
            c->start_time_ms = ci->config->start_time_ms;
            c->ack_wait_ms = ci->config->ack_wait_ms;
            c->max_deliver = ci->config->max_deliver;
            c->max_ack_pending = ci->config->max_ack_pending;
            c->next_seq = ci->next_seq;
            c->dead_lettered = ci->dead_lettered;
            c->missed = ci->missed;
        }
        svc__broker__consumer_info__free_unpacked(ci, NULL);
    }
    mdb_cursor_close(cur);

    mdb_cursor_open(txn, db->d_pend, &cur);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        long sl = s_split(&k);
        if (sl < 0 || k.mv_size < (size_t)sl + 10 || v.mv_size != sizeof(s_pend_rec))
            continue;
        const char *rest = (const char *)k.mv_data + sl + 1;
        size_t restn = k.mv_size - (size_t)sl - 1;
        const char *z = memchr(rest, 0, restn);
        if (!z || (size_t)(rest + restn - z - 1) != 8)
            continue;
        char name[S_NAME_MAX + 1], group[BRK_GROUP_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)sl, (const char *)k.mv_data);
        snprintf(group, sizeof group, "%.*s", (int)(z - rest), rest);
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++)
            seq = (seq << 8) | (unsigned char)z[1 + i];
        s_stream *st = s_find(db, name);
        brk_consumer *c = st ? s_cons_find(st, group) : NULL;
        s_pend_rec r;
        memcpy(&r, v.mv_data, sizeof r);
        if (c)
            brk_pend_put(c, seq, r.deliveries, r.due_ms);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

/* ---- retention -------------------------------------------------------------------- */

/* Deletes the oldest event of st. */
static int s_delete_first(s_db *db, MDB_txn *txn, s_stream *st)
{
    Svc__Broker__Event *ev = s_get_event(db, txn, st, st->first_seq);
    s_key k = s_k_msg(st->name, st->first_seq);
    MDB_val kv = s_val(&k);
    int rc = mdb_del(txn, db->d_msgs, &kv, NULL);
    if (rc && rc != MDB_NOTFOUND) {
        if (ev)
            svc__broker__event__free_unpacked(ev, NULL);
        return rc;
    }
    if (ev) {
        st->bytes -= ev->body.len <= st->bytes ? ev->body.len : st->bytes;
        if (ev->id && ev->id[0]) {
            s_key dk = s_k2(st->name, ev->id);
            MDB_val dkv = s_val(&dk), dv;
            if (mdb_get(txn, db->d_dedup, &dkv, &dv) == 0 && dv.mv_size == sizeof(s_dedup_rec)) {
                s_dedup_rec r;
                memcpy(&r, dv.mv_data, sizeof r);
                if (r.seq == st->first_seq)
                    mdb_del(txn, db->d_dedup, &dkv, NULL);
            }
        }
        svc__broker__event__free_unpacked(ev, NULL);
    }
    st->first_seq++;
    st->msgs--;
    if (st->msgs) {
        Svc__Broker__Event *nx = s_get_event(db, txn, st, st->first_seq);
        st->first_time = nx ? nx->time_ms : st->first_time;
        if (nx)
            svc__broker__event__free_unpacked(nx, NULL);
    } else {
        st->bytes = 0;
    }
    return 0;
}

/* Applies st's count, bytes and age limits; true when it removed anything. */
static int s_trim(s_db *db, MDB_txn *txn, s_stream *st, int64_t now, bool *changed)
{
    while (st->msgs && ((st->max_msgs && st->msgs > st->max_msgs) ||
                        (st->max_bytes && st->bytes > st->max_bytes) ||
                        (st->max_age_ms && st->first_time < now - (int64_t)st->max_age_ms))) {
        int rc = s_delete_first(db, txn, st);
        if (rc)
            return rc;
        *changed = true;
    }
    return 0;
}

/* ---- appending ------------------------------------------------------------------- */

/* Stores ev (seq and time filled in here) at the end of st and applies retention. */
static int s_append(s_db *db, MDB_txn *txn, s_stream *st, Svc__Broker__Event *ev, int64_t now)
{
    ev->seq = st->last_seq + 1;
    ev->time_ms = now > st->last_time ? now : st->last_time;
    size_t len = svc__broker__event__get_packed_size(ev);
    s_key k = s_k_msg(st->name, ev->seq);
    MDB_val kv = s_val(&k), v = { len, NULL };
    int rc = mdb_put(txn, db->d_msgs, &kv, &v, MDB_RESERVE | MDB_APPEND);
    if (rc == MDB_KEYEXIST)   /* MDB_APPEND needs the key past every other: not across streams */
        rc = mdb_put(txn, db->d_msgs, &kv, &v, MDB_RESERVE);
    if (rc)
        return rc;
    svc__broker__event__pack(ev, v.mv_data);
    if (ev->id && ev->id[0]) {
        s_dedup_rec r = { ev->seq, ev->time_ms };
        s_key dk = s_k2(st->name, ev->id);
        MDB_val dkv = s_val(&dk), dv = { sizeof r, &r };
        if ((rc = mdb_put(txn, db->d_dedup, &dkv, &dv, 0)))
            return rc;
    }
    st->last_seq = ev->seq;
    st->last_time = ev->time_ms;
    if (st->msgs++ == 0) {
        st->first_seq = ev->seq;
        st->first_time = ev->time_ms;
    }
    st->bytes += ev->body.len;
    bool changed = false;
    st->dirty = true;   /* the stream record is written once per batch (s_batch) */
    return s_trim(db, txn, st, now, &changed);
}

static s_stream *s_stream_get(s_db *db, MDB_txn *txn, const char *name, int *rc)
{
    s_stream *st = s_find(db, name);
    *rc = 0;
    if (st)
        return st;
    st = s_stream_add(db, name);
    if (!st) {
        *rc = ENOMEM;
        return NULL;
    }
    st->max_msg_size = db->max_payload;
    *rc = s_put_stream(db, txn, st);
    return st;
}

/* ---- ops ------------------------------------------------------------------------- */

static int s_mdb_fail(brk_op *op, int rc)
{
    return brk_op_fail(op, rc == MDB_MAP_FULL ? 507 : 500, "event store: %s", mdb_strerror(rc));
}

static void s_op_publish(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    const Svc__Broker__PublishRequest *req = (const void *)op->req;
    Svc__Broker__PublishResponse *rsp = (void *)op->rsp;
    int rc;
    s_stream *st = s_find(db, req->stream);
    if (st && req->body.len > st->max_msg_size) {
        brk_op_fail(op, 413, "event of %zu bytes exceeds the limit of %u bytes of stream \"%s\"",
                    req->body.len, st->max_msg_size, st->name);
        return;
    }
    if (st && st->max_bytes && req->body.len > st->max_bytes) {
        brk_op_fail(op, 413, "event of %zu bytes exceeds max_bytes %llu of stream \"%s\"",
                    req->body.len, (unsigned long long)st->max_bytes, st->name);
        return;
    }
    if (st && req->id[0]) {
        s_key dk = s_k2(st->name, req->id);
        MDB_val dkv = s_val(&dk), dv;
        if (mdb_get(txn, db->d_dedup, &dkv, &dv) == 0 && dv.mv_size == sizeof(s_dedup_rec)) {
            s_dedup_rec r;
            memcpy(&r, dv.mv_data, sizeof r);
            if (r.time_ms >= now - (int64_t)st->dedup_window_ms) {
                rsp->seq = r.seq;
                rsp->duplicate = true;
                return;
            }
        }
    }
    if (!st && !(st = s_stream_get(db, txn, req->stream, &rc))) {
        s_mdb_fail(op, rc);
        return;
    }
    Svc__Broker__Event ev = SVC__BROKER__EVENT__INIT;
    ev.topic = req->topic;
    ev.id = req->id;
    ev.content_type = req->content_type;
    ev.metadata = req->metadata;
    ev.n_metadata = req->n_metadata;
    ev.body = req->body;
    if ((rc = s_append(db, txn, st, &ev, now))) {
        s_mdb_fail(op, rc);
        return;
    }
    rsp->seq = ev.seq;
}

static int s_fill_info(s_db *db, const s_stream *st, Svc__Broker__StreamInfo *si, bool cons)
{
    Svc__Broker__StreamConfig *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    svc__broker__stream_config__init(cfg);
    si->config = cfg;
    cfg->name = strdup(st->name);
    cfg->max_msgs = st->max_msgs;
    cfg->max_bytes = st->max_bytes;
    cfg->max_age_ms = st->max_age_ms;
    cfg->dedup_window_ms = st->dedup_window_ms;
    cfg->max_msg_size = st->max_msg_size;
    si->messages = st->msgs;
    si->bytes = st->bytes;
    si->first_seq = st->first_seq;
    si->last_seq = st->last_seq;
    si->first_time_ms = st->msgs ? st->first_time : 0;
    si->last_time_ms = st->last_time;
    if (!cfg->name)
        return -ENOMEM;
    si->consumers = calloc(st->n_cons ? st->n_cons : 1, sizeof *si->consumers);
    if (!si->consumers)
        return -ENOMEM;
    for (size_t i = 0; i < st->n_cons; i++) {
        const brk_consumer *c = st->cons[i];
        Svc__Broker__ConsumerInfo *ci = malloc(sizeof *ci);
        Svc__Broker__ConsumerConfig *cc = malloc(sizeof *cc);
        if (!ci || !cc) {
            free(ci);
            free(cc);
            return -ENOMEM;
        }
        svc__broker__consumer_info__init(ci);
        svc__broker__consumer_config__init(cc);
        si->consumers[si->n_consumers++] = ci;
        ci->config = cc;
        s_cons_config(c, cc);
        ci->group = strdup(c->group);
        ci->next_seq = c->next_seq;
        ci->ack_floor = brk_ack_floor(c);
        ci->pending = c->n_pend;
        ci->redelivered = brk_redelivered(c);
        ci->dead_lettered = c->dead_lettered;
        ci->missed = c->missed;
        if (!ci->group)
            return -ENOMEM;
    }
    return 0;
}

static void s_op_create(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    const Svc__Broker__CreateStreamRequest *req = (const void *)op->req;
    const Svc__Broker__StreamConfig *cfg = req->config;
    int rc;
    s_stream *st = s_stream_get(db, txn, cfg->name, &rc);
    if (!st) {
        s_mdb_fail(op, rc);
        return;
    }
    st->max_msgs = cfg->max_msgs;
    st->max_bytes = cfg->max_bytes;
    st->max_age_ms = cfg->max_age_ms;
    st->dedup_window_ms = cfg->dedup_window_ms ? cfg->dedup_window_ms : S_DEFAULT_DEDUP_MS;
    st->max_msg_size = cfg->max_msg_size ? cfg->max_msg_size : db->max_payload;
    bool changed = false;
    if ((rc = s_trim(db, txn, st, now, &changed)) || (rc = s_put_stream(db, txn, st))) {
        s_mdb_fail(op, rc);
        return;
    }
    if (s_fill_info(db, st, (void *)op->rsp, true) < 0)
        brk_op_fail(op, 500, "out of memory");
}

static void s_op_streams(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    Svc__Broker__StreamsResponse *rsp = (void *)op->rsp;
    rsp->streams = calloc(db->n_streams ? db->n_streams : 1, sizeof *rsp->streams);
    if (!rsp->streams) {
        brk_op_fail(op, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < db->n_streams; i++) {
        Svc__Broker__StreamInfo *si = malloc(sizeof *si);
        if (!si) {
            brk_op_fail(op, 500, "out of memory");
            return;
        }
        svc__broker__stream_info__init(si);
        rsp->streams[rsp->n_streams++] = si;
        if (s_fill_info(db, db->streams[i], si, true) < 0) {
            brk_op_fail(op, 500, "out of memory");
            return;
        }
    }
}

static void s_op_info(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    const Svc__Broker__StreamInfoRequest *req = (const void *)op->req;
    s_stream *st = s_find(db, req->stream);
    if (!st) {
        brk_op_fail(op, 404, "stream \"%s\" not found", req->stream);
        return;
    }
    if (s_fill_info(db, st, (void *)op->rsp, true) < 0)
        brk_op_fail(op, 500, "out of memory");
}

/* First seq of st stored at or after t (binary search: times never decrease). */
static uint64_t s_seq_at_time(s_db *db, MDB_txn *txn, const s_stream *st, int64_t t)
{
    uint64_t lo = st->first_seq, hi = st->last_seq + 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        Svc__Broker__Event *ev = s_get_event(db, txn, st, mid);
        int64_t et = ev ? ev->time_ms : INT64_MIN;
        if (ev)
            svc__broker__event__free_unpacked(ev, NULL);
        if (et < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The consumer's effective settings from a request (defaults applied). */
static void s_cons_from_cfg(brk_consumer *c, const Svc__Broker__ConsumerConfig *cc)
{
    c->start = cc ? (int)cc->start : 0;
    c->start_seq = cc ? cc->start_seq : 0;
    c->start_time_ms = cc ? cc->start_time_ms : 0;
    c->ack_wait_ms = cc && cc->ack_wait_ms ? cc->ack_wait_ms : S_DEFAULT_ACK_WAIT;
    c->max_deliver = cc && cc->max_deliver ? cc->max_deliver : S_DEFAULT_MAX_DELIVER;
    c->max_ack_pending = cc && cc->max_ack_pending ? cc->max_ack_pending : S_DEFAULT_MAX_ACK_PENDING;
}

/* Finds the group, creating it at its start position when new; NULL with op failed. */
static brk_consumer *s_consumer(s_db *db, MDB_txn *txn, s_stream *st, brk_op *op)
{
    const Svc__Broker__ConsumeRequest *req = (const void *)op->req;
    brk_consumer want;
    memset(&want, 0, sizeof want);
    s_cons_from_cfg(&want, req->config);
    brk_consumer *c = s_cons_find(st, req->group);
    if (c) {
        if (req->config && (c->start != want.start || c->start_seq != want.start_seq ||
                            c->start_time_ms != want.start_time_ms ||
                            c->ack_wait_ms != want.ack_wait_ms ||
                            c->max_deliver != want.max_deliver ||
                            c->max_ack_pending != want.max_ack_pending)) {
            brk_op_fail(op, 409, "consumer \"%s\" of stream \"%s\" exists with other options",
                        req->group, st->name);
            return NULL;
        }
        return c;
    }
    if (!(c = s_cons_add(st, req->group))) {
        brk_op_fail(op, 500, "out of memory");
        return NULL;
    }
    s_cons_from_cfg(c, req->config);
    switch (c->start) {
    case SVC__BROKER__START_POLICY__START_END:
        c->next_seq = st->last_seq + 1;
        break;
    case SVC__BROKER__START_POLICY__START_SEQ:
        c->next_seq = c->start_seq;
        break;
    case SVC__BROKER__START_POLICY__START_TIME:
        c->next_seq = s_seq_at_time(db, txn, st, c->start_time_ms);
        break;
    default:
        c->next_seq = st->first_seq;
        break;
    }
    int rc = s_put_cons(db, txn, st, c);
    if (rc) {
        s_mdb_fail(op, rc);
        return NULL;
    }
    return c;
}

/* Moves pending event p of c to st's dead-letter stream "<name>.dlq". */
static int s_dead_letter(s_db *db, MDB_txn *txn, s_stream *st, brk_consumer *c, size_t i,
                         int64_t now)
{
    uint64_t seq = c->pend[i].seq;
    uint32_t deliveries = c->pend[i].deliveries;
    Svc__Broker__Event *ev = s_get_event(db, txn, st, seq);
    int rc = 0;
    if (ev) {
        char dlq[S_NAME_MAX + 8];
        snprintf(dlq, sizeof dlq, "%s.dlq", st->name);
        s_stream *d = s_stream_get(db, txn, dlq, &rc);
        if (!d)
            goto out;
        /* Where it came from travels as metadata; the original id is kept. */
        char sseq[24], sdel[16];
        snprintf(sseq, sizeof sseq, "%llu", (unsigned long long)seq);
        snprintf(sdel, sizeof sdel, "%u", deliveries);
        Svc__MetadataEntry extra[4] = { SVC__METADATA_ENTRY__INIT, SVC__METADATA_ENTRY__INIT,
                                        SVC__METADATA_ENTRY__INIT, SVC__METADATA_ENTRY__INIT };
        const char *kv[4][2] = { { "dlq-stream", st->name }, { "dlq-seq", sseq },
                                 { "dlq-group", c->group }, { "dlq-deliveries", sdel } };
        size_t nm = ev->n_metadata + 4;
        Svc__MetadataEntry **md = malloc(nm * sizeof *md);
        if (!md) {
            rc = ENOMEM;
            goto out;
        }
        for (size_t k = 0; k < ev->n_metadata; k++)
            md[k] = ev->metadata[k];
        for (int k = 0; k < 4; k++) {
            extra[k].key = (char *)kv[k][0];
            extra[k].value = (char *)kv[k][1];
            md[ev->n_metadata + (size_t)k] = &extra[k];
        }
        Svc__MetadataEntry **orig = ev->metadata;
        size_t norig = ev->n_metadata;
        ev->metadata = md;
        ev->n_metadata = nm;
        char *oid = ev->id;
        ev->id = (char *)"";   /* not deduplicated in the dead-letter stream */
        rc = s_append(db, txn, d, ev, now);
        ev->id = oid;
        ev->metadata = orig;
        ev->n_metadata = norig;
        free(md);
    }
out:
    if (ev)
        svc__broker__event__free_unpacked(ev, NULL);
    if (rc)
        return rc;
    c->dead_lettered++;
    brk_pend_remove(c, i);
    if ((rc = s_del_pend(db, txn, st, c, seq)))
        return rc;
    return s_put_cons(db, txn, st, c);
}

/* Drops what retention removed from under c: position and pending; counts it missed. */
static int s_catch_up(s_db *db, MDB_txn *txn, s_stream *st, brk_consumer *c, bool *dirty)
{
    int rc;
    while (c->n_pend && c->pend[0].seq < st->first_seq) {
        uint64_t seq = c->pend[0].seq;
        brk_pend_remove(c, 0);
        c->missed++;
        c->missed_unreported++;
        *dirty = true;
        if ((rc = s_del_pend(db, txn, st, c, seq)))
            return rc;
    }
    if (c->next_seq < st->first_seq) {
        c->missed += st->first_seq - c->next_seq;
        c->missed_unreported += st->first_seq - c->next_seq;
        c->next_seq = st->first_seq;
        *dirty = true;
    }
    return 0;
}

/* Adds event seq of st to the response with the given delivery count. */
static int s_emit(s_db *db, MDB_txn *txn, s_stream *st, Svc__Broker__ConsumeResponse *rsp,
                  uint64_t seq, uint32_t delivery)
{
    Svc__Broker__Event *ev = s_get_event(db, txn, st, seq);
    if (!ev)
        return 0;
    if (ev->stream && ev->stream != protobuf_c_empty_string)
        free(ev->stream);
    ev->stream = strdup(st->name);
    ev->delivery = delivery;
    if (!ev->stream) {
        ev->stream = (char *)protobuf_c_empty_string;
        svc__broker__event__free_unpacked(ev, NULL);
        return ENOMEM;
    }
    rsp->events[rsp->n_events++] = ev;
    return 0;
}

/* One fetch; returns true when the op is finished, false when it should wait. */
static bool s_consume(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    const Svc__Broker__ConsumeRequest *req = (const void *)op->req;
    Svc__Broker__ConsumeResponse *rsp = (void *)op->rsp;
    s_stream *st = s_find(db, req->stream);
    if (!st) {
        brk_op_fail(op, 404, "stream \"%s\" not found", req->stream);
        return true;
    }
    brk_consumer *c = s_consumer(db, txn, st, op);
    if (!c)
        return true;
    size_t batch = req->batch ? req->batch : 1;
    if (!rsp->events && !(rsp->events = calloc(batch, sizeof *rsp->events))) {
        brk_op_fail(op, 500, "out of memory");
        return true;
    }
    bool dirty = false;
    int rc = 0;
    if (op->stage == 0) {   /* acks carried by the fetch: once, before waiting */
        op->stage = 1;
        for (size_t i = 0; i < req->n_acks && rc == 0; i++) {
            const Svc__Broker__AckItem *a = req->acks[i];
            if (brk_ack_check(c, a->seq, a->delivery) != BRK_ACK_OK)
                continue;
            brk_pend_remove(c, (size_t)brk_pend_find(c, a->seq));
            rc = s_del_pend(db, txn, st, c, a->seq);
            rsp->acked++;
        }
    }
    if (rc == 0)
        rc = s_catch_up(db, txn, st, c, &dirty);
    /* Due redeliveries first, in sequence order; dead-letter those out of attempts. */
    for (size_t i = 0; rc == 0 && i < c->n_pend && rsp->n_events < batch;) {
        brk_pend *p = &c->pend[i];
        if (p->due_ms > now) {
            i++;
            continue;
        }
        if (p->deliveries >= c->max_deliver) {
            rc = s_dead_letter(db, txn, st, c, i, now);
            continue;
        }
        p->deliveries++;
        p->due_ms = now + c->ack_wait_ms;
        if (!(rc = s_put_pend(db, txn, st, c, p)))
            rc = s_emit(db, txn, st, rsp, p->seq, p->deliveries);
        i++;
    }
    while (rc == 0 && rsp->n_events < batch && c->n_pend < c->max_ack_pending &&
           c->next_seq <= st->last_seq) {
        uint64_t seq = c->next_seq++;
        dirty = true;
        if ((rc = brk_pend_put(c, seq, 1, now + c->ack_wait_ms)) < 0)
            break;
        long i = brk_pend_find(c, seq);
        if (!(rc = s_put_pend(db, txn, st, c, &c->pend[i])))
            rc = s_emit(db, txn, st, rsp, seq, 1);
    }
    if (rc == 0 && dirty)
        rc = s_put_cons(db, txn, st, c);
    if (rc) {
        s_mdb_fail(op, rc < 0 ? ENOMEM : rc);
        return true;
    }
    rsp->missed += c->missed_unreported;
    c->missed_unreported = 0;
    rsp->first_seq = st->first_seq;
    /* Acks it carried are only durable with this commit: answer now rather than wait. */
    return rsp->n_events > 0 || rsp->missed > 0 || rsp->acked > 0 || now >= op->wait_until;
}

static void s_op_ack(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    const Svc__Broker__AckRequest *req = (const void *)op->req;
    Svc__Broker__AckResponse *rsp = (void *)op->rsp;
    s_stream *st = s_find(db, req->stream);
    brk_consumer *c = st ? s_cons_find(st, req->group) : NULL;
    if (!st || !c) {
        brk_op_fail(op, 404, !st ? "stream \"%s\" not found" : "consumer \"%s\" not found",
                    !st ? req->stream : req->group);
        return;
    }
    int rc = 0;
    for (size_t i = 0; i < req->n_acks && rc == 0; i++) {
        const Svc__Broker__AckItem *a = req->acks[i];
        switch (brk_ack_check(c, a->seq, a->delivery)) {
        case BRK_ACK_OK: {
            long k = brk_pend_find(c, a->seq);
            rsp->acked++;
            if (req->nack) {
                c->pend[k].due_ms = now + req->delay_ms;
                rc = s_put_pend(db, txn, st, c, &c->pend[k]);
            } else {
                brk_pend_remove(c, (size_t)k);
                rc = s_del_pend(db, txn, st, c, a->seq);
            }
            break;
        }
        case BRK_ACK_STALE:
            rsp->stale++;
            break;
        case BRK_ACK_UNKNOWN:
            rsp->unknown++;
            break;
        }
    }
    if (rc) {
        s_mdb_fail(op, rc);
        return;
    }
    if (req->n_acks == 1 && rsp->stale) {
        long k = brk_pend_find(c, req->acks[0]->seq);
        brk_op_fail(op, 409, "stale %s for delivery %u of event %llu: it was delivered again "
                    "(delivery %u)", req->nack ? "nack" : "ack", req->acks[0]->delivery,
                    (unsigned long long)req->acks[0]->seq, k >= 0 ? c->pend[k].deliveries : 0);
    }
}

/* ---- the batch ------------------------------------------------------------------- */

/* Applies one op; false when it is a consume that parks to wait. */
static bool s_apply(s_db *db, MDB_txn *txn, brk_op *op, int64_t now)
{
    switch (op->kind) {
    case BRK_OP_PUBLISH:
        s_op_publish(db, txn, op, now);
        return true;
    case BRK_OP_CREATE_STREAM:
        s_op_create(db, txn, op, now);
        return true;
    case BRK_OP_STREAMS:
        s_op_streams(db, txn, op, now);
        return true;
    case BRK_OP_STREAM_INFO:
        s_op_info(db, txn, op, now);
        return true;
    case BRK_OP_CONSUME:
        return s_consume(db, txn, op, now);
    case BRK_OP_ACK:
        s_op_ack(db, txn, op, now);
        return true;
    }
    brk_op_fail(op, 500, "unknown operation %d", (int)op->kind);
    return true;
}

static int64_t s_batch(void *ctx, brk_op **ops, size_t n)
{
    s_db *db = ctx;
    int64_t now = s_now();
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    brk_op *done = NULL, **done_tail = &done;
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            s_mdb_fail(ops[i], rc);
            ops[i]->done(ops[i]);
        }
        return 1000;
    }
    /* Waiting consumes first, so events become theirs in arrival order. */
    brk_op *still = NULL, *w = db->waiting;
    db->waiting = NULL;
    while (w) {
        brk_op *nx = w->next;
        if (s_consume(db, txn, w, now)) {
            *done_tail = w;
            done_tail = &w->next;
        } else {
            w->next = still;
            still = w;
        }
        w = nx;
    }
    bool published = false;
    for (size_t i = 0; i < n; i++) {
        published |= ops[i]->kind == BRK_OP_PUBLISH;
        if (s_apply(db, txn, ops[i], now)) {
            *done_tail = ops[i];
            done_tail = &ops[i]->next;
        } else {
            ops[i]->next = still;
            still = ops[i];
        }
    }
    /* Events published just now go to the waiting fetches in this same commit. */
    if (published) {
        w = still;
        still = NULL;
        while (w) {
            brk_op *nx = w->next;
            if (s_consume(db, txn, w, now)) {
                *done_tail = w;
                done_tail = &w->next;
            } else {
                w->next = still;
                still = w;
            }
            w = nx;
        }
    }
    *done_tail = NULL;
    /* Age retention on every turn; then the records of streams that changed. */
    for (size_t i = 0; i < db->n_streams && rc == 0; i++) {
        bool ch = false;
        s_stream *st = db->streams[i];
        if (st->max_age_ms && (rc = s_trim(db, txn, st, now, &ch)) == 0 && ch)
            st->dirty = true;
        if (rc == 0 && st->dirty)
            rc = s_put_stream(db, txn, st);
        st->dirty = false;
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) {
        svc_error_log("event store commit failed; reloading\terror=\"%s\"", mdb_strerror(rc));
        for (brk_op *d = done; d; d = d->next)
            if (!d->code)
                s_mdb_fail(d, rc);
        s_load(db);
    }
    db->waiting = still;
    while (done) {
        brk_op *nx = done->next;
        done->done(done);
        done = nx;
    }
    bool ages = false;
    for (size_t i = 0; i < db->n_streams; i++)
        ages |= db->streams[i]->max_age_ms != 0;
    return db->waiting || ages ? S_TICK_MS : -1;
}

/* ---- the backend ----------------------------------------------------------------- */

static void s_submit(brk_backend *b, brk_op *op)
{
    s_db *db = (s_db *)b;
    brk_commit_submit(db->commit, op);
}

static uint64_t s_batches(const brk_backend *b)
{
    return brk_commit_batches(((const s_db *)b)->commit);
}

static uint64_t s_ops(const brk_backend *b)
{
    return brk_commit_ops(((const s_db *)b)->commit);
}

static void s_close(brk_backend **bp)
{
    s_db *db = (s_db *)*bp;
    if (!db)
        return;
    *bp = NULL;
    brk_commit_stop(&db->commit);
    for (brk_op *w = db->waiting, *nx; w; w = nx) {
        nx = w->next;
        brk_op_fail(w, 503, "svc.broker is shutting down");
        w->done(w);
    }
    s_state_free(db);
    mdb_env_close(db->env);
    close(db->lock_fd);
    free(db->dir);
    free(db);
}

static const brk_backend_vt s_vt = { "lmdb", s_submit, s_batches, s_ops, s_close };

int brk_lmdb_open(brk_backend **out, const brk_lmdb_cfg *cfg)
{
    if (mkdir(cfg->dir, 0750) < 0 && errno != EEXIST) {
        int e = errno;
        svc_error_log("cannot create data directory\tdir=\"%s\" error=\"%s\"", cfg->dir, strerror(e));
        return -e;
    }
    s_db *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    db->base.vt = &s_vt;
    db->max_payload = cfg->max_payload;
    db->dir = strdup(cfg->dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/brokerd.lock", cfg->dir);
    int rc;
    db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (db->lock_fd < 0) {
        rc = -errno;
        svc_error_log("cannot open lock file\tpath=\"%s\" error=\"%s\"", path, strerror(-rc));
        goto out_free;
    }
    while ((rc = flock(db->lock_fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = -errno;
        svc_error_log("data directory \"%s\" is in use by another brokerd", cfg->dir);
        goto out_lock;
    }
    if ((rc = mdb_env_create(&db->env)) || (rc = mdb_env_set_maxdbs(db->env, 8)) ||
        (rc = mdb_env_set_mapsize(db->env, cfg->map_size)) ||
        (rc = mdb_env_open(db->env, cfg->dir, MDB_NOTLS, 0640))) {
        svc_error_log("cannot open event store\tdir=\"%s\" error=\"%s\"", cfg->dir, mdb_strerror(rc));
        rc = rc > 0 ? -rc : -EIO;
        goto out_env;
    }
    int dead = 0;
    mdb_reader_check(db->env, &dead);
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_dbi_open(txn, "streams", MDB_CREATE, &db->d_streams)) ||
            (rc = mdb_dbi_open(txn, "msgs", MDB_CREATE, &db->d_msgs)) ||
            (rc = mdb_dbi_open(txn, "dedup", MDB_CREATE, &db->d_dedup)) ||
            (rc = mdb_dbi_open(txn, "consumers", MDB_CREATE, &db->d_cons)) ||
            (rc = mdb_dbi_open(txn, "pending", MDB_CREATE, &db->d_pend)))
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    }
    if (rc || (rc = s_load(db))) {
        svc_error_log("cannot read event store\tdir=\"%s\" error=\"%s\"", cfg->dir, mdb_strerror(rc));
        rc = -EIO;
        goto out_env;
    }
    if ((rc = brk_commit_start(&db->commit, s_batch, db)) < 0)
        goto out_env;
    svc_info("event store open\tdir=%s streams=%zu", cfg->dir, db->n_streams);
    *out = &db->base;
    return 0;

out_env:
    s_state_free(db);
    if (db->env)
        mdb_env_close(db->env);
out_lock:
    close(db->lock_fd);
out_free:
    free(db->dir);
    free(db);
    return rc;
}
