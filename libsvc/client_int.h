/*
 * libsvc/client_int.h — what client.c shares with client_stream.c (internal).
 */
#ifndef SVC__CLIENT_INT_H
#define SVC__CLIENT_INT_H

#include "svc/client.h"
#include "wire.pb-c.h"

/*
 * The header metadata of a call: the client's pairs, then extra's (which
 * win).  Returns one malloc'd block holding the pointer array and the
 * entries (free() it); the strings stay borrowed from c and extra.  NULL on
 * out-of-memory.
 */
Svc__MetadataEntry **svc__client_header_meta(const svc_client *c, const svc_meta *extra, size_t *n);

#endif
