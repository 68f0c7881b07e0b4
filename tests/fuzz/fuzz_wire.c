/*
 * Fuzz target: the SVC01 wire decoder, as a server sees a message.
 *
 * Input layout: byte 0 = length of the signature frame (mod 8), then the
 * signature bytes, then the header frame (the rest).  Decoding must never
 * crash or leak; a decoded header must re-encode and decode to the same
 * bytes (a real property: protobuf-c packing is canonical for what it
 * unpacked, unknown fields aside).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t siglen = data[0] % 8;
    if (siglen > size - 1)
        siglen = size - 1;
    const uint8_t *sig = data + 1, *hdr = data + 1 + siglen;
    size_t hlen = size - 1 - siglen;
    Svc__Header *h = NULL;
    char err[160];
    if (svc__wire_decode(sig, siglen, hdr, hlen, &h, NULL, err, sizeof err) != 0) {
        if (h)
            abort();   /* a failed decode must not hand out a header */
        return 0;
    }
    /* Re-pack; decode again; packing again must give identical bytes. */
    size_t n1 = svc__header__get_packed_size(h);
    uint8_t *b1 = malloc(n1 + 1);
    svc__header__pack(h, b1);
    Svc__Header *h2 = NULL;
    if (svc__wire_decode("SVC01", 5, b1, n1, &h2, NULL, err, sizeof err) != 0 && n1 > 0)
        abort();
    if (h2) {
        size_t n2 = svc__header__get_packed_size(h2);
        uint8_t *b2 = malloc(n2 + 1);
        svc__header__pack(h2, b2);
        if (n1 != n2 || memcmp(b1, b2, n1) != 0)
            abort();
        free(b2);
        svc__header_free(h2);
    }
    free(b1);
    svc__header_free(h);
    return 0;
}
