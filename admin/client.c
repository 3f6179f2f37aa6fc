/*
 * client.c — see client.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <ini.h>
#include <openssl/crypto.h>

#include "client.h"
#include "../lib/buf.h"
#include "../lib/config.h"

#define MAX_REPLY_BYTES (64u << 20)

static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	char **url = user;
	if ((section[0] == '\0' || strcmp(section, "tessera") == 0) && strcmp(name, "url") == 0) {
		free(*url);
		*url = strdup(value);
	}
	return 1;
}

char *client_config_path(const char *leaf)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	char buf[4096];
	if (xdg && *xdg)
		snprintf(buf, sizeof(buf), "%s/tessera/%s", xdg, leaf);
	else if (home && *home)
		snprintf(buf, sizeof(buf), "%s/.config/tessera/%s", home, leaf);
	else
		return NULL;
	return strdup(buf);
}

tsr_rc client_init(struct client *c, const char *url_flag)
{
	memset(c, 0, sizeof(*c));
	const char *env = getenv("TESSERA_URL");
	if (url_flag)
		c->url = strdup(url_flag);
	else if (env && *env)
		c->url = strdup(env);
	else {
		char *conf = client_config_path("config");
		if (conf)
			ini_parse(conf, conf_handler, &c->url);
		free(conf);
		if (!c->url)
			c->url = strdup("http://127.0.0.1:8080");
	}
	if (!c->url)
		return TSR_INTERNAL;
	size_t n = strlen(c->url);
	while (n && c->url[n - 1] == '/')
		c->url[--n] = '\0';

	const char *tok = getenv("TESSERA_TOKEN");
	if (tok && *tok) {
		c->token = strdup(tok);
	} else {
		char *sess = client_config_path("session");
		if (sess) {
			struct stat st;
			if (stat(sess, &st) == 0 && (st.st_mode & 077)) {
				fprintf(stderr, "tessera: %s is readable by others (mode %03o); run: chmod 600 %s\n", sess,
					st.st_mode & 0777, sess);
				free(sess);
				return TSR_DENIED;
			}
			char *t = NULL;
			if (config_secret(NULL, sess, &t) == TSR_OK)
				c->token = t;
		}
		free(sess);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return TSR_OK;
}

void client_free(struct client *c)
{
	free(c->url);
	secret_free(c->token);
	c->url = c->token = NULL;
	curl_global_cleanup();
}

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
	struct buf *b = user;
	return buf_append(b, p, size * n) == TSR_OK ? size * n : 0;
}

tsr_rc client_call(struct client *c, const char *method, const char *path, json_t *body, json_t **reply,
		   long *http_status)
{
	*reply = NULL;
	tsr_rc rc = TSR_INTERNAL;
	struct buf in;
	buf_init(&in, MAX_REPLY_BYTES);
	char *payload = NULL;
	struct curl_slist *hdr = NULL;
	char *auth = NULL;
	CURL *h = curl_easy_init();
	if (!h)
		goto out;
	size_t ulen = strlen(c->url) + strlen(path) + 1;
	char *url = malloc(ulen);
	if (!url)
		goto out;
	snprintf(url, ulen, "%s%s", c->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &in);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tessera/" PACKAGE_VERSION);
	hdr = curl_slist_append(hdr, "Accept: application/json");
	if (c->token) {
		size_t alen = strlen(c->token) + 32;
		auth = malloc(alen);
		if (!auth)
			goto out;
		snprintf(auth, alen, "Authorization: Bearer %s", c->token);
		hdr = curl_slist_append(hdr, auth);
	}
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload)
			goto out;
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		fprintf(stderr, "tessera: cannot reach %s: %s\n", c->url, curl_easy_strerror(cc));
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (http_status)
		*http_status = status;
	if (in.len) {
		json_error_t je;
		*reply = json_loadb(in.data, in.len, 0, &je);
	}
	rc = status_from_http(status);
out:
	if (auth) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	curl_slist_free_all(hdr);
	free(payload);
	if (h)
		curl_easy_cleanup(h);
	buf_free(&in);
	return rc;
}

const char *client_error_message(json_t *reply, const char *fallback)
{
	json_t *m = json_object_get(json_object_get(reply, "error"), "message");
	return json_is_string(m) ? json_string_value(m) : fallback;
}

char *client_escape(const char *s)
{
	static const char keep[] = "-._~";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr(keep, *p)) {
			out[o++] = (char)*p;
		} else {
			snprintf(out + o, 4, "%%%02X", *p);
			o += 3;
		}
	}
	out[o] = '\0';
	return out;
}
