/*
 * admin_sync.c — see admin_sync.h.
 *
 * Handlers run on HTTP worker threads: they only read sync_runs, write one
 * audit event, and hand a copy of the request to the job thread with
 * jobs_request(). A request that finds a run of that kind already waiting
 * is refused (409) rather than queued without bound.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_sync.h"
#include "http.h"
#include "jobs.h"
#include "../db/audit.h"
#include "../db/sync_run.h"
#include "../lib/crypto.h"
#include "../lib/log.h"
#include "../sync/sync_ldap.h"

/* ---------- the request's text form ---------- */

tsr_rc sync_request_format(const struct sync_request *q, char *out, size_t n)
{
	int w = snprintf(out, n, "full=%d;force=%d;request=%s;by=%s", q->full ? 1 : 0, q->force ? 1 : 0, q->request_id,
			 q->by);
	return w < 0 || (size_t)w >= n ? TSR_TOO_LARGE : TSR_OK;
}

static bool flag(const char *p, const char *name, bool *out)
{
	size_t n = strlen(name);
	if (strncmp(p, name, n) != 0 || p[n] != '=' || (p[n + 1] != '0' && p[n + 1] != '1') || p[n + 2] != ';')
		return false;
	*out = p[n + 1] == '1';
	return true;
}

tsr_rc sync_request_parse(const char *arg, struct sync_request *out)
{
	memset(out, 0, sizeof(*out));
	if (!arg || !*arg) {
		snprintf(out->by, sizeof(out->by), "schedule");
		return TSR_OK;
	}
	const char *p = arg;
	if (!flag(p, "full", &out->full))
		return TSR_INVALID;
	p += 7;
	if (!flag(p, "force", &out->force))
		return TSR_INVALID;
	p += 8;
	if (strncmp(p, "request=", 8) != 0)
		return TSR_INVALID;
	p += 8;
	const char *semi = strchr(p, ';');
	if (!semi || (size_t)(semi - p) >= sizeof(out->request_id))
		return TSR_INVALID;
	for (const char *q = p; q < semi; q++)
		if (!isxdigit((unsigned char)*q) && *q != '-')
			return TSR_INVALID;
	memcpy(out->request_id, p, (size_t)(semi - p));
	p = semi + 1;
	if (strncmp(p, "by=", 3) != 0 || strlen(p + 3) >= sizeof(out->by))
		return TSR_INVALID;
	snprintf(out->by, sizeof(out->by), "%s", p + 3);
	if (!out->by[0])
		snprintf(out->by, sizeof(out->by), "schedule");
	return TSR_OK;
}

/* ---------- the LDAP job ---------- */

int64_t ldap_sync_interval(const struct config *cfg)
{
	return cfg->ldap.uri ? cfg->ldap.sync_interval : 0;
}

tsr_rc ldap_sync_job(struct broker *b, const char *arg)
{
	struct sync_request q;
	if (sync_request_parse(arg, &q) != TSR_OK) {
		log_error("ldap_sync_bad_request", "reason=\"unparseable job argument\"");
		return TSR_INVALID;
	}
	struct sync_ldap_opts o = { .full = q.full, .force = q.force, .started_by = q.by, .request_id = q.request_id };
	struct sync_ldap_result res;
	return sync_ldap_run(b->pool, b->cfg, &o, &res);
}

/* ---------- JSON ---------- */

static json_t *run_json(const struct sync_run *s)
{
	const struct sync_counts *k = &s->counts;
	json_error_t je;
	json_t *detail = s->detail ? json_loads(s->detail, 0, &je) : NULL;
	json_t *progress = json_incref(json_object_get(detail, "progress"));
	if (detail)
		json_object_del(detail, "progress");
	json_t *j = json_pack(
		"{s:I,s:s,s:s,s:s,s:s,s:o,s:f,s:o,s:o,s:b,"
		"s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I},s:o,s:o}",
		"id", (json_int_t)s->id, "kind", s->kind, "mode", s->mode, "status", s->status, "started_at",
		s->started_at, "finished_at", s->finished_at[0] ? json_string(s->finished_at) : json_null(),
		"duration_s", s->duration_s, "error", s->error ? json_string(s->error) : json_null(), "started_by",
		s->started_by ? json_string(s->started_by) : json_null(), "forced", s->forced, "counts", "users_added",
		k->users_added, "users_updated", k->users_updated, "users_deactivated", k->users_deactivated,
		"groups_added", k->groups_added, "groups_updated", k->groups_updated, "groups_removed",
		k->groups_removed, "memberships_added", k->memberships_added, "memberships_removed",
		k->memberships_removed, "permissions_changed", k->permissions_changed, "api_calls", k->api_calls,
		"not_modified", k->not_modified, "wait_ms", (json_int_t)k->wait_ms, "progress",
		progress ? progress : json_null(), "detail", detail ? detail : json_null());
	return j;
}

static bool kind_ok(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > 32)
		return false;
	for (; *k; k++)
		if (!(islower((unsigned char)*k) || isdigit((unsigned char)*k) || *k == '_' || *k == '-'))
			return false;
	return true;
}

/* ---------- handlers ---------- */

static void audit_request(struct http_req *r, const char *kind, const struct sync_request *q, const char *outcome,
			  const char *why)
{
	struct db_conn *c;
	if (db_acquire(r->b->pool, 2000, &c) != TSR_OK) {
		log_warn("audit_unwritten", "action=sync.request reason=\"database unavailable\"");
		return;
	}
	json_t *d = json_pack("{s:s,s:b,s:b,s:s,s:s?}", "kind", kind, "full", q->full, "force", q->force,
			      "request_id", q->request_id, "reason", why);
	char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	struct audit_event ev;
	if (detail && audit_event_init(&ev, r->who.user_name, "sync.request", outcome) == TSR_OK) {
		ev.actor_user_id = r->who.user_id;
		ev.actor_addr = r->client_addr;
		ev.target = kind;
		ev.detail = detail;
		if (db_audit_append(c, &ev, 1) != TSR_OK)
			log_warn("audit_unwritten", "action=sync.request");
	}
	free(detail);
	db_release(r->b->pool, c);
}

static tsr_rc h_request(struct http_req *r)
{
	const char *kind = http_route_rest(r);
	if (!kind_ok(kind))
		return http_reply_error(r, TSR_NOT_FOUND, "no such sync kind '%.40s'", kind);
	struct sync_request q = { 0 };
	if (r->body.len) {
		json_error_t je;
		json_t *b = json_loadb(r->body.data, r->body.len, 0, &je);
		if (!json_is_object(b)) {
			json_decref(b);
			return http_reply_error(r, TSR_INVALID, "the body must be a JSON object like {\"full\":true}");
		}
		const char *key;
		json_t *val;
		json_object_foreach (b, key, val) {
			bool *slot = strcmp(key, "full") == 0 ? &q.full : strcmp(key, "force") == 0 ? &q.force : NULL;
			if (!slot || !json_is_boolean(val)) {
				char name[48];
				snprintf(name, sizeof(name), "%.40s", key); /* key lives in b */
				json_decref(b);
				return http_reply_error(r, TSR_INVALID,
							"unknown or non-boolean field '%s' (expected full, force)", name);
			}
			*slot = json_is_true(val);
		}
		json_decref(b);
	}
	uint8_t u[16];
	if (crypto_random(u, sizeof(u)) != TSR_OK)
		return http_reply_error(r, TSR_INTERNAL, "no randomness for a request id");
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(q.request_id, sizeof(q.request_id),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4],
		 u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	snprintf(q.by, sizeof(q.by), "cli:%.120s", r->who.user_name);
	char arg[256], job[48];
	if (sync_request_format(&q, arg, sizeof(arg)) != TSR_OK)
		return http_reply_error(r, TSR_INTERNAL, "request too long");
	snprintf(job, sizeof(job), "sync.%s", kind);
	tsr_rc rc = jobs_request(r->b->jobs, job, arg);
	if (rc != TSR_OK) {
		const char *why = rc == TSR_NOT_FOUND  ? "no such sync kind"
				  : rc == TSR_CONFLICT ? "a run is already waiting to start"
						       : "background jobs are not running";
		audit_request(r, kind, &q, "failure", why);
		if (rc == TSR_NOT_FOUND)
			return http_reply_error(r, rc, "no such sync kind '%s'", kind);
		if (rc == TSR_CONFLICT)
			return http_reply_error(r, rc, "a %s sync is already waiting to start; try again once it has",
						kind);
		return http_reply_error(r, TSR_UNAVAILABLE, "background jobs are not running");
	}
	audit_request(r, kind, &q, "success", NULL);
	log_info("sync_requested", "kind=%s full=%d force=%d request=%s by=\"%s\"", kind, q.full, q.force,
		 q.request_id, q.by);
	return http_reply_json(r, 202, json_pack("{s:s,s:b,s:b,s:s,s:s,s:s}", "kind", kind, "full", q.full, "force",
						 q.force, "request_id", q.request_id, "requested_by", q.by, "status",
						 "requested"));
}

static tsr_rc h_status(struct http_req *r)
{
	struct db_conn *c;
	if (db_acquire(r->b->pool, 2000, &c) != TSR_OK)
		return http_reply_error(r, TSR_UNAVAILABLE, "database unavailable");
	struct sync_run *v = NULL;
	size_t n = 0;
	tsr_rc rc = db_sync_run_status(c, &v, &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "cannot read sync runs");
	json_t *kinds = json_array();
	json_t *cur = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!cur || strcmp(json_string_value(json_object_get(cur, "kind")), v[i].kind) != 0) {
			cur = json_pack("{s:s,s:n,s:n}", "kind", v[i].kind, "latest", "last_ok");
			json_array_append_new(kinds, cur);
		}
		json_object_set_new(cur, strcmp(v[i].which, "latest") == 0 ? "latest" : "last_ok", run_json(&v[i]));
	}
	sync_runs_free(v, n);
	return http_reply_json(r, 200, json_pack("{s:o}", "kinds", kinds));
}

static tsr_rc h_runs(struct http_req *r)
{
	const char *kind = http_query(r, "kind");
	const char *req = http_query(r, "request");
	const char *lim = http_query(r, "limit");
	if (kind && !kind_ok(kind))
		return http_reply_error(r, TSR_INVALID, "bad kind");
	long limit = 20;
	if (lim) {
		char *end;
		limit = strtol(lim, &end, 10);
		if (*end || limit < 1 || limit > 1000)
			return http_reply_error(r, TSR_INVALID, "limit must be 1..1000");
	}
	if (req && (!kind || strlen(req) > 36 || strspn(req, "0123456789abcdef-") != strlen(req)))
		return http_reply_error(r, TSR_INVALID, "request needs kind and a request id");
	struct db_conn *c;
	if (db_acquire(r->b->pool, 2000, &c) != TSR_OK)
		return http_reply_error(r, TSR_UNAVAILABLE, "database unavailable");
	if (req) {
		struct sync_run one;
		tsr_rc rc = db_sync_run_by_request(c, kind, req, &one);
		db_release(r->b->pool, c);
		if (rc == TSR_NOT_FOUND)
			return http_reply_error(r, rc, "no %s run for request %s has started yet", kind, req);
		if (rc != TSR_OK)
			return http_reply_error(r, rc, "cannot read sync runs");
		json_t *j = run_json(&one);
		sync_run_clear(&one);
		return http_reply_json(r, 200, j);
	}
	struct sync_run *v = NULL;
	size_t n = 0;
	tsr_rc rc = db_sync_run_list(c, kind, (int)limit, &v, &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "cannot read sync runs");
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, run_json(&v[i]));
	sync_runs_free(v, n);
	return http_reply_json(r, 200, json_pack("{s:o}", "runs", a));
}

static tsr_rc h_run(struct http_req *r)
{
	const char *rest = http_route_rest(r);
	char *end;
	long long id = strtoll(rest, &end, 10);
	if (!*rest || *end || id <= 0)
		return http_reply_error(r, TSR_INVALID, "expected a run id");
	struct db_conn *c;
	if (db_acquire(r->b->pool, 2000, &c) != TSR_OK)
		return http_reply_error(r, TSR_UNAVAILABLE, "database unavailable");
	struct sync_run one;
	tsr_rc rc = db_sync_run_get(c, (int64_t)id, &one);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND)
		return http_reply_error(r, rc, "no sync run %lld", id);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "cannot read sync runs");
	json_t *j = run_json(&one);
	sync_run_clear(&one);
	return http_reply_json(r, 200, j);
}

static const struct route routes[] = {
	{ "GET", "/admin/v1/sync/status", ROLE_ADMIN | ROLE_SECURITY, h_status, NULL, NULL },
	{ "GET", "/admin/v1/sync/runs", ROLE_ADMIN | ROLE_SECURITY, h_runs, NULL, NULL },
	{ "GET", "/admin/v1/sync/runs/*", ROLE_ADMIN | ROLE_SECURITY, h_run, NULL, NULL },
	{ "POST", "/admin/v1/sync/*", ROLE_ADMIN | ROLE_SECURITY, h_request, NULL, NULL },
};
ROUTE_TABLE(admin_sync_routes, routes);
