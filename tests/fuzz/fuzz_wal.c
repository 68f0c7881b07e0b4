/*
 * tests/fuzz/fuzz_wal.c — libFuzzer target for stored's write-ahead log:
 * the payload decoder and the replay of log files (stored/wal.h).
 *
 * The first byte picks what the rest is:
 *   even: a record's payload, decoded by kv_wal_changes.  Every change
 *         handed over lies inside the input, right after the one before,
 *         with a table below KV_VIEW_TABLES, a key of 1..511 bytes and no
 *         value bytes on a delete; a payload that decodes whole encodes
 *         back (kv_wal_put_change) to exactly the input.
 *   odd:  two log files: bytes 1-2 say how many of the rest are wal.0, the
 *         others are wal.1, and the first byte's upper bits are the LSN
 *         replay starts after.  Replay hands over LSNs one by one from
 *         there, fails only for a gap (-EIO), and every payload it hands
 *         over is decoded as above.
 * Violations abort().
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_die(const char *what)
{
    fprintf(stderr, "fuzz_wal: %s\n", what);
    abort();
}

/* ---- payloads ------------------------------------------------------------------- */

typedef struct s_dec {
    const unsigned char *at;    /* where the next change must begin */
    const unsigned char *end;   /* the payload's end */
} s_dec;

static int s_check_change(void *arg, const kv_change *c)
{
    s_dec *d = arg;
    const unsigned char *key = c->key, *val = c->val;
    if (c->table >= KV_VIEW_TABLES || c->klen == 0 || c->klen > 511 || (c->del && c->vlen))
        s_die("a change out of range was handed over");
    if (key != d->at + 8 || val != key + c->klen || (size_t)(d->end - val) < c->vlen)
        s_die("a change does not lie where it was encoded");
    if (kv_wal_change_size(c) != 8 + c->klen + c->vlen)
        s_die("kv_wal_change_size disagrees with the decoder");
    d->at = val + c->vlen;
    return 0;
}

static void s_payload(const unsigned char *p, size_t len)
{
    s_dec d = { p, p + len };
    int rc = kv_wal_changes(p, len, s_check_change, &d);
    if (rc != 0 && rc != -EBADMSG)
        s_die("kv_wal_changes returned neither 0 nor -EBADMSG");
    if (rc != 0)
        return;
    if (d.at != d.end)
        s_die("a payload decoded whole without using every byte");
    /* Encoding is canonical: what decoded whole encodes back to the same bytes. */
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy)
        s_die("out of memory");
    unsigned char *w = copy;
    const unsigned char *r = p;
    while (r < p + len) {
        kv_change c = { .table = r[0], .del = r[1] == 1, .klen = (size_t)r[2] | (size_t)r[3] << 8,
                        .vlen = (size_t)r[4] | (size_t)r[5] << 8 | (size_t)r[6] << 16 |
                                (size_t)r[7] << 24 };
        c.key = r + 8;
        c.val = (void *)(r + 8 + c.klen);
        w = kv_wal_put_change(w, &c);
        r += 8 + c.klen + c.vlen;
    }
    if (w != copy + len || memcmp(copy, p, len) != 0)
        s_die("a decoded payload does not encode back to its bytes");
    free(copy);
}

/* ---- log files ------------------------------------------------------------------ */

static char s_dir[] = "/tmp/fuzz-wal-XXXXXX";
static size_t s_written[2];   /* bytes of each file the last input wrote */

static void s_cleanup(void)
{
    char path[sizeof s_dir + 8];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/wal.%d", s_dir, i);
        unlink(path);
    }
    rmdir(s_dir);
}

/* Puts p at the start of dir/wal.i, zeros over what the last input left past it. */
static void s_write_file(int i, const unsigned char *p, size_t len)
{
    static const unsigned char zeros[4096];
    char path[sizeof s_dir + 8];
    snprintf(path, sizeof path, "%s/wal.%d", s_dir, i);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        s_die("cannot open a log file");
    if (len && pwrite(fd, p, len, 0) != (ssize_t)len)
        s_die("cannot write a log file");
    for (size_t off = len; off < s_written[i];) {
        size_t n = s_written[i] - off < sizeof zeros ? s_written[i] - off : sizeof zeros;
        if (pwrite(fd, zeros, n, (off_t)off) != (ssize_t)n)
            s_die("cannot clear a log file");
        off += n;
    }
    s_written[i] = len;
    close(fd);
}

typedef struct s_replay {
    uint64_t prev;   /* the LSN handed over last (after, at first) */
} s_replay;

static int s_check_record(void *arg, uint64_t lsn, const unsigned char *payload, size_t len)
{
    s_replay *r = arg;
    if (lsn != r->prev + 1)
        s_die("replay handed over LSNs out of order");
    r->prev = lsn;
    s_payload(payload, len);
    return 0;
}

static void s_log(const unsigned char *p, size_t len, uint64_t after)
{
    static bool ready;
    if (!ready) {
        if (!mkdtemp(s_dir))
            s_die("mkdtemp");
        atexit(s_cleanup);
        ready = true;
    }
    if (len < 2)
        return;
    size_t split = ((size_t)p[0] | (size_t)p[1] << 8) % (len - 2 + 1);
    s_write_file(0, p + 2, split);
    s_write_file(1, p + 2 + split, len - 2 - split);

    kv_wal *w = NULL;
    char err[256] = "";
    if (kv_wal_open(s_dir, &w, err, sizeof err) != 0)
        s_die(err);
    s_replay r = { after };
    uint64_t last = 0;
    int rc = kv_wal_replay(w, after, s_check_record, &r, &last, err, sizeof err);
    if (rc != 0 && rc != -EIO)
        s_die("replay failed other than for a gap");
    if (rc == -EIO && !strstr(err, "records missing"))
        s_die("replay failed without saying records are missing");
    if (last != r.prev)
        s_die("replay's last is not the last LSN handed over");
    kv_wal_close(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        s_log(data + 1, size - 1, data[0] >> 1);
    else
        s_payload(data + 1, size - 1);
    return 0;
}
