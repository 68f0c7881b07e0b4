/*
 * registryd/backend.h — where registryd keeps services.
 *
 * A backend is a table of operations over its private state.  The in-memory
 * backend (memory.c) is the default; a later one (etcd) implements the same
 * table.  Callers serialise access: registryd holds one lock around every
 * call, so backends need no locking of their own.
 *
 * Operations that change the registry report what changed as watch events
 * (Svc__Registry__Result), appended to an reg_events list the caller then
 * broadcasts and frees.
 */
#ifndef REG_BACKEND_H
#define REG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "registry.pb-c.h"

/* Limits that bound memory against careless or hostile registrations. */
#define REG_MAX_NAME      256     /* bytes in a service name, version, node id */
#define REG_MAX_NODES     4096    /* nodes per service version */
#define REG_MAX_SERVICES  65536   /* service versions */
#define REG_DEFAULT_TTL_S 90
#define REG_MAX_TTL_S     86400
#define REG_MAX_SERVICE_BYTES (256 * 1024)  /* encoded service in one registration */

/* Changes produced by one operation, in order. */
typedef struct reg_events {
    Svc__Registry__Result **items;  /* owned */
    size_t n, cap;
} reg_events;

void reg_events_release(reg_events *ev);

/*
 * Appends an event for one node of svc (copied: endpoints and metadata of
 * svc, plus only `node`).  0 or -ENOMEM.
 */
int reg_events_add(reg_events *ev, const char *action, const Svc__Registry__Service *svc,
                   const Svc__Registry__Node *node);

typedef struct reg_backend reg_backend;

typedef struct reg_backend_ops {
    const char *name;   /* "memory", ... */
    /*
     * Adds or refreshes every node of svc for ttl_s seconds.  A new node gives
     * a "create" event; a known node whose address, metadata or the service's
     * endpoints changed gives "update"; a plain refresh gives none.
     * Returns 0, -ENOSPC past the limits, -ENOMEM.
     */
    int (*register_)(reg_backend *b, const Svc__Registry__Service *svc, uint32_t ttl_s,
                     int64_t now_ms, reg_events *ev);
    /* Removes the named nodes of svc (by id); "delete" events.  -ENOENT if none known. */
    int (*deregister)(reg_backend *b, const Svc__Registry__Service *svc, reg_events *ev);
    /*
     * Every version of service `name` with its live nodes, as new messages the
     * caller owns (free_unpacked each); *n of them.  0 (possibly n == 0) or -ENOMEM.
     */
    int (*get)(reg_backend *b, const char *name, int64_t now_ms, Svc__Registry__Service ***out,
               size_t *n);
    /* Name and version of every service, sorted by name then version; ownership as get. */
    int (*list)(reg_backend *b, Svc__Registry__Service ***out, size_t *n);
    /* Removes nodes whose TTL passed by now_ms; "delete" events. */
    int (*expire)(reg_backend *b, int64_t now_ms, reg_events *ev);
    void (*destroy)(reg_backend *b);
} reg_backend_ops;

struct reg_backend {
    const reg_backend_ops *ops;  /* operations */
    void *state;                 /* the backend's own */
};

/* The in-memory backend. NULL on out-of-memory. */
reg_backend *reg_memory_new(void);

/* Deep copy of any protobuf-c message (pack + unpack).  NULL on out-of-memory. */
void *reg_copy(const ProtobufCMessage *m);

#endif
