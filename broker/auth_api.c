/*
 * auth_api.c — see auth_api.h.
 *
 * Login: failed attempts are counted per user and per source address in
 * auth_throttle (shared by replicas); a blocked key answers 429 with
 * Retry-After before any directory or repo-host call is made. Every login,
 * success or failure, is an audit event. A user who is inactive in tessera
 * is refused even when the directory or the repo host accepts them.
 * Tokens are returned once in the reply body and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "auth_api.h"
#include "../db/audit.h"
#include "auditlog.h"
#include "tokencache.h"
#include "../db/credential.h"
#include "../db/throttle.h"
#include "../db/users.h"
#include "../lib/crypto.h"
#include "../lib/log.h"
#include "../sync/ldap.h"

#define USER_FAIL_LIMIT 5
#define ADDR_FAIL_LIMIT 20

static json_t *body_json(struct http_req *r)
{
	json_error_t e;
	if (!r->body.len)
		return NULL;
	json_t *j = json_loadb(r->body.data, r->body.len, 0, &e);
	return json_is_object(j) ? j : (json_decref(j), NULL);
}

static void audit_login_failure(struct http_req *r, const char *who, const char *method, const char *reason)
{
	json_t *d = json_pack("{s:s,s:s}", "method", method, "reason", reason);
	char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	struct audit_event ev;
	struct db_conn *c;
	tsr_rc rc = audit_event_init(&ev, who && *who ? who : "anonymous", "auth.login", "failure");
	if (rc == TSR_OK && detail && (rc = db_acquire(r->b->pool, 2000, &c)) == TSR_OK) {
		ev.actor_addr = r->client_addr;
		ev.target = who;
		ev.detail = detail;
		rc = db_audit_append(c, &ev, 1);
		db_release(r->b->pool, c);
	}
	if (rc != TSR_OK || !detail)
		log_error("audit_write_failed", "action=auth.login outcome=failure");
	free(detail);
}

static tsr_rc reply_throttled(struct http_req *r, int retry)
{
	tsr_rc rc = http_reply_error(r, TSR_RATE_LIMITED, "too many failed logins: try again in %d s", retry);
	r->retry_after = retry;
	return rc;
}

/* Check the throttle for the address and (if given) the user. */
static tsr_rc throttled(struct http_req *r, const char *user_key, int *retry)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	char key[300];
	snprintf(key, sizeof(key), "addr:%s", r->client_addr);
	rc = db_throttle_check(c, key, retry);
	if (rc == TSR_OK && user_key)
		rc = db_throttle_check(c, user_key, retry);
	db_release(r->b->pool, c);
	return rc;
}

static void count_failure(struct http_req *r, const char *user_key)
{
	struct db_conn *c;
	if (db_acquire(r->b->pool, 2000, &c) != TSR_OK)
		return;
	char key[300];
	snprintf(key, sizeof(key), "addr:%s", r->client_addr);
	tsr_rc a = db_throttle_fail(c, key, ADDR_FAIL_LIMIT);
	tsr_rc b = user_key ? db_throttle_fail(c, user_key, USER_FAIL_LIMIT) : TSR_OK;
	if (a != TSR_OK || b != TSR_OK)
		log_warn("throttle_write_failed", "addr=%s", r->client_addr);
	db_release(r->b->pool, c);
}

/* Identity established: refuse inactive users, else create and return a session. */
static tsr_rc open_session(struct http_req *r, const struct user_row *u, const char *method, const char *user_key)
{
	if (!u->active) {
		audit_login_failure(r, u->user_name, method, "user deactivated");
		return http_reply_error(r, TSR_UNAUTHENTICATED, "user %s is deactivated", u->user_name);
	}
	char tok[TOKEN_LEN + 1];
	uint8_t h[SHA256_LEN];
	tsr_rc rc = crypto_token_new(tok);
	if (rc != TSR_OK)
		return rc;
	crypto_sha256(tok, strlen(tok), h);
	struct db_conn *c;
	int64_t id = 0;
	char expires[40] = "";
	if ((rc = db_acquire(r->b->pool, 2000, &c)) == TSR_OK) {
		rc = db_session_create(c, u->id, u->user_name, h, r->b->cfg->tokens.session_ttl, method, r->client_addr,
				       http_header(r, "User-Agent"), &id, expires);
		if (rc == TSR_OK && user_key) {
			tsr_rc ignored = db_throttle_clear(c, user_key);
			(void)ignored;
		}
		db_release(r->b->pool, c);
	}
	if (rc == TSR_OK)
		rc = http_reply_json(r, 200, json_pack("{s:s,s:s,s:I,s:s,s:s}", "token", tok, "user", u->user_name,
						      "session_id", (json_int_t)id, "expires_at", expires, "method",
						      method));
	OPENSSL_cleanse(tok, sizeof(tok));
	OPENSSL_cleanse(h, sizeof(h));
	return rc;
}

static tsr_rc h_login_ldap(struct http_req *r)
{
	json_t *j = body_json(r);
	const char *user = json_string_value(json_object_get(j, "user"));
	const char *pw = json_string_value(json_object_get(j, "password"));
	tsr_rc rc;
	if (!user || !*user || !pw) {
		json_decref(j);
		return http_reply_error(r, TSR_INVALID, "expected JSON {\"user\": …, \"password\": …}");
	}
	if (!r->b->cfg->ldap.uri) {
		json_decref(j);
		return http_reply_error(r, TSR_NOT_FOUND, "LDAP login is not configured ([ldap] uri)");
	}
	char ukey[300], lower[260];
	snprintf(lower, sizeof(lower), "%s", user);
	for (char *p = lower; *p; p++)
		*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	snprintf(ukey, sizeof(ukey), "user:%s", lower);
	int retry = 0;
	rc = throttled(r, ukey, &retry);
	if (rc == TSR_RATE_LIMITED) {
		audit_login_failure(r, user, "ldap", "throttled"); /* user points into j: audit first */
		json_decref(j);
		return reply_throttled(r, retry);
	}
	if (rc != TSR_OK) {
		json_decref(j);
		return rc;
	}
	char dn[1024];
	rc = ldap_authenticate(r->b->cfg, user, pw, dn, sizeof(dn));
	OPENSSL_cleanse((char *)pw, strlen(pw)); /* jansson's copy; the body buffer is wiped at completion */
	if (rc != TSR_OK) {
		const char *why = rc == TSR_DENIED ? "account disabled in the directory"
				  : rc == TSR_UNAVAILABLE ? "directory unavailable"
							   : "bad user name or password";
		if (rc == TSR_UNAUTHENTICATED || rc == TSR_DENIED)
			count_failure(r, ukey);
		audit_login_failure(r, user, "ldap", why);
		json_decref(j);
		return http_reply_error(r, rc == TSR_DENIED ? TSR_UNAUTHENTICATED : rc, "%s", why);
	}
	struct user_row u;
	struct db_conn *c;
	if ((rc = db_acquire(r->b->pool, 2000, &c)) == TSR_OK) {
		rc = db_user_by_name(c, user, &u);
		db_release(r->b->pool, c);
	}
	if (rc == TSR_NOT_FOUND) {
		audit_login_failure(r, user, "ldap", "not synced into tessera yet");
		tsr_rc w = http_reply_error(r, TSR_UNAUTHENTICATED,
					    "user %s is not known to tessera yet (run a directory sync)", user);
		json_decref(j); /* user points into j */
		return w;
	}
	json_decref(j);
	if (rc != TSR_OK)
		return rc;
	return open_session(r, &u, "ldap", ukey);
}

/* ---------- GitHub token exchange ---------- */

struct sink {
	struct buf b;
};

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
	struct buf *b = user;
	return buf_append(b, p, size * n) == TSR_OK ? size * n : 0;
}

/* Ask the repo host who owns token; *login on success. */
static tsr_rc github_whoami(const struct config *cfg, const char *token, char *login, size_t n)
{
	tsr_rc rc = TSR_UNAVAILABLE;
	struct buf body;
	buf_init(&body, 1u << 20);
	char url[1024], auth[1200];
	snprintf(url, sizeof(url), "%s/user", cfg->github.api_url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/vnd.github+json");
	h = curl_slist_append(h, "X-GitHub-Api-Version: 2022-11-28");
	CURL *cu = curl_easy_init();
	if (cu && h) {
		curl_easy_setopt(cu, CURLOPT_URL, url);
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(cu, CURLOPT_USERAGENT, "tesserad/" PACKAGE_VERSION);
		curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(cu, CURLOPT_WRITEDATA, &body);
		curl_easy_setopt(cu, CURLOPT_TIMEOUT, 10L);
		curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
		if (curl_easy_perform(cu) == CURLE_OK) {
			long status = 0;
			curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
			if (status == 200) {
				json_error_t e;
				json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, &e);
				const char *l = json_string_value(json_object_get(j, "login"));
				rc = l && *l ? TSR_OK : TSR_UNAVAILABLE;
				if (l)
					snprintf(login, n, "%s", l);
				json_decref(j);
			} else if (status == 401 || status == 403) {
				rc = TSR_UNAUTHENTICATED;
			}
		}
	}
	if (cu)
		curl_easy_cleanup(cu);
	curl_slist_free_all(h);
	OPENSSL_cleanse(auth, sizeof(auth));
	buf_free(&body);
	return rc;
}

static tsr_rc h_login_github(struct http_req *r)
{
	json_t *j = body_json(r);
	const char *token = json_string_value(json_object_get(j, "token"));
	if (!token || !*token || strlen(token) > 512) {
		json_decref(j);
		return http_reply_error(r, TSR_INVALID, "expected JSON {\"token\": \"<GitHub token>\"}");
	}
	int retry = 0;
	tsr_rc rc = throttled(r, NULL, &retry);
	if (rc == TSR_RATE_LIMITED) {
		json_decref(j);
		audit_login_failure(r, NULL, "github", "throttled");
		return reply_throttled(r, retry);
	}
	if (rc != TSR_OK) {
		json_decref(j);
		return rc;
	}
	char login[128] = "";
	rc = github_whoami(r->b->cfg, token, login, sizeof(login));
	OPENSSL_cleanse((char *)token, strlen(token));
	json_decref(j); /* the GitHub token is wiped with the JSON document's memory */
	if (rc != TSR_OK) {
		if (rc == TSR_UNAUTHENTICATED)
			count_failure(r, NULL);
		const char *why = rc == TSR_UNAUTHENTICATED ? "the repo host refused the token"
							    : "the repo host is unavailable";
		audit_login_failure(r, NULL, "github", why);
		return http_reply_error(r, rc, "%s", why);
	}
	struct user_row u;
	struct db_conn *c;
	if ((rc = db_acquire(r->b->pool, 2000, &c)) == TSR_OK) {
		rc = db_user_by_repo_login(c, login, &u);
		db_release(r->b->pool, c);
	}
	if (rc == TSR_NOT_FOUND) {
		count_failure(r, NULL);
		audit_login_failure(r, login, "github", "repo-host login not matched to a user");
		return http_reply_error(r, TSR_UNAUTHENTICATED, "GitHub login %s is not matched to a tessera user",
					login);
	}
	if (rc != TSR_OK)
		return rc;
	return open_session(r, &u, "github", NULL);
}

/* ---------- access tokens ---------- */

static tsr_rc h_token(struct http_req *r)
{
	if (strcmp(r->who.kind, "access") == 0)
		return http_reply_error(r, TSR_DENIED, "an access token cannot mint tokens: log in (tessera login)");
	json_t *j = body_json(r);
	const char *repo = json_string_value(json_object_get(j, "repo"));
	json_t *jm = json_object_get(j, "models");
	json_t *jt = json_object_get(j, "ttl");
	tsr_rc rc = TSR_OK;
	const char *models[16];
	size_t nm = 0;
	int64_t ttl = r->b->cfg->tokens.default_ttl;
	if (!repo || !strchr(repo, '/')) {
		json_decref(j);
		return http_reply_error(r, TSR_INVALID, "expected {\"repo\": \"OWNER/NAME\"}");
	}
	if (jm && !json_is_array(jm)) {
		json_decref(j);
		return http_reply_error(r, TSR_INVALID, "'models' must be an array of model names");
	}
	size_t i;
	json_t *v;
	json_array_foreach (jm, i, v) {
		if (!json_is_string(v) || nm == 16) {
			json_decref(j);
			return http_reply_error(r, TSR_INVALID, "'models' must hold at most 16 model names");
		}
		models[nm++] = json_string_value(v);
	}
	if (jt) {
		if (json_is_integer(jt))
			ttl = json_integer_value(jt);
		else if (!json_is_string(jt) || config_parse_duration(json_string_value(jt), &ttl) != TSR_OK) {
			json_decref(j);
			return http_reply_error(r, TSR_INVALID, "'ttl' must be a duration like 15m or seconds");
		}
		if (ttl < 60 || ttl > r->b->cfg->tokens.max_ttl) {
			json_decref(j);
			return http_reply_error(r, TSR_INVALID, "'ttl' must be from 60 s to max_ttl (%lld s)",
						(long long)r->b->cfg->tokens.max_ttl);
		}
	}
	struct repo_access ra;
	struct db_conn *c;
	if ((rc = db_acquire(r->b->pool, 2000, &c)) != TSR_OK) {
		json_decref(j);
		return rc;
	}
	rc = db_repo_access(c, r->who.user_id, repo, &ra);
	char why[300] = "";
	char tok[TOKEN_LEN + 1] = "";
	uint8_t h[SHA256_LEN];
	int64_t id = 0;
	char expires[40] = "";
	if (rc == TSR_NOT_FOUND) {
		snprintf(why, sizeof(why), "no repository %s is known to tessera", repo);
		rc = TSR_DENIED;
	} else if (rc == TSR_OK && !ra.permission[0]) {
		snprintf(why, sizeof(why), "user %s has no permission on %s", r->who.user_name, ra.full_name);
		rc = TSR_DENIED;
	} else if (rc == TSR_OK && (rc = crypto_token_new(tok)) == TSR_OK) {
		crypto_sha256(tok, strlen(tok), h);
		rc = db_token_mint(c, &r->who, ra.repo_id, ra.full_name, models, nm, h, ttl, r->client_addr,
				   http_header(r, "User-Agent"), &id, expires, why, sizeof(why));
	}
	db_release(r->b->pool, c);
	/* the token leaves tesserad only after its audit event is durable; refusals are evidence too */
	json_t *ms = json_array();
	for (size_t k = 0; k < nm; k++)
		json_array_append_new(ms, json_string(models[k]));
	json_t *d = json_pack("{s:s,s:O,s:I,s:s}", "repo", rc == TSR_OK ? ra.full_name : repo, "models", ms, "ttl_s",
			      (json_int_t)ttl, rc == TSR_OK ? "expires_at" : "reason", rc == TSR_OK ? expires : why);
	char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	if (rc == TSR_OK || rc == TSR_DENIED) {
		struct audit_event ev;
		tsr_rc arc = detail ? audit_event_init(&ev, r->who.user_name, "token.mint",
						       rc == TSR_OK ? "success" : "denied")
				    : TSR_INTERNAL;
		if (arc == TSR_OK) {
			ev.actor_user_id = r->who.user_id;
			ev.user_id = r->who.user_id;
			ev.actor_addr = r->client_addr;
			ev.repo_id = rc == TSR_OK ? ra.repo_id : 0;
			ev.credential_id = rc == TSR_OK ? id : 0;
			ev.target = rc == TSR_OK ? ra.full_name : repo;
			ev.detail = detail;
			arc = auditlog_append(r->b->audit, &ev);
		}
		if (arc != TSR_OK && rc == TSR_OK) {
			if (db_acquire(r->b->pool, 2000, &c) == TSR_OK) {
				if (db_token_mint_undo(c, id) != TSR_OK)
					log_error("mint_undo_failed", "credential_id=%lld", (long long)id);
				db_release(r->b->pool, c);
			}
			rc = TSR_UNAVAILABLE;
			snprintf(why, sizeof(why), "the audit log is unavailable: no token was issued");
		} else if (arc != TSR_OK) {
			log_error("audit_write_failed", "action=token.mint outcome=denied");
		}
	}
	free(detail);
	if (rc == TSR_OK) {
		rc = http_reply_json(r, 200, json_pack("{s:s,s:I,s:s,s:s,s:O,s:I,s:s}", "token", tok, "id", (json_int_t)id,
						      "user", r->who.user_name, "repo", ra.full_name, "models", ms,
						      "ttl", (json_int_t)ttl, "expires_at", expires));
	} else if (rc == TSR_DENIED || rc == TSR_UNAVAILABLE) {
		rc = http_reply_error(r, rc, "%s", why);
	}
	json_decref(ms);
	OPENSSL_cleanse(tok, sizeof(tok));
	json_decref(j);
	return rc;
}

static tsr_rc h_logout(struct http_req *r)
{
	if (strcmp(r->who.kind, "session") != 0)
		return http_reply_error(r, TSR_INVALID, "logout ends a session; this credential is a %s", r->who.kind);
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	int n = 0;
	rc = db_credential_revoke(c, r->who.cred_id, r->who.user_id, r->who.user_name, "logout", &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	tokencache_evict_cred(r->b->tokens, r->who.cred_id);
	return http_reply_json(r, 200, json_pack("{s:b,s:i}", "logged_out", 1, "revoked", n));
}

static const struct route routes_auth[] = {
	{ "POST", "/auth/v1/login/ldap", ROLE_PUBLIC, h_login_ldap, NULL, NULL },
	{ "POST", "/auth/v1/login/github", ROLE_PUBLIC, h_login_github, NULL, NULL },
	{ "POST", "/auth/v1/token", ROLE_DEVELOPER, h_token, NULL, NULL },
	{ "POST", "/auth/v1/logout", ROLE_ANY, h_logout, NULL, NULL },
};
ROUTE_TABLE(auth_routes, routes_auth);
