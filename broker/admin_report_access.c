/*
 * admin_report_access.c — see admin_report_access.h.
 *
 * Answer: {"unmatched":[{"login","github_id","orgs":[{"org","role"}],
 * "teams","collaborations","first_seen","last_seen"}],"count":N,
 * "truncated":bool}. At most ?limit= rows (default and ceiling 10000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "admin_report_access.h"
#include "../db/repo_perm.h"

#define MAX_ROWS 10000

static tsr_rc add_row(void *arg, const struct rp_unmatched *u)
{
	json_t *orgs = json_array();
	char buf[sizeof(u->orgs)];
	snprintf(buf, sizeof(buf), "%s", u->orgs);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(tok, ':');
		if (!colon)
			continue;
		*colon = '\0';
		json_array_append_new(orgs, json_pack("{s:s,s:s}", "org", tok, "role", colon + 1));
	}
	json_t *row = json_pack("{s:s,s:I,s:o,s:i,s:i,s:s,s:s}", "login", u->login, "github_id", (json_int_t)u->id,
				"orgs", orgs, "teams", u->teams, "collaborations", u->collaborations, "first_seen",
				u->first_seen, "last_seen", u->last_seen);
	if (!row || json_array_append_new(arg, row) != 0)
		return TSR_INTERNAL;
	return TSR_OK;
}

static tsr_rc h_unmatched(struct http_req *r)
{
	int limit = MAX_ROWS;
	const char *l = http_query(r, "limit");
	if (l) {
		char *end;
		long v = strtol(l, &end, 10);
		if (end == l || *end || v < 1 || v > MAX_ROWS)
			return http_reply_error(r, TSR_INVALID, "limit must be a number from 1 to %d", MAX_ROWS);
		limit = (int)v;
	}
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 5000, &c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "database unavailable");
	json_t *rows = json_array();
	int64_t total = 0;
	rc = rows ? db_rp_unmatched(c, limit, add_row, rows, &total) : TSR_INTERNAL;
	db_release(r->b->pool, c);
	if (rc != TSR_OK) {
		json_decref(rows);
		return http_reply_error(r, rc, "cannot read the report");
	}
	return http_reply_json(r, 200, json_pack("{s:o,s:I,s:b}", "unmatched", rows, "count", (json_int_t)total,
						 "truncated", total > (int64_t)json_array_size(rows)));
}

static const struct route routes[] = {
	{ "GET", "/admin/v1/report/access/unmatched", ROLE_ADMIN | ROLE_SECURITY, h_unmatched, NULL, NULL },
};
ROUTE_TABLE(admin_report_access_routes, routes);
