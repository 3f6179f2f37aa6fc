/*
 * webhook_secret_push.c — rotation of the GitHub webhook secret without a
 * person: tesserad generates the secret and sets it on the organisation
 * webhook itself (PATCH /orgs/{org}/hooks/{id}/config, scope
 * admin:org_hook), on request (`tessera rotate webhook-secret github`) or
 * when the active secret is older than [github]
 * webhook_secret_rotation_period (job "webhook_secret.rotate").
 *
 * Order of one rotation, so that every delivery verifies across the switch
 * (before the PATCH GitHub signs with the old secret, after it with the new):
 *   1. one transaction stores the new version as retiring (accepted, not
 *      active; not_after = now + max(overlap, PENDING_MIN_S)); on the first
 *      rotation the configured file's secret is stored as the active one;
 *   2. wait one cache TTL, so every replica accepts the new secret;
 *   3. the PATCH, with no transaction open;
 *   4. one transaction promotes the new version (the old one turns retiring
 *      for the overlap), audits and records the outcome — or, after a
 *      refusal (4xx), retires the new version at once; after no answer or a
 *      5xx GitHub may have taken it, so it stays accepted until its not_after
 *      (harmless: a random secret nobody else holds). The old secret stays
 *      active either way, the failure is audited with the HTTP status (never
 *      the secret) and the next scheduled attempt backs off (5 s doubling to
 *      5 min; kept in settings so it survives a failover).
 * A crash between 3 and 4 leaves the new secret accepted until its not_after
 * and the old one active: the next scheduled turn rotates again.
 * The job runs under its advisory lock (jobs.c): one replica, one rotation.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "webhook_secret.h"
#include "jobs.h"
#include "../db/audit.h"
#include "../db/secrets.h"
#include "../lib/crypto.h"
#include "../lib/log.h"
#include "../lib/masterkey.h"
#include "../sync/github.h"
#include "../sync/sync_github.h"

#define DB_NAME "webhook.github"
#define GENERATED_BYTES 32
#define PENDING_MIN_S 600
#define BACKOFF_BASE_S 5
#define BACKOFF_MAX_S 300
#define PERIOD_MIN_S 5
#define JOB "webhook_secret.rotate"

struct hook_target {
	char org[101];
	char id[24];
};

/* [github] webhook_hook_id as ORG:ID, or ID with exactly one org in [github] orgs. */
static tsr_rc hook_target(const struct config *cfg, struct hook_target *t)
{
	const char *v = cfg->github.webhook_hook_id;
	memset(t, 0, sizeof(*t));
	if (!v || !*v)
		return TSR_NOT_FOUND;
	const char *colon = strrchr(v, ':');
	const char *id = colon ? colon + 1 : v;
	if (colon) {
		if ((size_t)(colon - v) >= sizeof(t->org))
			return TSR_INVALID;
		snprintf(t->org, sizeof(t->org), "%.*s", (int)(colon - v), v);
	} else if (cfg->github.orgs.n == 1) {
		snprintf(t->org, sizeof(t->org), "%s", cfg->github.orgs.v[0]);
	} else {
		return TSR_INVALID;
	}
	size_t n = strlen(id);
	if (!n || n >= sizeof(t->id) || strspn(id, "0123456789") != n || !gh_name_ok(t->org))
		return TSR_INVALID;
	snprintf(t->id, sizeof(t->id), "%s", id);
	return TSR_OK;
}

bool webhook_secret_push_configured(const struct config *cfg)
{
	struct hook_target t;
	return hook_target(cfg, &t) == TSR_OK;
}

int64_t webhook_secret_rotate_interval(const struct config *cfg)
{
	static atomic_bool complained;
	struct hook_target t;
	tsr_rc rc = hook_target(cfg, &t);
	if (rc == TSR_INVALID && !atomic_exchange(&complained, true))
		log_error("webhook_secret_push_unconfigured",
			  "reason=\"[github] webhook_hook_id must be ORG:ID, or ID with exactly one org in [github] orgs; "
			  "the GitHub webhook secret is not rotated\"");
	return rc == TSR_OK && cfg->github.webhook_secret_rotation_period > 0 ? 2 : 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_ms(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static tsr_rc seal_insert(struct db_conn *c, const struct masterkey *mk, int version, bool active, int64_t window,
			  const char *secret, const char *by)
{
	char aad[64];
	struct sealed s = { 0 };
	db_secret_aad(DB_NAME, version, aad, sizeof(aad));
	tsr_rc rc = envelope_seal(masterkey_current(mk), secret, strlen(secret), aad, &s);
	if (rc == TSR_OK)
		rc = db_secret_insert(c, DB_NAME, version, active, window, &s, by, NULL, NULL, 0);
	sealed_free(&s);
	return rc;
}

/* Step 1: store secret as an accepted, not yet active version; *version is its number. */
static tsr_rc store_pending(struct broker *b, const char *secret, int64_t window, const char *actor, int *version,
			    bool *file_imported)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	int next = 0;
	bool has_active = false;
	bool own;
	rc = db_tx_begin(c, &own);
	if (rc == TSR_OK)
		rc = db_secret_lock(c, DB_NAME, &next, &has_active);
	const char *file = b->cfg->github.webhook_secret_file;
	if (rc == TSR_OK && !has_active && file) {
		/* GitHub signs with the file's secret today: it becomes the stored active version */
		char *old = NULL;
		if (config_secret(NULL, file, &old) == TSR_OK && *old) {
			rc = seal_insert(c, b->masterkey, next++, true, 0, old, "webhook_secret_file");
			*file_imported = true;
		} else {
			log_warn("webhook_secret_file_unreadable", "name=github file=%s reason=\"not kept\"", file);
		}
		secret_free(old);
	}
	if (rc == TSR_OK)
		rc = seal_insert(c, b->masterkey, next, false, window, secret, actor);
	rc = db_tx_end(c, own, rc);
	db_release(b->pool, c);
	*version = next;
	return rc;
}

/* Step 3: PATCH /orgs/{org}/hooks/{id}/config. */
static tsr_rc push(struct broker *b, const struct hook_target *t, const char *secret, long *status)
{
	struct gh_client *gh = NULL;
	*status = 0;
	tsr_rc rc = sync_github_client(b->cfg, false, &b->shutting_down, &gh);
	if (rc != TSR_OK)
		return rc;
	json_t *j = json_pack("{s:s,s:s}", "secret", secret, "content_type", "json");
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_t *js = json_object_get(j, "secret");
	if (json_is_string(js))
		OPENSSL_cleanse((char *)json_string_value(js), json_string_length(js));
	json_decref(j);
	char path[200];
	snprintf(path, sizeof(path), "/orgs/%s/hooks/%s/config", t->org, t->id);
	rc = body ? gh_patch(gh, t->org, path, body, status) : TSR_INTERNAL;
	if (body) {
		OPENSSL_cleanse(body, strlen(body));
		free(body);
	}
	gh_client_free(gh);
	return rc;
}

static tsr_rc audit(struct db_conn *c, const char *actor, const char *outcome, json_t *d)
{
	char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	if (!detail)
		return TSR_INTERNAL;
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, actor, "webhook_secret.rotated", outcome);
	if (rc == TSR_OK) {
		ev.target = "github";
		ev.detail = detail;
		rc = db_audit_append(c, &ev, 1);
	}
	free(detail);
	return rc;
}

/* Step 4 after a failure: backoff, audit, log; the new version is retired when GitHub refused it. */
static void push_failed(struct broker *b, const struct hook_target *t, const char *actor, const char *trigger,
			int version, tsr_rc why, long status)
{
	/* GitHub refused it, or it never left: the new secret can go at once */
	bool refused = (status >= 400 && status <= 499) || (status == 0 && (why == TSR_INVALID || why == TSR_INTERNAL));
	struct db_secret_push st = { 0 };
	char next[32] = "";
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc == TSR_OK) {
		int ignored_next = 0;
		bool ignored_active = false;
		bool own;
		rc = db_tx_begin(c, &own);
		if (rc == TSR_OK)
			rc = db_secret_lock(c, DB_NAME, &ignored_next, &ignored_active);
		if (rc == TSR_OK && version && refused)
			rc = db_secret_discard(c, DB_NAME, version);
		if (rc == TSR_OK)
			rc = db_secret_push_get(c, DB_NAME, &st);
		if (rc == TSR_OK) {
			st.attempts++;
			st.failures++;
			int64_t wait = (int64_t)BACKOFF_BASE_S << (st.failures - 1 < 6 ? st.failures - 1 : 6);
			if (wait > BACKOFF_MAX_S)
				wait = BACKOFF_MAX_S;
			st.next_attempt_ms = now_ms() + wait * 1000;
			st.last_status = status;
			st.last_ok = false;
			st.last_version = version;
			snprintf(st.last_error, sizeof(st.last_error), "%s", status_name(why));
			iso_ms(st.next_attempt_ms, next, sizeof(next));
			rc = db_secret_push_put(c, DB_NAME, &st);
		}
		if (rc == TSR_OK)
			rc = audit(c, actor, "failure",
				   json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:i,s:s,s:i,s:b}", "name", "github", "origin", "github",
					     "trigger", trigger, "hook", t->id, "http_status", (json_int_t)status, "error",
					     status_name(why), "attempt", st.failures, "next_attempt_at", next, "version",
					     version, "version_discarded", version && refused));
		rc = db_tx_end(c, own, rc);
		db_release(b->pool, c);
	}
	webhook_secret_invalidate(WEBHOOK_GITHUB);
	log_warn("webhook_secret_push_failed",
		 "name=github org=%s hook=%s trigger=%s http_status=%ld error=%s attempt=%d next_attempt_at=%s "
		 "new_version=%d new_version_discarded=%s",
		 t->org, t->id, trigger, status, status_name(why), st.failures, next[0] ? next : "unknown", version,
		 version && refused ? "true" : "false");
	if (rc != TSR_OK)
		log_error("webhook_secret_push_unrecorded", "name=github error=%s", status_name(rc));
}

/* Step 4 after a success: promote, audit, record. */
static tsr_rc push_done(struct broker *b, const struct hook_target *t, const char *actor, const char *trigger,
			int version, int64_t overlap, long status, bool file_imported)
{
	struct db_conn *c;
	int prev = 0;
	char prev_until[40] = "";
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	int ignored_next = 0;
	bool ignored_active = false;
	struct db_secret_push st = { 0 };
	bool own;
	rc = db_tx_begin(c, &own);
	if (rc == TSR_OK)
		rc = db_secret_lock(c, DB_NAME, &ignored_next, &ignored_active);
	if (rc == TSR_OK)
		rc = db_secret_promote(c, DB_NAME, version, overlap, &prev, prev_until, sizeof(prev_until));
	if (rc == TSR_OK)
		rc = db_secret_push_get(c, DB_NAME, &st);
	if (rc == TSR_OK) {
		st.attempts++;
		st.failures = 0;
		st.next_attempt_ms = 0;
		st.last_status = status;
		st.last_ok = true;
		st.last_version = version;
		st.last_error[0] = '\0';
		rc = db_secret_push_put(c, DB_NAME, &st);
	}
	if (rc == TSR_OK)
		rc = audit(c, actor, "success",
			   json_pack("{s:s,s:i,s:o,s:o,s:I,s:s,s:b,s:b,s:s,s:s,s:I}", "name", "github", "version", version,
				     "previous_version", prev ? json_integer(prev) : json_null(), "previous_not_after",
				     prev_until[0] ? json_string(prev_until) : json_null(), "overlap_s", (json_int_t)overlap,
				     "source", "generated", "pushed", true, "file_imported", file_imported, "trigger", trigger,
				     "hook", t->id, "http_status", (json_int_t)status));
	rc = db_tx_end(c, own, rc);
	db_release(b->pool, c);
	webhook_secret_invalidate(WEBHOOK_GITHUB);
	if (rc == TSR_OK)
		log_info("webhook_secret_rotated",
			 "name=github version=%d previous=%d overlap_s=%" PRId64 " pushed=true org=%s hook=%s trigger=%s by=%s",
			 version, prev, overlap, t->org, t->id, trigger, actor);
	else
		log_error("webhook_secret_promote_failed",
			  "name=github version=%d error=%s reason=\"GitHub has the new secret; it is accepted until its "
			  "window ends and the next turn rotates again\"",
			  version, status_name(rc));
	return rc;
}

/* One rotation with push; TSR_OK when GitHub has the new secret and it is active. */
static tsr_rc rotate_push(struct broker *b, const struct hook_target *t, const char *actor, const char *trigger,
			  int64_t overlap)
{
	if (!b->masterkey) {
		push_failed(b, t, actor, trigger, 0, TSR_UNAVAILABLE, 0);
		log_error("webhook_secret_no_master_key", "name=github reason=\"rotation needs [server] master_key_file\"");
		return TSR_UNAVAILABLE;
	}
	char secret[2 * GENERATED_BYTES + 1];
	uint8_t raw[GENERATED_BYTES];
	tsr_rc rc = crypto_random(raw, sizeof(raw));
	if (rc == TSR_OK)
		crypto_hex(raw, sizeof(raw), secret);
	OPENSSL_cleanse(raw, sizeof(raw));
	if (rc != TSR_OK)
		return rc;
	int version = 0;
	bool imported = false;
	int64_t window = overlap > PENDING_MIN_S ? overlap : PENDING_MIN_S;
	rc = store_pending(b, secret, window, actor, &version, &imported);
	webhook_secret_invalidate(WEBHOOK_GITHUB);
	if (rc != TSR_OK) {
		OPENSSL_cleanse(secret, sizeof(secret));
		push_failed(b, t, actor, trigger, 0, rc, 0);
		return rc;
	}
	/* every replica's cache must accept the new secret before GitHub signs with it */
	usleep((WEBHOOK_SECRET_TTL_MS + 200) * 1000);
	long status = 0;
	rc = push(b, t, secret, &status);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc != TSR_OK) {
		push_failed(b, t, actor, trigger, version, rc, status);
		return rc;
	}
	return push_done(b, t, actor, trigger, version, overlap, status, imported);
}

tsr_rc webhook_secret_rotate_job(struct broker *b, const char *arg)
{
	struct hook_target t;
	tsr_rc rc = hook_target(b->cfg, &t);
	bool requested = strncmp(arg, "request ", 8) == 0;
	if (rc != TSR_OK) {
		if (requested || rc == TSR_INVALID)
			log_error("webhook_secret_push_unconfigured",
				  "reason=\"[github] webhook_hook_id must be ORG:ID, or ID with exactly one org in [github] "
				  "orgs\"");
		return rc == TSR_NOT_FOUND && !requested ? TSR_OK : TSR_INVALID;
	}
	if (requested) {
		/* "request OVERLAP_S ACTOR" from webhook_secret_push_request() */
		char *end;
		long long overlap = strtoll(arg + 8, &end, 10);
		const char *actor = *end == ' ' ? end + 1 : "rotation";
		return rotate_push(b, &t, *actor ? actor : "rotation", "request", overlap >= 0 ? overlap : 0);
	}
	int64_t period = b->cfg->github.webhook_secret_rotation_period;
	if (period <= 0)
		return TSR_OK;
	if (period < PERIOD_MIN_S)
		period = PERIOD_MIN_S;
	struct db_conn *c;
	if ((rc = db_acquire(b->pool, 5000, &c)) != TSR_OK)
		return rc;
	int version = 0;
	int64_t age = 0;
	struct db_secret_push st;
	rc = db_secret_active(c, DB_NAME, &version, &age);
	if (rc == TSR_OK)
		rc = db_secret_push_get(c, DB_NAME, &st);
	db_release(b->pool, c);
	if (rc != TSR_OK)
		return rc;
	if (version && age < period)
		return TSR_OK;
	if (st.failures && now_ms() < st.next_attempt_ms)
		return TSR_OK;
	return rotate_push(b, &t, "rotation", "schedule", b->cfg->github.webhook_secret_overlap);
}

/* --- the admin side ------------------------------------------------------ */

tsr_rc webhook_secret_push_request(struct http_req *r, int64_t overlap)
{
	struct db_conn *c;
	struct db_secret_push st;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "database unavailable");
	rc = db_secret_push_get(c, DB_NAME, &st);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "cannot read the rotation state");
	char arg[256];
	snprintf(arg, sizeof(arg), "request %lld %s", (long long)overlap, r->who.user_name);
	rc = r->b->jobs ? jobs_request(r->b->jobs, JOB, arg) : TSR_UNAVAILABLE;
	if (rc == TSR_CONFLICT)
		return http_reply_error(r, TSR_CONFLICT, "a rotation of the github webhook secret is already pending");
	if (rc != TSR_OK)
		return http_reply_error(r, TSR_UNAVAILABLE, "the rotation job is not running");
	struct hook_target t;
	if (hook_target(r->b->cfg, &t) != TSR_OK)
		return http_reply_error(r, TSR_INTERNAL, "bad [github] webhook_hook_id");
	log_info("webhook_secret_rotation_requested", "name=github by=%s", r->who.user_name);
	return http_reply_json(r, 202,
			       json_pack("{s:s,s:b,s:b,s:s,s:s,s:i}", "name", "github", "requested", true, "push", true,
					 "org", t.org, "hook", t.id, "attempts", st.attempts));
}

/* GET /admin/v1/webhook-secrets/github: the active version and the push state. */
tsr_rc webhook_secret_status(struct http_req *r)
{
	if (strcmp(http_route_rest(r), "github") != 0 && strcmp(http_route_rest(r), "hr") != 0)
		return http_reply_error(r, TSR_NOT_FOUND, "no such webhook secret (hr or github)");
	bool gh = strcmp(http_route_rest(r), "github") == 0;
	char name[32];
	snprintf(name, sizeof(name), "webhook.%s", gh ? "github" : "hr");
	struct db_conn *c;
	struct db_secret_push st;
	int version = 0;
	int64_t age = 0;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "database unavailable");
	rc = db_secret_active(c, name, &version, &age);
	if (rc == TSR_OK)
		rc = db_secret_push_get(c, name, &st);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "cannot read the webhook secret state");
	struct hook_target t;
	bool push = gh && hook_target(r->b->cfg, &t) == TSR_OK;
	char next[32] = "";
	if (st.next_attempt_ms)
		iso_ms(st.next_attempt_ms, next, sizeof(next));
	json_t *j = json_pack("{s:s,s:o,s:o,s:b}", "name", gh ? "github" : "hr", "active_version",
			      version ? json_integer(version) : json_null(), "active_age_s",
			      version ? json_integer(age) : json_null(), "push", push);
	if (j && push) {
		json_object_set_new(j, "org", json_string(t.org));
		json_object_set_new(j, "hook", json_string(t.id));
		json_object_set_new(j, "rotation_period_s", json_integer(r->b->cfg->github.webhook_secret_rotation_period));
		json_object_set_new(j, "attempts", json_integer(st.attempts));
		json_object_set_new(j, "failures", json_integer(st.failures));
		json_object_set_new(j, "last_ok", json_boolean(st.last_ok));
		json_object_set_new(j, "last_status", json_integer(st.last_status));
		json_object_set_new(j, "last_version", json_integer(st.last_version));
		json_object_set_new(j, "last_error", st.last_error[0] ? json_string(st.last_error) : json_null());
		json_object_set_new(j, "next_attempt_at", next[0] ? json_string(next) : json_null());
	}
	return http_reply_json(r, 200, j);
}

tsr_rc webhook_secret_push_metrics(struct broker *b, struct buf *out)
{
	const char *hook = b->cfg->github.webhook_hook_id;
	struct db_conn *c;
	if (!hook || !*hook || !b->pool || db_acquire(b->pool, 500, &c) != TSR_OK)
		return TSR_OK; /* metrics without it beat no metrics */
	struct db_secret_push st;
	tsr_rc rc = db_secret_push_get(c, DB_NAME, &st);
	db_release(b->pool, c);
	if (rc != TSR_OK)
		return TSR_OK;
	return buf_printf(out,
			  "# HELP tessera_webhook_secret_push_failures Consecutive failed pushes of the GitHub webhook "
			  "secret to GitHub (0 after a success; the old secret stays active meanwhile).\n"
			  "# TYPE tessera_webhook_secret_push_failures gauge\n"
			  "tessera_webhook_secret_push_failures{name=\"github\"} %d\n",
			  st.failures);
}
