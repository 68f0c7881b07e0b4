/* libsvc/brk1.c — BRK/1 batch record readers.  See brk1.h. */
#include "brk1.h"

static uint32_t s_get16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t s_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t svc__brk1_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Topic, body, meta after a header at h; fills m.  -1 when they overrun. */
static int s_tbm(const unsigned char *b, size_t len, size_t *off, const unsigned char *h,
                 svc__brk1_msg *m)
{
    size_t tl = s_get16(h), bl = s_get32(h + 2), ml = s_get32(h + 6), o = *off;
    if (tl > len - o || bl > len - o - tl || ml > len - o - tl - bl)
        return -1;
    m->topic = (const char *)b + o;
    m->tlen = tl;
    m->body = b + o + tl;
    m->blen = bl;
    m->meta = ml ? b + o + tl + bl : NULL;
    m->mlen = ml;
    *off = o + tl + bl + ml;
    return 1;
}

int svc__brk1_next_pub(const unsigned char *b, size_t len, size_t *off, svc__brk1_msg *m)
{
    if (*off >= len)
        return 0;
    if (len - *off < SVC__BRK1_PUB_HEAD)
        return -1;
    const unsigned char *h = b + *off;
    *off += SVC__BRK1_PUB_HEAD;
    m->sid = 0;
    return s_tbm(b, len, off, h, m);
}

int svc__brk1_next_delivery(const unsigned char *b, size_t len, size_t *off, svc__brk1_msg *m)
{
    if (*off >= len)
        return 0;
    if (len - *off < SVC__BRK1_DLV_HEAD)
        return -1;
    const unsigned char *h = b + *off;
    *off += SVC__BRK1_DLV_HEAD;
    m->sid = svc__brk1_get64(h);
    return s_tbm(b, len, off, h + 8, m);
}

int svc__brk1_next_write(const unsigned char *b, size_t len, size_t *off, svc__brk1_write *w)
{
    if (*off >= len)
        return 0;
    if (len - *off < SVC__BRK1_WRITE_HEAD)
        return -1;
    const unsigned char *h = b + *off;
    size_t o = *off + SVC__BRK1_WRITE_HEAD, total = 0;
    w->req_id = svc__brk1_get64(h);
    for (int k = 0; k < 4; k++) {
        w->len[k] = s_get16(h + 8 + 2 * k);
        total += w->len[k];
    }
    w->blen = s_get32(h + 16);
    if (total > len - o || w->blen > len - o - total)
        return -1;
    for (int k = 0; k < 4; k++) {
        w->str[k] = (const char *)b + o;
        o += w->len[k];
    }
    w->body = b + o;
    *off = o + w->blen;
    return 1;
}

int svc__brk1_next_ack(const unsigned char *b, size_t len, size_t *off, svc__brk1_ack *a)
{
    if (*off >= len)
        return 0;
    if (len - *off < SVC__BRK1_ACK_HEAD)
        return -1;
    const unsigned char *h = b + *off;
    size_t o = *off + SVC__BRK1_ACK_HEAD;
    a->req_id = svc__brk1_get64(h);
    a->seq = svc__brk1_get64(h + 8);
    a->code = (int)s_get16(h + 16);
    a->duplicate = h[18] != 0;
    a->dlen = s_get16(h + 19);
    if (a->dlen > len - o)
        return -1;
    a->detail = (const char *)b + o;
    *off = o + a->dlen;
    return 1;
}
