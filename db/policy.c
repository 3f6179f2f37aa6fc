/*
 * policy.c — see policy.h.
 *
 * The reservation is the statement the schema comment of usage_counters
 * prescribes: the row is created (ON CONFLICT DO NOTHING) and then
 * conditionally incremented, so two replicas racing for the last tokens of
 * a budget cannot both win: the UPDATE's WHERE re-checks under the row lock.
 * A settlement that arrives after midnight UTC settles against the day it
 * was reserved on only approximately (today's row); budgets are daily
 * guard rails, not invoices (reports use audit_events).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

static const struct db_stmt S_USAGE_ROW = { "policy_usage_row", 1,
	"INSERT INTO usage_counters (user_id, day) VALUES ($1, (now() AT TIME ZONE 'UTC')::date) "
	"ON CONFLICT DO NOTHING" };
static const struct db_stmt S_RESERVE = { "policy_usage_reserve", 3,
	"UPDATE usage_counters SET tokens_reserved = tokens_reserved + $2, requests = requests + 1, updated_at = now() "
	" WHERE user_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date "
	"   AND tokens_used + tokens_reserved + $2 <= $3 "
	"RETURNING tokens_used + tokens_reserved" };
static const struct db_stmt S_SPENT = { "policy_usage_spent", 1,
	"SELECT tokens_used + tokens_reserved FROM usage_counters "
	" WHERE user_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date" };
static const struct db_stmt S_SETTLE = { "policy_usage_settle", 4,
	"UPDATE usage_counters SET tokens_reserved = greatest(tokens_reserved - $2, 0), "
	"  tokens_used = tokens_used + $3, bytes_out = bytes_out + $4, updated_at = now() "
	" WHERE user_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date" };

/* $1 user, $2 slice wanted, $3 limit */
static const struct db_stmt S_RATE_LEASE = { "policy_rate_lease", 3,
	"WITH lease AS ( "
	"  INSERT INTO rate_windows AS w (user_id, window_start, used, last_grant) "
	"  VALUES ($1, date_trunc('minute', now()), least($2::int, $3::int), least($2::int, $3::int)) "
	"  ON CONFLICT (user_id, window_start) DO UPDATE "
	"    SET last_grant = least($2::int, $3::int - w.used), used = w.used + least($2::int, $3::int - w.used) "
	"    WHERE w.used < $3::int "
	"  RETURNING last_grant) "
	"SELECT coalesce((SELECT last_grant FROM lease), 0), "
	"  extract(epoch FROM date_trunc('minute', now()))::bigint, "
	"  ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()) * 1000)::bigint" };
static const struct db_stmt S_RATE_PRUNE = { "policy_rate_prune", 0,
	"DELETE FROM rate_windows WHERE window_start < now() - interval '5 minutes'" };
/* $1 user, $2 group names: the 1-based positions of the groups the user is in (nested) */
static const struct db_stmt S_GROUP_MASK = { "policy_user_group_mask", 2,
	"WITH RECURSIVE closure(id) AS ( "
	"    SELECT group_id FROM group_members WHERE member_user_id = $1 "
	"  UNION "
	"    SELECT gm.group_id FROM group_members gm JOIN closure c ON gm.member_group_id = c.id "
	") "
	"SELECT DISTINCT n.i FROM unnest($2::text[]) WITH ORDINALITY AS n(name, i) "
	"  JOIN groups g ON lower(g.name) = lower(n.name) AND g.source IN ('ldap', 'scim', 'local') "
	"  JOIN closure c ON c.id = g.id" };

tsr_rc db_usage_reserve(struct db_conn *c, int64_t user_id, int64_t tokens, int64_t limit, bool *granted,
			int64_t *spent)
{
	char u[24], t[24], l[24];
	snprintf(u, sizeof(u), "%" PRId64, user_id);
	snprintf(t, sizeof(t), "%" PRId64, tokens);
	snprintf(l, sizeof(l), "%" PRId64, limit);
	const char *p[] = { u, t, l };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_USAGE_ROW, 1, p, &rc);
	if (!r)
		return rc;
	PQclear(r);
	r = db_exec(c, &S_RESERVE, 3, p, &rc);
	if (!r)
		return rc;
	*granted = PQntuples(r) == 1;
	if (*granted) {
		*spent = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		return TSR_OK;
	}
	PQclear(r);
	r = db_exec(c, &S_SPENT, 1, p, &rc);
	if (!r)
		return rc;
	*spent = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_usage_settle(struct db_conn *c, int64_t user_id, int64_t reserved, int64_t used, int64_t bytes_out)
{
	char u[24], rs[24], us[24], b[24];
	snprintf(u, sizeof(u), "%" PRId64, user_id);
	snprintf(rs, sizeof(rs), "%" PRId64, reserved);
	snprintf(us, sizeof(us), "%" PRId64, used);
	snprintf(b, sizeof(b), "%" PRId64, bytes_out);
	const char *p[] = { u, rs, us, b };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_SETTLE, 4, p, &rc);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rate_lease(struct db_conn *c, int64_t user_id, int want, int64_t limit, int *granted,
		     int64_t *window_start, int64_t *left_ms)
{
	char u[24], w[24], l[24];
	snprintf(u, sizeof(u), "%" PRId64, user_id);
	snprintf(w, sizeof(w), "%d", want);
	snprintf(l, sizeof(l), "%" PRId64, limit);
	const char *p[] = { u, w, l };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_RATE_LEASE, 3, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	*granted = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	*window_start = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	*left_ms = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rate_prune(struct db_conn *c)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_RATE_PRUNE, 0, NULL, &rc);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_user_group_mask(struct db_conn *c, int64_t user_id, const char *const *names, size_t n, uint64_t *mask)
{
	if (n > 64)
		return TSR_INVALID;
	*mask = 0;
	char u[24];
	snprintf(u, sizeof(u), "%" PRId64, user_id);
	char *arr = db_text_array(names, n);
	if (!arr)
		return TSR_INTERNAL;
	const char *p[] = { u, arr };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_GROUP_MASK, 2, p, &rc);
	free(arr);
	if (!r)
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		long pos = strtol(PQgetvalue(r, i, 0), NULL, 10);
		if (pos >= 1 && pos <= 64)
			*mask |= 1ULL << (pos - 1);
	}
	PQclear(r);
	return TSR_OK;
}
