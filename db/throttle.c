/*
 * throttle.c — see throttle.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "throttle.h"

static const struct db_stmt S_CHECK = { "throttle_check", 1,
	"SELECT ceil(extract(epoch FROM blocked_until - now()))::int FROM auth_throttle "
	" WHERE key = $1 AND blocked_until > now()" };
static const struct db_stmt S_FAIL = { "throttle_fail", 2,
	"INSERT INTO auth_throttle AS t (key, failures, window_start, updated_at) VALUES ($1, 1, now(), now()) "
	"ON CONFLICT (key) DO UPDATE SET "
	"  failures = CASE WHEN t.window_start < now() - interval '5 minutes' THEN 1 ELSE t.failures + 1 END, "
	"  window_start = CASE WHEN t.window_start < now() - interval '5 minutes' THEN now() ELSE t.window_start END, "
	"  blocked_until = CASE WHEN t.window_start >= now() - interval '5 minutes' AND t.failures + 1 >= $2::int "
	"                       THEN now() + interval '5 minutes' ELSE t.blocked_until END, "
	"  updated_at = now()" };
static const struct db_stmt S_CLEAR = { "throttle_clear", 1, "DELETE FROM auth_throttle WHERE key = $1" };

tsr_rc db_throttle_check(struct db_conn *c, const char *key, int *retry_after_s)
{
	const char *p[] = { key };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_CHECK, 1, p, &rc);
	if (!r)
		return rc;
	rc = TSR_OK;
	if (PQntuples(r) == 1) {
		*retry_after_s = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
		if (*retry_after_s < 1)
			*retry_after_s = 1;
		rc = TSR_RATE_LIMITED;
	}
	PQclear(r);
	return rc;
}

tsr_rc db_throttle_fail(struct db_conn *c, const char *key, int limit)
{
	char l[16];
	snprintf(l, sizeof(l), "%d", limit);
	const char *p[] = { key, l };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_FAIL, 2, p, &rc);
	PQclear(r);
	return rc;
}

tsr_rc db_throttle_clear(struct db_conn *c, const char *key)
{
	const char *p[] = { key };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_CLEAR, 1, p, &rc);
	PQclear(r);
	return rc;
}
