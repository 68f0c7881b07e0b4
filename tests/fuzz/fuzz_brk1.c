/*
 * Fuzz target: the BRK/1 batch record readers (libsvc/brk1.h) that brokerd
 * runs on BRK1B and BRK1W frames from the network and clients run on
 * BRK1D and BRK1K frames.
 *
 * The whole input is one frame, read by each of the four readers in turn.
 * Properties: no crash or out-of-bounds read; the cursor only moves
 * forward and never past the frame; every field a reader returns lies
 * inside the frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brk1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_in(const uint8_t *data, size_t size, const void *p, size_t n)
{
    if (n && ((const uint8_t *)p < data || (const uint8_t *)p + n > data + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan catches a read one past the end. */
    uint8_t *b = malloc(size ? size : 1);
    memcpy(b, data, size);
    size_t off = 0, prev;
    svc__brk1_msg m;
    for (int k = 0; k < 2; k++) {
        off = 0;
        for (;;) {
            prev = off;
            int rc = k ? svc__brk1_next_delivery(b, size, &off, &m) : svc__brk1_next_pub(b, size, &off, &m);
            if (rc <= 0)
                break;
            if (off <= prev || off > size)
                abort();
            s_in(b, size, m.topic, m.tlen);
            s_in(b, size, m.body, m.blen);
            s_in(b, size, m.meta, m.mlen);
        }
    }
    svc__brk1_write w;
    off = 0;
    for (;;) {
        prev = off;
        if (svc__brk1_next_write(b, size, &off, &w) <= 0)
            break;
        if (off <= prev || off > size)
            abort();
        for (int i = 0; i < 4; i++)
            s_in(b, size, w.str[i], w.len[i]);
        s_in(b, size, w.body, w.blen);
    }
    svc__brk1_ack a;
    off = 0;
    for (;;) {
        prev = off;
        if (svc__brk1_next_ack(b, size, &off, &a) <= 0)
            break;
        if (off <= prev || off > size)
            abort();
        s_in(b, size, a.detail, a.dlen);
    }
    free(b);
    return 0;
}
