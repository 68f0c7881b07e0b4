/*
 * libsvc/wire.h — frames of the svc wire protocol, SVC01 (internal).
 *
 * A message is [signature "SVC01"][header (protobuf Svc__Header)][body?];
 * a ROUTER socket sees one more frame in front: the peer's routing id.
 * docs/protocol.md is the normative text; this file is its encoder/decoder.
 */
#ifndef SVC__WIRE_H
#define SVC__WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#include "wire.pb-c.h"

#define SVC_WIRE_SIGNATURE     "SVC01"
#define SVC_WIRE_SIGNATURE_LEN 5
#define SVC_WIRE_MAX_HEADER    (64 * 1024)          /* bytes */
#define SVC_WIRE_MAX_BODY      (16 * 1024 * 1024)   /* bytes in a body frame */
#define SVC_WIRE_MAX_BODY_STR  "16777216"
#define SVC_WIRE_MAX_FRAMES    4                    /* routing id + 3 */

/* Where a received header's memory comes from (wire.c). */
typedef struct svc__arena svc__arena;

/* A received message.  Owns its frames and header; release with svc__msg_close. */
typedef struct svc__msg {
    zmq_msg_t frames[SVC_WIRE_MAX_FRAMES]; /* raw frames as received */
    int nframes;                           /* frames initialised */
    int first;                             /* index of the signature frame (1 on ROUTER) */
    Svc__Header *hdr;                      /* decoded header, owned; NULL until decoded */
    svc__arena *arena;                     /* memory of hdr (freed with it), or NULL */
    uint64_t bad_id;                       /* malformed: id of a header that unpacked, else 0 */
} svc__msg;

/*
 * Receives one whole multipart message from sock (flags: 0 or ZMQ_DONTWAIT).
 * routed: the socket is a ROUTER, so frame 0 is a routing id.
 * Always consumes every part of the message, even when it is malformed.
 * Returns 0 with m->hdr decoded; -EAGAIN if nothing waits (DONTWAIT);
 * SVC_EPROTO if malformed — m's frames are then still valid so that a ROUTER
 * can answer the peer, and err holds a one-line reason; other -errno on
 * socket failure.  m must be closed with svc__msg_close in every case but
 * -EAGAIN/-errno.
 */
int svc__msg_recv(void *sock, svc__msg *m, int flags, bool routed, char *err, size_t errlen);

/* Body of a received message (NULL/0 when it has none); borrowed from m. */
const void *svc__msg_body(const svc__msg *m, size_t *len);

/* Routing-id frame of a message received on a ROUTER; NULL otherwise. */
zmq_msg_t *svc__msg_route(svc__msg *m);

/* Frees frames and header. */
void svc__msg_close(svc__msg *m);

/*
 * Decodes and validates a header against the rules of its kind: signature
 * must be exactly "SVC01", the header must unpack, kind must be known,
 * REQUEST and STREAM_OPEN must name service and endpoint, ERROR must carry
 * an error.  On success *out is the caller's (svc__header_free).  On failure
 * returns SVC_EPROTO and writes a reason into err; if the header unpacked
 * but broke a rule, *id (when not NULL) gets its id so the error answer can
 * name the call.  Used on every received message; it is the entry point of
 * the wire fuzz target.
 */
int svc__wire_decode(const void *sig, size_t siglen, const void *hdr, size_t hdrlen,
                     Svc__Header **out, uint64_t *id, char *err, size_t errlen);

void svc__header_free(Svc__Header *h);

/*
 * Sends one message: [route?][signature][header][body?].  route may be NULL
 * (DEALER side); it is copied, not consumed.  body may be NULL for none.
 * flags: 0 or ZMQ_DONTWAIT.  Returns 0 or -errno (EAGAIN, EHOSTUNREACH, ...).
 */
int svc__wire_send(void *sock, zmq_msg_t *route, const Svc__Header *h,
                   const void *body, size_t len, int flags);

/* Metadata of a header: the value of key (the last, if repeated) or NULL; borrowed. */
const char *svc__header_meta(const Svc__Header *h, const char *key);

#endif
