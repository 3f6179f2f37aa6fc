/*
 * offboard.c — see offboard.h.
 *
 * Lock order: the users row (FOR UPDATE) first, then credentials, then
 * role_grants, then the audit chain head (db_audit_append). Every caller
 * goes through here, so two triggers racing on one user serialise on the
 * users row and the second finds nothing left to do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "offboard.h"
#include "audit.h"
#include "notify.h"
#include "../lib/log.h"

static const struct db_stmt S_LOCK = { "offboard_lock_user", 1,
	"SELECT user_name, active FROM users WHERE id = $1 FOR UPDATE" };
static const struct db_stmt S_DEACTIVATE = { "offboard_deactivate", 3,
	"UPDATE users SET active = false, deactivated_at = coalesce(deactivated_at, now()), "
	"       deactivated_reason = $3, deactivated_by = $2, updated_at = now() "
	" WHERE id = $1 AND active "
	"RETURNING to_char(deactivated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" };
static const struct db_stmt S_REVOKE = { "offboard_revoke", 3,
	"UPDATE credentials SET revoked_at = now(), revoked_reason = $2, revoked_by = $3 "
	" WHERE user_id = $1 AND revoked_at IS NULL "
	"RETURNING id, kind, "
	"  to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
	"  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
	"  to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" };
static const struct db_stmt S_DROP_ROLES = { "offboard_drop_roles", 1,
	"DELETE FROM role_grants WHERE user_id = $1 RETURNING role, via" };
static const struct db_stmt S_REINSTATE = { "offboard_reinstate", 1,
	"UPDATE users SET active = true, deactivated_at = NULL, deactivated_reason = NULL, "
	"       deactivated_by = NULL, updated_at = now() "
	" WHERE id = $1 AND NOT active AND deleted_at IS NULL RETURNING user_name" };

static json_t *str_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

tsr_rc db_offboard(struct db_conn *c, int64_t user_id, const char *trigger, const char *actor, const char *reason,
		   struct offboard_result *out)
{
	memset(out, 0, sizeof(*out));
	char uid[24], rreason[600];
	snprintf(uid, sizeof(uid), "%" PRId64, user_id);
	snprintf(rreason, sizeof(rreason), "offboard: %s", reason ? reason : "");
	json_t *receipt = NULL;
	char *detail = NULL;
	char user_name[520] = "";
	bool own;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return rc;

	const char *p1[] = { uid };
	PGresult *r = db_exec(c, &S_LOCK, 1, p1, &rc);
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		PQclear(r);
		rc = TSR_NOT_FOUND;
		goto out;
	}
	snprintf(user_name, sizeof(user_name), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);

	receipt = json_pack("{s:s,s:I,s:s,s:s,s:s,s:[],s:[]}", "user", user_name, "user_id", (json_int_t)user_id,
			    "trigger", trigger, "actor", actor, "reason", reason ? reason : "", "credentials",
			    "roles_removed");
	if (!receipt) {
		rc = TSR_INTERNAL;
		goto out;
	}

	const char *p2[] = { uid, trigger, reason ? reason : "" };
	r = db_exec(c, &S_DEACTIVATE, 3, p2, &rc);
	if (!r)
		goto out;
	bool deactivated_now = PQntuples(r) == 1;
	if (deactivated_now)
		json_object_set_new(receipt, "deactivated_at", json_string(PQgetvalue(r, 0, 0)));
	PQclear(r);

	const char *p3[] = { uid, rreason, actor };
	r = db_exec(c, &S_REVOKE, 3, p3, &rc);
	if (!r)
		goto out;
	json_t *creds = json_object_get(receipt, "credentials");
	out->credentials = PQntuples(r);
	for (int i = 0; i < PQntuples(r); i++) {
		json_array_append_new(creds, json_pack("{s:I,s:s,s:o,s:o,s:o}", "id",
						       (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "kind",
						       PQgetvalue(r, i, 1), "last_used_at", str_or_null(r, i, 2),
						       "expires_at", str_or_null(r, i, 3), "revoked_at",
						       str_or_null(r, i, 4)));
	}
	PQclear(r);

	r = db_exec(c, &S_DROP_ROLES, 1, p1, &rc);
	if (!r)
		goto out;
	json_t *roles = json_object_get(receipt, "roles_removed");
	out->roles = PQntuples(r);
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(roles, json_pack("{s:s,s:s}", "role", PQgetvalue(r, i, 0), "via",
						       PQgetvalue(r, i, 1)));
	PQclear(r);

	out->changed = deactivated_now || out->credentials > 0 || out->roles > 0;
	if (!out->changed)
		goto out; /* idempotent: nothing left to revoke, no second receipt */

	detail = json_dumps(receipt, JSON_COMPACT | JSON_SORT_KEYS);
	struct audit_event ev;
	if (!detail || (rc = audit_event_init(&ev, actor, "user.offboard", "success")) != TSR_OK) {
		rc = rc == TSR_OK ? TSR_INTERNAL : rc;
		goto out;
	}
	ev.user_id = user_id;
	ev.target = user_name;
	ev.detail = detail;
	if ((rc = db_audit_append(c, &ev, 1)) != TSR_OK)
		goto out;
	char payload[40];
	snprintf(payload, sizeof(payload), "user:%" PRId64, user_id);
	/* delivered at COMMIT, to every replica */
	rc = notify_send(c, NOTIFY_REVOKE_CHANNEL, payload);
out:
	rc = db_tx_end(c, own, rc);
	if (rc == TSR_OK && out->changed)
		log_info("user_offboarded", "user_id=%" PRId64 " trigger=%s credentials=%d roles=%d", user_id, trigger,
			 out->credentials, out->roles);
	json_decref(receipt);
	free(detail);
	return rc;
}

tsr_rc db_reinstate(struct db_conn *c, int64_t user_id, const char *actor, const char *reason, bool *changed)
{
	char uid[24];
	snprintf(uid, sizeof(uid), "%" PRId64, user_id);
	*changed = false;
	bool own;
	char *detail = NULL;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return rc;
	const char *p[] = { uid };
	PGresult *r = db_exec(c, &S_LOCK, 1, p, &rc);
	if (!r)
		goto out;
	int found = PQntuples(r);
	PQclear(r);
	if (found != 1) {
		rc = TSR_NOT_FOUND;
		goto out;
	}
	r = db_exec(c, &S_REINSTATE, 1, p, &rc);
	if (!r)
		goto out;
	*changed = PQntuples(r) == 1;
	char name[520] = "";
	if (*changed)
		snprintf(name, sizeof(name), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!*changed)
		goto out;
	json_t *d = json_pack("{s:s}", "reason", reason ? reason : "");
	detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	struct audit_event ev;
	if (!detail || (rc = audit_event_init(&ev, actor, "user.reinstate", "success")) != TSR_OK) {
		rc = rc == TSR_OK ? TSR_INTERNAL : rc;
		goto out;
	}
	ev.user_id = user_id;
	ev.target = name;
	ev.detail = detail;
	rc = db_audit_append(c, &ev, 1);
out:
	free(detail);
	return db_tx_end(c, own, rc);
}
