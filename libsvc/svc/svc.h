/*
 * svc/svc.h — everything a service or client needs: include this one header.
 * Link with $(pkg-config --libs svc).
 */
#ifndef SVC_SVC_H
#define SVC_SVC_H

#include "svc/client.h"
#include "svc/codec.h"
#include "svc/error.h"
#include "svc/log.h"
#include "svc/meta.h"
#include "svc/service.h"
#include "svc/broker.h"
#include "svc/events.h"
#include "svc/trace.h"
#include "svc/wrap.h"
#include "svc/store.h"
#include "svc/sync.h"

#endif
