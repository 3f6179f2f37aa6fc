/*
 * github.h — the GitHub REST client (libcurl) for github.com and GitHub
 * Enterprise Server, with the Link-header parser and GitHub's permission
 * and name rules.
 *
 * (Webhook deliveries, their signature and payloads, are github_hook.h.)
 *
 * The client is built for API economy and for never hammering GitHub:
 *   - one keep-alive connection, requests made one after another;
 *   - per_page=100 and Link rel="next" pagination (only ever followed to
 *     the configured API origin, so the credential cannot leak elsewhere);
 *   - conditional requests: a cache of url -> (ETag, extracted data) that
 *     the caller loads from and saves to Postgres (github_etags); a 304
 *     replays the extracted data, so it costs no rate limit and no parse;
 *   - X-RateLimit-Remaining/Reset honoured by waiting before the request
 *     that would be refused; 403/429 with Retry-After, rate-limit 403s and
 *     secondary limits by waiting and retrying the same request; 5xx and
 *     transport errors retried with backoff; every wait can be cancelled;
 *   - authentication by a token, or as a GitHub App: an RS256 JWT signed
 *     with OpenSSL EVP buys a per-organisation installation token, renewed
 *     five minutes before it expires (and once on a 401).
 * Counts of calls, 304s and time waited are kept in struct gh_stats.
 * Secrets (token, private key, JWT, installation tokens) never reach a log
 * or an error message and are wiped when freed.
 *
 * The client is not thread-safe: one client per sync run, on one thread.
 * github.c depends on lib/ only (no db/, no broker/), so the fuzz targets
 * and tools link it alone.
 */
#ifndef TSR_SYNC_GITHUB_H
#define TSR_SYNC_GITHUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "../lib/status.h"

/* Repository permission levels, in the order of the repo_permission enum. */
enum gh_perm { GH_PERM_NONE = 0, GH_PERM_READ, GH_PERM_TRIAGE, GH_PERM_WRITE, GH_PERM_MAINTAIN, GH_PERM_ADMIN };

/* "read" … "admin"; NULL for GH_PERM_NONE. */
const char *gh_perm_name(enum gh_perm p);
/* read|pull, triage, write|push, maintain, admin (any case); anything else is NONE. */
enum gh_perm gh_perm_parse(const char *s);
/*
 * The permission of a collaborator or team-repository object: its
 * "permissions" booleans (admin, maintain, push, triage, pull) when present,
 * else its "role_name" or "permission" string.
 */
enum gh_perm gh_perm_of(json_t *obj);

/* True for a GitHub login, org, team slug or repository name ([A-Za-z0-9._-], 1..100, not "." or ".."). */
bool gh_name_ok(const char *s);

/*
 * The URL of rel="next" in a Link header (RFC 8288), copied into out[n].
 * TSR_NOT_FOUND when there is none, TSR_INVALID when the header is
 * malformed (a run must fail rather than silently stop paging), TSR_TOO_LARGE
 * when the URL does not fit.
 */
tsr_rc gh_link_next(const char *header, char *out, size_t n) TSR_WUR;

/* ---------- the REST client ---------- */

struct gh_stats {
	long calls;          /* HTTP requests sent (incl. 304s, retries, token requests) */
	long not_modified;   /* of which answered 304 */
	long retries;        /* requests repeated after a limit or a server error */
	long limited;        /* 403/429 rate-limit answers received */
	int64_t wait_ms;     /* time spent waiting on rate limits and backoff */
	long tokens_minted;  /* installation tokens obtained (App auth) */
};

struct gh_client_opts {
	const char *api_url;        /* e.g. https://api.github.com, https://ghe.example/api/v3 */
	const char *token;          /* token auth (copied), or NULL */
	const char *app_id;         /* App auth: id (or client id) … */
	const char *app_key_pem;    /* … and the private key, PEM (copied) */
	bool conditional;           /* send If-None-Match from the cache */
	const atomic_bool *cancel;  /* when it turns true, waits stop and requests fail (may be NULL) */
	long timeout_s;             /* per request; 0: 60 s */
	const char *user_agent;     /* NULL: "tessera" */
};

struct gh_client;

/* Caller frees with gh_client_free(). TSR_INVALID for a bad URL or key. */
tsr_rc gh_client_new(const struct gh_client_opts *o, struct gh_client **out) TSR_WUR;
void gh_client_free(struct gh_client *c);
const struct gh_stats *gh_client_stats(const struct gh_client *c);

/* Shape of the cached data; github_etags rows with another "v" are ignored. */
#define GH_CACHE_VERSION 1

/* Seed the conditional-request cache (from github_etags). data is the JSON text stored with it. */
tsr_rc gh_cache_load(struct gh_client *c, const char *url, const char *etag, const char *data) TSR_WUR;
/* Entries written or replaced since creation, for saving: fn is called once per entry. */
typedef tsr_rc (*gh_cache_fn)(void *arg, const char *url, const char *etag, const uint8_t sha256[32],
			      const char *data);
tsr_rc gh_cache_each_dirty(struct gh_client *c, gh_cache_fn fn, void *arg) TSR_WUR;
size_t gh_cache_dirty_count(const struct gh_client *c);

/*
 * Reduce one API object to the fields the caller uses: a new reference
 * (NULL fails the request: an item is never dropped silently, since a
 * shorter list would read as a removal). It must return the same for the
 * same input: the result is what a later 304 replays.
 */
typedef json_t *(*gh_extract_fn)(json_t *item);
/* Consume one extracted item; anything but TSR_OK stops the listing. */
typedef tsr_rc (*gh_item_fn)(void *arg, json_t *item);

/*
 * GET every page of path (relative to api_url, starting with '/', query
 * allowed; per_page=100 is added), with the installation token of org when
 * authenticating as an App. Each element of each page's array goes through
 * extract, and what remains to on_item, in order. TSR_NOT_FOUND on 404,
 * TSR_DENIED on 401/403 that is not a rate limit, TSR_UNAVAILABLE when
 * GitHub cannot be reached after retries or the wait was cancelled.
 */
tsr_rc gh_list(struct gh_client *c, const char *org, const char *path, gh_extract_fn extract, gh_item_fn on_item,
	       void *arg) TSR_WUR;
/* GET one object; *out is extract(object) (a new reference; caller json_decref()s). */
tsr_rc gh_get(struct gh_client *c, const char *org, const char *path, gh_extract_fn extract, json_t **out) TSR_WUR;

/*
 * PATCH path (relative to api_url) with the JSON text body, with the
 * installation token of org under App auth. Sent once: no retry after an
 * answer or a transport error (the caller backs off), but an expired
 * installation token is renewed once. *status is the HTTP status (0 when no
 * answer came). TSR_OK for 2xx; TSR_DENIED for 401/403, TSR_NOT_FOUND for
 * 404, TSR_UNAVAILABLE otherwise. The body may hold a secret: it is not
 * copied, logged or kept; the response body is wiped.
 */
tsr_rc gh_patch(struct gh_client *c, const char *org, const char *path, const char *body, long *status) TSR_WUR;

/* Sleep up to ms, in small steps, stopping early when *cancel turns true; false if cancelled. */
bool gh_sleep(const atomic_bool *cancel, int64_t ms);

#endif
