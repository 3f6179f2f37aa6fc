/*
 * hooks_hr.c — see hooks_hr.h.
 *
 * Request: POST /hooks/hr with
 *   X-Tessera-Timestamp: <Unix seconds>
 *   X-Tessera-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>
 *   body {"user": "<user name>", "reason": "…"}   (or "email" instead of "user")
 * The signature covers the timestamp, and the timestamp must be within
 * [hr] replay_window of now; each signature is accepted once
 * (webhook_deliveries), so a captured request cannot be replayed. The
 * secret is webhook_secret.h's (the file until the first rotation, then
 * the stored versions: old and new both during an overlap window). The
 * comparison is constant-time. Any refusal is audited and changes nothing;
 * an accepted request runs the one offboarding path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "hooks_hr.h"
#include "tokencache.h"
#include "webhook_secret.h"
#include "../db/audit.h"
#include "../db/offboard.h"
#include "../db/users.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

static void audit_hook(struct http_req *r, const char *outcome, const char *reason, const char *user)
{
	json_t *d = json_pack("{s:s}", "reason", reason);
	char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	struct audit_event ev;
	struct db_conn *c;
	tsr_rc rc = audit_event_init(&ev, "hr-webhook", "hook.hr", outcome);
	if (rc == TSR_OK && detail && (rc = db_acquire(r->b->pool, 2000, &c)) == TSR_OK) {
		ev.actor_addr = r->client_addr;
		ev.target = user;
		ev.detail = detail;
		rc = db_audit_append(c, &ev, 1);
		db_release(r->b->pool, c);
	}
	if (rc != TSR_OK || !detail)
		log_error("audit_write_failed", "action=hook.hr outcome=%s", outcome);
	free(detail);
}

static tsr_rc refuse(struct http_req *r, const char *why, char *out, size_t n)
{
	audit_hook(r, "denied", why, NULL);
	snprintf(out, n, "%s", why);
	return TSR_UNAUTHENTICATED;
}

/*
 * The route's authenticator: signature and freshness. The signature may be
 * made with any secret webhook_secret_current() returns (the active one and,
 * during an overlap window, the previous one); each is checked in constant
 * time and all are checked.
 */
static tsr_rc hr_authn(struct http_req *r, char *why, size_t n)
{
	struct webhook_secret_set set;
	tsr_rc src = webhook_secret_current(r->b, WEBHOOK_HR, &set);
	if (src == TSR_NOT_FOUND)
		return refuse(r, "the HR webhook is not configured ([hr] webhook_secret_file)", why, n);
	tsr_rc rc = TSR_OK;
	const char *ts = http_header(r, "X-Tessera-Timestamp");
	const char *sig = http_header(r, "X-Tessera-Signature");
	char *end;
	long long t = ts ? strtoll(ts, &end, 10) : 0;
	long long now = (long long)time(NULL);
	uint8_t given[SHA256_LEN], want[SHA256_LEN];
	if (!ts || !sig || strncmp(sig, "sha256=", 7) != 0) {
		rc = refuse(r, "missing X-Tessera-Timestamp or X-Tessera-Signature: sha256=…", why, n);
	} else if (*end || end == ts || llabs(now - t) > r->b->cfg->hr.replay_window) {
		rc = refuse(r, "timestamp outside the replay window", why, n);
	} else if (!crypto_unhex(sig + 7, given, sizeof(given))) {
		rc = refuse(r, "malformed signature", why, n);
	} else if (src != TSR_OK) {
		snprintf(why, n, "the HR webhook secret cannot be read");
		rc = TSR_UNAVAILABLE;
	} else {
		const void *parts[] = { ts, ".", r->body.data ? r->body.data : "" };
		size_t lens[] = { strlen(ts), 1, r->body.len };
		bool ok = false;
		for (int i = 0; i < set.n; i++) {
			crypto_hmac_sha256(set.v[i].secret, set.v[i].len, parts, lens, 3, want);
			ok |= crypto_equal(given, want, sizeof(want));
		}
		OPENSSL_cleanse(want, sizeof(want));
		if (!ok)
			rc = refuse(r, "bad signature", why, n);
	}
	webhook_secret_set_free(&set);
	return rc;
}

static const struct db_stmt S_DELIVERY = { "hr_delivery", 1,
	"INSERT INTO webhook_deliveries (source, delivery_id) VALUES ('hr', $1) "
	"ON CONFLICT DO NOTHING RETURNING delivery_id" };
static const struct db_stmt S_BY_EMAIL = { "hr_user_by_email", 1,
	"SELECT u.user_name FROM users u JOIN user_emails e ON e.user_id = u.id "
	" WHERE lower(e.value) = lower($1) AND u.deleted_at IS NULL LIMIT 1" };

static tsr_rc h_hr(struct http_req *r)
{
	json_error_t je;
	json_t *j = r->body.len ? json_loadb(r->body.data, r->body.len, 0, &je) : NULL;
	const char *user = json_string_value(json_object_get(j, "user"));
	const char *email = json_string_value(json_object_get(j, "email"));
	const char *reason = json_string_value(json_object_get(j, "reason"));
	if ((!user || !*user) && (!email || !*email)) {
		json_decref(j);
		audit_hook(r, "failure", "body names no user", NULL);
		return http_reply_error(r, TSR_INVALID, "expected JSON {\"user\": …, \"reason\": …} or {\"email\": …}");
	}
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK) {
		json_decref(j);
		return rc;
	}
	char name[300] = "";
	struct user_row u = { 0 };
	struct offboard_result res = { 0 };
	const char *sig = http_header(r, "X-Tessera-Signature");
	if ((rc = db_simple(c, "BEGIN")) != TSR_OK)
		goto out;
	const char *pd[] = { sig + 7 };
	PGresult *pr = db_exec(c, &S_DELIVERY, 1, pd, &rc);
	if (!pr)
		goto out;
	bool fresh = PQntuples(pr) == 1;
	PQclear(pr);
	if (!fresh) {
		rc = TSR_CONFLICT;
		goto out;
	}
	if (user && *user) {
		snprintf(name, sizeof(name), "%s", user);
	} else {
		const char *pe[] = { email };
		pr = db_exec(c, &S_BY_EMAIL, 1, pe, &rc);
		if (!pr)
			goto out;
		if (PQntuples(pr) == 1)
			snprintf(name, sizeof(name), "%s", PQgetvalue(pr, 0, 0));
		PQclear(pr);
	}
	rc = name[0] ? db_user_by_name(c, name, &u) : TSR_NOT_FOUND;
	if (rc == TSR_OK)
		rc = db_offboard(c, u.id, OFFBOARD_HR, "hr-webhook", reason && *reason ? reason : "HR offboarding", &res);
out:
	if (rc == TSR_OK)
		rc = db_simple(c, "COMMIT");
	if (rc == TSR_OK && u.id)
		tokencache_evict_user(r->b->tokens, u.id);
	else if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	db_release(r->b->pool, c);
	char who[300];
	snprintf(who, sizeof(who), "%s", name[0] ? name : (user ? user : email));
	json_decref(j);
	if (rc == TSR_CONFLICT) {
		audit_hook(r, "denied", "replayed delivery", who);
		return http_reply_error(r, TSR_CONFLICT, "this delivery was already processed");
	}
	if (rc == TSR_NOT_FOUND) {
		audit_hook(r, "failure", "no such user", who);
		return http_reply_error(r, TSR_NOT_FOUND, "no user %s", who);
	}
	if (rc != TSR_OK)
		return rc;
	return http_reply_json(r, 200, json_pack("{s:s,s:b,s:i}", "user", u.user_name, "changed", res.changed,
						 "credentials_revoked", res.credentials));
}

static const struct route routes_hr[] = {
	{ "POST", "/hooks/hr", ROLE_PUBLIC, h_hr, hr_authn, NULL },
};
ROUTE_TABLE(hooks_hr_routes, routes_hr);
