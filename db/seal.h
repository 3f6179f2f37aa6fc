/*
 * seal.h — the audit signing keys (audit_keys) and the seals they make
 * (audit_seals): Postgres side of the sealer (broker/sealer.c).
 *
 * One key is active at a time (Ed25519; lib/audit_seal.h). It is created on
 * first use; its private half is stored only as an envelope under the
 * master key (lib/masterkey.h) with AAD "audit_key:<id>", decrypted for each
 * signature and wiped at once. Rotation retires the active key (its public
 * half stays forever: old seals and exports verify against it) and creates
 * the next; its private half is shredded. A seal signs the chain head
 * (seq, hash) after the records since the previous seal have been verified,
 * so a seal never launders tampering that happened before it.
 * Functions run their own transactions (the connection must be idle).
 */
#ifndef TSR_DB_SEAL_H
#define TSR_DB_SEAL_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"
#include "../lib/audit_verify.h"
#include "../lib/masterkey.h"

struct seal_key {
	char id[AUDIT_KEY_ID_LEN + 1];
	uint8_t pub[32];
	char created_at[40]; /* ISO-8601 UTC */
	char retired_at[40]; /* "" while active */
	bool active;
	int64_t seals;       /* seals made with it */
};

/*
 * Seal the chain head if it moved since the newest seal, after verifying the
 * records in between. *sealed false when there was nothing new. When the
 * verification fails, nothing is signed, *problem says why and the function
 * returns TSR_CONFLICT. problem may be NULL.
 */
tsr_rc db_seal_head(struct db_conn *c, const struct masterkey *mk, struct audit_seal_rec *out, bool *sealed,
		    struct audit_finding *problem) TSR_WUR;

/* Sign msg with the active key (created if there is none): export trailers. */
tsr_rc db_seal_sign(struct db_conn *c, const struct masterkey *mk, const void *msg, size_t n,
		    char key_id[AUDIT_KEY_ID_LEN + 1], uint8_t sig[AUDIT_SIG_LEN]) TSR_WUR;

/*
 * Retire the active key (shredding its private half) and create a new one;
 * an audit event "audit.key_rotated" by actor records both ids. Either id
 * is "" when there was none.
 */
tsr_rc db_seal_rotate(struct db_conn *c, const struct masterkey *mk, const char *actor, int64_t actor_user_id,
		      char old_id[AUDIT_KEY_ID_LEN + 1], char new_id[AUDIT_KEY_ID_LEN + 1]) TSR_WUR;

/* Every key, newest first. Caller frees *keys with free(). */
tsr_rc db_seal_keys(struct db_conn *c, struct seal_key **keys, int *n) TSR_WUR;

/* The newest seal, *found false when there is none. */
tsr_rc db_seal_latest(struct db_conn *c, struct audit_seal_rec *out, bool *found) TSR_WUR;

#endif
