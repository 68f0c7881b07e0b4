/*
 * stored/wal.h — the write-ahead log: where a batch is durable first.
 *
 * Two preallocated files in the data dir, wal.0 and wal.1.  A batch is one
 * record appended to the current file and flushed with one fdatasync; the
 * files' blocks were written once when created, so the flush writes data
 * only, never file metadata (Redis' `appendfsync always` flushes a growing
 * file).  A record is
 *
 *     u32 magic "SVCW" | u32 length | u64 lsn | u64 epoch | u32 crc32 of
 *     length, lsn, epoch and payload | payload (length bytes)
 *
 * (little-endian).  LSNs grow by one per record.  The epoch is random and
 * new each time a file is started from its beginning, and every record of
 * one pass over a file carries the same: bytes an older pass left behind
 * never continue a chain, even if they parse as a record (a value a client
 * wrote could hold one).  Once the backend has put
 * the records of one file into its B-tree (a checkpoint, lmdb.c), the
 * writer switches files and overwrites the other from its start.
 *
 * Replay reads each file from its start while records are whole, their
 * LSNs follow each other and their epoch is the first record's: a torn
 * record, zeros or an older pass's record ends the file.  Records are handed over in LSN order from the first
 * after the checkpoint; a gap between them is an error.
 */
#ifndef KV_WAL_H
#define KV_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "overlay.h"

#define KV_WAL_FILE_BYTES (8u << 20)   /* preallocated size of each file; a file may grow past it */
#define KV_WAL_HEADER 28               /* bytes before a record's payload */
#define KV_WAL_MAX_RECORD (1u << 30)   /* longest payload replay accepts */

typedef struct kv_wal kv_wal;

/*
 * Opens dir/wal.0 and dir/wal.1, creating and preallocating them (zeros,
 * fsync'd with the dir) when missing or short.  0 and *out, or a negative
 * code with a one-line reason in err.
 */
int kv_wal_open(const char *dir, kv_wal **out, char *err, size_t errlen);

/*
 * Calls fn for every record with an LSN after `after`, in order; fn
 * returns 0 to go on or a negative code that stops the replay.  *last is
 * the LSN of the last record handed over (after when none).  0, or a
 * negative code with a reason in err (an unreadable file, fn's code, or a
 * gap: checked before any record is handed over).
 */
int kv_wal_replay(kv_wal *w, uint64_t after,
                  int (*fn)(void *arg, uint64_t lsn, const unsigned char *payload, size_t len),
                  void *arg, uint64_t *last, char *err, size_t errlen);

/*
 * Starts appending at wal.0's start with LSN next (after replay: last + 1).
 * Whatever either file holds must be in the backend by then (replayed and
 * committed, with its LSN): wal.0 is overwritten.
 */
void kv_wal_start(kv_wal *w, uint64_t next);

/*
 * The payload buffer of the next record: room for at least len bytes past
 * the header, or NULL (out of memory).  Fill it and call kv_wal_append.
 */
unsigned char *kv_wal_reserve(kv_wal *w, size_t len);

/*
 * Appends the reserved buffer's first len bytes as a record and flushes it
 * to disk.  0 and *lsn; -EMSGSIZE when len is over KV_WAL_MAX_RECORD
 * (nothing written); or -EIO (logged): then the log can no longer be
 * trusted and every later append fails too.
 */
int kv_wal_append(kv_wal *w, size_t len, uint64_t *lsn);

/* Bytes written to the current file since it was started. */
uint64_t kv_wal_used(const kv_wal *w);

/* Next appends go to the other file, from its start. */
void kv_wal_switch(kv_wal *w);

/*
 * A record's payload is a list of changes, each
 *     u8 table | u8 1 = delete, 0 = put | u16 key length | u32 value length | key | value
 * (little-endian).  kv_wal_change_size is the bytes one takes; kv_wal_put_change
 * writes it at p and returns the byte after it.
 */
size_t kv_wal_change_size(const kv_change *c);
unsigned char *kv_wal_put_change(unsigned char *p, const kv_change *c);
/*
 * Decodes payload (len bytes) and calls fn for each change, in order (the
 * change points into payload); fn returns 0 to go on or a code that stops.
 * 0, fn's code, or -EBADMSG when the payload is malformed (a table of
 * KV_VIEW_TABLES or more, an empty or over-long key, a length past the
 * end); changes before the bad one were already handed over.
 */
int kv_wal_changes(const unsigned char *payload, size_t len,
                   int (*fn)(void *arg, const kv_change *c), void *arg);

/* Closes the files and frees w; *w becomes NULL.  Safe on NULL. */
void kv_wal_close(kv_wal **w);

#endif
