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

#define PRINCIPAL_MAX_REPOS 8

struct principal {
	int64_t cred_id;
	char kind[16];        /* session | access | bootstrap */
	int64_t user_id;
	char user_name[256];
	char source[64];      /* comma-separated sources of the user: ldap,scim,local */
	char expires_at[32];  /* RFC 3339 UTC, "" when it never expires */
	int64_t expires_unix; /* 0 when it never expires */
	bool active;          /* user active (and not deleted) */
	bool expired;
	bool revoked;
	bool perm_ok;         /* access tokens: the user still holds >= read on every scoped repo */
	unsigned roles;       /* enum role_bits */
	int64_t session_id;   /* access tokens: the session that minted it, else 0 */
	/* access tokens: scope */
	int n_repos;
	int64_t repo_ids[PRINCIPAL_MAX_REPOS];
	char repos[PRINCIPAL_MAX_REPOS][128];   /* OWNER/NAME */
	char models[512];                       /* comma-separated, "" = any the policy allows */
	char classes[256];                      /* classifications of those repositories: comma-separated union */
};

/* The repository a token is asked for, as checked at mint time. */
struct repo_access {
	int64_t repo_id;
	char full_name[256];
	char permission[16];  /* "" when the user holds none */
	bool archived;
	char classifications[256]; /* comma-separated */
};

/* One row of `tessera tokens list`. */
struct cred_row {
	int64_t id;
	char kind[16];
	char user_name[256];
	char created_at[40], expires_at[40], revoked_at[40], last_used_at[40];
	char repos[512];
	char revoked_reason[128];
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

/*
 * Look up repository full_name (OWNER/NAME, case-insensitive) and what
 * user_id holds on it. TSR_NOT_FOUND when no such (live) repository.
 */
tsr_rc db_repo_access(struct db_conn *c, int64_t user_id, const char *full_name, struct repo_access *out) TSR_WUR;

/*
 * Create a session for user_id valid ttl_s seconds; its token hashes to
 * hash. auth_method: ldap|github|bootstrap|local. Audited (auth.login) in the
 * same transaction. *id receives the credential id.
 */
tsr_rc db_session_create(struct db_conn *c, int64_t user_id, const char *user_name, const uint8_t hash[32],
			 int64_t ttl_s, const char *auth_method, const char *addr, const char *user_agent,
			 int64_t *id, char expires_at[40]) TSR_WUR;

/*
 * Mint an access token in one statement: re-checks that the user is active
 * and holds at least read on repo_id (TSR_DENIED with why otherwise) and
 * inserts the credential and its scope. The caller audits token.mint before
 * handing the token out, and calls db_token_mint_undo() if it cannot.
 * models may be NULL (any the policy allows).
 */
tsr_rc db_token_mint(struct db_conn *c, const struct principal *session, int64_t repo_id, const char *repo_name,
		     const char *const *models, size_t n_models, const uint8_t hash[32], int64_t ttl_s,
		     const char *addr, const char *user_agent, int64_t *id, char expires_at[40], char *why,
		     size_t whylen) TSR_WUR;

/* Revoke a just-minted token whose audit event could not be written. */
tsr_rc db_token_mint_undo(struct db_conn *c, int64_t id) TSR_WUR;

/*
 * Revoke one credential (and, for a session, the access tokens minted from
 * it). TSR_NOT_FOUND when no such live credential. Audited; NOTIFY at commit.
 * owner_user_id > 0 restricts it to that user's credentials (logout).
 */
tsr_rc db_credential_revoke(struct db_conn *c, int64_t cred_id, int64_t owner_user_id, const char *actor,
			    const char *reason, int *n_revoked) TSR_WUR;
/* Revoke every live credential of user_id without deactivating them. Audited; NOTIFY. */
tsr_rc db_credential_revoke_user(struct db_conn *c, int64_t user_id, const char *actor, const char *reason,
				 int *n_revoked) TSR_WUR;

/*
 * Live credentials (not revoked, not expired), newest first, of user_id
 * (0: everyone), at most limit. Caller frees *rows with free().
 */
tsr_rc db_credential_list(struct db_conn *c, int64_t user_id, int limit, struct cred_row **rows, int *n) TSR_WUR;

#endif
