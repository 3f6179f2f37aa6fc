/*
 * audit_read.h — reading the audit log back: streaming cursors in chain
 * order, verification of the chain and its seals, search, seals and keys.
 *
 * Reads run in one REPEATABLE READ READ ONLY transaction (one snapshot for
 * the whole export or verification) through a cursor fetched in batches
 * with binary results; the next batch is requested before the current one
 * is handed out, so Postgres produces rows while the caller hashes or
 * writes them. Memory is bounded by one batch, whatever the range.
 * Records come back in canonical text (lib/audit_canon.h) so they can be
 * hashed as they are; verification is lib/audit_verify.h.
 *
 * Times given as text are parsed by Postgres in UTC ("2026-11-20",
 * "2026-11-20T10:00:00Z", …). A struct audit_reader owns its connection's
 * transaction until closed; the connection may run other statements only
 * through audit_reader_quiesce()'s contract.
 */
#ifndef TSR_DB_AUDIT_READ_H
#define TSR_DB_AUDIT_READ_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"
#include "../lib/audit_verify.h"

/* One row: the record and, if a seal covers exactly this record, the seal. */
struct audit_row {
	struct audit_rec rec;
	int64_t at_us;
	int64_t user_id, repo_id;
	bool has_seal;
	struct audit_seal_rec seal;
};

struct audit_reader;

/*
 * Open a cursor over the records with seq in [seq_lo, seq_hi] in chain
 * order, each with the seal that covers it (if any). c must be idle: the
 * reader begins the read-only transaction (audit_reader_close ends it) —
 * or joins one the caller began with db_audit_read_begin().
 */
tsr_rc audit_reader_open(struct db_conn *c, int64_t seq_lo, int64_t seq_hi, struct audit_reader **out) TSR_WUR;
/* The next row, or *row = NULL at the end. The row is valid until the next call. */
tsr_rc audit_reader_next(struct audit_reader *rd, const struct audit_row **row) TSR_WUR;
/* Wait for the batch in flight so the connection can run other statements (same snapshot). */
tsr_rc audit_reader_quiesce(struct audit_reader *rd) TSR_WUR;
/* Close the cursor and end the transaction if the reader began it. NULL is a no-op. */
void audit_reader_close(struct audit_reader *rd);

/* Begin the read-only snapshot transaction readers and range lookups share (UTC, custom plans). */
tsr_rc db_audit_read_begin(struct db_conn *c) TSR_WUR;
/* End it (COMMIT of a read-only transaction). */
void db_audit_read_end(struct db_conn *c);

/*
 * The seq range covering records with at in [from, to) (either NULL =
 * open): lo = first such seq, hi = last. Open ends take the table's first
 * record and the chain head. *empty when no record falls in the range.
 * TSR_INVALID for a time Postgres cannot parse.
 */
struct audit_range {
	int64_t lo, hi;
	bool empty;
	int64_t head_seq;     /* audit_chain_head */
	uint8_t head_hash[32];
	bool to_head;         /* hi is the chain head (no upper bound given) */
};
tsr_rc db_audit_range(struct db_conn *c, const char *from, const char *to, struct audit_range *out) TSR_WUR;

/* Every audit key's public part, for the verifier. Caller frees *keys with free(). */
tsr_rc db_audit_keys(struct db_conn *c, struct audit_pubkey **keys, int *n) TSR_WUR;

/*
 * Verify the records of [from, to) (NULL = open) and the seals over them:
 * the chain, the seals' signatures and heads, the anchor before the range
 * and, for an open end, that nothing after the last record was cut off.
 * On TSR_OK, v holds the outcome (v->bad.problem == AUDIT_OK when intact).
 * progress, if set, is called every 65536 records.
 */
struct audit_verify_out {
	struct audit_verifier v;
	struct audit_range range;
	struct audit_pubkey *keys;
	int nkeys;
	int64_t unsealed;        /* records after the newest seal in range */
};
tsr_rc db_audit_verify(struct db_conn *c, const char *from, const char *to, struct audit_verify_out *out) TSR_WUR;
/*
 * The same over a range the caller resolved, inside the caller's read
 * transaction. With anchor_seal, the record before range->lo must still
 * carry the head hash that seal signed.
 */
tsr_rc db_audit_verify_run(struct db_conn *c, const struct audit_range *range, const struct audit_seal_rec *anchor_seal,
			   struct audit_verify_out *out) TSR_WUR;
/*
 * db_audit_verify with the range cut into nseg stretches verified at once,
 * each on its own connection to conninfo (not the pool: a verification must
 * not starve requests of connections), each anchored on the record before
 * it and required to reach its end; the first problem in chain order wins.
 * Small ranges (under 50,000 records a stretch) run on c alone.
 */
tsr_rc db_audit_verify_segments(struct db_conn *c, const char *conninfo, int timeout_s, int nseg, const char *from,
				const char *to, struct audit_verify_out *out) TSR_WUR;
/* The parallel part, over a range resolved in c's read transaction. */
tsr_rc db_audit_verify_parallel(const char *conninfo, int timeout_s, struct db_conn *c, const struct audit_range *range,
				int nseg, struct audit_verify_out *out) TSR_WUR;
/* Release out (its verifier and keys); out is zero-initialised by db_audit_verify or the caller. */
void db_audit_verify_free(struct audit_verify_out *out);

/*
 * Prepare verification for a reader the caller drives itself (export):
 * anchor v before range->lo (the preceding record, the genesis, or the
 * retention anchor) and load the keys into v. Within the caller's read
 * transaction. TSR_OK even when the anchor is missing (v->bad says so).
 */
tsr_rc db_audit_verify_prepare(struct db_conn *c, const struct audit_range *range, struct audit_verify_out *out) TSR_WUR;
/* After the records of a range: the seals past the last record (truncation) and, to the head, the head. */
tsr_rc db_audit_verify_finish(struct db_conn *c, struct audit_verify_out *out) TSR_WUR;
/* The verifier's find callback over the audit table (arg = the struct audit_reader in use). */
bool db_audit_find_hash(void *arg, const uint8_t h[32], int64_t *seq);

/* The first seal with seq_upto >= seq (the one that covers it), if any. */
tsr_rc db_audit_covering_seal(struct db_conn *c, int64_t seq, struct audit_seal_rec *out, bool *found) TSR_WUR;

/*
 * Search: the newest records matching every given filter (NULL/0 = any),
 * at most limit, seq < before when before > 0, newest first. user and
 * repo are names (case-insensitive). Rows are handed to fn one at a time.
 */
struct audit_search {
	const char *user, *repo, *upstream, *action, *decision, *from, *to;
	int64_t before;
	int limit;
};
tsr_rc db_audit_search(struct db_conn *c, const struct audit_search *q,
		       tsr_rc (*fn)(void *arg, const struct audit_row *row), void *arg) TSR_WUR;

/* Ids of the users / repositories with this name (case-insensitive; tombstones included). Caller frees. */
tsr_rc db_audit_user_ids(struct db_conn *c, const char *user, int64_t **ids, int *n) TSR_WUR;
tsr_rc db_audit_repo_ids(struct db_conn *c, const char *repo, int64_t **ids, int *n) TSR_WUR;

#endif
