/*
 * svc/sync.h — distributed locks and leader election (go-micro's sync
 * interface), served by stored ("svc.store"), with fencing tokens.
 *
 *     int64_t token;
 *     if (svc_lock(c, "jobs/42", 10000, 5000, &token, &err) == 0) {
 *         svc_store_opts o = { .fence_lock = "jobs/42", .fence_token = token };
 *         svc_store_write(c, &o, "jobs/42/state", "done", 4, NULL, NULL, &err);
 *         svc_unlock(c, "jobs/42", token, &err);
 *     }
 *
 * A lock is a lease: it ends after ttl_ms unless refreshed, so a holder
 * that dies or stalls loses it.  A stalled holder does not know it lost
 * the lock — that is what the fencing token is for: it grows with every
 * grant, and stored refuses (409) a write fenced with a token that no
 * longer holds the lock.  Resources outside stored should keep the highest
 * token they have seen and refuse lower ones.
 *
 * Errors as svc_call (svc/client.h).  A held lock after wait_ms, or a
 * token that no longer holds its lock, is SVC_EREMOTE with err->code 409.
 */
#ifndef SVC_SYNC_H
#define SVC_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/client.h"
#include "svc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Takes lock id for ttl_ms (0 = 10 s), waiting up to wait_ms (0 = not at
 * all) while another holds it.  *token gets the fencing token.
 */
int svc_lock(svc_client *c, const char *id, int64_t ttl_ms, int64_t wait_ms, int64_t *token,
             svc_error *err);

/* Extends the lease by ttl_ms from now; 409 once the token no longer holds it. */
int svc_lock_refresh(svc_client *c, const char *id, int64_t token, int64_t ttl_ms, svc_error *err);

/* Releases the lock; 409 once the token no longer holds it. */
int svc_unlock(svc_client *c, const char *id, int64_t token, svc_error *err);

/* ---- leader election ------------------------------------------------------- */

typedef struct svc_leader svc_leader;

/*
 * Campaigns for election `name` as `candidate` until elected or wait_ms
 * passes (409).  Once elected, a thread of the returned handle renews the
 * lease every ttl_ms / 3 (with its own client on c's registry) until
 * svc_leader_resign; when a renewal is refused or none succeeds for a whole
 * lease, leadership is lost: svc_leader_lost() turns true.
 */
int svc_leader_campaign(svc_client *c, const char *name, const char *candidate, int64_t ttl_ms,
                        int64_t wait_ms, svc_leader **out, svc_error *err);

/* The term won: a fencing token for lock "leader/<name>". */
int64_t svc_leader_term(const svc_leader *l);

/* True once leadership is lost.  Thread-safe. */
bool svc_leader_lost(const svc_leader *l);

/* Waits up to timeout_ms (-1: forever) for leadership to be lost; true if it was. */
bool svc_leader_wait_lost(svc_leader *l, int timeout_ms);

/* Stops renewing, resigns if still leader (best effort), frees; *l becomes NULL. */
void svc_leader_resign(svc_leader **l);

/* Who leads election name now: *leader (caller frees) and *term.  404 when nobody. */
int svc_leader_get(svc_client *c, const char *name, char **leader, int64_t *term, svc_error *err);

#ifdef __cplusplus
}
#endif
#endif
