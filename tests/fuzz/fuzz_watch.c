/*
 * Fuzz target: the client's decoder of Registry.Watch events (regcache.c),
 * as a stream from registryd delivers them.
 *
 * Input: a sequence of events, each one length octet then that many octets
 * of a protobuf svc.registry.Result, applied in order to a cache that holds
 * a view of service "s".  Must never crash or leak; every node left in the
 * view must have an id and a valid address, and ids must be unique (a
 * create or update of a known id replaces that node, never duplicates it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "regcache.h"
#include "zctx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    svc__regcache *r = svc__regcache_new("inproc://fuzz-no-registry", NULL);
    if (!r)
        return 0;
    svc__regcache_set_watch(r, false);
    svc__regcache_seed(r, "s");
    char why[128];
    size_t off = 0;
    while (off < size) {
        size_t len = data[off++];
        if (len > size - off)
            len = size - off;
        svc__regcache_apply(r, data + off, len, why, sizeof why);
        off += len;
    }
    svc__node *nodes;
    size_t n = 0;
    if (svc__regcache_peek(r, "s", &nodes, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!nodes[i].id || !nodes[i].id[0] || !svc__address_valid(nodes[i].address) ||
                !nodes[i].version)
                abort();
            for (size_t j = 0; j < i; j++)
                if (strcmp(nodes[i].id, nodes[j].id) == 0)
                    abort();
        }
    }
    svc__regcache_destroy(&r);
    return 0;
}
