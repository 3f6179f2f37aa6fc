/*
 * upstream.h — the LLM upstreams tesserad may forward to, and their keys.
 *
 * What it owns: the in-memory table of [upstream.NAME] sections (kind, base
 * URL, region, BAA, on-prem, models, TLS settings), importing them into the
 * upstreams table at start, importing each key_file once, sealed with the
 * master key (AES-256-GCM envelope, AAD "upstream_key:NAME:VERSION"), and
 * producing the credential header for one request. The plaintext key
 * exists only inside upstream_auth_header(): opened from the envelope,
 * formatted into the caller's buffer, wiped. The active key is re-read from
 * Postgres every grace_period / 2 (1 to 30 s), so a rotation on any replica
 * is picked up before the old key is retired;
 * if Postgres is unreachable the envelope already held keeps serving.
 * What it does not own: choosing an upstream (policy.c) or talking HTTP
 * (upstream_client.c).
 * Thread-safe: the table is immutable after upstreams_start(); each
 * upstream's key envelope is guarded by its own mutex (a leaf lock).
 */
#ifndef TSR_UPSTREAM_H
#define TSR_UPSTREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "broker.h"
#include "../lib/masterkey.h"

enum upstream_dialect { DIALECT_OPENAI, DIALECT_ANTHROPIC };

struct upstream {
	int64_t id;                 /* upstreams.id */
	const struct cfg_upstream *cfg;
	const char *name;
	enum upstream_kind kind;
	enum upstream_dialect dialect;
	char base[512];             /* base_url without its query string, no trailing '/' */
	char query[256];            /* base_url's query string (azure api-version), "" if none */
	/* key envelope, under mu */
	pthread_mutex_t mu;
	bool has_key;
	int64_t key_id;
	int key_version;
	struct sealed sealed;
	int64_t key_fetched_ns;
	int64_t touched_ns;
};

struct upstreams {
	struct broker *b;
	const struct masterkey *mk; /* NULL when none is configured (only keyless upstreams then) */
	struct upstream *v;
	int n;
};

/*
 * Build the table from b->cfg, upsert the upstream rows, mark unconfigured
 * ones removed, import key files (needs mk). Fails (with a message on
 * stderr) when an upstream has a key_file but there is no master key, or
 * the file cannot be read. Caller frees with upstreams_free().
 */
tsr_rc upstreams_start(struct broker *b, const struct masterkey *mk, struct upstreams **out) TSR_WUR;
void upstreams_free(struct upstreams *u);

/* Does u serve model? (an empty models list serves any) */
bool upstream_serves(const struct upstream *u, const char *model);

/*
 * The credential header for one request to u ("Authorization: Bearer K",
 * "x-api-key: K", "api-key: K"), written into hdr (wipe it with
 * OPENSSL_cleanse after use). *key_id receives the key's row id. Without a
 * key (openai-compatible servers that need none) hdr is "" and *key_id 0.
 * TSR_UNAVAILABLE when the key cannot be opened (wrong master key).
 */
tsr_rc upstream_auth_header(struct upstreams *ups, struct upstream *u, char *hdr, size_t n, int64_t *key_id) TSR_WUR;
/* Would upstream_auth_header() use every upstream's cached envelope, without re-reading it? */
bool upstreams_keys_fresh(struct upstreams *ups);

/* Non-secret fingerprint of a provider key (32 hex digits), as stored in upstream_keys.fingerprint. */
void upstream_key_fingerprint(const char *key, char out[33]);
/*
 * Forget the cached key envelope of the upstream with row id upstream_id, so
 * the next request re-reads the active key (after a rotation on this
 * replica; other replicas pick it up within grace_period / 2, at most 30 s). No-op for ups NULL.
 */
void upstreams_refresh(struct upstreams *ups, int64_t upstream_id);

/* Note a use of u in the upstreams row, at most once a minute (best effort, caller's thread). */
void upstream_touch(struct upstreams *ups, struct upstream *u);

#endif
