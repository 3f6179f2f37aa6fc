/*
 * admin_reports.c — see admin_reports.h. The numbers come from db/report.c;
 * this file validates parameters, adds what only the configuration knows
 * (policy, TTLs, intervals, configured upstreams) and, for the compliance
 * checklist, judges each control pass / warn / fail from its evidence.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_reports.h"
#include "../db/audit_read.h"
#include "../db/report.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define COMPLIANCE_DAYS 30
#define COMPLIANCE_VERIFY_RECORDS 100000

static bool param(struct http_req *r, const char *name, const char **out)
{
	const char *v = http_query(r, name);
	*out = v && *v ? v : NULL;
	return !*out || strlen(*out) <= 512;
}

/* Reply with the JSON document text a db/report.c function produced. */
static tsr_rc reply_doc(struct http_req *r, tsr_rc rc, char *doc, const char *what, const char *name)
{
	if (rc == TSR_NOT_FOUND) {
		free(doc);
		return http_reply_error(r, rc, "no %s named %s", what, name ? name : "");
	}
	if (rc == TSR_INVALID) {
		free(doc);
		return http_reply_error(r, rc, "times must look like 2026-11-20 or 2026-11-20T10:00:00Z (UTC)");
	}
	if (rc != TSR_OK) {
		free(doc);
		return rc;
	}
	json_error_t e;
	json_t *j = json_loads(doc, 0, &e);
	free(doc);
	if (!j)
		return TSR_INTERNAL;
	return http_reply_json(r, 200, j);
}

static tsr_rc h_access(struct http_req *r)
{
	const char *repo, *user, *at;
	if (!param(r, "repo", &repo) || !param(r, "user", &user) || !param(r, "at", &at))
		return http_reply_error(r, TSR_INVALID, "a query parameter is too long");
	if (!!repo == !!user)
		return http_reply_error(r, TSR_INVALID, "give exactly one of repo= or user=");
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	char *doc = NULL;
	rc = repo ? db_report_access_repo(c, repo, at, &doc) : db_report_access_user(c, user, at, &doc);
	db_release(r->b->pool, c);
	return reply_doc(r, rc, doc, repo ? "repository" : "user", repo ? repo : user);
}

static tsr_rc h_usage(struct http_req *r)
{
	const char *from, *to, *by, *user;
	if (!param(r, "from", &from) || !param(r, "to", &to) || !param(r, "by", &by) || !param(r, "user", &user))
		return http_reply_error(r, TSR_INVALID, "a query parameter is too long");
	if (!from || !to)
		return http_reply_error(r, TSR_INVALID, "from= and to= are required");
	if (!by)
		by = "user";
	if (strcmp(by, "user") != 0 && strcmp(by, "repo") != 0 && strcmp(by, "upstream") != 0)
		return http_reply_error(r, TSR_INVALID, "by must be user, repo or upstream");
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	char *doc = NULL;
	rc = db_report_usage(c, from, to, by, user, &doc);
	db_release(r->b->pool, c);
	return reply_doc(r, rc, doc, "user", user);
}

static tsr_rc h_offboarding(struct http_req *r)
{
	const char *user;
	if (!param(r, "user", &user) || !user)
		return http_reply_error(r, TSR_INVALID, "user= is required");
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	char *doc = NULL;
	rc = db_report_offboarding(c, user, &doc);
	db_release(r->b->pool, c);
	return reply_doc(r, rc, doc, "user", user);
}

static const struct cfg_upstream *cfg_upstream(const struct config *cfg, const char *name)
{
	for (size_t i = 0; name && i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	return NULL;
}

static tsr_rc h_upstreams(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	char *doc = NULL;
	rc = db_report_upstreams(c, &doc);
	db_release(r->b->pool, c);
	if (rc != TSR_OK) {
		free(doc);
		return rc;
	}
	json_error_t e;
	json_t *list = json_loads(doc, 0, &e);
	free(doc);
	if (!json_is_array(list)) {
		json_decref(list);
		return TSR_INTERNAL;
	}
	/* the configuration fills in what the database has not seen (an upstream never started or never used) */
	const struct config *cfg = r->b->cfg;
	size_t i;
	json_t *u;
	json_array_foreach (list, i, u) {
		const struct cfg_upstream *cu = cfg_upstream(cfg, json_string_value(json_object_get(u, "name")));
		json_object_set_new(u, "in_config", json_boolean(cu != NULL));
		if (cu && json_is_null(json_object_get(u, "region"))) {
			json_object_set_new(u, "kind", json_string(cu->kind_s ? cu->kind_s : ""));
			json_object_set_new(u, "base_url", json_string(cu->base_url ? cu->base_url : ""));
			json_object_set_new(u, "region", cu->region ? json_string(cu->region) : json_null());
			json_object_set_new(u, "baa", json_boolean(cu->baa));
			json_object_set_new(u, "on_prem", json_boolean(cu->on_prem));
		}
	}
	for (size_t k = 0; k < cfg->n_upstreams; k++) {
		const struct cfg_upstream *cu = &cfg->upstreams[k];
		bool listed = false;
		json_array_foreach (list, i, u)
			if (strcmp(json_string_value(json_object_get(u, "name")), cu->name) == 0)
				listed = true;
		if (!listed)
			json_array_append_new(list, json_pack("{s:s,s:b,s:b,s:s,s:s,s:o,s:b,s:b,s:n,s:n,s:i,s:i}", "name",
							      cu->name, "configured", 1, "in_config", 1, "kind",
							      cu->kind_s ? cu->kind_s : "", "base_url",
							      cu->base_url ? cu->base_url : "", "region",
							      cu->region ? json_string(cu->region) : json_null(), "baa", cu->baa,
							      "on_prem", cu->on_prem, "first_use", "last_use", "requests_30d", 0,
							      "bytes_sent_30d", 0));
	}
	return http_reply_json(r, 200, json_pack("{s:o,s:I}", "upstreams", list, "count", (json_int_t)json_array_size(list)));
}

/* ---------- compliance ---------- */

static json_int_t ev_int(json_t *ev, const char *k)
{
	return json_integer_value(json_object_get(ev, k));
}

static void add_item(json_t *items, const char *id, const char *area, const char *control, const char *status,
		     json_t *evidence, const char *summary)
{
	json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "id", id, "area", area, "control", control,
					       "status", status, "summary", summary, "evidence",
					       evidence ? evidence : json_object()));
}

/* The most recent records verified (chain and seals), bounded so the report stays quick. */
static tsr_rc verify_recent(struct db_conn *c, struct audit_verify_out *vo)
{
	memset(vo, 0, sizeof(*vo));
	audit_verify_init(&vo->v);
	tsr_rc rc = db_audit_read_begin(c);
	struct audit_range range;
	if (rc == TSR_OK)
		rc = db_audit_range(c, NULL, NULL, &range);
	if (rc == TSR_OK && !range.empty && range.hi - range.lo + 1 > COMPLIANCE_VERIFY_RECORDS)
		range.lo = range.hi - COMPLIANCE_VERIFY_RECORDS + 1;
	if (rc == TSR_OK)
		rc = db_audit_verify_run(c, &range, NULL, vo);
	db_audit_read_end(c);
	return rc;
}

static char *join_list(const struct strlist *l)
{
	size_t n = 1;
	for (size_t i = 0; i < l->n; i++)
		n += strlen(l->v[i]) + 1;
	char *s = calloc(1, n);
	for (size_t i = 0; s && i < l->n; i++) {
		if (i)
			strncat(s, ",", n - strlen(s) - 1);
		strncat(s, l->v[i], n - strlen(s) - 1);
	}
	return s;
}

static bool in_list(const struct strlist *l, const char *v)
{
	for (size_t i = 0; v && i < l->n; i++)
		if (strcmp(l->v[i], v) == 0)
			return true;
	return false;
}

static tsr_rc h_compliance(struct http_req *r)
{
	const struct config *cfg = r->b->cfg;
	char *policy = join_list(&cfg->policy.classified_upstreams);
	if (!policy)
		return TSR_INTERNAL;
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK) {
		free(policy);
		return rc;
	}
	char *doc = NULL;
	rc = db_report_compliance_evidence(c, COMPLIANCE_DAYS, policy, &doc);
	struct audit_verify_out vo;
	memset(&vo, 0, sizeof(vo));
	if (rc == TSR_OK)
		rc = verify_recent(c, &vo);
	db_release(r->b->pool, c);
	json_error_t e;
	json_t *ev = rc == TSR_OK ? json_loads(doc, 0, &e) : NULL;
	free(doc);
	if (rc != TSR_OK || !ev) {
		db_audit_verify_free(&vo);
		free(policy);
		json_decref(ev);
		return rc != TSR_OK ? rc : TSR_INTERNAL;
	}
	json_t *items = json_array();

	char sum[1024];
	/* data handling */
	json_int_t reqs = ev_int(ev, "gateway_requests"), digests = ev_int(ev, "gateway_requests_with_digest");
	snprintf(sum, sizeof(sum),
		 "%" JSON_INTEGER_FORMAT " gateway requests in the last %d days, %" JSON_INTEGER_FORMAT
		 " recorded with the SHA-256 of the body; records hold byte counts, never text: the audit schema has no "
		 "column for prompt or response text",
		 reqs, COMPLIANCE_DAYS, digests);
	add_item(items, "DH-1", "data handling", "Prompt and response text is never stored", digests == reqs ? "pass" : "warn",
		 json_pack("{s:I,s:I,s:s}", "gateway_requests", reqs, "with_body_sha256", digests, "stored_fields",
			   "time, user, repository, token, route, model, upstream, decision, rule hits, byte counts, "
			   "SHA-256 of the body, status, latency, token counts"),
		 sum);
	json_int_t violations = 0;
	size_t i;
	json_t *cl;
	json_array_foreach (json_object_get(ev, "classified"), i, cl)
		violations += ev_int(cl, "violations");
	if (violations)
		snprintf(sum, sizeof(sum),
			 "%" JSON_INTEGER_FORMAT " allowed requests from classified repositories went to an upstream the "
			 "policy (%s) does not allow",
			 violations, policy);
	else
		snprintf(sum, sizeof(sum), "no request from a classified repository reached an upstream outside policy %s",
			 policy);
	add_item(items, "DH-2", "data handling", "Classified repositories reach only the upstreams policy allows",
		 violations ? "fail" : "pass",
		 json_pack("{s:s,s:O}", "policy", policy, "by_class", json_object_get(ev, "classified")), sum);
	json_t *dec = json_object_get(ev, "decisions");
	snprintf(sum, sizeof(sum),
		 "%" JSON_INTEGER_FORMAT " blocked, %" JSON_INTEGER_FORMAT " redacted of %" JSON_INTEGER_FORMAT
		 " gateway requests; every rule hit is in the audit record of its request",
		 json_integer_value(json_object_get(dec, "block")), json_integer_value(json_object_get(dec, "redact")), reqs);
	add_item(items, "DH-3", "data handling", "Secrets and PHI in prompts are blocked or redacted before they leave",
		 "pass", json_pack("{s:O,s:O}", "decisions", dec, "rule_hits", json_object_get(ev, "rule_hits")), sum);
	json_t *ups = json_object_get(ev, "upstreams");
	json_t *outside = json_array();
	json_t *u;
	json_array_foreach (ups, i, u) {
		const char *reg = json_string_value(json_object_get(u, "region"));
		if (cfg->policy.allowed_regions.n && !json_is_true(json_object_get(u, "removed")) &&
		    !json_is_true(json_object_get(u, "on_prem")) && !in_list(&cfg->policy.allowed_regions, reg))
			json_array_append(outside, json_object_get(u, "name"));
	}
	char *regions = join_list(&cfg->policy.allowed_regions);
	const char *dh4 = "pass";
	if (!cfg->policy.allowed_regions.n) {
		dh4 = "warn";
		snprintf(sum, sizeof(sum), "no [policy] allowed_regions is configured: any region is allowed");
	} else if (json_array_size(outside)) {
		dh4 = "fail";
		snprintf(sum, sizeof(sum), "%zu upstream(s) are outside the allowed regions (%s)", json_array_size(outside),
			 regions ? regions : "");
	} else {
		snprintf(sum, sizeof(sum), "every cloud upstream is in an allowed region (%s)", regions ? regions : "");
	}
	add_item(items, "DH-4", "data handling", "Data stays in the allowed regions", dh4,
		 json_pack("{s:s,s:O,s:o}", "allowed_regions", regions ? regions : "", "upstreams", ups, "outside", outside),
		 sum);
	free(regions);
	json_t *keys = json_object_get(ev, "upstream_keys");
	json_int_t active = ev_int(keys, "active"), enc = ev_int(keys, "active_encrypted");
	snprintf(sum, sizeof(sum),
		 "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
		 " active upstream keys are AES-256-GCM envelopes under the master key%s; developers only ever hold "
		 "short-lived tsr_ tokens",
		 enc, active, r->b->masterkey ? "" : " (no master key is loaded on this replica)");
	add_item(items, "DH-5", "data handling", "Organisation keys are encrypted at rest and never leave tesserad",
		 !r->b->masterkey ? "warn" : active == enc ? "pass" : "fail",
		 json_pack("{s:O,s:b}", "upstream_keys", keys, "master_key_loaded", r->b->masterkey != NULL), sum);

	/* access control */
	json_int_t longest = ev_int(ev, "longest_live_access_ttl_s");
	snprintf(sum, sizeof(sum),
		 "%" JSON_INTEGER_FORMAT " live access tokens, the longest lived %" JSON_INTEGER_FORMAT
		 " s (max_ttl %" PRId64 " s, default %" PRId64 " s)",
		 ev_int(ev, "live_access_tokens"), longest, cfg->tokens.max_ttl, cfg->tokens.default_ttl);
	add_item(items, "AC-1", "access control", "Access tokens are short-lived and scoped to a repository",
		 longest <= cfg->tokens.max_ttl ? "pass" : "fail",
		 json_pack("{s:I,s:I,s:I,s:I}", "default_ttl_s", (json_int_t)cfg->tokens.default_ttl, "max_ttl_s",
			   (json_int_t)cfg->tokens.max_ttl, "live_access_tokens", ev_int(ev, "live_access_tokens"),
			   "longest_live_ttl_s", longest),
		 sum);
	json_int_t leftover = ev_int(ev, "inactive_users_with_live_credentials");
	if (leftover)
		snprintf(sum, sizeof(sum), "%" JSON_INTEGER_FORMAT " inactive users still hold an unexpired, unrevoked credential",
			 leftover);
	else
		snprintf(sum, sizeof(sum), "no inactive or deleted user holds an unexpired, unrevoked credential");
	add_item(items, "AC-2", "access control", "Departed people hold no working credential", leftover ? "fail" : "pass",
		 json_pack("{s:I,s:O}", "inactive_users_with_live_credentials", leftover, "users",
			   json_object_get(ev, "users")),
		 sum);
	snprintf(sum, sizeof(sum),
		 "%" JSON_INTEGER_FORMAT " offboardings in the last %d days, each one audit record listing every "
		 "credential revoked (tessera report offboarding USER)",
		 ev_int(ev, "offboardings"), COMPLIANCE_DAYS);
	add_item(items, "AC-3", "access control", "Offboarding revokes everything at once, with a receipt", "pass",
		 json_pack("{s:I,s:O}", "offboardings", ev_int(ev, "offboardings"), "by_trigger",
			   json_object_get(ev, "offboarding_triggers")),
		 sum);
	bool boot = json_is_true(json_object_get(ev, "bootstrap_token_live"));
	if (boot)
		snprintf(sum, sizeof(sum), "the bootstrap admin token is still valid: revoke it once group-based admins exist");
	else
		snprintf(sum, sizeof(sum),
			 "%" JSON_INTEGER_FORMAT " role grants come from directory groups, %" JSON_INTEGER_FORMAT " are local",
			 ev_int(ev, "role_grants_from_groups"), ev_int(ev, "role_grants_local"));
	add_item(items, "AC-4", "access control", "Roles come from directory groups", boot ? "warn" : "pass",
		 json_pack("{s:O,s:I,s:I,s:b}", "roles", json_object_get(ev, "roles"), "grants_from_groups",
			   ev_int(ev, "role_grants_from_groups"), "grants_local", ev_int(ev, "role_grants_local"),
			   "bootstrap_token_live", boot),
		 sum);
	json_t *sync = json_object_get(ev, "sync");
	const char *sync_status = "pass";
	char sync_note[300] = "";
	struct {
		const char *kind;
		bool configured;
		int64_t interval;
	} kinds[] = { { "ldap", cfg->ldap.uri != NULL, cfg->ldap.sync_interval },
		      { "github", cfg->github.orgs.n > 0, cfg->github.sync_interval } };
	time_t now = time(NULL);
	for (size_t k = 0; k < 2; k++) {
		if (!kinds[k].configured)
			continue;
		const char *last = json_string_value(json_object_get(json_object_get(sync, kinds[k].kind), "last_ok"));
		int64_t us;
		size_t used = strlen(sync_note);
		if (!last || !audit_time_parse(last, &us)) {
			sync_status = "fail";
			snprintf(sync_note + used, sizeof(sync_note) - used, "%s: no successful sync yet; ", kinds[k].kind);
		} else if (kinds[k].interval > 0 && (int64_t)now - us / 1000000 > 3 * kinds[k].interval) {
			if (strcmp(sync_status, "fail") != 0)
				sync_status = "warn";
			snprintf(sync_note + used, sizeof(sync_note) - used, "%s: last success %s is stale; ", kinds[k].kind,
				 last);
		} else {
			snprintf(sync_note + used, sizeof(sync_note) - used, "%s: last success %s; ", kinds[k].kind, last);
		}
	}
	if (!sync_note[0]) {
		sync_status = "warn";
		snprintf(sync_note, sizeof(sync_note), "no directory or repo-host sync is configured");
	}
	add_item(items, "AC-5", "access control", "People and permissions are synchronised from their sources", sync_status,
		 json_pack("{s:O}", "sync", sync), sync_note);
	snprintf(sum, sizeof(sum),
		 "%" JSON_INTEGER_FORMAT " failed authentications and %" JSON_INTEGER_FORMAT
		 " refusals recorded in the last %d days",
		 ev_int(ev, "auth_failures"), ev_int(ev, "denied"), COMPLIANCE_DAYS);
	add_item(items, "AC-6", "access control", "Refusals and failed authentications are audited", "pass",
		 json_pack("{s:I,s:I}", "auth_failures", ev_int(ev, "auth_failures"), "denied", ev_int(ev, "denied")), sum);

	/* audit trail */
	struct audit_verifier *v = &vo.v;
	bool chain_ok = v->bad.problem == AUDIT_OK;
	if (chain_ok)
		snprintf(sum, sizeof(sum),
			 "the newest %" PRId64 " records and the %" PRId64 " seals over them verify (tessera audit verify "
			 "checks any range)",
			 v->count, v->seals);
	else
		snprintf(sum, sizeof(sum), "verification FAILED at seq %" PRId64 ": %s", v->bad.seq, v->bad.message);
	add_item(items, "AT-1", "audit trail", "The audit log is tamper-evident (hash chain verified)",
		 chain_ok ? "pass" : "fail",
		 json_pack("{s:I,s:I,s:I,s:I,s:s,s:I,s:s}", "records_verified", (json_int_t)v->count, "seq_first",
			   (json_int_t)(v->have_first ? v->first_seq : 0), "seq_last", (json_int_t)(v->have_last ? v->last_seq : 0),
			   "seals_verified", (json_int_t)v->seals, "problem", audit_problem_name(v->bad.problem), "first_bad_seq",
			   (json_int_t)v->bad.seq, "message", v->bad.message),
		 sum);
	json_t *seals = json_object_get(ev, "seals");
	json_int_t age = ev_int(seals, "age_s");
	const char *seal_status = "pass";
	if (!r->b->masterkey) {
		seal_status = "warn";
		snprintf(sum, sizeof(sum), "no master key is loaded on this replica, so it cannot seal");
	} else {
		if (ev_int(seals, "count") == 0 || age < 0 || age > 3 * cfg->audit.seal_interval + 60)
			seal_status = "fail";
		snprintf(sum, sizeof(sum),
			 "%" JSON_INTEGER_FORMAT " seals, the newest %" JSON_INTEGER_FORMAT " s old (interval %" PRId64
			 " s); public keys at /audit/v1/keys",
			 ev_int(seals, "count"), age, cfg->audit.seal_interval);
	}
	add_item(items, "AT-2", "audit trail", "The chain is sealed regularly with a published Ed25519 key", seal_status,
		 json_pack("{s:O,s:O,s:I,s:s}", "seals", seals, "audit_keys", json_object_get(ev, "audit_keys"),
			   "seal_interval_s", (json_int_t)cfg->audit.seal_interval, "public_keys", "/audit/v1/keys"),
		 sum);
	snprintf(sum, sizeof(sum),
		 "retention %" PRId64 " days in monthly partitions (%" JSON_INTEGER_FORMAT
		 " now); every drop is itself audited (%" JSON_INTEGER_FORMAT " so far)",
		 cfg->audit.retention / 86400, ev_int(ev, "partitions"), ev_int(ev, "retention_drops"));
	add_item(items, "AT-3", "audit trail", "Audit records are kept for the retention period", "pass",
		 json_pack("{s:I,s:O,s:I,s:I}", "retention_s", (json_int_t)cfg->audit.retention, "oldest_record",
			   json_object_get(ev, "oldest_record"), "partitions", ev_int(ev, "partitions"), "retention_drops",
			   ev_int(ev, "retention_drops")),
		 sum);
	snprintf(sum, sizeof(sum),
		 "%zu kinds of events recorded in the last %d days (logins, token mints, gateway requests, syncs, SCIM, "
		 "offboardings, admin actions, refusals)",
		 json_object_size(json_object_get(ev, "actions")), COMPLIANCE_DAYS);
	add_item(items, "AT-4", "audit trail", "Every kind of event is recorded", "pass",
		 json_pack("{s:O,s:O}", "actions", json_object_get(ev, "actions"), "head", json_object_get(ev, "audit_head")),
		 sum);

	int pass = 0, warn = 0, fail = 0;
	json_t *it;
	json_array_foreach (items, i, it) {
		const char *s = json_string_value(json_object_get(it, "status"));
		pass += strcmp(s, "pass") == 0;
		warn += strcmp(s, "warn") == 0;
		fail += strcmp(s, "fail") == 0;
	}
	char now_s[32];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	audit_time_format((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, now_s);
	json_t *out = json_pack("{s:s,s:s,s:i,s:{s:i,s:i,s:i},s:s,s:o}", "generated_at", now_s, "generated_by",
				r->who.user_name, "period_days", COMPLIANCE_DAYS, "summary", "pass", pass, "warn", warn,
				"fail", fail, "result", fail ? "fail" : warn ? "pass with warnings" : "pass", "items",
				items);
	json_decref(ev);
	db_audit_verify_free(&vo);
	free(policy);
	return http_reply_json(r, 200, out);
}

static const struct route routes[] = {
	{ "GET", "/admin/v1/report/access", ROLE_ADMIN | ROLE_SECURITY, h_access, NULL, NULL },
	{ "GET", "/admin/v1/report/usage", ROLE_ADMIN | ROLE_SECURITY, h_usage, NULL, NULL },
	{ "GET", "/admin/v1/report/offboarding", ROLE_ADMIN | ROLE_SECURITY, h_offboarding, NULL, NULL },
	{ "GET", "/admin/v1/report/upstreams", ROLE_ADMIN | ROLE_SECURITY, h_upstreams, NULL, NULL },
	{ "GET", "/admin/v1/report/compliance", ROLE_ADMIN | ROLE_SECURITY, h_compliance, NULL, NULL },
};
ROUTE_TABLE(admin_reports_routes, routes);
