/* brokerd/consumer.c — pending sets, ack checks, the ack floor. */
#include "consumer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* First index whose seq >= seq. */
static size_t s_lower(const brk_consumer *c, uint64_t seq)
{
    size_t lo = 0, hi = c->n_pend;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->pend[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long brk_pend_find(const brk_consumer *c, uint64_t seq)
{
    size_t i = s_lower(c, seq);
    return i < c->n_pend && c->pend[i].seq == seq ? (long)i : -1;
}

int brk_pend_put(brk_consumer *c, uint64_t seq, uint32_t deliveries, int64_t due_ms)
{
    size_t i = s_lower(c, seq);
    if (i < c->n_pend && c->pend[i].seq == seq) {
        c->pend[i].deliveries = deliveries;
        c->pend[i].due_ms = due_ms;
        return 0;
    }
    if (c->n_pend == c->cap_pend) {
        size_t cap = c->cap_pend ? c->cap_pend * 2 : 64;
        brk_pend *n = realloc(c->pend, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        c->pend = n;
        c->cap_pend = cap;
    }
    memmove(&c->pend[i + 1], &c->pend[i], (c->n_pend - i) * sizeof *c->pend);
    c->pend[i] = (brk_pend){ seq, deliveries, due_ms };
    c->n_pend++;
    return 0;
}

void brk_pend_remove(brk_consumer *c, size_t i)
{
    memmove(&c->pend[i], &c->pend[i + 1], (c->n_pend - i - 1) * sizeof *c->pend);
    c->n_pend--;
}

brk_ack_result brk_ack_check(const brk_consumer *c, uint64_t seq, uint32_t delivery)
{
    long i = brk_pend_find(c, seq);
    if (i < 0)
        return BRK_ACK_UNKNOWN;
    return c->pend[i].deliveries == delivery ? BRK_ACK_OK : BRK_ACK_STALE;
}

uint64_t brk_ack_floor(const brk_consumer *c)
{
    return c->n_pend ? c->pend[0].seq - 1 : c->next_seq - 1;
}

uint64_t brk_redelivered(const brk_consumer *c)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->n_pend; i++)
        n += c->pend[i].deliveries > 1;
    return n;
}

void brk_consumer_release(brk_consumer *c)
{
    free(c->pend);
    c->pend = NULL;
    c->n_pend = c->cap_pend = 0;
}
