/*
 * github.c — see github.h.
 *
 * Request policy (request()): before sending, wait out an exhausted primary
 * rate limit (X-RateLimit-Remaining 0 until X-RateLimit-Reset). After a
 * refusal: Retry-After wins; else a 403/429 with Remaining 0 waits for the
 * reset; else a 429 or a "secondary rate limit" 403 backs off from one
 * minute, doubling. 5xx and transport errors back off 1, 2, 4, 8, 16 s.
 * One request is refused at most MAX_LIMITED times in a row before the run
 * gives up, so a broken server cannot keep a sync job forever; waits on a
 * healthy GitHub are bounded by its own reset times (at most an hour).
 *
 * Cache entries hold {"v":GH_CACHE_VERSION,"n":next-url-or-null,"i":[items]}
 * for list pages and {"v":…,"o":object} for single objects.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "github.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define MAX_BODY (32u << 20)
#define MAX_URL 2048
#define MAX_PAGES 100000
#define MAX_LIMITED 20
#define MAX_ERRORS 5
#define TOKEN_RENEW_S 300
#define MAX_ORGS 64

/* ---------- permissions and names ---------- */

static const char *const perm_names[] = { NULL, "read", "triage", "write", "maintain", "admin" };

const char *gh_perm_name(enum gh_perm p)
{
	return p > GH_PERM_NONE && p <= GH_PERM_ADMIN ? perm_names[p] : NULL;
}

enum gh_perm gh_perm_parse(const char *s)
{
	if (!s)
		return GH_PERM_NONE;
	if (strcasecmp(s, "read") == 0 || strcasecmp(s, "pull") == 0)
		return GH_PERM_READ;
	if (strcasecmp(s, "triage") == 0)
		return GH_PERM_TRIAGE;
	if (strcasecmp(s, "write") == 0 || strcasecmp(s, "push") == 0)
		return GH_PERM_WRITE;
	if (strcasecmp(s, "maintain") == 0)
		return GH_PERM_MAINTAIN;
	if (strcasecmp(s, "admin") == 0)
		return GH_PERM_ADMIN;
	return GH_PERM_NONE;
}

enum gh_perm gh_perm_of(json_t *obj)
{
	json_t *p = json_object_get(obj, "permissions");
	if (json_is_object(p)) {
		static const struct { const char *key; enum gh_perm perm; } order[] = {
			{ "admin", GH_PERM_ADMIN }, { "maintain", GH_PERM_MAINTAIN }, { "push", GH_PERM_WRITE },
			{ "triage", GH_PERM_TRIAGE }, { "pull", GH_PERM_READ },
		};
		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
			if (json_is_true(json_object_get(p, order[i].key)))
				return order[i].perm;
	}
	enum gh_perm r = gh_perm_parse(json_string_value(json_object_get(obj, "role_name")));
	if (r == GH_PERM_NONE)
		r = gh_perm_parse(json_string_value(json_object_get(obj, "permission")));
	return r;
}

bool gh_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(isalnum(ch) || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* ---------- Link header ---------- */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

tsr_rc gh_link_next(const char *h, char *out, size_t n)
{
	if (!h)
		return TSR_NOT_FOUND;
	const char *p = skip_ws(h);
	while (*p) {
		if (*p == ',') { /* empty element */
			p = skip_ws(p + 1);
			continue;
		}
		if (*p != '<')
			return TSR_INVALID;
		const char *u = p + 1;
		const char *e = strchr(u, '>');
		if (!e)
			return TSR_INVALID;
		size_t ulen = (size_t)(e - u);
		p = skip_ws(e + 1);
		bool next = false;
		/* link-params: ; name[=value] */
		while (*p == ';') {
			p = skip_ws(p + 1);
			const char *name = p;
			while (*p && *p != '=' && *p != ';' && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			size_t nlen = (size_t)(p - name);
			p = skip_ws(p);
			const char *val = NULL;
			size_t vlen = 0;
			if (*p == '=') {
				p = skip_ws(p + 1);
				if (*p == '"') {
					val = ++p;
					while (*p && *p != '"') {
						if (*p == '\\' && p[1])
							p++;
						p++;
					}
					if (*p != '"')
						return TSR_INVALID;
					vlen = (size_t)(p - val);
					p++;
				} else {
					val = p;
					while (*p && *p != ';' && *p != ',' && *p != ' ' && *p != '\t')
						p++;
					vlen = (size_t)(p - val);
				}
				p = skip_ws(p);
			}
			if (nlen == 3 && strncasecmp(name, "rel", 3) == 0 && val) {
				/* rel may hold several space-separated relation types */
				const char *v = val, *vend = val + vlen;
				while (v < vend) {
					while (v < vend && *v == ' ')
						v++;
					const char *w = v;
					while (w < vend && *w != ' ')
						w++;
					if (w - v == 4 && strncasecmp(v, "next", 4) == 0)
						next = true;
					v = w;
				}
			}
		}
		if (*p && *p != ',')
			return TSR_INVALID;
		if (next) {
			if (ulen == 0)
				return TSR_INVALID;
			if (ulen >= n)
				return TSR_TOO_LARGE;
			memcpy(out, u, ulen);
			out[ulen] = '\0';
			return TSR_OK;
		}
		if (*p == ',')
			p = skip_ws(p + 1);
	}
	return TSR_NOT_FOUND;
}

/* ---------- sleeping ---------- */

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

bool gh_sleep(const atomic_bool *cancel, int64_t ms)
{
	int64_t end = now_ms() + ms;
	for (;;) {
		if (cancel && atomic_load(cancel))
			return false;
		int64_t left = end - now_ms();
		if (left <= 0)
			return true;
		if (left > 100)
			left = 100;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)left * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* ---------- the cache ---------- */

struct centry {
	char *url;
	char *etag;
	char *data;
	uint8_t sha[32];
	bool dirty;
	struct centry *next;
};

struct itoken {
	char org[101];
	char *token;
	int64_t installation_id;
	time_t expires;
};

struct gh_client {
	CURL *curl;
	char *api;              /* api_url without trailing '/' */
	char *token;            /* token auth */
	EVP_PKEY *app_key;
	char *app_id;
	struct itoken tokens[MAX_ORGS];
	int ntokens;
	bool conditional;
	const atomic_bool *cancel;
	long timeout_s;
	char ua[96];
	struct gh_stats stats;
	/* primary rate limit as last reported */
	int64_t rl_remaining;   /* -1 unknown */
	int64_t rl_reset;       /* epoch seconds */
	struct centry **buckets;
	size_t nbuckets, nentries, ndirty;
	/* gh_patch(): the body of the request in flight, and no retry after an answer */
	const char *send_body;
	size_t send_len;
	bool once;
};

static uint64_t strhash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct centry *cache_find(struct gh_client *c, const char *url)
{
	if (!c->nbuckets)
		return NULL;
	for (struct centry *e = c->buckets[strhash(url) % c->nbuckets]; e; e = e->next)
		if (strcmp(e->url, url) == 0)
			return e;
	return NULL;
}

static tsr_rc cache_grow(struct gh_client *c)
{
	if (c->nentries + 1 <= c->nbuckets)
		return TSR_OK;
	size_t nb = c->nbuckets ? c->nbuckets * 2 : 1024;
	struct centry **b = calloc(nb, sizeof(*b));
	if (!b)
		return TSR_INTERNAL;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct centry *e = c->buckets[i];
		while (e) {
			struct centry *nx = e->next;
			size_t k = strhash(e->url) % nb;
			e->next = b[k];
			b[k] = e;
			e = nx;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
	return TSR_OK;
}

/* Insert or replace url's entry; takes ownership of nothing (copies). */
static tsr_rc cache_set(struct gh_client *c, const char *url, const char *etag, const char *data, const uint8_t *sha,
			bool dirty)
{
	struct centry *e = cache_find(c, url);
	char *et = strdup(etag), *d = strdup(data);
	if (!et || !d) {
		free(et);
		free(d);
		return TSR_INTERNAL;
	}
	if (!e) {
		if (cache_grow(c) != TSR_OK || !(e = calloc(1, sizeof(*e))) || !(e->url = strdup(url))) {
			if (e)
				free(e);
			free(et);
			free(d);
			return TSR_INTERNAL;
		}
		size_t k = strhash(url) % c->nbuckets;
		e->next = c->buckets[k];
		c->buckets[k] = e;
		c->nentries++;
	}
	free(e->etag);
	free(e->data);
	e->etag = et;
	e->data = d;
	if (sha)
		memcpy(e->sha, sha, 32);
	else
		memset(e->sha, 0, 32);
	if (dirty && !e->dirty)
		c->ndirty++;
	e->dirty = e->dirty || dirty;
	return TSR_OK;
}

tsr_rc gh_cache_load(struct gh_client *c, const char *url, const char *etag, const char *data)
{
	if (!url || !etag || !*etag || !data)
		return TSR_INVALID;
	return cache_set(c, url, etag, data, NULL, false);
}

tsr_rc gh_cache_each_dirty(struct gh_client *c, gh_cache_fn fn, void *arg)
{
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct centry *e = c->buckets[i]; e; e = e->next) {
			if (!e->dirty)
				continue;
			tsr_rc rc = fn(arg, e->url, e->etag, e->sha, e->data);
			if (rc != TSR_OK)
				return rc;
		}
	return TSR_OK;
}

size_t gh_cache_dirty_count(const struct gh_client *c)
{
	return c->ndirty;
}

/* ---------- client ---------- */

const struct gh_stats *gh_client_stats(const struct gh_client *c)
{
	return &c->stats;
}

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void gh_client_free(struct gh_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->api);
	wipe_free(c->token);
	free(c->app_id);
	EVP_PKEY_free(c->app_key);
	for (int i = 0; i < c->ntokens; i++)
		wipe_free(c->tokens[i].token);
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct centry *e = c->buckets[i];
		while (e) {
			struct centry *nx = e->next;
			free(e->url);
			free(e->etag);
			free(e->data);
			free(e);
			e = nx;
		}
	}
	free(c->buckets);
	free(c);
}

tsr_rc gh_client_new(const struct gh_client_opts *o, struct gh_client **out)
{
	if (!o->api_url || (strncmp(o->api_url, "https://", 8) != 0 && strncmp(o->api_url, "http://", 7) != 0))
		return TSR_INVALID;
	if (!o->token && !(o->app_id && o->app_key_pem))
		return TSR_INVALID;
	struct gh_client *c = calloc(1, sizeof(*c));
	if (!c)
		return TSR_INTERNAL;
	tsr_rc rc = TSR_INTERNAL;
	c->api = strdup(o->api_url);
	if (!c->api)
		goto fail;
	size_t n = strlen(c->api);
	while (n > 0 && c->api[n - 1] == '/')
		c->api[--n] = '\0';
	if (o->token) {
		if (!(c->token = strdup(o->token)))
			goto fail;
	} else {
		BIO *bio = BIO_new_mem_buf(o->app_key_pem, -1);
		c->app_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!c->app_key || !EVP_PKEY_is_a(c->app_key, "RSA")) {
			rc = TSR_INVALID;
			goto fail;
		}
		if (!(c->app_id = strdup(o->app_id)))
			goto fail;
	}
	c->conditional = o->conditional;
	c->cancel = o->cancel;
	c->timeout_s = o->timeout_s > 0 ? o->timeout_s : 60;
	snprintf(c->ua, sizeof(c->ua), "%s", o->user_agent ? o->user_agent : "tessera");
	c->rl_remaining = -1;
	c->curl = curl_easy_init();
	if (!c->curl)
		goto fail;
	*out = c;
	return TSR_OK;
fail:
	gh_client_free(c);
	return rc;
}

/* ---------- one HTTP exchange ---------- */

struct resp {
	long status;
	struct buf body;
	char etag[256];
	char link[4096];
	bool link_too_long;
	int64_t rl_remaining; /* -1 absent */
	int64_t rl_reset;
	int64_t retry_after;  /* -1 absent */
};

static void resp_init(struct resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, MAX_BODY);
	r->rl_remaining = -1;
	r->retry_after = -1;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct resp *r = arg;
	return buf_append(&r->body, p, sz * nm) == TSR_OK ? sz * nm : 0;
}

static int64_t header_int(const char *v)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	return errno || end == v || *end || x < 0 ? -1 : (int64_t)x;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct resp *r = arg;
	size_t n = sz * nm;
	char line[4200];
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue): forget earlier headers */
		r->etag[0] = r->link[0] = '\0';
		r->link_too_long = false;
		r->rl_remaining = r->retry_after = -1;
		r->rl_reset = 0;
		return n;
	}
	const char *colon = memchr(p, ':', n);
	if (!colon)
		return n;
	size_t nlen = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vlen = n - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (nlen == 4 && strncasecmp(p, "link", 4) == 0) {
		if (vlen >= sizeof(r->link))
			r->link_too_long = true;
		else
			snprintf(r->link, sizeof(r->link), "%.*s", (int)vlen, v);
		return n;
	}
	if (vlen >= sizeof(line))
		return n;
	snprintf(line, sizeof(line), "%.*s", (int)vlen, v);
	if (nlen == 4 && strncasecmp(p, "etag", 4) == 0) {
		if (vlen < sizeof(r->etag))
			snprintf(r->etag, sizeof(r->etag), "%s", line);
	} else if (nlen == 21 && strncasecmp(p, "x-ratelimit-remaining", 21) == 0) {
		r->rl_remaining = header_int(line);
	} else if (nlen == 17 && strncasecmp(p, "x-ratelimit-reset", 17) == 0) {
		int64_t x = header_int(line);
		r->rl_reset = x > 0 ? x : 0;
	} else if (nlen == 11 && strncasecmp(p, "retry-after", 11) == 0) {
		r->retry_after = header_int(line);
	}
	return n;
}

enum auth_kind { AUTH_API, AUTH_JWT };

/* Perform one request; *transport_err set when no HTTP answer came back. */
static tsr_rc perform(struct gh_client *c, const char *method, const char *url, const char *auth, const char *inm,
		      struct resp *r)
{
	CURL *h = c->curl;
	curl_easy_reset(h);
	struct curl_slist *hdrs = NULL;
	char line[4200];
	tsr_rc rc = TSR_OK;
	const char *fixed[] = { "Accept: application/vnd.github+json", "X-GitHub-Api-Version: 2022-11-28" };
	for (size_t i = 0; i < 2; i++) {
		struct curl_slist *t = curl_slist_append(hdrs, fixed[i]);
		if (!t) {
			rc = TSR_INTERNAL;
			goto out;
		}
		hdrs = t;
	}
	snprintf(line, sizeof(line), "Authorization: Bearer %s", auth);
	struct curl_slist *t = curl_slist_append(hdrs, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (!t) {
		rc = TSR_INTERNAL;
		goto out;
	}
	hdrs = t;
	if (c->send_body) {
		if (!(t = curl_slist_append(hdrs, "Content-Type: application/json"))) {
			rc = TSR_INTERNAL;
			goto out;
		}
		hdrs = t;
	}
	if (inm) {
		snprintf(line, sizeof(line), "If-None-Match: %s", inm);
		if (!(t = curl_slist_append(hdrs, line))) {
			rc = TSR_INTERNAL;
			goto out;
		}
		hdrs = t;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->ua);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (c->send_body) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->send_body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)c->send_len);
	}
	c->stats.calls++;
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		log_warn("github_transport_error", "error=\"%s\"", curl_easy_strerror(cc));
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
out:
	/* the slist holds the credential: wipe before freeing */
	for (struct curl_slist *s = hdrs; s; s = s->next)
		OPENSSL_cleanse(s->data, strlen(s->data));
	curl_slist_free_all(hdrs);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	return rc;
}

static tsr_rc installation_token(struct gh_client *c, const char *org, const char **out);

/* A JWT for the App (RS256), valid ten minutes minus a minute of clock skew. */
static tsr_rc app_jwt(struct gh_client *c, char *out, size_t n)
{
	time_t now = time(NULL);
	char hdr[64], pl[256], hb[128], pb[400];
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	bool numeric = strspn(c->app_id, "0123456789") == strlen(c->app_id);
	json_t *payload = json_pack("{s:I,s:I,s:o}", "iat", (json_int_t)(now - 60), "exp", (json_int_t)(now + 540),
				    "iss",
				    numeric ? json_integer((json_int_t)strtoll(c->app_id, NULL, 10))
					    : json_string(c->app_id));
	char *ps = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (!ps || strlen(ps) >= sizeof(pl)) {
		free(ps);
		return TSR_INTERNAL;
	}
	snprintf(pl, sizeof(pl), "%s", ps);
	free(ps);
	crypto_b64url((const uint8_t *)hdr, strlen(hdr), hb);
	crypto_b64url((const uint8_t *)pl, strlen(pl), pb);
	char signing[600];
	int sl = snprintf(signing, sizeof(signing), "%s.%s", hb, pb);
	if (sl < 0 || (size_t)sl >= sizeof(signing))
		return TSR_INTERNAL;
	uint8_t sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, c->app_key) == 1 &&
		  EVP_DigestSign(md, sig, &siglen, (const uint8_t *)signing, (size_t)sl) == 1;
	EVP_MD_CTX_free(md);
	if (!ok || 4 * ((siglen + 2) / 3) + (size_t)sl + 2 > n)
		return TSR_INTERNAL;
	snprintf(out, n, "%s.", signing);
	crypto_b64url(sig, siglen, out + strlen(out));
	return TSR_OK;
}

/*
 * Send method url with the retry policy of the file comment. org selects the
 * installation token (App auth); jwt authenticates as the App itself.
 */
static tsr_rc request(struct gh_client *c, const char *method, const char *url, const char *org, bool jwt,
		      const char *inm, struct resp *r)
{
	int errors = 0, limited = 0, secondary = 0;
	bool renewed = false;
	for (;;) {
		if (c->cancel && atomic_load(c->cancel))
			return TSR_UNAVAILABLE;
		/* an exhausted primary limit: wait for its reset instead of being refused */
		if (c->rl_remaining == 0) {
			int64_t wait = ((int64_t)c->rl_reset - (int64_t)time(NULL)) * 1000 + 1000;
			if (wait > 0) {
				if (wait > 3600 * 1000)
					wait = 3600 * 1000;
				log_info("github_rate_limit_wait", "reason=exhausted wait_ms=%lld", (long long)wait);
				int64_t t0 = now_ms();
				bool go = gh_sleep(c->cancel, wait);
				c->stats.wait_ms += now_ms() - t0;
				if (!go)
					return TSR_UNAVAILABLE;
			}
			c->rl_remaining = -1;
		}
		char auth[2048];
		tsr_rc rc;
		if (jwt) {
			rc = app_jwt(c, auth, sizeof(auth));
		} else if (c->token) {
			snprintf(auth, sizeof(auth), "%s", c->token);
			rc = TSR_OK;
		} else {
			const char *tok = NULL;
			rc = installation_token(c, org, &tok);
			if (rc == TSR_OK)
				snprintf(auth, sizeof(auth), "%s", tok);
		}
		if (rc != TSR_OK) {
			OPENSSL_cleanse(auth, sizeof(auth));
			return rc;
		}
		buf_free(&r->body);
		resp_init(r);
		rc = perform(c, method, url, auth, inm, r);
		OPENSSL_cleanse(auth, sizeof(auth));
		if (rc == TSR_INTERNAL)
			return rc;
		int64_t backoff = 0;
		const char *why = NULL;
		if (rc == TSR_OK) {
			if (r->rl_remaining >= 0) {
				c->rl_remaining = r->rl_remaining;
				c->rl_reset = r->rl_reset;
			}
			long s = r->status;
			if (s == 200 || s == 201 || s == 304)
				return TSR_OK;
			if (s == 401 && !jwt && !c->token && !renewed) {
				/* the installation token may have been revoked or expired early */
				for (int i = 0; i < c->ntokens; i++)
					if (strcmp(c->tokens[i].org, org ? org : "") == 0)
						c->tokens[i].expires = 0;
				renewed = true;
				continue;
			}
			if (c->once) /* a change: the caller decides about retrying, with its own backoff */
				return s == 401 || s == 403 ? TSR_DENIED : s == 404 ? TSR_NOT_FOUND : TSR_UNAVAILABLE;
			if (s == 403 || s == 429) {
				c->stats.limited++;
				bool secondary_msg = r->body.data && strstr(r->body.data, "secondary rate limit");
				bool primary = r->rl_remaining == 0;
				if (r->retry_after >= 0) {
					backoff = (r->retry_after > 0 ? r->retry_after : 1) * 1000;
					why = "retry-after";
				} else if (primary) {
					backoff = ((int64_t)r->rl_reset - (int64_t)time(NULL)) * 1000 + 1000;
					if (backoff < 1000)
						backoff = 1000;
					why = "exhausted";
				} else if (s == 429 || secondary_msg) {
					backoff = 60000LL << (secondary < 4 ? secondary : 4);
					secondary++;
					why = "secondary";
				} else {
					log_warn("github_denied", "status=%ld url_path_len=%zu", s, strlen(url));
					return TSR_DENIED;
				}
				if (++limited > MAX_LIMITED) {
					log_error("github_rate_limited", "reason=\"refused %d times in a row\"", limited);
					return TSR_UNAVAILABLE;
				}
			} else if (s == 401) {
				log_warn("github_denied", "status=401");
				return TSR_DENIED;
			} else if (s == 404) {
				return TSR_NOT_FOUND;
			} else if (s >= 500 && s <= 599) {
				why = "server-error";
			} else {
				log_warn("github_unexpected_status", "status=%ld", s);
				return TSR_UNAVAILABLE;
			}
		}
		if (c->once)
			return TSR_UNAVAILABLE;
		if (!backoff) {
			/* transport error or 5xx */
			if (++errors > MAX_ERRORS)
				return TSR_UNAVAILABLE;
			backoff = 1000LL << (errors - 1);
			if (!why)
				why = "transport";
		}
		if (backoff > 3600 * 1000)
			backoff = 3600 * 1000;
		c->stats.retries++;
		log_info("github_rate_limit_wait", "reason=%s status=%ld wait_ms=%lld", why, r->status,
			 (long long)backoff);
		int64_t t0 = now_ms();
		bool go = gh_sleep(c->cancel, backoff);
		c->stats.wait_ms += now_ms() - t0;
		if (!go)
			return TSR_UNAVAILABLE;
	}
}

static time_t parse_time(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

/* The installation token for org, minted or renewed as needed. */
static tsr_rc installation_token(struct gh_client *c, const char *org, const char **out)
{
	const char *o = org ? org : "";
	struct itoken *t = NULL;
	for (int i = 0; i < c->ntokens; i++)
		if (strcmp(c->tokens[i].org, o) == 0)
			t = &c->tokens[i];
	if (t && t->token && t->expires - time(NULL) > TOKEN_RENEW_S) {
		*out = t->token;
		return TSR_OK;
	}
	if (!t) {
		if (c->ntokens >= MAX_ORGS || !gh_name_ok(o))
			return TSR_INVALID;
		t = &c->tokens[c->ntokens++];
		memset(t, 0, sizeof(*t));
		snprintf(t->org, sizeof(t->org), "%s", o);
	}
	char url[MAX_URL];
	struct resp r;
	resp_init(&r);
	tsr_rc rc = TSR_OK;
	json_t *j = NULL;
	if (!t->installation_id) {
		snprintf(url, sizeof(url), "%s/orgs/%s/installation", c->api, o);
		rc = request(c, "GET", url, NULL, true, NULL, &r);
		if (rc == TSR_OK && r.status != 200)
			rc = TSR_UNAVAILABLE;
		if (rc == TSR_OK) {
			j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
			json_t *id = json_object_get(j, "id");
			if (!json_is_integer(id) || json_integer_value(id) <= 0)
				rc = TSR_UNAVAILABLE;
			else
				t->installation_id = (int64_t)json_integer_value(id);
			json_decref(j);
			j = NULL;
		}
		if (rc != TSR_OK) {
			log_error("github_app_no_installation", "org=%s error=%s", o, status_name(rc));
			goto out;
		}
	}
	snprintf(url, sizeof(url), "%s/app/installations/%lld/access_tokens", c->api, (long long)t->installation_id);
	rc = request(c, "POST", url, NULL, true, NULL, &r);
	if (rc == TSR_OK && r.status != 201 && r.status != 200)
		rc = TSR_UNAVAILABLE;
	if (rc == TSR_OK) {
		j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
		const char *tok = json_string_value(json_object_get(j, "token"));
		time_t exp = parse_time(json_string_value(json_object_get(j, "expires_at")));
		if (!tok || !*tok || exp <= 0) {
			rc = TSR_UNAVAILABLE;
		} else {
			wipe_free(t->token);
			t->token = strdup(tok);
			t->expires = exp;
			rc = t->token ? TSR_OK : TSR_INTERNAL;
			c->stats.tokens_minted++;
			log_info("github_installation_token", "org=%s expires_in_s=%lld", o,
				 (long long)(exp - time(NULL)));
		}
		json_decref(j);
	}
	if (rc != TSR_OK)
		log_error("github_app_token_failed", "org=%s error=%s", o, status_name(rc));
out:
	if (r.body.data)
		buf_wipe(&r.body);
	else
		buf_free(&r.body);
	if (rc == TSR_OK)
		*out = t->token;
	return rc;
}

/* ---------- GET with cache ---------- */

static bool same_origin(const struct gh_client *c, const char *url)
{
	size_t n = strlen(c->api);
	return strncmp(url, c->api, n) == 0 && (url[n] == '/' || url[n] == '?');
}

/*
 * GET url conditionally. On success *data is the cache-form JSON
 * ({"v","n"/"o",…}, a new reference) built by build() from the parsed body on
 * a 200, or replayed from the cache on a 304.
 */
typedef json_t *(*build_fn)(struct gh_client *c, json_t *body, const char *next, gh_extract_fn ex);

static tsr_rc get_cached(struct gh_client *c, const char *org, const char *url, gh_extract_fn ex, build_fn build,
			 json_t **data)
{
	struct centry *e = c->conditional ? cache_find(c, url) : NULL;
	struct resp r;
	resp_init(&r);
	tsr_rc rc = request(c, "GET", url, org, false, e ? e->etag : NULL, &r);
	if (rc != TSR_OK)
		goto out;
	if (r.status == 304) {
		if (!e) {
			rc = TSR_UNAVAILABLE; /* we sent no If-None-Match: a broken server */
			goto out;
		}
		c->stats.not_modified++;
		*data = json_loads(e->data, 0, NULL);
		rc = *data ? TSR_OK : TSR_INTERNAL;
		goto out;
	}
	char next[MAX_URL] = "";
	if (r.link_too_long) {
		rc = TSR_INVALID;
		goto out;
	}
	if (r.link[0]) {
		rc = gh_link_next(r.link, next, sizeof(next));
		if (rc == TSR_NOT_FOUND)
			next[0] = '\0';
		else if (rc != TSR_OK)
			goto out;
		rc = TSR_OK;
		if (next[0] && !same_origin(c, next)) {
			log_error("github_bad_link", "reason=\"next page outside the API origin\"");
			rc = TSR_INVALID;
			goto out;
		}
	}
	json_error_t jerr;
	json_t *body = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &jerr);
	if (!body) {
		log_error("github_bad_json", "line=%d", jerr.line);
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	*data = build(c, body, next[0] ? next : NULL, ex);
	json_decref(body);
	if (!*data) {
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	if (r.etag[0]) {
		char *s = json_dumps(*data, JSON_COMPACT);
		uint8_t sha[32];
		crypto_sha256(r.body.data ? r.body.data : "", r.body.len, sha);
		rc = s ? cache_set(c, url, r.etag, s, sha, true) : TSR_INTERNAL;
		free(s);
	}
out:
	buf_free(&r.body);
	if (rc != TSR_OK && *data) {
		json_decref(*data);
		*data = NULL;
	}
	return rc;
}

static json_t *build_page(struct gh_client *c, json_t *body, const char *next, gh_extract_fn ex)
{
	if (!json_is_array(body)) {
		log_error("github_bad_json", "reason=\"expected an array\"");
		return NULL;
	}
	json_t *items = json_array();
	size_t i;
	json_t *it;
	json_array_foreach (body, i, it) {
		/* never drop an item silently: a shorter list reads as a removal */
		json_t *x = ex(it);
		if (!x || json_array_append_new(items, x) != 0) {
			json_decref(items);
			return NULL;
		}
	}
	return json_pack("{s:i,s:s?,s:o}", "v", GH_CACHE_VERSION, "n", next, "i", items);
}

static json_t *build_object(struct gh_client *c, json_t *body, const char *next, gh_extract_fn ex)
{
	if (!json_is_object(body))
		return NULL;
	json_t *x = ex(body);
	return x ? json_pack("{s:i,s:o}", "v", GH_CACHE_VERSION, "o", x) : NULL;
}

tsr_rc gh_list(struct gh_client *c, const char *org, const char *path, gh_extract_fn extract, gh_item_fn on_item,
	       void *arg)
{
	char url[MAX_URL];
	int w = snprintf(url, sizeof(url), "%s%s%sper_page=100", c->api, path, strchr(path, '?') ? "&" : "?");
	if (w < 0 || (size_t)w >= sizeof(url) || path[0] != '/')
		return TSR_INVALID;
	for (int page = 0; page < MAX_PAGES; page++) {
		json_t *data = NULL;
		tsr_rc rc = get_cached(c, org, url, extract, build_page, &data);
		if (rc != TSR_OK)
			return rc;
		json_t *items = json_object_get(data, "i");
		size_t i;
		json_t *it;
		json_array_foreach (items, i, it) {
			if ((rc = on_item(arg, it)) != TSR_OK) {
				json_decref(data);
				return rc;
			}
		}
		const char *next = json_string_value(json_object_get(data, "n"));
		if (!next || strcmp(next, url) == 0) {
			json_decref(data);
			return TSR_OK;
		}
		snprintf(url, sizeof(url), "%s", next);
		json_decref(data);
	}
	log_error("github_too_many_pages", "path=%s", path);
	return TSR_UNAVAILABLE;
}

tsr_rc gh_get(struct gh_client *c, const char *org, const char *path, gh_extract_fn extract, json_t **out)
{
	char url[MAX_URL];
	int w = snprintf(url, sizeof(url), "%s%s", c->api, path);
	if (w < 0 || (size_t)w >= sizeof(url) || path[0] != '/')
		return TSR_INVALID;
	json_t *data = NULL;
	tsr_rc rc = get_cached(c, org, url, extract, build_object, &data);
	if (rc != TSR_OK)
		return rc;
	*out = json_incref(json_object_get(data, "o"));
	json_decref(data);
	return *out ? TSR_OK : TSR_INTERNAL;
}

tsr_rc gh_patch(struct gh_client *c, const char *org, const char *path, const char *body, long *status)
{
	char url[MAX_URL];
	*status = 0;
	int w = snprintf(url, sizeof(url), "%s%s", c->api, path);
	if (w < 0 || (size_t)w >= sizeof(url) || path[0] != '/' || !body)
		return TSR_INVALID;
	struct resp r;
	resp_init(&r);
	c->send_body = body;
	c->send_len = strlen(body);
	c->once = true;
	tsr_rc rc = request(c, "PATCH", url, org, false, NULL, &r);
	c->send_body = NULL;
	c->send_len = 0;
	c->once = false;
	*status = r.status;
	if (rc == TSR_OK && (r.status < 200 || r.status > 299))
		rc = TSR_UNAVAILABLE;
	buf_wipe(&r.body);
	return rc;
}
