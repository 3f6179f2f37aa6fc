/*
 * auth.c — see auth.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "../db/audit.h"
#include "tokencache.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

/* Token from "Authorization: Bearer X" or "x-api-key: X"; NULL if absent. */
static const char *bearer(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h) {
		if (strncasecmp(h, "Bearer ", 7) != 0)
			return "";
		h += 7;
		while (*h == ' ')
			h++;
		return h;
	}
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
}

static void audit(struct http_req *r, const char *action, const char *outcome, const char *reason, int64_t cred)
{
	json_t *d = json_pack("{s:s,s:s,s:s}", "reason", reason, "route", r->url, "method", r->method);
	char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, r->authed ? r->who.user_name : "anonymous", action, outcome);
	if (rc == TSR_OK) {
		ev.actor_user_id = r->authed ? r->who.user_id : 0;
		ev.user_id = ev.actor_user_id;
		ev.actor_addr = r->client_addr;
		ev.target = r->url;
		ev.credential_id = cred;
		ev.detail = detail;
		/* the refusal is answered once its record is durable, without this worker waiting for it */
		http_audit_before_reply(r, &ev);
	}
	if (rc != TSR_OK)
		log_error("audit_write_failed", "action=%s outcome=%s", action, outcome);
	free(detail);
}

tsr_rc auth_request(struct http_req *r, char *why, size_t whylen)
{
	const char *tok = bearer(r->conn);
	if (!tok) {
		snprintf(why, whylen, "no credential: send 'Authorization: Bearer tsr_…'");
		return TSR_UNAUTHENTICATED;
	}
	if (!crypto_token_shape_ok(tok)) {
		snprintf(why, whylen, "malformed credential: expected a tsr_ token");
		audit(r, "auth.failed", "failure", "malformed credential", 0);
		return TSR_UNAUTHENTICATED;
	}
	tsr_rc rc = TSR_OK;
	if (!r->who_cached) { /* else auth_fast found it in the cache already */
		uint8_t h[SHA256_LEN];
		crypto_sha256(tok, strlen(tok), h);
		rc = tokencache_check(r->b->tokens, h, &r->who);
		OPENSSL_cleanse(h, sizeof(h));
	}
	if (rc == TSR_UNAVAILABLE) {
		snprintf(why, whylen, "credential check unavailable: database unreachable");
		return rc;
	}
	if (rc == TSR_NOT_FOUND) {
		snprintf(why, whylen, "unknown credential");
		audit(r, "auth.failed", "failure", "unknown credential", 0);
		return TSR_UNAUTHENTICATED;
	}
	if (rc != TSR_OK) {
		snprintf(why, whylen, "credential check failed");
		return rc;
	}
	const char *bad = r->who.revoked ? "credential revoked"
			  : r->who.expired ? "credential expired"
			  : !r->who.active ? "user deactivated"
			  : !r->who.perm_ok ? "permission on the token's repository was lost"
					    : NULL;
	if (bad) {
		snprintf(why, whylen, "%s", bad);
		audit(r, "auth.failed", "failure", bad, r->who.cred_id);
		return TSR_UNAUTHENTICATED;
	}
	r->authed = true;
	/* with no developer groups configured, every active user may mint tokens (tessera.conf(5)) */
	if (r->b->cfg->roles.developer.n == 0)
		r->who.roles |= ROLE_DEVELOPER;
	return TSR_OK;
}

bool auth_fast(struct http_req *r)
{
	const char *tok = bearer(r->conn);
	if (!tok || !crypto_token_shape_ok(tok))
		return true; /* refused without a query; its audit record does not hold the worker */
	uint8_t h[SHA256_LEN];
	crypto_sha256(tok, strlen(tok), h);
	r->who_cached = tokencache_peek(r->b->tokens, h, &r->who);
	OPENSSL_cleanse(h, sizeof(h));
	return r->who_cached;
}

void auth_audit_denied(struct http_req *r, const char *need)
{
	char reason[160];
	snprintf(reason, sizeof(reason), "missing role %s", need);
	audit(r, "authz.denied", "denied", reason, r->who.cred_id);
}
