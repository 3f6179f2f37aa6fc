/*
 * scim_store.c — see scim_store.h.
 *
 * Fixed statements are named db_stmts. List queries have a WHERE clause
 * compiled from a filter, so their text varies with the filter's *shape*
 * (never with its values, which are parameters): each distinct text gets a
 * process-wide db_stmt (at most DYN_MAX, interned under dyn_mu and never
 * freed) so db_exec() prepares it once per connection and the hot shapes
 * (userName eq, externalId eq) skip planning on every request. Past the
 * cap, texts run unprepared with PQexecParams.
 *
 * Lock order: dyn_mu is a leaf (taken only to look up or add a statement).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "scim_store.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

/* ---------------------------------------------------------------- attribute maps */

static const struct scim_sql_attr email_sub[] = {
	{ "value", "e.value", SCIM_SQL_STRING, false, NULL, NULL },
	{ "type", "e.type", SCIM_SQL_STRING, false, NULL, NULL },
	{ "primary", "e.is_primary", SCIM_SQL_BOOL, false, NULL, NULL },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

#define JSON_SUB(arr)                                                                             \
	{                                                                                         \
		{ "value", "(" arr ".x->>'value')", SCIM_SQL_STRING, false, NULL, NULL },        \
		{ "type", "(" arr ".x->>'type')", SCIM_SQL_STRING, false, NULL, NULL },          \
		{ "display", "(" arr ".x->>'display')", SCIM_SQL_STRING, false, NULL, NULL },    \
		{ "primary", "(" arr ".x->'primary' = 'true'::jsonb)", SCIM_SQL_BOOL, false, NULL, NULL }, \
		{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },                               \
	}
static const struct scim_sql_attr phone_sub[] = JSON_SUB("p");
static const struct scim_sql_attr address_sub[] = {
	{ "formatted", "(a.x->>'formatted')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "streetaddress", "(a.x->>'streetAddress')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "locality", "(a.x->>'locality')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "region", "(a.x->>'region')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "postalcode", "(a.x->>'postalCode')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "country", "(a.x->>'country')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "type", "(a.x->>'type')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "primary", "(a.x->'primary' = 'true'::jsonb)", SCIM_SQL_BOOL, false, NULL, NULL },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

static const struct scim_sql_attr user_group_sub[] = {
	{ "value", "ug.scim_id", SCIM_SQL_ID, true, NULL, NULL },
	{ "display", "ug.display_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

/* a JSON array in the scim row's attributes, as rows x */
#define JSON_ROWS(key, alias)                                                                      \
	"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(us.attributes->'" key   \
	"') = 'array' THEN us.attributes->'" key "' ELSE '[]'::jsonb END) " alias "(x) WHERE true"
#define ATTR(key) "(us.attributes->>'" key "')"
#define ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:"

const struct scim_sql_attr scim_user_attrs[] = {
	{ "id", "u.scim_id", SCIM_SQL_ID, true, NULL, NULL },
	{ "externalid", "us.external_id", SCIM_SQL_STRING, true, NULL, NULL },
	{ "username", "u.user_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "displayname", "u.display_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "name.givenname", "u.given_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "name.familyname", "u.family_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "name.formatted", "(us.attributes->'name'->>'formatted')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "name.middlename", "(us.attributes->'name'->>'middleName')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "name.honorificprefix", "(us.attributes->'name'->>'honorificPrefix')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "name.honorificsuffix", "(us.attributes->'name'->>'honorificSuffix')", SCIM_SQL_STRING, false, NULL, NULL },
	{ "nickname", ATTR("nickName"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "profileurl", ATTR("profileUrl"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "title", ATTR("title"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "usertype", ATTR("userType"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "preferredlanguage", ATTR("preferredLanguage"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "locale", ATTR("locale"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "timezone", ATTR("timezone"), SCIM_SQL_STRING, false, NULL, NULL },
	{ "active", "u.active", SCIM_SQL_BOOL, false, NULL, NULL },
	{ "meta.created", "u.created_at", SCIM_SQL_DATETIME, false, NULL, NULL },
	{ "meta.lastmodified", "u.updated_at", SCIM_SQL_DATETIME, false, NULL, NULL },
	{ "emails", NULL, SCIM_SQL_STRING, false,
	  "EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id AND e.source = 'scim'", email_sub },
	{ "phonenumbers", NULL, SCIM_SQL_STRING, false, JSON_ROWS("phoneNumbers", "p"), phone_sub },
	{ "addresses", NULL, SCIM_SQL_STRING, false, JSON_ROWS("addresses", "a"), address_sub },
	{ "groups", NULL, SCIM_SQL_STRING, false,
	  "EXISTS (SELECT 1 FROM group_members ugm JOIN groups ug ON ug.id = ugm.group_id AND ug.source = 'scim' "
	  "WHERE ugm.member_user_id = u.id",
	  user_group_sub },
	{ ENT "employeenumber", "(u.enterprise->>'employeeNumber')", SCIM_SQL_STRING, false, NULL, NULL },
	{ ENT "costcenter", "(u.enterprise->>'costCenter')", SCIM_SQL_STRING, false, NULL, NULL },
	{ ENT "organization", "(u.enterprise->>'organization')", SCIM_SQL_STRING, false, NULL, NULL },
	{ ENT "division", "(u.enterprise->>'division')", SCIM_SQL_STRING, false, NULL, NULL },
	{ ENT "department", "(u.enterprise->>'department')", SCIM_SQL_STRING, false, NULL, NULL },
	{ ENT "manager.value", "(u.enterprise->'manager'->>'value')", SCIM_SQL_STRING, false, NULL, NULL },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

static const struct scim_sql_attr member_sub[] = {
	{ "value", "coalesce(mu.scim_id, mg.scim_id)", SCIM_SQL_ID, true, NULL, NULL },
	{ "display", "coalesce(mu.display_name, mu.user_name, mg.display_name, mg.name)", SCIM_SQL_STRING, false, NULL,
	  NULL },
	{ "type", "(CASE WHEN gm.member_user_id IS NOT NULL THEN 'User' ELSE 'Group' END)", SCIM_SQL_STRING, false,
	  NULL, NULL },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

const struct scim_sql_attr scim_group_attrs[] = {
	{ "id", "g.scim_id", SCIM_SQL_ID, true, NULL, NULL },
	{ "externalid", "g.external_id", SCIM_SQL_STRING, true, NULL, NULL },
	{ "displayname", "g.display_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "meta.created", "g.created_at", SCIM_SQL_DATETIME, false, NULL, NULL },
	{ "meta.lastmodified", "g.updated_at", SCIM_SQL_DATETIME, false, NULL, NULL },
	{ "members", NULL, SCIM_SQL_STRING, false,
	  "EXISTS (SELECT 1 FROM group_members gm LEFT JOIN users mu ON mu.id = gm.member_user_id "
	  "LEFT JOIN groups mg ON mg.id = gm.member_group_id WHERE gm.group_id = g.id",
	  member_sub },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

/* ---------------------------------------------------------------- helpers */

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static char *dupv(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static void copyv(char *dst, size_t n, const PGresult *r, int row, int col)
{
	snprintf(dst, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static bool tval(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static int64_t ival(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void i64(char *out, size_t n, int64_t v)
{
	snprintf(out, n, "%" PRId64, v);
}

static bool uuid_shape(const char *s)
{
	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char ch = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (ch != '-')
				return false;
		} else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
			return false;
		}
	}
	return true;
}

static tsr_rc run(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p, PGresult **out)
{
	tsr_rc rc;
	*out = db_exec(c, s, n, p, &rc);
	return *out ? TSR_OK : rc;
}

static tsr_rc run_void(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p)
{
	PGresult *r;
	tsr_rc rc = run(c, s, n, p, &r);
	PQclear(r);
	return rc;
}

/* ---------------------------------------------------------------- dynamic statements */

#define DYN_MAX 512
static pthread_mutex_t dyn_mu = PTHREAD_MUTEX_INITIALIZER;
static struct db_stmt *dyn[DYN_MAX];
static int dyn_n;

/* The interned statement for sql with n parameters, or NULL past the cap. */
static const struct db_stmt *dyn_stmt(const char *sql, int n)
{
	const struct db_stmt *found = NULL;
	pthread_mutex_lock(&dyn_mu);
	for (int i = 0; i < dyn_n && !found; i++)
		if (dyn[i]->nparams == n && strcmp(dyn[i]->sql, sql) == 0)
			found = dyn[i];
	if (!found && dyn_n < DYN_MAX) {
		struct db_stmt *s = calloc(1, sizeof(*s));
		char *name = malloc(32);
		char *text = strdup(sql);
		if (s && name && text) {
			snprintf(name, 32, "scim_dyn_%d", dyn_n);
			s->name = name;
			s->sql = text;
			s->nparams = n;
			dyn[dyn_n++] = s;
			found = s;
		} else {
			free(s);
			free(name);
			free(text);
		}
	}
	pthread_mutex_unlock(&dyn_mu);
	return found;
}

static tsr_rc run_dyn(struct db_conn *c, const char *sql, int n, const char *const *p, PGresult **out)
{
	const struct db_stmt *s = dyn_stmt(sql, n);
	if (s)
		return run(c, s, n, p, out);
	PGresult *r = PQexecParams(c->pg, sql, n, NULL, p, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		tsr_rc rc = db_result_rc(r, c->pg);
		log_error("db_error", "stmt=scim_dyn_unprepared sqlstate=%s",
			  PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "-");
		PQclear(r);
		*out = NULL;
		return rc;
	}
	*out = r;
	return TSR_OK;
}

/* ---------------------------------------------------------------- tokens */

static const struct db_stmt S_TOKEN_CHECK = { "scim_token_check", 1,
	"WITH t AS (SELECT id, label, last_used_at FROM scim_tokens "
	"            WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL "
	"              AND (expires_at IS NULL OR expires_at > now())), "
	"     touch AS (UPDATE scim_tokens s SET last_used_at = now() FROM t "
	"                WHERE s.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '60 seconds')) "
	"SELECT id, label FROM t" };
static const struct db_stmt S_TOKEN_RETIRE = { "scim_token_retire", 1,
	"UPDATE scim_tokens SET expires_at = now() + make_interval(secs => $1::double precision) "
	" WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => $1::double precision)) "
	"RETURNING " TS("expires_at") };
static const struct db_stmt S_TOKEN_INSERT = { "scim_token_insert", 3,
	"INSERT INTO scim_tokens (token_hash, label, created_by) VALUES (decode($1, 'hex'), $2, $3) RETURNING id" };
static const struct db_stmt S_TOKEN_IMPORT = { "scim_token_import", 2,
	"INSERT INTO scim_tokens (token_hash, label, created_by) VALUES (decode($1, 'hex'), $2, 'token_file') "
	"ON CONFLICT (token_hash) DO NOTHING RETURNING id" };

tsr_rc scim_store_token_check(struct db_conn *c, const uint8_t hash[32], struct scim_token_info *out)
{
	char hex[65];
	crypto_hex(hash, 32, hex);
	const char *p[] = { hex };
	PGresult *r;
	tsr_rc rc = run(c, &S_TOKEN_CHECK, 1, p, &r);
	if (rc != TSR_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	out->id = ival(r, 0, 0);
	copyv(out->label, sizeof(out->label), r, 0, 1);
	PQclear(r);
	return TSR_OK;
}

tsr_rc scim_store_token_rotate(struct db_conn *c, const uint8_t hash[32], const char *label, const char *created_by,
			       int64_t overlap_s, int64_t *id, char *prev_expiry, size_t n)
{
	char hex[65], secs[24];
	crypto_hex(hash, 32, hex);
	i64(secs, sizeof(secs), overlap_s);
	prev_expiry[0] = '\0';
	const char *p1[] = { secs };
	PGresult *r;
	tsr_rc rc = run(c, &S_TOKEN_RETIRE, 1, p1, &r);
	if (rc != TSR_OK)
		return rc;
	if (PQntuples(r) > 0)
		copyv(prev_expiry, n, r, 0, 0);
	PQclear(r);
	const char *p2[] = { hex, label, created_by };
	if ((rc = run(c, &S_TOKEN_INSERT, 3, p2, &r)) != TSR_OK)
		return rc;
	*id = ival(r, 0, 0);
	PQclear(r);
	return TSR_OK;
}

tsr_rc scim_store_token_import(struct db_conn *c, const uint8_t hash[32], const char *label, bool *created)
{
	char hex[65];
	crypto_hex(hash, 32, hex);
	const char *p[] = { hex, label };
	PGresult *r;
	tsr_rc rc = run(c, &S_TOKEN_IMPORT, 2, p, &r);
	if (rc != TSR_OK)
		return rc;
	*created = PQntuples(r) == 1;
	PQclear(r);
	return TSR_OK;
}

/* ---------------------------------------------------------------- users */

#define USER_COLS                                                                                      \
	"u.id, u.scim_id, " TS("u.created_at") ", " TS("u.updated_at") ", u.version, u.active, us.active, " \
	"coalesce(u.deactivated_by, ''), u.user_name, u.display_name, u.given_name, u.family_name, "        \
	"us.external_id, u.enterprise::text, us.attributes::text, "                                        \
	"(SELECT json_agg(json_build_object('value', e.value, 'type', e.type, 'primary', e.is_primary) "    \
	"        ORDER BY e.id) FROM user_emails e WHERE e.user_id = u.id AND e.source = 'scim')::text, "  \
	"(SELECT json_agg(json_build_object('value', g.scim_id, 'display', g.display_name) ORDER BY g.id) " \
	"   FROM group_members gm JOIN groups g ON g.id = gm.group_id AND g.source = 'scim' "               \
	"  WHERE gm.member_user_id = u.id)::text "
#define USER_FROM " FROM users u JOIN user_sources us ON us.user_id = u.id AND us.source = 'scim' "

static const struct db_stmt S_USER_GET = { "scim_user_get", 1,
	"SELECT " USER_COLS USER_FROM " WHERE u.scim_id = $1::uuid AND u.deleted_at IS NULL" };
static const struct db_stmt S_USER_GET_LOCK = { "scim_user_get_lock", 1,
	"SELECT " USER_COLS USER_FROM " WHERE u.scim_id = $1::uuid AND u.deleted_at IS NULL FOR UPDATE OF u" };

static tsr_rc parse_emails(const char *text, struct scim_user *u)
{
	if (!text)
		return TSR_OK;
	json_t *a = json_loads(text, 0, NULL);
	if (!json_is_array(a)) {
		json_decref(a);
		return TSR_INTERNAL;
	}
	size_t n = json_array_size(a);
	u->emails = calloc(n ? n : 1, sizeof(*u->emails));
	if (!u->emails) {
		json_decref(a);
		return TSR_INTERNAL;
	}
	size_t i;
	json_t *e;
	json_array_foreach (a, i, e) {
		const char *v = json_string_value(json_object_get(e, "value"));
		const char *t = json_string_value(json_object_get(e, "type"));
		u->emails[i].value = strdup(v ? v : "");
		u->emails[i].type = t ? strdup(t) : NULL;
		u->emails[i].primary = json_is_true(json_object_get(e, "primary"));
		u->n_emails++;
	}
	json_decref(a);
	return TSR_OK;
}

static tsr_rc user_from_row(const PGresult *r, int i, struct scim_user *u)
{
	memset(u, 0, sizeof(*u));
	u->id = ival(r, i, 0);
	copyv(u->scim_id, sizeof(u->scim_id), r, i, 1);
	copyv(u->created, sizeof(u->created), r, i, 2);
	copyv(u->modified, sizeof(u->modified), r, i, 3);
	u->version = ival(r, i, 4);
	u->active = tval(r, i, 5);
	u->source_active = tval(r, i, 6);
	copyv(u->deactivated_by, sizeof(u->deactivated_by), r, i, 7);
	u->user_name = dupv(r, i, 8);
	u->display_name = dupv(r, i, 9);
	u->given_name = dupv(r, i, 10);
	u->family_name = dupv(r, i, 11);
	u->external_id = dupv(r, i, 12);
	u->enterprise = dupv(r, i, 13);
	u->attributes = dupv(r, i, 14);
	u->groups = dupv(r, i, 16);
	if (!u->user_name)
		return TSR_INTERNAL;
	return parse_emails(PQgetisnull(r, i, 15) ? NULL : PQgetvalue(r, i, 15), u);
}

void scim_user_free(struct scim_user *u)
{
	if (!u)
		return;
	free(u->user_name);
	free(u->display_name);
	free(u->given_name);
	free(u->family_name);
	free(u->external_id);
	free(u->enterprise);
	free(u->attributes);
	free(u->groups);
	for (size_t i = 0; i < u->n_emails; i++) {
		free(u->emails[i].value);
		free(u->emails[i].type);
	}
	free(u->emails);
	memset(u, 0, sizeof(*u));
}

tsr_rc scim_store_user_get(struct db_conn *c, const char *scim_id, bool lock, struct scim_user *out)
{
	memset(out, 0, sizeof(*out));
	if (!uuid_shape(scim_id))
		return TSR_NOT_FOUND;
	const char *p[] = { scim_id };
	PGresult *r;
	tsr_rc rc = run(c, lock ? &S_USER_GET_LOCK : &S_USER_GET, 1, p, &r);
	if (rc != TSR_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	rc = user_from_row(r, 0, out);
	PQclear(r);
	if (rc != TSR_OK)
		scim_user_free(out);
	return rc;
}

static const struct db_stmt S_USER_FIND_NAME = { "scim_user_find_name", 1,
	"SELECT u.id, "
	"  EXISTS (SELECT 1 FROM user_sources s WHERE s.user_id = u.id AND s.source = 'scim'), "
	"  EXISTS (SELECT 1 FROM user_sources s WHERE s.user_id = u.id AND s.source = 'ldap') "
	"  FROM users u WHERE lower(u.user_name) = lower($1) AND u.deleted_at IS NULL FOR UPDATE" };
/* $1 name $2 display $3 given $4 family $5 enterprise $6 active */
static const struct db_stmt S_USER_INSERT = { "scim_user_insert", 6,
	"INSERT INTO users (user_name, display_name, given_name, family_name, enterprise, active, "
	"                   deactivated_at, deactivated_by, deactivated_reason) "
	"VALUES ($1, $2, $3, $4, $5::jsonb, $6::boolean, CASE WHEN $6::boolean THEN NULL ELSE now() END, "
	"        CASE WHEN $6::boolean THEN NULL ELSE 'scim' END, "
	"        CASE WHEN $6::boolean THEN NULL ELSE 'created inactive by the identity provider' END) "
	"RETURNING id, scim_id" };
/* $1 uid $2 external_id $3 active $4 attributes */
static const struct db_stmt S_SOURCE_INSERT = { "scim_source_insert", 4,
	"INSERT INTO user_sources (user_id, source, external_id, active, attributes) "
	"VALUES ($1, 'scim', $2, $3::boolean, $4::jsonb)" };
/* $1 uid $2 name $3 display $4 given $5 family $6 enterprise $7 profile_from_scim */
static const struct db_stmt S_USER_UPDATE = { "scim_user_update", 7,
	"UPDATE users SET "
	"  user_name = CASE WHEN p.scim THEN $2 ELSE user_name END, "
	"  display_name = CASE WHEN p.scim THEN $3 ELSE display_name END, "
	"  given_name = CASE WHEN p.scim THEN $4 ELSE given_name END, "
	"  family_name = CASE WHEN p.scim THEN $5 ELSE family_name END, "
	"  enterprise = $6::jsonb "
	"  FROM (SELECT $7::boolean OR NOT EXISTS (SELECT 1 FROM user_sources s "
	"          WHERE s.user_id = $1 AND s.source = 'ldap') AS scim) p "
	" WHERE users.id = $1" };
static const struct db_stmt S_SOURCE_UPDATE = { "scim_source_update", 3,
	"UPDATE user_sources SET external_id = $2, attributes = $3::jsonb, last_seen = now() "
	" WHERE user_id = $1 AND source = 'scim' "
	"   AND (external_id, attributes) IS DISTINCT FROM ($2, $3::jsonb)" };
static const struct db_stmt S_SOURCE_ACTIVE = { "scim_source_active", 2,
	"UPDATE user_sources SET active = $2::boolean, last_seen = now() "
	" WHERE user_id = $1 AND source = 'scim' AND active IS DISTINCT FROM $2::boolean" };
static const struct db_stmt S_OTHER_INACTIVE = { "scim_other_inactive", 1,
	"SELECT EXISTS (SELECT 1 FROM user_sources WHERE user_id = $1 AND source <> 'scim' AND NOT active)" };
static const struct db_stmt S_HAS_OTHER = { "scim_has_other", 1,
	"SELECT EXISTS (SELECT 1 FROM user_sources WHERE user_id = $1 AND source <> 'scim')" };
static const struct db_stmt S_EMAILS_DELETE = { "scim_emails_delete", 1,
	"DELETE FROM user_emails WHERE user_id = $1 AND source = 'scim'" };
static const struct db_stmt S_EMAILS_INSERT = { "scim_emails_insert", 4,
	"INSERT INTO user_emails (user_id, source, value, type, is_primary) "
	"SELECT $1, 'scim', v, t, p FROM unnest($2::text[], $3::text[], $4::boolean[]) AS x(v, t, p)" };
static const struct db_stmt S_TOMBSTONE = { "scim_user_tombstone", 1,
	"UPDATE users SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL" };
static const struct db_stmt S_SOURCE_DELETE = { "scim_source_delete", 1,
	"DELETE FROM user_sources WHERE user_id = $1 AND source = 'scim'" };
static const struct db_stmt S_USER_UNGROUP = { "scim_user_ungroup", 1,
	"DELETE FROM group_members gm USING groups g "
	" WHERE gm.member_user_id = $1 AND g.id = gm.group_id AND g.source = 'scim'" };

static tsr_rc write_emails(struct db_conn *c, const char *uid, const struct scim_user *u)
{
	if (!u->n_emails)
		return TSR_OK;
	const char **v = calloc(u->n_emails, sizeof(*v));
	const char **t = calloc(u->n_emails, sizeof(*t));
	const char **p = calloc(u->n_emails, sizeof(*p));
	char *va = NULL, *ta = NULL, *pa = NULL;
	tsr_rc rc = TSR_INTERNAL;
	if (!v || !t || !p)
		goto out;
	for (size_t i = 0; i < u->n_emails; i++) {
		v[i] = u->emails[i].value;
		t[i] = u->emails[i].type;
		p[i] = u->emails[i].primary ? "t" : "f";
	}
	va = db_text_array(v, u->n_emails);
	ta = db_text_array(t, u->n_emails);
	pa = db_text_array(p, u->n_emails);
	if (!va || !ta || !pa)
		goto out;
	const char *params[] = { uid, va, ta, pa };
	rc = run_void(c, &S_EMAILS_INSERT, 4, params);
out:
	free(v);
	free(t);
	free(p);
	free(va);
	free(ta);
	free(pa);
	return rc;
}

tsr_rc scim_store_user_create(struct db_conn *c, struct scim_user *u, bool profile_from_scim, bool *linked)
{
	*linked = false;
	const char *p1[] = { u->user_name };
	PGresult *r;
	tsr_rc rc = run(c, &S_USER_FIND_NAME, 1, p1, &r);
	if (rc != TSR_OK)
		return rc;
	char uid[24];
	if (PQntuples(r) > 0) {
		bool has_scim = tval(r, 0, 1), has_ldap = tval(r, 0, 2);
		u->id = ival(r, 0, 0);
		PQclear(r);
		if (has_scim || !has_ldap)
			return TSR_CONFLICT; /* a SCIM user already, or a local (break-glass) account */
		*linked = true;
		i64(uid, sizeof(uid), u->id);
		const char *p2[] = { uid, u->user_name, u->display_name, u->given_name, u->family_name, u->enterprise,
				     profile_from_scim ? "t" : "f" };
		if ((rc = run_void(c, &S_USER_UPDATE, 7, p2)) != TSR_OK)
			return rc;
	} else {
		PQclear(r);
		const char *p2[] = { u->user_name, u->display_name, u->given_name, u->family_name, u->enterprise,
				     u->source_active ? "t" : "f" };
		if ((rc = run(c, &S_USER_INSERT, 6, p2, &r)) != TSR_OK)
			return rc;
		u->id = ival(r, 0, 0);
		PQclear(r);
		i64(uid, sizeof(uid), u->id);
	}
	const char *p3[] = { uid, u->external_id, u->source_active ? "t" : "f", u->attributes };
	if ((rc = run_void(c, &S_SOURCE_INSERT, 4, p3)) != TSR_OK)
		return rc;
	if ((rc = write_emails(c, uid, u)) != TSR_OK)
		return rc;
	/* read back id and scim id */
	static const struct db_stmt S_SCIM_ID = { "scim_user_scim_id", 1, "SELECT scim_id FROM users WHERE id = $1" };
	const char *p4[] = { uid };
	if ((rc = run(c, &S_SCIM_ID, 1, p4, &r)) != TSR_OK)
		return rc;
	copyv(u->scim_id, sizeof(u->scim_id), r, 0, 0);
	PQclear(r);
	return TSR_OK;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool emails_equal(const struct scim_user *a, const struct scim_user *b)
{
	if (a->n_emails != b->n_emails)
		return false;
	for (size_t i = 0; i < a->n_emails; i++)
		if (!str_eq(a->emails[i].value, b->emails[i].value) || !str_eq(a->emails[i].type, b->emails[i].type) ||
		    a->emails[i].primary != b->emails[i].primary)
			return false;
	return true;
}

static const struct db_stmt S_EMAILS_GET = { "scim_emails_get", 1,
	"SELECT (SELECT json_agg(json_build_object('value', e.value, 'type', e.type, 'primary', e.is_primary) "
	"        ORDER BY e.id) FROM user_emails e WHERE e.user_id = $1 AND e.source = 'scim')::text" };

tsr_rc scim_store_user_update(struct db_conn *c, const struct scim_user *u, bool profile_from_scim)
{
	char uid[24];
	i64(uid, sizeof(uid), u->id);
	const char *p1[] = { uid, u->user_name, u->display_name, u->given_name, u->family_name, u->enterprise,
			     profile_from_scim ? "t" : "f" };
	tsr_rc rc = run_void(c, &S_USER_UPDATE, 7, p1);
	if (rc != TSR_OK)
		return rc;
	const char *p2[] = { uid, u->external_id, u->attributes };
	if ((rc = run_void(c, &S_SOURCE_UPDATE, 3, p2)) != TSR_OK)
		return rc;
	/* emails: rewrite only when they differ, so an unchanged PUT keeps the ETag */
	const char *p3[] = { uid };
	PGresult *r;
	if ((rc = run(c, &S_EMAILS_GET, 1, p3, &r)) != TSR_OK)
		return rc;
	struct scim_user cur;
	memset(&cur, 0, sizeof(cur));
	rc = parse_emails(PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0), &cur);
	PQclear(r);
	bool same = rc == TSR_OK && emails_equal(&cur, u);
	scim_user_free(&cur);
	if (rc != TSR_OK || same)
		return rc;
	if ((rc = run_void(c, &S_EMAILS_DELETE, 1, p3)) != TSR_OK)
		return rc;
	return write_emails(c, uid, u);
}

tsr_rc scim_store_user_source_active(struct db_conn *c, int64_t uid, bool active)
{
	char id[24];
	i64(id, sizeof(id), uid);
	const char *p[] = { id, active ? "t" : "f" };
	return run_void(c, &S_SOURCE_ACTIVE, 2, p);
}

static tsr_rc bool_query(struct db_conn *c, const struct db_stmt *s, int64_t uid, bool *out)
{
	char id[24];
	i64(id, sizeof(id), uid);
	const char *p[] = { id };
	PGresult *r;
	tsr_rc rc = run(c, s, 1, p, &r);
	if (rc != TSR_OK)
		return rc;
	*out = tval(r, 0, 0);
	PQclear(r);
	return TSR_OK;
}

tsr_rc scim_store_user_other_source_inactive(struct db_conn *c, int64_t uid, bool *inactive)
{
	return bool_query(c, &S_OTHER_INACTIVE, uid, inactive);
}

tsr_rc scim_store_user_has_other_source(struct db_conn *c, int64_t uid, bool *other)
{
	return bool_query(c, &S_HAS_OTHER, uid, other);
}

tsr_rc scim_store_user_tombstone(struct db_conn *c, int64_t uid)
{
	char id[24];
	i64(id, sizeof(id), uid);
	const char *p[] = { id };
	tsr_rc rc = run_void(c, &S_USER_UNGROUP, 1, p);
	if (rc == TSR_OK)
		rc = run_void(c, &S_SOURCE_DELETE, 1, p);
	if (rc == TSR_OK)
		rc = run_void(c, &S_TOMBSTONE, 1, p);
	return rc;
}

/* ---------------------------------------------------------------- lists */

/* page (+ count when needed) over FROM/WHERE of one resource. */
static tsr_rc list_query(struct db_conn *c, const char *cols, const char *from, const char *base_where,
			 const char *default_order, const struct scim_list_query *q, int64_t *total, PGresult **page)
{
	struct buf sql;
	buf_init(&sql, 256 * 1024);
	const char **p = calloc((size_t)q->nparams + 2, sizeof(*p));
	tsr_rc rc = p ? TSR_OK : TSR_INTERNAL;
	PGresult *r = NULL;
	*page = NULL;
	*total = 0;
	if (rc != TSR_OK)
		goto out;
	for (int i = 0; i < q->nparams; i++)
		p[i] = q->params[i];
	const char *open = q->where ? " AND (" : "", *w = q->where ? q->where : "", *close = q->where ? ")" : "";
	if (q->count > 0) {
		char lim[24], off[24];
		i64(lim, sizeof(lim), q->count);
		i64(off, sizeof(off), q->start_index > 0 ? q->start_index - 1 : 0);
		p[q->nparams] = lim;
		p[q->nparams + 1] = off;
		rc = buf_printf(&sql, "SELECT %s %s WHERE %s%s%s%s ORDER BY ", cols, from, base_where, open, w, close);
		if (rc == TSR_OK && q->order_expr)
			rc = buf_printf(&sql, "%s%s%s %s NULLS LAST, ", q->order_fold ? "lower(" : "", q->order_expr,
					q->order_fold ? ")" : "", q->descending ? "DESC" : "ASC");
		if (rc == TSR_OK)
			rc = buf_printf(&sql, "%s LIMIT $%d OFFSET $%d", default_order, q->nparams + 1, q->nparams + 2);
		if (rc != TSR_OK || (rc = run_dyn(c, sql.data, q->nparams + 2, p, page)) != TSR_OK)
			goto out;
		int rows = PQntuples(*page);
		if (q->start_index <= 1 && rows < q->count) {
			*total = rows; /* a short first page is everything */
			goto out;
		}
	}
	buf_free(&sql);
	buf_init(&sql, 256 * 1024);
	rc = buf_printf(&sql, "SELECT count(*) %s WHERE %s%s%s%s", from, base_where, open, w, close);
	if (rc != TSR_OK || (rc = run_dyn(c, sql.data, q->nparams, p, &r)) != TSR_OK)
		goto out;
	*total = ival(r, 0, 0);
out:
	if (rc != TSR_OK) {
		PQclear(*page);
		*page = NULL;
	}
	PQclear(r);
	buf_free(&sql);
	free(p);
	return rc;
}

tsr_rc scim_store_user_list(struct db_conn *c, const struct scim_list_query *q, int64_t *total,
			    struct scim_user **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	*total = 0;
	PGresult *r;
	tsr_rc rc = list_query(c, USER_COLS, USER_FROM, "u.deleted_at IS NULL", "u.id", q, total, &r);
	if (rc != TSR_OK || !r)
		return rc;
	int rows = PQntuples(r);
	struct scim_user *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		if ((rc = user_from_row(r, i, &v[i])) != TSR_OK) {
			for (int j = 0; j <= i; j++)
				scim_user_free(&v[j]);
			free(v);
			PQclear(r);
			return rc;
		}
	}
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return TSR_OK;
}

/* ---------------------------------------------------------------- groups */

#define GROUP_COLS \
	"g.id, g.scim_id, " TS("g.created_at") ", " TS("g.updated_at") ", g.version, g.display_name, g.external_id"

static const struct db_stmt S_GROUP_GET = { "scim_group_get", 1,
	"SELECT " GROUP_COLS " FROM groups g WHERE g.scim_id = $1::uuid AND g.source = 'scim'" };
static const struct db_stmt S_GROUP_GET_LOCK = { "scim_group_get_lock", 1,
	"SELECT " GROUP_COLS " FROM groups g WHERE g.scim_id = $1::uuid AND g.source = 'scim' FOR UPDATE" };
static const struct db_stmt S_GROUP_MEMBERS = { "scim_group_members", 1,
	"SELECT gm.group_id, coalesce(mu.scim_id, mg.scim_id), "
	"       coalesce(mu.display_name, mu.user_name, mg.display_name, mg.name), gm.member_group_id IS NOT NULL "
	"  FROM group_members gm LEFT JOIN users mu ON mu.id = gm.member_user_id "
	"       LEFT JOIN groups mg ON mg.id = gm.member_group_id "
	" WHERE gm.group_id = ANY ($1::bigint[]) AND (mu.id IS NULL OR mu.deleted_at IS NULL) "
	" ORDER BY gm.group_id, gm.added_at, coalesce(gm.member_user_id, gm.member_group_id)" };
static const struct db_stmt S_GROUP_INSERT = { "scim_group_insert", 2,
	"INSERT INTO groups (name, display_name, source, external_id) VALUES ($1, $1, 'scim', $2) "
	"RETURNING id, scim_id, " TS("created_at") ", " TS("updated_at") ", version" };
static const struct db_stmt S_GROUP_UPDATE = { "scim_group_update", 3,
	"UPDATE groups SET name = $2, display_name = $2, external_id = $3 WHERE id = $1" };
static const struct db_stmt S_GROUP_DELETE = { "scim_group_delete", 1, "DELETE FROM groups WHERE id = $1" };
static const struct db_stmt S_MEMBERS_RESOLVE = { "scim_members_resolve", 1,
	"SELECT x.i, u.id, g.id FROM unnest($1::uuid[]) WITH ORDINALITY AS x(v, i) "
	"  LEFT JOIN users u ON u.scim_id = x.v AND u.deleted_at IS NULL "
	"       AND EXISTS (SELECT 1 FROM user_sources s WHERE s.user_id = u.id AND s.source = 'scim') "
	"  LEFT JOIN groups g ON g.scim_id = x.v AND g.source = 'scim' "
	" ORDER BY x.i" };
static const struct db_stmt S_MEMBERS_ADD = { "scim_members_add", 3,
	"INSERT INTO group_members (group_id, member_user_id, member_group_id) "
	"SELECT $1, nullif(x.u, 0), nullif(x.g, 0) FROM unnest($2::bigint[], $3::bigint[]) AS x(u, g) "
	"ON CONFLICT ON CONSTRAINT group_members_key DO NOTHING" };
static const struct db_stmt S_MEMBERS_REMOVE = { "scim_members_remove", 2,
	"DELETE FROM group_members gm WHERE gm.group_id = $1 AND ("
	"  gm.member_user_id IN (SELECT id FROM users WHERE scim_id = ANY ($2::uuid[])) OR "
	"  gm.member_group_id IN (SELECT id FROM groups WHERE scim_id = ANY ($2::uuid[])))" };
static const struct db_stmt S_MEMBERS_CLEAR = { "scim_members_clear", 1,
	"DELETE FROM group_members WHERE group_id = $1" };

static tsr_rc group_from_row(const PGresult *r, int i, struct scim_group *g)
{
	memset(g, 0, sizeof(*g));
	g->id = ival(r, i, 0);
	copyv(g->scim_id, sizeof(g->scim_id), r, i, 1);
	copyv(g->created, sizeof(g->created), r, i, 2);
	copyv(g->modified, sizeof(g->modified), r, i, 3);
	g->version = ival(r, i, 4);
	g->display_name = dupv(r, i, 5);
	g->external_id = dupv(r, i, 6);
	return g->display_name ? TSR_OK : TSR_INTERNAL;
}

void scim_group_free(struct scim_group *g)
{
	if (!g)
		return;
	free(g->display_name);
	free(g->external_id);
	for (size_t i = 0; i < g->n_members; i++)
		free(g->members[i].display);
	free(g->members);
	memset(g, 0, sizeof(*g));
}

/* Load the members of groups v[0..n) in one query. */
static tsr_rc load_members(struct db_conn *c, struct scim_group *v, size_t n)
{
	if (!n)
		return TSR_OK;
	char **ids = calloc(n, sizeof(*ids));
	if (!ids)
		return TSR_INTERNAL;
	tsr_rc rc = TSR_OK;
	for (size_t i = 0; i < n && rc == TSR_OK; i++) {
		ids[i] = malloc(24);
		if (!ids[i])
			rc = TSR_INTERNAL;
		else
			i64(ids[i], 24, v[i].id);
	}
	char *arr = rc == TSR_OK ? db_text_array((const char *const *)ids, n) : NULL;
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (!arr)
		return TSR_INTERNAL;
	const char *p[] = { arr };
	PGresult *r;
	rc = run(c, &S_GROUP_MEMBERS, 1, p, &r);
	free(arr);
	if (rc != TSR_OK)
		return rc;
	int rows = PQntuples(r);
	/* rows are ordered by group id; count per group first */
	for (size_t gi = 0; gi < n; gi++) {
		size_t cnt = 0;
		for (int i = 0; i < rows; i++)
			if (ival(r, i, 0) == v[gi].id)
				cnt++;
		v[gi].members = calloc(cnt ? cnt : 1, sizeof(*v[gi].members));
		v[gi].members_loaded = true;
		if (!v[gi].members) {
			rc = TSR_INTERNAL;
			break;
		}
		for (int i = 0; i < rows; i++) {
			if (ival(r, i, 0) != v[gi].id)
				continue;
			struct scim_member *m = &v[gi].members[v[gi].n_members++];
			copyv(m->value, sizeof(m->value), r, i, 1);
			m->display = dupv(r, i, 2);
			m->is_group = tval(r, i, 3);
		}
	}
	PQclear(r);
	return rc;
}

tsr_rc scim_store_group_load_members(struct db_conn *c, struct scim_group *g)
{
	return load_members(c, g, 1);
}

tsr_rc scim_store_group_get(struct db_conn *c, const char *scim_id, bool lock, bool with_members,
			    struct scim_group *out)
{
	memset(out, 0, sizeof(*out));
	if (!uuid_shape(scim_id))
		return TSR_NOT_FOUND;
	const char *p[] = { scim_id };
	PGresult *r;
	tsr_rc rc = run(c, lock ? &S_GROUP_GET_LOCK : &S_GROUP_GET, 1, p, &r);
	if (rc != TSR_OK)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return TSR_NOT_FOUND;
	}
	rc = group_from_row(r, 0, out);
	PQclear(r);
	if (rc == TSR_OK && with_members)
		rc = load_members(c, out, 1);
	if (rc != TSR_OK)
		scim_group_free(out);
	return rc;
}

tsr_rc scim_store_group_create(struct db_conn *c, struct scim_group *g)
{
	const char *p[] = { g->display_name, g->external_id };
	PGresult *r;
	tsr_rc rc = run(c, &S_GROUP_INSERT, 2, p, &r);
	if (rc != TSR_OK)
		return rc;
	g->id = ival(r, 0, 0);
	copyv(g->scim_id, sizeof(g->scim_id), r, 0, 1);
	copyv(g->created, sizeof(g->created), r, 0, 2);
	copyv(g->modified, sizeof(g->modified), r, 0, 3);
	g->version = ival(r, 0, 4);
	PQclear(r);
	return TSR_OK;
}

tsr_rc scim_store_group_update(struct db_conn *c, const struct scim_group *g)
{
	char id[24];
	i64(id, sizeof(id), g->id);
	const char *p[] = { id, g->display_name, g->external_id };
	return run_void(c, &S_GROUP_UPDATE, 3, p);
}

tsr_rc scim_store_group_delete(struct db_conn *c, int64_t gid)
{
	char id[24];
	i64(id, sizeof(id), gid);
	const char *p[] = { id };
	return run_void(c, &S_GROUP_DELETE, 1, p);
}

tsr_rc scim_store_members_resolve(struct db_conn *c, const char *const *values, size_t n, int64_t *user_ids,
				  int64_t *group_ids, const char **unknown, size_t *n_unknown)
{
	*n_unknown = 0;
	if (!n)
		return TSR_OK;
	/* ids that are not UUIDs cannot name anything: report them without asking Postgres to cast them */
	const char **ok = calloc(n, sizeof(*ok));
	size_t *where = calloc(n, sizeof(*where));
	tsr_rc rc = TSR_INTERNAL;
	char *arr = NULL;
	PGresult *r = NULL;
	if (!ok || !where)
		goto out;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		user_ids[i] = group_ids[i] = 0;
		if (uuid_shape(values[i])) {
			ok[k] = values[i];
			where[k++] = i;
		} else {
			unknown[(*n_unknown)++] = values[i];
		}
	}
	rc = TSR_OK;
	if (!k)
		goto out;
	arr = db_text_array(ok, k);
	if (!arr) {
		rc = TSR_INTERNAL;
		goto out;
	}
	const char *p[] = { arr };
	if ((rc = run(c, &S_MEMBERS_RESOLVE, 1, p, &r)) != TSR_OK)
		goto out;
	for (int i = 0; i < PQntuples(r) && (size_t)i < k; i++) {
		size_t at = where[ival(r, i, 0) - 1];
		user_ids[at] = ival(r, i, 1);
		group_ids[at] = ival(r, i, 2);
		if (!user_ids[at] && !group_ids[at])
			unknown[(*n_unknown)++] = values[at];
	}
out:
	PQclear(r);
	free(arr);
	free(ok);
	free(where);
	return rc;
}

static char *id_array(const int64_t *v, size_t n)
{
	struct buf b;
	buf_init(&b, 64u << 20);
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

tsr_rc scim_store_members_add(struct db_conn *c, int64_t gid, const int64_t *user_ids, const int64_t *group_ids,
			      size_t n, int64_t *added)
{
	*added = 0;
	if (!n)
		return TSR_OK;
	char id[24];
	i64(id, sizeof(id), gid);
	char *ua = id_array(user_ids, n), *ga = id_array(group_ids, n);
	tsr_rc rc = TSR_INTERNAL;
	if (ua && ga) {
		const char *p[] = { id, ua, ga };
		PGresult *r;
		rc = run(c, &S_MEMBERS_ADD, 3, p, &r);
		if (rc == TSR_OK) {
			*added = strtoll(PQcmdTuples(r), NULL, 10);
			PQclear(r);
		}
	}
	free(ua);
	free(ga);
	return rc;
}

tsr_rc scim_store_members_remove(struct db_conn *c, int64_t gid, const char *const *values, size_t n,
				 int64_t *removed)
{
	*removed = 0;
	const char **ok = calloc(n ? n : 1, sizeof(*ok));
	if (!ok)
		return TSR_INTERNAL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (uuid_shape(values[i]))
			ok[k++] = values[i];
	tsr_rc rc = TSR_OK;
	if (k) {
		char id[24];
		i64(id, sizeof(id), gid);
		char *arr = db_text_array(ok, k);
		if (!arr) {
			free(ok);
			return TSR_INTERNAL;
		}
		const char *p[] = { id, arr };
		PGresult *r;
		rc = run(c, &S_MEMBERS_REMOVE, 2, p, &r);
		if (rc == TSR_OK) {
			*removed = strtoll(PQcmdTuples(r), NULL, 10);
			PQclear(r);
		}
		free(arr);
	}
	free(ok);
	return rc;
}

tsr_rc scim_store_members_clear(struct db_conn *c, int64_t gid, int64_t *removed)
{
	char id[24];
	i64(id, sizeof(id), gid);
	const char *p[] = { id };
	PGresult *r;
	tsr_rc rc = run(c, &S_MEMBERS_CLEAR, 1, p, &r);
	if (rc == TSR_OK) {
		*removed = strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
	}
	return rc;
}

tsr_rc scim_store_group_list(struct db_conn *c, const struct scim_list_query *q, bool with_members, int64_t *total,
			     struct scim_group **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	*total = 0;
	PGresult *r;
	tsr_rc rc = list_query(c, GROUP_COLS, " FROM groups g ", "g.source = 'scim'", "g.id", q, total, &r);
	if (rc != TSR_OK || !r)
		return rc;
	int rows = PQntuples(r);
	struct scim_group *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows && rc == TSR_OK; i++)
		rc = group_from_row(r, i, &v[i]);
	PQclear(r);
	if (rc == TSR_OK && with_members)
		rc = load_members(c, v, (size_t)rows);
	if (rc != TSR_OK) {
		for (int i = 0; i < rows; i++)
			scim_group_free(&v[i]);
		free(v);
		return rc;
	}
	*out = v;
	*n = (size_t)rows;
	return TSR_OK;
}
