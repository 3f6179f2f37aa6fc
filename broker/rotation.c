/*
 * rotation.c — see rotation.h.
 *
 * The new key's plaintext exists only in the request body, the parsed JSON
 * and the sealing call; each copy is wiped before it is freed. The key is
 * never logged or audited: events name it by version and fingerprint.
 * Runs on an HTTP worker: one short transaction (lock the upstream row,
 * next version, demote, insert, audit), no network call.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "rotation.h"
#include "gateway_int.h"
#include "jobs.h"
#include "../db/audit.h"
#include "../db/rewrap.h"
#include "../db/upstream.h"
#include "../lib/log.h"

#define MAX_KEY_LEN 4096

static bool key_ok(const char *k, size_t n)
{
	if (!n || n > MAX_KEY_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)k[i] <= 0x20 || (unsigned char)k[i] >= 0x7f)
			return false;
	return true;
}

/* Best effort: a refused or failed rotation is audited on its own. */
static void audit_failure(struct http_req *r, const char *name, const char *why)
{
	struct db_conn *c;
	if (db_acquire(r->b->pool, 2000, &c) != TSR_OK)
		return;
	json_t *d = json_pack("{s:s}", "error", why);
	char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	struct audit_event ev;
	if (detail && audit_event_init(&ev, r->who.user_name, "upstream.key_rotated", "failure") == TSR_OK) {
		ev.actor_user_id = r->who.user_id;
		ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
		ev.target = name;
		ev.upstream = name;
		ev.credential_id = r->who.cred_id;
		ev.detail = detail;
		tsr_rc ignored = db_audit_append(c, &ev, 1);
		(void)ignored;
	}
	free(detail);
	db_release(r->b->pool, c);
}

static void wipe_json_string(json_t *s)
{
	if (json_is_string(s)) {
		char *p = (char *)json_string_value(s);
		OPENSSL_cleanse(p, json_string_length(s));
	}
}

static tsr_rc h_rotate_upstream(struct http_req *r)
{
	char name[64];
	if (!http_path_arg(r, 0, name, sizeof(name)) || !*name)
		return http_reply_error(r, TSR_INVALID, "upstream name missing or too long in the path");
	json_error_t je;
	json_t *body = r->body.len ? json_loadb(r->body.data, r->body.len, 0, &je) : json_object();
	OPENSSL_cleanse(r->body.data, r->body.len);
	tsr_rc rc;
	if (!json_is_object(body)) {
		json_decref(body);
		return http_reply_error(r, TSR_INVALID, "the body must be a JSON object like {\"key\": \"sk-...\"}");
	}
	json_t *jk = json_object_get(body, "key");
	if (!jk) {
		json_decref(body);
		rc = rotation_request_now(r, name);
		if (rc == TSR_OK)
			return TSR_OK;
		if (rc == TSR_NOT_FOUND) {
			audit_failure(r, name, "no such upstream");
			return http_reply_error(r, TSR_NOT_FOUND, "no upstream %s", name);
		}
		if (rc != TSR_CONFLICT)
			return rc;
		audit_failure(r, name, "no key supplied and no provider admin API configured");
		return http_reply_error(r, TSR_CONFLICT,
					"upstream %s has no provider admin API configured ([upstream.%s] provider): "
					"supply the new key with tessera rotate upstream %s --key-file FILE",
					name, name, name);
	}
	const char *key = json_string_value(jk);
	if (!key || !key_ok(key, json_string_length(jk))) {
		wipe_json_string(jk);
		json_decref(body);
		return http_reply_error(r, TSR_INVALID, "key must be 1 to %d printable ASCII characters without spaces",
					MAX_KEY_LEN);
	}
	if (!r->b->masterkey) {
		wipe_json_string(jk);
		json_decref(body);
		return http_reply_error(r, TSR_UNAVAILABLE, "no master key is configured: keys cannot be sealed");
	}
	char fp[33];
	upstream_key_fingerprint(key, fp);
	struct db_conn *c = NULL;
	struct sealed s;
	memset(&s, 0, sizeof(s));
	int64_t upstream_id = 0, key_id = 0;
	int version = 0, old_version = 0;
	char retire_after[48] = "";
	bool own = false;
	if ((rc = db_acquire(r->b->pool, 5000, &c)) != TSR_OK)
		goto out;
	if ((rc = db_tx_begin(c, &own)) != TSR_OK)
		goto out;
	rc = db_upstream_lock(c, name, &upstream_id);
	if (rc == TSR_OK)
		rc = db_upstream_key_next_version(c, upstream_id, &version);
	if (rc == TSR_OK) {
		char aad[128];
		snprintf(aad, sizeof(aad), "upstream_key:%s:%d", name, version);
		rc = envelope_seal(r->b->masterkey, key, strlen(key), aad, &s);
	}
	if (rc == TSR_OK)
		rc = db_upstream_key_rotate(c, upstream_id, version, "cli", &s, fp, &key_id, &old_version, retire_after,
					    sizeof(retire_after));
	if (rc == TSR_OK) {
		json_t *d = json_pack("{s:i,s:i,s:s,s:s,s:o}", "version", version, "previous_version", old_version,
				      "origin", "cli", "fingerprint", fp, "previous_retire_after",
				      retire_after[0] ? json_string(retire_after) : json_null());
		char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(d);
		struct audit_event ev;
		rc = detail ? audit_event_init(&ev, r->who.user_name, "upstream.key_rotated", "success") : TSR_INTERNAL;
		if (rc == TSR_OK) {
			ev.actor_user_id = r->who.user_id;
			ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
			ev.target = name;
			ev.upstream = name;
			ev.upstream_key_id = key_id;
			ev.credential_id = r->who.cred_id;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
		free(detail);
	}
out:
	wipe_json_string(jk);
	json_decref(body);
	sealed_free(&s);
	if (c) {
		rc = db_tx_end(c, own, rc);
		db_release(r->b->pool, c);
	}
	if (rc == TSR_NOT_FOUND) {
		audit_failure(r, name, "no such upstream");
		return http_reply_error(r, TSR_NOT_FOUND, "no upstream %s", name);
	}
	if (rc != TSR_OK) {
		log_warn("upstream_key_rotate_failed", "upstream=%s error=%s", name, status_name(rc));
		audit_failure(r, name, status_name(rc));
		return rc;
	}
	if (r->b->gateway)
		upstreams_refresh(r->b->gateway->ups, upstream_id);
	log_info("upstream_key_rotated", "upstream=%s version=%d previous_version=%d fingerprint=%s by=%s", name,
		 version, old_version, fp, r->who.user_name);
	return http_reply_json(r, 201, json_pack("{s:s,s:i,s:s,s:i,s:o}", "upstream", name, "version", version,
						 "fingerprint", fp, "previous_version", old_version,
						 "previous_retire_after",
						 retire_after[0] ? json_string(retire_after) : json_null()));
}

int64_t rotation_retire_interval(const struct config *cfg)
{
	(void)cfg;
	return 5;
}

tsr_rc rotation_retire_job(struct broker *b, const char *arg)
{
	(void)arg;
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	struct upstream_key_retired *v = NULL;
	int n = 0;
	bool own;
	rc = db_tx_begin(c, &own);
	if (rc == TSR_OK)
		rc = db_upstream_keys_retire_due(c, &v, &n);
	for (int i = 0; i < n && rc == TSR_OK; i++) {
		char detail[128];
		snprintf(detail, sizeof(detail), "{\"fingerprint\":\"%s\",\"version\":%d}", v[i].fingerprint, v[i].version);
		struct audit_event ev;
		rc = audit_event_init(&ev, "rotation", "upstream.key_retired", "success");
		if (rc == TSR_OK) {
			ev.target = v[i].upstream;
			ev.upstream = v[i].upstream;
			ev.upstream_key_id = v[i].key_id;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
	}
	rc = db_tx_end(c, own, rc);
	db_release(b->pool, c);
	for (int i = 0; i < n && rc == TSR_OK; i++)
		log_info("upstream_key_retired", "upstream=%s version=%d fingerprint=%s", v[i].upstream, v[i].version,
			 v[i].fingerprint);
	free(v);
	if (rc == TSR_OK)
		rotation_delete_retired_at_provider(b);
	return rc;
}


/* ---------- master-key rotation ---------- */

tsr_rc rotation_load_previous_key(const struct config *cfg, struct masterkey *mk)
{
	const char *f = cfg->server.previous_master_key_file;
	if (!f || !*f)
		return TSR_OK;
	if (!mk) {
		fprintf(stderr, "tesserad: [server] previous_master_key_file is set but there is no master key\n");
		return TSR_INVALID;
	}
	struct masterkey *prev = NULL;
	char err[256];
	if (masterkey_load(f, &prev, err, sizeof(err)) != TSR_OK) {
		fprintf(stderr, "tesserad: cannot load [server] previous_master_key_file: %s\n", err);
		return TSR_INVALID;
	}
	if (strcmp(masterkey_id(prev), masterkey_id(mk)) == 0) {
		masterkey_free(prev);
		log_warn("previous_master_key_is_current", "reason=\"previous_master_key_file holds the current key\"");
		return TSR_OK;
	}
	log_info("previous_master_key_loaded", "master_key_id=%.16s", masterkey_id(prev));
	masterkey_set_previous(mk, prev);
	return TSR_OK;
}

/* The held keys that are not the current one (at most two). */
static size_t old_ids(const struct masterkey *mk, const char *ids[2])
{
	const char *cur = masterkey_id(masterkey_current(mk));
	size_t n = 0;
	if (strcmp(masterkey_id(mk), cur) != 0)
		ids[n++] = masterkey_id(mk);
	const char *p = masterkey_previous_id(mk);
	if (p && strcmp(p, cur) != 0)
		ids[n++] = p;
	return n;
}

static tsr_rc audit_simple(struct db_conn *c, struct http_req *r, const char *action, const char *outcome,
			   const char *detail)
{
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, r ? r->who.user_name : "rotation", action, outcome);
	if (rc != TSR_OK)
		return rc;
	if (r) {
		ev.actor_user_id = r->who.user_id;
		ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
		ev.credential_id = r->who.cred_id;
	}
	ev.target = "master-key";
	ev.detail = detail;
	return db_audit_append(c, &ev, 1);
}

static tsr_rc h_master_status(struct http_req *r)
{
	const struct masterkey *mk = r->b->masterkey;
	if (!mk)
		return http_reply_error(r, TSR_UNAVAILABLE, "no master key is configured");
	const char *ids[2];
	size_t n = old_ids(mk, ids);
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	int64_t held = 0, other = 0;
	const char *cur = masterkey_id(masterkey_current(mk));
	rc = db_rewrap_count(c, cur, ids, n, &held, &other);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	return http_reply_json(r, 200, json_pack("{s:s,s:I,s:I,s:b}", "master_key_id", cur, "rows_remaining",
						 (json_int_t)held, "rows_under_unknown_keys", (json_int_t)other,
						 "complete", held == 0));
}

static tsr_rc h_master_rotate(struct http_req *r)
{
	const struct masterkey *mk = r->b->masterkey;
	if (!mk)
		return http_reply_error(r, TSR_UNAVAILABLE, "no master key is configured");
	json_error_t je;
	json_t *body = r->body.len ? json_loadb(r->body.data, r->body.len, 0, &je) : NULL;
	const char *path = json_string_value(json_object_get(body, "new_key_file"));
	if (!path || path[0] != '/') {
		json_decref(body);
		return http_reply_error(r, TSR_INVALID,
					"the body must be {\"new_key_file\": \"/absolute/path\"}: the key itself never "
					"travels over HTTP");
	}
	struct masterkey *next = NULL;
	char err[256];
	tsr_rc rc = masterkey_load(path, &next, err, sizeof(err));
	if (rc != TSR_OK) {
		json_decref(body);
		return http_reply_error(r, TSR_INVALID, "cannot load the new master key: %s", err);
	}
	char new_id[MASTERKEY_ID_LEN + 1];
	snprintf(new_id, sizeof(new_id), "%s", masterkey_id(next));
	json_decref(body);
	struct db_conn *c;
	if ((rc = db_acquire(r->b->pool, 5000, &c)) != TSR_OK) {
		masterkey_free(next);
		return rc;
	}
	/* the id must exist before any row can name it (foreign key) */
	rc = db_master_key_activate(c, new_id);
	if (rc != TSR_OK) {
		masterkey_free(next);
		db_release(r->b->pool, c);
		return rc;
	}
	rc = masterkey_adopt(mk, next); /* takes next */
	char detail[200];
	snprintf(detail, sizeof(detail), "{\"new_master_key_id\":\"%s\"}", new_id);
	if (rc != TSR_OK) {
		tsr_rc ignored = audit_simple(c, r, "master_key.rotation_started", "failure", detail);
		(void)ignored;
		db_release(r->b->pool, c);
		if (rc == TSR_CONFLICT)
			return http_reply_error(r, TSR_CONFLICT, "a rotation to another master key is in progress on "
								 "this tesserad; finish it first");
		return http_reply_error(r, TSR_INVALID, "that key is the current or the previous master key");
	}
	rc = audit_simple(c, r, "master_key.rotation_started", "success", detail);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	log_info("master_key_rotation_started", "new_master_key_id=%.16s by=%s", new_id, r->who.user_name);
	tsr_rc jr = r->b->jobs ? jobs_request(r->b->jobs, "rotation.master_key", "") : TSR_UNAVAILABLE;
	if (jr != TSR_OK && jr != TSR_CONFLICT)
		return http_reply_error(r, TSR_UNAVAILABLE, "cannot start the re-wrap job");
	return h_master_status(r) == TSR_OK && r->status == 200 ? (r->status = 202, TSR_OK) : TSR_INTERNAL;
}

int64_t rotation_master_interval(const struct config *cfg)
{
	(void)cfg;
	return 0; /* on request only */
}

/* Re-wrap one row of t in its own transaction. TSR_NOT_FOUND when t has none left. */
static tsr_rc rewrap_one(struct db_conn *c, const struct masterkey *mk, enum rewrap_table t, const char *const *ids,
			 size_t n)
{
	struct rewrap_row row;
	bool own;
	tsr_rc rc = db_tx_begin(c, &own);
	if (rc != TSR_OK)
		return db_tx_end(c, own, rc);
	rc = db_rewrap_next(c, t, ids, n, &row);
	char old_id[MASTERKEY_ID_LEN + 1];
	if (rc == TSR_OK) {
		snprintf(old_id, sizeof(old_id), "%s", row.sealed.master_key_id);
		rc = envelope_rewrap(mk, mk, &row.sealed);
	}
	if (rc == TSR_OK)
		rc = db_rewrap_store(c, t, &row, old_id);
	rc = db_tx_end(c, own, rc);
	OPENSSL_cleanse(&row, sizeof(row));
	return rc;
}

void rotation_master_resume(struct broker *b)
{
	const char *ids[2];
	if (!b->masterkey || !b->jobs || !old_ids(b->masterkey, ids))
		return;
	tsr_rc rc = jobs_request(b->jobs, "rotation.master_key", "resume");
	if (rc != TSR_OK)
		log_warn("master_key_rotation_not_resumed", "error=%s", status_name(rc));
}

tsr_rc rotation_master_job(struct broker *b, const char *arg)
{
	bool resume = arg && strcmp(arg, "resume") == 0;
	const struct masterkey *mk = b->masterkey;
	if (!mk)
		return TSR_OK;
	const char *ids[2];
	size_t n = old_ids(mk, ids);
	if (!n)
		return TSR_OK;
	const char *d = getenv("TESSERA_TEST_REWRAP_DELAY_MS"); /* test hook: widen the window for a kill */
	long delay_ms = d ? strtol(d, NULL, 10) : 0;
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	int64_t done = 0;
	for (int t = 0; t < REWRAP_N_TABLES && rc == TSR_OK; t++) {
		while (!atomic_load(&b->shutting_down)) {
			rc = rewrap_one(c, mk, (enum rewrap_table)t, ids, n);
			if (rc != TSR_OK)
				break;
			done++;
			if (delay_ms > 0)
				usleep((useconds_t)(delay_ms * 1000));
		}
		if (rc == TSR_NOT_FOUND)
			rc = TSR_OK;
	}
	int64_t held = -1, other = 0;
	const char *cur = masterkey_id(masterkey_current(mk));
	if (rc == TSR_OK)
		rc = db_rewrap_count(c, cur, ids, n, &held, &other);
	if (rc == TSR_OK && held == 0 && resume && done == 0) {
		/* started with previous_master_key_file, nothing was left: no event */
	} else if (rc == TSR_OK && held == 0) {
		char detail[200];
		snprintf(detail, sizeof(detail), "{\"master_key_id\":\"%s\",\"rewrapped\":%lld,\"unknown_keys\":%lld}",
			 cur, (long long)done, (long long)other);
		rc = db_master_key_retire_unused(c);
		if (rc == TSR_OK)
			rc = audit_simple(c, NULL, "master_key.rotated", "success", detail);
		log_info("master_key_rotation_complete", "master_key_id=%.16s rewrapped=%lld rows_under_unknown_keys=%lld",
			 cur, (long long)done, (long long)other);
	} else {
		log_warn("master_key_rotation_incomplete", "rewrapped=%lld remaining=%lld error=%s", (long long)done,
			 (long long)held, status_name(rc));
	}
	db_release(b->pool, c);
	return rc;
}

static const struct route routes[] = {
	{ "POST", "/admin/v1/upstreams/*/rotate", ROLE_ADMIN, h_rotate_upstream, NULL, NULL },
	{ "POST", "/admin/v1/rotate/master-key", ROLE_ADMIN, h_master_rotate, NULL, NULL },
	{ "GET", "/admin/v1/rotate/master-key", ROLE_ADMIN, h_master_status, NULL, NULL },
};
ROUTE_TABLE(rotation_routes, routes);
