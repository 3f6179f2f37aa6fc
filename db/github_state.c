/*
 * github_state.c — see github_state.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github_state.h"
#include "../lib/buf.h"

static char *int_array(const int64_t *v, size_t n)
{
	struct buf b;
	buf_init(&b, (size_t)1 << 26);
	tsr_rc rc = buf_puts(&b, "{");
	for (size_t i = 0; i < n && rc == TSR_OK; i++)
		rc = buf_printf(&b, "%s%" PRId64, i ? "," : "", v[i]);
	if (rc == TSR_OK)
		rc = buf_puts(&b, "}");
	if (rc != TSR_OK) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* ---------- sync runs ---------- */

static const struct db_stmt S_RUN_ABORT = { "gh_run_abort", 0,
	"UPDATE sync_runs SET status = 'aborted', finished_at = now(), error = 'the replica running it stopped' "
	" WHERE kind = 'github' AND status = 'running'" };
static const struct db_stmt S_RUN_BEGIN = { "gh_run_begin", 3,
	"INSERT INTO sync_runs (kind, mode, started_by, detail) "
	"VALUES ('github', $1, $2, CASE WHEN $3::text IS NULL THEN NULL "
	"                               ELSE jsonb_build_object('request_id', $3::text) END) RETURNING id" };
static const struct db_stmt S_RUN_WEBHOOK = { "gh_run_webhook", 1,
	"INSERT INTO sync_runs (kind, mode, started_by, status, finished_at) "
	"VALUES ('github', 'webhook', $1, 'ok', now()) RETURNING id" };
static const struct db_stmt S_RUN_DISCARD = { "gh_run_discard", 1, "DELETE FROM sync_runs WHERE id = $1" };
static const struct db_stmt S_RUN_FINISH = { "gh_run_finish", 13,
	"UPDATE sync_runs SET status = $2, error = $3, finished_at = coalesce(finished_at, clock_timestamp()), "
	"       groups_added = $4, groups_updated = $5, groups_removed = $6, "
	"       memberships_added = $7, memberships_removed = $8, permissions_changed = $9, "
	"       api_calls = $10, not_modified = $11, wait_ms = $12, "
	"       detail = (coalesce(detail, '{}'::jsonb) - 'progress') || coalesce($13::jsonb, '{}'::jsonb) "
	" WHERE id = $1" };

tsr_rc db_gh_run_begin(struct db_conn *c, const char *mode, const char *started_by, const char *request_id,
		       bool abort_stale, int64_t *run_id)
{
	tsr_rc rc;
	PGresult *r;
	if (abort_stale) {
		r = db_exec(c, &S_RUN_ABORT, 0, NULL, &rc);
		if (!r)
			return rc;
		PQclear(r);
	}
	const char *p[] = { mode, started_by, request_id && *request_id ? request_id : NULL };
	r = db_exec(c, &S_RUN_BEGIN, 3, p, &rc);
	if (r)
		*run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return rc;
}

tsr_rc db_gh_run_webhook(struct db_conn *c, const char *started_by, int64_t *run_id)
{
	tsr_rc rc;
	const char *p[] = { started_by };
	PGresult *r = db_exec(c, &S_RUN_WEBHOOK, 1, p, &rc);
	if (r)
		*run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return rc;
}

tsr_rc db_gh_run_discard(struct db_conn *c, int64_t run_id)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, run_id);
	const char *p[] = { id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_RUN_DISCARD, 1, p, &rc);
	PQclear(r);
	return rc;
}

tsr_rc db_gh_run_finish(struct db_conn *c, int64_t run_id, const char *status, const char *error,
			const struct gh_run_totals *t)
{
	static const struct rp_counts zc;
	static const struct rp_changes zh;
	const struct rp_counts *k = t && t->counts ? t->counts : &zc;
	const struct rp_changes *h = t && t->changes ? t->changes : &zh;
	char v[12][24];
	snprintf(v[0], sizeof(v[0]), "%" PRId64, run_id);
	snprintf(v[1], sizeof(v[1]), "%d", k->teams_added);
	snprintf(v[2], sizeof(v[2]), "%d", k->teams_updated);
	snprintf(v[3], sizeof(v[3]), "%d", k->teams_removed);
	snprintf(v[4], sizeof(v[4]), "%d", k->members_added);
	snprintf(v[5], sizeof(v[5]), "%d", k->members_removed);
	snprintf(v[6], sizeof(v[6]), "%d", h->granted + h->raised + h->lowered + h->removed);
	snprintf(v[7], sizeof(v[7]), "%ld", t ? t->api_calls : 0L);
	snprintf(v[8], sizeof(v[8]), "%ld", t ? t->not_modified : 0L);
	snprintf(v[9], sizeof(v[9]), "%lld", (long long)(t ? t->wait_ms : 0));
	const char *p[] = { v[0], status, error, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
			    t ? t->detail : NULL };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_RUN_FINISH, 13, p, &rc);
	PQclear(r);
	return rc;
}

/* ---------- github_etags ---------- */

static const struct db_stmt S_ETAGS_LOAD = { "gh_etags_load", 2,
	"SELECT url, etag, data::text FROM github_etags "
	" WHERE left(url, length($1)) = $1 AND data IS NOT NULL AND (data->>'v')::int = $2::int" };
static const struct db_stmt S_ETAGS_SAVE = { "gh_etags_save", 4,
	"INSERT INTO github_etags (url, etag, body_sha256, data, updated_at) "
	"SELECT DISTINCT ON (url) url, etag, decode(sha, 'hex'), data::jsonb, now() "
	"  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(url, etag, sha, data) ORDER BY url "
	"ON CONFLICT (url) DO UPDATE SET etag = EXCLUDED.etag, body_sha256 = EXCLUDED.body_sha256, "
	"       data = EXCLUDED.data, updated_at = now()" };
static const struct db_stmt S_ETAGS_PURGE = { "gh_etags_purge", 0,
	"DELETE FROM github_etags WHERE updated_at < now() - interval '30 days'" };

tsr_rc db_gh_etags_load(struct db_conn *c, const char *prefix, int version, gh_etag_fn fn, void *arg)
{
	char v[16];
	snprintf(v, sizeof(v), "%d", version);
	const char *p[] = { prefix, v };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_ETAGS_LOAD, 2, p, &rc);
	if (!r)
		return rc;
	for (int i = 0; i < PQntuples(r) && rc == TSR_OK; i++)
		rc = fn(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
	PQclear(r);
	return rc;
}

tsr_rc db_gh_etags_save(struct db_conn *c, const char *const *urls, const char *const *etags,
			const char *const *sha_hex, const char *const *datas, size_t n)
{
	tsr_rc rc = TSR_OK;
	PGresult *r;
	/* batches keep each parameter a few megabytes at most */
	for (size_t off = 0; off < n && rc == TSR_OK; off += 2000) {
		size_t m = n - off < 2000 ? n - off : 2000;
		char *a[4] = { db_text_array(urls + off, m), db_text_array(etags + off, m),
			       db_text_array(sha_hex + off, m), db_text_array(datas + off, m) };
		if (a[0] && a[1] && a[2] && a[3]) {
			const char *p[] = { a[0], a[1], a[2], a[3] };
			r = db_exec(c, &S_ETAGS_SAVE, 4, p, &rc);
			PQclear(r);
		} else {
			rc = TSR_INTERNAL;
		}
		for (int i = 0; i < 4; i++)
			free(a[i]);
	}
	if (rc == TSR_OK) {
		r = db_exec(c, &S_ETAGS_PURGE, 0, NULL, &rc);
		PQclear(r);
	}
	return rc;
}

/* ---------- deliveries and queue ---------- */

static const struct db_stmt S_DELIVERY = { "gh_delivery", 1,
	"INSERT INTO webhook_deliveries (source, delivery_id) VALUES ('github', $1) "
	"ON CONFLICT (source, delivery_id) DO NOTHING RETURNING 1" };
static const struct db_stmt S_QUEUE_ADD = { "gh_queue_add", 5,
	"INSERT INTO github_sync_queue (org, kind, ref_id, ref, event) "
	"SELECT lower($1), $2, $3::bigint, $4, $5 "
	" WHERE NOT EXISTS (SELECT 1 FROM github_sync_queue q WHERE q.org = lower($1) AND q.kind = $2 "
	"                    AND q.ref_id IS NOT DISTINCT FROM $3::bigint)" };
static const struct db_stmt S_QUEUE_PEEK = { "gh_queue_peek", 1,
	"SELECT id, org, kind, coalesce(ref_id, 0), coalesce(ref, ''), coalesce(event, '') "
	"  FROM github_sync_queue ORDER BY id LIMIT $1::int" };
static const struct db_stmt S_QUEUE_DONE_BEFORE = { "gh_queue_done_before", 1,
	"DELETE FROM github_sync_queue WHERE queued_at < (SELECT started_at FROM sync_runs WHERE id = $1)" };
static const struct db_stmt S_QUEUE_DONE = { "gh_queue_done", 1,
	"DELETE FROM github_sync_queue WHERE id = ANY($1::bigint[])" };

tsr_rc db_gh_delivery_claim(struct db_conn *c, const char *delivery_id, bool *duplicate)
{
	const char *p[] = { delivery_id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_DELIVERY, 1, p, &rc);
	if (r)
		*duplicate = PQntuples(r) == 0;
	PQclear(r);
	return rc;
}

tsr_rc db_gh_queue_add(struct db_conn *c, const char *org, const char *kind, int64_t ref_id, const char *ref,
		       const char *event)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, ref_id);
	const char *p[] = { org, kind, ref_id > 0 ? id : NULL, ref, event };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_QUEUE_ADD, 5, p, &rc);
	PQclear(r);
	return rc;
}

tsr_rc db_gh_queue_peek(struct db_conn *c, int max, struct gh_queue_item **out, int *n)
{
	char m[16];
	snprintf(m, sizeof(m), "%d", max);
	const char *p[] = { m };
	tsr_rc rc;
	*out = NULL;
	*n = 0;
	PGresult *r = db_exec(c, &S_QUEUE_PEEK, 1, p, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct gh_queue_item *v = calloc((size_t)rows + 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		v[i].id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(v[i].org, sizeof(v[i].org), "%s", PQgetvalue(r, i, 1));
		snprintf(v[i].kind, sizeof(v[i].kind), "%s", PQgetvalue(r, i, 2));
		v[i].ref_id = strtoll(PQgetvalue(r, i, 3), NULL, 10);
		snprintf(v[i].ref, sizeof(v[i].ref), "%s", PQgetvalue(r, i, 4));
		snprintf(v[i].event, sizeof(v[i].event), "%s", PQgetvalue(r, i, 5));
	}
	PQclear(r);
	*out = v;
	*n = rows;
	return TSR_OK;
}

tsr_rc db_gh_queue_done(struct db_conn *c, const int64_t *ids, size_t n)
{
	if (n == 0)
		return TSR_OK;
	char *a = int_array(ids, n);
	if (!a)
		return TSR_INTERNAL;
	const char *p[] = { a };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_QUEUE_DONE, 1, p, &rc);
	PQclear(r);
	free(a);
	return rc;
}

tsr_rc db_gh_queue_done_before_run(struct db_conn *c, int64_t run_id)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, run_id);
	const char *p[] = { id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_QUEUE_DONE_BEFORE, 1, p, &rc);
	PQclear(r);
	return rc;
}
