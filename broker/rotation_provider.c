/*
 * rotation_provider.c — see rotation_provider.h.
 *
 * Copies of the secrets and where each is wiped: the admin key (secret_free
 * after the header is built; the header line in the curl_slist is wiped
 * before the list is freed), the response body holding the new key
 * (buf_wipe), the parsed JSON string (wiped before json_decref) and the
 * caller's struct provider_key (provider_key_wipe).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "rotation_provider.h"
#include "../lib/buf.h"

#define RESP_MAX (64 * 1024)

void provider_key_wipe(struct provider_key *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof(*k));
}

/* 1..max-1 printable ASCII characters without spaces. */
static bool printable(const char *s, size_t n, size_t max)
{
	if (!n || n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static void wipe_json_string(json_t *s)
{
	if (json_is_string(s))
		OPENSSL_cleanse((char *)json_string_value(s), json_string_length(s));
}

tsr_rc openai_admin_parse_create(const char *body, size_t n, struct provider_key *out)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		return TSR_INVALID;
	}
	tsr_rc rc = TSR_INVALID;
	json_t *obj = json_object_get(root, "object");
	json_t *id = json_object_get(root, "id");
	json_t *ak = json_object_get(root, "api_key");
	json_t *val = json_object_get(ak, "value");
	if (obj && (!json_is_string(obj) || strcmp(json_string_value(obj), "organization.project.service_account") != 0))
		goto out;
	if (!json_is_string(id) || !printable(json_string_value(id), json_string_length(id), sizeof(out->id)))
		goto out;
	if (!json_is_object(ak) || !json_is_string(val) ||
	    !printable(json_string_value(val), json_string_length(val), sizeof(out->key)))
		goto out;
	memcpy(out->id, json_string_value(id), json_string_length(id));
	memcpy(out->key, json_string_value(val), json_string_length(val));
	rc = TSR_OK;
out:
	wipe_json_string(val);
	json_decref(root);
	if (rc != TSR_OK)
		provider_key_wipe(out);
	return rc;
}

tsr_rc openai_admin_parse_delete(const char *body, size_t n, const char *id)
{
	json_error_t je;
	json_t *root = json_loadb(body, n, 0, &je);
	tsr_rc rc = TSR_INVALID;
	if (json_is_object(root) && json_is_true(json_object_get(root, "deleted"))) {
		json_t *jid = json_object_get(root, "id");
		if (!jid || (json_is_string(jid) && strcmp(json_string_value(jid), id) == 0))
			rc = TSR_OK;
	}
	json_decref(root);
	return rc;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	return buf_append(b, p, size * nmemb) == TSR_OK ? size * nmemb : 0;
}

/* The provider's error code or type, reduced to [A-Za-z0-9_.-] (its message may echo a masked key). */
static void error_code(const struct buf *resp, char *out, size_t n)
{
	out[0] = '\0';
	json_error_t je;
	json_t *root = resp->data ? json_loadb(resp->data, resp->len, 0, &je) : NULL;
	json_t *e = json_object_get(root, "error");
	const char *s = json_string_value(json_object_get(e, "code"));
	if (!s)
		s = json_string_value(json_object_get(e, "type"));
	size_t j = 0;
	for (; s && *s && j + 1 < n; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		    *s == '.' || *s == '-')
			out[j++] = *s;
	out[j] = '\0';
	json_decref(root);
}

/*
 * One admin API call: method on admin_url + path (path's variable parts
 * already escaped), JSON body or NULL. *status: the HTTP status (0 when no
 * answer). resp receives the body (caller wipes it).
 */
static tsr_rc admin_call(const struct cfg_upstream *u, const char *method, const char *path, const char *body,
			 long *status, struct buf *resp, char *err, size_t errlen)
{
	*status = 0;
	char *admin = NULL;
	if (config_secret(NULL, u->admin_key_file, &admin) != TSR_OK || !admin || !*admin) {
		secret_free(admin);
		snprintf(err, errlen, "cannot read admin_key_file of [upstream.%s]", u->name);
		return TSR_UNAVAILABLE;
	}
	char url[2048];
	const char *base = u->admin_url ? u->admin_url : "https://api.openai.com/v1";
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, path) >= sizeof(url)) {
		secret_free(admin);
		snprintf(err, errlen, "admin_url of [upstream.%s] is too long", u->name);
		return TSR_INVALID;
	}
	char hdr[PROVIDER_KEY_MAX + 32];
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", admin);
	secret_free(admin);
	struct curl_slist *h = curl_slist_append(NULL, hdr);
	OPENSSL_cleanse(hdr, sizeof(hdr));
	struct curl_slist *h2 = h ? curl_slist_append(h, "Content-Type: application/json") : NULL;
	CURL *e = curl_easy_init();
	tsr_rc rc = TSR_INTERNAL;
	if (!h2 || !e) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	h = h2;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, u->tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, u->tls_verify ? 2L : 0L);
	if (u->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, u->ca_file);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "tesserad/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
	else
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	CURLcode cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s %s: %s", method, url, curl_easy_strerror(cc));
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	rc = TSR_OK;
out:
	if (e)
		curl_easy_cleanup(e);
	for (struct curl_slist *p = h; p; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(h);
	return rc;
}

/* "/organization/projects/P/service_accounts[/ID]" with P and ID escaped. */
static bool sa_path(const struct cfg_upstream *u, const char *id, char *out, size_t n)
{
	char *p = curl_easy_escape(NULL, u->project_id ? u->project_id : "", 0);
	char *i = id ? curl_easy_escape(NULL, id, 0) : NULL;
	bool ok = p && (!id || i) &&
		  (size_t)snprintf(out, n, "/organization/projects/%s/service_accounts%s%s", p, id ? "/" : "",
				   i ? i : "") < n;
	curl_free(p);
	curl_free(i);
	return ok;
}

static tsr_rc openai_create(const struct cfg_upstream *u, const char *key_name, struct provider_key *out, char *err,
			    size_t errlen)
{
	char path[512];
	if (!sa_path(u, NULL, path, sizeof(path))) {
		snprintf(err, errlen, "project_id of [upstream.%s] is too long", u->name);
		return TSR_INVALID;
	}
	json_t *b = json_pack("{s:s}", "name", key_name);
	char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return TSR_INTERNAL;
	}
	struct buf resp;
	buf_init(&resp, RESP_MAX);
	long status = 0;
	tsr_rc rc = admin_call(u, "POST", path, body, &status, &resp, err, errlen);
	free(body);
	if (rc == TSR_OK && status != 200 && status != 201) {
		char code[64];
		error_code(&resp, code, sizeof(code));
		snprintf(err, errlen, "creating a service account key: HTTP %ld%s%s", status, code[0] ? " " : "", code);
		rc = status == 401 || status == 403 ? TSR_DENIED : TSR_UNAVAILABLE;
	}
	if (rc == TSR_OK && openai_admin_parse_create(resp.data ? resp.data : "", resp.len, out) != TSR_OK) {
		snprintf(err, errlen, "creating a service account key: the answer is not a service account with an "
				      "api_key (HTTP %ld)", status);
		rc = TSR_UNAVAILABLE;
	}
	buf_wipe(&resp);
	return rc;
}

static tsr_rc openai_delete(const struct cfg_upstream *u, const char *id, char *err, size_t errlen)
{
	char path[768];
	if (!sa_path(u, id, path, sizeof(path))) {
		snprintf(err, errlen, "project_id or key id too long");
		return TSR_INVALID;
	}
	struct buf resp;
	buf_init(&resp, RESP_MAX);
	long status = 0;
	tsr_rc rc = admin_call(u, "DELETE", path, NULL, &status, &resp, err, errlen);
	if (rc == TSR_OK && status == 404) {
		rc = TSR_OK; /* already gone */
	} else if (rc == TSR_OK && status != 200) {
		char code[64];
		error_code(&resp, code, sizeof(code));
		snprintf(err, errlen, "deleting service account %s: HTTP %ld%s%s", id, status, code[0] ? " " : "", code);
		rc = status == 401 || status == 403 ? TSR_DENIED : TSR_UNAVAILABLE;
	} else if (rc == TSR_OK && openai_admin_parse_delete(resp.data ? resp.data : "", resp.len, id) != TSR_OK) {
		snprintf(err, errlen, "deleting service account %s: the answer does not say it was deleted", id);
		rc = TSR_UNAVAILABLE;
	}
	buf_wipe(&resp);
	return rc;
}

static const struct rotation_provider openai_admin = { "openai-admin", openai_create, openai_delete };

const struct rotation_provider *rotation_provider_for(const struct cfg_upstream *u)
{
	if (u && u->provider && strcmp(u->provider, "openai-admin") == 0)
		return &openai_admin;
	return NULL;
}
