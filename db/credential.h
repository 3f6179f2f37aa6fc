/*
 * credential.h — credentials (sessions, access tokens, bootstrap tokens) as
 * stored in Postgres: only the SHA-256 of a token is ever written or queried.
 *
 * Typed C structs at the boundary; the SQL is in db/stmt.c.
 */
#ifndef TSR_DB_CREDENTIAL_H
#define TSR_DB_CREDENTIAL_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"

enum role_bits { ROLE_ADMIN = 1u << 0, ROLE_SECURITY = 1u << 1, ROLE_DEVELOPER = 1u << 2 };

struct principal {
	int64_t cred_id;
	char kind[16];        /* session | access | bootstrap */
	int64_t user_id;
	char user_name[256];
	char source[64];      /* comma-separated sources of the user: ldap,scim,local */
	char expires_at[32];  /* RFC 3339 UTC, "" when it never expires */
	bool active;          /* user active */
	bool expired;
	bool revoked;
	unsigned roles;       /* enum role_bits */
};

/*
 * Look up the credential whose token hashes to hash. TSR_NOT_FOUND when no
 * credential has that hash. Expired/revoked/inactive are reported in *out,
 * not as errors: the caller decides (and audits) the refusal.
 */
tsr_rc db_credential_lookup(struct db_conn *c, const uint8_t hash[32], struct principal *out) TSR_WUR;

/* Note that the credential was used (rate-limited in SQL to one write per minute). */
tsr_rc db_credential_touch(struct db_conn *c, int64_t cred_id) TSR_WUR;

/*
 * First start of a fresh database: create the local break-glass user
 * "admin" with role admin and a bootstrap credential whose token hashes to
 * hash, in one transaction, unless bootstrap already happened (then
 * *created = false and nothing is written). Safe with replicas racing.
 */
tsr_rc db_bootstrap_create(struct db_conn *c, const uint8_t hash[32], bool *created) TSR_WUR;

/* Role name ↔ bit. */
const char *role_name(unsigned bit);

#endif
