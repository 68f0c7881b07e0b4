/*
 * libsvc/zctx.h — the process-wide ZeroMQ context and socket helpers (internal).
 */
#ifndef SVC__ZCTX_H
#define SVC__ZCTX_H

#include <stdbool.h>
#include <stdint.h>

/* The one ZeroMQ context of the process, created on first use; never NULL. */
void *svc__zctx(void);

/* Opens a socket of type with LINGER 0; NULL with errno set on failure. */
void *svc__socket(int type);

/* Closes *sock if open and sets it to NULL. */
void svc__socket_close(void **sock);

/* A per-process pseudo-random 64-bit number (xorshift seeded from getrandom). Thread-safe. */
uint64_t svc__rand(void);

/* 16 hex characters of randomness into buf (17 bytes incl. NUL). */
void svc__rand_hex(char buf[17]);

/* True when address is a ZeroMQ endpoint svc accepts: tcp://, ipc:// or inproc://. */
bool svc__address_valid(const char *address);

#endif
