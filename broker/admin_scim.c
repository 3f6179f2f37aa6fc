/*
 * admin_scim.c — POST /admin/v1/scim/token (role admin): rotate the
 * organisation's SCIM bearer token.
 *
 * A new random token (tsr_…, 256 bits) is created and returned once in the
 * reply (Cache-Control: no-store); only its SHA-256 is stored. Every other
 * live token that has no expiry yet gets expires_at = now + [scim]
 * token_overlap, so the identity provider can be switched over without an
 * outage, and stops working after that. The rotation is audited (never the
 * token). `tessera rotate scim-token` is the CLI for it.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

#include "scim.h"
#include "../db/audit.h"
#include "../db/scim_store.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

static bool label_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

static tsr_rc h_rotate(struct http_req *r)
{
	const char *label = "idp";
	json_t *body = NULL;
	if (r->body.len) {
		json_error_t je;
		body = json_loadb(r->body.data, r->body.len, 0, &je);
		if (!json_is_object(body)) {
			json_decref(body);
			return http_reply_error(r, TSR_INVALID, "the body must be a JSON object like {\"label\": \"okta\"}");
		}
		json_t *l = json_object_get(body, "label");
		if (l && !json_is_string(l)) {
			json_decref(body);
			return http_reply_error(r, TSR_INVALID, "label must be a string");
		}
		if (l)
			label = json_string_value(l);
	}
	if (!label_ok(label)) {
		json_decref(body);
		return http_reply_error(r, TSR_INVALID, "label must be 1 to 64 letters, digits, '.', '_' or '-'");
	}
	char tok[TOKEN_LEN + 1];
	uint8_t hash[SHA256_LEN];
	tsr_rc rc = crypto_token_new(tok);
	if (rc != TSR_OK) {
		json_decref(body);
		return rc;
	}
	crypto_sha256(tok, strlen(tok), hash);
	struct db_conn *c;
	if ((rc = db_acquire(r->b->pool, 5000, &c)) != TSR_OK)
		goto out;
	int64_t id = 0;
	char prev[48] = "";
	int64_t overlap = r->b->cfg->scim.token_overlap;
	rc = db_simple(c, "BEGIN");
	if (rc == TSR_OK)
		rc = scim_store_token_rotate(c, hash, label, r->who.user_name, overlap, &id, prev, sizeof(prev));
	if (rc == TSR_OK) {
		json_t *d = json_pack("{s:I,s:s,s:I,s:o}", "scim_token_id", (json_int_t)id, "label", label, "overlap_s",
				      (json_int_t)overlap, "previous_tokens_expire_at",
				      prev[0] ? json_string(prev) : json_null());
		char *detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		json_decref(d);
		struct audit_event ev;
		rc = detail ? audit_event_init(&ev, r->who.user_name, "scim.token_rotated", "success") : TSR_INTERNAL;
		if (rc == TSR_OK) {
			ev.actor_user_id = r->who.user_id;
			ev.actor_addr = r->client_addr[0] ? r->client_addr : NULL;
			ev.target = label;
			ev.credential_id = r->who.cred_id;
			ev.detail = detail;
			rc = db_audit_append(c, &ev, 1);
		}
		free(detail);
	}
	if (rc == TSR_OK)
		rc = db_simple(c, "COMMIT");
	else if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		goto out;
	log_info("scim_token_rotated", "id=%lld label=%s by=%s", (long long)id, label, r->who.user_name);
	/* the token leaves tesserad exactly once, in this reply */
	rc = http_reply_json(r, 201, json_pack("{s:s,s:I,s:s,s:o,s:b}", "token", tok, "id", (json_int_t)id, "label",
					       label, "previous_tokens_expire_at",
					       prev[0] ? json_string(prev) : json_null(), "scim_enabled",
					       r->b->cfg->scim.enabled));
out:
	OPENSSL_cleanse(tok, sizeof(tok));
	OPENSSL_cleanse(hash, sizeof(hash));
	json_decref(body);
	return rc;
}

static const struct route admin_scim[] = {
	{ "POST", "/admin/v1/scim/token", ROLE_ADMIN, h_rotate, NULL, NULL },
};
ROUTE_TABLE(admin_scim_routes, admin_scim);
