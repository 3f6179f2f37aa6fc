/*
 * audit_verify.c — see audit_verify.h.
 *
 * audit_verify_hash() computes exactly audit_canon_hash() (the encoding is
 * specified in audit_canon.h) but reuses one digest context and feeds the
 * encoding in one update, which is what makes verifying millions of records
 * cheap; tests/unit/test_audit_verify.c proves the two agree.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "audit_verify.h"
#include "crypto.h"

static const char *const problem_names[] = {
	"ok", "altered", "removed", "inserted", "reordered", "truncated", "rewritten", "bad_seal",
};

const char *audit_problem_name(enum audit_problem p)
{
	return (unsigned)p < sizeof(problem_names) / sizeof(problem_names[0]) ? problem_names[p] : "unknown";
}

void audit_verify_init(struct audit_verifier *v)
{
	memset(v, 0, sizeof(*v));
	v->md_ctx = EVP_MD_CTX_new();
}

void audit_verify_free(struct audit_verifier *v)
{
	EVP_MD_CTX_free(v->md_ctx);
	v->md_ctx = NULL;
}

void audit_verify_hash(struct audit_verifier *v, const char *const f[AUF_NFIELDS], const uint8_t prev[32],
		       uint8_t out[32])
{
	static const char tag[] = "tessera-audit-v1";
	EVP_MD_CTX *ctx = v->md_ctx;
	if (!ctx) {
		audit_canon_hash(f, prev, out);
		return;
	}
	if (EVP_DigestInit_ex(ctx, crypto_md_sha256(), NULL) != 1)
		abort(); /* broken invariant: SHA-256 is always available */
	uint8_t buf[4096];
	size_t used = 0;
	memcpy(buf, prev, 32);
	memcpy(buf + 32, tag, sizeof(tag) - 1);
	used = 32 + sizeof(tag) - 1;
	for (int i = 0; i < AUF_NFIELDS; i++) {
		size_t n = f[i] ? strlen(f[i]) : 0;
		if (used + 9 + n > sizeof(buf)) {
			EVP_DigestUpdate(ctx, buf, used);
			used = 0;
		}
		if (!f[i]) {
			buf[used++] = 'N';
			continue;
		}
		buf[used++] = 'S';
		for (int k = 0; k < 8; k++)
			buf[used++] = (uint8_t)((uint64_t)n >> (56 - 8 * k));
		if (n > sizeof(buf) - used) {
			EVP_DigestUpdate(ctx, buf, used);
			EVP_DigestUpdate(ctx, f[i], n);
			used = 0;
		} else {
			memcpy(buf + used, f[i], n);
			used += n;
		}
	}
	EVP_DigestUpdate(ctx, buf, used);
	unsigned int len = 32;
	EVP_DigestFinal_ex(ctx, out, &len);
}

bool audit_verify_fail(struct audit_verifier *v, enum audit_problem p, int64_t seq, const char *fmt, ...)
{
	if (v->bad.problem != AUDIT_OK)
		return false; /* keep the first */
	v->bad.problem = p;
	v->bad.seq = seq;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->bad.message, sizeof(v->bad.message), fmt, ap);
	va_end(ap);
	return false;
}

void audit_verify_anchor(struct audit_verifier *v, int64_t seq, const uint8_t hash[32])
{
	v->last_seq = seq;
	memcpy(v->last_hash, hash, 32);
	v->have_last = true;
}

/* Does r hash to its stored hash when its seq field reads `seq`? */
static bool hashes_as(struct audit_verifier *v, const struct audit_rec *r, int64_t seq)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRId64, seq);
	const char *f[AUF_NFIELDS];
	memcpy(f, r->f, sizeof(f));
	f[AUF_SEQ] = s;
	uint8_t h[32];
	audit_verify_hash(v, f, r->prev_hash, h);
	return crypto_equal(h, r->hash, 32);
}

/*
 * r's content does not match its hash at its current seq. Was it written
 * at another seq (moved), or is its content changed?
 */
static bool classify_mismatch(struct audit_verifier *v, const struct audit_rec *r)
{
	int64_t s = r->seq, p = 0;
	bool pred_found = v->find && v->find(v->find_arg, r->prev_hash, &p);
	int64_t cand[3 + 128];
	int nc = 0;
	if (pred_found) {
		cand[nc++] = p + 1;
		cand[nc++] = p;
		cand[nc++] = p - 1;
	}
	for (int64_t d = 1; d <= 64; d++) {
		cand[nc++] = s - d;
		cand[nc++] = s + d;
	}
	for (int i = 0; i < nc; i++) {
		int64_t o = cand[i];
		if (o <= 0 || o == s || !hashes_as(v, r, o))
			continue;
		if (o < s)
			return audit_verify_fail(v, AUDIT_INSERTED, o,
						 "%" PRId64 " record%s inserted at seq %" PRId64 ": the record now at seq %" PRId64
						 " was written as seq %" PRId64 " and renumbered",
						 s - o, s - o == 1 ? " was" : "s were", o, s, o);
		if (pred_found)
			return audit_verify_fail(v, AUDIT_REORDERED, s,
						 "records were reordered: the record now at seq %" PRId64
						 " was written as seq %" PRId64 " (after the record now at seq %" PRId64 ")",
						 s, o, p);
		return audit_verify_fail(v, AUDIT_REMOVED, s,
					 "a record was removed at seq %" PRId64 " and the later records renumbered: the "
					 "record now at seq %" PRId64 " was written as seq %" PRId64,
					 s, s, o);
	}
	return audit_verify_fail(v, AUDIT_ALTERED, s,
				 "record seq %" PRId64 " was altered: its fields no longer match its hash", s);
}

/* Does r come where it should after the previous record? */
static bool check_position(struct audit_verifier *v, const struct audit_rec *r)
{
	int64_t s = r->seq;
	if (v->have_last) {
		if (s == v->last_seq)
			return audit_verify_fail(v, AUDIT_INSERTED, s,
						 "two records carry seq %" PRId64 ": one was inserted", s);
		if (s < v->last_seq)
			return audit_verify_fail(v, AUDIT_REORDERED, s,
						 "record seq %" PRId64 " comes after seq %" PRId64 ": records are out of order",
						 s, v->last_seq);
		if (s > v->last_seq + 1) {
			/* the missing record may be elsewhere (out of order in a file): r was chained to it */
			int64_t p = 0;
			if (v->find && v->find(v->find_arg, r->prev_hash, &p) && p > v->last_seq && p < s)
				return audit_verify_fail(v, AUDIT_REORDERED, p,
							 "records were reordered: record seq %" PRId64
							 " appears out of chain order (seq %" PRId64 " follows seq %" PRId64 ")",
							 p, s, v->last_seq);
			if (s - v->last_seq == 2)
				return audit_verify_fail(v, AUDIT_REMOVED, v->last_seq + 1,
							 "record seq %" PRId64 " was removed (seq %" PRId64
							 " follows seq %" PRId64 ")",
							 v->last_seq + 1, s, v->last_seq);
			return audit_verify_fail(v, AUDIT_REMOVED, v->last_seq + 1,
						 "records seq %" PRId64 "..%" PRId64 " were removed (seq %" PRId64
						 " follows seq %" PRId64 ")",
						 v->last_seq + 1, s - 1, s, v->last_seq);
		}
	}
	return true;
}

/* Does r hash to its stored hash, and is it chained to the previous record? */
static bool check_content(struct audit_verifier *v, const struct audit_rec *r, const uint8_t h[32])
{
	int64_t s = r->seq;
	if (!crypto_equal(h, r->hash, 32))
		return classify_mismatch(v, r);
	if (v->have_last && !crypto_equal(r->prev_hash, v->last_hash, 32)) {
		/* r is intact, but what precedes it is not what it was chained to */
		int64_t p = 0;
		if (v->find && v->find(v->find_arg, r->prev_hash, &p) && p != v->last_seq)
			return audit_verify_fail(v, AUDIT_REORDERED, v->last_seq,
						 "records were reordered: seq %" PRId64 " was chained to the record now at "
						 "seq %" PRId64 ", not to seq %" PRId64,
						 s, p, v->last_seq);
		if (v->last_seq == 0)
			return audit_verify_fail(v, AUDIT_ALTERED, s,
						 "record seq %" PRId64 " does not start the chain (its prev_hash is not the "
						 "genesis)", s);
		return audit_verify_fail(v, AUDIT_ALTERED, v->last_seq,
					 "record seq %" PRId64 " was altered and re-hashed: seq %" PRId64
					 " is no longer chained to it",
					 v->last_seq, s);
	}
	if (!v->have_first) {
		v->have_first = true;
		v->first_seq = s;
		memcpy(v->first_prev, r->prev_hash, 32);
	}
	v->last_seq = s;
	memcpy(v->last_hash, r->hash, 32);
	v->have_last = true;
	v->count++;
	return true;
}

bool audit_verify_record(struct audit_verifier *v, const struct audit_rec *r)
{
	if (v->bad.problem != AUDIT_OK || !check_position(v, r))
		return false;
	uint8_t h[32];
	audit_verify_hash(v, r->f, r->prev_hash, h);
	return check_content(v, r, h);
}

bool audit_verify_record_hashed(struct audit_verifier *v, const struct audit_rec *r, const uint8_t h[32])
{
	if (v->bad.problem != AUDIT_OK || !check_position(v, r))
		return false;
	return check_content(v, r, h);
}

bool audit_verify_seal(struct audit_verifier *v, const struct audit_seal_rec *s, bool linked)
{
	if (v->bad.problem != AUDIT_OK)
		return false;
	const struct audit_pubkey *k = NULL;
	for (int i = 0; i < v->nkeys && !k; i++)
		if (strcmp(v->keys[i].id, s->key_id) == 0)
			k = &v->keys[i];
	char msg[256];
	size_t n = audit_seal_message(s->seq_upto, s->head_hash, s->sealed_at_us, s->key_id, msg, sizeof(msg));
	if (!k) {
		audit_verify_fail(v, AUDIT_BAD_SEAL, s->seq_upto,
				  "seal #%" PRId64 " (up to seq %" PRId64 ") is signed by an unknown key %.16s…", s->id,
				  s->seq_upto, s->key_id);
		v->bad.seal_id = s->id;
		return false;
	}
	if (!n || audit_ed25519_verify(k->pub, msg, n, s->signature) != TSR_OK) {
		audit_verify_fail(v, AUDIT_BAD_SEAL, s->seq_upto,
				  "seal #%" PRId64 " (up to seq %" PRId64 ") has an invalid signature", s->id, s->seq_upto);
		v->bad.seal_id = s->id;
		return false;
	}
	if (linked) {
		if (!v->have_last || s->seq_upto > v->last_seq) {
			int64_t from = v->have_last ? v->last_seq + 1 : 1;
			audit_verify_fail(v, AUDIT_TRUNCATED, from,
					  "the log was truncated: seal #%" PRId64 " covers records up to seq %" PRId64
					  " but the records end at seq %" PRId64 " (seq %" PRId64 "..%" PRId64 " are gone)",
					  s->id, s->seq_upto, v->have_last ? v->last_seq : 0, from, s->seq_upto);
			v->bad.seal_id = s->id;
			return false;
		}
		if (s->seq_upto == v->last_seq && !crypto_equal(s->head_hash, v->last_hash, 32)) {
			audit_verify_fail(v, AUDIT_REWRITTEN, v->have_first ? v->first_seq : s->seq_upto,
					  "history was rewritten: the records up to seq %" PRId64
					  " chain correctly but not to the head signed by seal #%" PRId64,
					  s->seq_upto, s->id);
			if (v->have_seal && v->last_seal.seq_upto < s->seq_upto) {
				v->bad.seq = v->last_seal.seq_upto + 1;
				size_t m = strlen(v->bad.message);
				snprintf(v->bad.message + m, sizeof(v->bad.message) - m,
					 "; the change lies after seq %" PRId64 " (sealed by seal #%" PRId64 ")",
					 v->last_seal.seq_upto, v->last_seal.id);
			}
			v->bad.seal_id = s->id;
			return false;
		}
	}
	v->last_seal = *s;
	v->have_seal = true;
	v->seals++;
	return true;
}

bool audit_verify_head(struct audit_verifier *v, int64_t expected_seq, const uint8_t *expected_hash)
{
	if (v->bad.problem != AUDIT_OK)
		return false;
	int64_t last = v->have_last ? v->last_seq : 0;
	if (expected_seq > last)
		return audit_verify_fail(v, AUDIT_TRUNCATED, last + 1,
					 "the log was truncated: the chain head is at seq %" PRId64
					 " but the records end at seq %" PRId64,
					 expected_seq, last);
	if (expected_seq < last)
		return audit_verify_fail(v, AUDIT_INSERTED, expected_seq + 1,
					 "records beyond the chain head: the head is at seq %" PRId64
					 " but records continue to seq %" PRId64,
					 expected_seq, last);
	if (expected_hash && v->have_last && !crypto_equal(expected_hash, v->last_hash, 32))
		return audit_verify_fail(v, AUDIT_ALTERED, last,
					 "record seq %" PRId64 " is not the one the chain head recorded", last);
	return true;
}

void audit_time_format(int64_t us, char out[32])
{
	int64_t secs = us / 1000000, frac = us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

bool audit_time_parse(const char *s, int64_t *us)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int frac = 0, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &frac, &n) != 7 ||
	    n != 27 || s[n] != '\0')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	*us = (int64_t)t * 1000000 + frac;
	char back[32];
	audit_time_format(*us, back);
	return strcmp(back, s) == 0;
}
