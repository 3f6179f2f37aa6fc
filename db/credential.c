/*
 * credential.c — see credential.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credential.h"
#include "audit.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

static const struct db_stmt S_LOOKUP = { "cred_lookup", 1,
	"SELECT c.id, c.kind, c.user_id, u.user_name, u.active, "
	"       to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"       (c.expires_at IS NOT NULL AND c.expires_at <= now()) AS expired, "
	"       c.revoked_at IS NOT NULL AS revoked, "
	"       coalesce((SELECT string_agg(DISTINCT s.source, ',') FROM user_sources s WHERE s.user_id = u.id), 'local') "
	"  FROM credentials c JOIN users u ON u.id = c.user_id "
	" WHERE c.token_hash = decode($1, 'hex')" };
static const struct db_stmt S_TOUCH = { "cred_touch", 1,
	"UPDATE credentials SET last_used_at = now() "
	" WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')" };
static const struct db_stmt S_USER_ROLES = { "cred_user_roles", 1,
	"SELECT DISTINCT role FROM role_grants WHERE user_id = $1 ORDER BY role" };
static const struct db_stmt S_BOOTSTRAP_CLAIM = { "bootstrap_claim", 0,
	"INSERT INTO settings (key, value) VALUES ('bootstrap_done', now()::text) "
	"ON CONFLICT (key) DO NOTHING RETURNING key" };
static const struct db_stmt S_BOOTSTRAP_CREATE = { "bootstrap_create", 1,
	"WITH u AS (INSERT INTO users (user_name, display_name) "
	"           VALUES ('admin', 'Bootstrap administrator') RETURNING id), "
	"     s AS (INSERT INTO user_sources (user_id, source, active) SELECT id, 'local', true FROM u), "
	"     g AS (INSERT INTO role_grants (user_id, role, via) SELECT id, 'admin', 'bootstrap' FROM u) "
	"INSERT INTO credentials (kind, token_hash, user_id, auth_method) "
	"SELECT 'bootstrap', decode($1, 'hex'), id, 'bootstrap' FROM u RETURNING id" };

const char *role_name(unsigned bit)
{
	switch (bit) {
	case ROLE_ADMIN: return "admin";
	case ROLE_SECURITY: return "security";
	case ROLE_DEVELOPER: return "developer";
	}
	return "?";
}

static unsigned role_bit(const char *s)
{
	if (strcmp(s, "admin") == 0)
		return ROLE_ADMIN;
	if (strcmp(s, "security") == 0)
		return ROLE_SECURITY;
	if (strcmp(s, "developer") == 0)
		return ROLE_DEVELOPER;
	return 0;
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src);
}

tsr_rc db_credential_lookup(struct db_conn *c, const uint8_t hash[32], struct principal *out)
{
	char hex[65];
	crypto_hex(hash, 32, hex);
	const char *p[] = { hex };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_LOOKUP, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	memset(out, 0, sizeof(*out));
	out->cred_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	copy(out->kind, sizeof(out->kind), PQgetvalue(r, 0, 1));
	out->user_id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	copy(out->user_name, sizeof(out->user_name), PQgetvalue(r, 0, 3));
	out->active = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
	copy(out->expires_at, sizeof(out->expires_at), PQgetvalue(r, 0, 5));
	out->expired = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
	out->revoked = strcmp(PQgetvalue(r, 0, 7), "t") == 0;
	copy(out->source, sizeof(out->source), PQgetvalue(r, 0, 8));
	PQclear(r);

	char uid[24];
	snprintf(uid, sizeof(uid), "%lld", (long long)out->user_id);
	const char *q[] = { uid };
	r = db_exec(c, &S_USER_ROLES, 1, q, &rc);
	if (!r)
		return rc;
	for (int i = 0; i < PQntuples(r); i++)
		out->roles |= role_bit(PQgetvalue(r, i, 0));
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_credential_touch(struct db_conn *c, int64_t cred_id)
{
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)cred_id);
	const char *p[] = { id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_TOUCH, 1, p, &rc);
	PQclear(r);
	return rc;
}

tsr_rc db_bootstrap_create(struct db_conn *c, const uint8_t hash[32], bool *created)
{
	char hex[65];
	crypto_hex(hash, 32, hex);
	tsr_rc rc = db_simple(c, "BEGIN");
	if (rc != TSR_OK)
		return rc;
	PGresult *r = db_exec(c, &S_BOOTSTRAP_CLAIM, 0, NULL, &rc);
	if (!r)
		goto out;
	*created = PQntuples(r) == 1;
	PQclear(r);
	if (!*created)
		goto out;
	const char *p[] = { hex };
	r = db_exec(c, &S_BOOTSTRAP_CREATE, 1, p, &rc);
	if (!r)
		goto out;
	char cred[24];
	snprintf(cred, sizeof(cred), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	char detail[96];
	snprintf(detail, sizeof(detail), "{\"kind\": \"bootstrap\", \"role\": \"admin\"}");
	struct audit_event ev;
	if ((rc = audit_event_init(&ev, "system", "auth.bootstrap_token_created", "success")) != TSR_OK)
		goto out;
	ev.target = "admin";
	ev.credential_id = strtoll(cred, NULL, 10);
	ev.detail = detail;
	rc = db_audit_append(c, &ev, 1);
out:
	if (rc == TSR_OK)
		rc = db_simple(c, "COMMIT");
	else if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	return rc;
}
