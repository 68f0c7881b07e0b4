/*
 * stored/wal.c — the write-ahead log (see wal.h).
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "svc/error.h"
#include "svc/log.h"

#define S_MAGIC 0x57435653u   /* "SVCW" little-endian */

struct kv_wal {
    int fd[2];               /* wal.0, wal.1 */
    int cur;                 /* the file appends go to */
    uint64_t off;            /* where the next record goes in it */
    uint64_t next;           /* LSN of the next record */
    uint64_t epoch;          /* random, new each time a file is started from its beginning */
    unsigned char *buf;      /* header + payload of the record being built */
    size_t cap;
    int failed;              /* a write or flush failed: every append fails */
};

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

static void s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint32_t s_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t s_get64(const unsigned char *p)
{
    return (uint64_t)s_get32(p) | (uint64_t)s_get32(p + 4) << 32;
}

/* crc32 of length, lsn and epoch (the header's bytes 4..23) and the payload. */
static uint32_t s_crc(const unsigned char *hdr, const unsigned char *payload, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 20);
    while (len) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, payload, n);
        payload += n;
        len -= n;
    }
    return (uint32_t)c;
}

static int s_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Reads n bytes at off: 0, 1 at the end of the file, or a negative code. */
static int s_pread_all(int fd, void *p, size_t n, uint64_t off)
{
    char *c = p;
    while (n) {
        ssize_t r = pread(fd, c, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return 1;
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Opens dir/wal.i, filling it with zeros up to KV_WAL_FILE_BYTES; true when it grew. */
static int s_open_file(const char *dir, int i, int *fd, bool *grew, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/wal.%d", dir, i);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (*fd < 0 || fstat(*fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(e));
        return -e;
    }
    if ((uint64_t)st.st_size >= KV_WAL_FILE_BYTES)
        return 0;
    static const unsigned char zeros[1 << 16];
    for (uint64_t off = (uint64_t)st.st_size; off < KV_WAL_FILE_BYTES;) {
        size_t n = KV_WAL_FILE_BYTES - off < sizeof zeros ? KV_WAL_FILE_BYTES - off : sizeof zeros;
        int rc = s_pwrite_all(*fd, zeros, n, off);
        if (rc) {
            snprintf(err, errlen, "cannot preallocate \"%s\": %s", path, strerror(-rc));
            return rc;
        }
        off += n;
    }
    if (fsync(*fd) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot flush \"%s\": %s", path, strerror(e));
        return -e;
    }
    *grew = true;
    return 0;
}

int kv_wal_open(const char *dir, kv_wal **out, char *err, size_t errlen)
{
    kv_wal *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    w->fd[0] = w->fd[1] = -1;
    bool grew = false;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        rc = s_open_file(dir, i, &w->fd[i], &grew, err, errlen);
    if (!rc && grew) {   /* the new files' names are durable too */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot flush data dir \"%s\": %s", dir, strerror(-rc));
        }
        if (dfd >= 0)
            close(dfd);
    }
    if (rc) {
        kv_wal_close(&w);
        return rc;
    }
    w->next = 1;
    *out = w;
    return 0;
}

/* ---- replay ---------------------------------------------------------------------- */

typedef struct s_rec {
    uint64_t lsn, off;   /* off: of the payload */
    uint32_t len;
} s_rec;

/* The chain of whole, consecutive records from the start of file fd. */
static int s_scan(int fd, s_rec **recs, size_t *n, unsigned char **buf, size_t *cap)
{
    size_t rcap = 0;
    uint64_t off = 0, prev = 0, epoch = 0;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    for (;;) {
        unsigned char h[KV_WAL_HEADER];
        int rc = s_pread_all(fd, h, sizeof h, off);
        if (rc)
            return rc < 0 ? rc : 0;
        uint32_t len = s_get32(h + 4);
        uint64_t lsn = s_get64(h + 8), ep = s_get64(h + 16);
        if (s_get32(h) != S_MAGIC || len > KV_WAL_MAX_RECORD || lsn == 0 ||
            (*n && (lsn != prev + 1 || ep != epoch)) ||
            off + KV_WAL_HEADER + len > (uint64_t)st.st_size)
            return 0;   /* not a record, one cut short, or an older cycle's: the chain ends */
        if (len > *cap) {
            unsigned char *p = realloc(*buf, len);
            if (!p)
                return -ENOMEM;
            *buf = p;
            *cap = len;
        }
        if ((rc = s_pread_all(fd, *buf, len, off + KV_WAL_HEADER)) != 0)
            return rc < 0 ? rc : 0;   /* cut short: a torn last record */
        if (s_crc(h, *buf, len) != s_get32(h + 24))
            return 0;
        if (*n == rcap) {
            rcap = rcap ? rcap * 2 : 256;
            s_rec *p = realloc(*recs, rcap * sizeof *p);
            if (!p)
                return -ENOMEM;
            *recs = p;
        }
        (*recs)[(*n)++] = (s_rec){ lsn, off + KV_WAL_HEADER, len };
        prev = lsn;
        epoch = ep;
        off += KV_WAL_HEADER + (uint64_t)len;
    }
}

int kv_wal_replay(kv_wal *w, uint64_t after,
                  int (*fn)(void *arg, uint64_t lsn, const unsigned char *payload, size_t len),
                  void *arg, uint64_t *last, char *err, size_t errlen)
{
    s_rec *recs[2] = { NULL, NULL };
    size_t n[2] = { 0, 0 }, at[2] = { 0, 0 }, cap = 0;
    unsigned char *buf = NULL;
    int rc = 0;
    *last = after;
    for (int i = 0; i < 2 && !rc; i++)
        if ((rc = s_scan(w->fd[i], &recs[i], &n[i], &buf, &cap)) != 0)
            snprintf(err, errlen, "cannot read write-ahead log wal.%d: %s", i, svc_strerror(rc));
    for (int i = 0; i < 2; i++)
        while (at[i] < n[i] && recs[i][at[i]].lsn <= after)
            at[i]++;
    /* The records in LSN order: checked whole first, so a gap hands nothing over. */
    size_t start[2] = { at[0], at[1] };
    for (uint64_t prev = after; !rc && (at[0] < n[0] || at[1] < n[1]);) {
        int f = at[1] >= n[1] ? 0 : at[0] >= n[0] ? 1 : recs[0][at[0]].lsn < recs[1][at[1]].lsn ? 0 : 1;
        s_rec *r = &recs[f][at[f]++];
        if (r->lsn != prev + 1) {
            snprintf(err, errlen, "write-ahead log wal.%d: record %llu follows %llu (records missing)",
                     f, (unsigned long long)r->lsn, (unsigned long long)prev);
            rc = -EIO;
        }
        prev = r->lsn;
    }
    at[0] = start[0];
    at[1] = start[1];
    while (!rc && (at[0] < n[0] || at[1] < n[1])) {
        int f = at[1] >= n[1] ? 0 : at[0] >= n[0] ? 1 : recs[0][at[0]].lsn < recs[1][at[1]].lsn ? 0 : 1;
        s_rec *r = &recs[f][at[f]++];
        if (r->len > cap) {
            unsigned char *p = realloc(buf, r->len);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            buf = p;
            cap = r->len;
        }
        if ((rc = s_pread_all(w->fd[f], buf, r->len, r->off)) != 0) {
            rc = rc < 0 ? rc : -EIO;
            snprintf(err, errlen, "cannot read write-ahead log wal.%d: %s", f, svc_strerror(rc));
            break;
        }
        if ((rc = fn(arg, r->lsn, buf, r->len)) != 0) {
            snprintf(err, errlen, "write-ahead log record %llu: %s", (unsigned long long)r->lsn,
                     svc_strerror(rc));
            break;
        }
        *last = r->lsn;
    }
    free(recs[0]);
    free(recs[1]);
    free(buf);
    return rc;
}

/* ---- appends ---------------------------------------------------------------------- */

/* A new random epoch for the file appends now start from the beginning of. */
static void s_new_epoch(kv_wal *w)
{
    uint64_t e = 0;
    if (getrandom(&e, sizeof e, 0) != (ssize_t)sizeof e || e == w->epoch)
        e = w->epoch * 6364136223846793005ull + (uint64_t)getpid() + 1442695040888963407ull;
    w->epoch = e;
}

void kv_wal_start(kv_wal *w, uint64_t next)
{
    w->cur = 0;
    w->off = 0;
    w->next = next;
    s_new_epoch(w);
}

unsigned char *kv_wal_reserve(kv_wal *w, size_t len)
{
    if (KV_WAL_HEADER + len > w->cap) {
        size_t nc = w->cap ? w->cap : 1 << 16;
        while (nc < KV_WAL_HEADER + len)
            nc *= 2;
        unsigned char *p = realloc(w->buf, nc);
        if (!p)
            return NULL;
        w->buf = p;
        w->cap = nc;
    }
    return w->buf + KV_WAL_HEADER;
}

int kv_wal_append(kv_wal *w, size_t len, uint64_t *lsn)
{
    if (w->failed)
        return w->failed;
    if (len > KV_WAL_MAX_RECORD)
        return -EMSGSIZE;   /* replay would stop at it: never write one */
    unsigned char *h = w->buf;
    s_put32(h, S_MAGIC);
    s_put32(h + 4, (uint32_t)len);
    s_put64(h + 8, w->next);
    s_put64(h + 16, w->epoch);
    s_put32(h + 24, s_crc(h, h + KV_WAL_HEADER, len));
    int fd = w->fd[w->cur];
    int rc = s_pwrite_all(fd, h, KV_WAL_HEADER + len, w->off);
    while (!rc && fdatasync(fd) < 0)
        if (errno != EINTR)
            rc = -errno;
    if (rc) {
        /* After a failed flush the page cache says nothing of the disk (fsyncgate). */
        svc_error_log("write-ahead log write failed; refusing writes until restart\terror=%s",
                      strerror(-rc));
        w->failed = -EIO;
        return w->failed;
    }
    w->off += KV_WAL_HEADER + len;
    *lsn = w->next++;
    return 0;
}

uint64_t kv_wal_used(const kv_wal *w) { return w->off; }

void kv_wal_switch(kv_wal *w)
{
    w->cur ^= 1;
    w->off = 0;
    s_new_epoch(w);
}

/* ---- payloads --------------------------------------------------------------------- */

#define S_CHANGE_HEADER 8
#define S_MAX_KEY KV_VIEW_MAX_KEY

size_t kv_wal_change_size(const kv_change *c)
{
    return S_CHANGE_HEADER + c->klen + (c->del ? 0 : c->vlen);
}

unsigned char *kv_wal_put_change(unsigned char *p, const kv_change *c)
{
    size_t vlen = c->del ? 0 : c->vlen;
    p[0] = (unsigned char)c->table;
    p[1] = c->del;
    p[2] = (unsigned char)c->klen;
    p[3] = (unsigned char)(c->klen >> 8);
    s_put32(p + 4, (uint32_t)vlen);
    memcpy(p + S_CHANGE_HEADER, c->key, c->klen);
    if (vlen)
        memcpy(p + S_CHANGE_HEADER + c->klen, c->val, vlen);
    return p + S_CHANGE_HEADER + c->klen + vlen;
}

int kv_wal_changes(const unsigned char *p, size_t len, int (*fn)(void *arg, const kv_change *c),
                   void *arg)
{
    while (len) {
        if (len < S_CHANGE_HEADER)
            return -EBADMSG;
        kv_change c = { .table = p[0], .del = p[1] == 1, .klen = (size_t)p[2] | (size_t)p[3] << 8,
                        .vlen = s_get32(p + 4) };
        if (c.table >= KV_VIEW_TABLES || p[1] > 1 || c.klen == 0 || c.klen > S_MAX_KEY ||
            (c.del && c.vlen) || c.klen > len - S_CHANGE_HEADER ||
            c.vlen > len - S_CHANGE_HEADER - c.klen)
            return -EBADMSG;
        c.key = p + S_CHANGE_HEADER;
        c.val = (void *)(p + S_CHANGE_HEADER + c.klen);
        int rc = fn(arg, &c);
        if (rc)
            return rc;
        size_t used = S_CHANGE_HEADER + c.klen + c.vlen;
        p += used;
        len -= used;
    }
    return 0;
}

void kv_wal_close(kv_wal **wp)
{
    kv_wal *w = wp ? *wp : NULL;
    if (!w)
        return;
    for (int i = 0; i < 2; i++)
        if (w->fd[i] >= 0)
            close(w->fd[i]);
    free(w->buf);
    free(w);
    *wp = NULL;
}
