/*
 * rotation_auto.c — automatic rotation of upstream keys through a provider
 * admin API (see rotation.h): the job "rotation.upstreams", `--now`
 * requests and their status, deleting retired keys at the provider, and
 * the rotation metrics.
 *
 * State shared by replicas lives in Postgres (upstream_rotation, see
 * migrations/0007): a --now request is a row update any replica's job
 * picks up, the backoff after failures survives a failover, and /metrics
 * reads the same numbers on every replica. The job runs under its advisory
 * lock (jobs.c), so one due rotation is done by one replica, once.
 * Order of one rotation: provider call first (no transaction open, no row
 * lock held during a network call), then one transaction that demotes the
 * old key, stores the new one sealed, records the provider's id, clears the
 * request and audits — so a failed call changes nothing but the backoff and
 * the old key stays active. A key created at the provider whose transaction
 * then fails is deleted at the provider again at once (best effort; its id
 * is logged if that fails too).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "rotation.h"
#include "rotation_provider.h"
#include "gateway_int.h"
#include "jobs.h"
#include "../db/audit.h"
#include "../db/upstream.h"
#include "../lib/log.h"

#define BACKOFF_BASE_S 5
#define BACKOFF_MAX_S 300

static const struct cfg_upstream *cfg_upstream(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	return NULL;
}

/* JSON text of d (stolen); NULL on OOM. Caller frees. */
static char *dumps(json_t *d)
{
	char *s = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	return s;
}

static tsr_rc audit(struct db_conn *c, const char *actor, const char *action, const char *outcome,
		    const char *upstream, int64_t key_id, const char *detail)
{
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, actor && *actor ? actor : "rotation", action, outcome);
	if (rc != TSR_OK)
		return rc;
	ev.target = upstream;
	ev.upstream = upstream;
	ev.upstream_key_id = key_id;
	ev.detail = detail;
	return db_audit_append(c, &ev, 1);
}

/* A failed attempt: backoff, audit, log, in one transaction (best effort). */
static void rotation_failed(struct broker *b, const struct rotation_candidate *cand, const char *trigger,
			    const char *why)
{
	int failures = 0;
	char next[48] = "";
	struct db_conn *c;
	if (db_acquire(b->pool, 5000, &c) == TSR_OK) {
		bool own;
		tsr_rc rc = db_tx_begin(c, &own);
		if (rc == TSR_OK)
			rc = db_rotation_failed(c, cand->upstream_id, why, BACKOFF_BASE_S, BACKOFF_MAX_S, &failures,
						next, sizeof(next));
		char *detail = dumps(json_pack("{s:s,s:s,s:s,s:i,s:s,s:i}", "error", why, "origin", "provider",
					       "trigger", trigger, "attempt", failures, "next_attempt_at", next,
					       "previous_version", cand->key_version));
		if (rc == TSR_OK)
			rc = detail ? audit(c, cand->requested ? cand->requested_by : "rotation", "upstream.key_rotated",
					    "failure", cand->name, 0, detail)
				    : TSR_INTERNAL;
		free(detail);
		rc = db_tx_end(c, own, rc);
		db_release(b->pool, c);
	}
	log_warn("upstream_key_rotation_failed",
		 "upstream=%s trigger=%s attempt=%d next_attempt_at=%s active_version=%d error=\"%s\"", cand->name,
		 trigger, failures, next[0] ? next : "unknown", cand->key_version, why);
}

/* Rotate one provider-backed upstream now. */
static void rotate_one(struct broker *b, const struct cfg_upstream *u, const struct rotation_provider *prov,
		       const struct rotation_candidate *cand)
{
	const char *trigger = cand->requested ? "request" : "schedule";
	const char *actor = cand->requested && cand->requested_by[0] ? cand->requested_by : "rotation";
	char err[512] = "";
	if (!b->masterkey) {
		rotation_failed(b, cand, trigger, "no master key is configured: keys cannot be sealed");
		return;
	}
	struct db_conn *c = NULL;
	int version = 0;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc == TSR_OK) {
		rc = db_upstream_key_next_version(c, cand->upstream_id, &version);
		db_release(b->pool, c);
	}
	if (rc != TSR_OK) {
		log_warn("upstream_key_rotation_skipped", "upstream=%s error=%s", cand->name, status_name(rc));
		return;
	}
	char key_name[128];
	snprintf(key_name, sizeof(key_name), "tessera-%s-v%d", cand->name, version);
	struct provider_key *pk = calloc(1, sizeof(*pk));
	if (!pk)
		return;
	rc = prov->create_key(u, key_name, pk, err, sizeof(err));
	if (rc != TSR_OK) {
		provider_key_wipe(pk);
		free(pk);
		rotation_failed(b, cand, trigger, err[0] ? err : status_name(rc));
		return;
	}
	char fp[33];
	upstream_key_fingerprint(pk->key, fp);
	struct sealed s;
	memset(&s, 0, sizeof(s));
	int64_t upstream_id = 0, key_id = 0;
	int old_version = 0;
	char retire_after[48] = "";
	bool own = false;
	c = NULL;
	if ((rc = db_acquire(b->pool, 5000, &c)) != TSR_OK)
		goto out;
	if ((rc = db_tx_begin(c, &own)) != TSR_OK)
		goto out;
	rc = db_upstream_lock(c, cand->name, &upstream_id);
	if (rc == TSR_OK) /* an operator may have rotated meanwhile: the version is decided under the lock */
		rc = db_upstream_key_next_version(c, upstream_id, &version);
	if (rc == TSR_OK) {
		char aad[128];
		snprintf(aad, sizeof(aad), "upstream_key:%s:%d", cand->name, version);
		rc = envelope_seal(b->masterkey, pk->key, strlen(pk->key), aad, &s);
	}
	if (rc == TSR_OK)
		rc = db_upstream_key_rotate(c, upstream_id, version, "provider", &s, fp, &key_id, &old_version,
					    retire_after, sizeof(retire_after));
	if (rc == TSR_OK)
		rc = db_upstream_key_set_provider_id(c, key_id, pk->id);
	if (rc == TSR_OK)
		rc = db_rotation_succeeded(c, upstream_id, version, fp);
	if (rc == TSR_OK) {
		char *detail = dumps(json_pack("{s:i,s:i,s:s,s:s,s:s,s:s,s:s,s:o}", "version", version,
					       "previous_version", old_version, "origin", "provider", "provider",
					       prov->name, "provider_key_id", pk->id, "fingerprint", fp, "trigger",
					       trigger, "previous_retire_after",
					       retire_after[0] ? json_string(retire_after) : json_null()));
		rc = detail ? audit(c, actor, "upstream.key_rotated", "success", cand->name, key_id, detail) : TSR_INTERNAL;
		free(detail);
	}
out:
	sealed_free(&s);
	if (c) {
		rc = db_tx_end(c, own, rc);
		db_release(b->pool, c);
	}
	if (rc != TSR_OK) {
		/* the new key is not stored: take it back at the provider so it does not linger */
		char derr[512] = "";
		tsr_rc drc = prov->delete_key(u, pk->id, derr, sizeof(derr));
		if (drc != TSR_OK)
			log_error("upstream_provider_key_orphaned",
				  "upstream=%s provider_key_id=%s reason=\"not stored (%s) and not deleted (%s)\"",
				  cand->name, pk->id, status_name(rc), derr);
		provider_key_wipe(pk);
		free(pk);
		snprintf(err, sizeof(err), "the new key could not be stored: %s", status_name(rc));
		rotation_failed(b, cand, trigger, err);
		return;
	}
	provider_key_wipe(pk);
	free(pk);
	if (b->gateway)
		upstreams_refresh(b->gateway->ups, upstream_id);
	log_info("upstream_key_rotated",
		 "upstream=%s version=%d previous_version=%d fingerprint=%s origin=provider trigger=%s by=%s", cand->name,
		 version, old_version, fp, trigger, actor);
}

int64_t rotation_upstreams_interval(const struct config *cfg)
{
	(void)cfg;
	return 2;
}

tsr_rc rotation_upstreams_job(struct broker *b, const char *arg)
{
	(void)arg; /* requests are rows in upstream_rotation: any replica's run serves them */
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	struct rotation_candidate *v = NULL;
	int n = 0;
	rc = db_rotation_candidates(c, &v, &n);
	db_release(b->pool, c);
	if (rc != TSR_OK)
		return rc;
	for (int i = 0; i < n && !atomic_load(&b->shutting_down); i++) {
		const struct cfg_upstream *u = cfg_upstream(b->cfg, v[i].name);
		if (!u)
			continue;
		const struct rotation_provider *prov = rotation_provider_for(u);
		if (!prov) {
			/* operator-supplied keys: remind (at most hourly), /metrics shows it overdue */
			if (v[i].due && !v[i].reminded_recently && db_acquire(b->pool, 5000, &c) == TSR_OK) {
				tsr_rc ignored = db_rotation_reminded(c, v[i].upstream_id);
				(void)ignored;
				db_release(b->pool, c);
				log_warn("upstream_key_rotation_overdue",
					 "upstream=%s version=%d age_s=%" PRId64 " reason=\"no provider admin API: supply a "
					 "new key with tessera rotate upstream %s --key-file FILE\"",
					 v[i].name, v[i].key_version, v[i].key_age_s, v[i].name);
			}
			continue;
		}
		if ((v[i].requested || v[i].due || !v[i].has_key) && v[i].may_attempt)
			rotate_one(b, u, prov, &v[i]);
	}
	free(v);
	return TSR_OK;
}

/* ---------- deleting retired provider keys (called by the retire job) ---------- */

void rotation_delete_retired_at_provider(struct broker *b)
{
	struct db_conn *c;
	if (db_acquire(b->pool, 5000, &c) != TSR_OK)
		return;
	struct upstream_key_to_delete *v = NULL;
	int n = 0;
	tsr_rc rc = db_upstream_keys_to_delete(c, &v, &n);
	db_release(b->pool, c);
	if (rc != TSR_OK)
		return;
	for (int i = 0; i < n && !atomic_load(&b->shutting_down); i++) {
		const struct cfg_upstream *u = cfg_upstream(b->cfg, v[i].upstream);
		const struct rotation_provider *prov = u ? rotation_provider_for(u) : NULL;
		char err[512] = "";
		tsr_rc drc;
		if (prov) {
			drc = prov->delete_key(u, v[i].provider_key_id, err, sizeof(err));
		} else {
			snprintf(err, sizeof(err), "upstream %s has no provider admin API configured any more",
				 v[i].upstream);
			drc = TSR_UNAVAILABLE;
		}
		if (db_acquire(b->pool, 5000, &c) != TSR_OK)
			break;
		int failures = 0;
		bool own;
		rc = db_tx_begin(c, &own);
		if (rc == TSR_OK && drc == TSR_OK) {
			rc = db_upstream_key_provider_deleted(c, v[i].key_id);
		} else if (rc == TSR_OK) {
			rc = db_upstream_key_provider_delete_failed(c, v[i].key_id, BACKOFF_BASE_S, BACKOFF_MAX_S,
								    &failures);
			if (rc == TSR_OK)
				rc = db_rotation_count_failure(c, v[i].upstream_id);
		}
		char *detail = dumps(drc == TSR_OK
			? json_pack("{s:i,s:s,s:s,s:s}", "version", v[i].version, "provider_key_id", v[i].provider_key_id,
				    "fingerprint", v[i].fingerprint, "provider", prov ? prov->name : "")
			: json_pack("{s:i,s:s,s:s,s:s,s:i}", "version", v[i].version, "provider_key_id",
				    v[i].provider_key_id, "fingerprint", v[i].fingerprint, "error", err, "attempt",
				    failures));
		if (rc == TSR_OK)
			rc = detail ? audit(c, "rotation", "upstream.key_deleted_at_provider",
					    drc == TSR_OK ? "success" : "failure", v[i].upstream, v[i].key_id, detail)
				    : TSR_INTERNAL;
		free(detail);
		rc = db_tx_end(c, own, rc);
		db_release(b->pool, c);
		if (drc == TSR_OK)
			log_info("upstream_key_deleted_at_provider", "upstream=%s version=%d provider_key_id=%s fingerprint=%s",
				 v[i].upstream, v[i].version, v[i].provider_key_id, v[i].fingerprint);
		else
			log_warn("upstream_key_provider_delete_failed",
				 "upstream=%s version=%d provider_key_id=%s attempt=%d error=\"%s\"", v[i].upstream,
				 v[i].version, v[i].provider_key_id, failures, err);
	}
	free(v);
}

/* ---------- --now and its status ---------- */

tsr_rc rotation_request_now(struct http_req *r, const char *name)
{
	const struct cfg_upstream *u = cfg_upstream(r->b->cfg, name);
	if (u && !rotation_provider_for(u))
		return TSR_CONFLICT;
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	int64_t id = 0;
	char at[48] = "";
	bool own;
	if ((rc = db_tx_begin(c, &own)) == TSR_OK)
		rc = db_upstream_lock(c, name, &id);
	if (rc == TSR_OK && !u)
		rc = TSR_NOT_FOUND; /* in Postgres but not in this replica's config */
	if (rc == TSR_OK)
		rc = db_rotation_request(c, id, r->who.user_name, at, sizeof(at));
	if (rc == TSR_OK) {
		char *detail = dumps(json_pack("{s:s,s:s}", "requested_at", at, "provider", rotation_provider_for(u)->name));
		struct audit_event ev;
		rc = detail ? audit_event_init(&ev, r->who.user_name, "upstream.rotation_requested", "success") : TSR_INTERNAL;
		if (rc == TSR_OK) {
			ev.actor_user_id = r->who.user_id;
			ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
			ev.credential_id = r->who.cred_id;
			ev.target = name;
			ev.upstream = name;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
		free(detail);
	}
	rc = db_tx_end(c, own, rc);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	tsr_rc jr = r->b->jobs ? jobs_request(r->b->jobs, "rotation.upstreams", "") : TSR_UNAVAILABLE;
	(void)jr; /* TSR_CONFLICT: a run is already pending; otherwise the next scheduled run (<= 2 s) serves it */
	log_info("upstream_key_rotation_requested", "upstream=%s by=%s", name, r->who.user_name);
	return http_reply_json(r, 202, json_pack("{s:s,s:s,s:s}", "upstream", name, "requested_at", at, "status",
						 "pending"));
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static tsr_rc h_rotation_status(struct http_req *r)
{
	char name[64];
	if (!http_path_arg(r, 0, name, sizeof(name)) || !*name)
		return http_reply_error(r, TSR_INVALID, "upstream name missing or too long in the path");
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct rotation_status st;
	rc = db_rotation_status(c, name, &st);
	db_release(r->b->pool, c);
	if (rc == TSR_NOT_FOUND)
		return http_reply_error(r, TSR_NOT_FOUND, "no upstream %s", name);
	if (rc != TSR_OK)
		return rc;
	const struct cfg_upstream *u = cfg_upstream(r->b->cfg, name);
	const struct rotation_provider *prov = u ? rotation_provider_for(u) : NULL;
	return http_reply_json(r, 200,
			       json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:i,s:o,s:i,s:o}", "upstream", name, "provider",
					 str_or_null(prov ? prov->name : NULL), "requested_at",
					 str_or_null(st.requested_at), "last_attempt_at", str_or_null(st.last_attempt_at),
					 "last_outcome", str_or_null(st.last_outcome), "last_error",
					 str_or_null(st.last_error), "version", st.last_version, "fingerprint",
					 str_or_null(st.last_fingerprint), "failures", st.failures, "next_attempt_at",
					 str_or_null(st.next_attempt_at)));
}

static const struct route routes[] = {
	{ "GET", "/admin/v1/upstreams/*/rotate", ROLE_ADMIN, h_rotation_status, NULL, NULL },
};
ROUTE_TABLE(rotation_auto_routes, routes);

/* ---------- /metrics ---------- */

tsr_rc rotation_metrics_render(struct broker *b, struct buf *out)
{
	struct db_conn *c;
	if (!b->pool || db_acquire(b->pool, 500, &c) != TSR_OK)
		return TSR_OK; /* metrics without these beat no metrics */
	struct rotation_metric *v = NULL;
	int n = 0;
	tsr_rc rc = db_rotation_metrics(c, &v, &n);
	db_release(b->pool, c);
	if (rc != TSR_OK)
		return TSR_OK;
#define P(...)                                                 \
	do {                                                   \
		if ((rc = buf_printf(out, __VA_ARGS__)) != TSR_OK) \
			goto out;                              \
	} while (0)
	P("# HELP tessera_rotation_failures_total Failed provider calls (key creation or deletion) per upstream, "
	  "all replicas (read from Postgres: aggregate with max).\n# TYPE tessera_rotation_failures_total counter\n");
	for (int i = 0; i < n; i++)
		P("tessera_rotation_failures_total{upstream=\"%s\"} %" PRId64 "\n", v[i].name, v[i].failures_total);
	P("# HELP tessera_rotation_last_success_timestamp_seconds Unix time of the last successful provider "
	  "rotation (0: never).\n# TYPE tessera_rotation_last_success_timestamp_seconds gauge\n");
	for (int i = 0; i < n; i++)
		P("tessera_rotation_last_success_timestamp_seconds{upstream=\"%s\"} %" PRId64 "\n", v[i].name,
		  v[i].last_success);
	P("# HELP tessera_rotation_overdue 1 when the active key of the upstream is older than its rotation_period.\n"
	  "# TYPE tessera_rotation_overdue gauge\n");
	for (int i = 0; i < n; i++)
		P("tessera_rotation_overdue{upstream=\"%s\"} %d\n", v[i].name, v[i].overdue ? 1 : 0);
#undef P
out:
	free(v);
	return rc;
}
