/*
 * stmt.c — the table of named prepared statements (see db.h).
 *
 * Keep every request-path SQL statement here, in enum order, with its
 * parameter count. Parameters are always bound, never interpolated.
 */
#include "db.h"
#include "stmt.h"

const struct db_stmt_def db_stmts[STMT_COUNT] = {
	[STMT_CRED_LOOKUP] = { "cred_lookup", 1,
		"SELECT c.id, c.kind, c.user_id, u.user_name, u.active, "
		"       to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
		"       (c.expires_at IS NOT NULL AND c.expires_at <= now()) AS expired, "
		"       c.revoked_at IS NOT NULL AS revoked, "
		"       coalesce((SELECT string_agg(DISTINCT s.source, ',') FROM user_sources s WHERE s.user_id = u.id), 'local') "
		"  FROM credentials c JOIN users u ON u.id = c.user_id "
		" WHERE c.token_hash = decode($1, 'hex')" },
	[STMT_CRED_TOUCH] = { "cred_touch", 1,
		"UPDATE credentials SET last_used_at = now() "
		" WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')" },
	[STMT_USER_ROLES] = { "user_roles", 1,
		"SELECT DISTINCT role FROM role_grants WHERE user_id = $1 ORDER BY role" },
	[STMT_SETTING_GET] = { "setting_get", 1,
		"SELECT value FROM settings WHERE key = $1" },
	[STMT_AUDIT_HEAD_LOCK] = { "audit_head_lock", 0,
		"SELECT seq, encode(hash, 'hex') FROM audit_chain_head FOR UPDATE" },
	/* parameters in audit_canon.h field order; `at` arrives as integer microseconds */
	[STMT_AUDIT_INSERT] = { "audit_insert", 28,
		"INSERT INTO audit_events (seq, at, event_id, actor_user_id, actor, actor_addr, action, target, "
		"  outcome, user_id, repo_id, credential_id, route, model, upstream, upstream_key_id, decision, "
		"  rule_hits, req_bytes, resp_bytes, req_sha256, status, latency_us, tokens_in, tokens_out, detail, "
		"  prev_hash, hash) "
		"VALUES ($1, to_timestamp(0) + $2::bigint * interval '1 microsecond', $3::uuid, $4, $5, $6::inet, $7, $8, "
		"  $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb, $19, $20, decode($21, 'hex'), $22, $23, $24, "
		"  $25, $26::jsonb, decode($27, 'hex'), decode($28, 'hex'))" },
	[STMT_AUDIT_HEAD_MOVE] = { "audit_head_move", 2,
		"UPDATE audit_chain_head SET seq = $1, hash = decode($2, 'hex'), updated_at = now()" },
	[STMT_BOOTSTRAP_CLAIM] = { "bootstrap_claim", 0,
		"INSERT INTO settings (key, value) VALUES ('bootstrap_done', now()::text) "
		"ON CONFLICT (key) DO NOTHING RETURNING key" },
	[STMT_BOOTSTRAP_CREATE] = { "bootstrap_create", 1,
		"WITH u AS (INSERT INTO users (user_name, display_name) "
		"           VALUES ('admin', 'Bootstrap administrator') RETURNING id), "
		"     s AS (INSERT INTO user_sources (user_id, source, active) SELECT id, 'local', true FROM u), "
		"     g AS (INSERT INTO role_grants (user_id, role, via) SELECT id, 'admin', 'bootstrap' FROM u) "
		"INSERT INTO credentials (kind, token_hash, user_id) "
		"SELECT 'bootstrap', decode($1, 'hex'), id FROM u RETURNING id" },
};
