/*
 * tokencache.h — the one token check, with an in-process cache kept honest
 * by LISTEN/NOTIFY.
 *
 * A credential is looked up by the SHA-256 of its token. Valid credentials
 * are cached; a cached entry is dropped when a notification says it may have
 * changed (tessera_revoke: a credential id or user:<id>; tessera_perm:
 * user:<u>:repo:<r>, repo:<r>, all), and never trusted for long anyway:
 * entries are re-read after 30 s (those in use, by a background thread
 * from 20 s of age, so a request rarely waits on PostgreSQL), and after 1 s
 * while the notification connection is down (it flushes everything when the connection drops and
 * again when it is back, since notifications in between are lost). A lookup
 * that raced with an invalidation is not cached (epoch check), so a
 * revocation committed on another replica is honoured on the next request.
 * Thread-safe: one mutex, a leaf lock held only around table operations.
 */
#ifndef TSR_TOKENCACHE_H
#define TSR_TOKENCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include "broker.h"
#include "../db/credential.h"

struct tokencache;

/* Start the cache and its listener (own connection to conninfo). Caller stops with tokencache_stop(). */
tsr_rc tokencache_start(struct broker *b, struct tokencache **out) TSR_WUR;
void tokencache_stop(struct tokencache *tc);

/*
 * Resolve the token whose hash is given. TSR_OK fills *out (the caller still
 * decides what revoked/expired/inactive/perm_ok mean for its route),
 * TSR_NOT_FOUND for an unknown token, TSR_UNAVAILABLE without a database.
 */
tsr_rc tokencache_check(struct tokencache *tc, const uint8_t hash[32], struct principal *out) TSR_WUR;
/*
 * The same answer when it is cached and fresh (true: *out filled, counted
 * as a hit), without ever querying: false means tokencache_check() would.
 */
bool tokencache_peek(struct tokencache *tc, const uint8_t hash[32], struct principal *out);

/* Drop every cached entry (tests, SIGHUP). */
void tokencache_flush(struct tokencache *tc);
/*
 * Drop the entries of one user / one credential (session or access token).
 * The replica that committed a revocation or an offboarding calls this
 * before it answers, so "revoked" holds here at once even if its own
 * notification is still on its way; other replicas rely on the NOTIFY.
 * NULL tc is a no-op.
 */
void tokencache_evict_user(struct tokencache *tc, int64_t user_id);
void tokencache_evict_cred(struct tokencache *tc, int64_t cred_id);

/* For /metrics. */
int tokencache_size(struct tokencache *tc);
int tokencache_listener_pid(struct tokencache *tc);
uint64_t tokencache_hits(struct tokencache *tc);
/* Entries re-read in the background before they went stale. */
uint64_t tokencache_refreshes(struct tokencache *tc);
uint64_t tokencache_misses(struct tokencache *tc);

#endif
