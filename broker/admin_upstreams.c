/*
 * admin_upstreams.c — see admin_upstreams.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_upstreams.h"
#include "../db/upstream.h"

static json_t *opt_s(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *row_json(const struct upstream_row *u)
{
	json_t *models = json_array();
	const char *p = u->models;
	while (*p) {
		size_t len = strcspn(p, ",");
		json_array_append_new(models, json_stringn(p, len));
		p += len;
		if (*p == ',')
			p++;
	}
	json_t *key = u->key_version ? json_pack("{s:i,s:s,s:o,s:o,s:s,s:I,s:o,s:b}", "version", u->key_version,
						 "fingerprint", u->key_fingerprint, "activated_at",
						 opt_s(u->key_activated_at), "origin", opt_s(u->key_origin), "state",
						 "active", "age_s", (json_int_t)u->key_age_s, "next_rotation_at",
						 opt_s(u->next_rotation_at), "rotation_due", u->rotation_due)
				     : json_null();
	return json_pack("{s:s,s:s,s:s,s:o,s:b,s:b,s:o,s:b,s:s,s:s,s:o,s:o,s:o,s:i,s:i}", "name", u->name, "kind", u->kind,
			 "base_url", u->base_url, "region", opt_s(u->region), "baa", u->baa, "on_prem", u->on_prem,
			 "models", models, "removed", u->removed, "rotation_period", u->rotation_period, "grace_period",
			 u->grace_period, "first_used_at", opt_s(u->first_used_at), "last_used_at",
			 opt_s(u->last_used_at), "active_key", key, "key_versions", u->keys_total,
			 "keys_retiring", u->keys_retiring);
}

static tsr_rc h_list(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct upstream_row *rows = NULL;
	int n = 0;
	rc = db_upstream_list(c, &rows, &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, row_json(&rows[i]));
	free(rows);
	return http_reply_json(r, 200, json_pack("{s:o}", "upstreams", a));
}

static tsr_rc h_show(struct http_req *r)
{
	char name[64];
	if (!http_path_arg(r, 0, name, sizeof(name)) || !*name)
		return http_reply_error(r, TSR_INVALID, "upstream name missing or too long in the path");
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct upstream_row u;
	rc = db_upstream_get(c, name, &u);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND)
		return http_reply_error(r, TSR_NOT_FOUND, "no upstream %s", name);
	if (rc != TSR_OK)
		return rc;
	return http_reply_json(r, 200, row_json(&u));
}

static const struct route routes[] = {
	{ "GET", "/admin/v1/upstreams", ROLE_ADMIN | ROLE_SECURITY, h_list, NULL, NULL },
	{ "GET", "/admin/v1/upstreams/*", ROLE_ADMIN | ROLE_SECURITY, h_show, NULL, NULL },
};
ROUTE_TABLE(admin_upstreams_routes, routes);
