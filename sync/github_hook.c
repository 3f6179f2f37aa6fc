/*
 * github_hook.c — see github_hook.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "github_hook.h"

/* ---------- webhook signature ---------- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

bool gh_signature_ok(const char *secret, size_t secret_len, const void *body, size_t len, const char *header)
{
	if (!secret || !secret_len || !header || strncmp(header, "sha256=", 7) != 0 || strlen(header + 7) != 64)
		return false;
	uint8_t want[32], got[EVP_MAX_MD_SIZE];
	for (int i = 0; i < 32; i++) {
		int hi = hexval((unsigned char)header[7 + 2 * i]), lo = hexval((unsigned char)header[8 + 2 * i]);
		if (hi < 0 || lo < 0)
			return false;
		want[i] = (uint8_t)(hi << 4 | lo);
	}
	unsigned int glen = 0;
	static const char empty[1] = { 0 };
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, len ? body : (const void *)empty, len, got, &glen) ||
	    glen != 32)
		return false;
	bool ok = CRYPTO_memcmp(want, got, 32) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

/* ---------- webhook payloads ---------- */

static tsr_rc copy_str(json_t *v, char *out, size_t n, bool lower)
{
	if (!v || json_is_null(v))
		return TSR_OK;
	if (!json_is_string(v))
		return TSR_INVALID;
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (len >= n || strlen(s) != len)
		return TSR_INVALID;
	for (size_t i = 0; i <= len; i++)
		out[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
	return TSR_OK;
}

static tsr_rc get_id(json_t *v, int64_t *out)
{
	if (!v || json_is_null(v))
		return TSR_OK;
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return TSR_INVALID;
	*out = (int64_t)json_integer_value(v);
	return TSR_OK;
}

static tsr_rc parse_user(json_t *u, struct gh_event *e)
{
	if (!u || json_is_null(u))
		return TSR_OK;
	if (!json_is_object(u))
		return TSR_INVALID;
	tsr_rc rc = get_id(json_object_get(u, "id"), &e->user_id);
	if (rc == TSR_OK)
		rc = copy_str(json_object_get(u, "login"), e->user_login, sizeof(e->user_login), false);
	if (rc == TSR_OK && e->user_id > 0 && !gh_name_ok(e->user_login))
		rc = TSR_INVALID;
	e->has_user = rc == TSR_OK && e->user_id > 0;
	return rc;
}

static tsr_rc parse_repo(json_t *r, struct gh_event *e)
{
	if (!r || json_is_null(r))
		return TSR_OK;
	if (!json_is_object(r))
		return TSR_INVALID;
	tsr_rc rc = get_id(json_object_get(r, "id"), &e->repo_id);
	if (rc == TSR_OK)
		rc = copy_str(json_object_get(r, "name"), e->repo_name, sizeof(e->repo_name), false);
	json_t *owner = json_object_get(r, "owner");
	if (rc == TSR_OK && owner && !json_is_object(owner))
		rc = TSR_INVALID;
	if (rc == TSR_OK && owner)
		rc = copy_str(json_object_get(owner, "login"), e->repo_owner, sizeof(e->repo_owner), true);
	if (rc == TSR_OK)
		rc = copy_str(json_object_get(r, "visibility"), e->visibility, sizeof(e->visibility), true);
	json_t *priv = json_object_get(r, "private");
	if (rc == TSR_OK && !e->visibility[0] && json_is_boolean(priv))
		snprintf(e->visibility, sizeof(e->visibility), "%s", json_is_true(priv) ? "private" : "public");
	if (rc == TSR_OK && e->visibility[0] && strcmp(e->visibility, "public") != 0 &&
	    strcmp(e->visibility, "private") != 0 && strcmp(e->visibility, "internal") != 0)
		rc = TSR_INVALID;
	json_t *arch = json_object_get(r, "archived");
	if (rc == TSR_OK && arch && !json_is_boolean(arch))
		rc = TSR_INVALID;
	e->archived = json_is_true(arch);
	json_t *topics = json_object_get(r, "topics");
	if (rc == TSR_OK && topics && !json_is_null(topics)) {
		if (!json_is_array(topics) || json_array_size(topics) > GH_MAX_TOPICS)
			return TSR_INVALID;
		size_t i;
		json_t *t;
		json_array_foreach (topics, i, t) {
			if ((rc = copy_str(t, e->topics[e->ntopics], sizeof(e->topics[0]), true)) != TSR_OK)
				return rc;
			if (!json_is_string(t))
				return TSR_INVALID;
			e->ntopics++;
		}
		e->has_topics = true;
	}
	if (rc == TSR_OK && e->repo_id > 0 && !gh_name_ok(e->repo_name))
		rc = TSR_INVALID;
	e->has_repo = rc == TSR_OK && e->repo_id > 0;
	return rc;
}

static tsr_rc parse_team(json_t *t, struct gh_event *e)
{
	if (!t || json_is_null(t))
		return TSR_OK;
	if (!json_is_object(t))
		return TSR_INVALID;
	tsr_rc rc = get_id(json_object_get(t, "id"), &e->team_id);
	if (rc == TSR_OK)
		rc = copy_str(json_object_get(t, "slug"), e->team_slug, sizeof(e->team_slug), false);
	json_t *parent = json_object_get(t, "parent");
	if (rc == TSR_OK && parent && !json_is_null(parent)) {
		if (!json_is_object(parent))
			return TSR_INVALID;
		rc = get_id(json_object_get(parent, "id"), &e->team_parent_id);
	}
	if (rc == TSR_OK && e->team_id > 0 && !gh_name_ok(e->team_slug))
		rc = TSR_INVALID;
	e->has_team = rc == TSR_OK && e->team_id > 0;
	return rc;
}

tsr_rc gh_event_parse(const char *event, const char *body, size_t len, struct gh_event *out)
{
	memset(out, 0, sizeof(*out));
	if (!event || !*event || strlen(event) >= sizeof(out->event))
		return TSR_INVALID;
	for (const char *p = event; *p; p++)
		if (!(islower((unsigned char)*p) || *p == '_'))
			return TSR_INVALID;
	snprintf(out->event, sizeof(out->event), "%s", event);
	json_error_t err;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(j)) {
		json_decref(j);
		return TSR_INVALID;
	}
	tsr_rc rc = copy_str(json_object_get(j, "action"), out->action, sizeof(out->action), false);
	json_t *org = json_object_get(j, "organization");
	if (rc == TSR_OK && org && !json_is_object(org))
		rc = TSR_INVALID;
	if (rc == TSR_OK && org)
		rc = copy_str(json_object_get(org, "login"), out->org, sizeof(out->org), true);
	if (rc == TSR_OK)
		rc = copy_str(json_object_get(j, "scope"), out->scope, sizeof(out->scope), false);
	if (rc == TSR_OK)
		rc = parse_repo(json_object_get(j, "repository"), out);
	if (rc == TSR_OK)
		rc = parse_team(json_object_get(j, "team"), out);
	if (rc == TSR_OK)
		rc = parse_user(json_object_get(j, "member"), out);
	json_t *ms = json_object_get(j, "membership");
	if (rc == TSR_OK && ms && !json_is_null(ms)) {
		if (!json_is_object(ms))
			rc = TSR_INVALID;
		else if (!out->has_user)
			rc = parse_user(json_object_get(ms, "user"), out);
	}
	if (rc == TSR_OK && !out->org[0] && out->repo_owner[0])
		snprintf(out->org, sizeof(out->org), "%s", out->repo_owner);
	if (rc == TSR_OK && out->org[0] && !gh_name_ok(out->org))
		rc = TSR_INVALID;
	json_decref(j);
	return rc;
}
