/*
 * users.c — see users.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "users.h"

#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
#define USER_COLS                                                                                              \
	"u.id, u.user_name, coalesce(u.display_name, ''), "                                                    \
	"coalesce((SELECT e.value FROM user_emails e WHERE e.user_id = u.id ORDER BY e.is_primary DESC LIMIT 1), ''), " \
	"coalesce(u.repo_login, ''), "                                                                         \
	"coalesce((SELECT string_agg(DISTINCT s.source, ',') FROM user_sources s WHERE s.user_id = u.id), ''), "   \
	"coalesce((SELECT string_agg(DISTINCT g.role, ',') FROM role_grants g WHERE g.user_id = u.id), ''), "      \
	"u.active, " TS("u.deactivated_at") ", coalesce(u.deactivated_by, ''), "                              \
	"coalesce(u.deactivated_reason, ''), " TS("u.created_at") ", "                                        \
	"(SELECT count(*) FROM credentials c WHERE c.user_id = u.id AND c.revoked_at IS NULL "                 \
	"   AND (c.expires_at IS NULL OR c.expires_at > now())), "                                           \
	"(SELECT count(*) FROM repo_permissions p WHERE p.user_id = u.id) "

static const struct db_stmt S_BY_NAME = { "users_by_name", 1,
	"SELECT " USER_COLS " FROM users u WHERE lower(u.user_name) = lower($1) AND u.deleted_at IS NULL" };
static const struct db_stmt S_BY_LOGIN = { "users_by_repo_login", 1,
	"SELECT " USER_COLS " FROM users u WHERE lower(u.repo_login) = lower($1) AND u.deleted_at IS NULL" };
static const struct db_stmt S_LIST = { "users_list", 2,
	"SELECT " USER_COLS " FROM users u WHERE u.deleted_at IS NULL AND ($1::text IS NULL "
	"   OR strpos(lower(u.user_name), lower($1)) > 0 OR strpos(lower(coalesce(u.display_name, '')), lower($1)) > 0 "
	"   OR EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id AND strpos(lower(e.value), lower($1)) > 0)) "
	" ORDER BY lower(u.user_name) LIMIT $2" };

static void fill(const PGresult *r, int i, struct user_row *u)
{
	memset(u, 0, sizeof(*u));
	u->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	snprintf(u->user_name, sizeof(u->user_name), "%s", PQgetvalue(r, i, 1));
	snprintf(u->display_name, sizeof(u->display_name), "%s", PQgetvalue(r, i, 2));
	snprintf(u->email, sizeof(u->email), "%s", PQgetvalue(r, i, 3));
	snprintf(u->repo_login, sizeof(u->repo_login), "%s", PQgetvalue(r, i, 4));
	snprintf(u->sources, sizeof(u->sources), "%s", PQgetvalue(r, i, 5));
	snprintf(u->roles, sizeof(u->roles), "%s", PQgetvalue(r, i, 6));
	u->active = strcmp(PQgetvalue(r, i, 7), "t") == 0;
	snprintf(u->deactivated_at, sizeof(u->deactivated_at), "%s", PQgetvalue(r, i, 8));
	snprintf(u->deactivated_by, sizeof(u->deactivated_by), "%s", PQgetvalue(r, i, 9));
	snprintf(u->deactivated_reason, sizeof(u->deactivated_reason), "%s", PQgetvalue(r, i, 10));
	snprintf(u->created_at, sizeof(u->created_at), "%s", PQgetvalue(r, i, 11));
	u->live_credentials = (int)strtol(PQgetvalue(r, i, 12), NULL, 10);
	u->repos = (int)strtol(PQgetvalue(r, i, 13), NULL, 10);
}

static tsr_rc one(struct db_conn *c, const struct db_stmt *s, const char *arg, struct user_row *out)
{
	const char *p[] = { arg };
	tsr_rc rc;
	PGresult *r = db_exec(c, s, 1, p, &rc);
	if (!r)
		return rc;
	rc = PQntuples(r) == 1 ? TSR_OK : TSR_NOT_FOUND;
	if (rc == TSR_OK)
		fill(r, 0, out);
	PQclear(r);
	return rc;
}

tsr_rc db_user_by_name(struct db_conn *c, const char *name, struct user_row *out)
{
	return one(c, &S_BY_NAME, name, out);
}

tsr_rc db_user_by_repo_login(struct db_conn *c, const char *login, struct user_row *out)
{
	return one(c, &S_BY_LOGIN, login, out);
}

tsr_rc db_user_list(struct db_conn *c, const char *query, int limit, struct user_row **rows, int *n)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = { query, lim };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LIST, 2, p, &rc);
	if (!r)
		return rc;
	int k = PQntuples(r);
	*rows = calloc((size_t)(k ? k : 1), sizeof(**rows));
	if (!*rows) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < k; i++)
		fill(r, i, &(*rows)[i]);
	*n = k;
	PQclear(r);
	return TSR_OK;
}
