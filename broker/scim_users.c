/*
 * scim_users.c — /scim/v2/Users: POST, GET (one, list), PUT, PATCH, DELETE.
 *
 * A resource body is normalised against the schema table (scim_schema.c),
 * split into the typed struct scim_user (columns, emails, the scim source
 * row's externalId and other attributes, the enterprise extension) and
 * written by db/scim_store.c. A PATCH is applied to the user's current
 * writable representation and then stored like a PUT, so both paths share
 * one validation. Everything a write implies happens in its transaction:
 *   active false  -> the scim source's view goes false and db_offboard()
 *                    runs (idempotent) before the reply;
 *   active true   -> db_reinstate() when SCIM was what deactivated the user
 *                    and no other source reports them inactive; role grants
 *                    are then recomputed (db_roles_sync());
 *   DELETE        -> db_offboard(), then the tombstone.
 * The audit event (actor "scim:<label>") commits with the change.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim_int.h"
#include "scim_patch.h"
#include "tokencache.h"
#include "../db/offboard.h"
#include "../db/roles.h"
#include "../lib/log.h"

/* Whether SCIM's name attributes win over LDAP's for people in both ([scim] profile_source). */
static bool profile_from_scim(const struct http_req *r)
{
	return !r->b->cfg->scim.profile_source || strcmp(r->b->cfg->scim.profile_source, "ldap") != 0;
}

/* ---------------------------------------------------------------- representation */

static json_t *user_json(const struct scim_user *u, const char *base)
{
	json_t *attrs = u->attributes ? json_loads(u->attributes, 0, NULL) : NULL;
	if (!json_is_object(attrs)) {
		json_decref(attrs);
		attrs = json_object();
	}
	json_t *schemas = json_pack("[s]", SCIM_URN_USER);
	json_t *res = json_pack("{s:o,s:s}", "schemas", schemas, "id", u->scim_id);
	if (u->external_id)
		json_object_set_new(res, "externalId", json_string(u->external_id));
	json_object_set_new(res, "userName", json_string(u->user_name));
	json_t *name = json_object_get(attrs, "name");
	name = json_is_object(name) ? json_incref(name) : json_object();
	json_object_del(attrs, "name");
	if (u->given_name)
		json_object_set_new(name, "givenName", json_string(u->given_name));
	if (u->family_name)
		json_object_set_new(name, "familyName", json_string(u->family_name));
	if (json_object_size(name))
		json_object_set(res, "name", name);
	json_decref(name);
	if (u->display_name)
		json_object_set_new(res, "displayName", json_string(u->display_name));
	json_object_set_new(res, "active", json_boolean(u->active));
	if (u->n_emails) {
		json_t *emails = json_array();
		for (size_t i = 0; i < u->n_emails; i++) {
			json_t *e = json_pack("{s:s}", "value", u->emails[i].value);
			if (u->emails[i].type)
				json_object_set_new(e, "type", json_string(u->emails[i].type));
			json_object_set_new(e, "primary", json_boolean(u->emails[i].primary));
			json_array_append_new(emails, e);
		}
		json_object_set_new(res, "emails", emails);
	}
	json_object_update_missing(res, attrs);
	json_decref(attrs);
	json_t *groups = u->groups ? json_loads(u->groups, 0, NULL) : NULL;
	if (json_is_array(groups) && json_array_size(groups)) {
		size_t i;
		json_t *g;
		json_array_foreach (groups, i, g) {
			char ref[700];
			snprintf(ref, sizeof(ref), "%s/Groups/%s", base, json_string_value(json_object_get(g, "value")));
			json_object_set_new(g, "$ref", json_string(ref));
			json_object_set_new(g, "type", json_string("direct"));
		}
		json_object_set_new(res, "groups", groups);
	} else {
		json_decref(groups);
	}
	json_t *ent = u->enterprise ? json_loads(u->enterprise, 0, NULL) : NULL;
	if (json_is_object(ent) && json_object_size(ent)) {
		json_object_set_new(res, SCIM_URN_ENTERPRISE, ent);
		json_array_append_new(schemas, json_string(SCIM_URN_ENTERPRISE));
	} else {
		json_decref(ent);
	}
	char loc[700], tag[32];
	snprintf(loc, sizeof(loc), "%s/Users/%s", base, u->scim_id);
	scim_etag(tag, sizeof(tag), u->version);
	json_object_set_new(res, "meta", json_pack("{s:s,s:s,s:s,s:s,s:s}", "resourceType", "User", "created",
						  u->created, "lastModified", u->modified, "location", loc, "version",
						  tag));
	return res;
}

/* The representation as a PATCH sees it: only writable attributes; active is the IdP's own view. */
static json_t *user_doc(const struct scim_user *u, const char *base)
{
	json_t *d = user_json(u, base);
	json_object_del(d, "id");
	json_object_del(d, "meta");
	json_object_del(d, "schemas");
	json_object_del(d, "groups");
	json_object_set_new(d, "active", json_boolean(u->source_active));
	return d;
}

static tsr_rc reply_user(struct http_req *r, int status, const struct scim_user *u, bool with_location)
{
	char base[600], loc[700];
	scim_base(r, base, sizeof(base));
	snprintf(loc, sizeof(loc), "%s/Users/%s", base, u->scim_id);
	json_t *j = user_json(u, base);
	scim_project(r, j, SCIM_URN_ENTERPRISE);
	tsr_rc rc = scim_reply(r, status, j);
	scim_resource_headers(r, u->version, with_location ? loc : NULL);
	return rc;
}

/* ---------------------------------------------------------------- body -> struct */

static char *str_dup(json_t *v)
{
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/*
 * Split a normalised document into u. has_active and active say whether and how
 * it states active. invalidValue text in err on failure.
 */
static tsr_rc user_from_doc(json_t *doc, struct scim_user *u, bool *has_active, bool *active, struct scim_err *err)
{
	memset(u, 0, sizeof(*u));
	json_t *un = json_object_get(doc, "userName");
	if (!json_is_string(un) || !json_string_length(un)) {
		snprintf(err->msg, sizeof(err->msg), "userName is required");
		return TSR_INVALID;
	}
	if (json_string_length(un) > 512) {
		snprintf(err->msg, sizeof(err->msg), "userName is longer than 512 bytes");
		return TSR_INVALID;
	}
	json_t *rest = json_deep_copy(doc);
	u->user_name = str_dup(un);
	u->display_name = str_dup(json_object_get(doc, "displayName"));
	u->external_id = str_dup(json_object_get(doc, "externalId"));
	json_t *name = json_object_get(rest, "name");
	u->given_name = str_dup(json_object_get(name, "givenName"));
	u->family_name = str_dup(json_object_get(name, "familyName"));
	if (json_is_object(name)) {
		json_object_del(name, "givenName");
		json_object_del(name, "familyName");
		if (!json_object_size(name))
			json_object_del(rest, "name");
	}
	json_t *act = json_object_get(doc, "active");
	*has_active = json_is_boolean(act);
	*active = !*has_active || json_is_true(act);
	json_t *emails = json_object_get(doc, "emails");
	if (json_is_array(emails) && json_array_size(emails)) {
		u->emails = calloc(json_array_size(emails), sizeof(*u->emails));
		if (!u->emails)
			goto oom;
		size_t i;
		json_t *e;
		json_array_foreach (emails, i, e) {
			json_t *v = json_object_get(e, "value");
			if (!json_is_string(v) || !json_string_length(v)) {
				snprintf(err->msg, sizeof(err->msg), "emails[%zu].value is required", i);
				json_decref(rest);
				return TSR_INVALID;
			}
			struct scim_email *m = &u->emails[u->n_emails++];
			m->value = str_dup(v);
			m->type = str_dup(json_object_get(e, "type"));
			m->primary = json_is_true(json_object_get(e, "primary"));
		}
	}
	json_t *ent = json_object_get(doc, SCIM_URN_ENTERPRISE);
	if (json_is_object(ent) && json_object_size(ent))
		u->enterprise = json_dumps(ent, JSON_COMPACT | JSON_SORT_KEYS);
	const char *const columns[] = { "userName", "displayName", "externalId", "active", "emails",
					SCIM_URN_ENTERPRISE };
	for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
		json_object_del(rest, columns[i]);
	if (json_object_size(rest))
		u->attributes = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(rest);
	if (!u->user_name)
		return TSR_INTERNAL;
	return TSR_OK;
oom:
	json_decref(rest);
	return TSR_INTERNAL;
}

/* Normalise body and split it; replies 400 itself on failure (returns false). */
static bool parse_user(struct http_req *r, json_t *body, struct scim_user *u, bool *has_active, bool *active)
{
	json_t *doc;
	struct scim_err err;
	if (scim_normalize(&scim_schema_user, &scim_schema_enterprise, body, &doc, &err) != TSR_OK) {
		scim_fail(r, 400, "invalidValue", "%s", err.msg);
		return false;
	}
	tsr_rc rc = user_from_doc(doc, u, has_active, active, &err);
	json_decref(doc);
	if (rc != TSR_OK) {
		scim_user_free(u);
		if (rc == TSR_INVALID)
			scim_fail(r, 400, "invalidValue", "%s", err.msg);
		else
			scim_fail(r, 500, NULL, "internal error");
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- activation */

/*
 * The IdP says active = want for cur. Records its view, then deactivates
 * (db_offboard, idempotent) or reinstates (only what SCIM deactivated, and
 * only while no other source reports the person inactive).
 */
static tsr_rc apply_active(struct db_conn *c, struct http_req *r, const struct scim_user *cur, bool want,
			   const char *why, json_t *detail)
{
	tsr_rc rc = scim_store_user_source_active(c, cur->id, want);
	if (rc != TSR_OK)
		return rc;
	if (!want) {
		struct offboard_result res;
		rc = db_offboard(c, cur->id, OFFBOARD_SCIM, scim_actor(r), why, &res);
		if (rc == TSR_OK && res.changed)
			json_object_set_new(detail, "offboarded", json_pack("{s:i,s:i}", "credentials_revoked",
									    res.credentials, "roles_removed", res.roles));
		return rc;
	}
	if (cur->active || strcmp(cur->deactivated_by, OFFBOARD_SCIM) != 0)
		return TSR_OK;
	bool other_inactive = false;
	if ((rc = scim_store_user_other_source_inactive(c, cur->id, &other_inactive)) != TSR_OK)
		return rc;
	if (other_inactive) {
		json_object_set_new(detail, "reinstated", json_false());
		json_object_set_new(detail, "still_inactive_because", json_string("another source reports the user inactive"));
		return TSR_OK;
	}
	bool changed = false;
	rc = db_reinstate(c, cur->id, scim_actor(r), "SCIM active=true", &changed);
	if (rc == TSR_OK && changed) {
		json_object_set_new(detail, "reinstated", json_true());
		rc = db_roles_sync(c, r->b->cfg, scim_actor(r), NULL, NULL);
	}
	return rc;
}

/* ---------------------------------------------------------------- handlers */

static tsr_rc get_user(struct http_req *r, const char *id)
{
	struct db_conn *c;
	if (db_acquire(r->b->pool, 5000, &c) != TSR_OK)
		return scim_fail(r, 503, NULL, "the database is unavailable; retry later");
	struct scim_user u;
	tsr_rc rc = scim_store_user_get(c, id, false, &u);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND)
		return scim_fail(r, 404, NULL, "User %.64s not found", id);
	if (rc != TSR_OK)
		return scim_fail_rc(r, rc, "User");
	if (scim_if_none_match(r, u.version)) {
		r->status = 304;
		r->content_type = SCIM_CT;
		scim_resource_headers(r, u.version, NULL);
	} else {
		rc = reply_user(r, 200, &u, false);
	}
	scim_user_free(&u);
	return rc;
}

static tsr_rc list_users(struct http_req *r)
{
	struct scim_list_query q;
	struct scim_sql sql;
	scim_sql_init(&sql);
	if (!scim_list_params(r, scim_user_attrs, &q, &sql)) {
		scim_sql_free(&sql);
		return TSR_OK;
	}
	struct db_conn *c;
	if (db_acquire(r->b->pool, 5000, &c) != TSR_OK) {
		scim_sql_free(&sql);
		return scim_fail(r, 503, NULL, "the database is unavailable; retry later");
	}
	int64_t total = 0;
	struct scim_user *v = NULL;
	size_t n = 0;
	tsr_rc rc = scim_store_user_list(c, &q, &total, &v, &n);
	db_release(r->b->pool, c);
	scim_sql_free(&sql);
	if (rc != TSR_OK)
		return scim_fail_rc(r, rc, "Users");
	char base[600];
	scim_base(r, base, sizeof(base));
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *j = user_json(&v[i], base);
		scim_project(r, j, SCIM_URN_ENTERPRISE);
		json_array_append_new(arr, j);
		scim_user_free(&v[i]);
	}
	free(v);
	return scim_reply(r, 200, scim_list_response(arr, total, q.start_index));
}

/* Commit, then reply with the user as loaded inside the transaction. */
static tsr_rc finish(struct http_req *r, struct db_conn *c, tsr_rc rc, int status, const struct scim_user *u,
		     bool location)
{
	rc = scim_end(r, c, rc);
	if (rc != TSR_OK)
		return scim_fail_rc(r, rc, "User");
	return reply_user(r, status, u, location);
}

static tsr_rc create_user(struct http_req *r)
{
	json_t *body = scim_body(r);
	if (!body) {
		scim_audit_refusal(r, "scim.user.create", NULL);
		return TSR_OK;
	}
	struct scim_user u, stored;
	memset(&stored, 0, sizeof(stored));
	bool has_active, active;
	bool ok = parse_user(r, body, &u, &has_active, &active);
	json_decref(body);
	if (!ok) {
		scim_audit_refusal(r, "scim.user.create", NULL);
		return TSR_OK;
	}
	u.source_active = active;
	struct db_conn *c;
	if (scim_begin(r, &c) != TSR_OK) {
		scim_user_free(&u);
		return TSR_OK;
	}
	bool linked = false;
	json_t *detail = json_object();
	tsr_rc rc = scim_store_user_create(c, &u, profile_from_scim(r), &linked);
	if (rc == TSR_OK) {
		json_object_set_new(detail, "scim_id", json_string(u.scim_id));
		json_object_set_new(detail, "linked_existing_user", json_boolean(linked));
		if (!active)
			json_object_set_new(detail, "active", json_false());
	}
	if (rc == TSR_OK && linked && !active) {
		struct scim_user cur;
		if ((rc = scim_store_user_get(c, u.scim_id, true, &cur)) == TSR_OK) {
			rc = apply_active(c, r, &cur, false, "SCIM: created with active=false", detail);
			scim_user_free(&cur);
		}
	}
	if (rc == TSR_OK)
		rc = scim_audit(c, r, "scim.user.create", "success", u.id, u.user_name, json_incref(detail));
	if (rc == TSR_OK)
		rc = scim_store_user_get(c, u.scim_id, false, &stored);
	json_decref(detail);
	if (rc != TSR_OK) {
		scim_end(r, c, rc);
		if (rc == TSR_CONFLICT)
			scim_fail(r, 409, "uniqueness", "userName '%.200s' (compared regardless of case) or externalId is "
				  "already taken", u.user_name);
		else
			scim_fail_rc(r, rc, "User");
		scim_audit_refusal(r, "scim.user.create", u.user_name);
		scim_user_free(&u);
		return TSR_OK;
	}
	rc = finish(r, c, TSR_OK, 201, &stored, true);
	scim_user_free(&u);
	scim_user_free(&stored);
	return rc;
}

/* PUT and PATCH share the tail: write u over cur, apply active, audit, reply. */
static tsr_rc write_user(struct http_req *r, struct db_conn *c, const struct scim_user *cur, struct scim_user *u,
			 bool has_active, bool active, const char *action, json_t *detail)
{
	u->id = cur->id;
	snprintf(u->scim_id, sizeof(u->scim_id), "%s", cur->scim_id);
	tsr_rc rc = scim_store_user_update(c, u, profile_from_scim(r));
	if (rc == TSR_OK && has_active)
		rc = apply_active(c, r, cur, active, active ? "SCIM active=true" : "SCIM active=false", detail);
	json_object_set_new(detail, "scim_id", json_string(cur->scim_id));
	if (rc == TSR_OK)
		rc = scim_audit(c, r, action, "success", cur->id, u->user_name, json_incref(detail));
	struct scim_user stored;
	memset(&stored, 0, sizeof(stored));
	if (rc == TSR_OK)
		rc = scim_store_user_get(c, cur->scim_id, false, &stored);
	if (rc != TSR_OK) {
		scim_end(r, c, rc);
		if (rc == TSR_CONFLICT)
			scim_fail(r, 409, "uniqueness", "userName '%.200s' (compared regardless of case) or externalId is "
				  "already taken", u->user_name);
		else
			scim_fail_rc(r, rc, "User");
		scim_audit_refusal(r, action, cur->user_name);
		return TSR_OK;
	}
	rc = scim_end(r, c, TSR_OK);
	if (rc != TSR_OK) {
		rc = scim_fail_rc(r, rc, "User");
	} else {
		if (has_active && !active)
			tokencache_evict_user(r->b->tokens, cur->id);
		rc = reply_user(r, 200, &stored, false);
	}
	scim_user_free(&stored);
	return rc;
}

/* Open a transaction and lock the user; false after replying (404, 412, 503). */
static bool lock_user(struct http_req *r, const char *id, const char *action, struct db_conn **c,
		      struct scim_user *cur)
{
	if (scim_begin(r, c) != TSR_OK)
		return false;
	tsr_rc rc = scim_store_user_get(*c, id, true, cur);
	if (rc == TSR_OK && scim_if_match(r, cur->version))
		return true;
	scim_end(r, *c, TSR_INTERNAL);
	*c = NULL;
	if (rc == TSR_NOT_FOUND)
		scim_fail(r, 404, NULL, "User %.64s not found", id);
	else if (rc != TSR_OK)
		scim_fail_rc(r, rc, "User");
	if (rc == TSR_OK)
		scim_user_free(cur);
	scim_audit_refusal(r, action, id);
	return false;
}

static tsr_rc replace_user(struct http_req *r, const char *id)
{
	json_t *body = scim_body(r);
	if (!body) {
		scim_audit_refusal(r, "scim.user.replace", id);
		return TSR_OK;
	}
	struct scim_user u, cur;
	bool has_active, active;
	bool ok = parse_user(r, body, &u, &has_active, &active);
	json_decref(body);
	if (!ok) {
		scim_audit_refusal(r, "scim.user.replace", id);
		return TSR_OK;
	}
	struct db_conn *c;
	if (!lock_user(r, id, "scim.user.replace", &c, &cur)) {
		scim_user_free(&u);
		return TSR_OK;
	}
	json_t *detail = json_object();
	tsr_rc rc = write_user(r, c, &cur, &u, has_active, active, "scim.user.replace", detail);
	json_decref(detail);
	scim_user_free(&u);
	scim_user_free(&cur);
	return rc;
}

/* A short record of the operations for the audit event (op and path, never values). */
static json_t *ops_summary(json_t *body)
{
	json_t *out = json_array();
	json_t *ops = json_object_get(body, "Operations");
	size_t i;
	json_t *o;
	json_array_foreach (ops, i, o) {
		if (i >= 50)
			break;
		json_t *op = json_object_get(o, "op");
		json_t *path = json_object_get(o, "path");
		json_array_append_new(out, json_pack("{s:s,s:s}", "op", json_is_string(op) ? json_string_value(op) : "?",
						     "path", json_is_string(path) ? json_string_value(path) : ""));
	}
	return out;
}

static tsr_rc patch_user(struct http_req *r, const char *id)
{
	json_t *body = scim_body(r);
	if (!body) {
		scim_audit_refusal(r, "scim.user.patch", id);
		return TSR_OK;
	}
	struct scim_user cur;
	struct db_conn *c;
	if (!lock_user(r, id, "scim.user.patch", &c, &cur)) {
		json_decref(body);
		return TSR_OK;
	}
	char base[600];
	scim_base(r, base, sizeof(base));
	json_t *doc = user_doc(&cur, base);
	struct scim_patch_ctx ctx = { &scim_schema_user, &scim_schema_enterprise, NULL, NULL };
	struct scim_patch_err perr;
	tsr_rc rc = scim_patch_apply(&ctx, body, doc, &perr);
	json_t *norm = NULL;
	struct scim_err err;
	struct scim_user u;
	memset(&u, 0, sizeof(u));
	bool has_active = false, active = true;
	if (rc == TSR_OK && scim_normalize(&scim_schema_user, &scim_schema_enterprise, doc, &norm, &err) != TSR_OK) {
		rc = TSR_INVALID;
		perr.status = 400;
		perr.scim_type = "invalidValue";
		snprintf(perr.detail, sizeof(perr.detail), "%s", err.msg);
	}
	if (rc == TSR_OK && (rc = user_from_doc(norm, &u, &has_active, &active, &err)) != TSR_OK) {
		perr.status = 400;
		perr.scim_type = "invalidValue";
		snprintf(perr.detail, sizeof(perr.detail), "%s", err.msg);
	}
	json_decref(doc);
	json_decref(norm);
	if (rc != TSR_OK) {
		scim_end(r, c, rc);
		scim_fail(r, perr.status ? perr.status : 400, perr.scim_type, "%s", perr.detail);
		scim_audit_refusal(r, "scim.user.patch", cur.user_name);
		scim_user_free(&u);
		scim_user_free(&cur);
		json_decref(body);
		return TSR_OK;
	}
	json_t *detail = json_pack("{s:o}", "operations", ops_summary(body));
	json_decref(body);
	rc = write_user(r, c, &cur, &u, has_active, active, "scim.user.patch", detail);
	json_decref(detail);
	scim_user_free(&u);
	scim_user_free(&cur);
	return rc;
}

static tsr_rc delete_user(struct http_req *r, const char *id)
{
	struct scim_user cur;
	struct db_conn *c;
	if (!lock_user(r, id, "scim.user.delete", &c, &cur))
		return TSR_OK;
	struct offboard_result res;
	tsr_rc rc = db_offboard(c, cur.id, OFFBOARD_SCIM, scim_actor(r), "SCIM DELETE", &res);
	if (rc == TSR_OK)
		rc = scim_store_user_tombstone(c, cur.id);
	if (rc == TSR_OK)
		rc = scim_audit(c, r, "scim.user.delete", "success", cur.id, cur.user_name,
				json_pack("{s:s,s:i,s:i,s:b}", "scim_id", cur.scim_id, "credentials_revoked",
					  res.credentials, "roles_removed", res.roles, "tombstoned", 1));
	rc = scim_end(r, c, rc);
	if (rc != TSR_OK) {
		scim_fail_rc(r, rc, "User");
		scim_audit_refusal(r, "scim.user.delete", cur.user_name);
	} else {
		tokencache_evict_user(r->b->tokens, cur.id);
		r->status = 204;
		r->content_type = SCIM_CT;
	}
	scim_user_free(&cur);
	return TSR_OK;
}

tsr_rc scim_users(struct http_req *r, const char *rest)
{
	const char *id = rest[0] == '/' && rest[1] ? rest + 1 : NULL;
	if (id && strchr(id, '/'))
		return scim_fail(r, 404, NULL, "no such endpoint");
	const char *m = r->method;
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return id ? get_user(r, id) : list_users(r);
	if (strcmp(m, "POST") == 0) {
		if (id)
			return scim_fail(r, 405, NULL, "POST creates a user at /Users; /Users/{id} takes GET, PUT, PATCH "
				       "or DELETE");
		return create_user(r);
	}
	if (!id)
		return scim_fail(r, 405, NULL, "%s needs a user: /Users/{id}", m);
	if (strcmp(m, "PUT") == 0)
		return replace_user(r, id);
	if (strcmp(m, "PATCH") == 0)
		return patch_user(r, id);
	if (strcmp(m, "DELETE") == 0)
		return delete_user(r, id);
	return scim_fail(r, 405, NULL, "method %s is not supported", m);
}
