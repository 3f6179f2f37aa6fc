/*
 * scim_groups.c — /scim/v2/Groups: POST, GET (one, list), PUT, PATCH, DELETE.
 *
 * Members are never round-tripped through a JSON list: POST/PUT resolve the
 * member ids in one query and insert them in one statement; PATCH hands
 * every operation on "members" to members_op(), which runs one bulk SQL
 * statement per operation (a PATCH adding 1,000 members is two statements:
 * resolve, insert). Membership changes recompute role grants
 * (db_roles_sync()) in the same transaction, because [roles] maps group
 * names to tessera roles. PATCH answers 204 No Content (RFC 7644 §3.5.2
 * allows it) so a change to a large group does not echo every member.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scim_int.h"
#include "scim_patch.h"
#include "../db/roles.h"
#include "../lib/log.h"

static json_t *group_json(const struct scim_group *g, const char *base)
{
	char loc[700], tag[32];
	snprintf(loc, sizeof(loc), "%s/Groups/%s", base, g->scim_id);
	scim_etag(tag, sizeof(tag), g->version);
	json_t *j = json_pack("{s:[s],s:s}", "schemas", SCIM_URN_GROUP, "id", g->scim_id);
	if (g->external_id)
		json_object_set_new(j, "externalId", json_string(g->external_id));
	json_object_set_new(j, "displayName", json_string(g->display_name));
	if (g->members_loaded) {
		json_t *m = json_array();
		for (size_t i = 0; i < g->n_members; i++) {
			char ref[700];
			snprintf(ref, sizeof(ref), "%s/%s/%s", base, g->members[i].is_group ? "Groups" : "Users",
				 g->members[i].value);
			json_t *e = json_pack("{s:s,s:s,s:s}", "value", g->members[i].value, "type",
					      g->members[i].is_group ? "Group" : "User", "$ref", ref);
			if (g->members[i].display)
				json_object_set_new(e, "display", json_string(g->members[i].display));
			json_array_append_new(m, e);
		}
		json_object_set_new(j, "members", m);
	}
	json_object_set_new(j, "meta", json_pack("{s:s,s:s,s:s,s:s,s:s}", "resourceType", "Group", "created",
						g->created, "lastModified", g->modified, "location", loc, "version", tag));
	return j;
}

static tsr_rc reply_group(struct http_req *r, int status, const struct scim_group *g, bool with_location)
{
	char base[600], loc[700];
	scim_base(r, base, sizeof(base));
	snprintf(loc, sizeof(loc), "%s/Groups/%s", base, g->scim_id);
	json_t *j = group_json(g, base);
	scim_project(r, j, NULL);
	tsr_rc rc = scim_reply(r, status, j);
	scim_resource_headers(r, g->version, with_location ? loc : NULL);
	return rc;
}

/* ---------------------------------------------------------------- members */

struct members_ctx {
	struct http_req *r;
	struct db_conn *c;
	int64_t gid;
	int64_t added, removed;
};

/* The "value" strings of a member list (array of objects, or one object). *n 0 with NULL: not a list. */
static const char **member_values(json_t *v, size_t *n, struct scim_patch_err *err)
{
	*n = 0;
	json_t *arr = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
	size_t cnt = json_array_size(arr);
	const char **out = calloc(cnt ? cnt : 1, sizeof(*out));
	size_t i;
	json_t *e;
	json_array_foreach (arr, i, e) {
		json_t *val = json_is_object(e) ? json_object_get(e, "value") : NULL;
		if (!val) { /* keys are case-insensitive too */
			const char *k;
			json_t *x;
			json_object_foreach (e, k, x)
				if (strcasecmp(k, "value") == 0)
					val = x;
		}
		if (!json_is_string(val) || !out) {
			snprintf(err->detail, sizeof(err->detail), "members[%zu] needs a \"value\" (the member's id)", i);
			err->status = 400;
			err->scim_type = "invalidValue";
			free(out);
			json_decref(arr);
			return NULL;
		}
		out[(*n)++] = json_string_value(val); /* borrowed from v, which outlives the call */
	}
	json_decref(arr);
	return out;
}

/* Resolve and insert; unknown ids are refused (invalidValue). */
static tsr_rc members_add(struct members_ctx *m, const char **vals, size_t n, struct scim_patch_err *err)
{
	if (!n)
		return TSR_OK;
	int64_t *uids = calloc(n, sizeof(*uids)), *gids = calloc(n, sizeof(*gids));
	const char **unknown = calloc(n, sizeof(*unknown));
	tsr_rc rc = TSR_INTERNAL;
	size_t n_unknown = 0;
	if (uids && gids && unknown)
		rc = scim_store_members_resolve(m->c, vals, n, uids, gids, unknown, &n_unknown);
	if (rc == TSR_OK && n_unknown) {
		err->status = 400;
		err->scim_type = "invalidValue";
		snprintf(err->detail, sizeof(err->detail), "%zu member id(s) name no SCIM user or group, e.g. '%.60s'",
			 n_unknown, unknown[0]);
		rc = TSR_INVALID;
	}
	int64_t added = 0;
	if (rc == TSR_OK)
		rc = scim_store_members_add(m->c, m->gid, uids, gids, n, &added);
	if (rc == TSR_INVALID && !err->status) {
		err->status = 400;
		err->scim_type = "invalidValue";
		snprintf(err->detail, sizeof(err->detail), "a group cannot be a member of itself");
	}
	m->added += added;
	free(uids);
	free(gids);
	free(unknown);
	return rc;
}

/* Values named by a filter made only of value eq "x" joined by or; false for any other shape. */
static bool eq_values(const struct scim_filter *f, const char **out, size_t cap, size_t *n)
{
	if (f->op == SCIM_OR)
		return eq_values(f->a, out, cap, n) && eq_values(f->b, out, cap, n);
	if (f->op != SCIM_EQ || f->path.sub || strcasecmp(f->path.attr, "value") != 0 || f->v.type != SCIM_V_STRING ||
	    *n >= cap)
		return false;
	out[(*n)++] = f->v.s;
	return true;
}

/* remove members[filter]: the common value-eq shapes go straight to SQL, others are evaluated in C. */
static tsr_rc members_remove_filtered(struct members_ctx *m, const struct scim_filter *f)
{
	const char *vals[SCIM_FILTER_NODES];
	size_t n = 0;
	int64_t removed = 0;
	tsr_rc rc;
	if (eq_values(f, vals, SCIM_FILTER_NODES, &n)) {
		rc = scim_store_members_remove(m->c, m->gid, vals, n, &removed);
		m->removed += removed;
		return rc;
	}
	struct scim_group g;
	memset(&g, 0, sizeof(g));
	g.id = m->gid;
	if ((rc = scim_store_group_load_members(m->c, &g)) != TSR_OK) {
		scim_group_free(&g);
		return rc;
	}
	const char **hit = calloc(g.n_members ? g.n_members : 1, sizeof(*hit));
	size_t nh = 0;
	if (!hit) {
		scim_group_free(&g);
		return TSR_INTERNAL;
	}
	for (size_t i = 0; i < g.n_members; i++) {
		json_t *e = json_pack("{s:s,s:s,s:s?}", "value", g.members[i].value, "type",
				      g.members[i].is_group ? "Group" : "User", "display", g.members[i].display);
		if (scim_filter_eval(f, e, scim_case_exact))
			hit[nh++] = g.members[i].value;
		json_decref(e);
	}
	rc = scim_store_members_remove(m->c, m->gid, hit, nh, &removed);
	m->removed += removed;
	free(hit);
	scim_group_free(&g);
	return rc;
}

static tsr_rc members_op(void *arg, enum scim_patch_op op, const struct scim_path *path, json_t *value,
			 struct scim_patch_err *err)
{
	struct members_ctx *m = arg;
	int64_t removed = 0;
	tsr_rc rc;
	if (path) {
		if (path->sub) {
			err->status = 400;
			err->scim_type = "mutability";
			snprintf(err->detail, sizeof(err->detail), "members.%s cannot be changed: add or remove members",
				 path->sub);
			return TSR_INVALID;
		}
		if (op != SCIM_PATCH_REMOVE) {
			err->status = 400;
			err->scim_type = "invalidPath";
			snprintf(err->detail, sizeof(err->detail),
				 "a member filter only selects members to remove; add members with path \"members\"");
			return TSR_INVALID;
		}
		return members_remove_filtered(m, path->filter);
	}
	if (op == SCIM_PATCH_REMOVE && (!value || json_is_null(value))) {
		rc = scim_store_members_clear(m->c, m->gid, &removed);
		m->removed += removed;
		return rc;
	}
	size_t n;
	const char **vals = member_values(value, &n, err);
	if (!vals)
		return TSR_INVALID;
	if (op == SCIM_PATCH_REMOVE) {
		rc = scim_store_members_remove(m->c, m->gid, vals, n, &removed);
		m->removed += removed;
	} else {
		rc = TSR_OK;
		if (op == SCIM_PATCH_REPLACE) {
			rc = scim_store_members_clear(m->c, m->gid, &removed);
			m->removed += removed;
		}
		if (rc == TSR_OK)
			rc = members_add(m, vals, n, err);
	}
	free(vals);
	return rc;
}

/* ---------------------------------------------------------------- handlers */

static tsr_rc get_group(struct http_req *r, const char *id)
{
	struct db_conn *c;
	if (db_acquire(r->b->pool, 5000, &c) != TSR_OK)
		return scim_fail(r, 503, NULL, "the database is unavailable; retry later");
	struct scim_group g;
	tsr_rc rc = scim_store_group_get(c, id, false, scim_wants(r, "members"), &g);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND)
		return scim_fail(r, 404, NULL, "Group %.64s not found", id);
	if (rc != TSR_OK)
		return scim_fail_rc(r, rc, "Group");
	if (scim_if_none_match(r, g.version)) {
		r->status = 304;
		r->content_type = SCIM_CT;
		scim_resource_headers(r, g.version, NULL);
	} else {
		rc = reply_group(r, 200, &g, false);
	}
	scim_group_free(&g);
	return rc;
}

static tsr_rc list_groups(struct http_req *r)
{
	struct scim_list_query q;
	struct scim_sql sql;
	scim_sql_init(&sql);
	if (!scim_list_params(r, scim_group_attrs, &q, &sql)) {
		scim_sql_free(&sql);
		return TSR_OK;
	}
	struct db_conn *c;
	if (db_acquire(r->b->pool, 5000, &c) != TSR_OK) {
		scim_sql_free(&sql);
		return scim_fail(r, 503, NULL, "the database is unavailable; retry later");
	}
	int64_t total = 0;
	struct scim_group *v = NULL;
	size_t n = 0;
	tsr_rc rc = scim_store_group_list(c, &q, scim_wants(r, "members"), &total, &v, &n);
	db_release(r->b->pool, c);
	scim_sql_free(&sql);
	if (rc != TSR_OK)
		return scim_fail_rc(r, rc, "Groups");
	char base[600];
	scim_base(r, base, sizeof(base));
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *j = group_json(&v[i], base);
		scim_project(r, j, NULL);
		json_array_append_new(arr, j);
		scim_group_free(&v[i]);
	}
	free(v);
	return scim_reply(r, 200, scim_list_response(arr, total, q.start_index));
}

/* displayName, externalId and the member list of a normalised body. */
static bool parse_group(struct http_req *r, json_t *body, struct scim_group *g, json_t **members)
{
	json_t *doc;
	struct scim_err err;
	memset(g, 0, sizeof(*g));
	*members = NULL;
	if (scim_normalize(&scim_schema_group, NULL, body, &doc, &err) != TSR_OK) {
		scim_fail(r, 400, "invalidValue", "%s", err.msg);
		return false;
	}
	json_t *dn = json_object_get(doc, "displayName");
	if (!json_is_string(dn) || !json_string_length(dn)) {
		json_decref(doc);
		scim_fail(r, 400, "invalidValue", "displayName is required");
		return false;
	}
	g->display_name = strdup(json_string_value(dn));
	json_t *x = json_object_get(doc, "externalId");
	g->external_id = json_is_string(x) ? strdup(json_string_value(x)) : NULL;
	*members = json_incref(json_object_get(doc, "members"));
	json_decref(doc);
	return true;
}

/* After a write: recompute roles, audit, commit and reply (204 when status is 204). */
static tsr_rc finish_group(struct http_req *r, struct db_conn *c, tsr_rc rc, const struct scim_group *g,
			   const char *action, json_t *detail, int status, bool roles)
{
	int added = 0, removed = 0;
	if (rc == TSR_OK && roles) {
		rc = db_roles_sync(c, r->b->cfg, scim_actor(r), &added, &removed);
		if (added || removed)
			json_object_set_new(detail, "roles", json_pack("{s:i,s:i}", "granted", added, "revoked", removed));
	}
	json_object_set_new(detail, "scim_id", json_string(g->scim_id));
	if (rc == TSR_OK)
		rc = scim_audit(c, r, action, "success", 0, g->display_name, json_incref(detail));
	struct scim_group stored;
	memset(&stored, 0, sizeof(stored));
	if (rc == TSR_OK && status != 204)
		rc = scim_store_group_get(c, g->scim_id, false, scim_wants(r, "members"), &stored);
	else if (rc == TSR_OK)
		rc = scim_store_group_get(c, g->scim_id, false, false, &stored);
	rc = scim_end(r, c, rc);
	if (rc != TSR_OK) {
		if (rc == TSR_CONFLICT)
			scim_fail(r, 409, "uniqueness", "a group named '%.200s' (compared regardless of case) or with this "
				  "externalId already exists", g->display_name);
		else
			scim_fail_rc(r, rc, "Group");
		scim_audit_refusal(r, action, g->display_name);
		scim_group_free(&stored);
		return TSR_OK;
	}
	if (status == 204) {
		r->status = 204;
		r->content_type = SCIM_CT;
		scim_resource_headers(r, stored.version, NULL);
	} else {
		rc = reply_group(r, status, &stored, status == 201);
	}
	scim_group_free(&stored);
	return rc;
}

static tsr_rc set_members(struct members_ctx *m, json_t *members, struct scim_patch_err *perr)
{
	if (!json_array_size(members))
		return TSR_OK;
	size_t n;
	const char **vals = member_values(members, &n, perr);
	if (!vals)
		return TSR_INVALID;
	tsr_rc rc = members_add(m, vals, n, perr);
	free(vals);
	return rc;
}

/* Refuse a write whose transaction is open: roll back, answer, audit. */
static tsr_rc refuse(struct http_req *r, struct db_conn *c, tsr_rc rc, const struct scim_patch_err *perr,
		     const char *action, const char *target)
{
	scim_end(r, c, rc == TSR_OK ? TSR_INTERNAL : rc);
	if (perr && perr->status)
		scim_fail(r, perr->status, perr->scim_type, "%s", perr->detail);
	else if (rc == TSR_CONFLICT)
		scim_fail(r, 409, "uniqueness", "a group named '%.200s' (compared regardless of case) or with this "
			  "externalId already exists", target ? target : "");
	else
		scim_fail_rc(r, rc, "Group");
	scim_audit_refusal(r, action, target);
	return TSR_OK;
}

static tsr_rc create_group(struct http_req *r)
{
	json_t *body = scim_body(r);
	if (!body) {
		scim_audit_refusal(r, "scim.group.create", NULL);
		return TSR_OK;
	}
	struct scim_group g;
	json_t *members;
	bool ok = parse_group(r, body, &g, &members);
	json_decref(body);
	if (!ok) {
		scim_audit_refusal(r, "scim.group.create", NULL);
		return TSR_OK;
	}
	struct db_conn *c;
	if (scim_begin(r, &c) != TSR_OK) {
		json_decref(members);
		scim_group_free(&g);
		return TSR_OK;
	}
	struct scim_patch_err perr;
	memset(&perr, 0, sizeof(perr));
	tsr_rc rc = scim_store_group_create(c, &g);
	struct members_ctx m = { r, c, g.id, 0, 0 };
	if (rc == TSR_OK)
		rc = set_members(&m, members, &perr);
	json_decref(members);
	if (rc != TSR_OK) {
		refuse(r, c, rc, &perr, "scim.group.create", g.display_name);
		scim_group_free(&g);
		return TSR_OK;
	}
	json_t *detail = json_pack("{s:I}", "members_added", (json_int_t)m.added);
	rc = finish_group(r, c, TSR_OK, &g, "scim.group.create", detail, 201, m.added > 0);
	json_decref(detail);
	scim_group_free(&g);
	return rc;
}

static bool lock_group(struct http_req *r, const char *id, const char *action, struct db_conn **c,
		       struct scim_group *cur)
{
	if (scim_begin(r, c) != TSR_OK)
		return false;
	tsr_rc rc = scim_store_group_get(*c, id, true, false, cur);
	if (rc == TSR_OK && scim_if_match(r, cur->version))
		return true;
	scim_end(r, *c, TSR_INTERNAL);
	*c = NULL;
	if (rc == TSR_NOT_FOUND)
		scim_fail(r, 404, NULL, "Group %.64s not found", id);
	else if (rc != TSR_OK)
		scim_fail_rc(r, rc, "Group");
	if (rc == TSR_OK)
		scim_group_free(cur);
	scim_audit_refusal(r, action, id);
	return false;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static tsr_rc replace_group(struct http_req *r, const char *id)
{
	json_t *body = scim_body(r);
	if (!body) {
		scim_audit_refusal(r, "scim.group.replace", id);
		return TSR_OK;
	}
	struct scim_group g, cur;
	json_t *members;
	bool ok = parse_group(r, body, &g, &members);
	json_decref(body);
	if (!ok) {
		scim_audit_refusal(r, "scim.group.replace", id);
		return TSR_OK;
	}
	struct db_conn *c;
	if (!lock_group(r, id, "scim.group.replace", &c, &cur)) {
		json_decref(members);
		scim_group_free(&g);
		return TSR_OK;
	}
	g.id = cur.id;
	snprintf(g.scim_id, sizeof(g.scim_id), "%s", cur.scim_id);
	bool renamed = !same_str(g.display_name, cur.display_name);
	struct scim_patch_err perr;
	memset(&perr, 0, sizeof(perr));
	struct members_ctx m = { r, c, g.id, 0, 0 };
	tsr_rc rc = scim_store_group_update(c, &g);
	int64_t removed = 0;
	if (rc == TSR_OK)
		rc = scim_store_members_clear(c, g.id, &removed);
	m.removed = removed;
	if (rc == TSR_OK)
		rc = set_members(&m, members, &perr);
	json_decref(members);
	if (rc != TSR_OK) {
		refuse(r, c, rc, &perr, "scim.group.replace", g.display_name);
		scim_group_free(&g);
		scim_group_free(&cur);
		return TSR_OK;
	}
	json_t *detail = json_pack("{s:I,s:b}", "members", (json_int_t)m.added, "renamed", renamed);
	rc = finish_group(r, c, TSR_OK, &g, "scim.group.replace", detail, 200, true);
	json_decref(detail);
	scim_group_free(&g);
	scim_group_free(&cur);
	return rc;
}

static tsr_rc patch_group(struct http_req *r, const char *id)
{
	json_t *body = scim_body(r);
	if (!body) {
		scim_audit_refusal(r, "scim.group.patch", id);
		return TSR_OK;
	}
	struct scim_group cur;
	struct db_conn *c;
	if (!lock_group(r, id, "scim.group.patch", &c, &cur)) {
		json_decref(body);
		return TSR_OK;
	}
	json_t *doc = json_pack("{s:s}", "displayName", cur.display_name);
	if (cur.external_id)
		json_object_set_new(doc, "externalId", json_string(cur.external_id));
	struct members_ctx m = { r, c, cur.id, 0, 0 };
	struct scim_patch_ctx ctx = { &scim_schema_group, NULL, members_op, &m };
	struct scim_patch_err perr;
	tsr_rc rc = scim_patch_apply(&ctx, body, doc, &perr);
	json_t *norm = NULL;
	struct scim_err err;
	if (rc == TSR_OK && scim_normalize(&scim_schema_group, NULL, doc, &norm, &err) != TSR_OK) {
		rc = TSR_INVALID;
		perr.status = 400;
		perr.scim_type = "invalidValue";
		snprintf(perr.detail, sizeof(perr.detail), "%s", err.msg);
	}
	json_t *dn = json_object_get(norm, "displayName");
	if (rc == TSR_OK && (!json_is_string(dn) || !json_string_length(dn))) {
		rc = TSR_INVALID;
		perr.status = 400;
		perr.scim_type = "mutability";
		snprintf(perr.detail, sizeof(perr.detail), "displayName is required");
	}
	struct scim_group g;
	memset(&g, 0, sizeof(g));
	bool renamed = false;
	if (rc == TSR_OK) {
		g.id = cur.id;
		snprintf(g.scim_id, sizeof(g.scim_id), "%s", cur.scim_id);
		g.display_name = strdup(json_string_value(dn));
		json_t *x = json_object_get(norm, "externalId");
		g.external_id = json_is_string(x) ? strdup(json_string_value(x)) : NULL;
		renamed = !same_str(g.display_name, cur.display_name);
		if (renamed || !same_str(g.external_id, cur.external_id))
			rc = scim_store_group_update(c, &g);
	}
	json_decref(doc);
	json_decref(norm);
	if (rc != TSR_OK) {
		refuse(r, c, rc, perr.status ? &perr : NULL, "scim.group.patch", cur.display_name);
		scim_group_free(&g);
		scim_group_free(&cur);
		json_decref(body);
		return TSR_OK;
	}
	json_t *detail = json_pack("{s:I,s:I,s:b}", "members_added", (json_int_t)m.added, "members_removed",
				   (json_int_t)m.removed, "renamed", renamed);
	json_t *ops = json_object_get(body, "Operations");
	json_object_set_new(detail, "operations", json_integer((json_int_t)json_array_size(ops)));
	json_decref(body);
	bool roles = renamed || m.added || m.removed;
	rc = finish_group(r, c, TSR_OK, &g, "scim.group.patch", detail, 204, roles);
	json_decref(detail);
	scim_group_free(&g);
	scim_group_free(&cur);
	return rc;
}

static tsr_rc delete_group(struct http_req *r, const char *id)
{
	struct scim_group cur;
	struct db_conn *c;
	if (!lock_group(r, id, "scim.group.delete", &c, &cur))
		return TSR_OK;
	tsr_rc rc = scim_store_group_delete(c, cur.id);
	int added = 0, removed = 0;
	if (rc == TSR_OK)
		rc = db_roles_sync(c, r->b->cfg, scim_actor(r), &added, &removed);
	if (rc == TSR_OK)
		rc = scim_audit(c, r, "scim.group.delete", "success", 0, cur.display_name,
				json_pack("{s:s,s:i}", "scim_id", cur.scim_id, "roles_revoked", removed));
	rc = scim_end(r, c, rc);
	if (rc != TSR_OK) {
		scim_fail_rc(r, rc, "Group");
		scim_audit_refusal(r, "scim.group.delete", cur.display_name);
	} else {
		r->status = 204;
		r->content_type = SCIM_CT;
	}
	scim_group_free(&cur);
	return TSR_OK;
}

tsr_rc scim_groups(struct http_req *r, const char *rest)
{
	const char *id = rest[0] == '/' && rest[1] ? rest + 1 : NULL;
	if (id && strchr(id, '/'))
		return scim_fail(r, 404, NULL, "no such endpoint");
	const char *m = r->method;
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return id ? get_group(r, id) : list_groups(r);
	if (strcmp(m, "POST") == 0) {
		if (id)
			return scim_fail(r, 405, NULL, "POST creates a group at /Groups");
		return create_group(r);
	}
	if (!id)
		return scim_fail(r, 405, NULL, "%s needs a group: /Groups/{id}", m);
	if (strcmp(m, "PUT") == 0)
		return replace_group(r, id);
	if (strcmp(m, "PATCH") == 0)
		return patch_group(r, id);
	if (strcmp(m, "DELETE") == 0)
		return delete_group(r, id);
	return scim_fail(r, 405, NULL, "method %s is not supported", m);
}
