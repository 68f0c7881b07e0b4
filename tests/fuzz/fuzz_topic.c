/*
 * Fuzz target: topic and pattern validation and matching (libsvc/topic.h),
 * what brokerd runs on every BRK1 publish and subscribe from the network.
 *
 * Input: byte 0 splits the rest into a pattern and a topic.  Properties:
 * no crash or out-of-bounds read on any input; every valid topic matches
 * ">" and itself as a pattern.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] % (size);
    const char *p = (const char *)data + 1, *t = (const char *)data + 1 + split;
    size_t plen = split > size - 1 ? size - 1 : split, tlen = size - 1 - plen;
    char *pat = malloc(plen + 1);
    memcpy(pat, p, plen);
    pat[plen] = 0;
    bool tv = svc__topic_valid(t, tlen, false);
    if (strlen(pat) == plen && svc__topic_valid(pat, plen, true) && tv) {
        (void)svc__topic_match(pat, t, tlen);
    }
    if (tv) {
        if (!svc__topic_match(">", t, tlen))
            abort();
        char *self = malloc(tlen + 1);
        memcpy(self, t, tlen);
        self[tlen] = 0;
        if (!svc__topic_match(self, t, tlen))
            abort();
        free(self);
    }
    free(pat);
    return 0;
}
