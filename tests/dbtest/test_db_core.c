/*
 * Tests of db/ against a real PostgreSQL (TEST_PG_URL, migrated):
 * the pool heals, LISTEN/NOTIFY reports missed notifications and
 * reconnects, the audit chain round-trips through Postgres, offboarding is
 * one idempotent receipt, and roles follow nested groups.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "db/db.h"
#include "db/audit.h"
#include "db/notify.h"
#include "db/offboard.h"
#include "db/roles.h"
#include "lib/config.h"
#include "lib/crypto.h"

static const char *url;

static PGconn *admin_conn(void)
{
	PGconn *c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

/* Run SQL with params on a plain connection and return the first value (static buffer). */
static const char *q1(PGconn *c, const char *sql, int n, const char *const *p)
{
	static char out[4096];
	PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	snprintf(out, sizeof(out), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static int64_t make_user(PGconn *c, const char *name)
{
	const char *p[] = { name };
	return strtoll(q1(c, "INSERT INTO users (user_name) VALUES ($1) RETURNING id", 1, p), NULL, 10);
}

/* The value of keyword kw in effect on c ("" when unset). */
static const char *option(PGconn *c, const char *kw)
{
	static char out[64];
	out[0] = '\0';
	PQconninfoOption *o = PQconninfo(c);
	for (PQconninfoOption *i = o; i && i->keyword; i++)
		if (strcmp(i->keyword, kw) == 0 && i->val)
			snprintf(out, sizeof(out), "%s", i->val);
	PQconninfoFree(o);
	return out;
}

static void connections_give_up_on_a_dead_peer_and_the_url_may_say_otherwise(void **state)
{
	(void)state;
	PGconn *c;
	assert_int_equal(db_connect(url, 5, &c), TSR_OK);
	assert_string_equal(option(c, "keepalives"), "1");
	assert_string_equal(option(c, "keepalives_idle"), "30");
	assert_string_equal(option(c, "tcp_user_timeout"), "10000");
	assert_string_equal(option(c, "connect_timeout"), "5");
	PQfinish(c);
	char u[1024];
	snprintf(u, sizeof(u), "%s%ctcp_user_timeout=2500&connect_timeout=60", url, strchr(url, '?') ? '&' : '?');
	assert_int_equal(db_connect(u, 7, &c), TSR_OK);
	assert_string_equal(option(c, "tcp_user_timeout"), "2500"); /* the URL's own choice */
	assert_string_equal(option(c, "connect_timeout"), "7");      /* [database] connect_timeout wins */
	PQfinish(c);
}

static void make_credential(PGconn *c, int64_t uid, const char *kind)
{
	uint8_t raw[32], h[32];
	char hex[65], id[24];
	assert_int_equal(crypto_random(raw, sizeof(raw)), TSR_OK);
	crypto_sha256(raw, sizeof(raw), h);
	crypto_hex(h, 32, hex);
	snprintf(id, sizeof(id), "%lld", (long long)uid);
	const char *p[] = { kind, hex, id };
	q1(c, "INSERT INTO credentials (kind, token_hash, user_id, expires_at) "
	      "VALUES ($1, decode($2, 'hex'), $3, now() + interval '15 minutes')",
	   3, p);
}

static void pool_heals_after_backend_is_killed(void **state)
{
	struct db_pool *pool;
	assert_int_equal(db_pool_new(url, 2, 5, &pool), TSR_OK);
	struct db_conn *c;
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	static const struct db_stmt s = { "test_pid", 0, "SELECT pg_backend_pid()" };
	tsr_rc rc;
	PGresult *r = db_exec(c, &s, 0, NULL, &rc);
	assert_non_null(r);
	char pid[16];
	snprintf(pid, sizeof(pid), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PGconn *a = admin_conn();
	const char *p[] = { pid };
	q1(a, "SELECT pg_terminate_backend($1::int)", 1, p);
	usleep(100000);
	r = db_exec(c, &s, 0, NULL, &rc);
	assert_null(r);
	assert_int_equal(rc, TSR_UNAVAILABLE);
	db_release(pool, c);
	/* the broken connection was dropped; the next borrower gets a fresh one */
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	r = db_exec(c, &s, 0, NULL, &rc);
	assert_non_null(r);
	assert_string_not_equal(PQgetvalue(r, 0, 0), pid);
	PQclear(r);
	db_release(pool, c);
	PQfinish(a);
	db_pool_free(pool);
}

static atomic_int notified, resets;
static char last_payload[128];

static void on_notify(void *arg, const char *channel, const char *payload)
{
	snprintf(last_payload, sizeof(last_payload), "%s", payload);
	atomic_fetch_add(&notified, 1);
}

static void on_reset(void *arg)
{
	atomic_fetch_add(&resets, 1);
}

static bool wait_until(atomic_int *v, int want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (atomic_load(v) >= want)
			return true;
		usleep(10000);
	}
	return atomic_load(v) >= want;
}

static void notify_reconnects_and_reports_missed_notifications(void **state)
{
	struct notify *nt;
	const char *chans[] = { "tessera_test" };
	struct notify_ops ops = { on_notify, on_reset, NULL };
	assert_int_equal(notify_start(url, chans, 1, &ops, &nt), TSR_OK);
	assert_true(wait_until(&resets, 1, 5000)); /* first connect: "may have missed" */
	PGconn *a = admin_conn();
	q1(a, "NOTIFY tessera_test, 'one'", 0, NULL);
	assert_true(wait_until(&notified, 1, 5000));
	assert_string_equal(last_payload, "one");

	char pid[16];
	snprintf(pid, sizeof(pid), "%d", notify_backend_pid(nt));
	const char *p[] = { pid };
	int before = atomic_load(&resets);
	q1(a, "SELECT pg_terminate_backend($1::int)", 1, p);
	/* lost (reset) and back (reset again) */
	assert_true(wait_until(&resets, before + 2, 10000));
	assert_true(notify_connected(nt));
	q1(a, "NOTIFY tessera_test, 'two'", 0, NULL);
	assert_true(wait_until(&notified, 2, 5000));
	assert_string_equal(last_payload, "two");
	PQfinish(a);
	notify_stop(nt);
}

static void audit_chain_round_trips_through_postgres(void **state)
{
	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(url, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct audit_event ev[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(audit_event_init(&ev[i], "tester", "test.event", "success"), TSR_OK);
	ev[0].detail = "{\"b\": 2, \"a\": [1, \"x\\\"y\"], \"u\": \"h\\u00e9\"}";
	ev[1].actor_addr = "127.0.0.1";
	ev[1].req_bytes = 0;
	ev[1].status = 200;
	ev[2].rule_hits = "{\"ssn\":1}";
	ev[2].req_sha256_hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	ev[2].actor_user_id = 42;
	assert_int_equal(db_audit_append(c, ev, 3), TSR_OK);
	db_release(pool, c);
	db_pool_free(pool);

	/* recompute every stored record's hash from what Postgres gives back */
	PGconn *a = admin_conn();
	PGresult *r = PQexec(a,
		"SELECT seq::text, ((extract(epoch FROM at) * 1000000)::bigint)::text, event_id::text, "
		"actor_user_id::text, actor, host(actor_addr), action, target, outcome, user_id::text, repo_id::text, "
		"credential_id::text, route, model, upstream, upstream_key_id::text, decision, rule_hits::text, "
		"req_bytes::text, resp_bytes::text, encode(req_sha256, 'hex'), status::text, latency_us::text, "
		"tokens_in::text, tokens_out::text, detail::text, encode(prev_hash, 'hex'), encode(hash, 'hex') "
		"FROM audit_events ORDER BY seq");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_true(PQntuples(r) >= 3);
	uint8_t prev[32] = { 0 };
	for (int i = 0; i < PQntuples(r); i++) {
		const char *f[AUF_NFIELDS];
		char *canon[2] = { NULL, NULL };
		for (int k = 0; k < AUF_NFIELDS; k++)
			f[k] = PQgetisnull(r, i, k) ? NULL : PQgetvalue(r, i, k);
		if (f[AUF_RULE_HITS]) {
			assert_int_equal(audit_canon_json(f[AUF_RULE_HITS], &canon[0]), TSR_OK);
			f[AUF_RULE_HITS] = canon[0];
		}
		if (f[AUF_DETAIL]) {
			assert_int_equal(audit_canon_json(f[AUF_DETAIL], &canon[1]), TSR_OK);
			f[AUF_DETAIL] = canon[1];
		}
		char prev_hex[65], h_hex[65];
		crypto_hex(prev, 32, prev_hex);
		assert_string_equal(PQgetvalue(r, i, AUF_NFIELDS), prev_hex);
		uint8_t h[32];
		audit_canon_hash(f, prev, h);
		crypto_hex(h, 32, h_hex);
		if (strcmp(PQgetvalue(r, i, AUF_NFIELDS + 1), h_hex) != 0)
			for (int k = 0; k < AUF_NFIELDS; k++)
				print_message("# record %d %s = %s\n", i, audit_field_names[k], f[k] ? f[k] : "NULL");
		assert_string_equal(PQgetvalue(r, i, AUF_NFIELDS + 1), h_hex);
		memcpy(prev, h, 32);
		free(canon[0]);
		free(canon[1]);
	}
	PQclear(r);
	/* and the table refuses edits */
	r = PQexec(a, "UPDATE audit_events SET actor = 'mallory'");
	assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
	PQclear(r);
	PQfinish(a);
}

static void offboard_revokes_everything_once(void **state)
{
	PGconn *a = admin_conn();
	int64_t uid = make_user(a, "offboard-me");
	make_credential(a, uid, "session");
	make_credential(a, uid, "access");
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)uid);
	const char *p[] = { id };
	q1(a, "INSERT INTO role_grants (user_id, role, via) VALUES ($1, 'developer', 'local')", 1, p);

	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(url, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	struct offboard_result res;
	assert_int_equal(db_offboard(c, uid, OFFBOARD_ADMIN, "alice", "left the company", &res), TSR_OK);
	assert_true(res.changed);
	assert_int_equal(res.credentials, 2);
	assert_int_equal(res.roles, 1);
	assert_int_equal(db_offboard(c, uid, OFFBOARD_HR, "hr-webhook", "again", &res), TSR_OK);
	assert_false(res.changed);
	assert_int_equal(db_offboard(c, 999999999, OFFBOARD_ADMIN, "alice", "x", &res), TSR_NOT_FOUND);
	db_release(pool, c);
	db_pool_free(pool);

	assert_string_equal(q1(a, "SELECT active::text FROM users WHERE id = $1", 1, p), "false");
	assert_string_equal(q1(a, "SELECT deactivated_by FROM users WHERE id = $1", 1, p), "admin");
	assert_string_equal(q1(a, "SELECT count(*) FROM credentials WHERE user_id = $1 AND revoked_at IS NULL", 1, p),
			    "0");
	assert_string_equal(q1(a, "SELECT count(*) FROM role_grants WHERE user_id = $1", 1, p), "0");
	assert_string_equal(q1(a, "SELECT count(*) FROM audit_events WHERE action = 'user.offboard' AND user_id = $1",
			       1, p),
			    "1");
	assert_string_equal(q1(a, "SELECT jsonb_array_length(detail->'credentials') FROM audit_events "
				  "WHERE action = 'user.offboard' AND user_id = $1",
			       1, p),
			    "2");
	PQfinish(a);
}

static void roles_follow_nested_groups_and_tolerate_cycles(void **state)
{
	PGconn *a = admin_conn();
	int64_t uid = make_user(a, "role-carol");
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)uid);
	const char *ga = q1(a, "INSERT INTO groups (name, source, external_id) VALUES ('Sec-Admins', 'ldap', 'g-a') "
			       "RETURNING id", 0, NULL);
	char gid_a[24];
	snprintf(gid_a, sizeof(gid_a), "%s", ga);
	char gid_b[24];
	snprintf(gid_b, sizeof(gid_b), "%s",
		 q1(a, "INSERT INTO groups (name, source, external_id) VALUES ('team-b', 'ldap', 'g-b') RETURNING id", 0,
		    NULL));
	const char *pab[] = { gid_a, gid_b };
	const char *pba[] = { gid_b, gid_a };
	q1(a, "INSERT INTO group_members (group_id, member_group_id) VALUES ($1, $2)", 2, pab);
	q1(a, "INSERT INTO group_members (group_id, member_group_id) VALUES ($1, $2)", 2, pba); /* a cycle */
	const char *pu[] = { gid_b, id };
	q1(a, "INSERT INTO group_members (group_id, member_user_id) VALUES ($1, $2)", 2, pu);

	struct config *cfg;
	FILE *devnull = fopen("/dev/null", "w");
	assert_int_equal(config_load(NULL, true, &cfg, devnull), TSR_OK);
	fclose(devnull);
	char *names[] = { strdup("sec-admins") };
	cfg->roles.admin.v = calloc(1, sizeof(char *));
	cfg->roles.admin.v[0] = names[0];
	cfg->roles.admin.n = 1;

	struct db_pool *pool;
	struct db_conn *c;
	assert_int_equal(db_pool_new(url, 1, 5, &pool), TSR_OK);
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	int added = -1, removed = -1;
	assert_int_equal(db_roles_sync(c, cfg, "test", &added, &removed), TSR_OK);
	assert_int_equal(added, 1);
	assert_int_equal(removed, 0);
	const char *p[] = { id };
	assert_string_equal(q1(a, "SELECT role || ' ' || via FROM role_grants WHERE user_id = $1", 1, p),
			    "admin group:Sec-Admins");
	/* nothing changed: nothing written */
	assert_int_equal(db_roles_sync(c, cfg, "test", &added, &removed), TSR_OK);
	assert_int_equal(added + removed, 0);
	q1(a, "DELETE FROM group_members WHERE member_user_id = $1", 1, p);
	assert_int_equal(db_roles_sync(c, cfg, "test", &added, &removed), TSR_OK);
	assert_int_equal(removed, 1);
	assert_string_equal(q1(a, "SELECT count(*) FROM role_grants WHERE user_id = $1", 1, p), "0");
	db_release(pool, c);
	db_pool_free(pool);
	config_free(cfg);
	PQfinish(a);
}

int main(void)
{
	url = getenv("TEST_PG_URL");
	if (!url) {
		fprintf(stderr, "TEST_PG_URL is not set: run through tests/integration/db_suite.sh\n");
		return 2;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(connections_give_up_on_a_dead_peer_and_the_url_may_say_otherwise),
		cmocka_unit_test(pool_heals_after_backend_is_killed),
		cmocka_unit_test(notify_reconnects_and_reports_missed_notifications),
		cmocka_unit_test(audit_chain_round_trips_through_postgres),
		cmocka_unit_test(offboard_revokes_everything_once),
		cmocka_unit_test(roles_follow_nested_groups_and_tolerate_cycles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
