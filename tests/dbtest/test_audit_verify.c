/*
 * Verification of the audit chain against a real PostgreSQL: each test
 * writes a chain through db_audit_append (the writer tesserad uses), seals
 * it with db_seal_head (a real Ed25519 key under a test master key), then
 * tampers with it the way only a database superuser can (triggers off:
 * SET session_replication_role = replica) and checks that verification
 * names the first bad record and what happened to it.
 *
 * Every test works in its own database cloned from the migrated one
 * (TEST_PG_URL), so tampering never leaks into other tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db/audit.h"
#include "db/audit_read.h"
#include "db/db.h"
#include "db/retention.h"
#include "db/seal.h"
#include "lib/audit_verify.h"
#include "lib/crypto.h"
#include "lib/masterkey.h"

static const char *url;
static char dburl[1024];
static char dbname[64];
static int dbcount;

static PGconn *connect_db(const char *db)
{
	const char *k[] = { "dbname", "dbname", NULL };
	const char *v[] = { url, db, NULL };
	PGconn *c = PQconnectdbParams(k, v, 1);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

static void sql(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(c));
	PQclear(r);
}

static const char *q1(PGconn *c, const char *q)
{
	static char out[256];
	PGresult *r = PQexec(c, q);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(c));
	snprintf(out, sizeof(out), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

/* A fresh database cloned from the migrated one; sets dburl. */
static int fresh_db(void **state)
{
	(void)state;
	/* the migrated database of TEST_PG_URL is the template */
	PGconn *t = PQconnectdb(url);
	assert_int_equal(PQstatus(t), CONNECTION_OK);
	char tmpl[128];
	snprintf(tmpl, sizeof(tmpl), "%s", q1(t, "SELECT quote_ident(current_database())"));
	PQfinish(t);
	PGconn *a = connect_db("postgres");
	snprintf(dbname, sizeof(dbname), "audit_verify_%d_%d", (int)getpid(), dbcount++);
	char q[256];
	snprintf(q, sizeof(q), "CREATE DATABASE %s TEMPLATE %s", dbname, tmpl);
	/* the template must have no other session: retry briefly */
	for (int i = 0; i < 50; i++) {
		PGresult *r = PQexec(a, q);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok)
			break;
		usleep(100000);
		if (i == 49)
			fail_msg("cannot clone the database: %s", PQerrorMessage(a));
	}
	PQfinish(a);
	/* keep host/port/user of url, replace the database */
	const char *slash = strrchr(url, '/');
	snprintf(dburl, sizeof(dburl), "%.*s/%s", (int)(slash - url), url, dbname);
	return 0;
}

static int drop_db(void **state)
{
	(void)state;
	PGconn *a = connect_db("postgres");
	char q[256];
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
	sql(a, q);
	PQfinish(a);
	return 0;
}

static struct masterkey *test_mk(void)
{
	uint8_t k[32];
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i * 7 + 3);
	struct masterkey *mk;
	assert_int_equal(masterkey_from_bytes(k, &mk), TSR_OK);
	return mk;
}

/*
 * n records in batches of 10 (varied fields: JSON, addresses, counts), a
 * seal after every `seal_every` records (0: none).
 */
static void write_chain(int n, int seal_every)
{
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct masterkey *mk = test_mk();
	struct audit_event ev[10];
	char target[10][32];
	for (int i = 0; i < n; i += 10) {
		for (int k = 0; k < 10; k++) {
			assert_int_equal(audit_event_init(&ev[k], "tester", "gateway.request", "success"), TSR_OK);
			/* distinct times, so the tampering below (seq = seq + 1) cannot collide on (seq, at) */
			ev[k].at_us += i + k;
			snprintf(target[k], sizeof(target[k]), "acme/repo-%d", i + k);
			ev[k].target = target[k];
			ev[k].user_id = 1 + (i + k) % 3;
			ev[k].repo_id = 7;
			ev[k].upstream = (i + k) % 2 ? "azure-east" : "onprem";
			ev[k].req_bytes = 100 + i + k;
			ev[k].status = 200;
			ev[k].actor_addr = (i + k) % 4 == 0 ? "10.1.2.3" : (i + k) % 4 == 1 ? "::1" : NULL;
			ev[k].detail = (i + k) % 3 == 0 ? "{\"b\": [1, 2.5, \"x\"], \"a\": {\"z\": null, \"y\": true}}" : NULL;
			ev[k].rule_hits = (i + k) % 5 == 0 ? "{\"ssn\": 1}" : NULL;
		}
		assert_int_equal(db_audit_append(c, ev, 10), TSR_OK);
		if (seal_every && (i + 10) % seal_every == 0) {
			struct audit_seal_rec s;
			bool sealed;
			struct audit_finding f;
			assert_int_equal(db_seal_head(c, mk, &s, &sealed, &f), TSR_OK);
			assert_true(sealed);
			assert_true(s.seq_upto >= i + 10);
		}
	}
	masterkey_free(mk);
	db_release(pool, c);
	db_pool_free(pool);
}

/* Superuser tampering with the triggers off. */
static void tamper(const char *q)
{
	PGconn *c = connect_db(dbname);
	sql(c, "SET session_replication_role = replica");
	sql(c, q);
	PQfinish(c);
}

static void verify(const char *from, const char *to, struct audit_verify_out *o)
{
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	assert_int_equal(db_audit_verify(c, from, to, o), TSR_OK);
	if (o->v.bad.problem != AUDIT_OK)
		print_message("# %s at seq %lld: %s\n", audit_problem_name(o->v.bad.problem), (long long)o->v.bad.seq,
			      o->v.bad.message);
	db_release(pool, c);
	db_pool_free(pool);
}

static void expect(enum audit_problem p, int64_t seq)
{
	struct audit_verify_out o;
	verify(NULL, NULL, &o);
	assert_string_equal(audit_problem_name(o.v.bad.problem), audit_problem_name(p));
	assert_int_equal(o.v.bad.seq, seq);
	db_audit_verify_free(&o);
}

static void intact_sealed_chain_verifies(void **state)
{
	write_chain(200, 50);
	struct audit_verify_out o;
	verify(NULL, NULL, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_OK);
	assert_int_equal(o.v.count, 200);
	assert_int_equal(o.v.seals, 4);
	assert_int_equal(o.unsealed, 0);
	assert_int_equal(o.v.last_seq, 200);
	db_audit_verify_free(&o);
}

static void altered_field_is_located_at_its_record(void **state)
{
	write_chain(200, 50);
	tamper("UPDATE audit_events SET target = 'acme/other' WHERE seq = 57");
	expect(AUDIT_ALTERED, 57);
}

static void altered_json_detail_is_located(void **state)
{
	write_chain(100, 50);
	tamper("UPDATE audit_events SET detail = jsonb_set(detail, '{b,1}', '3') WHERE seq = 31");
	expect(AUDIT_ALTERED, 31);
}

static void deleted_record_is_reported_removed(void **state)
{
	write_chain(200, 50);
	tamper("DELETE FROM audit_events WHERE seq = 80");
	expect(AUDIT_REMOVED, 80);
}

static void deleted_first_record_is_reported_removed(void **state)
{
	write_chain(50, 50);
	tamper("DELETE FROM audit_events WHERE seq = 1");
	expect(AUDIT_REMOVED, 1);
}

static void deleted_and_renumbered_record_is_reported_removed(void **state)
{
	write_chain(100, 0);
	tamper("DELETE FROM audit_events WHERE seq = 40");
	tamper("UPDATE audit_events SET seq = seq - 1 WHERE seq > 40");
	tamper("UPDATE audit_chain_head SET seq = seq - 1");
	expect(AUDIT_REMOVED, 40);
}

static void swapped_records_are_reported_reordered(void **state)
{
	write_chain(200, 50);
	tamper("UPDATE audit_events SET seq = CASE seq WHEN 120 THEN 121 ELSE 120 END WHERE seq IN (120, 121)");
	expect(AUDIT_REORDERED, 120);
}

static void inserted_record_is_reported_at_its_position(void **state)
{
	write_chain(100, 0);
	/* make room after seq 60 and slip in a forged record chained to 60 */
	tamper("UPDATE audit_events SET seq = seq + 1 WHERE seq > 60");
	tamper("UPDATE audit_chain_head SET seq = seq + 1");
	PGconn *c = connect_db(dbname);
	PGresult *r = PQexec(c, "SELECT encode(hash, 'hex'), ((extract(epoch FROM at) * 1000000)::bigint + 1)::text "
				"FROM audit_events WHERE seq = 60");
	assert_int_equal(PQntuples(r), 1);
	uint8_t prev[32];
	assert_true(crypto_unhex(PQgetvalue(r, 0, 0), prev, 32));
	char at_us[24];
	snprintf(at_us, sizeof(at_us), "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	const char *f[AUF_NFIELDS] = { 0 };
	f[AUF_SEQ] = "61";
	f[AUF_AT_US] = at_us;
	f[AUF_EVENT_ID] = "6f1d1c4e-0000-4000-8000-000000000001";
	f[AUF_ACTOR] = "mallory";
	f[AUF_ACTION] = "gateway.request";
	f[AUF_OUTCOME] = "success";
	uint8_t h[32];
	audit_canon_hash(f, prev, h);
	char ph[65], hh[65], at[32];
	crypto_hex(prev, 32, ph);
	crypto_hex(h, 32, hh);
	audit_time_format(strtoll(at_us, NULL, 10), at);
	const char *p[] = { at, f[AUF_EVENT_ID], ph, hh };
	sql(c, "SET session_replication_role = replica");
	r = PQexecParams(c, "INSERT INTO audit_events (seq, at, event_id, actor, action, outcome, prev_hash, hash) "
			    "VALUES (61, $1::timestamptz, $2::uuid, 'mallory', 'gateway.request', 'success', "
			    "decode($3, 'hex'), decode($4, 'hex'))",
			 4, NULL, p, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
	expect(AUDIT_INSERTED, 61);
}

static void duplicate_seq_is_reported_inserted(void **state)
{
	write_chain(50, 0);
	tamper("INSERT INTO audit_events SELECT seq, at + interval '1 microsecond', gen_random_uuid(), actor_user_id, "
	       "actor, actor_addr, action, 'forged', outcome, user_id, repo_id, credential_id, route, model, upstream, "
	       "upstream_key_id, decision, rule_hits, req_bytes, resp_bytes, req_sha256, status, latency_us, tokens_in, "
	       "tokens_out, detail, prev_hash, hash FROM audit_events WHERE seq = 25");
	expect(AUDIT_INSERTED, 25);
}

static void truncation_after_a_seal_is_detected(void **state)
{
	write_chain(200, 50);
	/* cut the tail inside the last sealed stretch and hide it from the head */
	tamper("DELETE FROM audit_events WHERE seq > 170");
	tamper("UPDATE audit_chain_head SET seq = 170, hash = (SELECT hash FROM audit_events WHERE seq = 170)");
	expect(AUDIT_TRUNCATED, 171);
}

static void truncation_without_seal_is_caught_by_the_head(void **state)
{
	write_chain(60, 50);
	tamper("DELETE FROM audit_events WHERE seq > 55");
	expect(AUDIT_TRUNCATED, 56);
}

static void rewritten_history_is_caught_by_the_seal(void **state)
{
	write_chain(100, 50);
	/* alter seq 70 and recompute every hash after it: the chain is consistent again */
	tamper("UPDATE audit_events SET target = 'rewritten' WHERE seq = 70");
	PGconn *c = connect_db(dbname);
	sql(c, "SET session_replication_role = replica");
	PGresult *r = PQexec(c, "SELECT encode(hash, 'hex') FROM audit_events WHERE seq = 69");
	uint8_t prev[32];
	assert_true(crypto_unhex(PQgetvalue(r, 0, 0), prev, 32));
	PQclear(r);
	struct db_pool *pool;
	struct db_conn *dc;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &dc), TSR_OK);
	struct audit_reader *rd;
	assert_int_equal(audit_reader_open(dc, 70, 100, &rd), TSR_OK);
	const struct audit_row *row;
	struct audit_verifier hv;
	audit_verify_init(&hv);
	while (audit_reader_next(rd, &row) == TSR_OK && row) {
		uint8_t h[32];
		audit_verify_hash(&hv, row->rec.f, prev, h);
		char seq[24], ph[65], hh[65];
		snprintf(seq, sizeof(seq), "%lld", (long long)row->rec.seq);
		crypto_hex(prev, 32, ph);
		crypto_hex(h, 32, hh);
		const char *p[] = { seq, ph, hh };
		PGresult *u = PQexecParams(c, "UPDATE audit_events SET prev_hash = decode($2, 'hex'), hash = decode($3, 'hex') "
					      "WHERE seq = $1::bigint",
					   3, NULL, p, NULL, NULL, 0);
		assert_int_equal(PQresultStatus(u), PGRES_COMMAND_OK);
		PQclear(u);
		memcpy(prev, h, 32);
	}
	audit_verify_free(&hv);
	audit_reader_close(rd);
	db_release(pool, dc);
	db_pool_free(pool);
	char hh[65], q[256];
	crypto_hex(prev, 32, hh);
	snprintf(q, sizeof(q), "UPDATE audit_chain_head SET hash = decode('%s', 'hex')", hh);
	sql(c, q);
	PQfinish(c);
	struct audit_verify_out o;
	verify(NULL, NULL, &o);
	assert_string_equal(audit_problem_name(o.v.bad.problem), "rewritten");
	assert_int_equal(o.v.bad.seq, 51); /* after the last seal that still matches */
	assert_non_null(strstr(o.v.bad.message, "seal #"));
	db_audit_verify_free(&o);
}

static void forged_seal_signature_is_detected(void **state)
{
	write_chain(100, 50);
	tamper("UPDATE audit_seals SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1) "
	       "WHERE seq_upto = 100");
	expect(AUDIT_BAD_SEAL, 100);
}

static void sealer_refuses_to_seal_a_tampered_chain(void **state)
{
	write_chain(60, 50);
	tamper("UPDATE audit_events SET actor = 'mallory' WHERE seq = 55");
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct masterkey *mk = test_mk();
	struct audit_seal_rec s;
	bool sealed = true;
	struct audit_finding f;
	assert_int_equal(db_seal_head(c, mk, &s, &sealed, &f), TSR_CONFLICT);
	assert_false(sealed);
	assert_int_equal(f.problem, AUDIT_ALTERED);
	assert_int_equal(f.seq, 55);
	masterkey_free(mk);
	db_release(pool, c);
	db_pool_free(pool);
}

static void time_range_verifies_only_its_records(void **state)
{
	write_chain(100, 50);
	PGconn *c = connect_db(dbname);
	char from[64], to[64];
	snprintf(from, sizeof(from), "%s", q1(c, "SELECT at::text FROM audit_events WHERE seq = 21"));
	snprintf(to, sizeof(to), "%s", q1(c, "SELECT at::text FROM audit_events WHERE seq = 71"));
	PQfinish(c);
	/* damage outside the range does not matter to it */
	tamper("UPDATE audit_events SET actor = 'x' WHERE seq = 90");
	struct audit_verify_out o;
	verify(from, to, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_OK);
	assert_int_equal(o.v.count, 50);
	assert_int_equal(o.v.first_seq, 21);
	assert_int_equal(o.v.last_seq, 70);
	assert_int_equal(o.v.seals, 1);
	db_audit_verify_free(&o);
	expect(AUDIT_ALTERED, 90);
}

static void keys_rotate_and_old_seals_still_verify(void **state)
{
	write_chain(50, 50);
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct masterkey *mk = test_mk();
	char old_id[65], new_id[65];
	assert_int_equal(db_seal_rotate(c, mk, "tester", 0, old_id, new_id), TSR_OK);
	assert_int_equal(strlen(old_id), 64);
	assert_int_equal(strlen(new_id), 64);
	assert_string_not_equal(old_id, new_id);
	struct audit_seal_rec s;
	bool sealed;
	/* the rotation's own audit event moved the head: the new key seals it */
	assert_int_equal(db_seal_head(c, mk, &s, &sealed, NULL), TSR_OK);
	assert_true(sealed);
	assert_string_equal(s.key_id, new_id);
	struct seal_key *keys;
	int n;
	assert_int_equal(db_seal_keys(c, &keys, &n), TSR_OK);
	assert_int_equal(n, 2);
	assert_true(keys[0].active);
	assert_false(keys[1].active);
	free(keys);
	masterkey_free(mk);
	db_release(pool, c);
	db_pool_free(pool);
	PGconn *a = connect_db(dbname);
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_keys WHERE retired_at IS NOT NULL AND "
				  "private_key_ciphertext IS NULL"),
			    "1");
	PQfinish(a);
	struct audit_verify_out o;
	verify(NULL, NULL, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_OK);
	assert_int_equal(o.v.seals, 2);
	db_audit_verify_free(&o);
}

static void private_key_is_stored_only_encrypted(void **state)
{
	write_chain(10, 10);
	PGconn *a = connect_db(dbname);
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_keys WHERE octet_length(private_key_ciphertext) = 48 "
				  "AND master_key_id IS NOT NULL"),
			    "1");
	PQfinish(a);
}

/* n records at a fixed old time (Jan 2020), in its own partition */
static void write_old(struct db_conn *c, int n)
{
	struct audit_event ev;
	for (int i = 0; i < n; i++) {
		assert_int_equal(audit_event_init(&ev, "tester", "auth.login", "success"), TSR_OK);
		ev.at_us = INT64_C(1578000000000000) + i; /* 2020-01-02 */
		assert_int_equal(db_audit_append(c, &ev, 1), TSR_OK);
	}
}

static void retention_drops_old_months_and_the_rest_still_verifies(void **state)
{
	PGconn *a = connect_db(dbname);
	sql(a, "CREATE TABLE audit_events_202001 PARTITION OF audit_events "
	       "FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-02-01 00:00:00+00')");
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	write_old(c, 20);
	db_release(pool, c);
	db_pool_free(pool);
	write_chain(30, 30);
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct retention_result res;
	assert_int_equal(db_audit_retention(c, 365 * 86400, "system", &res), TSR_OK);
	assert_int_equal(res.partitions, 1);
	assert_int_equal(res.records, 20);
	assert_int_equal(res.last_dropped_seq, 20);
	db_release(pool, c);
	db_pool_free(pool);
	assert_string_equal(q1(a, "SELECT count(*) FROM pg_class WHERE relname = 'audit_events_202001'"), "0");
	assert_string_equal(q1(a, "SELECT detail->>'records_dropped' || ' ' || (detail->'partitions'->>0) "
				  "FROM audit_events WHERE action = 'audit.retention' AND outcome = 'success'"),
			    "20 audit_events_202001");
	PQfinish(a);
	struct audit_verify_out o;
	verify(NULL, NULL, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_OK);
	assert_int_equal(o.v.first_seq, 21);
	assert_int_equal(o.v.count, 31); /* 30 records and the retention event */
	db_audit_verify_free(&o);
}

static void retention_refuses_to_leave_a_hole_in_the_chain(void **state)
{
	PGconn *a = connect_db(dbname);
	sql(a, "CREATE TABLE audit_events_202001 PARTITION OF audit_events "
	       "FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-02-01 00:00:00+00')");
	write_chain(10, 0);
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	write_old(c, 3); /* a late record with an old time (a spool replay) */
	struct retention_result res;
	assert_int_equal(db_audit_retention(c, 365 * 86400, "system", &res), TSR_CONFLICT);
	db_release(pool, c);
	db_pool_free(pool);
	assert_string_equal(q1(a, "SELECT count(*) FROM pg_class WHERE relname = 'audit_events_202001'"), "1");
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_events WHERE action = 'audit.retention' "
				  "AND outcome = 'failure'"),
			    "1");
	PQfinish(a);
	expect(AUDIT_OK, 0);
}

static void verify_parallel(int nseg, struct audit_verify_out *o)
{
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	assert_int_equal(db_audit_verify_segments(c, dburl, 5, nseg, NULL, NULL, o), TSR_OK);
	if (o->v.bad.problem != AUDIT_OK)
		print_message("# %s at seq %lld: %s\n", audit_problem_name(o->v.bad.problem), (long long)o->v.bad.seq,
			      o->v.bad.message);
	db_release(pool, c);
	db_pool_free(pool);
}

static void parallel_verification_finds_the_first_problem_in_chain_order(void **state)
{
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	static struct audit_event ev[1000];
	for (int b = 0; b < 120; b++) {
		for (int k = 0; k < 1000; k++) {
			assert_int_equal(audit_event_init(&ev[k], "tester", "gateway.request", "success"), TSR_OK);
			ev[k].user_id = 1 + k % 7;
			ev[k].req_bytes = k;
		}
		assert_int_equal(db_audit_append(c, ev, 1000), TSR_OK);
	}
	struct masterkey *mk = test_mk();
	struct audit_seal_rec s;
	bool sealed;
	assert_int_equal(db_seal_head(c, mk, &s, &sealed, NULL), TSR_OK);
	masterkey_free(mk);
	db_release(pool, c);
	db_pool_free(pool);
	struct audit_verify_out o;
	verify_parallel(2, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_OK);
	assert_int_equal(o.v.count, 120000);
	assert_int_equal(o.v.seals, 1);
	assert_int_equal(o.v.last_seq, 120000);
	db_audit_verify_free(&o);
	/* damage in the second stretch is found there */
	tamper("UPDATE audit_events SET req_bytes = 1 WHERE seq = 90000");
	verify_parallel(2, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_ALTERED);
	assert_int_equal(o.v.bad.seq, 90000);
	db_audit_verify_free(&o);
	/* a hole at the end of the first stretch comes first in chain order */
	tamper("DELETE FROM audit_events WHERE seq = 60000");
	verify_parallel(2, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_REMOVED);
	assert_int_equal(o.v.bad.seq, 60000);
	db_audit_verify_free(&o);
	verify_parallel(3, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_REMOVED);
	assert_int_equal(o.v.bad.seq, 60000);
	db_audit_verify_free(&o);
}

/*
 * A batch of COPY_MIN or more goes in by COPY, smaller ones by INSERT: the
 * same awkward events (tab, newline, CR, backslash, quotes, UTF-8, NULLs,
 * JSON with escapes) written both ways are stored identically, and the
 * chain verifies.
 */
static void copy_and_insert_store_the_same_rows(void **state)
{
	(void)state;
	static const char *const odd[] = { "tab\there", "line\nbreak", "cr\rhere", "back\\slash", "quote\"'",
					   "ünïcødé ✓", "\\N", "end\\" };
	enum { N = 24 };
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(dburl, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct audit_event ev[N];
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < N; k++) {
			assert_int_equal(audit_event_init(&ev[k], odd[k % 8], "gateway.request", "success"), TSR_OK);
			ev[k].at_us = INT64_C(1790000000000000) + k * 1000003;
			ev[k].target = odd[(k + 1) % 8];
			ev[k].route = k % 3 ? odd[(k + 2) % 8] : NULL;
			ev[k].model = odd[(k + 3) % 8];
			ev[k].actor_addr = k % 2 ? "10.0.0.1" : NULL;
			ev[k].user_id = k % 4 ? k : 0;
			ev[k].req_bytes = k % 5 ? k * 10 : -1;
			ev[k].req_sha256_hex = k % 2 ? "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff" : NULL;
			ev[k].detail = k % 3 ? "{\"m\": \"a\\tb\\nc\\\\d \\\"q\\\" \\u00fc\", \"n\": [1, null]}" : NULL;
			ev[k].rule_hits = k % 4 == 1 ? "{\"us_ssn\": 2}" : NULL;
		}
		if (pass == 0) {
			for (int k = 0; k < N; k++)
				assert_int_equal(db_audit_append(c, &ev[k], 1), TSR_OK);
		} else {
			assert_int_equal(db_audit_append(c, ev, N), TSR_OK);
		}
	}
	db_release(pool, c);
	db_pool_free(pool);
	PGconn *a = connect_db(dbname);
	const char *cols = "at, actor_user_id, actor, actor_addr, action, target, outcome, user_id, repo_id, "
			   "credential_id, route, model, upstream, upstream_key_id, decision, rule_hits, req_bytes, "
			   "resp_bytes, req_sha256, status, latency_us, tokens_in, tokens_out, detail";
	char q[1024];
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM (SELECT %s FROM audit_events WHERE seq <= %d EXCEPT ALL "
		 "SELECT %s FROM audit_events WHERE seq > %d) d",
		 cols, N, cols, N);
	assert_string_equal(q1(a, q), "0");
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_events"), "48");
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_events WHERE target = E'line\\nbreak' AND seq > 24"), "3");
	assert_string_equal(q1(a, "SELECT detail->>'m' FROM audit_events WHERE seq = 26"), "a\tb\nc\\d \"q\" \xc3\xbc");
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_events WHERE route IS NULL AND seq > 24"), "8");
	PQfinish(a);
	struct audit_verify_out o;
	verify(NULL, NULL, &o);
	assert_int_equal(o.v.bad.problem, AUDIT_OK);
	assert_int_equal(o.v.count, 48);
	db_audit_verify_free(&o);
}

int main(void)
{
	url = getenv("TEST_PG_URL");
	if (!url) {
		fprintf(stderr, "TEST_PG_URL is not set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(intact_sealed_chain_verifies, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(altered_field_is_located_at_its_record, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(altered_json_detail_is_located, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(deleted_record_is_reported_removed, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(deleted_first_record_is_reported_removed, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(deleted_and_renumbered_record_is_reported_removed, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(swapped_records_are_reported_reordered, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(inserted_record_is_reported_at_its_position, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(duplicate_seq_is_reported_inserted, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(truncation_after_a_seal_is_detected, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(truncation_without_seal_is_caught_by_the_head, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(rewritten_history_is_caught_by_the_seal, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(forged_seal_signature_is_detected, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(sealer_refuses_to_seal_a_tampered_chain, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(time_range_verifies_only_its_records, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(keys_rotate_and_old_seals_still_verify, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(private_key_is_stored_only_encrypted, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(retention_drops_old_months_and_the_rest_still_verifies, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(retention_refuses_to_leave_a_hole_in_the_chain, fresh_db, drop_db),
		cmocka_unit_test_setup_teardown(parallel_verification_finds_the_first_problem_in_chain_order, fresh_db,
						drop_db),
		cmocka_unit_test_setup_teardown(copy_and_insert_store_the_same_rows, fresh_db, drop_db),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
