/*
 * rewrap.h — the rows master-key rotation re-wraps: every envelope's data
 * key in upstream_keys, secrets and audit_keys (migrations/0001).
 *
 * Only wrapped_dek, dek_nonce and master_key_id change; ciphertexts are
 * untouched, so a row is at every moment wholly under one master key or
 * the other. Each row is re-wrapped in its own short transaction
 * (db_rewrap_next locks it FOR UPDATE SKIP LOCKED; db_rewrap_store writes it
 * only if it is still under the key it was read under), so an interrupted
 * rotation leaves no half-written row and re-running carries on.
 */
#ifndef TSR_DB_REWRAP_H
#define TSR_DB_REWRAP_H

#include <stdint.h>
#include "db.h"
#include "../lib/masterkey.h"

enum rewrap_table { REWRAP_UPSTREAM_KEYS, REWRAP_SECRETS, REWRAP_AUDIT_KEYS, REWRAP_N_TABLES };

/* One row's wrapped data key. */
struct rewrap_row {
	char id[72]; /* the row's primary key as text */
	struct sealed sealed; /* only wrapped_dek, dek_nonce, master_key_id are filled; ciphertext NULL */
};

/*
 * In the caller's transaction: lock one row of table t wrapped by one of
 * old_ids[0..n) (never by keep_id). TSR_NOT_FOUND when none is left.
 */
tsr_rc db_rewrap_next(struct db_conn *c, enum rewrap_table t, const char *const *old_ids, size_t n,
		      struct rewrap_row *out) TSR_WUR;
/* Write row's new wrapping, if the row is still under old_id. */
tsr_rc db_rewrap_store(struct db_conn *c, enum rewrap_table t, const struct rewrap_row *row,
		       const char *old_id) TSR_WUR;
/*
 * Count envelopes not under current_id: *held under one of old_ids, *other
 * under keys tesserad does not hold.
 */
tsr_rc db_rewrap_count(struct db_conn *c, const char *current_id, const char *const *old_ids, size_t n,
		       int64_t *held, int64_t *other) TSR_WUR;

/*
 * Record new_id as the active master key (the previous active one becomes
 * retiring: master_keys allows one active row). Runs its own transaction.
 */
tsr_rc db_master_key_activate(struct db_conn *c, const char *new_id) TSR_WUR;
/* Once nothing is wrapped by them: mark retiring master keys retired. */
tsr_rc db_master_key_retire_unused(struct db_conn *c) TSR_WUR;

#endif
