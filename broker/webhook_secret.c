/*
 * webhook_secret.c — see webhook_secret.h: the per-process cache of
 * decrypted webhook secrets, the rotation route and the retire job.
 *
 * Lock order: a cache's mutex, then (while loading) a pooled connection;
 * nothing else is taken under it. The cache is process-wide (one deployment
 * has one HR and one GitHub webhook), not per struct broker.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "webhook_secret.h"
#include "../db/audit.h"
#include "../db/secrets.h"
#include "../lib/crypto.h"
#include "../lib/log.h"
#include "../lib/masterkey.h"

#define GENERATED_BYTES 32 /* 256 bits, sent as 64 hex digits */

struct cache {
	pthread_mutex_t mu;
	bool loaded;
	int64_t loaded_ms; /* monotonic */
	int n;             /* 0: no stored version, the file rules */
	struct webhook_secret_version v[WEBHOOK_SECRET_MAX];
};

static struct cache caches[WEBHOOK_KINDS] = { { .mu = PTHREAD_MUTEX_INITIALIZER },
					      { .mu = PTHREAD_MUTEX_INITIALIZER } };
static atomic_bool superseded_logged[WEBHOOK_KINDS];

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void db_name(enum webhook_kind k, char *out, size_t n)
{
	snprintf(out, n, "webhook.%s", webhook_kind_name(k));
}

static const char *file_of(const struct config *cfg, enum webhook_kind k)
{
	return k == WEBHOOK_HR ? cfg->hr.webhook_secret_file : cfg->github.webhook_secret_file;
}

static int64_t overlap_of(const struct config *cfg, enum webhook_kind k)
{
	return k == WEBHOOK_HR ? cfg->hr.webhook_secret_overlap : cfg->github.webhook_secret_overlap;
}

static void cache_clear(struct cache *ch)
{
	struct webhook_secret_set s = { .n = ch->n };
	memcpy(s.v, ch->v, sizeof(s.v));
	webhook_secret_set_free(&s);
	memset(ch->v, 0, sizeof(ch->v));
	ch->n = 0;
}

void webhook_secret_invalidate(enum webhook_kind k)
{
	pthread_mutex_lock(&caches[k].mu);
	caches[k].loaded = false;
	pthread_mutex_unlock(&caches[k].mu);
}

/* Read the stored versions of k and open them; replaces ch's content on success. Mutex held. */
static tsr_rc cache_load(struct broker *b, enum webhook_kind k, struct cache *ch)
{
	char name[32];
	db_name(k, name, sizeof(name));
	struct db_conn *c;
	struct db_secret *rows = NULL;
	int n = 0;
	tsr_rc rc = db_acquire(b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	rc = db_secrets_usable(c, name, WEBHOOK_SECRET_MAX, &rows, &n);
	db_release(b->pool, c);
	if (rc != TSR_OK)
		return rc;
	struct webhook_secret_version fresh[WEBHOOK_SECRET_MAX];
	int m = 0;
	memset(fresh, 0, sizeof(fresh));
	if (n && !b->masterkey) {
		log_error("webhook_secret_no_master_key", "name=%s reason=\"stored versions need [server] master_key_file\"",
			  name);
		rc = TSR_UNAVAILABLE;
	}
	for (int i = 0; i < n && rc == TSR_OK; i++) {
		char aad[64];
		uint8_t *pt = NULL;
		size_t len = 0;
		db_secret_aad(name, rows[i].version, aad, sizeof(aad));
		if (envelope_open(b->masterkey, &rows[i].sealed, aad, &pt, &len) != TSR_OK) {
			log_error("webhook_secret_unopenable", "name=%s version=%d", name, rows[i].version);
			continue;
		}
		fresh[m].secret = malloc(len + 1);
		if (!fresh[m].secret) {
			envelope_free_plain(pt, len);
			rc = TSR_INTERNAL;
			break;
		}
		memcpy(fresh[m].secret, pt, len);
		fresh[m].secret[len] = '\0';
		envelope_free_plain(pt, len);
		fresh[m].len = len;
		fresh[m].version = rows[i].version;
		fresh[m].active = rows[i].active;
		fresh[m].not_after_ms = rows[i].not_after_ms;
		m++;
	}
	db_secrets_free(rows, n);
	if (rc == TSR_OK && n && !m)
		rc = TSR_UNAVAILABLE;
	if (rc != TSR_OK) {
		struct webhook_secret_set s = { .n = m };
		memcpy(s.v, fresh, sizeof(s.v));
		webhook_secret_set_free(&s);
		return rc;
	}
	cache_clear(ch);
	memcpy(ch->v, fresh, sizeof(fresh));
	ch->n = m;
	return TSR_OK;
}

tsr_rc webhook_secret_current(struct broker *b, enum webhook_kind k, struct webhook_secret_set *out)
{
	memset(out, 0, sizeof(*out));
	struct cache *ch = &caches[k];
	const char *file = file_of(b->cfg, k);
	pthread_mutex_lock(&ch->mu);
	int64_t now = clock_ms(CLOCK_MONOTONIC);
	if (!ch->loaded || now - ch->loaded_ms >= WEBHOOK_SECRET_TTL_MS) {
		tsr_rc lr = cache_load(b, k, ch);
		if (lr != TSR_OK && !ch->loaded) {
			pthread_mutex_unlock(&ch->mu);
			log_error("webhook_secret_unavailable", "name=%s reason=\"%s\"", webhook_kind_name(k),
				  status_name(lr));
			return TSR_UNAVAILABLE;
		}
		if (lr != TSR_OK) /* keep serving what was read last; windows still end on time */
			log_warn("webhook_secret_reload_failed", "name=%s reason=\"%s\"", webhook_kind_name(k),
				 status_name(lr));
		ch->loaded = true;
		ch->loaded_ms = now;
	}
	bool stored = ch->n > 0;
	tsr_rc rc = stored ? webhook_secret_pick(ch->v, ch->n, clock_ms(CLOCK_REALTIME), out) : TSR_OK;
	pthread_mutex_unlock(&ch->mu);
	if (stored) {
		if (rc == TSR_OK && file && !atomic_exchange(&superseded_logged[k], true))
			log_info("webhook_secret_file_superseded",
				 "name=%s file=%s reason=\"rotated secrets in the database are used; the file is ignored\"",
				 webhook_kind_name(k), file);
		if (rc == TSR_OK && !out->n)
			rc = TSR_UNAVAILABLE;
		return rc;
	}
	if (!file)
		return TSR_NOT_FOUND;
	char *secret = NULL;
	if (config_secret(NULL, file, &secret) != TSR_OK || !*secret) {
		secret_free(secret);
		log_error("webhook_secret_unreadable", "name=%s file=%s", webhook_kind_name(k), file);
		return TSR_UNAVAILABLE;
	}
	out->v[0].version = 0;
	out->v[0].active = true;
	out->v[0].len = strlen(secret);
	out->v[0].secret = malloc(out->v[0].len + 1);
	if (out->v[0].secret) {
		memcpy(out->v[0].secret, secret, out->v[0].len + 1);
		out->n = 1;
	}
	secret_free(secret);
	return out->n ? TSR_OK : TSR_INTERNAL;
}

/* --- rotation --------------------------------------------------------- */

struct rotation {
	int version, prev_version;
	char prev_not_after[40];
	bool file_imported;
};

/* Seal secret as version of name and insert it (active, or retiring for overlap). */
static tsr_rc seal_insert(struct db_conn *c, const struct masterkey *mk, const char *name, int version, bool active,
			  int64_t overlap, const char *secret, size_t len, const char *by, struct rotation *rot)
{
	char aad[64];
	struct sealed s = { 0 };
	db_secret_aad(name, version, aad, sizeof(aad));
	tsr_rc rc = envelope_seal(masterkey_current(mk), secret, len, aad, &s);
	if (rc == TSR_OK)
		rc = db_secret_insert(c, name, version, active, overlap, &s, by, active ? &rot->prev_version : NULL,
				      active ? rot->prev_not_after : NULL, sizeof(rot->prev_not_after));
	sealed_free(&s);
	return rc;
}

static tsr_rc rotate_tx(struct http_req *r, enum webhook_kind k, const char *secret, bool generated, int64_t overlap,
			struct rotation *rot)
{
	struct broker *b = r->b;
	char name[32];
	db_name(k, name, sizeof(name));
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	bool has_active = false;
	int next = 0;
	bool own;
	rc = db_tx_begin(c, &own);
	if (rc == TSR_OK)
		rc = db_secret_lock(c, name, &next, &has_active);
	/* First rotation: the file's secret becomes a retiring version, so it keeps working for the overlap. */
	const char *file = file_of(b->cfg, k);
	int imported = 0;
	if (rc == TSR_OK && !has_active && file) {
		char *old = NULL;
		if (config_secret(NULL, file, &old) == TSR_OK && *old) {
			rc = seal_insert(c, b->masterkey, name, next, false, overlap, old, strlen(old), "webhook_secret_file",
					 rot);
			imported = next++;
		} else {
			log_warn("webhook_secret_file_unreadable", "name=%s file=%s reason=\"not kept for the overlap\"",
				 webhook_kind_name(k), file);
		}
		secret_free(old);
	}
	if (rc == TSR_OK)
		rc = seal_insert(c, b->masterkey, name, next, true, overlap, secret, strlen(secret), r->who.user_name, rot);
	rot->version = next;
	if (rc == TSR_OK && imported) {
		/* no active version was demoted: the previous secret is the file's, stored with now + overlap */
		rot->file_imported = true;
		rot->prev_version = imported;
		time_t t = time(NULL) + (time_t)overlap;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(rot->prev_not_after, sizeof(rot->prev_not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (rc == TSR_OK) {
		json_t *d = json_pack("{s:s,s:i,s:o,s:o,s:I,s:s,s:b}", "name", webhook_kind_name(k), "version", rot->version,
				      "previous_version", rot->prev_version ? json_integer(rot->prev_version) : json_null(),
				      "previous_not_after",
				      rot->prev_not_after[0] ? json_string(rot->prev_not_after) : json_null(), "overlap_s",
				      (json_int_t)overlap, "source", generated ? "generated" : "operator", "file_imported",
				      rot->file_imported);
		char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(d);
		struct audit_event ev;
		rc = detail ? audit_event_init(&ev, r->who.user_name, "webhook_secret.rotated", "success") : TSR_INTERNAL;
		if (rc == TSR_OK) {
			ev.actor_user_id = r->who.user_id;
			ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
			ev.target = webhook_kind_name(k);
			ev.credential_id = r->who.cred_id;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
		free(detail);
	}
	rc = db_tx_end(c, own, rc);
	db_release(b->pool, c);
	return rc;
}

/* POST /admin/v1/webhook-secrets/NAME/rotate  {"secret"?: "...", "overlap"?: "24h"} */
static tsr_rc h_rotate(struct http_req *r)
{
	const char *rest = http_route_rest(r);
	const char *slash = strchr(rest, '/');
	char kname[16] = "";
	enum webhook_kind k;
	if (slash && strcmp(slash, "/rotate") == 0 && (size_t)(slash - rest) < sizeof(kname))
		snprintf(kname, sizeof(kname), "%.*s", (int)(slash - rest), rest);
	if (!webhook_kind_parse(kname, &k))
		return http_reply_error(r, TSR_NOT_FOUND, "no such webhook secret (hr or github): POST "
							  "/admin/v1/webhook-secrets/NAME/rotate");
	if (!r->b->masterkey)
		return http_reply_error(r, TSR_UNAVAILABLE,
					"rotated webhook secrets are sealed under the master key: configure [server] "
					"master_key_file");
	json_t *body = NULL;
	if (r->body.len) {
		json_error_t je;
		body = json_loadb(r->body.data, r->body.len, 0, &je);
		if (!json_is_object(body)) {
			json_decref(body);
			return http_reply_error(r, TSR_INVALID,
						"the body must be a JSON object like {\"secret\": \"…\", \"overlap\": \"24h\"}");
		}
	}
	tsr_rc rc = TSR_OK;
	int64_t overlap = overlap_of(r->b->cfg, k);
	json_t *jo = json_object_get(body, "overlap"), *js = json_object_get(body, "secret");
	if (json_is_string(jo)) {
		if (config_parse_duration(json_string_value(jo), &overlap) != TSR_OK || overlap < 0 ||
		    overlap > 30 * 86400) {
			json_decref(body);
			return http_reply_error(r, TSR_INVALID, "overlap must be a duration from 0s to 30d, like \"24h\"");
		}
	} else if (jo) {
		json_decref(body);
		return http_reply_error(r, TSR_INVALID, "overlap must be a string like \"24h\"");
	}
	if (!js && k == WEBHOOK_GITHUB && webhook_secret_push_configured(r->b->cfg)) {
		/* tesserad sets the new secret at GitHub itself: the job does it, the CLI polls the outcome */
		json_decref(body);
		return webhook_secret_push_request(r, overlap);
	}
	char secret[WEBHOOK_SECRET_MAX_LEN + 1];
	bool generated = !js;
	if (js) {
		if (!json_is_string(js) || !webhook_secret_acceptable(json_string_value(js), json_string_length(js))) {
			json_decref(body);
			return http_reply_error(r, TSR_INVALID,
						"secret must be %d to %d printable characters without spaces",
						WEBHOOK_SECRET_MIN_LEN, WEBHOOK_SECRET_MAX_LEN);
		}
		snprintf(secret, sizeof(secret), "%s", json_string_value(js));
	} else {
		uint8_t raw[GENERATED_BYTES];
		rc = crypto_random(raw, sizeof(raw));
		if (rc == TSR_OK)
			crypto_hex(raw, sizeof(raw), secret);
		else
			secret[0] = '\0';
		OPENSSL_cleanse(raw, sizeof(raw));
	}
	if (js) /* wipe the copy the parsed body holds */
		OPENSSL_cleanse((char *)json_string_value(js), json_string_length(js));
	json_decref(body);
	struct rotation rot = { 0 };
	if (rc == TSR_OK)
		rc = rotate_tx(r, k, secret, generated, overlap, &rot);
	webhook_secret_invalidate(k);
	if (rc != TSR_OK)
		goto out;
	log_info("webhook_secret_rotated", "name=%s version=%d previous=%d overlap_s=%" PRId64 " by=%s",
		 webhook_kind_name(k), rot.version, rot.prev_version, overlap, r->who.user_name);
	/* a generated secret leaves tesserad exactly once, in this reply */
	json_t *reply = json_pack("{s:s,s:i,s:b,s:o,s:o,s:b}", "name", webhook_kind_name(k), "version", rot.version,
				  "generated", generated, "previous_version",
				  rot.prev_version ? json_integer(rot.prev_version) : json_null(), "previous_not_after",
				  rot.prev_not_after[0] ? json_string(rot.prev_not_after) : json_null(), "file_superseded",
				  file_of(r->b->cfg, k) != NULL);
	if (reply && generated)
		json_object_set_new(reply, "secret", json_string(secret));
	rc = http_reply_json(r, 201, reply);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

static const struct route routes[] = {
	{ "POST", "/admin/v1/webhook-secrets/*", ROLE_ADMIN, h_rotate, NULL, NULL },
	{ "GET", "/admin/v1/webhook-secrets/*", ROLE_ADMIN, webhook_secret_status, NULL, NULL },
};
ROUTE_TABLE(webhook_secret_routes, routes);

/* --- the retire job ----------------------------------------------------- */

int64_t webhook_secret_retire_interval(const struct config *cfg)
{
	(void)cfg;
	return 5;
}

tsr_rc webhook_secret_retire_job(struct broker *b, const char *arg)
{
	(void)arg;
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	struct db_secret_retired *v = NULL;
	int n = 0;
	bool own;
	rc = db_tx_begin(c, &own);
	if (rc == TSR_OK)
		rc = db_secrets_retire_due(c, &v, &n);
	for (int i = 0; i < n && rc == TSR_OK; i++) {
		json_t *d = json_pack("{s:s,s:i}", "name", v[i].name, "version", v[i].version);
		char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(d);
		if (!detail) {
			rc = TSR_INTERNAL;
			break;
		}
		struct audit_event ev;
		rc = audit_event_init(&ev, "rotation", "webhook_secret.retired", "success");
		if (rc == TSR_OK) {
			ev.target = strncmp(v[i].name, "webhook.", 8) == 0 ? v[i].name + 8 : v[i].name;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
		free(detail);
	}
	rc = db_tx_end(c, own, rc);
	db_release(b->pool, c);
	if (rc == TSR_OK)
		for (int i = 0; i < n; i++)
			log_info("webhook_secret_retired", "name=%s version=%d", v[i].name, v[i].version);
	free(v);
	return rc;
}
