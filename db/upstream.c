/*
 * upstream.c — see upstream.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"
#include "../lib/crypto.h"
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
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_MK_REGISTER, 1, p, &rc);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
}

/* lib/crypto's hex parser, as an rc for these call chains */
static tsr_rc unhex(const char *hx, uint8_t *out, size_t n)
{
	return crypto_unhex(hx, out, n) ? TSR_OK : TSR_INVALID;
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
	const char *ct = PQgetvalue(r, 0, 3);
	size_t ctlen = strlen(ct) / 2;
	out->sealed.ciphertext = malloc(ctlen ? ctlen : 1);
	out->sealed.ciphertext_len = ctlen;
	rc = out->sealed.ciphertext ? unhex(ct, out->sealed.ciphertext, ctlen) : TSR_INTERNAL;
	if (rc == TSR_OK)
		rc = unhex(PQgetvalue(r, 0, 4), out->sealed.nonce, 12);
	if (rc == TSR_OK)
		rc = unhex(PQgetvalue(r, 0, 5), out->sealed.wrapped_dek, 48);
	if (rc == TSR_OK)
		rc = unhex(PQgetvalue(r, 0, 6), out->sealed.dek_nonce, 12);
	copy(out->sealed.master_key_id, sizeof(out->sealed.master_key_id), PQgetvalue(r, 0, 7));
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
	char *ct = malloc(2 * s->ciphertext_len + 1);
	if (!ct)
		return TSR_INTERNAL;
	char nonce[25], wdek[97], dnonce[25];
	crypto_hex(s->ciphertext, s->ciphertext_len, ct);
	crypto_hex(s->nonce, 12, nonce);
	crypto_hex(s->wrapped_dek, 48, wdek);
	crypto_hex(s->dek_nonce, 12, dnonce);
	const char *p[] = { id, ver, origin, ct, nonce, wdek, dnonce, s->master_key_id, fingerprint };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KEY_INSERT, 9, p, &rc);
	free(ct);
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
	PGresult *r = db_exec(c, &S_LIST, 0, NULL, &rc);
	if (!r)
		return rc;
	int m = PQntuples(r);
	*rows = calloc(m ? (size_t)m : 1, sizeof(**rows));
	if (!*rows) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < m; i++)
		fill_row(r, i, &(*rows)[i]);
	*n = m;
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
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_TOUCH, 1, p, &rc);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
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
	*out = NULL;
	*n = 0;
	PGresult *r = db_exec(c, &S_RETIRE_DUE, 0, NULL, &rc);
	if (!r)
		return rc;
	int m = PQntuples(r);
	*out = calloc(m ? (size_t)m : 1, sizeof(**out));
	if (!*out) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < m; i++) {
		(*out)[i].key_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		copy((*out)[i].upstream, sizeof((*out)[i].upstream), PQgetvalue(r, i, 1));
		(*out)[i].version = (int)strtol(PQgetvalue(r, i, 2), NULL, 10);
		copy((*out)[i].fingerprint, sizeof((*out)[i].fingerprint), PQgetvalue(r, i, 3));
	}
	*n = m;
	PQclear(r);
	return TSR_OK;
}
