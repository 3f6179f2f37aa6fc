/*
 * rewrap.c — see rewrap.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealed_row.h"
#include "rewrap.h"
#include "../lib/crypto.h"

#define NEXT_SQL(t) \
	"SELECT id::text, encode(wrapped_dek, 'hex'), encode(dek_nonce, 'hex'), master_key_id FROM " t \
	" WHERE master_key_id = ANY($1::text[]) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
#define STORE_SQL(t) \
	"UPDATE " t " SET wrapped_dek = decode($2, 'hex'), dek_nonce = decode($3, 'hex'), master_key_id = $4 " \
	" WHERE id::text = $1 AND master_key_id = $5"

static const struct db_stmt S_NEXT[REWRAP_N_TABLES] = {
	{ "rewrap_next_upstream_keys", 1, NEXT_SQL("upstream_keys") },
	{ "rewrap_next_secrets", 1, NEXT_SQL("secrets") },
	{ "rewrap_next_audit_keys", 1, NEXT_SQL("audit_keys") },
};
static const struct db_stmt S_STORE[REWRAP_N_TABLES] = {
	{ "rewrap_store_upstream_keys", 5, STORE_SQL("upstream_keys") },
	{ "rewrap_store_secrets", 5, STORE_SQL("secrets") },
	{ "rewrap_store_audit_keys", 5, STORE_SQL("audit_keys") },
};
static const struct db_stmt S_COUNT = { "rewrap_count", 2,
	"SELECT coalesce(sum(CASE WHEN master_key_id = ANY($2::text[]) THEN 1 ELSE 0 END), 0), "
	"       coalesce(sum(CASE WHEN master_key_id = ANY($2::text[]) THEN 0 ELSE 1 END), 0) FROM ("
	"  SELECT master_key_id FROM upstream_keys WHERE master_key_id IS NOT NULL AND master_key_id <> $1 "
	"  UNION ALL SELECT master_key_id FROM secrets WHERE master_key_id IS NOT NULL AND master_key_id <> $1 "
	"  UNION ALL SELECT master_key_id FROM audit_keys WHERE master_key_id IS NOT NULL AND master_key_id <> $1) k" };

static const struct db_stmt S_MK_DEMOTE = { "rewrap_master_key_demote", 1,
	"UPDATE master_keys SET state = 'retiring' WHERE state = 'active' AND id <> $1" };
static const struct db_stmt S_MK_ACTIVATE = { "rewrap_master_key_activate", 1,
	"INSERT INTO master_keys (id) VALUES ($1) "
	"ON CONFLICT (id) DO UPDATE SET state = 'active', retired_at = NULL" };
static const struct db_stmt S_MK_RETIRE = { "rewrap_master_key_retire", 0,
	"UPDATE master_keys m SET state = 'retired', retired_at = now() WHERE state = 'retiring' "
	"  AND NOT EXISTS (SELECT 1 FROM upstream_keys WHERE master_key_id = m.id) "
	"  AND NOT EXISTS (SELECT 1 FROM secrets WHERE master_key_id = m.id) "
	"  AND NOT EXISTS (SELECT 1 FROM audit_keys WHERE master_key_id = m.id)" };

tsr_rc db_master_key_activate(struct db_conn *c, const char *new_id)
{
	const char *p[] = { new_id };
	tsr_rc rc = db_simple(c, "BEGIN");
	if (rc != TSR_OK)
		return rc;
	PGresult *r = db_exec(c, &S_MK_DEMOTE, 1, p, &rc);
	if (r) {
		PQclear(r);
		r = db_exec(c, &S_MK_ACTIVATE, 1, p, &rc);
	}
	if (r) {
		PQclear(r);
		rc = db_simple(c, "COMMIT");
	} else if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	return rc;
}

tsr_rc db_master_key_retire_unused(struct db_conn *c)
{
	return db_exec_ok(c, &S_MK_RETIRE, 0, NULL);
}

tsr_rc db_rewrap_next(struct db_conn *c, enum rewrap_table t, const char *const *old_ids, size_t n,
		      struct rewrap_row *out)
{
	char *arr = db_text_array(old_ids, n);
	if (!arr)
		return TSR_INTERNAL;
	const char *p[] = { arr };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_NEXT[t], 1, p, &rc);
	free(arr);
	if (!r)
		return rc;
	memset(out, 0, sizeof(*out));
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(r, 0, 0));
	rc = db_sealed_key_from_row(r, 0, 1, &out->sealed);
	PQclear(r);
	return rc;
}

tsr_rc db_rewrap_store(struct db_conn *c, enum rewrap_table t, const struct rewrap_row *row, const char *old_id)
{
	char wdek[97], dnonce[25];
	crypto_hex(row->sealed.wrapped_dek, 48, wdek);
	crypto_hex(row->sealed.dek_nonce, 12, dnonce);
	const char *p[] = { row->id, wdek, dnonce, row->sealed.master_key_id, old_id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_STORE[t], 5, p, &rc);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_rewrap_count(struct db_conn *c, const char *current_id, const char *const *old_ids, size_t n,
		       int64_t *held, int64_t *other)
{
	char *arr = db_text_array(old_ids, n);
	if (!arr)
		return TSR_INTERNAL;
	const char *p[] = { current_id, arr };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_COUNT, 2, p, &rc);
	free(arr);
	if (!r)
		return rc;
	*held = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	*other = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return TSR_OK;
}
