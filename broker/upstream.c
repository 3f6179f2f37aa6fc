/*
 * upstream.c — see upstream.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "upstream.h"
#include "../db/upstream.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

/*
 * How often the active key is re-read: half the grace period, between 1 and
 * 30 s, so every replica has switched to a new key well before the old one
 * is retired (and, for provider keys, deleted at the provider).
 */
static int64_t key_refresh_ns(const struct upstream *u)
{
	int64_t s = u->cfg->grace_period / 2;
	s = s < 1 ? 1 : s > 30 ? 30 : s;
	return s * 1000000000LL;
}
#define TOUCH_NS (60LL * 1000000000LL)

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static enum upstream_kind kind_of(const char *s)
{
	if (strcmp(s, "anthropic") == 0)
		return UPSTREAM_ANTHROPIC;
	if (strcmp(s, "azure-openai") == 0)
		return UPSTREAM_AZURE_OPENAI;
	if (strcmp(s, "openai-compatible") == 0)
		return UPSTREAM_OPENAI_COMPATIBLE;
	return UPSTREAM_OPENAI;
}

bool upstream_serves(const struct upstream *u, const char *model)
{
	if (u->cfg->models.n == 0)
		return true;
	for (size_t i = 0; i < u->cfg->models.n; i++)
		if (model && strcmp(u->cfg->models.v[i], model) == 0)
			return true;
	return false;
}

/* Non-secret name of a key: hex of a domain-separated SHA-256, truncated. */
static void key_fingerprint(const char *key, char out[33])
{
	size_t n = strlen(key);
	char *in = malloc(n + 32);
	uint8_t h[SHA256_LEN];
	char hex[65];
	if (!in) {
		snprintf(out, 33, "unknown");
		return;
	}
	memcpy(in, "tessera-upstream-key-fp", 24); /* includes the NUL separator */
	memcpy(in + 24, key, n);
	crypto_sha256(in, n + 24, h);
	OPENSSL_cleanse(in, n + 24);
	free(in);
	crypto_hex(h, sizeof(h), hex);
	memcpy(out, hex, 32);
	out[32] = '\0';
}

/* Read u's active key envelope from Postgres into memory (u->mu held). */
static tsr_rc load_key(struct db_conn *c, struct upstream *u)
{
	struct upstream_key k;
	tsr_rc rc = db_upstream_active_key(c, u->id, &k);
	if (rc == TSR_NOT_FOUND) {
		if (u->has_key)
			sealed_free(&u->sealed);
		u->has_key = false;
		u->key_id = 0;
		u->key_fetched_ns = now_ns();
		return TSR_OK;
	}
	if (rc != TSR_OK)
		return rc;
	if (u->has_key)
		sealed_free(&u->sealed);
	u->sealed = k.sealed;
	u->has_key = true;
	u->key_id = k.id;
	u->key_version = k.version;
	u->key_fetched_ns = now_ns();
	return TSR_OK;
}

/* key_file → a new active key version, unless the upstream already has one. */
static tsr_rc import_key(struct db_conn *c, const struct masterkey *mk, struct upstream *u)
{
	char *key = NULL;
	tsr_rc rc = config_secret(NULL, u->cfg->key_file, &key);
	if (rc != TSR_OK || !key || !*key) {
		fprintf(stderr, "tesserad: cannot read key_file %s of [upstream.%s]\n", u->cfg->key_file, u->name);
		secret_free(key);
		return TSR_INVALID;
	}
	char fp[33];
	key_fingerprint(key, fp);
	struct upstream_key cur;
	rc = db_upstream_active_key(c, u->id, &cur);
	if (rc == TSR_OK) {
		if (strcmp(cur.fingerprint, fp) != 0)
			log_info("upstream_key_file_ignored", "upstream=%s active_version=%d reason=\"an active key exists; "
				 "use tessera rotate upstream\"", u->name, cur.version);
		sealed_free(&cur.sealed);
		secret_free(key);
		return TSR_OK;
	}
	if (rc != TSR_NOT_FOUND) {
		secret_free(key);
		return rc;
	}
	int version = 0;
	rc = db_upstream_key_next_version(c, u->id, &version);
	char aad[128];
	snprintf(aad, sizeof(aad), "upstream_key:%s:%d", u->name, version);
	struct sealed s;
	memset(&s, 0, sizeof(s));
	if (rc == TSR_OK)
		rc = envelope_seal(mk, key, strlen(key), aad, &s);
	secret_free(key);
	int64_t key_id = 0;
	if (rc == TSR_OK)
		rc = db_upstream_key_insert(c, u->id, version, "config", &s, fp, &key_id);
	sealed_free(&s);
	if (rc == TSR_CONFLICT) {
		log_info("upstream_key_import_raced", "upstream=%s", u->name);
		return TSR_OK; /* another replica imported it first */
	}
	if (rc == TSR_OK)
		log_info("upstream_key_imported", "upstream=%s version=%d fingerprint=%s", u->name, version, fp);
	return rc;
}

tsr_rc upstreams_start(struct broker *b, const struct masterkey *mk, struct upstreams **out)
{
	const struct config *cfg = b->cfg;
	struct upstreams *ups = calloc(1, sizeof(*ups));
	if (!ups)
		return TSR_INTERNAL;
	ups->b = b;
	ups->mk = mk;
	ups->v = calloc(cfg->n_upstreams ? cfg->n_upstreams : 1, sizeof(*ups->v));
	const char **names = calloc(cfg->n_upstreams ? cfg->n_upstreams : 1, sizeof(*names));
	tsr_rc rc = ups->v && names ? TSR_OK : TSR_INTERNAL;
	for (size_t i = 0; i < cfg->n_upstreams && rc == TSR_OK; i++) {
		const struct cfg_upstream *cu = &cfg->upstreams[i];
		struct upstream *u = &ups->v[i];
		u->cfg = cu;
		u->name = cu->name;
		names[i] = cu->name;
		u->kind = kind_of(cu->kind_s);
		u->dialect = u->kind == UPSTREAM_ANTHROPIC ? DIALECT_ANTHROPIC : DIALECT_OPENAI;
		const char *q = strchr(cu->base_url, '?');
		size_t blen = q ? (size_t)(q - cu->base_url) : strlen(cu->base_url);
		while (blen && cu->base_url[blen - 1] == '/')
			blen--;
		if (blen >= sizeof(u->base) || (q && strlen(q + 1) >= sizeof(u->query))) {
			fprintf(stderr, "tesserad: base_url of [upstream.%s] is too long\n", u->name);
			rc = TSR_INVALID;
			break;
		}
		memcpy(u->base, cu->base_url, blen);
		u->base[blen] = '\0';
		if (q)
			snprintf(u->query, sizeof(u->query), "%s", q + 1);
		pthread_mutex_init(&u->mu, NULL);
		ups->n++;
		if (cu->key_file && !mk) {
			fprintf(stderr, "tesserad: [upstream.%s] has a key_file but no master key is configured "
					"([server] master_key_file or TESSERA_MASTER_KEY)\n", u->name);
			rc = TSR_INVALID;
		}
	}
	struct db_conn *c = NULL;
	if (rc == TSR_OK)
		rc = db_acquire(b->pool, 10000, &c);
	if (rc == TSR_OK && mk)
		rc = db_master_key_register(c, masterkey_id(mk));
	for (int i = 0; i < ups->n && rc == TSR_OK; i++) {
		struct upstream *u = &ups->v[i];
		rc = db_upstream_sync(c, u->cfg, &u->id);
		if (rc == TSR_OK && u->cfg->key_file)
			rc = import_key(c, mk, u);
		if (rc == TSR_OK) {
			pthread_mutex_lock(&u->mu);
			rc = load_key(c, u);
			pthread_mutex_unlock(&u->mu);
		}
		if (rc == TSR_OK)
			log_info("upstream_configured", "upstream=%s kind=%s region=%s baa=%s on_prem=%s key=%s", u->name,
				 u->cfg->kind_s, u->cfg->region ? u->cfg->region : "-", u->cfg->baa ? "true" : "false",
				 u->cfg->on_prem ? "true" : "false", u->has_key ? "sealed" : "none");
	}
	int removed = 0;
	if (rc == TSR_OK)
		rc = db_upstream_mark_removed(c, names, (size_t)ups->n, &removed);
	if (rc == TSR_OK && removed)
		log_info("upstreams_removed", "count=%d", removed);
	if (c)
		db_release(b->pool, c);
	free(names);
	if (rc != TSR_OK) {
		upstreams_free(ups);
		return rc;
	}
	*out = ups;
	return TSR_OK;
}

void upstreams_free(struct upstreams *ups)
{
	if (!ups)
		return;
	for (int i = 0; i < ups->n; i++) {
		if (ups->v[i].has_key)
			sealed_free(&ups->v[i].sealed);
		pthread_mutex_destroy(&ups->v[i].mu);
	}
	free(ups->v);
	free(ups);
}

tsr_rc upstream_auth_header(struct upstreams *ups, struct upstream *u, char *hdr, size_t n, int64_t *key_id)
{
	hdr[0] = '\0';
	*key_id = 0;
	pthread_mutex_lock(&u->mu);
	if (now_ns() - u->key_fetched_ns > key_refresh_ns(u)) {
		struct db_conn *c;
		u->key_fetched_ns = now_ns(); /* one refresher at a time; failures retry at the next interval */
		if (db_acquire(ups->b->pool, 200, &c) == TSR_OK) {
			if (load_key(c, u) != TSR_OK)
				log_warn("upstream_key_refresh_failed", "upstream=%s", u->name);
			db_release(ups->b->pool, c);
		}
	}
	if (!u->has_key) {
		pthread_mutex_unlock(&u->mu);
		return TSR_OK;
	}
	if (!ups->mk) {
		pthread_mutex_unlock(&u->mu);
		return TSR_UNAVAILABLE;
	}
	char aad[128];
	snprintf(aad, sizeof(aad), "upstream_key:%s:%d", u->name, u->key_version);
	uint8_t *pt = NULL;
	size_t len = 0;
	tsr_rc rc = envelope_open(ups->mk, &u->sealed, aad, &pt, &len);
	*key_id = u->key_id;
	pthread_mutex_unlock(&u->mu);
	if (rc != TSR_OK) {
		log_error("upstream_key_unusable", "upstream=%s error=%s", u->name, status_name(rc));
		return TSR_UNAVAILABLE;
	}
	const char *name = u->kind == UPSTREAM_ANTHROPIC ? "x-api-key: "
			   : u->kind == UPSTREAM_AZURE_OPENAI ? "api-key: "
							       : "Authorization: Bearer ";
	int w = snprintf(hdr, n, "%s%.*s", name, (int)len, (const char *)pt);
	envelope_free_plain(pt, len);
	if (w < 0 || (size_t)w >= n || strpbrk(hdr, "\r\n")) {
		OPENSSL_cleanse(hdr, n);
		hdr[0] = '\0';
		return TSR_INVALID;
	}
	return TSR_OK;
}

void upstream_touch(struct upstreams *ups, struct upstream *u)
{
	int64_t t = now_ns();
	pthread_mutex_lock(&u->mu);
	bool due = t - u->touched_ns > TOUCH_NS;
	if (due)
		u->touched_ns = t;
	pthread_mutex_unlock(&u->mu);
	if (!due)
		return;
	struct db_conn *c;
	if (db_acquire(ups->b->pool, 200, &c) == TSR_OK) {
		tsr_rc ignored = db_upstream_touch(c, u->id);
		(void)ignored;
		db_release(ups->b->pool, c);
	}
}

bool upstreams_keys_fresh(struct upstreams *ups)
{
	int64_t t = now_ns();
	bool fresh = true;
	for (int i = 0; i < ups->n && fresh; i++) {
		struct upstream *u = &ups->v[i];
		pthread_mutex_lock(&u->mu);
		fresh = t - u->key_fetched_ns <= key_refresh_ns(u);
		pthread_mutex_unlock(&u->mu);
	}
	return fresh;
}

void upstream_key_fingerprint(const char *key, char out[33])
{
	key_fingerprint(key, out);
}

void upstreams_refresh(struct upstreams *ups, int64_t upstream_id)
{
	if (!ups)
		return;
	for (int i = 0; i < ups->n; i++) {
		struct upstream *u = &ups->v[i];
		if (u->id != upstream_id)
			continue;
		pthread_mutex_lock(&u->mu);
		u->key_fetched_ns = now_ns() - key_refresh_ns(u) - 1;
		pthread_mutex_unlock(&u->mu);
	}
}
