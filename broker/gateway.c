/*
 * gateway.c — see gateway.h. The first half of a request, on the HTTP
 * worker: authentication (the routes' own authenticator, so refusals come
 * in the route's dialect), the request's checks in a fixed order — audit log
 * writable, token valid and an access token, body size, JSON with a model,
 * the token's model scope, model_access (the user's roles and groups), an
 * upstream serving the model that the repository's classifications may
 * reach, rate limit, scanner, budget —
 * then the upstream transfer is built and handed to this worker's engine
 * (its libcurl multi handle, upstream_client.h) and the reply deferred (gateway_relay.c does the rest).
 *
 * Every refusal after authentication is one audit record (gateway.request,
 * outcome denied) written before the refusal is sent; nothing is forwarded.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "gateway_int.h"
#include "auditlog.h"
#include "auth.h"
#include "metrics.h"
#include "../lib/crypto.h"
#include "../lib/commalist.h"
#include "../lib/log.h"

#define RESP_MAX (64u << 20)

static enum upstream_dialect route_dialect(const struct http_req *r)
{
	return strncmp(r->url, "/anthropic/", 11) == 0 ? DIALECT_ANTHROPIC : DIALECT_OPENAI;
}

/* The route's path after the dialect prefix ("/chat/completions"). */
static const char *route_suffix(const struct http_req *r)
{
	return r->url + (route_dialect(r) == DIALECT_ANTHROPIC ? strlen("/anthropic/v1") : strlen("/openai/v1"));
}

CURL *gw_easy_get(struct gateway *gw)
{
	pthread_mutex_lock(&gw->easy_mu);
	CURL *e = gw->n_easy ? gw->easy[--gw->n_easy] : NULL;
	pthread_mutex_unlock(&gw->easy_mu);
	return e ? e : curl_easy_init();
}

void gw_easy_put(struct gateway *gw, CURL *e)
{
	curl_easy_reset(e); /* every option back to its default: build_transfer sets what a request needs */
	pthread_mutex_lock(&gw->easy_mu);
	bool kept = gw->n_easy < (int)(sizeof(gw->easy) / sizeof(gw->easy[0]));
	if (kept)
		gw->easy[gw->n_easy++] = e;
	pthread_mutex_unlock(&gw->easy_mu);
	if (!kept)
		curl_easy_cleanup(e);
}

/* ---------- refusals ---------- */

struct refusal {
	const char *model;
	const char *upstream;
	const char *decision;  /* deny | block */
	const char *rule_hits; /* JSON or NULL */
	const char *reason;
	const char *sha256_hex;
};

/* Audit a refused request (outcome denied), then answer it in the route's dialect. */
static tsr_rc refuse(struct http_req *r, int status, const struct refusal *f, const char *fmt, ...)
	TSR_PRINTF(4, 5);
static tsr_rc refuse(struct http_req *r, int status, const struct refusal *f, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct audit_event ev;
	json_t *d = json_pack("{s:s}", "reason", f->reason ? f->reason : msg);
	char *detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (audit_event_init(&ev, r->who.user_name, "gateway.request", "denied") == TSR_OK) {
		ev.actor_addr = r->client_addr;
		ev.target = r->url;
		ev.user_id = r->who.user_id;
		ev.repo_id = r->who.n_repos ? r->who.repo_ids[0] : 0;
		ev.credential_id = r->who.cred_id;
		ev.route = r->url;
		ev.model = f->model;
		ev.upstream = f->upstream;
		ev.decision = f->decision ? f->decision : "deny";
		ev.rule_hits = f->rule_hits;
		ev.req_bytes = 0;
		ev.req_sha256_hex = f->sha256_hex;
		ev.status = status;
		ev.latency_us = (int64_t)(now.tv_sec - r->start.tv_sec) * 1000000 + (now.tv_nsec - r->start.tv_nsec) / 1000;
		ev.detail = detail;
		http_audit_before_reply(r, &ev); /* the refusal goes once its record is durable; the worker does not wait */
	}
	free(detail);
	gw_metrics_request(gw_route_kind(r->url), status, f->upstream, -1, -1);
	return gw_error(r, route_dialect(r), status, "%s", msg);
}

/* ---------- authentication ---------- */

static tsr_rc gw_authn(struct http_req *r, char *why, size_t whylen)
{
	enum upstream_dialect d = route_dialect(r);
	tsr_rc w;
	if (!r->b->gateway) {
		w = gw_error(r, d, 503, "the gateway is not running on this tesserad");
		return w == TSR_OK ? TSR_UNAVAILABLE : w;
	}
	/* fail closed before anything else: no record, no request */
	if (!auditlog_ready(r->b->audit, why, whylen)) {
		w = gw_error(r, d, 503, "%s; refusing requests until it is (nothing was sent upstream)", why);
		return w == TSR_OK ? TSR_UNAVAILABLE : w;
	}
	tsr_rc rc = auth_request(r, why, whylen);
	if (rc != TSR_OK) {
		w = gw_error(r, d, status_http(rc), "%s", why);
		return w == TSR_OK ? rc : w;
	}
	if (strcmp(r->who.kind, "access") != 0) {
		snprintf(why, whylen, "only access tokens may call the gateway (this is a %s credential): "
				      "mint one with `tessera token --repo OWNER/NAME`", r->who.kind);
		auth_audit_denied(r, "access token");
		w = gw_error(r, d, 403, "%s", why);
		return w == TSR_OK ? TSR_DENIED : w;
	}
	return TSR_OK;
}

/*
 * The fast check (http.h): on the worker unless the token must be looked up
 * or policy, or an upstream key, needs a query first; then the blocking pool.
 */
static bool gw_fast(struct http_req *r)
{
	struct gateway *gw = r->b->gateway;
	if (!gw)
		return true; /* answered 503 at once */
	if (!auth_fast(r))
		return false;
	if (!r->who_cached)
		return true; /* no or a malformed credential: refused at once */
	return policy_fast(gw->policy, r->who.user_id) && upstreams_keys_fresh(gw->ups);
}

/* ---------- forwarding ---------- */

/* Is model within the token's model scope ("" = any)? */
static bool model_in_scope(const char *scope, const char *model)
{
	return !*scope || commalist_has(scope, model, strlen(model));
}

/* Tokens to reserve against a daily budget: the output ceiling asked for plus about a token per 4 bytes in. */
static int64_t estimate_tokens(json_t *body, size_t len)
{
	static const char *const keys[] = { "max_tokens", "max_completion_tokens", "max_output_tokens" };
	int64_t out = 0;
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(body, keys[i]);
		if (json_is_integer(v) && json_integer_value(v) > out)
			out = (int64_t)json_integer_value(v);
	}
	return out + (int64_t)(len / 4) + 1;
}

/* rule_hits JSON of the rules that matched ({"us_ssn":2}), or NULL when none did. */
static char *hits_json(const struct scanner *s, const struct scan_result *res)
{
	if (!res->total)
		return NULL;
	json_t *j = json_object();
	for (int i = 0; i < scanner_n_rules(s); i++)
		if (res->hits[i])
			json_object_set_new(j, scanner_rule_name(s, i), json_integer(res->hits[i]));
	char *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return out;
}

static tsr_rc add_header(struct curl_slist **l, const char *h)
{
	struct curl_slist *n = curl_slist_append(*l, h);
	if (!n)
		return TSR_INTERNAL;
	*l = n;
	return TSR_OK;
}

/* Copy a client header to the upstream request when present (no CR/LF: MHD has unfolded it). */
static tsr_rc pass_header(struct http_req *r, struct curl_slist **l, const char *name, const char *dflt)
{
	const char *v = http_header(r, name);
	if (!v)
		v = dflt;
	if (!v)
		return TSR_OK;
	char line[512];
	int w = snprintf(line, sizeof(line), "%s: %s", name, v);
	if (w < 0 || (size_t)w >= sizeof(line) || strpbrk(line, "\r\n"))
		return TSR_OK;
	return add_header(l, line);
}

/* Set up the transfer of g to upstream u (easy handle, headers, callbacks). */
static tsr_rc build_transfer(struct http_req *r, struct gw_req *g)
{
	const struct config *cfg = r->b->cfg;
	struct upstream *u = g->up;
	CURL *e = gw_easy_get(g->gw);
	if (!e)
		return TSR_INTERNAL;
	g->job.easy = e;
	char url[1024];
	int w = snprintf(url, sizeof(url), "%s%s%s%s", u->base, route_suffix(r), u->query[0] ? "?" : "", u->query);
	if (w < 0 || (size_t)w >= sizeof(url))
		return TSR_INVALID;
	char auth[1024];
	tsr_rc rc = upstream_auth_header(g->gw->ups, u, auth, sizeof(auth), &g->key_id);
	if (rc == TSR_OK && auth[0])
		rc = add_header(&g->hdrs, auth);
	OPENSSL_cleanse(auth, sizeof(auth));
	if (rc == TSR_OK)
		rc = add_header(&g->hdrs, "Content-Type: application/json");
	if (rc == TSR_OK)
		rc = add_header(&g->hdrs, "Expect:");
	if (rc == TSR_OK)
		rc = add_header(&g->hdrs, g->want_stream ? "Accept: text/event-stream" : "Accept: application/json");
	if (rc == TSR_OK && g->dialect == DIALECT_ANTHROPIC) {
		rc = pass_header(r, &g->hdrs, "anthropic-version", "2023-06-01");
		if (rc == TSR_OK)
			rc = pass_header(r, &g->hdrs, "anthropic-beta", NULL);
	}
	if (rc != TSR_OK)
		return rc;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, g->body.data ? g->body.data : "");
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)g->body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, g->hdrs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "tesserad/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, gw_on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, g);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)cfg->gateway.connect_timeout);
	/* read timeout: the engine fails a transfer silent for read_timeout (upstream_client.h) */
	g->job.idle_ns = (int64_t)cfg->gateway.read_timeout * 1000000000LL;
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, u->cfg->tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, u->cfg->tls_verify ? 2L : 0L);
	if (u->cfg->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, u->cfg->ca_file);
	return TSR_OK;
}

static tsr_rc h_forward(struct http_req *r)
{
	struct gateway *gw = r->b->gateway;
	const struct config *cfg = r->b->cfg;
	enum upstream_dialect d = route_dialect(r);
	struct refusal f = { 0 };
	uint8_t h[SHA256_LEN];
	char sha_hex[65];
	crypto_sha256(r->body.data ? r->body.data : "", r->body.len, h);
	crypto_hex(h, sizeof(h), sha_hex);
	f.sha256_hex = sha_hex;
	if (r->too_large || r->body.len > (size_t)cfg->gateway.max_body)
		return refuse(r, 413, &f, "request body over the limit of %lld bytes", (long long)cfg->gateway.max_body);
	struct uclient *en = r->en; /* the worker's engine: the transfer runs on its thread */
	if (!en) /* only the main listener's workers drive upstream transfers (http.c) */
		return refuse(r, 503, &f, "this listener does not forward to upstreams");

	json_error_t jerr;
	json_t *body = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		return refuse(r, 400, &f, "the request body is not a JSON object");
	}
	const char *model = json_string_value(json_object_get(body, "model"));
	if (!model || !*model || strlen(model) >= 128) {
		json_decref(body);
		return refuse(r, 400, &f, "the request needs a \"model\"");
	}
	char model_s[128];
	snprintf(model_s, sizeof(model_s), "%s", model);
	f.model = model_s;
	bool want_stream = json_is_true(json_object_get(body, "stream"));
	int64_t est = estimate_tokens(body, r->body.len);
	json_decref(body);

	if (!model_in_scope(r->who.models, model_s))
		return refuse(r, 403, &f, "this token is scoped to the models %s, not %s", r->who.models, model_s);

	char mwhy[512];
	tsr_rc rc = policy_model_ok(gw->policy, model_s, r->who.user_id, r->who.roles, mwhy, sizeof(mwhy));
	if (rc == TSR_UNAVAILABLE)
		return gw_error(r, d, 503, "%s", mwhy);
	if (rc != TSR_OK) {
		f.reason = mwhy;
		return refuse(r, 403, &f, "%s", mwhy);
	}

	/* the token's repositories' classifications, as fresh as the token check itself (no query here) */
	const char *classes = r->who.classes;

	/* an upstream of this dialect serving the model that policy lets this repository reach */
	struct upstream *up = NULL;
	char denied[512] = "";
	int served = 0;
	for (int i = 0; i < gw->ups->n && !up; i++) {
		struct upstream *u = &gw->ups->v[i];
		if (u->dialect != d || !upstream_serves(u, model_s))
			continue;
		served++;
		char why[512];
		if (policy_upstream_ok(gw->policy, classes, u, why, sizeof(why)) == TSR_OK)
			up = u;
		else if (!denied[0]) {
			snprintf(denied, sizeof(denied), "%s", why);
			f.upstream = u->name; /* the record names the upstream the policy kept it from */
		}
	}
	if (!served)
		return refuse(r, 404, &f, "model %s is not served by any %s upstream of this gateway", model_s,
			      d == DIALECT_ANTHROPIC ? "Anthropic" : "OpenAI-compatible");
	if (!up) {
		f.reason = denied;
		return refuse(r, 403, &f, "%s", denied);
	}
	f.upstream = up->name;

	int retry = 0;
	if (policy_rate(gw->policy, r->who.user_id, &retry) == TSR_RATE_LIMITED) {
		r->retry_after = retry;
		return refuse(r, 429, &f, "policy rate_limit: more than %lld requests per minute; retry in %d s",
			      (long long)cfg->gateway.rate_limit, retry);
	}

	/* the data-governance scan of everything that would leave */
	struct scan_result *res = malloc(sizeof(*res));
	if (!res)
		return TSR_INTERNAL;
	scanner_scan(gw->scanner, r->body.data ? r->body.data : "", r->body.len, res);
	gw_metrics_hits(res);
	enum scan_action act[SCAN_MAX_RULES];
	policy_scan_actions(gw->policy, classes, act);
	char *hits = hits_json(gw->scanner, res);
	int blocked = -1;
	bool redact[SCAN_MAX_RULES] = { false }, any_redact = false;
	for (int i = 0; i < scanner_n_rules(gw->scanner); i++) {
		if (!res->hits[i])
			continue;
		if (act[i] == ACT_BLOCK && blocked < 0)
			blocked = i;
		if (act[i] == ACT_REDACT)
			redact[i] = any_redact = true;
	}
	if (any_redact && blocked < 0 && res->spans_truncated) {
		for (int i = 0; i < scanner_n_rules(gw->scanner) && blocked < 0; i++)
			if (redact[i])
				blocked = i; /* too many matches to redact them all: refuse instead */
	}
	if (blocked >= 0) {
		f.decision = "block";
		f.rule_hits = hits;
		const char *rule = scanner_rule_name(gw->scanner, blocked);
		char reason[160];
		snprintf(reason, sizeof(reason), "scanner rule %s", rule);
		f.reason = reason;
		tsr_rc w = refuse(r, 400, &f,
				  "blocked by tessera data-governance rule '%s' (%u match%s in the request); nothing was "
				  "sent upstream",
				  rule, res->hits[blocked], res->hits[blocked] == 1 ? "" : "es");
		free(hits);
		free(res);
		return w;
	}

	struct gw_req *g = calloc(1, sizeof(*g));
	if (!g) {
		free(hits);
		free(res);
		return TSR_INTERNAL;
	}
	pthread_mutex_init(&g->mu, NULL);
	atomic_init(&g->job.refs, 1); /* the HTTP side's */
	atomic_fetch_add(&gw->live, 1);
	g->job.client_fd = http_client_fd(r);
	g->job.done = gw_on_done;
	g->job.hangup = gw_on_hangup;
	g->job.release = gw_release;
	g->gw = gw;
	g->en = en;
	g->r = r;
	g->dialect = d;
	g->up = up;
	g->want_stream = want_stream;
	g->withhold_from = -1;
	g->tokens_in = g->tokens_out = -1;
	g->rule_hits = hits;
	g->decision = any_redact ? "redact" : "allow";
	g->t0 = r->start;
	g->user_id = r->who.user_id;
	g->repo_id = r->who.n_repos ? r->who.repo_ids[0] : 0;
	g->cred_id = r->who.cred_id;
	snprintf(g->route, sizeof(g->route), "%s", r->url);
	snprintf(g->model, sizeof(g->model), "%s", model_s);
	snprintf(g->sha256_hex, sizeof(g->sha256_hex), "%s", sha_hex);
	snprintf(g->classes, sizeof(g->classes), "%s", classes);
	snprintf(g->user_name, sizeof(g->user_name), "%s", r->who.user_name);
	snprintf(g->addr, sizeof(g->addr), "%s", r->client_addr);
	buf_init(&g->body, (size_t)cfg->gateway.max_body + (64u << 10));
	buf_init(&g->resp, RESP_MAX);
	buf_init(&g->line, 1u << 20);

	/* the body that leaves: unchanged, or with redactions (which must keep it valid JSON) */
	if (any_redact) {
		rc = scanner_redact(gw->scanner, r->body.data, r->body.len, res, redact, &g->body);
		json_t *check = rc == TSR_OK ? json_loadb(g->body.data, g->body.len, 0, NULL) : NULL;
		if (!check) {
			int rule = 0;
			while (!redact[rule])
				rule++;
			f.decision = "block";
			f.rule_hits = hits;
			tsr_rc w = refuse(r, 400, &f,
					  "blocked by tessera data-governance rule '%s': the match cannot be redacted in "
					  "place; nothing was sent upstream",
					  scanner_rule_name(gw->scanner, rule));
			free(res);
			ujob_unref(&g->job);
			return w;
		}
		json_decref(check);
	} else {
		rc = buf_append(&g->body, r->body.data ? r->body.data : "", r->body.len);
	}
	free(res);
	if (rc != TSR_OK) {
		ujob_unref(&g->job);
		return rc;
	}

	if (policy_has_budget(gw->policy)) {
		char why[300];
		rc = policy_budget_reserve(gw->policy, r->who.user_id, est, &retry, why, sizeof(why));
		if (rc == TSR_RATE_LIMITED) {
			r->retry_after = retry;
			f.reason = why;
			ujob_unref(&g->job);
			return refuse(r, 429, &f, "%s", why);
		}
		if (rc != TSR_OK) {
			ujob_unref(&g->job);
			return gw_error(r, d, 503, "budget check unavailable: database unreachable");
		}
		g->reserved = est;
	}

	rc = build_transfer(r, g);
	if (rc != TSR_OK) {
		ujob_unref(&g->job);
		return gw_error(r, d, rc == TSR_UNAVAILABLE ? 503 : 500, "cannot prepare the request to upstream '%s'",
				up->name);
	}
	upstream_touch(gw->ups, up);
	/* from here the HTTP side's reference is dropped by gw_on_close */
	if ((rc = http_defer(r, gw_on_close, g)) != TSR_OK) {
		ujob_unref(&g->job);
		return rc;
	}
	g->t_fwd_ns = gw_now_ns();
	if (uclient_add(g->en, &g->job) != TSR_OK) {
		/* shutting down: answer now (the reply is sent when the handler returns) */
		pthread_mutex_lock(&g->mu);
		tsr_rc w = gw_error(r, d, 503, "tesserad is shutting down");
		http_resume(r);
		pthread_mutex_unlock(&g->mu);
		return w;
	}
	return TSR_OK;
}

/*
 * GET /openai/v1/models: what this token may use, answered locally: the
 * models of reachable upstreams, within the token's scope and model_access
 * (a model model_access refuses, or cannot decide without Postgres, is left out).
 */
static tsr_rc h_models(struct http_req *r)
{
	struct gateway *gw = r->b->gateway;
	const char *classes = r->who.classes;
	json_t *data = json_array();
	for (int i = 0; i < gw->ups->n; i++) {
		struct upstream *u = &gw->ups->v[i];
		char why[512];
		if (u->dialect != DIALECT_OPENAI || policy_upstream_ok(gw->policy, classes, u, why, sizeof(why)) != TSR_OK)
			continue;
		for (size_t k = 0; k < u->cfg->models.n; k++) {
			const char *m = u->cfg->models.v[k];
			if (!model_in_scope(r->who.models, m) ||
			    policy_model_ok(gw->policy, m, r->who.user_id, r->who.roles, why, sizeof(why)) != TSR_OK)
				continue;
			bool dup = false;
			for (size_t x = 0; x < json_array_size(data) && !dup; x++)
				dup = strcmp(json_string_value(json_object_get(json_array_get(data, x), "id")), m) == 0;
			if (!dup)
				json_array_append_new(data, json_pack("{s:s,s:s,s:i,s:s}", "id", m, "object", "model",
								      "created", 0, "owned_by", u->name));
		}
	}
	struct audit_event ev;
	if (audit_event_init(&ev, r->who.user_name, "gateway.request", "success") == TSR_OK) {
		ev.actor_addr = r->client_addr;
		ev.target = r->url;
		ev.user_id = r->who.user_id;
		ev.repo_id = r->who.n_repos ? r->who.repo_ids[0] : 0;
		ev.credential_id = r->who.cred_id;
		ev.route = r->url;
		ev.decision = "allow";
		ev.status = 200;
		if (auditlog_append(r->b->audit, &ev) != TSR_OK) {
			json_decref(data);
			return gw_error(r, DIALECT_OPENAI, 503, "the audit record could not be written (tessera fails closed)");
		}
	}
	return http_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static const struct route gw_routes[] = {
	{ "POST", "/openai/v1/chat/completions", ROLE_OWN_LIMIT, h_forward, gw_authn, gw_fast },
	{ "POST", "/openai/v1/responses", ROLE_OWN_LIMIT, h_forward, gw_authn, gw_fast },
	{ "POST", "/openai/v1/embeddings", ROLE_OWN_LIMIT, h_forward, gw_authn, gw_fast },
	/* its audit record is written before the answer, in place: always the blocking pool */
	{ "GET", "/openai/v1/models", ROLE_OWN_LIMIT, h_models, gw_authn, NULL },
	{ "POST", "/anthropic/v1/messages", ROLE_OWN_LIMIT, h_forward, gw_authn, gw_fast },
	{ "POST", "/anthropic/v1/messages/count_tokens", ROLE_OWN_LIMIT, h_forward, gw_authn, gw_fast },
};
ROUTE_TABLE(gateway_routes, gw_routes);

/* ---------- lifecycle ---------- */

tsr_rc gateway_start(struct broker *b, struct masterkey *mk, struct gateway **out)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
	if (!gw)
		return TSR_INTERNAL;
	gw->b = b;
	gw->mk = mk;
	pthread_mutex_init(&gw->easy_mu, NULL);
	char err[300];
	const struct config *cfg = b->cfg;
	tsr_rc rc = scanner_new((const char *const *)cfg->policy.patterns.v, cfg->policy.patterns.n, &gw->scanner, err,
				sizeof(err));
	if (rc != TSR_OK) {
		fprintf(stderr, "tesserad: [policy] patterns: %s\n", err);
		goto fail;
	}
	rc = policy_new(b, gw->scanner, &gw->policy, err, sizeof(err));
	if (rc != TSR_OK) {
		fprintf(stderr, "tesserad: %s\n", err);
		goto fail;
	}
	rc = upstreams_start(b, mk, &gw->ups);
	if (rc != TSR_OK)
		goto fail;
	*out = gw;
	return TSR_OK;
fail:
	gateway_stop(gw);
	return rc;
}

void gateway_stop(struct gateway *gw)
{
	if (!gw)
		return;
	/* requests cut by the stop still finish their audit records (the writer runs until later) */
	for (int i = 0; i < 500 && atomic_load(&gw->live) > 0; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
	if (atomic_load(&gw->live) > 0) {
		log_error("gateway_stop_leaked", "requests=%d", atomic_load(&gw->live));
		return; /* leak rather than free what they still use */
	}
	upstreams_free(gw->ups);
	policy_free(gw->policy);
	scanner_free(gw->scanner);
	while (gw->n_easy)
		curl_easy_cleanup(gw->easy[--gw->n_easy]);
	pthread_mutex_destroy(&gw->easy_mu);
	free(gw);
}
