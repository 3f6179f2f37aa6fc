/*
 * auth.h — authenticating a request's credential: the one token check.
 *
 * The bearer token's shape is checked first (no database work for junk),
 * then its SHA-256 is looked up; expired, revoked and deactivated are all
 * refused with a reason that names the problem but never echoes the token.
 * Every refusal is an audit event. (Issue 6 adds the in-process cache fed
 * by LISTEN/NOTIFY here, behind the same function.)
 */
#ifndef TSR_AUTH_H
#define TSR_AUTH_H

#include <stddef.h>
#include "http.h"

/* Fill r->who from the request's credential. why gets the refusal reason. */
tsr_rc auth_request(struct http_req *r, char *why, size_t whylen) TSR_WUR;
/*
 * Can auth_request() answer r without a query? True for a missing or
 * malformed credential (refused at once) and for a token fresh in the cache,
 * which it keeps in r->who (r->who_cached) for auth_request to use; false
 * when the token must be looked up (for a route's fast check, http.h).
 */
bool auth_fast(struct http_req *r);
/* Audit a role refusal (need: the roles that would have sufficed). */
void auth_audit_denied(struct http_req *r, const char *need);

#endif
