/*
 * Unit tests of the audit verification library (no server): the fast hash
 * is the canonical one, times and records survive the export format both
 * ways, seal signatures verify and detect change, public keys parse in
 * every published form, and the verifier classifies a chain's damage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/audit_export.h"
#include "lib/audit_seal.h"
#include "lib/audit_verify.h"
#include "lib/crypto.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A random record's fields: NULLs, empty strings, long strings, quotes, commas, newlines, UTF-8. */
static void random_fields(const char *f[AUF_NFIELDS], char store[AUF_NFIELDS][6000])
{
	static const char *const pieces[] = { "a", "\"", ",", "\n", "é", "tsr", " ", "\\", "#", "0" };
	for (int k = 0; k < AUF_NFIELDS; k++) {
		uint64_t x = rnd();
		if (k != AUF_SEQ && x % 4 == 0) {
			f[k] = NULL;
			continue;
		}
		size_t len = x % 7 == 0 ? 5000 : (size_t)(x >> 8) % 40;
		size_t used = 0;
		store[k][0] = '\0';
		while (used < len) {
			const char *p = pieces[rnd() % 10];
			size_t n = strlen(p);
			if (used + n >= sizeof(store[k]))
				break;
			memcpy(store[k] + used, p, n);
			used += n;
		}
		store[k][used] = '\0';
		f[k] = store[k];
	}
}

static void fast_hash_equals_canonical_hash(void **state)
{
	struct audit_verifier v;
	audit_verify_init(&v);
	static char store[AUF_NFIELDS][6000];
	for (int i = 0; i < 2000; i++) {
		const char *f[AUF_NFIELDS];
		random_fields(f, store);
		uint8_t prev[32], a[32], b[32];
		for (int k = 0; k < 32; k++)
			prev[k] = (uint8_t)rnd();
		audit_canon_hash(f, prev, a);
		audit_verify_hash(&v, f, prev, b);
		assert_memory_equal(a, b, 32);
	}
	audit_verify_free(&v);
}

static void times_round_trip_exactly(void **state)
{
	const int64_t cases[] = { 0, 1, 999999, 1000000, INT64_C(1714567890123456), INT64_C(253402300799999999) };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char s[32];
		int64_t back;
		audit_time_format(cases[i], s);
		assert_true(audit_time_parse(s, &back));
		assert_int_equal(back, cases[i]);
	}
	int64_t us;
	assert_false(audit_time_parse("2026-11-20T10:00:00Z", &us));
	assert_false(audit_time_parse("2026-02-30T10:00:00.000000Z", &us));
	assert_false(audit_time_parse("2026-11-20T10:00:00.000000Zx", &us));
}

static void seal_signature_verifies_and_detects_change(void **state)
{
	uint8_t pub[32], priv[32], head[32], sig[64];
	assert_int_equal(audit_ed25519_keygen(pub, priv), TSR_OK);
	char id[65];
	audit_key_id(pub, id);
	memset(head, 0xab, sizeof(head));
	char msg[256];
	size_t n = audit_seal_message(42, head, INT64_C(1714567890123456), id, msg, sizeof(msg));
	assert_true(n > 0);
	assert_non_null(strstr(msg, "tessera-audit-seal-v1\n42\nabab"));
	assert_int_equal(audit_ed25519_sign(priv, msg, n, sig), TSR_OK);
	assert_int_equal(audit_ed25519_verify(pub, msg, n, sig), TSR_OK);
	msg[22] = '3'; /* seq 32 */
	assert_int_equal(audit_ed25519_verify(pub, msg, n, sig), TSR_DENIED);
}

static void public_keys_parse_in_every_published_form(void **state)
{
	uint8_t pub[32], priv[32], got[32];
	assert_int_equal(audit_ed25519_keygen(pub, priv), TSR_OK);
	char hex[65], b64[45];
	crypto_hex(pub, 32, hex);
	audit_b64(pub, 32, b64);
	char *pem = audit_pubkey_pem(pub);
	assert_non_null(pem);
	assert_int_equal(audit_pubkey_parse(hex, got), TSR_OK);
	assert_memory_equal(got, pub, 32);
	assert_int_equal(audit_pubkey_parse(b64, got), TSR_OK);
	assert_memory_equal(got, pub, 32);
	assert_int_equal(audit_pubkey_parse(pem, got), TSR_OK);
	assert_memory_equal(got, pub, 32);
	free(pem);
	assert_int_equal(audit_pubkey_parse("not a key", got), TSR_INVALID);
	assert_int_equal(audit_pubkey_parse("abcd", got), TSR_INVALID);
}

/* A chain of n records whose fields live in store; rec[i] ready for the verifier. */
struct chain {
	struct audit_rec rec[20];
	char num[20][2][24];
};

static void make_chain(struct chain *c, int n)
{
	uint8_t prev[32] = { 0 };
	for (int i = 0; i < n; i++) {
		struct audit_rec *r = &c->rec[i];
		memset(r, 0, sizeof(*r));
		snprintf(c->num[i][0], 24, "%d", i + 1);
		snprintf(c->num[i][1], 24, "%d", 1700000000 + i);
		r->f[AUF_SEQ] = c->num[i][0];
		r->f[AUF_AT_US] = c->num[i][1];
		r->f[AUF_ACTOR] = "tester";
		r->f[AUF_ACTION] = "test";
		r->f[AUF_OUTCOME] = "success";
		r->seq = i + 1;
		memcpy(r->prev_hash, prev, 32);
		audit_canon_hash(r->f, prev, r->hash);
		memcpy(prev, r->hash, 32);
	}
}

static enum audit_problem run_chain(struct audit_rec *const *recs, int n, int64_t *bad_seq)
{
	struct audit_verifier v;
	audit_verify_init(&v);
	static const uint8_t genesis[32];
	audit_verify_anchor(&v, 0, genesis);
	for (int i = 0; i < n; i++)
		if (!audit_verify_record(&v, recs[i]))
			break;
	enum audit_problem p = v.bad.problem;
	*bad_seq = v.bad.seq;
	audit_verify_free(&v);
	return p;
}

static void verifier_classifies_damage(void **state)
{
	struct chain c;
	make_chain(&c, 10);
	struct audit_rec *order[10];
	int64_t seq;
	for (int i = 0; i < 10; i++)
		order[i] = &c.rec[i];
	assert_int_equal(run_chain(order, 10, &seq), AUDIT_OK);
	/* removed: skip record 5 */
	struct audit_rec *gap[9];
	for (int i = 0, j = 0; i < 10; i++)
		if (i != 4)
			gap[j++] = &c.rec[i];
	assert_int_equal(run_chain(gap, 9, &seq), AUDIT_REMOVED);
	assert_int_equal(seq, 5);
	/* altered */
	c.rec[6].f[AUF_ACTOR] = "mallory";
	assert_int_equal(run_chain(order, 10, &seq), AUDIT_ALTERED);
	assert_int_equal(seq, 7);
}

static void export_json_and_csv_round_trip_the_canonical_fields(void **state)
{
	static char store[AUF_NFIELDS][6000];
	for (int i = 0; i < 200; i++) {
		const char *f[AUF_NFIELDS];
		random_fields(f, store);
		/* typed fields must hold their type's canonical text */
		char nums[AUF_NFIELDS][24];
		const int ints[] = { AUF_SEQ, AUF_ACTOR_USER_ID, AUF_USER_ID, AUF_REPO_ID, AUF_CREDENTIAL_ID,
				     AUF_UPSTREAM_KEY_ID, AUF_REQ_BYTES, AUF_RESP_BYTES, AUF_STATUS, AUF_LATENCY_US,
				     AUF_TOKENS_IN, AUF_TOKENS_OUT, AUF_AT_US };
		for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
			if (f[ints[k]] || ints[k] == AUF_SEQ || ints[k] == AUF_AT_US) {
				snprintf(nums[ints[k]], 24, "%lld", (long long)(rnd() % 4000000000000000ull));
				f[ints[k]] = nums[ints[k]];
			}
		f[AUF_RULE_HITS] = i % 2 ? "{\"ssn\":2}" : NULL;
		f[AUF_DETAIL] = i % 3 ? "{\"a\":[1,2.5,\"x\\\"y\\n\"],\"b\":{\"c\":null}}" : NULL;
		struct audit_rec r;
		memset(&r, 0, sizeof(r));
		memcpy(r.f, f, sizeof(r.f));
		r.seq = strtoll(f[AUF_SEQ], NULL, 10);
		for (int k = 0; k < 32; k++)
			r.prev_hash[k] = (uint8_t)rnd();
		audit_canon_hash(r.f, r.prev_hash, r.hash);

		json_t *j = audit_export_json(&r);
		assert_non_null(j);
		char *line = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		json_error_t e;
		json_t *back = json_loads(line, 0, &e);
		free(line);
		struct audit_parsed p;
		char err[200];
		assert_int_equal(audit_export_parse(back, &p, err, sizeof(err)), TSR_OK);
		uint8_t h[32];
		audit_canon_hash(p.rec.f, p.rec.prev_hash, h);
		assert_memory_equal(h, r.hash, 32);
		audit_parsed_free(&p);
		json_decref(back);

		struct buf b;
		buf_init(&b, 1u << 20);
		assert_int_equal(audit_csv_row(&b, &r), TSR_OK);
		bool more;
		assert_int_equal(audit_csv_parse(b.data, b.len, &p, &more, err, sizeof(err)), TSR_OK);
		audit_canon_hash(p.rec.f, p.rec.prev_hash, h);
		assert_memory_equal(h, r.hash, 32);
		audit_parsed_free(&p);
		/* cut inside: the parser asks for more or refuses, never accepts */
		if (b.len > 10 && memchr(b.data, '"', b.len)) {
			size_t cut = (size_t)((const char *)memchr(b.data, '"', b.len) - b.data) + 1;
			tsr_rc rc = audit_csv_parse(b.data, cut, &p, &more, err, sizeof(err));
			assert_int_not_equal(rc, TSR_OK);
		}
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fast_hash_equals_canonical_hash),
		cmocka_unit_test(times_round_trip_exactly),
		cmocka_unit_test(seal_signature_verifies_and_detects_change),
		cmocka_unit_test(public_keys_parse_in_every_published_form),
		cmocka_unit_test(verifier_classifies_damage),
		cmocka_unit_test(export_json_and_csv_round_trip_the_canonical_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
