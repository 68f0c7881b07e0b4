/*
 * registryd/watch.h — the clients streaming Registry.Watch.
 *
 * Each watcher is a server stream with an optional service-name filter.
 * reg_watch_broadcast sends events to every matching watcher and drops the
 * ones whose client is gone or cannot keep up.  Thread-safe.
 */
#ifndef REG_WATCH_H
#define REG_WATCH_H

#include "backend.h"
#include "svc/service.h"

typedef struct reg_watchers reg_watchers;

reg_watchers *reg_watchers_new(void);

/*
 * Adds a watcher; on success takes the stream.  filter "" = every service.
 * 0, or -ENOMEM leaving the stream the caller's.
 */
int reg_watchers_add(reg_watchers *w, svc_stream *stream, const char *filter);

/* Sends each event to the watchers that match it. */
void reg_watchers_broadcast(reg_watchers *w, const reg_events *ev);

/* Drops watchers whose client cancelled or went away. */
void reg_watchers_sweep(reg_watchers *w);

/* Number of watchers. */
size_t reg_watchers_count(reg_watchers *w);

/* Ends every stream and frees the set. */
void reg_watchers_destroy(reg_watchers **w);

#endif
