/*
 * libsvc/topic.h — topics and patterns (internal; shared by libsvc's broker client and brokerd).
 *
 * A topic is one or more tokens separated by '.', each token 1+ bytes of
 * [A-Za-z0-9_-:$] (no spaces, no empty tokens), 1..256 bytes in all:
 * "orders.created", "eu.orders.42".
 * A pattern is a topic whose tokens may also be
 *   "*"  matches exactly one token           orders.*   ~ orders.created, not orders.a.b
 *   ">"  (last token only) one or more tokens orders.>   ~ orders.a, orders.a.b, not orders
 * as in NATS.  Matching is exact on every other token (case-sensitive).
 */
#ifndef SVC__TOPIC_H
#define SVC__TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define SVC__TOPIC_MAX 256

/* True when s (len bytes, not NUL-terminated) is a valid topic, or with
 * wildcards a valid pattern. */
bool svc__topic_valid(const char *s, size_t len, bool wildcards);

/* True when topic (len bytes) matches pattern (NUL-terminated, valid).
 * Both must be valid; topic must not hold wildcards. */
bool svc__topic_match(const char *pattern, const char *topic, size_t len);

#endif
