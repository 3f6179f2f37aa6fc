/*
 * admin_users.c — see admin_users.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_users.h"
#include "tokencache.h"
#include "../db/credential.h"
#include "../db/offboard.h"
#include "../db/users.h"

static json_t *user_json(const struct user_row *u)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:s,s:i,s:i}", "id", (json_int_t)u->id, "user",
			 u->user_name, "display_name", u->display_name, "email", u->email, "repo_login", u->repo_login,
			 "sources", u->sources, "roles", u->roles, "active", u->active, "deactivated_at",
			 u->deactivated_at[0] ? json_string(u->deactivated_at) : json_null(), "deactivated_by",
			 u->deactivated_by[0] ? json_string(u->deactivated_by) : json_null(), "deactivated_reason",
			 u->deactivated_reason[0] ? json_string(u->deactivated_reason) : json_null(), "created_at",
			 u->created_at, "live_credentials", u->live_credentials, "repos", u->repos);
}

static int limit_arg(struct http_req *r)
{
	const char *l = http_query(r, "limit");
	long v = l ? strtol(l, NULL, 10) : 1000;
	return v < 1 ? 1 : v > 100000 ? 100000 : (int)v;
}

static tsr_rc h_list(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct user_row *rows = NULL;
	int n = 0;
	rc = db_user_list(c, http_query(r, "q"), limit_arg(r), &rows, &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, user_json(&rows[i]));
	free(rows);
	return http_reply_json(r, 200, json_pack("{s:o}", "users", a));
}

/* Resolve the user named by the route's first wildcard. */
static tsr_rc find_user(struct http_req *r, struct db_conn *c, struct user_row *u, char *name, size_t n)
{
	if (!http_path_arg(r, 0, name, n) || !*name)
		return http_reply_error(r, TSR_INVALID, "user name missing in the path");
	tsr_rc rc = db_user_by_name(c, name, u);
	if (rc == TSR_NOT_FOUND) {
		/* reply written here; callers see NOT_FOUND with r->status set */
		tsr_rc w = http_reply_error(r, TSR_NOT_FOUND, "no user %s", name);
		return w == TSR_OK ? TSR_NOT_FOUND : w;
	}
	return rc;
}

static tsr_rc h_show(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct user_row u;
	char name[300];
	rc = find_user(r, c, &u, name, sizeof(name));
	struct cred_row *creds = NULL;
	int n = 0;
	if (rc == TSR_OK)
		rc = db_credential_list(c, u.id, 1000, &creds, &n);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND && r->status)
		return TSR_OK;
	if (rc != TSR_OK)
		return r->status ? TSR_OK : rc;
	json_t *j = user_json(&u);
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)creds[i].id, "kind",
						   creds[i].kind, "expires_at", creds[i].expires_at, "last_used_at",
						   creds[i].last_used_at, "repos", creds[i].repos));
	free(creds);
	json_object_set_new(j, "credentials", a);
	return http_reply_json(r, 200, j);
}

static const char *reason_of(struct http_req *r, json_t **doc)
{
	json_error_t e;
	*doc = r->body.len ? json_loadb(r->body.data, r->body.len, 0, &e) : NULL;
	return json_string_value(json_object_get(*doc, "reason"));
}

static tsr_rc h_offboard(struct http_req *r)
{
	json_t *doc;
	const char *reason = reason_of(r, &doc);
	if (!reason || !*reason) {
		json_decref(doc);
		return http_reply_error(r, TSR_INVALID, "offboarding needs a reason: {\"reason\": \"…\"}");
	}
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK) {
		json_decref(doc);
		return rc;
	}
	struct user_row u;
	char name[300];
	struct offboard_result res = { 0 };
	rc = find_user(r, c, &u, name, sizeof(name));
	if (rc == TSR_OK)
		rc = db_offboard(c, u.id, OFFBOARD_ADMIN, r->who.user_name, reason, &res);
	db_release(r->b->pool, c);
	json_decref(doc);
	if (rc != TSR_OK)
		return r->status ? TSR_OK : rc;
	tokencache_evict_user(r->b->tokens, u.id);
	return http_reply_json(r, 200, json_pack("{s:s,s:b,s:i,s:i}", "user", u.user_name, "changed", res.changed,
						 "credentials_revoked", res.credentials, "roles_removed", res.roles));
}

static tsr_rc h_reinstate(struct http_req *r)
{
	json_t *doc;
	const char *reason = reason_of(r, &doc);
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK) {
		json_decref(doc);
		return rc;
	}
	struct user_row u;
	char name[300];
	bool changed = false;
	rc = find_user(r, c, &u, name, sizeof(name));
	if (rc == TSR_OK)
		rc = db_reinstate(c, u.id, r->who.user_name, reason ? reason : "", &changed);
	db_release(r->b->pool, c);
	json_decref(doc);
	if (rc != TSR_OK)
		return r->status ? TSR_OK : rc;
	return http_reply_json(r, 200, json_pack("{s:s,s:b}", "user", u.user_name, "changed", changed));
}

static tsr_rc h_revoke_user(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct user_row u;
	char name[300];
	int n = 0;
	rc = find_user(r, c, &u, name, sizeof(name));
	if (rc == TSR_OK)
		rc = db_credential_revoke_user(c, u.id, r->who.user_name, "revoked by an administrator", &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return r->status ? TSR_OK : rc;
	tokencache_evict_user(r->b->tokens, u.id);
	return http_reply_json(r, 200, json_pack("{s:s,s:i}", "user", u.user_name, "revoked", n));
}

static tsr_rc h_tokens(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	int64_t uid = 0;
	const char *user = http_query(r, "user");
	if (user) {
		struct user_row u;
		rc = db_user_by_name(c, user, &u);
		if (rc == TSR_NOT_FOUND) {
			db_release(r->b->pool, c);
			return http_reply_error(r, TSR_NOT_FOUND, "no user %s", user);
		}
		uid = u.id;
	}
	struct cred_row *rows = NULL;
	int n = 0;
	if (rc == TSR_OK)
		rc = db_credential_list(c, uid, limit_arg(r), &rows, &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)rows[i].id, "kind",
						   rows[i].kind, "user", rows[i].user_name, "created_at",
						   rows[i].created_at, "expires_at", rows[i].expires_at, "last_used_at",
						   rows[i].last_used_at, "repos", rows[i].repos));
	free(rows);
	return http_reply_json(r, 200, json_pack("{s:o}", "tokens", a));
}

static tsr_rc h_token_revoke(struct http_req *r)
{
	char id[32];
	char *end;
	if (!http_path_arg(r, 0, id, sizeof(id)))
		return http_reply_error(r, TSR_INVALID, "credential id missing in the path");
	long long cid = strtoll(id, &end, 10);
	if (*end || cid <= 0)
		return http_reply_error(r, TSR_INVALID, "credential id must be a number, got '%s'", id);
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	int n = 0;
	rc = db_credential_revoke(c, cid, 0, r->who.user_name, "revoked by an administrator", &n);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND)
		return http_reply_error(r, TSR_NOT_FOUND, "no live credential %lld", cid);
	if (rc != TSR_OK)
		return rc;
	tokencache_evict_cred(r->b->tokens, cid);
	return http_reply_json(r, 200, json_pack("{s:I,s:i}", "id", (json_int_t)cid, "revoked", n));
}

#define SEC (ROLE_ADMIN | ROLE_SECURITY)
static const struct route routes_users[] = {
	{ "GET", "/admin/v1/users", SEC, h_list, NULL, NULL },
	{ "POST", "/admin/v1/users/*/offboard", SEC, h_offboard, NULL, NULL },
	{ "POST", "/admin/v1/users/*/reinstate", ROLE_ADMIN, h_reinstate, NULL, NULL },
	{ "POST", "/admin/v1/users/*/revoke-tokens", SEC, h_revoke_user, NULL, NULL },
	{ "GET", "/admin/v1/users/*", SEC, h_show, NULL, NULL },
	{ "GET", "/admin/v1/tokens", SEC, h_tokens, NULL, NULL },
	{ "POST", "/admin/v1/tokens/*/revoke", SEC, h_token_revoke, NULL, NULL },
};
ROUTE_TABLE(admin_users_routes, routes_users);
