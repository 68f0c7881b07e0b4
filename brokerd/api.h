/*
 * brokerd/api.h — the svc.broker endpoints: request validation, then one
 * backend op per call (Events.*), or the pub/sub thread's stats (Broker.*).
 */
#ifndef BRK_API_H
#define BRK_API_H

#include <stddef.h>
#include <stdint.h>

#include "svc/service.h"
#include "backend.h"
#include "pubsub.h"

/* What the handlers share; lives as long as the service runs. */
typedef struct brk_api {
    brk_backend *backend;     /* event streams */
    brk_pubsub *pubsub;       /* pub/sub thread */
    uint32_t max_payload;     /* largest body accepted */
    int sub_hwm;              /* per-subscriber queue, for Broker.Info */
} brk_api;

/*
 * Checks a publish request (stream name, topic, id, body size against
 * max_payload): 0, or the HTTP-like code with a one-line reason in detail.
 * Shared by Events.Publish and the BRK1W path (brokerd/pubsub.c).
 */
int brk_api_check_publish(const Svc__Broker__PublishRequest *req, uint32_t max_payload,
                          char *detail, size_t n);

/* Adds every endpoint to s and sets api as the service's data.  0 or negative. */
int brk_api_register(svc_service *s, brk_api *api);

#endif
