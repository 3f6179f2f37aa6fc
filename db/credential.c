/*
 * credential.c — see credential.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credential.h"
#include "audit.h"
#include "notify.h"
#include "offboard.h"
#include <jansson.h>
#include "../lib/commalist.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const struct db_stmt S_LOOKUP = { "cred_lookup", 1,
	"SELECT c.id, c.kind, c.user_id, u.user_name, u.active AND u.deleted_at IS NULL, "
	"       " TS("c.expires_at") ", "
	"       (c.expires_at IS NOT NULL AND c.expires_at <= now()) AS expired, "
	"       c.revoked_at IS NOT NULL AS revoked, "
	"       coalesce((SELECT string_agg(DISTINCT s.source, ',') FROM user_sources s WHERE s.user_id = u.id), 'local'), "
	"       coalesce(extract(epoch FROM c.expires_at)::bigint, 0), "
	"       coalesce(array_to_string(c.models, ','), ''), "
	"       coalesce((SELECT string_agg(r.id || ' ' || r.full_name, ',' ORDER BY r.id) "
	"                   FROM credential_repos cr JOIN repositories r ON r.id = cr.repo_id "
	"                  WHERE cr.credential_id = c.id), ''), "
	"       NOT EXISTS (SELECT 1 FROM credential_repos cr "
	"                     JOIN repositories r ON r.id = cr.repo_id "
	"                     LEFT JOIN repo_permissions p ON p.repo_id = cr.repo_id AND p.user_id = c.user_id "
	"                    WHERE cr.credential_id = c.id AND (p.user_id IS NULL OR r.removed_at IS NOT NULL)), "
	"       coalesce(c.session_id, 0), "
	"       coalesce((SELECT string_agg(array_to_string(r.classifications, ','), ',' ORDER BY r.id) "
	"                   FROM credential_repos cr JOIN repositories r ON r.id = cr.repo_id "
	"                  WHERE cr.credential_id = c.id AND cardinality(r.classifications) > 0), '') "
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

/* The comma-separated list src into dst without repeats, in order (what does not fit is left out). */
static void copy_union(char *dst, size_t n, const char *src)
{
	size_t used = 0;
	dst[0] = '\0';
	while (*src) {
		size_t len = strcspn(src, ",");
		if (len && !commalist_has(dst, src, len) && used + (used > 0) + len < n) {
			if (used)
				dst[used++] = ',';
			memcpy(dst + used, src, len);
			used += len;
			dst[used] = '\0';
		}
		src += len + (src[len] == ',');
	}
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
	out->expires_unix = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
	copy(out->models, sizeof(out->models), PQgetvalue(r, 0, 10));
	/* "id name,id name" */
	const char *rs = PQgetvalue(r, 0, 11);
	while (*rs && out->n_repos < PRINCIPAL_MAX_REPOS) {
		char *end;
		out->repo_ids[out->n_repos] = strtoll(rs, &end, 10);
		rs = *end == ' ' ? end + 1 : end;
		size_t len = strcspn(rs, ",");
		snprintf(out->repos[out->n_repos], sizeof(out->repos[0]), "%.*s", (int)len, rs);
		out->n_repos++;
		rs += len;
		if (*rs == ',')
			rs++;
	}
	out->perm_ok = strcmp(PQgetvalue(r, 0, 12), "t") == 0;
	out->session_id = strtoll(PQgetvalue(r, 0, 13), NULL, 10);
	copy_union(out->classes, sizeof(out->classes), PQgetvalue(r, 0, 14));
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

/* ---------- repositories as seen at mint time ---------- */

static const struct db_stmt S_REPO_ACCESS = { "cred_repo_access", 2,
	"SELECT r.id, r.full_name, coalesce(p.permission::text, ''), r.archived, "
	"       array_to_string(r.classifications, ',') "
	"  FROM repositories r LEFT JOIN repo_permissions p ON p.repo_id = r.id AND p.user_id = $1 "
	" WHERE r.host = 'github' AND lower(r.full_name) = lower($2) AND r.removed_at IS NULL" };

tsr_rc db_repo_access(struct db_conn *c, int64_t user_id, const char *full_name, struct repo_access *out)
{
	char uid[24];
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	const char *p[] = { uid, full_name };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_REPO_ACCESS, 2, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	memset(out, 0, sizeof(*out));
	out->repo_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	copy(out->full_name, sizeof(out->full_name), PQgetvalue(r, 0, 1));
	copy(out->permission, sizeof(out->permission), PQgetvalue(r, 0, 2));
	out->archived = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
	copy(out->classifications, sizeof(out->classifications), PQgetvalue(r, 0, 4));
	PQclear(r);
	return TSR_OK;
}

/* ---------- sessions and access tokens ---------- */

static const struct db_stmt S_SESSION = { "cred_session_create", 6,
	"INSERT INTO credentials (kind, token_hash, user_id, auth_method, expires_at, client_addr, user_agent) "
	"VALUES ('session', decode($1, 'hex'), $2, $3, now() + make_interval(secs => $4::double precision), "
	"        $5::inet, $6) "
	"RETURNING id, " TS("expires_at") };

static char *json_text(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return s;
}

tsr_rc db_session_create(struct db_conn *c, int64_t user_id, const char *user_name, const uint8_t hash[32],
			 int64_t ttl_s, const char *auth_method, const char *addr, const char *user_agent,
			 int64_t *id, char expires_at[40])
{
	char hex[65], uid[24], ttl[24];
	crypto_hex(hash, 32, hex);
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_s);
	bool own;
	char *detail = NULL;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return rc;
	const char *p[] = { hex, uid, auth_method, ttl, addr && *addr ? addr : NULL, user_agent };
	PGresult *r = db_exec(c, &S_SESSION, 6, p, &rc);
	if (!r)
		goto out;
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	snprintf(expires_at, 40, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	detail = json_text(json_pack("{s:s,s:s}", "method", auth_method, "expires_at", expires_at));
	struct audit_event ev;
	if (!detail || (rc = audit_event_init(&ev, user_name, "auth.login", "success")) != TSR_OK) {
		rc = rc == TSR_OK ? TSR_INTERNAL : rc;
		goto out;
	}
	ev.actor_user_id = user_id;
	ev.user_id = user_id;
	ev.actor_addr = addr;
	ev.credential_id = *id;
	ev.target = user_name;
	ev.detail = detail;
	rc = db_audit_append(c, &ev, 1);
out:
	free(detail);
	return db_tx_end(c, own, rc);
}

/*
 * One autocommit statement: the permission check and the inserts happen
 * together, so a mint is one round trip and one commit. Concurrent mints
 * share Postgres's group commit; their audit events are appended by the
 * caller (broker/auditlog.c) before the token is handed out.
 */
static const struct db_stmt S_MINT = { "cred_mint", 8,
	"WITH chk AS (SELECT u.id FROM users u "
	"               JOIN repo_permissions p ON p.user_id = u.id AND p.repo_id = $6 "
	"              WHERE u.id = $2 AND u.active AND u.deleted_at IS NULL), "
	"     c AS (INSERT INTO credentials (kind, token_hash, user_id, session_id, models, expires_at, "
	"                                    client_addr, user_agent) "
	"           SELECT 'access', decode($1, 'hex'), chk.id, nullif($3::bigint, 0), $4::text[], "
	"                  now() + make_interval(secs => $5::double precision), $7::inet, $8 FROM chk "
	"           RETURNING id, expires_at), "
	"     s AS (INSERT INTO credential_repos (credential_id, repo_id) SELECT id, $6 FROM c) "
	"SELECT id, " TS("expires_at") " FROM c" };
static const struct db_stmt S_MINT_UNDO = { "cred_mint_undo", 1,
	"UPDATE credentials SET revoked_at = now(), revoked_reason = 'mint not audited', revoked_by = 'tesserad' "
	" WHERE id = $1 AND revoked_at IS NULL" };

tsr_rc db_token_mint(struct db_conn *c, const struct principal *session, int64_t repo_id, const char *repo_name,
		     const char *const *models, size_t n_models, const uint8_t hash[32], int64_t ttl_s,
		     const char *addr, const char *user_agent, int64_t *id, char expires_at[40], char *why,
		     size_t whylen)
{
	char hex[65], uid[24], rid[24], ttl[24], sid[24];
	crypto_hex(hash, 32, hex);
	snprintf(uid, sizeof(uid), "%lld", (long long)session->user_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)repo_id);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_s);
	snprintf(sid, sizeof(sid), "%lld", (long long)(strcmp(session->kind, "session") == 0 ? session->cred_id : 0));
	char *marr = n_models ? db_text_array(models, n_models) : NULL;
	if (n_models && !marr)
		return TSR_INTERNAL;
	const char *pm[] = { hex, uid, sid, marr, ttl, rid, addr && *addr ? addr : NULL, user_agent };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_MINT, 8, pm, &rc);
	free(marr);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		snprintf(why, whylen, "user %s is deactivated or has no permission on %s", session->user_name,
			 repo_name);
		return TSR_DENIED;
	}
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	snprintf(expires_at, 40, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	return TSR_OK;
}

tsr_rc db_token_mint_undo(struct db_conn *c, int64_t id)
{
	char s_id[24];
	snprintf(s_id, sizeof(s_id), "%lld", (long long)id);
	const char *p[] = { s_id };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_MINT_UNDO, 1, p, &rc);
	PQclear(r);
	return rc;
}

/* ---------- revocation and listing ---------- */

/* $1 credential id, $2 owner user id (0 = any), $3 reason, $4 actor */
static const struct db_stmt S_REVOKE_ONE = { "cred_revoke_one", 4,
	"UPDATE credentials SET revoked_at = now(), revoked_reason = $3, revoked_by = $4 "
	" WHERE revoked_at IS NULL AND (id = $1 OR session_id = $1) "
	"   AND ($2::bigint = 0 OR user_id = $2) "
	"   AND EXISTS (SELECT 1 FROM credentials o WHERE o.id = $1 AND o.revoked_at IS NULL "
	"               AND ($2::bigint = 0 OR o.user_id = $2)) "
	"RETURNING id, user_id, kind" };
static const struct db_stmt S_REVOKE_USER = { "cred_revoke_user", 3,
	"UPDATE credentials SET revoked_at = now(), revoked_reason = $2, revoked_by = $3 "
	" WHERE user_id = $1 AND revoked_at IS NULL RETURNING id, user_id, kind" };

static tsr_rc audit_revocations(struct db_conn *c, PGresult *r, const char *actor, const char *reason)
{
	tsr_rc rc = TSR_OK;
	for (int i = 0; i < PQntuples(r) && rc == TSR_OK; i++) {
		struct audit_event ev;
		char *detail = json_text(json_pack("{s:s,s:s}", "kind", PQgetvalue(r, i, 2), "reason", reason));
		if (!detail)
			return TSR_INTERNAL;
		rc = audit_event_init(&ev, actor, "token.revoke", "success");
		if (rc == TSR_OK) {
			ev.credential_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
			ev.user_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
		if (rc == TSR_OK)
			rc = notify_send(c, NOTIFY_REVOKE_CHANNEL, PQgetvalue(r, i, 0));
		free(detail);
	}
	return rc;
}

tsr_rc db_credential_revoke(struct db_conn *c, int64_t cred_id, int64_t owner_user_id, const char *actor,
			    const char *reason, int *n_revoked)
{
	char id[24], uid[24];
	snprintf(id, sizeof(id), "%lld", (long long)cred_id);
	snprintf(uid, sizeof(uid), "%lld", (long long)owner_user_id);
	bool own;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return rc;
	const char *p[] = { id, uid, reason, actor };
	PGresult *r = db_exec(c, &S_REVOKE_ONE, 4, p, &rc);
	if (!r)
		goto out;
	*n_revoked = PQntuples(r);
	if (*n_revoked == 0)
		rc = TSR_NOT_FOUND;
	else
		rc = audit_revocations(c, r, actor, reason);
	PQclear(r);
out:
	return db_tx_end(c, own, rc);
}

tsr_rc db_credential_revoke_user(struct db_conn *c, int64_t user_id, const char *actor, const char *reason,
				 int *n_revoked)
{
	char uid[24];
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	bool own;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return rc;
	const char *p[] = { uid, reason, actor };
	PGresult *r = db_exec(c, &S_REVOKE_USER, 3, p, &rc);
	if (!r)
		goto out;
	*n_revoked = PQntuples(r);
	rc = audit_revocations(c, r, actor, reason);
	PQclear(r);
out:
	return db_tx_end(c, own, rc);
}

static const struct db_stmt S_LIST = { "cred_list", 2,
	"SELECT c.id, c.kind, u.user_name, " TS("c.created_at") ", coalesce(" TS("c.expires_at") ", ''), "
	"       coalesce(" TS("c.revoked_at") ", ''), coalesce(" TS("c.last_used_at") ", ''), "
	"       coalesce((SELECT string_agg(r.full_name, ',') FROM credential_repos cr "
	"                   JOIN repositories r ON r.id = cr.repo_id WHERE cr.credential_id = c.id), ''), "
	"       coalesce(c.revoked_reason, '') "
	"  FROM credentials c JOIN users u ON u.id = c.user_id "
	" WHERE c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now()) "
	"   AND ($1::bigint = 0 OR c.user_id = $1) "
	" ORDER BY c.id DESC LIMIT $2" };

tsr_rc db_credential_list(struct db_conn *c, int64_t user_id, int limit, struct cred_row **rows, int *n)
{
	char uid[24], lim[16];
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	snprintf(lim, sizeof(lim), "%d", limit);
	const char *p[] = { uid, lim };
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
	for (int i = 0; i < k; i++) {
		struct cred_row *w = &(*rows)[i];
		w->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		copy(w->kind, sizeof(w->kind), PQgetvalue(r, i, 1));
		copy(w->user_name, sizeof(w->user_name), PQgetvalue(r, i, 2));
		copy(w->created_at, sizeof(w->created_at), PQgetvalue(r, i, 3));
		copy(w->expires_at, sizeof(w->expires_at), PQgetvalue(r, i, 4));
		copy(w->revoked_at, sizeof(w->revoked_at), PQgetvalue(r, i, 5));
		copy(w->last_used_at, sizeof(w->last_used_at), PQgetvalue(r, i, 6));
		copy(w->repos, sizeof(w->repos), PQgetvalue(r, i, 7));
		copy(w->revoked_reason, sizeof(w->revoked_reason), PQgetvalue(r, i, 8));
	}
	*n = k;
	PQclear(r);
	return TSR_OK;
}
