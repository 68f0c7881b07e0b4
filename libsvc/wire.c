/* libsvc/wire.c — SVC01 frames.  See wire.h and docs/protocol.md. */
#include "wire.h"
#include "svc/error.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

void svc__header_free(Svc__Header *h)
{
    if (h)
        svc__header__free_unpacked(h, NULL);
}

/*
 * Memory of a received header.  protobuf-c allocates a header's parts one
 * by one (the struct, each string, each metadata entry) and frees them one
 * by one; a header received with its message takes them from one block
 * instead, freed at once by svc__msg_close.  What does not fit in the
 * block is malloc'd and chained to it.  The block stays under glibc's
 * per-thread cache limit (1032 bytes), so it is quick to get and give back.
 */
typedef struct s_big {
    struct s_big *next;           /* more of the same arena */
    max_align_t data[];           /* the allocation */
} s_big;

struct svc__arena {
    size_t used;                  /* bytes of buf handed out */
    s_big *big;                   /* allocations that did not fit in buf */
    max_align_t buf[(1024 - 2 * sizeof(void *)) / sizeof(max_align_t)];
};

static void *s_arena_alloc(void *data, size_t size)
{
    svc__arena *a = data;
    size_t n = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n >= size && n <= sizeof a->buf - a->used) {
        void *p = (char *)a->buf + a->used;
        a->used += n;
        return p;
    }
    if (size > SIZE_MAX - sizeof(s_big))
        return NULL;
    s_big *b = malloc(sizeof *b + size);
    if (!b)
        return NULL;
    b->next = a->big;
    a->big = b;
    return b->data;
}

/* Parts are given back all at once (s_arena_free). */
static void s_arena_free_part(void *data, void *p)
{
}

static void s_arena_free(svc__arena *a)
{
    if (!a)
        return;
    while (a->big) {
        s_big *next = a->big->next;
        free(a->big);
        a->big = next;
    }
    free(a);
}

/* True when m itself (not its submessages) kept an unknown field numbered 0. */
static bool s_has_field0(const ProtobufCMessage *m)
{
    for (size_t i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    return false;
}

/* svc__wire_decode, with the header's memory from alloc (NULL: malloc). */
static int s_decode(const void *sig, size_t siglen, const void *hdr, size_t hdrlen,
                    ProtobufCAllocator *alloc, Svc__Header **out, uint64_t *id, char *err,
                    size_t errlen);

int svc__wire_decode(const void *sig, size_t siglen, const void *hdr, size_t hdrlen,
                     Svc__Header **out, uint64_t *id, char *err, size_t errlen)
{
    return s_decode(sig, siglen, hdr, hdrlen, NULL, out, id, err, errlen);
}

static int s_decode(const void *sig, size_t siglen, const void *hdr, size_t hdrlen,
                    ProtobufCAllocator *alloc, Svc__Header **out, uint64_t *id, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (id)
        *id = 0;
    if (siglen != SVC_WIRE_SIGNATURE_LEN || memcmp(sig, SVC_WIRE_SIGNATURE, siglen) != 0) {
        s_err(err, errlen, "bad protocol signature (want \"SVC01\")");
        return SVC_EPROTO;
    }
    if (hdrlen == 0 || hdrlen > SVC_WIRE_MAX_HEADER) {
        s_err(err, errlen, hdrlen ? "header too large" : "empty header");
        return SVC_EPROTO;
    }
    Svc__Header *h = svc__header__unpack(alloc, hdrlen, hdr);
    if (!h) {
        s_err(err, errlen, "header is not a valid protobuf svc.Header");
        return SVC_EPROTO;
    }
    if (id)
        *id = h->id;
    /* protobuf-c keeps field number 0 from an over-long tag as an unknown
     * field, though no valid protobuf has it (found by fuzz_wire), in the
     * header or in any message inside it. */
    bool zero = s_has_field0(&h->base) || (h->error && s_has_field0(&h->error->base));
    for (size_t i = 0; i < h->n_metadata && !zero; i++)
        zero = s_has_field0(&h->metadata[i]->base);
    if (zero) {
        s_err(err, errlen, "header has a field numbered 0");
        goto out_free;
    }
    switch (h->kind) {
    case SVC__KIND__REQUEST:
    case SVC__KIND__STREAM_OPEN:
        if (!h->service[0] || !h->endpoint[0]) {
            s_err(err, errlen, "request names no service or endpoint");
            goto out_free;
        }
        break;
    case SVC__KIND__ERROR:
        if (!h->error || h->error->code == 0) {
            s_err(err, errlen, "error message carries no error");
            goto out_free;
        }
        break;
    case SVC__KIND__RESPONSE:
    case SVC__KIND__STREAM_DATA:
    case SVC__KIND__STREAM_CLOSE:
    case SVC__KIND__STREAM_CANCEL:
    case SVC__KIND__STREAM_CREDIT:
    case SVC__KIND__PING:
    case SVC__KIND__PONG:
        break;
    default:
        s_err(err, errlen, "unknown message kind");
        goto out_free;
    }
    *out = h;
    return 0;

out_free:
    if (!alloc)
        svc__header_free(h);   /* an arena is freed with its message */
    return SVC_EPROTO;
}

/* Drops the remaining parts of a multipart message. */
static void s_drain(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t junk;
        zmq_msg_init(&junk);
        if (zmq_msg_recv(&junk, sock, 0) < 0) {
            zmq_msg_close(&junk);
            return;
        }
        zmq_msg_close(&junk);
    }
}

int svc__msg_recv(void *sock, svc__msg *m, int flags, bool routed, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->first = routed ? 1 : 0;
    for (;;) {
        zmq_msg_t *f = &m->frames[m->nframes];
        zmq_msg_init(f);
        int rc = zmq_msg_recv(f, sock, m->nframes == 0 ? flags : 0);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(f);
            svc__msg_close(m);
            return -e;
        }
        m->nframes++;
        if (!zmq_msg_more(f))
            break;
        /* Signature, header, body: three frames after the routing id, if any. */
        if (m->nframes == m->first + 3) {
            s_drain(sock);
            s_err(err, errlen, "too many frames");
            return SVC_EPROTO;
        }
    }
    int have = m->nframes - m->first;
    if (have < 2) {
        s_err(err, errlen, have < 1 ? "empty message" : "message has no header frame");
        return SVC_EPROTO;
    }
    zmq_msg_t *sig = &m->frames[m->first], *hdr = &m->frames[m->first + 1];
    m->arena = malloc(sizeof *m->arena);
    if (!m->arena)   /* then the header's parts are malloc'd one by one */
        return s_decode(zmq_msg_data(sig), zmq_msg_size(sig), zmq_msg_data(hdr),
                        zmq_msg_size(hdr), NULL, &m->hdr, &m->bad_id, err, errlen);
    m->arena->used = 0;
    m->arena->big = NULL;
    ProtobufCAllocator alloc = { s_arena_alloc, s_arena_free_part, m->arena };
    return s_decode(zmq_msg_data(sig), zmq_msg_size(sig), zmq_msg_data(hdr), zmq_msg_size(hdr),
                    &alloc, &m->hdr, &m->bad_id, err, errlen);
}

const void *svc__msg_body(const svc__msg *m, size_t *len)
{
    int i = m->first + 2;
    if (i >= m->nframes) {
        *len = 0;
        return NULL;
    }
    zmq_msg_t *f = (zmq_msg_t *)&m->frames[i];
    *len = zmq_msg_size(f);
    return zmq_msg_data(f);
}

zmq_msg_t *svc__msg_route(svc__msg *m)
{
    return m->first == 1 && m->nframes > 0 ? &m->frames[0] : NULL;
}

void svc__msg_close(svc__msg *m)
{
    for (int i = 0; i < m->nframes; i++)
        zmq_msg_close(&m->frames[i]);
    m->nframes = 0;
    if (m->arena)
        s_arena_free(m->arena);   /* holds m->hdr */
    else
        svc__header_free(m->hdr);
    m->arena = NULL;
    m->hdr = NULL;
}

static int s_send_frame(void *sock, const void *data, size_t len, int flags)
{
    zmq_msg_t f;
    if (zmq_msg_init_size(&f, len) < 0)
        return -errno;
    if (len)
        memcpy(zmq_msg_data(&f), data, len);
    if (zmq_msg_send(&f, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&f);
        return -e;
    }
    return 0;
}

int svc__wire_send(void *sock, zmq_msg_t *route, const Svc__Header *h,
                   const void *body, size_t len, int flags)
{
    uint8_t stack[512];
    size_t hlen = svc__header__get_packed_size(h);
    uint8_t *hbuf = hlen <= sizeof stack ? stack : malloc(hlen);
    if (!hbuf)
        return -ENOMEM;
    svc__header__pack(h, hbuf);

    int rc;
    if (route) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, route);
        if (zmq_msg_send(&copy, sock, flags | ZMQ_SNDMORE) < 0) {
            rc = -errno;
            zmq_msg_close(&copy);
            goto out;
        }
    }
    /* After the first part is queued the rest cannot fail with EAGAIN. */
    rc = s_send_frame(sock, SVC_WIRE_SIGNATURE, SVC_WIRE_SIGNATURE_LEN, flags | ZMQ_SNDMORE);
    if (rc == 0)
        rc = s_send_frame(sock, hbuf, hlen, body ? flags | ZMQ_SNDMORE : flags);
    if (rc == 0 && body)
        rc = s_send_frame(sock, body, len, flags);
out:
    if (hbuf != stack)
        free(hbuf);
    return rc;
}

const char *svc__header_meta(const Svc__Header *h, const char *key)
{
    for (size_t i = h->n_metadata; i-- > 0;)
        if (h->metadata[i]->key && strcmp(h->metadata[i]->key, key) == 0)
            return h->metadata[i]->value;
    return NULL;
}
