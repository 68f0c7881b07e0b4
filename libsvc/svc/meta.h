/*
 * svc/meta.h — metadata: a small ordered string map carried with every call
 * (trace ids, auth token, caller) and attached to services and nodes.
 *
 * Keys are compared case-sensitively.  Lookups are linear: metadata is a
 * handful of pairs, and order is kept as inserted.
 */
#ifndef SVC_META_H
#define SVC_META_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct svc_meta_pair {
    char *key;   /* owned */
    char *value; /* owned */
} svc_meta_pair;

typedef struct svc_meta {
    svc_meta_pair *pairs; /* n pairs, owned */
    size_t n;             /* pairs in use */
    size_t cap;           /* pairs allocated */
} svc_meta;

#define SVC_META_INIT { NULL, 0, 0 }

/* Sets key to value (both copied), replacing an existing value.  0 or -ENOMEM. */
int svc_meta_set(svc_meta *m, const char *key, const char *value);

/* Value of key, borrowed until the pair is changed or m released; NULL if absent. */
const char *svc_meta_get(const svc_meta *m, const char *key);

/* Removes key if present. */
void svc_meta_del(svc_meta *m, const char *key);

/* Copies every pair of src into dst (dst's pairs with the same keys are replaced). */
int svc_meta_merge(svc_meta *dst, const svc_meta *src);

/*
 * Parses "k=v" and sets it.  Returns SVC_EINVAL if there is no '=' or the key
 * is empty.
 */
int svc_meta_parse(svc_meta *m, const char *kv);

/* Frees every pair; m is empty and reusable afterwards. */
void svc_meta_release(svc_meta *m);

#ifdef __cplusplus
}
#endif
#endif
