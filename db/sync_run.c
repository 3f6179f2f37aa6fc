/*
 * sync_run.c — see sync_run.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_run.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define RUN_COLS                                                                                                 \
	"id, kind, mode, status, " TS("started_at") ", " TS("finished_at") ", "                                 \
	"extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8, error, started_by, forced, "     \
	"users_added, users_updated, users_deactivated, groups_added, groups_updated, groups_removed, "          \
	"memberships_added, memberships_removed, permissions_changed, api_calls, not_modified, wait_ms, "        \
	"detail::text"
#define N_RUN_COLS 23

static const struct db_stmt S_BEGIN = { "sync_run_begin", 5,
	"INSERT INTO sync_runs (kind, mode, started_by, forced, detail) VALUES ($1, $2, $3, $4, $5::jsonb) "
	"RETURNING id" };
static const struct db_stmt S_PROGRESS = { "sync_run_progress", 2,
	"UPDATE sync_runs SET detail = coalesce(detail, '{}'::jsonb) || jsonb_build_object('progress', $2::jsonb) "
	" WHERE id = $1 AND status = 'running'" };
static const struct db_stmt S_FINISH = { "sync_run_finish", 16,
	"UPDATE sync_runs SET status = $2, error = $3, finished_at = clock_timestamp(), "
	"  users_added = $4, users_updated = $5, users_deactivated = $6, groups_added = $7, groups_updated = $8, "
	"  groups_removed = $9, memberships_added = $10, memberships_removed = $11, permissions_changed = $12, "
	"  api_calls = $13, not_modified = $14, wait_ms = $15, "
	"  detail = (coalesce(detail, '{}'::jsonb) - 'progress') || coalesce($16::jsonb, '{}'::jsonb) "
	" WHERE id = $1" };
static const struct db_stmt S_ABORT = { "sync_run_abort_stale", 2,
	"UPDATE sync_runs SET status = 'aborted', finished_at = now(), "
	"  error = 'the replica running it stopped before it finished' "
	" WHERE kind = $1 AND status = 'running' AND id <> $2" };
static const struct db_stmt S_GET = { "sync_run_get", 1, "SELECT 'run', " RUN_COLS " FROM sync_runs WHERE id = $1" };
static const struct db_stmt S_BY_REQUEST = { "sync_run_by_request", 2,
	"SELECT 'run', " RUN_COLS " FROM sync_runs "
	" WHERE kind = $1 AND detail->>'request_id' = $2 AND started_at > now() - interval '1 day' "
	" ORDER BY id DESC LIMIT 1" };
static const struct db_stmt S_STATUS = { "sync_run_status", 0,
	"(SELECT DISTINCT ON (kind) 'latest', " RUN_COLS " FROM sync_runs ORDER BY kind, started_at DESC, id DESC) "
	"UNION ALL "
	"(SELECT DISTINCT ON (kind) 'last_ok', " RUN_COLS " FROM sync_runs WHERE status = 'ok' "
	"  ORDER BY kind, started_at DESC, id DESC) "
	"ORDER BY 3, 1 DESC" };
static const struct db_stmt S_LIST = { "sync_run_list", 2,
	"SELECT 'run', " RUN_COLS " FROM sync_runs WHERE ($1::text IS NULL OR kind = $1) "
	" ORDER BY started_at DESC, id DESC LIMIT $2" };

static const struct db_stmt S_LAST_OK_AGE = { "sync_run_last_ok_age", 2,
	"SELECT coalesce(extract(epoch FROM now() - max(started_at))::bigint, -1) FROM sync_runs "
	" WHERE kind = $1 AND mode = $2 AND status = 'ok'" };

static char *dup_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static int int_at(const PGresult *r, int row, int col)
{
	return (int)strtol(PQgetvalue(r, row, col), NULL, 10);
}

static void row_to_run(const PGresult *r, int i, struct sync_run *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->which, sizeof(o->which), "%s", PQgetvalue(r, i, 0));
	o->id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
	snprintf(o->kind, sizeof(o->kind), "%s", PQgetvalue(r, i, 2));
	snprintf(o->mode, sizeof(o->mode), "%s", PQgetvalue(r, i, 3));
	snprintf(o->status, sizeof(o->status), "%s", PQgetvalue(r, i, 4));
	snprintf(o->started_at, sizeof(o->started_at), "%s", PQgetvalue(r, i, 5));
	snprintf(o->finished_at, sizeof(o->finished_at), "%s", PQgetvalue(r, i, 6));
	o->duration_s = strtod(PQgetvalue(r, i, 7), NULL);
	o->error = dup_or_null(r, i, 8);
	o->started_by = dup_or_null(r, i, 9);
	o->forced = strcmp(PQgetvalue(r, i, 10), "t") == 0;
	struct sync_counts *k = &o->counts;
	k->users_added = int_at(r, i, 11);
	k->users_updated = int_at(r, i, 12);
	k->users_deactivated = int_at(r, i, 13);
	k->groups_added = int_at(r, i, 14);
	k->groups_updated = int_at(r, i, 15);
	k->groups_removed = int_at(r, i, 16);
	k->memberships_added = int_at(r, i, 17);
	k->memberships_removed = int_at(r, i, 18);
	k->permissions_changed = int_at(r, i, 19);
	k->api_calls = int_at(r, i, 20);
	k->not_modified = int_at(r, i, 21);
	k->wait_ms = strtoll(PQgetvalue(r, i, 22), NULL, 10);
	o->detail = dup_or_null(r, i, 23);
}

tsr_rc db_sync_run_begin(struct db_conn *c, const char *kind, const char *mode, const char *started_by, bool forced,
			 const char *detail_json, int64_t *id)
{
	const char *p[] = { kind, mode, started_by, forced ? "true" : "false", detail_json };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_BEGIN, 5, p, &rc);
	if (!r)
		return rc;
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_sync_run_progress(struct db_conn *c, int64_t id, const char *progress_json)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = { ids, progress_json };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_PROGRESS, 2, p, &rc);
	PQclear(r);
	return r ? TSR_OK : rc;
}

tsr_rc db_sync_run_finish(struct db_conn *c, int64_t id, const char *status, const char *error,
			  const struct sync_counts *k, const char *detail_json)
{
	char n[13][24];
	snprintf(n[0], 24, "%" PRId64, id);
	int vals[] = { k->users_added,	      k->users_updated,	      k->users_deactivated, k->groups_added,
		       k->groups_updated,     k->groups_removed,      k->memberships_added, k->memberships_removed,
		       k->permissions_changed, k->api_calls,	      k->not_modified };
	for (int i = 0; i < 11; i++)
		snprintf(n[i + 1], 24, "%d", vals[i]);
	snprintf(n[12], 24, "%" PRId64, k->wait_ms);
	const char *p[] = { n[0], status, error, n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8], n[9], n[10], n[11],
			    n[12], detail_json };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_FINISH, 16, p, &rc);
	PQclear(r);
	return r ? TSR_OK : rc;
}

tsr_rc db_sync_run_abort_stale(struct db_conn *c, const char *kind, int64_t keep_id, int *n)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, keep_id);
	const char *p[] = { kind, ids };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_ABORT, 2, p, &rc);
	if (!r)
		return rc;
	if (n)
		*n = (int)strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_sync_run_last_ok_age(struct db_conn *c, const char *kind, const char *mode, int64_t *secs)
{
	const char *p[] = { kind, mode };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LAST_OK_AGE, 2, p, &rc);
	if (!r)
		return rc;
	*secs = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

static tsr_rc one_run(struct db_conn *c, const struct db_stmt *s, int np, const char *const *p, struct sync_run *out)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, s, np, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1 || PQnfields(r) != N_RUN_COLS + 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	row_to_run(r, 0, out);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_sync_run_get(struct db_conn *c, int64_t id, struct sync_run *out)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = { ids };
	return one_run(c, &S_GET, 1, p, out);
}

tsr_rc db_sync_run_by_request(struct db_conn *c, const char *kind, const char *request_id, struct sync_run *out)
{
	const char *p[] = { kind, request_id };
	return one_run(c, &S_BY_REQUEST, 2, p, out);
}

static tsr_rc many_runs(struct db_conn *c, const struct db_stmt *s, int np, const char *const *p,
			struct sync_run **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	tsr_rc rc;
	PGresult *r = db_exec(c, s, np, p, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct sync_run *v = calloc((size_t)rows + 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++)
		row_to_run(r, i, &v[i]);
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return TSR_OK;
}

tsr_rc db_sync_run_status(struct db_conn *c, struct sync_run **out, size_t *n)
{
	return many_runs(c, &S_STATUS, 0, NULL, out, n);
}

tsr_rc db_sync_run_list(struct db_conn *c, const char *kind, int limit, struct sync_run **out, size_t *n)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit < 1 ? 1 : limit > 1000 ? 1000 : limit);
	const char *p[] = { kind, lim };
	return many_runs(c, &S_LIST, 2, p, out, n);
}

void sync_run_clear(struct sync_run *r)
{
	if (!r)
		return;
	free(r->error);
	free(r->started_by);
	free(r->detail);
	r->error = r->started_by = r->detail = NULL;
}

void sync_runs_free(struct sync_run *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		sync_run_clear(&v[i]);
	free(v);
}
