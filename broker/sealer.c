/*
 * sealer.c — see sealer.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealer.h"
#include "../db/retention.h"
#include "../db/seal.h"
#include "../lib/audit_seal.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

int64_t sealer_interval(const struct config *cfg)
{
	return cfg->audit.seal_interval;
}

tsr_rc sealer_job(struct broker *b, const char *arg)
{
	(void)arg;
	if (!b->masterkey) {
		log_warn("audit_seal_skipped", "reason=\"no master key: set [server] master_key_file\"");
		return TSR_UNAVAILABLE;
	}
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	struct audit_seal_rec s;
	bool sealed;
	struct audit_finding f;
	rc = db_seal_head(c, b->masterkey, &s, &sealed, &f);
	db_release(b->pool, c);
	return rc;
}

int64_t retention_interval(const struct config *cfg)
{
	(void)cfg;
	return 86400;
}

tsr_rc retention_job(struct broker *b, const char *arg)
{
	(void)arg;
	struct db_conn *c;
	tsr_rc rc = db_acquire(b->pool, 5000, &c);
	if (rc != TSR_OK)
		return rc;
	struct retention_result res;
	rc = db_audit_retention(c, b->cfg->audit.retention, "system", &res);
	db_release(b->pool, c);
	return rc;
}

static tsr_rc h_keys(struct http_req *r)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	struct seal_key *keys = NULL;
	int n = 0;
	rc = db_seal_keys(c, &keys, &n);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return rc;
	json_t *arr = json_array();
	for (int i = 0; arr && i < n; i++) {
		char hex[65], b64[45];
		crypto_hex(keys[i].pub, 32, hex);
		audit_b64(keys[i].pub, 32, b64);
		char *pem = audit_pubkey_pem(keys[i].pub);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:o,s:b,s:I}", "id", keys[i].id,
						     "algorithm", "Ed25519", "public_key", b64, "public_key_hex", hex,
						     "public_key_pem", pem, "created_at", keys[i].created_at,
						     "retired_at",
						     keys[i].retired_at[0] ? json_string(keys[i].retired_at) : json_null(),
						     "active", keys[i].active, "seals", (json_int_t)keys[i].seals));
		free(pem);
	}
	free(keys);
	return http_reply_json(r, 200, json_pack("{s:o,s:s}", "keys", arr, "format",
						 "seal message: tessera-audit-seal-v1 (see tesserad(8))"));
}

static tsr_rc h_rotate(struct http_req *r)
{
	if (!r->b->masterkey)
		return http_reply_error(r, TSR_UNAVAILABLE, "no master key is configured: set [server] master_key_file");
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	char old_id[65], new_id[65];
	rc = db_seal_rotate(c, r->b->masterkey, r->who.user_name, r->who.user_id, old_id, new_id);
	db_release(r->b->pool, c);
	if (rc != TSR_OK)
		return http_reply_error(r, rc, "the audit key could not be rotated");
	return http_reply_json(r, 200, json_pack("{s:s?,s:s}", "old_key_id", old_id[0] ? old_id : NULL, "new_key_id",
						 new_id));
}

static const struct route routes[] = {
	{ "GET", "/audit/v1/keys", ROLE_PUBLIC, h_keys, NULL, NULL },
	{ "POST", "/admin/v1/audit/keys/rotate", ROLE_ADMIN, h_rotate, NULL, NULL },
};
ROUTE_TABLE(sealer_routes, routes);
