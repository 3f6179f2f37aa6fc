/*
 * audit_verify.h — verifying the audit hash chain and its seals, record by
 * record, whatever the records come from: Postgres (db/audit_read.c, in
 * tesserad) or an export file (the CLI's offline `audit verify --file`).
 *
 * Feed records in chain (seq) order; the verifier keeps constant state: the
 * previous record's seq and stored hash. It stops at the first problem and
 * says which record it is and what happened to it:
 *   altered    the record's fields no longer hash to its stored hash (or the
 *              record was replaced and re-hashed, so its successor no longer
 *              chains to it)
 *   removed    a seq is missing (a gap), or a record was deleted and the
 *              later ones renumbered
 *   inserted   two records share a seq, or records were slipped in and the
 *              later ones renumbered
 *   reordered  records sit at other positions than the ones they were
 *              written at
 *   truncated  a seal (or the chain head) covers records that are gone
 *   rewritten  the records chain correctly but not to the head a seal signed
 *              (history recomputed after sealing)
 *   bad_seal   a seal's signature does not verify, or its key is unknown
 * Telling these apart uses the stored prev_hash of the first bad record: it
 * names the record it was chained to when written. The caller may provide a
 * lookup (find) of "which record has this stored hash" for that; without it
 * the verifier still locates the first bad record and calls it altered or
 * removed.
 *
 * Not thread-safe per verifier; separate verifiers are independent.
 */
#ifndef TSR_AUDIT_VERIFY_H
#define TSR_AUDIT_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include "audit_canon.h"
#include "audit_seal.h"

/* One record as read back. f[] is the canonical text of each field (audit_canon.h), NULL = SQL NULL. */
struct audit_rec {
	const char *f[AUF_NFIELDS];
	int64_t seq; /* the same value as f[AUF_SEQ] */
	uint8_t prev_hash[32], hash[32];
};

struct audit_seal_rec {
	int64_t id; /* audit_seals.id; 0 when unknown */
	int64_t seq_upto;
	uint8_t head_hash[32];
	int64_t sealed_at_us;
	char key_id[AUDIT_KEY_ID_LEN + 1];
	uint8_t signature[AUDIT_SIG_LEN];
};

struct audit_pubkey {
	char id[AUDIT_KEY_ID_LEN + 1];
	uint8_t pub[32];
};

enum audit_problem {
	AUDIT_OK = 0,
	AUDIT_ALTERED,
	AUDIT_REMOVED,
	AUDIT_INSERTED,
	AUDIT_REORDERED,
	AUDIT_TRUNCATED,
	AUDIT_REWRITTEN,
	AUDIT_BAD_SEAL,
};

/* "ok", "altered", "removed", … */
const char *audit_problem_name(enum audit_problem p);

struct audit_finding {
	enum audit_problem problem;
	int64_t seq;      /* the first bad record (its position in seq order) */
	int64_t seal_id;  /* the seal involved, if any */
	char message[512];
};

/* Which record (its seq) has stored hash h? false if none. */
typedef bool (*audit_find_fn)(void *arg, const uint8_t h[32], int64_t *seq);

struct audit_verifier {
	/* set by the caller before the first record (audit_verify_init zeroes them) */
	const struct audit_pubkey *keys;
	int nkeys;
	audit_find_fn find;
	void *find_arg;
	/* progress */
	int64_t count;          /* records checked */
	int64_t seals;          /* seals checked (signature and, when linked, head) */
	int64_t first_seq, last_seq;
	uint8_t first_prev[32]; /* stored prev_hash of the first record */
	uint8_t last_hash[32];  /* stored hash of the last record */
	bool have_last;         /* last_seq/last_hash describe a record (or the anchor) */
	bool have_first;
	struct audit_seal_rec last_seal; /* the newest seal checked */
	bool have_seal;
	struct audit_finding bad; /* bad.problem != AUDIT_OK once something is wrong */
	void *md_ctx;             /* digest context reused for every record */
};

void audit_verify_init(struct audit_verifier *v);
/* Release what the verifier holds; the verifier may be re-initialised. */
void audit_verify_free(struct audit_verifier *v);

/*
 * The record before the first one to be fed: seq and stored hash (seq 0
 * with 32 zero bytes is the genesis). Without an anchor the first record's
 * prev_hash is taken as given.
 */
void audit_verify_anchor(struct audit_verifier *v, int64_t seq, const uint8_t hash[32]);

/* Check the next record. false once a problem has been found (see v->bad). */
bool audit_verify_record(struct audit_verifier *v, const struct audit_rec *r);
/* The same when the caller already computed h = the hash of r's fields with r->prev_hash. */
bool audit_verify_record_hashed(struct audit_verifier *v, const struct audit_rec *r, const uint8_t h[32]);

/*
 * Check a seal: its signature (key among v->keys) and, when linked, that the
 * record it covers is the last one fed (seq_upto == last_seq) with the head
 * hash it signed. A linked seal beyond the last record means the records it
 * covers are gone (truncated). Feed each seal right after the record it
 * covers; seals past the end of the records, after the last record.
 */
bool audit_verify_seal(struct audit_verifier *v, const struct audit_seal_rec *s, bool linked);

/*
 * The records are expected to reach expected_seq (the chain head), whose
 * stored hash is expected_hash (may be NULL). Call after the last record.
 */
bool audit_verify_head(struct audit_verifier *v, int64_t expected_seq, const uint8_t *expected_hash);

/* Record a problem found by the caller (a malformed line in a file, …). Always false. */
bool audit_verify_fail(struct audit_verifier *v, enum audit_problem p, int64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The chain hash of r's fields with prev (a reused digest context: faster than audit_canon_hash, same result). */
void audit_verify_hash(struct audit_verifier *v, const char *const f[AUF_NFIELDS], const uint8_t prev[32],
		       uint8_t out[32]);

/* Convert between integer microseconds since the epoch and "YYYY-MM-DDTHH:MM:SS.ffffffZ". */
void audit_time_format(int64_t us, char out[32]);
bool audit_time_parse(const char *s, int64_t *us);

#endif
