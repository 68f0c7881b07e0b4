/*
 * libsvc/brk1.h — reading the packed records of BRK/1 batch frames
 * (docs/broker.md 4.1, 4.2, 5.7), shared by brokerd and the clients
 * (internal).  All integers little-endian.  Readers never read past len;
 * the pointers they fill point into the frame.
 *
 * Each reader takes the frame, its length and a cursor (*off, start at 0)
 * and returns 1 with the next record filled in and *off moved past it,
 * 0 at the end of the frame, -1 when the record is malformed (truncated
 * header, or lengths that overrun the frame): stop reading then.
 */
#ifndef SVC__BRK1_H
#define SVC__BRK1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SVC__BRK1_PUB_HEAD   10   /* topic_len(2) body_len(4) meta_len(4) */
#define SVC__BRK1_DLV_HEAD   18   /* sid(8) + the above */
#define SVC__BRK1_WRITE_HEAD 20   /* req_id(8) stream(2) id(2) topic(2) ct(2) body(4) */
#define SVC__BRK1_ACK_HEAD   21   /* req_id(8) seq(8) code(2) dup(1) detail_len(2) */

/* A publish record (BRK1B) or, with sid, a delivery record (BRK1D). */
typedef struct svc__brk1_msg {
    uint64_t sid;            /* delivery only: the subscription */
    const char *topic;       /* not NUL-terminated */
    size_t tlen;
    const void *body;
    size_t blen;
    const void *meta;        /* protobuf svc.broker.Meta, or NULL */
    size_t mlen;
} svc__brk1_msg;

/* A durable publish record (BRK1W). */
typedef struct svc__brk1_write {
    uint64_t req_id;
    const char *str[4];      /* stream, id, topic, content type: not NUL-terminated */
    size_t len[4];
    const void *body;
    size_t blen;
} svc__brk1_write;

/* An ack record (BRK1K). */
typedef struct svc__brk1_ack {
    uint64_t req_id, seq;
    int code;                /* 0 = stored */
    bool duplicate;
    const char *detail;      /* not NUL-terminated */
    size_t dlen;
} svc__brk1_ack;

int svc__brk1_next_pub(const unsigned char *b, size_t len, size_t *off, svc__brk1_msg *m);
int svc__brk1_next_delivery(const unsigned char *b, size_t len, size_t *off, svc__brk1_msg *m);
int svc__brk1_next_write(const unsigned char *b, size_t len, size_t *off, svc__brk1_write *w);
int svc__brk1_next_ack(const unsigned char *b, size_t len, size_t *off, svc__brk1_ack *a);

uint64_t svc__brk1_get64(const unsigned char *p);

#endif
