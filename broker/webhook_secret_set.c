/*
 * webhook_secret_set.c — the pure part of webhook_secret.h: which versions
 * of a webhook secret may sign a delivery at a given instant, and what an
 * operator may supply as a secret. No I/O, no locks (tests/unit links it
 * alone).
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "webhook_secret.h"

static const char *const kind_names[WEBHOOK_KINDS] = { "hr", "github" };

bool webhook_kind_parse(const char *name, enum webhook_kind *out)
{
	for (int k = 0; k < WEBHOOK_KINDS; k++)
		if (name && strcmp(name, kind_names[k]) == 0) {
			*out = (enum webhook_kind)k;
			return true;
		}
	return false;
}

const char *webhook_kind_name(enum webhook_kind k)
{
	return (int)k >= 0 && k < WEBHOOK_KINDS ? kind_names[k] : "?";
}

bool webhook_secret_acceptable(const char *s, size_t n)
{
	if (!s || n < WEBHOOK_SECRET_MIN_LEN || n > WEBHOOK_SECRET_MAX_LEN || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

bool webhook_secret_usable(const struct webhook_secret_version *v, int64_t now_ms)
{
	return v->secret && (v->active || now_ms < v->not_after_ms);
}

void webhook_secret_set_free(struct webhook_secret_set *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		if (s->v[i].secret) {
			OPENSSL_cleanse(s->v[i].secret, s->v[i].len);
			free(s->v[i].secret);
		}
	}
	memset(s, 0, sizeof(*s));
}

tsr_rc webhook_secret_pick(const struct webhook_secret_version *in, int n, int64_t now_ms,
			   struct webhook_secret_set *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < n && out->n < WEBHOOK_SECRET_MAX; i++) {
		if (!webhook_secret_usable(&in[i], now_ms))
			continue;
		struct webhook_secret_version *o = &out->v[out->n];
		*o = in[i];
		o->secret = malloc(in[i].len + 1);
		if (!o->secret) {
			webhook_secret_set_free(out);
			return TSR_INTERNAL;
		}
		memcpy(o->secret, in[i].secret, in[i].len);
		o->secret[in[i].len] = '\0';
		out->n++;
	}
	return TSR_OK;
}
