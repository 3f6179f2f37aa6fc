/*
 * secrets.c — see secrets.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealed_row.h"
#include "secrets.h"

#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"

static const struct db_stmt S_USABLE = { "secrets_usable", 2,
	"SELECT version, state = 'active', "
	"       coalesce((extract(epoch FROM not_after) * 1000)::bigint, 0), "
	"       encode(ciphertext, 'hex'), encode(nonce, 'hex'), encode(wrapped_dek, 'hex'), "
	"       encode(dek_nonce, 'hex'), master_key_id "
	"  FROM secrets WHERE name = $1 AND ciphertext IS NOT NULL "
	"   AND (state = 'active' OR (state = 'retiring' AND not_after > now())) "
	" ORDER BY version DESC LIMIT $2::int" };
static const struct db_stmt S_LOCK = { "secrets_lock", 1,
	"SELECT pg_advisory_xact_lock(hashtext('tessera.secret:' || $1)), "
	"       (SELECT coalesce(max(version), 0) + 1 FROM secrets WHERE name = $1), "
	"       EXISTS (SELECT 1 FROM secrets WHERE name = $1 AND state = 'active')" };
static const struct db_stmt S_MK_REGISTER = { "secrets_master_key_register", 1,
	"INSERT INTO master_keys (id) VALUES ($1) ON CONFLICT DO NOTHING" };
static const struct db_stmt S_DEMOTE = { "secrets_demote", 2,
	"UPDATE secrets SET state = 'retiring', not_after = now() + make_interval(secs => $2::double precision) "
	" WHERE name = $1 AND state = 'active' RETURNING version, " TS("not_after") };
static const struct db_stmt S_INSERT = { "secrets_insert", 10,
	"INSERT INTO secrets (name, version, state, ciphertext, nonce, wrapped_dek, dek_nonce, master_key_id, "
	"  created_by, not_after) "
	"VALUES ($1, $2::int, CASE WHEN $3::bool THEN 'active' ELSE 'retiring' END, decode($4, 'hex'), "
	"  decode($5, 'hex'), decode($6, 'hex'), decode($7, 'hex'), $8, $9, "
	"  CASE WHEN $3::bool THEN NULL ELSE now() + make_interval(secs => $10::double precision) END)" };
static const struct db_stmt S_RETIRE_DUE = { "secrets_retire_due", 0,
	"UPDATE secrets SET state = 'retired', ciphertext = NULL, nonce = NULL, wrapped_dek = NULL, "
	"  dek_nonce = NULL, master_key_id = NULL "
	" WHERE state = 'retiring' AND not_after <= now() RETURNING id, name, version" };

static const struct db_stmt S_ACTIVE = { "secrets_active", 1,
	"SELECT version, extract(epoch FROM now() - created_at)::bigint FROM secrets "
	" WHERE name = $1 AND state = 'active'" };
static const struct db_stmt S_PROMOTE = { "secrets_promote", 2,
	"UPDATE secrets SET state = 'active', not_after = NULL "
	" WHERE name = $1 AND version = $2::int AND state = 'retiring' AND ciphertext IS NOT NULL RETURNING id" };
static const struct db_stmt S_DISCARD = { "secrets_discard", 2,
	"UPDATE secrets SET state = 'retired', not_after = coalesce(not_after, now()), ciphertext = NULL, nonce = NULL, "
	"  wrapped_dek = NULL, dek_nonce = NULL, master_key_id = NULL "
	" WHERE name = $1 AND version = $2::int AND state <> 'retired'" };
static const struct db_stmt S_PUSH_GET = { "secrets_push_get", 1, "SELECT value FROM settings WHERE key = $1" };
static const struct db_stmt S_PUSH_PUT = { "secrets_push_put", 2,
	"INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, now()) "
	"ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = now()" };

void db_secret_aad(const char *name, int version, char *out, size_t n)
{
	snprintf(out, n, "secret:%s:%d", name, version);
}

void db_secrets_free(struct db_secret *v, int n)
{
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		sealed_free(&v[i].sealed);
	free(v);
}

tsr_rc db_secrets_usable(struct db_conn *c, const char *name, int max, struct db_secret **out, int *n)
{
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", max);
	const char *p[] = { name, lim };
	tsr_rc rc;
	*out = NULL;
	*n = 0;
	PGresult *r = db_exec(c, &S_USABLE, 2, p, &rc);
	if (!r)
		return rc;
	int m = PQntuples(r);
	struct db_secret *v = calloc(m ? (size_t)m : 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	rc = TSR_OK;
	int got = 0;
	for (int i = 0; i < m && rc == TSR_OK; i++, got++) {
		struct db_secret *s = &v[i];
		s->version = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
		s->active = PQgetvalue(r, i, 1)[0] == 't';
		s->not_after_ms = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		if (db_sealed_from_row(r, i, 3, &s->sealed) != TSR_OK)
			rc = TSR_INTERNAL;
	}
	PQclear(r);
	if (rc != TSR_OK) {
		db_secrets_free(v, got);
		return rc;
	}
	*out = v;
	*n = m;
	return TSR_OK;
}

tsr_rc db_secret_lock(struct db_conn *c, const char *name, int *next_version, bool *has_active)
{
	const char *p[] = { name };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LOCK, 1, p, &rc);
	if (!r)
		return rc;
	*next_version = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
	*has_active = PQgetvalue(r, 0, 2)[0] == 't';
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_secret_insert(struct db_conn *c, const char *name, int version, bool active, int64_t overlap_s,
			const struct sealed *s, const char *created_by, int *prev_version, char *prev_not_after,
			size_t pnlen)
{
	char ver[16], ovl[24];
	snprintf(ver, sizeof(ver), "%d", version);
	snprintf(ovl, sizeof(ovl), "%" PRId64, overlap_s);
	if (prev_version)
		*prev_version = 0;
	if (prev_not_after && pnlen)
		prev_not_after[0] = '\0';
	tsr_rc rc;
	const char *pk[] = { s->master_key_id };
	PGresult *r = db_exec(c, &S_MK_REGISTER, 1, pk, &rc);
	if (!r)
		return rc;
	PQclear(r);
	if (active) {
		const char *pd[] = { name, ovl };
		if (!(r = db_exec(c, &S_DEMOTE, 2, pd, &rc)))
			return rc;
		if (PQntuples(r) == 1) {
			if (prev_version)
				*prev_version = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
			if (prev_not_after && pnlen)
				snprintf(prev_not_after, pnlen, "%s", PQgetvalue(r, 0, 1));
		}
		PQclear(r);
	}
	struct sealed_hex h;
	if (db_sealed_hex(s, &h) != TSR_OK)
		return TSR_INTERNAL;
	const char *p[] = { name, ver, active ? "true" : "false", h.ct, h.nonce, h.wdek, h.dnonce, s->master_key_id,
			    created_by, ovl };
	r = db_exec(c, &S_INSERT, 10, p, &rc);
	db_sealed_hex_free(&h);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_secrets_retire_due(struct db_conn *c, struct db_secret_retired **out, int *n)
{
	tsr_rc rc;
	PGresult *r;
	*out = db_exec_rows(c, &S_RETIRE_DUE, 0, NULL, sizeof(**out), &r, n, &rc);
	if (!*out)
		return rc;
	for (int i = 0; i < *n; i++) {
		(*out)[i].id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		snprintf((*out)[i].name, sizeof((*out)[i].name), "%s", PQgetvalue(r, i, 1));
		(*out)[i].version = (int)strtol(PQgetvalue(r, i, 2), NULL, 10);
	}
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_secret_active(struct db_conn *c, const char *name, int *version, int64_t *age_s)
{
	const char *p[] = { name };
	tsr_rc rc;
	*version = 0;
	*age_s = 0;
	PGresult *r = db_exec(c, &S_ACTIVE, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) == 1) {
		*version = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
		*age_s = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_secret_promote(struct db_conn *c, const char *name, int version, int64_t overlap_s, int *prev_version,
			 char *prev_not_after, size_t pnlen)
{
	char ver[16], ovl[24];
	snprintf(ver, sizeof(ver), "%d", version);
	snprintf(ovl, sizeof(ovl), "%" PRId64, overlap_s);
	if (prev_version)
		*prev_version = 0;
	if (prev_not_after && pnlen)
		prev_not_after[0] = '\0';
	tsr_rc rc;
	const char *pd[] = { name, ovl };
	PGresult *r = db_exec(c, &S_DEMOTE, 2, pd, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) == 1) {
		if (prev_version)
			*prev_version = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
		if (prev_not_after && pnlen)
			snprintf(prev_not_after, pnlen, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	const char *pp[] = { name, ver };
	if (!(r = db_exec(c, &S_PROMOTE, 2, pp, &rc)))
		return rc;
	rc = PQntuples(r) == 1 ? TSR_OK : TSR_NOT_FOUND;
	PQclear(r);
	return rc;
}

tsr_rc db_secret_discard(struct db_conn *c, const char *name, int version)
{
	char ver[16];
	snprintf(ver, sizeof(ver), "%d", version);
	const char *p[] = { name, ver };
	return db_exec_ok(c, &S_DISCARD, 2, p);
}

static void push_key(const char *name, char *out, size_t n)
{
	snprintf(out, n, "secret.%s.push", name);
}

tsr_rc db_secret_push_get(struct db_conn *c, const char *name, struct db_secret_push *out)
{
	char key[96];
	push_key(name, key, sizeof(key));
	const char *p[] = { key };
	tsr_rc rc;
	memset(out, 0, sizeof(*out));
	PGresult *r = db_exec(c, &S_PUSH_GET, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) == 1) {
		long long next = 0;
		int ok = 0;
		/* "attempts failures next_attempt_ms last_status last_ok last_version [last_error]" */
		if (sscanf(PQgetvalue(r, 0, 0), "%d %d %lld %ld %d %d %31s", &out->attempts, &out->failures, &next,
			   &out->last_status, &ok, &out->last_version, out->last_error) < 6)
			memset(out, 0, sizeof(*out));
		else {
			out->next_attempt_ms = next;
			out->last_ok = ok != 0;
			if (strcmp(out->last_error, "-") == 0)
				out->last_error[0] = '\0';
		}
	}
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_secret_push_put(struct db_conn *c, const char *name, const struct db_secret_push *st)
{
	char key[96], val[160];
	push_key(name, key, sizeof(key));
	snprintf(val, sizeof(val), "%d %d %lld %ld %d %d %s", st->attempts, st->failures, (long long)st->next_attempt_ms,
		 st->last_status, st->last_ok ? 1 : 0, st->last_version, st->last_error[0] ? st->last_error : "-");
	const char *p[] = { key, val };
	return db_exec_ok(c, &S_PUSH_PUT, 2, p);
}
