/*
 * routes.c — the route table and the handlers of the Foundation routes.
 *
 * The route tables are the single place that says which role a route needs;
 * the dispatcher in http.c enforces it (a test walks every route to prove
 * it). Each feature module keeps its own table (a static array wrapped with
 * ROUTE_TABLE and declared extern in its header) and adds it to
 * route_tables below.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "admin_sync.h"
#include "metrics.h"
#include "auth_api.h"
#include "admin_users.h"
#include "hooks_hr.h"
#include "hooks_github.h"
#include "admin_report_access.h"
#include "admin_audit.h"
#include "admin_reports.h"
#include "sealer.h"
#include "scim.h"
#include "gateway.h"
#include "admin_upstreams.h"
#include "rotation.h"
#include "webhook_secret.h"
#include "auditlog.h"
#include "../db/migrate.h"
#include "../lib/log.h"

static tsr_rc h_healthz(struct http_req *r)
{
	return http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static tsr_rc h_readyz(struct http_req *r)
{
	const char *reason = NULL;
	char err[512] = "";
	if (atomic_load(&r->b->shutting_down)) {
		reason = "shutting down";
	} else if (r->b->audit && !auditlog_ready(r->b->audit, err, sizeof(err))) {
		reason = err; /* the gateway refuses requests (fail closed) */
	} else {
		struct db_conn *c;
		if (db_acquire(r->b->pool, 1000, &c) != TSR_OK) {
			reason = "database unreachable";
		} else {
			tsr_rc rc = migrate_run(c->pg, r->b->migrations_dir, MIGRATE_CHECK, NULL, err, sizeof(err));
			db_release(r->b->pool, c);
			if (rc == TSR_UNAVAILABLE)
				reason = "database unreachable";
			else if (rc != TSR_OK)
				reason = err;
		}
	}
	if (reason)
		return http_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "not ready", "reason", reason));
	return http_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

static tsr_rc h_metrics(struct http_req *r)
{
	tsr_rc rc = metrics_render(r->b, &r->out);
	if (rc != TSR_OK)
		return rc;
	r->status = 200;
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return TSR_OK;
}

static tsr_rc h_whoami(struct http_req *r)
{
	json_t *roles = json_array();
	for (unsigned bit = ROLE_ADMIN; bit <= ROLE_DEVELOPER; bit <<= 1)
		if (r->who.roles & bit)
			json_array_append_new(roles, json_string(role_name(bit)));
	json_t *j = json_pack("{s:s,s:s,s:o,s:{s:I,s:s,s:o}}", "user", r->who.user_name, "source", r->who.source,
			      "roles", roles, "credential", "id", (json_int_t)r->who.cred_id, "kind", r->who.kind,
			      "expires_at", r->who.expires_at[0] ? json_string(r->who.expires_at) : json_null());
	return http_reply_json(r, 200, j);
}

static const struct route core[] = {
	{ "GET", "/healthz", ROLE_PUBLIC, h_healthz, NULL, http_always_fast },
	{ "GET", "/readyz", ROLE_PUBLIC, h_readyz, NULL, NULL }, /* a query: the blocking pool */
	{ "GET", "/metrics", ROLE_PUBLIC, h_metrics, NULL, http_always_fast },
	{ "GET", "/admin/v1/whoami", ROLE_ANY, h_whoami, NULL, NULL },
};
static ROUTE_TABLE(core_routes, core);

/*
 * Every module's route table, in match order (first match wins). A module
 * adds one line here and keeps its routes in its own file.
 */
const struct route_table *const route_tables[] = {
	&core_routes,
	&admin_sync_routes,
	&auth_routes,
	&admin_users_routes,
	&hooks_hr_routes,
	&hooks_github_routes,
	&admin_report_access_routes,
	&admin_audit_routes,
	&admin_reports_routes,
	&sealer_routes,
	&scim_routes,
	&admin_scim_routes,
	&gateway_routes,
	&rotation_routes,
	&rotation_auto_routes,
	&admin_upstreams_routes,
	&webhook_secret_routes,
	NULL,
};
