/*
 * upstream.c — see upstream.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealed_row.h"
#include "upstream.h"
#include "../lib/log.h"

#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"

static const struct db_stmt S_SYNC = { "upstream_sync", 9,
	"INSERT INTO upstreams (name, kind, base_url, region, baa, on_prem, models, rotation_period, grace_period) "
	"VALUES ($1, $2, $3, $4, $5, $6, $7::text[], make_interval(secs => $8::bigint), make_interval(secs => $9::bigint)) "
	"ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, base_url = EXCLUDED.base_url, region = EXCLUDED.region, "
	"  baa = EXCLUDED.baa, on_prem = EXCLUDED.on_prem, models = EXCLUDED.models, "
	"  rotation_period = EXCLUDED.rotation_period, grace_period = EXCLUDED.grace_period, removed_at = NULL, "
	"  updated_at = CASE WHEN (upstreams.kind, upstreams.base_url, upstreams.region, upstreams.baa, upstreams.on_prem, "
	"                          upstreams.models, upstreams.rotation_period, upstreams.grace_period, upstreams.removed_at) "
	"                    IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.base_url, EXCLUDED.region, EXCLUDED.baa, "
	"                          EXCLUDED.on_prem, EXCLUDED.models, EXCLUDED.rotation_period, EXCLUDED.grace_period, "
	"                          NULL::timestamptz) THEN now() ELSE upstreams.updated_at END "
	"RETURNING id" };
static const struct db_stmt S_MARK_REMOVED = { "upstream_mark_removed", 1,
	"UPDATE upstreams SET removed_at = now(), updated_at = now() "
	" WHERE removed_at IS NULL AND NOT (name = ANY($1::text[]))" };
static const struct db_stmt S_MK_REGISTER = { "upstream_master_key_register", 1,
	"INSERT INTO master_keys (id) VALUES ($1) ON CONFLICT DO NOTHING" };
static const struct db_stmt S_ACTIVE_KEY = { "upstream_active_key", 1,
	"SELECT id, version, coalesce(fingerprint, ''), encode(ciphertext, 'hex'), encode(nonce, 'hex'), "
	"       encode(wrapped_dek, 'hex'), encode(dek_nonce, 'hex'), master_key_id "
	"  FROM upstream_keys WHERE upstream_id = $1 AND state = 'active' AND ciphertext IS NOT NULL" };
static const struct db_stmt S_NEXT_VERSION = { "upstream_key_next_version", 1,
	"SELECT coalesce(max(version), 0) + 1 FROM upstream_keys WHERE upstream_id = $1" };
static const struct db_stmt S_KEY_INSERT = { "upstream_key_insert", 9,
	"INSERT INTO upstream_keys (upstream_id, version, state, origin, ciphertext, nonce, wrapped_dek, dek_nonce, "
	"  master_key_id, fingerprint, activated_at) "
	"VALUES ($1, $2, 'active', $3, decode($4, 'hex'), decode($5, 'hex'), decode($6, 'hex'), decode($7, 'hex'), $8, "
	"  $9, now()) RETURNING id" };
#define ROW_COLS \
	"u.id, u.name, u.kind, u.base_url, coalesce(u.region, ''), u.baa, u.on_prem, " \
	"coalesce(array_to_string(u.models, ','), ''), u.removed_at IS NOT NULL, " \
	"u.rotation_period::text, u.grace_period::text, " TS("u.first_used_at") ", " TS("u.last_used_at") ", " \
	TS("u.created_at") ", coalesce(k.version, 0), coalesce(k.fingerprint, ''), " TS("k.activated_at") ", " \
	"coalesce(k.origin, ''), (SELECT count(*) FROM upstream_keys a WHERE a.upstream_id = u.id), " \
	"coalesce(extract(epoch FROM now() - k.activated_at)::bigint, 0), " \
	TS("(k.activated_at + u.rotation_period)") ", coalesce(k.activated_at + u.rotation_period <= now(), false), " \
	"(SELECT count(*) FROM upstream_keys a WHERE a.upstream_id = u.id AND a.state = 'retiring')"
static const struct db_stmt S_LIST = { "upstream_list", 0,
	"SELECT " ROW_COLS " FROM upstreams u "
	"  LEFT JOIN upstream_keys k ON k.upstream_id = u.id AND k.state = 'active' ORDER BY u.name" };
static const struct db_stmt S_GET = { "upstream_get", 1,
	"SELECT " ROW_COLS " FROM upstreams u "
	"  LEFT JOIN upstream_keys k ON k.upstream_id = u.id AND k.state = 'active' WHERE u.name = $1" };
static const struct db_stmt S_LOCK = { "upstream_lock", 1,
	"SELECT id FROM upstreams WHERE name = $1 AND removed_at IS NULL FOR UPDATE" };
static const struct db_stmt S_DEMOTE = { "upstream_key_demote", 1,
	"UPDATE upstream_keys k SET state = 'retiring', retiring_at = now(), retire_after = now() + u.grace_period "
	"  FROM upstreams u WHERE u.id = k.upstream_id AND k.upstream_id = $1 AND k.state = 'active' "
	"RETURNING k.version, " TS("k.retire_after") };
static const struct db_stmt S_RETIRE_DUE = { "upstream_keys_retire_due", 0,
	"UPDATE upstream_keys k SET state = 'retired', retired_at = now(), ciphertext = NULL, nonce = NULL, "
	"  wrapped_dek = NULL, dek_nonce = NULL, master_key_id = NULL "
	"  FROM upstreams u WHERE u.id = k.upstream_id AND k.state = 'retiring' AND k.retire_after <= now() "
	"RETURNING k.id, u.name, k.version, coalesce(k.fingerprint, '')" };
static const struct db_stmt S_TOUCH = { "upstream_touch", 1,
	"UPDATE upstreams SET last_used_at = now(), first_used_at = coalesce(first_used_at, now()) "
	" WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')" };

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

tsr_rc db_upstream_sync(struct db_conn *c, const struct cfg_upstream *u, int64_t *id)
{
	char *models = db_text_array((const char *const *)u->models.v, u->models.n);
	if (!models)
		return TSR_INTERNAL;
	char rot[24], grace[24];
	snprintf(rot, sizeof(rot), "%" PRId64, u->rotation_period);
	snprintf(grace, sizeof(grace), "%" PRId64, u->grace_period);
	const char *p[] = { u->name, u->kind_s, u->base_url, u->region, u->baa ? "true" : "false",
			    u->on_prem ? "true" : "false", models, rot, grace };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_SYNC, 9, p, &rc);
	free(models);
	if (!r)
		return rc;
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_mark_removed(struct db_conn *c, const char *const *names, size_t n, int *removed)
{
	char *arr = db_text_array(names, n);
	if (!arr)
		return TSR_INTERNAL;
	const char *p[] = { arr };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_MARK_REMOVED, 1, p, &rc);
	free(arr);
	if (!r)
		return rc;
	*removed = (int)strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_master_key_register(struct db_conn *c, const char *master_key_id)
{
	const char *p[] = { master_key_id };
	return db_exec_ok(c, &S_MK_REGISTER, 1, p);
}

tsr_rc db_upstream_active_key(struct db_conn *c, int64_t upstream_id, struct upstream_key *out)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, upstream_id);
	const char *p[] = { id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_ACTIVE_KEY, 1, p, &rc);
	if (!r)
		return rc;
	memset(out, 0, sizeof(*out));
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->version = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	copy(out->fingerprint, sizeof(out->fingerprint), PQgetvalue(r, 0, 2));
	rc = db_sealed_from_row(r, 0, 3, &out->sealed);
	PQclear(r);
	if (rc != TSR_OK)
		sealed_free(&out->sealed);
	return rc;
}

tsr_rc db_upstream_key_next_version(struct db_conn *c, int64_t upstream_id, int *version)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, upstream_id);
	const char *p[] = { id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_NEXT_VERSION, 1, p, &rc);
	if (!r)
		return rc;
	*version = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_key_insert(struct db_conn *c, int64_t upstream_id, int version, const char *origin,
			      const struct sealed *s, const char *fingerprint, int64_t *key_id)
{
	char id[24], ver[16];
	snprintf(id, sizeof(id), "%" PRId64, upstream_id);
	snprintf(ver, sizeof(ver), "%d", version);
	struct sealed_hex h;
	if (db_sealed_hex(s, &h) != TSR_OK)
		return TSR_INTERNAL;
	const char *p[] = { id, ver, origin, h.ct, h.nonce, h.wdek, h.dnonce, s->master_key_id, fingerprint };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KEY_INSERT, 9, p, &rc);
	db_sealed_hex_free(&h);
	if (!r)
		return rc;
	*key_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

static void fill_row(PGresult *r, int i, struct upstream_row *o)
{
	memset(o, 0, sizeof(*o));
	o->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	copy(o->name, sizeof(o->name), PQgetvalue(r, i, 1));
	copy(o->kind, sizeof(o->kind), PQgetvalue(r, i, 2));
	copy(o->base_url, sizeof(o->base_url), PQgetvalue(r, i, 3));
	copy(o->region, sizeof(o->region), PQgetvalue(r, i, 4));
	o->baa = PQgetvalue(r, i, 5)[0] == 't';
	o->on_prem = PQgetvalue(r, i, 6)[0] == 't';
	copy(o->models, sizeof(o->models), PQgetvalue(r, i, 7));
	o->removed = PQgetvalue(r, i, 8)[0] == 't';
	copy(o->rotation_period, sizeof(o->rotation_period), PQgetvalue(r, i, 9));
	copy(o->grace_period, sizeof(o->grace_period), PQgetvalue(r, i, 10));
	copy(o->first_used_at, sizeof(o->first_used_at), PQgetvalue(r, i, 11));
	copy(o->last_used_at, sizeof(o->last_used_at), PQgetvalue(r, i, 12));
	copy(o->created_at, sizeof(o->created_at), PQgetvalue(r, i, 13));
	o->key_version = (int)strtol(PQgetvalue(r, i, 14), NULL, 10);
	copy(o->key_fingerprint, sizeof(o->key_fingerprint), PQgetvalue(r, i, 15));
	copy(o->key_activated_at, sizeof(o->key_activated_at), PQgetvalue(r, i, 16));
	copy(o->key_origin, sizeof(o->key_origin), PQgetvalue(r, i, 17));
	o->keys_total = (int)strtol(PQgetvalue(r, i, 18), NULL, 10);
	o->key_age_s = strtoll(PQgetvalue(r, i, 19), NULL, 10);
	copy(o->next_rotation_at, sizeof(o->next_rotation_at), PQgetvalue(r, i, 20));
	o->rotation_due = PQgetvalue(r, i, 21)[0] == 't';
	o->keys_retiring = (int)strtol(PQgetvalue(r, i, 22), NULL, 10);
}

tsr_rc db_upstream_list(struct db_conn *c, struct upstream_row **rows, int *n)
{
	tsr_rc rc;
	PGresult *r;
	*rows = db_exec_rows(c, &S_LIST, 0, NULL, sizeof(**rows), &r, n, &rc);
	if (!*rows)
		return rc;
	for (int i = 0; i < *n; i++)
		fill_row(r, i, &(*rows)[i]);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_get(struct db_conn *c, const char *name, struct upstream_row *out)
{
	const char *p[] = { name };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_GET, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	fill_row(r, 0, out);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_touch(struct db_conn *c, int64_t upstream_id)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, upstream_id);
	const char *p[] = { id };
	return db_exec_ok(c, &S_TOUCH, 1, p);
}

tsr_rc db_upstream_lock(struct db_conn *c, const char *name, int64_t *id)
{
	const char *p[] = { name };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LOCK, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_key_rotate(struct db_conn *c, int64_t upstream_id, int version, const char *origin,
			      const struct sealed *s, const char *fingerprint, int64_t *key_id, int *old_version,
			      char *retire_after, size_t ralen)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, upstream_id);
	const char *p[] = { id };
	tsr_rc rc;
	*old_version = 0;
	retire_after[0] = '\0';
	/* demote first: the one-active partial unique index is checked per statement */
	PGresult *r = db_exec(c, &S_DEMOTE, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) == 1) {
		*old_version = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
		copy(retire_after, ralen, PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return db_upstream_key_insert(c, upstream_id, version, origin, s, fingerprint, key_id);
}

tsr_rc db_upstream_keys_retire_due(struct db_conn *c, struct upstream_key_retired **out, int *n)
{
	tsr_rc rc;
	PGresult *r;
	*out = db_exec_rows(c, &S_RETIRE_DUE, 0, NULL, sizeof(**out), &r, n, &rc);
	if (!*out)
		return rc;
	for (int i = 0; i < *n; i++) {
		(*out)[i].key_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		copy((*out)[i].upstream, sizeof((*out)[i].upstream), PQgetvalue(r, i, 1));
		(*out)[i].version = (int)strtol(PQgetvalue(r, i, 2), NULL, 10);
		copy((*out)[i].fingerprint, sizeof((*out)[i].fingerprint), PQgetvalue(r, i, 3));
	}
	PQclear(r);
	return TSR_OK;
}

/* ---------- automatic rotation (migrations/0007) ---------- */

#define TSU(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')"

static const struct db_stmt S_ROT_CANDIDATES = { "rotation_candidates", 0,
	"SELECT u.id, u.name, k.id IS NOT NULL, coalesce(k.version, 0), "
	"       coalesce(extract(epoch FROM now() - k.activated_at)::bigint, 0), "
	"       coalesce(k.activated_at + u.rotation_period <= now(), false), r.requested_at IS NOT NULL, "
	"       coalesce(r.requested_by, ''), coalesce(r.failures, 0), coalesce(r.next_attempt_at <= now(), true), "
	"       coalesce(r.reminded_at > now() - interval '1 hour', false) "
	"  FROM upstreams u "
	"  LEFT JOIN upstream_keys k ON k.upstream_id = u.id AND k.state = 'active' "
	"  LEFT JOIN upstream_rotation r ON r.upstream_id = u.id "
	" WHERE u.removed_at IS NULL ORDER BY u.name" };
static const struct db_stmt S_ROT_REQUEST = { "rotation_request", 2,
	"INSERT INTO upstream_rotation (upstream_id, requested_at, requested_by) VALUES ($1, clock_timestamp(), $2) "
	"ON CONFLICT (upstream_id) DO UPDATE SET requested_at = EXCLUDED.requested_at, "
	"  requested_by = EXCLUDED.requested_by, next_attempt_at = NULL "
	"RETURNING " TSU("requested_at") };
static const struct db_stmt S_ROT_SUCCESS = { "rotation_succeeded", 3,
	"INSERT INTO upstream_rotation (upstream_id, last_attempt_at, last_outcome, last_version, last_fingerprint, "
	"  last_success_at) VALUES ($1, clock_timestamp(), 'success', $2, $3, clock_timestamp()) "
	"ON CONFLICT (upstream_id) DO UPDATE SET requested_at = NULL, requested_by = NULL, failures = 0, "
	"  next_attempt_at = NULL, last_attempt_at = EXCLUDED.last_attempt_at, last_outcome = 'success', "
	"  last_error = NULL, last_version = EXCLUDED.last_version, last_fingerprint = EXCLUDED.last_fingerprint, "
	"  last_success_at = EXCLUDED.last_success_at" };
static const struct db_stmt S_ROT_FAILED = { "rotation_failed", 4,
	"INSERT INTO upstream_rotation (upstream_id, failures, failures_total, next_attempt_at, last_attempt_at, "
	"  last_outcome, last_error) "
	"VALUES ($1, 1, 1, now() + make_interval(secs => least($3::double precision, $4::double precision)), "
	"  clock_timestamp(), 'failure', $2) "
	"ON CONFLICT (upstream_id) DO UPDATE SET failures = upstream_rotation.failures + 1, "
	"  failures_total = upstream_rotation.failures_total + 1, "
	"  next_attempt_at = now() + make_interval(secs => least($3::double precision * "
	"    power(2, least(upstream_rotation.failures, 30)), $4::double precision)), "
	"  last_attempt_at = EXCLUDED.last_attempt_at, last_outcome = 'failure', last_error = EXCLUDED.last_error "
	"RETURNING failures, " TSU("next_attempt_at") };
static const struct db_stmt S_ROT_COUNT_FAILURE = { "rotation_count_failure", 1,
	"INSERT INTO upstream_rotation (upstream_id, failures_total) VALUES ($1, 1) "
	"ON CONFLICT (upstream_id) DO UPDATE SET failures_total = upstream_rotation.failures_total + 1" };
static const struct db_stmt S_ROT_REMINDED = { "rotation_reminded", 1,
	"INSERT INTO upstream_rotation (upstream_id, reminded_at) VALUES ($1, now()) "
	"ON CONFLICT (upstream_id) DO UPDATE SET reminded_at = now()" };
static const struct db_stmt S_ROT_STATUS = { "rotation_status", 1,
	"SELECT " TSU("r.requested_at") ", " TSU("r.last_attempt_at") ", coalesce(r.last_outcome, ''), "
	"       coalesce(r.last_error, ''), coalesce(r.last_version, 0), coalesce(r.last_fingerprint, ''), "
	"       coalesce(r.failures, 0), " TSU("r.next_attempt_at")
	"  FROM upstreams u LEFT JOIN upstream_rotation r ON r.upstream_id = u.id "
	" WHERE u.name = $1 AND u.removed_at IS NULL" };
static const struct db_stmt S_ROT_METRICS = { "rotation_metrics", 0,
	"SELECT u.name, coalesce(r.failures_total, 0), coalesce(extract(epoch FROM r.last_success_at)::bigint, 0), "
	"       coalesce(k.activated_at + u.rotation_period <= now(), false) "
	"  FROM upstreams u "
	"  LEFT JOIN upstream_keys k ON k.upstream_id = u.id AND k.state = 'active' "
	"  LEFT JOIN upstream_rotation r ON r.upstream_id = u.id "
	" WHERE u.removed_at IS NULL ORDER BY u.name" };
static const struct db_stmt S_KEY_PROVIDER_ID = { "upstream_key_set_provider_id", 2,
	"UPDATE upstream_keys SET provider_key_id = $2 WHERE id = $1" };
static const struct db_stmt S_KEYS_TO_DELETE = { "upstream_keys_to_delete", 0,
	"SELECT k.id, u.id, u.name, k.version, coalesce(k.fingerprint, ''), k.provider_key_id, "
	"       k.provider_delete_failures "
	"  FROM upstream_keys k JOIN upstreams u ON u.id = k.upstream_id "
	" WHERE k.origin = 'provider' AND k.provider_key_id IS NOT NULL AND k.provider_deleted_at IS NULL "
	"   AND k.state IN ('retired', 'revoked') "
	"   AND (k.provider_delete_next_at IS NULL OR k.provider_delete_next_at <= now()) "
	" ORDER BY k.id LIMIT 100" };
static const struct db_stmt S_KEY_PROVIDER_DELETED = { "upstream_key_provider_deleted", 1,
	"UPDATE upstream_keys SET provider_deleted_at = now(), provider_delete_next_at = NULL WHERE id = $1" };
static const struct db_stmt S_KEY_PROVIDER_DELETE_FAILED = { "upstream_key_provider_delete_failed", 3,
	"UPDATE upstream_keys SET provider_delete_failures = provider_delete_failures + 1, "
	"  provider_delete_next_at = now() + make_interval(secs => least($2::double precision * "
	"    power(2, least(provider_delete_failures, 30)), $3::double precision)) "
	" WHERE id = $1 RETURNING provider_delete_failures" };

static void i64s(char out[24], int64_t v)
{
	snprintf(out, 24, "%" PRId64, v);
}

tsr_rc db_rotation_candidates(struct db_conn *c, struct rotation_candidate **out, int *n)
{
	tsr_rc rc;
	PGresult *r;
	*out = db_exec_rows(c, &S_ROT_CANDIDATES, 0, NULL, sizeof(**out), &r, n, &rc);
	if (!*out)
		return rc;
	for (int i = 0; i < *n; i++) {
		struct rotation_candidate *o = &(*out)[i];
		o->upstream_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		copy(o->name, sizeof(o->name), PQgetvalue(r, i, 1));
		o->has_key = PQgetvalue(r, i, 2)[0] == 't';
		o->key_version = (int)strtol(PQgetvalue(r, i, 3), NULL, 10);
		o->key_age_s = strtoll(PQgetvalue(r, i, 4), NULL, 10);
		o->due = PQgetvalue(r, i, 5)[0] == 't';
		o->requested = PQgetvalue(r, i, 6)[0] == 't';
		copy(o->requested_by, sizeof(o->requested_by), PQgetvalue(r, i, 7));
		o->failures = (int)strtol(PQgetvalue(r, i, 8), NULL, 10);
		o->may_attempt = PQgetvalue(r, i, 9)[0] == 't';
		o->reminded_recently = PQgetvalue(r, i, 10)[0] == 't';
	}
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rotation_request(struct db_conn *c, int64_t upstream_id, const char *by, char *requested_at, size_t ralen)
{
	char id[24];
	i64s(id, upstream_id);
	const char *p[] = { id, by };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_ROT_REQUEST, 2, p, &rc);
	if (!r)
		return rc;
	copy(requested_at, ralen, PQgetvalue(r, 0, 0));
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rotation_succeeded(struct db_conn *c, int64_t upstream_id, int version, const char *fingerprint)
{
	char id[24], ver[16];
	i64s(id, upstream_id);
	snprintf(ver, sizeof(ver), "%d", version);
	const char *p[] = { id, ver, fingerprint };
	return db_exec_ok(c, &S_ROT_SUCCESS, 3, p);
}

tsr_rc db_rotation_failed(struct db_conn *c, int64_t upstream_id, const char *error, int base_s, int max_s,
			  int *failures, char *next_attempt_at, size_t nalen)
{
	char id[24], b[16], m[16];
	i64s(id, upstream_id);
	snprintf(b, sizeof(b), "%d", base_s);
	snprintf(m, sizeof(m), "%d", max_s);
	const char *p[] = { id, error, b, m };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_ROT_FAILED, 4, p, &rc);
	if (!r)
		return rc;
	if (failures)
		*failures = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	if (next_attempt_at)
		copy(next_attempt_at, nalen, PQgetvalue(r, 0, 1));
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rotation_count_failure(struct db_conn *c, int64_t upstream_id)
{
	char id[24];
	i64s(id, upstream_id);
	const char *p[] = { id };
	return db_exec_ok(c, &S_ROT_COUNT_FAILURE, 1, p);
}

tsr_rc db_rotation_reminded(struct db_conn *c, int64_t upstream_id)
{
	char id[24];
	i64s(id, upstream_id);
	const char *p[] = { id };
	return db_exec_ok(c, &S_ROT_REMINDED, 1, p);
}

tsr_rc db_rotation_status(struct db_conn *c, const char *name, struct rotation_status *out)
{
	const char *p[] = { name };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_ROT_STATUS, 1, p, &rc);
	if (!r)
		return rc;
	memset(out, 0, sizeof(*out));
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	copy(out->requested_at, sizeof(out->requested_at), PQgetvalue(r, 0, 0));
	copy(out->last_attempt_at, sizeof(out->last_attempt_at), PQgetvalue(r, 0, 1));
	copy(out->last_outcome, sizeof(out->last_outcome), PQgetvalue(r, 0, 2));
	copy(out->last_error, sizeof(out->last_error), PQgetvalue(r, 0, 3));
	out->last_version = (int)strtol(PQgetvalue(r, 0, 4), NULL, 10);
	copy(out->last_fingerprint, sizeof(out->last_fingerprint), PQgetvalue(r, 0, 5));
	out->failures = (int)strtol(PQgetvalue(r, 0, 6), NULL, 10);
	copy(out->next_attempt_at, sizeof(out->next_attempt_at), PQgetvalue(r, 0, 7));
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rotation_metrics(struct db_conn *c, struct rotation_metric **out, int *n)
{
	tsr_rc rc;
	PGresult *r;
	*out = db_exec_rows(c, &S_ROT_METRICS, 0, NULL, sizeof(**out), &r, n, &rc);
	if (!*out)
		return rc;
	for (int i = 0; i < *n; i++) {
		copy((*out)[i].name, sizeof((*out)[i].name), PQgetvalue(r, i, 0));
		(*out)[i].failures_total = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		(*out)[i].last_success = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		(*out)[i].overdue = PQgetvalue(r, i, 3)[0] == 't';
	}
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_key_set_provider_id(struct db_conn *c, int64_t key_id, const char *provider_key_id)
{
	char id[24];
	i64s(id, key_id);
	const char *p[] = { id, provider_key_id };
	return db_exec_ok(c, &S_KEY_PROVIDER_ID, 2, p);
}

tsr_rc db_upstream_keys_to_delete(struct db_conn *c, struct upstream_key_to_delete **out, int *n)
{
	tsr_rc rc;
	PGresult *r;
	*out = db_exec_rows(c, &S_KEYS_TO_DELETE, 0, NULL, sizeof(**out), &r, n, &rc);
	if (!*out)
		return rc;
	for (int i = 0; i < *n; i++) {
		struct upstream_key_to_delete *o = &(*out)[i];
		o->key_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		o->upstream_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		copy(o->upstream, sizeof(o->upstream), PQgetvalue(r, i, 2));
		o->version = (int)strtol(PQgetvalue(r, i, 3), NULL, 10);
		copy(o->fingerprint, sizeof(o->fingerprint), PQgetvalue(r, i, 4));
		copy(o->provider_key_id, sizeof(o->provider_key_id), PQgetvalue(r, i, 5));
		o->failures = (int)strtol(PQgetvalue(r, i, 6), NULL, 10);
	}
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_upstream_key_provider_deleted(struct db_conn *c, int64_t key_id)
{
	char id[24];
	i64s(id, key_id);
	const char *p[] = { id };
	return db_exec_ok(c, &S_KEY_PROVIDER_DELETED, 1, p);
}

tsr_rc db_upstream_key_provider_delete_failed(struct db_conn *c, int64_t key_id, int base_s, int max_s,
					      int *failures)
{
	char id[24], b[16], m[16];
	i64s(id, key_id);
	snprintf(b, sizeof(b), "%d", base_s);
	snprintf(m, sizeof(m), "%d", max_s);
	const char *p[] = { id, b, m };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KEY_PROVIDER_DELETE_FAILED, 3, p, &rc);
	if (!r)
		return rc;
	if (failures)
		*failures = PQntuples(r) == 1 ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return TSR_OK;
}
