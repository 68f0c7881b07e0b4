/*
 * Unit tests: stored's write-ahead log (stored/wal.h) — records written,
 * then read back by a fresh open and replay (torn tails, both files, gaps),
 * and the payload codec of changes.
 */
#include "testlib.h"
#include "../../stored/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAXREC 64   /* records one test writes at most */
#define S_MAXLEN 300  /* longest payload written */

static uint64_t s_rng = 0x243f6a8885a308d3ull;

static uint32_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}

/* ---- a log in a temp dir, and what was written to it ---------------------------- */

typedef struct s_rec {
    uint64_t lsn;
    int file;                  /* wal.0 or wal.1 */
    uint64_t off;              /* of the record's header in its file */
    size_t len;
    unsigned char p[S_MAXLEN];
} s_rec;

typedef struct s_log {
    char dir[64];
    kv_wal *w;
    s_rec recs[S_MAXREC];
    size_t n;
} s_log;

static bool s_log_open(s_log *g)
{
    char err[256] = "";
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "/tmp/test-wal-XXXXXX");
    if (!mkdtemp(g->dir))
        return false;
    int rc = kv_wal_open(g->dir, &g->w, err, sizeof err);
    if (rc)
        fprintf(stderr, "kv_wal_open: %s\n", err);
    return rc == 0;
}

/* Opens a log in a temp dir into g, or fails the test and returns. */
#define S_LOG_OPEN(g)                                      \
    do {                                                   \
        if (!s_log_open(&(g))) {                           \
            CHECK(!"cannot open a log in a temp dir");     \
            return;                                        \
        }                                                  \
    } while (0)

/* Closes the log and opens it again, as a restart would. */
static bool s_log_reopen(s_log *g)
{
    char err[256] = "";
    kv_wal_close(&g->w);
    int rc = kv_wal_open(g->dir, &g->w, err, sizeof err);
    if (rc)
        fprintf(stderr, "kv_wal_open: %s\n", err);
    return rc == 0;
}

static void s_log_remove(s_log *g)
{
    char path[96];
    kv_wal_close(&g->w);
    CHECK(g->w == NULL);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/wal.%d", g->dir, i);
        unlink(path);
    }
    rmdir(g->dir);
}

static char *s_path(const s_log *g, int file)
{
    static char path[96];
    snprintf(path, sizeof path, "%s/wal.%d", g->dir, file);
    return path;
}

/* Appends n records of random payloads (of at least minlen bytes; 0 now and then) to the current file. */
static void s_append(s_log *g, int file, size_t n, size_t minlen)
{
    for (size_t i = 0; i < n && g->n < S_MAXREC; i++) {
        s_rec *r = &g->recs[g->n];
        r->len = s_rand() % 5 == 0 ? 0 : 1 + s_rand() % S_MAXLEN;
        if (r->len < minlen)
            r->len = minlen;
        for (size_t j = 0; j < r->len; j++)
            r->p[j] = (unsigned char)s_rand();
        r->file = file;
        r->off = kv_wal_used(g->w);
        unsigned char *p = kv_wal_reserve(g->w, r->len);
        CHECK(p != NULL);
        if (!p)
            return;
        memcpy(p, r->p, r->len);
        CHECK_INT(kv_wal_append(g->w, r->len, &r->lsn), 0);
        CHECK_INT(kv_wal_used(g->w), r->off + KV_WAL_HEADER + r->len);
        g->n++;
    }
}

/* What a replay handed over. */
typedef struct s_got {
    uint64_t lsn[S_MAXREC];
    size_t len[S_MAXREC];
    unsigned char p[S_MAXREC][S_MAXLEN];
    size_t n;
    size_t stop_at;            /* fail the call with -ECANCELED when n reaches it (0: never) */
} s_got;

static int s_collect(void *arg, uint64_t lsn, const unsigned char *payload, size_t len)
{
    s_got *got = arg;
    if (got->stop_at && got->n + 1 == got->stop_at)
        return -ECANCELED;
    if (got->n >= S_MAXREC || len > S_MAXLEN)
        return -E2BIG;
    got->lsn[got->n] = lsn;
    got->len[got->n] = len;
    memcpy(got->p[got->n], payload, len);
    got->n++;
    return 0;
}

/* The replay after `after` hands over exactly recs[from..to) and ends with rc 0. */
static void s_expect(s_log *g, uint64_t after, size_t from, size_t to)
{
    static s_got got;
    memset(&got, 0, sizeof got);
    char err[256] = "";
    uint64_t last = 12345;
    int rc = kv_wal_replay(g->w, after, s_collect, &got, &last, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "replay: %s\n", err);
    CHECK_INT(got.n, to - from);
    for (size_t i = 0; i < got.n && from + i < to; i++) {
        const s_rec *r = &g->recs[from + i];
        CHECK_INT(got.lsn[i], r->lsn);
        CHECK_INT(got.len[i], r->len);
        CHECK(memcmp(got.p[i], r->p, r->len) == 0);
    }
    CHECK_INT(last, to > from ? g->recs[to - 1].lsn : after);
}

/* ---- replay ------------------------------------------------------------------------ */

TEST(replay_returns_what_was_appended)
{
    s_log g;
    S_LOG_OPEN(g);
    struct stat st;
    CHECK(stat(s_path(&g, 0), &st) == 0 && st.st_size == KV_WAL_FILE_BYTES);
    CHECK(stat(s_path(&g, 1), &st) == 0 && st.st_size == KV_WAL_FILE_BYTES);
    s_expect(&g, 0, 0, 0);   /* a new log holds nothing */

    kv_wal_start(g.w, 1);
    s_append(&g, 0, 20, 0);
    for (size_t i = 0; i < g.n; i++)
        CHECK_INT(g.recs[i].lsn, i + 1);
    CHECK(s_log_reopen(&g));
    s_expect(&g, 0, 0, 20);
    for (size_t after = 1; after <= 20; after++)
        s_expect(&g, after, after, 20);
    s_expect(&g, 25, 0, 0);   /* nothing past the end: last stays `after` */

    /* fn's code stops the replay and comes back; last is the record before. */
    static s_got got;
    memset(&got, 0, sizeof got);
    got.stop_at = 4;
    char err[256] = "";
    uint64_t last = 0;
    CHECK_INT(kv_wal_replay(g.w, 0, s_collect, &got, &last, err, sizeof err), -ECANCELED);
    CHECK_INT(got.n, 3);
    CHECK_INT(last, 3);
    CHECK(strstr(err, "record 4") != NULL);
    s_log_remove(&g);
}

/* A restart after a replay appends from wal.0's start with the next LSN. */
TEST(start_after_replay)
{
    s_log g;
    S_LOG_OPEN(g);
    kv_wal_start(g.w, 41);
    s_append(&g, 0, 3, 0);
    CHECK_INT(g.recs[0].lsn, 41);
    CHECK(s_log_reopen(&g));
    s_expect(&g, 40, 0, 3);
    kv_wal_start(g.w, 44);
    CHECK_INT(kv_wal_used(g.w), 0);
    g.n = 0;                   /* the old records are overwritten from the start */
    s_append(&g, 0, 2, 0);
    CHECK_INT(g.recs[0].lsn, 44);
    CHECK(s_log_reopen(&g));
    s_expect(&g, 43, 0, 2);
    s_log_remove(&g);
}

/* A record cut short or with its last bytes changed is not handed over; the ones before are. */
TEST(torn_last_record)
{
    for (int how = 0; how < 3; how++) {
        s_log g;
        S_LOG_OPEN(g);
        kv_wal_start(g.w, 1);
        s_append(&g, 0, 5, 0);
        s_append(&g, 0, 1, 2);   /* the torn one needs a payload to tear */
        const s_rec *r = &g.recs[g.n - 1];
        kv_wal_close(&g.w);
        int fd = open(s_path(&g, 0), O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0);
        uint64_t end = r->off + KV_WAL_HEADER + r->len;
        if (how == 0) {          /* cut inside the payload; open refills the file with zeros */
            CHECK(ftruncate(fd, (off_t)(end - 1 - r->len / 2)) == 0);
        } else if (how == 1) {   /* its last byte flipped */
            unsigned char b;
            CHECK(pread(fd, &b, 1, (off_t)end - 1) == 1);
            b ^= 0x5a;
            CHECK(pwrite(fd, &b, 1, (off_t)end - 1) == 1);
        } else {                 /* only part of its header made it */
            CHECK(ftruncate(fd, (off_t)(r->off + KV_WAL_HEADER / 2)) == 0);
        }
        close(fd);
        CHECK(s_log_reopen(&g));
        struct stat st;
        CHECK(stat(s_path(&g, 0), &st) == 0 && st.st_size == KV_WAL_FILE_BYTES);
        s_expect(&g, 0, 0, g.n - 1);
        s_expect(&g, 2, 2, g.n - 1);
        s_log_remove(&g);
    }
}

/* Records of both files come back in LSN order, whichever file holds the older ones. */
TEST(replay_across_both_files)
{
    s_log g;
    S_LOG_OPEN(g);
    kv_wal_start(g.w, 1);
    s_append(&g, 0, 5, 0);                  /* 1..5 in wal.0 */
    kv_wal_switch(g.w);
    CHECK_INT(kv_wal_used(g.w), 0);
    s_append(&g, 1, 4, 0);                  /* 6..9 in wal.1 */
    CHECK_INT(g.recs[5].lsn, 6);
    CHECK(s_log_reopen(&g));
    s_expect(&g, 0, 0, 9);
    s_expect(&g, 3, 3, 9);
    s_expect(&g, 5, 5, 9);
    s_expect(&g, 7, 7, 9);

    /* Checkpointed up to 5: wal.0 is overwritten from its start with 10..12. */
    memmove(g.recs, g.recs + 5, 4 * sizeof *g.recs);
    g.n = 4;
    kv_wal_start(g.w, 10);
    s_append(&g, 0, 3, 0);
    CHECK_INT(g.recs[4].lsn, 10);
    CHECK(s_log_reopen(&g));
    s_expect(&g, 5, 0, 7);   /* 6..9 from wal.1, then 10..12 from wal.0 */
    s_expect(&g, 9, 4, 7);
    s_expect(&g, 11, 6, 7);
    s_log_remove(&g);
}

/*
 * A file overwritten from its start still holds an older cycle's records
 * past the new ones; when one starts right where the new ones end it ends
 * the file (its LSN does not follow), it is no gap.
 */
TEST(older_cycle_ends_a_file)
{
    s_log g;
    S_LOG_OPEN(g);
    kv_wal_start(g.w, 1);
    s_append(&g, 0, 5, S_MAXLEN);   /* 1..5 in wal.0, all of one length */
    kv_wal_switch(g.w);
    s_append(&g, 1, 2, 0);          /* 6..7 in wal.1 */
    kv_wal_start(g.w, 8);
    g.n = 7;
    s_append(&g, 0, 2, S_MAXLEN);   /* 8..9 over 1..2: wal.0 is 8 9 3 4 5 */
    CHECK_INT(g.recs[8].lsn, 9);
    CHECK_INT(g.recs[8].off, g.recs[1].off);
    CHECK(s_log_reopen(&g));
    s_expect(&g, 7, 7, 9);
    s_expect(&g, 5, 5, 9);
    s_log_remove(&g);
}

/*
 * Bytes an older pass over a file left behind do not continue the chain
 * even when their LSN would: a second pass from LSN 2 writes 2, 3 over the
 * first pass's 2, 3, and the first pass's 4, 5 that follow are stale.
 */
TEST(older_pass_with_the_next_lsn_ends_a_file)
{
    s_log g;
    S_LOG_OPEN(g);
    kv_wal_start(g.w, 2);
    s_append(&g, 0, 4, S_MAXLEN);   /* first pass: 2..5, all of one length */
    kv_wal_start(g.w, 2);
    g.n = 0;
    s_append(&g, 0, 2, S_MAXLEN);   /* second pass: 2, 3; the first pass's 4 follows */
    CHECK(s_log_reopen(&g));
    s_expect(&g, 1, 0, 2);
    s_log_remove(&g);
}

/* Records after `after` that are missing make the replay fail with a reason. */
TEST(gap_is_an_error)
{
    s_log g;
    S_LOG_OPEN(g);
    kv_wal_start(g.w, 1);
    s_append(&g, 0, 3, 0);     /* 1..3 in wal.0 */
    kv_wal_switch(g.w);
    s_append(&g, 1, 3, 0);     /* 4..6 in wal.1 */
    kv_wal_start(g.w, 10);     /* 10 overwrites 1 in wal.0; 7..9 never written */
    g.n = 3;
    s_append(&g, 0, 1, 0);
    CHECK_INT(g.recs[3].lsn, 10);
    CHECK(s_log_reopen(&g));

    static s_got got;
    char err[256] = "";
    uint64_t last = 0;
    memset(&got, 0, sizeof got);
    CHECK_INT(kv_wal_replay(g.w, 3, s_collect, &got, &last, err, sizeof err), -EIO);
    CHECK_INT(got.n, 0);       /* the gap is found before anything is handed over */
    CHECK_INT(last, 3);
    CHECK(strstr(err, "records missing") != NULL);

    memset(&got, 0, sizeof got);
    err[0] = 0;
    CHECK_INT(kv_wal_replay(g.w, 0, s_collect, &got, &last, err, sizeof err), -EIO);
    CHECK_INT(got.n, 0);       /* 1..3 are gone: the first record left is 4 */
    CHECK(strstr(err, "records missing") != NULL);

    s_expect(&g, 9, 3, 4);     /* from 9 on nothing is missing */
    s_log_remove(&g);
}

/* ---- payloads ------------------------------------------------------------------------ */

#define S_NCH 40

typedef struct s_changes {
    kv_change c[S_NCH];
    unsigned char key[S_NCH][512];
    unsigned char val[S_NCH][1024];
    size_t n;
    size_t got;           /* changes decoded and matched so far */
    bool ok;
    int stop_at;          /* return 7 from the callback on this change (1-based; 0: never) */
} s_changes;

static int s_match(void *arg, const kv_change *c)
{
    s_changes *m = arg;
    if (m->stop_at && (int)m->got + 1 == m->stop_at)
        return 7;
    const kv_change *w = m->got < m->n ? &m->c[m->got] : NULL;
    size_t wv = w && !w->del ? w->vlen : 0;
    if (!w || c->table != w->table || c->del != w->del || c->klen != w->klen ||
        memcmp(c->key, w->key, c->klen) != 0 || c->vlen != wv ||
        (wv && memcmp(c->val, w->val, wv) != 0))
        m->ok = false;
    m->got++;
    return 0;
}

static void s_rand_changes(s_changes *m)
{
    m->n = 1 + s_rand() % S_NCH;
    for (size_t i = 0; i < m->n; i++) {
        kv_change *c = &m->c[i];
        c->table = s_rand() % KV_VIEW_TABLES;
        c->del = s_rand() % 3 == 0;
        c->klen = s_rand() % 8 == 0 ? 511 : 1 + s_rand() % 20;
        c->vlen = s_rand() % 8 == 0 ? 1024 : s_rand() % 40;   /* a delete's vlen is not encoded */
        for (size_t j = 0; j < c->klen; j++)
            m->key[i][j] = (unsigned char)s_rand();
        for (size_t j = 0; j < c->vlen; j++)
            m->val[i][j] = (unsigned char)s_rand();
        c->key = m->key[i];
        c->val = m->val[i];
    }
}

/* Encodes m into buf; bounds[i] is where change i ends.  The payload's length. */
static size_t s_encode(const s_changes *m, unsigned char *buf, size_t *bounds)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < m->n; i++) {
        unsigned char *q = kv_wal_put_change(p, &m->c[i]);
        CHECK_INT(q - p, kv_wal_change_size(&m->c[i]));
        CHECK_INT(kv_wal_change_size(&m->c[i]),
                  8 + m->c[i].klen + (m->c[i].del ? 0 : m->c[i].vlen));
        p = q;
        bounds[i] = (size_t)(p - buf);
    }
    return (size_t)(p - buf);
}

static unsigned char s_buf[S_NCH * (8 + 512 + 1024)];

TEST(changes_round_trip)
{
    static s_changes m;
    size_t bounds[S_NCH];
    for (int round = 0; round < 200; round++) {
        memset(&m, 0, sizeof m);
        s_rand_changes(&m);
        m.ok = true;
        size_t len = s_encode(&m, s_buf, bounds);
        CHECK_INT(kv_wal_changes(s_buf, len, s_match, &m), 0);
        CHECK(m.ok);
        CHECK_INT(m.got, m.n);

        /* Cut anywhere: whole only at a change's end; the changes before come out first. */
        size_t cut = s_rand() % len, whole = 0;
        while (whole < m.n && bounds[whole] <= cut)
            whole++;
        m.got = 0;
        m.ok = true;
        int rc = kv_wal_changes(s_buf, cut, s_match, &m);
        CHECK_INT(rc, whole && bounds[whole - 1] == cut ? 0 : cut == 0 ? 0 : -EBADMSG);
        CHECK(m.ok);
        CHECK_INT(m.got, whole);
    }
    m.got = 0;
    m.ok = true;
    CHECK_INT(kv_wal_changes(s_buf, 0, s_match, &m), 0);   /* an empty payload: no changes */
    CHECK_INT(m.got, 0);

    /* The callback's code stops the decoding and comes back. */
    memset(&m, 0, sizeof m);
    while (m.n < 3)
        s_rand_changes(&m);
    size_t len = s_encode(&m, s_buf, bounds);
    m.ok = true;
    m.stop_at = 2;
    CHECK_INT(kv_wal_changes(s_buf, len, s_match, &m), 7);
    CHECK_INT(m.got, 1);
    CHECK(m.ok);
}

static int s_count(void *arg, const kv_change *c)
{
    ++*(int *)arg;
    return 0;
}

/* A payload of one change (header fields given), key "k..." and value "v..." following. */
static size_t s_one(unsigned char *p, unsigned table, unsigned del, unsigned klen, uint32_t vlen,
                    size_t key_bytes, size_t val_bytes)
{
    p[0] = (unsigned char)table;
    p[1] = (unsigned char)del;
    p[2] = (unsigned char)klen;
    p[3] = (unsigned char)(klen >> 8);
    for (int i = 0; i < 4; i++)
        p[4 + i] = (unsigned char)(vlen >> (8 * i));
    memset(p + 8, 'k', key_bytes);
    memset(p + 8 + key_bytes, 'v', val_bytes);
    return 8 + key_bytes + val_bytes;
}

TEST(changes_reject_malformed)
{
    unsigned char p[2048];
    int n = 0;
    size_t len = s_one(p, 1, 0, 3, 2, 3, 2);
    CHECK_INT(kv_wal_changes(p, len, s_count, &n), 0);   /* the well-formed one, for contrast */
    CHECK_INT(n, 1);
    n = 0;
    len = s_one(p, 1, 1, 3, 0, 3, 0);
    CHECK_INT(kv_wal_changes(p, len, s_count, &n), 0);
    CHECK_INT(n, 1);
    n = 0;
    len = s_one(p, 7, 0, 511, 0, 511, 0);                 /* the last table, the longest key */
    CHECK_INT(kv_wal_changes(p, len, s_count, &n), 0);
    CHECK_INT(n, 1);

    struct { const char *what; unsigned table, del, klen; uint32_t vlen; size_t kb, vb, cut; } bad[] = {
        { "truncated header", 1, 0, 3, 2, 3, 2, 5 },
        { "one byte", 1, 0, 3, 2, 3, 2, 1 },
        { "key past the end", 1, 0, 10, 0, 3, 0, 0 },
        { "value past the end", 1, 0, 3, 20, 3, 2, 0 },
        { "value length huge", 1, 0, 3, 0xffffffffu, 3, 2, 0 },
        { "table out of range", KV_VIEW_TABLES, 0, 3, 2, 3, 2, 0 },
        { "table 255", 255, 0, 3, 2, 3, 2, 0 },
        { "empty key", 1, 0, 0, 2, 0, 2, 0 },
        { "over-long key", 1, 0, 512, 0, 512, 0, 0 },
        { "delete with a value", 1, 1, 3, 2, 3, 2, 0 },
        { "kind 2", 1, 2, 3, 2, 3, 2, 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* After a good change: the good one is handed over, then the bad one refused. */
        size_t good = s_one(p, 2, 0, 1, 1, 1, 1);
        len = good + s_one(p + good, bad[i].table, bad[i].del, bad[i].klen, bad[i].vlen, bad[i].kb,
                           bad[i].vb);
        if (bad[i].cut)
            len = good + bad[i].cut;
        n = 0;
        int rc = kv_wal_changes(p, len, s_count, &n);
        if (rc != -EBADMSG || n != 1)
            test_fail(__FILE__, __LINE__, "%s: rc %d, %d changes", bad[i].what, rc, n);
    }
}

static const test_case tests[] = {
    T(replay_returns_what_was_appended), T(start_after_replay), T(torn_last_record),
    T(replay_across_both_files), T(older_cycle_ends_a_file), T(older_pass_with_the_next_lsn_ends_a_file),
    T(gap_is_an_error), T(changes_round_trip),
    T(changes_reject_malformed), { NULL, NULL },
};

int main(int argc, char **argv)
{
    return test_main("wal", tests, argc, argv);
}
