/*
 * directory.c — see directory.h.
 *
 * Bulk statements bind parallel arrays ($1::text[], $2::text[], …) and
 * unnest them, in chunks of CHUNK rows so no single parameter grows without
 * bound. Digests travel as hex text and are stored as bytea.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "directory.h"
#include "../lib/crypto.h"

#define CHUNK 2000

static const struct db_stmt S_KNOWN_USERS = { "dir_known_users", 0,
	"SELECT us.external_id, us.user_id, u.user_name, lu.user_id IS NOT NULL, encode(lu.digest, 'hex'), "
	"       coalesce(lu.disabled, false), encode(lu.memberof_digest, 'hex'), u.active, "
	"       u.deleted_at IS NOT NULL, coalesce(u.deactivated_by = 'ldap', false), "
	"       EXISTS (SELECT 1 FROM user_sources o WHERE o.user_id = us.user_id AND o.source <> 'ldap' "
	"                  AND NOT o.active) "
	"  FROM user_sources us JOIN users u ON u.id = us.user_id "
	"  LEFT JOIN ldap_users lu ON lu.user_id = us.user_id "
	" WHERE us.source = 'ldap' AND us.external_id IS NOT NULL" };

static const struct db_stmt S_INS_USERS = { "dir_users_insert", 6,
	"WITH input AS ( "
	"  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[]) "
	"    WITH ORDINALITY AS t(user_name, display_name, given_name, family_name, repo_login, disabled, ord) "
	"), ins AS ( "
	"  INSERT INTO users (user_name, display_name, given_name, family_name, repo_login, active, "
	"                     deactivated_at, deactivated_reason, deactivated_by) "
	"  SELECT user_name, display_name, given_name, family_name, repo_login, NOT disabled, "
	"         CASE WHEN disabled THEN now() END, CASE WHEN disabled THEN 'disabled in the directory' END, "
	"         CASE WHEN disabled THEN 'ldap' END "
	"    FROM input ORDER BY ord "
	"  ON CONFLICT DO NOTHING RETURNING id, user_name "
	") SELECT i.ord, ins.id FROM ins JOIN input i ON i.user_name = ins.user_name" };

static const struct db_stmt S_INS_SOURCES = { "dir_sources_insert", 8,
	"WITH input AS ( "
	"  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], "
	"                       $7::text[], $8::text[]) "
	"    AS t(user_id, external_id, dn, dn_key, login, disabled, digest, memberof_digest) "
	"), src AS ( "
	"  INSERT INTO user_sources (user_id, source, external_id, dn, active) "
	"  SELECT user_id, 'ldap', external_id, dn, NOT disabled FROM input RETURNING 1 "
	") INSERT INTO ldap_users (user_id, external_id, dn_key, login, disabled, digest, memberof_digest) "
	"  SELECT user_id, external_id, lower(dn_key), login, disabled, decode(digest, 'hex'), "
	"         decode(memberof_digest, 'hex') FROM input" };

static const struct db_stmt S_INS_EMAILS = { "dir_emails_insert", 3,
	"INSERT INTO user_emails (user_id, source, value, is_primary) "
	"SELECT u, 'ldap', v, p FROM unnest($1::bigint[], $2::text[], $3::boolean[]) AS t(u, v, p)" };
static const struct db_stmt S_DEL_EMAILS = { "dir_emails_delete", 1,
	"DELETE FROM user_emails WHERE user_id = $1 AND source = 'ldap'" };

static const struct db_stmt S_INS_MEMBEROF = { "dir_memberof_insert", 2,
	"INSERT INTO ldap_user_memberof (user_id, group_key) "
	"SELECT DISTINCT u, lower(k) FROM unnest($1::bigint[], $2::text[]) AS t(u, k)" };
static const struct db_stmt S_DEL_MEMBEROF = { "dir_memberof_delete", 1,
	"DELETE FROM ldap_user_memberof WHERE user_id = $1" };
static const struct db_stmt S_SET_MEMBEROF_DIGEST = { "dir_memberof_digest", 2,
	"UPDATE ldap_users SET memberof_digest = decode($2, 'hex') WHERE user_id = $1 "
	"   AND memberof_digest IS DISTINCT FROM decode($2, 'hex')" };
static const struct db_stmt S_MEMBEROF_SAME = { "dir_memberof_same", 2,
	"SELECT 1 FROM ldap_users WHERE user_id = $1 AND memberof_digest = decode($2, 'hex')" };

#define USER_NOW_COLS                                                                                            \
	"SELECT u.id, u.user_name, u.display_name, u.given_name, u.family_name, u.repo_login, "                  \
	"  (SELECT s.dn FROM user_sources s WHERE s.user_id = u.id AND s.source = 'ldap'), "                      \
	"  (SELECT json_agg(e.value ORDER BY e.is_primary DESC, e.id) FROM user_emails e "                        \
	"    WHERE e.user_id = u.id AND e.source = 'ldap')::text, "                                               \
	"  EXISTS (SELECT 1 FROM user_sources s WHERE s.user_id = u.id AND s.source = 'ldap'), "                  \
	"  EXISTS (SELECT 1 FROM user_sources s WHERE s.user_id = u.id AND s.source = 'local'), "                 \
	"  u.deleted_at IS NOT NULL, u.active FROM users u "
static const struct db_stmt S_USER_GET = { "dir_user_get", 1, USER_NOW_COLS "WHERE u.id = $1" };
static const struct db_stmt S_USER_BY_NAME = { "dir_user_by_name", 1,
	USER_NOW_COLS "WHERE lower(u.user_name) = lower($1) AND u.deleted_at IS NULL" };

static const struct db_stmt S_UPD_USER = { "dir_user_update", 7,
	"UPDATE users SET user_name = $2, display_name = $3, given_name = $4, family_name = $5, "
	"       repo_login = CASE WHEN $7::boolean THEN $6 ELSE repo_login END "
	" WHERE id = $1 AND (user_name, display_name, given_name, family_name, repo_login) IS DISTINCT FROM "
	"       ($2, $3, $4, $5, CASE WHEN $7::boolean THEN $6 ELSE repo_login END)" };
static const struct db_stmt S_UPSERT_SOURCE = { "dir_source_upsert", 4,
	"INSERT INTO user_sources (user_id, source, external_id, dn, active) VALUES ($1, 'ldap', $2, $3, $4) "
	"ON CONFLICT (user_id, source) DO UPDATE SET external_id = EXCLUDED.external_id, dn = EXCLUDED.dn, "
	"   active = EXCLUDED.active, last_seen = now() "
	" WHERE (user_sources.external_id, user_sources.dn, user_sources.active) IS DISTINCT FROM "
	"       (EXCLUDED.external_id, EXCLUDED.dn, EXCLUDED.active)" };
static const struct db_stmt S_UPSERT_LDAP_USER = { "dir_ldap_user_upsert", 7,
	"INSERT INTO ldap_users (user_id, external_id, dn_key, login, disabled, digest, memberof_digest) "
	"VALUES ($1, $2, lower($3), $4, $5, decode($6, 'hex'), decode($7, 'hex')) "
	"ON CONFLICT (user_id) DO UPDATE SET external_id = EXCLUDED.external_id, dn_key = EXCLUDED.dn_key, "
	"   login = EXCLUDED.login, disabled = EXCLUDED.disabled, digest = EXCLUDED.digest, "
	"   memberof_digest = coalesce(EXCLUDED.memberof_digest, ldap_users.memberof_digest) "
	" WHERE (ldap_users.external_id, ldap_users.dn_key, ldap_users.login, ldap_users.disabled, ldap_users.digest, "
	"        ldap_users.memberof_digest) IS DISTINCT FROM (EXCLUDED.external_id, EXCLUDED.dn_key, EXCLUDED.login, "
	"        EXCLUDED.disabled, EXCLUDED.digest, coalesce(EXCLUDED.memberof_digest, ldap_users.memberof_digest))" };
static const struct db_stmt S_SET_DISABLED = { "dir_user_set_disabled", 2,
	"WITH lu AS (UPDATE ldap_users SET disabled = $2::boolean WHERE user_id = $1 "
	"              AND disabled IS DISTINCT FROM $2::boolean RETURNING 1) "
	"UPDATE user_sources SET active = NOT $2::boolean, last_seen = now() "
	" WHERE user_id = $1 AND source = 'ldap' AND active IS DISTINCT FROM NOT $2::boolean" };
static const struct db_stmt S_DETACH = { "dir_user_detach", 1,
	"WITH lu AS (DELETE FROM ldap_users WHERE user_id = $1 RETURNING 1), "
	"     mo AS (DELETE FROM ldap_user_memberof WHERE user_id = $1 RETURNING 1) "
	"UPDATE user_sources SET active = false, last_seen = now() "
	" WHERE user_id = $1 AND source = 'ldap' AND active" };

static const struct db_stmt S_KNOWN_GROUPS = { "dir_known_groups", 0,
	"SELECT lg.external_id, lg.group_id, g.name, g.dn, encode(lg.digest, 'hex') "
	"  FROM ldap_groups lg JOIN groups g ON g.id = lg.group_id" };
static const struct db_stmt S_INS_GROUPS = { "dir_groups_insert", 5,
	"WITH input AS ( "
	"  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) "
	"    WITH ORDINALITY AS t(name, external_id, dn, dn_key, digest, ord) "
	"), ins AS ( "
	"  INSERT INTO groups (name, display_name, source, external_id, dn) "
	"  SELECT name, name, 'ldap', external_id, dn FROM input ORDER BY ord "
	"  ON CONFLICT DO NOTHING RETURNING id, external_id "
	"), lg AS ( "
	"  INSERT INTO ldap_groups (group_id, external_id, dn_key, digest) "
	"  SELECT ins.id, ins.external_id, lower(i.dn_key), decode(i.digest, 'hex') "
	"    FROM ins JOIN input i ON i.external_id = ins.external_id RETURNING group_id, external_id "
	") SELECT i.ord, lg.group_id FROM lg JOIN input i ON i.external_id = lg.external_id" };
static const struct db_stmt S_UPD_GROUP = { "dir_group_update", 3,
	"UPDATE groups SET name = $2, display_name = $2, dn = $3 "
	" WHERE id = $1 AND (name, display_name, dn) IS DISTINCT FROM ($2, $2, $3)" };
static const struct db_stmt S_UPD_LDAP_GROUP = { "dir_ldap_group_update", 3,
	"UPDATE ldap_groups SET dn_key = lower($2), digest = decode($3, 'hex') WHERE group_id = $1" };
static const struct db_stmt S_DEL_REFS = { "dir_refs_delete", 1,
	"DELETE FROM ldap_group_refs WHERE group_id = ANY ($1::bigint[])" };
static const struct db_stmt S_INS_REFS = { "dir_refs_insert", 3,
	"INSERT INTO ldap_group_refs (group_id, kind, value) "
	"SELECT g, k, lower(v) FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(g, k, v)" };
static const struct db_stmt S_DEL_GROUP = { "dir_group_delete", 1,
	"WITH refs AS (DELETE FROM ldap_group_refs WHERE group_id = $1 RETURNING 1) "
	"DELETE FROM groups WHERE id = $1 AND source = 'ldap'" };

/*
 * want: what the references say; have: what group_members holds for LDAP
 * groups. EXCEPT treats NULLs as equal, which is what a (user XOR group)
 * member pair needs.
 */
static const struct db_stmt S_RESOLVE = { "dir_memberships_resolve", 0,
	"WITH want AS ( "
	"    SELECT r.group_id, u.user_id AS uid, NULL::bigint AS gid "
	"      FROM ldap_group_refs r JOIN ldap_users u ON r.kind = 'dn' AND u.dn_key = r.value "
	"  UNION "
	"    SELECT r.group_id, u.user_id, NULL FROM ldap_group_refs r "
	"      JOIN ldap_users u ON r.kind = 'uid' AND lower(u.login) = r.value "
	"  UNION "
	"    SELECT r.group_id, NULL, g.group_id FROM ldap_group_refs r "
	"      JOIN ldap_groups g ON r.kind = 'dn' AND g.dn_key = r.value AND g.group_id <> r.group_id "
	"  UNION "
	"    SELECT g.group_id, m.user_id, NULL FROM ldap_user_memberof m "
	"      JOIN ldap_groups g ON g.dn_key = m.group_key "
	"      JOIN ldap_users u ON u.user_id = m.user_id "
	"), have AS ( "
	"    SELECT gm.group_id, gm.member_user_id AS uid, gm.member_group_id AS gid "
	"      FROM group_members gm JOIN ldap_groups lg ON lg.group_id = gm.group_id "
	"), del AS ( "
	"    DELETE FROM group_members gm USING (SELECT * FROM have EXCEPT SELECT * FROM want) x "
	"     WHERE gm.group_id = x.group_id AND gm.member_user_id IS NOT DISTINCT FROM x.uid "
	"       AND gm.member_group_id IS NOT DISTINCT FROM x.gid "
	"    RETURNING gm.group_id, gm.member_user_id, gm.member_group_id "
	"), ins AS ( "
	"    INSERT INTO group_members (group_id, member_user_id, member_group_id) "
	"    SELECT group_id, uid, gid FROM (SELECT * FROM want EXCEPT SELECT * FROM have) y "
	"    ON CONFLICT ON CONSTRAINT group_members_key DO NOTHING "
	"    RETURNING group_id, member_user_id, member_group_id "
	"), ch AS ( "
	"    SELECT true AS added, * FROM ins UNION ALL SELECT false, * FROM del "
	") SELECT ch.added, ch.group_id, g.name, ch.member_user_id, ch.member_group_id, "
	"         coalesce(u.user_name, mg.name) "
	"    FROM ch JOIN groups g ON g.id = ch.group_id "
	"    LEFT JOIN users u ON u.id = ch.member_user_id LEFT JOIN groups mg ON mg.id = ch.member_group_id "
	"   ORDER BY ch.group_id, ch.added DESC, 6" };

static const struct db_stmt S_STATE_GET = { "dir_state_get", 1,
	"SELECT value FROM sync_state WHERE kind = 'ldap' AND key = $1" };
static const struct db_stmt S_STATE_SET = { "dir_state_set", 2,
	"INSERT INTO sync_state (kind, key, value) VALUES ('ldap', $1, $2) "
	"ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() "
	" WHERE sync_state.value IS DISTINCT FROM EXCLUDED.value" };

/* ---------- helpers ---------- */

static tsr_rc run(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, s, n, p, &rc);
	PQclear(r);
	return r ? TSR_OK : rc;
}

static bool unhex32(const char *hex, uint8_t out[32])
{
	if (!hex || strlen(hex) != 64)
		return false;
	for (int i = 0; i < 32; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (uint8_t)v;
	}
	return true;
}

static char *dup_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static bool is_t(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* A growable array of borrowed (or owned, see owned) strings for a text[] parameter. */
struct strv {
	const char **v;
	size_t n, cap;
	char **owned; /* number strings we formatted */
	size_t n_owned;
};

static tsr_rc strv_push(struct strv *s, const char *x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		const char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return TSR_INTERNAL;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return TSR_OK;
}

static tsr_rc strv_push_id(struct strv *s, int64_t id)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRId64, id);
	char *d = strdup(buf);
	char **o = d ? realloc(s->owned, (s->n_owned + 1) * sizeof(*o)) : NULL;
	if (!o) {
		free(d);
		return TSR_INTERNAL;
	}
	s->owned = o;
	s->owned[s->n_owned++] = d;
	return strv_push(s, d);
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n_owned; i++)
		free(s->owned[i]);
	free(s->owned);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Run s with the k string vectors as k text[] parameters. */
static tsr_rc run_arrays(struct db_conn *c, const struct db_stmt *s, struct strv *vs, int k, PGresult **out)
{
	char *arr[12] = { 0 };
	tsr_rc rc = TSR_OK;
	PGresult *r = NULL;
	for (int i = 0; i < k; i++) {
		arr[i] = db_text_array(vs[i].v, vs[i].n);
		if (!arr[i]) {
			rc = TSR_INTERNAL;
			goto out;
		}
	}
	r = db_exec(c, s, k, (const char *const *)arr, &rc);
out:
	for (int i = 0; i < k; i++)
		free(arr[i]);
	if (out)
		*out = r;
	else
		PQclear(r);
	return r ? TSR_OK : rc;
}

static tsr_rc savepoint(struct db_conn *c)
{
	return db_simple(c, "SAVEPOINT tsr_dir");
}

static tsr_rc savepoint_end(struct db_conn *c, tsr_rc rc)
{
	if (rc == TSR_OK)
		return db_simple(c, "RELEASE SAVEPOINT tsr_dir");
	if (rc == TSR_CONFLICT) {
		tsr_rc r2 = db_simple(c, "ROLLBACK TO SAVEPOINT tsr_dir");
		if (r2 == TSR_OK)
			r2 = db_simple(c, "RELEASE SAVEPOINT tsr_dir");
		return r2 == TSR_OK ? TSR_CONFLICT : r2;
	}
	return rc;
}

/* ---------- users ---------- */

tsr_rc dir_known_users(struct db_conn *c, struct dir_known_user **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KNOWN_USERS, 0, NULL, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct dir_known_user *v = calloc((size_t)rows + 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		struct dir_known_user *k = &v[i];
		k->external_id = strdup(PQgetvalue(r, i, 0));
		k->user_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		k->user_name = strdup(PQgetvalue(r, i, 2));
		k->mirrored = is_t(r, i, 3);
		k->has_digest = unhex32(PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4), k->digest);
		k->disabled = is_t(r, i, 5);
		k->has_memberof = unhex32(PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6), k->memberof_digest);
		k->active = is_t(r, i, 7);
		k->deleted = is_t(r, i, 8);
		k->deactivated_by_ldap = is_t(r, i, 9);
		k->other_inactive = is_t(r, i, 10);
		if (!k->external_id || !k->user_name) {
			PQclear(r);
			dir_known_users_free(v, (size_t)rows);
			return TSR_INTERNAL;
		}
	}
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return TSR_OK;
}

void dir_known_users_free(struct dir_known_user *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].external_id);
		free(v[i].user_name);
	}
	free(v);
}

/* Emails and memberOf keys of users[i] ↔ ids[i] (ids 0 skipped), in bulk. */
static tsr_rc insert_children(struct db_conn *c, const struct dir_user *const *u, const int64_t *ids, size_t n)
{
	struct strv e[3] = { { 0 } }, m[2] = { { 0 } };
	tsr_rc rc = TSR_OK;
	for (size_t i = 0; i < n && rc == TSR_OK; i++) {
		if (!ids[i])
			continue;
		for (size_t j = 0; j < u[i]->n_mails && rc == TSR_OK; j++) {
			if ((rc = strv_push_id(&e[0], ids[i])) == TSR_OK && (rc = strv_push(&e[1], u[i]->mails[j])) == TSR_OK)
				rc = strv_push(&e[2], j == 0 ? "t" : "f");
		}
		for (size_t j = 0; u[i]->track_memberof && j < u[i]->n_memberof && rc == TSR_OK; j++)
			if ((rc = strv_push_id(&m[0], ids[i])) == TSR_OK)
				rc = strv_push(&m[1], u[i]->memberof[j]);
	}
	if (rc == TSR_OK && e[0].n)
		rc = run_arrays(c, &S_INS_EMAILS, e, 3, NULL);
	if (rc == TSR_OK && m[0].n)
		rc = run_arrays(c, &S_INS_MEMBEROF, m, 2, NULL);
	for (int i = 0; i < 3; i++)
		strv_free(&e[i]);
	for (int i = 0; i < 2; i++)
		strv_free(&m[i]);
	return rc;
}

static tsr_rc insert_chunk(struct db_conn *c, const struct dir_user *const *u, size_t n, int64_t *ids)
{
	struct strv a[8] = { { 0 } };
	char (*hex)[2][65] = calloc(n ? n : 1, sizeof(*hex));
	PGresult *r = NULL;
	tsr_rc rc = hex ? TSR_OK : TSR_INTERNAL;
	for (size_t i = 0; i < n && rc == TSR_OK; i++) {
		ids[i] = 0;
		const struct dir_user *x = u[i];
		const char *vals[] = { x->login, x->display_name, x->given_name, x->family_name,
				       x->set_repo_login ? x->repo_login : NULL, x->disabled ? "t" : "f" };
		for (int k = 0; k < 6 && rc == TSR_OK; k++)
			rc = strv_push(&a[k], vals[k]);
	}
	if (rc == TSR_OK)
		rc = run_arrays(c, &S_INS_USERS, a, 6, &r);
	for (int k = 0; k < 8; k++)
		strv_free(&a[k]);
	if (rc != TSR_OK)
		goto out;
	for (int i = 0; i < PQntuples(r); i++) {
		long long ord = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (ord >= 1 && (size_t)ord <= n)
			ids[ord - 1] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
	}
	PQclear(r);
	r = NULL;
	for (size_t i = 0; i < n && rc == TSR_OK; i++) {
		if (!ids[i])
			continue;
		const struct dir_user *x = u[i];
		crypto_hex(x->digest, 32, hex[i][0]);
		crypto_hex(x->memberof_digest, 32, hex[i][1]);
		if ((rc = strv_push_id(&a[0], ids[i])) != TSR_OK)
			break;
		const char *vals[] = { x->external_id, x->dn, x->dn_key, x->login, x->disabled ? "t" : "f", hex[i][0],
				       x->track_memberof ? hex[i][1] : NULL };
		for (int k = 0; k < 7 && rc == TSR_OK; k++)
			rc = strv_push(&a[k + 1], vals[k]);
	}
	if (rc == TSR_OK && a[0].n)
		rc = run_arrays(c, &S_INS_SOURCES, a, 8, NULL);
	for (int k = 0; k < 8; k++)
		strv_free(&a[k]);
	if (rc == TSR_OK)
		rc = insert_children(c, u, ids, n);
out:
	PQclear(r);
	free(hex);
	return rc;
}

tsr_rc dir_users_insert(struct db_conn *c, const struct dir_user *const *u, size_t n, int64_t *ids)
{
	for (size_t off = 0; off < n; off += CHUNK) {
		size_t k = n - off < CHUNK ? n - off : CHUNK;
		tsr_rc rc = insert_chunk(c, u + off, k, ids + off);
		if (rc != TSR_OK)
			return rc;
	}
	return TSR_OK;
}

static tsr_rc user_now(struct db_conn *c, const struct db_stmt *s, const char *arg, struct dir_user_now *o)
{
	memset(o, 0, sizeof(*o));
	const char *p[] = { arg };
	tsr_rc rc;
	PGresult *r = db_exec(c, s, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	o->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	o->user_name = dup_or_null(r, 0, 1);
	o->display_name = dup_or_null(r, 0, 2);
	o->given_name = dup_or_null(r, 0, 3);
	o->family_name = dup_or_null(r, 0, 4);
	o->repo_login = dup_or_null(r, 0, 5);
	o->dn = dup_or_null(r, 0, 6);
	o->has_ldap = is_t(r, 0, 8);
	o->has_local = is_t(r, 0, 9);
	o->deleted = is_t(r, 0, 10);
	o->active = is_t(r, 0, 11);
	rc = TSR_OK;
	if (!PQgetisnull(r, 0, 7)) {
		json_error_t je;
		json_t *a = json_loads(PQgetvalue(r, 0, 7), 0, &je);
		size_t na = json_array_size(a);
		o->mails = calloc(na + 1, sizeof(*o->mails));
		if (!o->mails)
			rc = TSR_INTERNAL;
		for (size_t i = 0; rc == TSR_OK && i < na; i++) {
			const char *m = json_string_value(json_array_get(a, i));
			if (m && !(o->mails[o->n_mails++] = strdup(m)))
				rc = TSR_INTERNAL;
		}
		json_decref(a);
	}
	PQclear(r);
	if (!o->user_name)
		rc = TSR_INTERNAL;
	if (rc != TSR_OK)
		dir_user_now_clear(o);
	return rc;
}

tsr_rc dir_user_get(struct db_conn *c, int64_t id, struct dir_user_now *out)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	return user_now(c, &S_USER_GET, ids, out);
}

tsr_rc dir_user_by_name(struct db_conn *c, const char *user_name, struct dir_user_now *out)
{
	return user_now(c, &S_USER_BY_NAME, user_name, out);
}

void dir_user_now_clear(struct dir_user_now *u)
{
	if (!u)
		return;
	free(u->user_name);
	free(u->display_name);
	free(u->given_name);
	free(u->family_name);
	free(u->repo_login);
	free(u->dn);
	for (size_t i = 0; i < u->n_mails; i++)
		free(u->mails[i]);
	free(u->mails);
	memset(u, 0, sizeof(*u));
}

static bool mails_equal(const struct dir_user *u, const struct dir_user_now *now)
{
	if (!now || u->n_mails != now->n_mails)
		return false;
	for (size_t i = 0; i < u->n_mails; i++)
		if (strcmp(u->mails[i], now->mails[i]) != 0)
			return false;
	return true;
}

/* Replace a user's memberOf keys unless the stored digest says they are the same. */
static tsr_rc replace_memberof(struct db_conn *c, int64_t id, const struct dir_user *u)
{
	char ids[24], hex[65];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	crypto_hex(u->memberof_digest, 32, hex);
	const char *ps[] = { ids, hex };
	tsr_rc rc;
	PGresult *same = db_exec(c, &S_MEMBEROF_SAME, 2, ps, &rc);
	if (!same)
		return rc;
	bool unchanged = PQntuples(same) == 1;
	PQclear(same);
	if (unchanged)
		return TSR_OK;
	const char *p[] = { ids };
	rc = run(c, &S_DEL_MEMBEROF, 1, p);
	const struct dir_user *one[] = { u };
	int64_t idv[] = { id };
	if (rc == TSR_OK && u->n_memberof) {
		struct dir_user only = *u;
		only.n_mails = 0; /* children: memberOf only */
		one[0] = &only;
		rc = insert_children(c, one, idv, 1);
	}
	if (rc == TSR_OK) {
		const char *p2[] = { ids, hex };
		rc = run(c, &S_SET_MEMBEROF_DIGEST, 2, p2);
	}
	return rc;
}

tsr_rc dir_user_write(struct db_conn *c, int64_t id, const struct dir_user *u, const struct dir_user_now *now,
		      bool attach)
{
	char ids[24], hex[65], mhex[65];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	crypto_hex(u->digest, 32, hex);
	crypto_hex(u->memberof_digest, 32, mhex);
	tsr_rc rc = savepoint(c);
	if (rc != TSR_OK)
		return rc;
	const char *p1[] = { ids, u->login, u->display_name, u->given_name, u->family_name, u->repo_login,
			     u->set_repo_login ? "true" : "false" };
	rc = run(c, &S_UPD_USER, 7, p1);
	if (rc == TSR_OK) {
		const char *p2[] = { ids, u->external_id, u->dn, u->disabled ? "false" : "true" };
		rc = run(c, &S_UPSERT_SOURCE, 4, p2);
	}
	/* memberOf first: it compares with the digest the upsert below records */
	if (rc == TSR_OK && u->track_memberof)
		rc = replace_memberof(c, id, u);
	if (rc == TSR_OK) {
		const char *p3[] = { ids, u->external_id, u->dn_key, u->login, u->disabled ? "true" : "false", hex,
				     u->track_memberof ? mhex : NULL };
		rc = run(c, &S_UPSERT_LDAP_USER, 7, p3);
	}
	if (rc == TSR_OK && (attach || !mails_equal(u, now))) {
		const char *p4[] = { ids };
		rc = run(c, &S_DEL_EMAILS, 1, p4);
		if (rc == TSR_OK && u->n_mails) {
			struct dir_user only = *u;
			only.track_memberof = false; /* children: emails only */
			const struct dir_user *one[] = { &only };
			int64_t idv[] = { id };
			rc = insert_children(c, one, idv, 1);
		}
	}
	return savepoint_end(c, rc);
}

tsr_rc dir_user_memberof(struct db_conn *c, int64_t id, const struct dir_user *u)
{
	return replace_memberof(c, id, u);
}

tsr_rc dir_user_set_disabled(struct db_conn *c, int64_t id, bool disabled)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = { ids, disabled ? "true" : "false" };
	return run(c, &S_SET_DISABLED, 2, p);
}

tsr_rc dir_user_detach(struct db_conn *c, int64_t id)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = { ids };
	return run(c, &S_DETACH, 1, p);
}

/* ---------- groups ---------- */

tsr_rc dir_known_groups(struct db_conn *c, struct dir_known_group **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KNOWN_GROUPS, 0, NULL, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct dir_known_group *v = calloc((size_t)rows + 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		v[i].external_id = strdup(PQgetvalue(r, i, 0));
		v[i].group_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		v[i].name = strdup(PQgetvalue(r, i, 2));
		v[i].dn = dup_or_null(r, i, 3);
		unhex32(PQgetvalue(r, i, 4), v[i].digest);
		if (!v[i].external_id || !v[i].name) {
			PQclear(r);
			dir_known_groups_free(v, (size_t)rows);
			return TSR_INTERNAL;
		}
	}
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return TSR_OK;
}

void dir_known_groups_free(struct dir_known_group *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].external_id);
		free(v[i].name);
		free(v[i].dn);
	}
	free(v);
}

tsr_rc dir_groups_insert(struct db_conn *c, const struct dir_group *const *g, size_t n, int64_t *ids)
{
	for (size_t off = 0; off < n; off += CHUNK) {
		size_t k = n - off < CHUNK ? n - off : CHUNK;
		struct strv a[5] = { { 0 } };
		char (*hex)[65] = calloc(k, sizeof(*hex));
		tsr_rc rc = hex ? TSR_OK : TSR_INTERNAL;
		for (size_t i = 0; i < k && rc == TSR_OK; i++) {
			const struct dir_group *x = g[off + i];
			ids[off + i] = 0;
			crypto_hex(x->digest, 32, hex[i]);
			const char *vals[] = { x->name, x->external_id, x->dn, x->dn_key, hex[i] };
			for (int j = 0; j < 5 && rc == TSR_OK; j++)
				rc = strv_push(&a[j], vals[j]);
		}
		PGresult *r = NULL;
		if (rc == TSR_OK)
			rc = run_arrays(c, &S_INS_GROUPS, a, 5, &r);
		for (int j = 0; j < 5; j++)
			strv_free(&a[j]);
		free(hex);
		if (rc != TSR_OK)
			return rc;
		for (int i = 0; i < PQntuples(r); i++) {
			long long ord = strtoll(PQgetvalue(r, i, 0), NULL, 10);
			if (ord >= 1 && (size_t)ord <= k)
				ids[off + (size_t)ord - 1] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		}
		PQclear(r);
	}
	return TSR_OK;
}

tsr_rc dir_group_write(struct db_conn *c, int64_t id, const struct dir_group *g)
{
	char ids[24], hex[65];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	crypto_hex(g->digest, 32, hex);
	tsr_rc rc = savepoint(c);
	if (rc != TSR_OK)
		return rc;
	const char *p1[] = { ids, g->name, g->dn };
	rc = run(c, &S_UPD_GROUP, 3, p1);
	if (rc == TSR_OK) {
		const char *p2[] = { ids, g->dn_key, hex };
		rc = run(c, &S_UPD_LDAP_GROUP, 3, p2);
	}
	return savepoint_end(c, rc);
}

tsr_rc dir_group_refs_replace(struct db_conn *c, const int64_t *ids, const struct dir_group *const *g, size_t n)
{
	for (size_t off = 0; off < n; off += CHUNK) {
		size_t k = n - off < CHUNK ? n - off : CHUNK;
		struct strv del = { 0 }, a[3] = { { 0 } };
		tsr_rc rc = TSR_OK;
		for (size_t i = 0; i < k && rc == TSR_OK; i++) {
			const struct dir_group *x = g[off + i];
			int64_t id = ids[off + i];
			rc = strv_push_id(&del, id);
			for (size_t j = 0; j < x->n_dn_refs && rc == TSR_OK; j++)
				if ((rc = strv_push_id(&a[0], id)) == TSR_OK && (rc = strv_push(&a[1], "dn")) == TSR_OK)
					rc = strv_push(&a[2], x->dn_refs[j]);
			for (size_t j = 0; j < x->n_uid_refs && rc == TSR_OK; j++)
				if ((rc = strv_push_id(&a[0], id)) == TSR_OK && (rc = strv_push(&a[1], "uid")) == TSR_OK)
					rc = strv_push(&a[2], x->uid_refs[j]);
		}
		if (rc == TSR_OK && del.n)
			rc = run_arrays(c, &S_DEL_REFS, &del, 1, NULL);
		if (rc == TSR_OK && a[0].n)
			rc = run_arrays(c, &S_INS_REFS, a, 3, NULL);
		strv_free(&del);
		for (int j = 0; j < 3; j++)
			strv_free(&a[j]);
		if (rc != TSR_OK)
			return rc;
	}
	return TSR_OK;
}

tsr_rc dir_group_delete(struct db_conn *c, int64_t id)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = { ids };
	return run(c, &S_DEL_GROUP, 1, p);
}

tsr_rc dir_memberships_resolve(struct db_conn *c, struct dir_member_changes *out)
{
	memset(out, 0, sizeof(*out));
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_RESOLVE, 0, NULL, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct dir_member_change *v = calloc((size_t)rows + 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		v[i].added = is_t(r, i, 0);
		v[i].group_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		v[i].group_name = PQgetvalue(r, i, 2);
		v[i].user_id = PQgetisnull(r, i, 3) ? 0 : strtoll(PQgetvalue(r, i, 3), NULL, 10);
		v[i].member_group_id = PQgetisnull(r, i, 4) ? 0 : strtoll(PQgetvalue(r, i, 4), NULL, 10);
		v[i].member_name = PQgetvalue(r, i, 5); /* "" for NULL */
	}
	out->v = v;
	out->n = (size_t)rows;
	out->res = r;
	return TSR_OK;
}

void dir_member_changes_free(struct dir_member_changes *x)
{
	if (!x)
		return;
	free(x->v);
	PQclear(x->res);
	memset(x, 0, sizeof(*x));
}

/* ---------- sync state ---------- */

tsr_rc dir_state_get(struct db_conn *c, const char *key, char **value)
{
	*value = NULL;
	const char *p[] = { key };
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_STATE_GET, 1, p, &rc);
	if (!r)
		return rc;
	if (PQntuples(r) == 1 && !(*value = strdup(PQgetvalue(r, 0, 0))))
		rc = TSR_INTERNAL;
	else
		rc = TSR_OK;
	PQclear(r);
	return rc;
}

tsr_rc dir_state_set(struct db_conn *c, const char *key, const char *value)
{
	const char *p[] = { key, value };
	return run(c, &S_STATE_SET, 2, p);
}
