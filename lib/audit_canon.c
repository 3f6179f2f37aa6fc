/*
 * audit_canon.c — see audit_canon.h. Changing anything here breaks every
 * existing chain: add a new version tag instead.
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "audit_canon.h"
#include "crypto.h"

const char *const audit_field_names[AUF_NFIELDS] = {
	"seq", "at", "event_id", "actor_user_id", "actor", "actor_addr", "action", "target", "outcome",
	"user_id", "repo_id", "credential_id", "route", "model", "upstream", "upstream_key_id", "decision",
	"rule_hits", "req_bytes", "resp_bytes", "req_sha256", "status", "latency_us", "tokens_in",
	"tokens_out", "detail",
};

void audit_canon_hash(const char *const fields[AUF_NFIELDS], const uint8_t prev[32], uint8_t out[32])
{
	static const char tag[] = "tessera-audit-v1";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, crypto_md_sha256(), NULL) != 1)
		abort(); /* broken invariant: SHA-256 is always available */
	EVP_DigestUpdate(ctx, prev, 32);
	EVP_DigestUpdate(ctx, tag, sizeof(tag) - 1);
	for (int i = 0; i < AUF_NFIELDS; i++) {
		if (!fields[i]) {
			EVP_DigestUpdate(ctx, "N", 1);
			continue;
		}
		uint64_t n = strlen(fields[i]);
		uint8_t hdr[9] = { 'S' };
		for (int k = 0; k < 8; k++)
			hdr[1 + k] = (uint8_t)(n >> (56 - 8 * k));
		EVP_DigestUpdate(ctx, hdr, sizeof(hdr));
		EVP_DigestUpdate(ctx, fields[i], n);
	}
	unsigned int len = 32;
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
}

tsr_rc audit_canon_json(const char *json, char **out)
{
	json_error_t e;
	json_t *j = json_loads(json, JSON_DECODE_ANY, &e);
	if (!j)
		return TSR_INVALID;
	*out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	json_decref(j);
	return *out ? TSR_OK : TSR_INTERNAL;
}
