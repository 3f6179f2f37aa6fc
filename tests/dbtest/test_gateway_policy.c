/*
 * Tests of db/policy.c's gateway statements against a real PostgreSQL
 * (TEST_PG_URL, migrated): rate-window leases racing on many connections
 * never hand out more than the limit, a spent window grants nothing and
 * says when it ends, daily token budget reservations racing on many
 * connections never pass the budget and settle to what was used, a user's membership of model_access groups follows
 * nested groups (cycles tolerated, GitHub teams not counted), and a token's
 * check carries its repositories' classifications (the gateway's policy
 * reads them there, with no query of its own) and a reclassification by the
 * GitHub sync is notified, so token caches drop what they hold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "db/credential.h"
#include "db/db.h"
#include "db/policy.h"
#include "db/repo_perm.h"

static const char *url;

/* Run SQL (params $1.. from p) on a plain connection; the first value (static buffer). */
static const char *qp(PGconn *c, const char *sql, int n, const char *const *p)
{
	static char out[256];
	PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	snprintf(out, sizeof(out), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static const char *q1(PGconn *c, const char *sql)
{
	return qp(c, sql, 0, NULL);
}

struct racer {
	struct db_pool *pool;
	int64_t user_id;
	int granted;
	int failures;
};

static void *race(void *arg)
{
	struct racer *x = arg;
	for (;;) {
		struct db_conn *c;
		if (db_acquire(x->pool, 5000, &c) != TSR_OK) {
			x->failures++;
			return NULL;
		}
		int g = 0;
		int64_t ws = 0, left = 0;
		tsr_rc rc = db_rate_lease(c, x->user_id, 3, 100, &g, &ws, &left);
		db_release(x->pool, c);
		if (rc != TSR_OK) {
			x->failures++;
			return NULL;
		}
		if (g == 0)
			return NULL;
		x->granted += g;
	}
}

static void racing_leases_never_pass_the_limit(void **state)
{
	(void)state;
	PGconn *a = PQconnectdb(url);
	assert_int_equal(PQstatus(a), CONNECTION_OK);
	/* far from a minute's end, so the race stays in one window */
	int sec = (int)strtol(q1(a, "SELECT extract(second FROM now())::int"), NULL, 10);
	if (sec > 50) {
		struct timespec ts = { 61 - sec, 0 };
		nanosleep(&ts, NULL);
	}
	int64_t uid = strtoll(q1(a, "INSERT INTO users (user_name) VALUES ('racer') RETURNING id"), NULL, 10);
	struct db_pool *pool;
	assert_int_equal(db_pool_new(url, 8, 5, &pool), TSR_OK);
	struct racer r[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		r[i] = (struct racer){ pool, uid, 0, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	int total = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].failures, 0);
		total += r[i].granted;
	}
	assert_int_equal(total, 100);
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)uid);
	const char *p[] = { id };
	static const char used_sql[] = "SELECT used FROM rate_windows WHERE user_id = $1";
	assert_string_equal(qp(a, used_sql, 1, p), "100");

	/* spent: nothing more, and the window's end is within the minute */
	struct db_conn *c;
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	int g = -1;
	int64_t ws = 0, left = -1;
	assert_int_equal(db_rate_lease(c, uid, 5, 100, &g, &ws, &left), TSR_OK);
	assert_int_equal(g, 0);
	assert_true(ws % 60 == 0);
	assert_true(left > 0 && left <= 60000);
	/* a last partial slice: limit raised to 102, a want of 5 gets 2 */
	assert_int_equal(db_rate_lease(c, uid, 5, 102, &g, &ws, &left), TSR_OK);
	assert_int_equal(g, 2);
	/* pruning keeps the current window */
	assert_int_equal(db_rate_prune(c), TSR_OK);
	db_release(pool, c);
	assert_string_equal(qp(a, used_sql, 1, p), "102");
	db_pool_free(pool);
	PQfinish(a);
}

struct reserver {
	struct db_pool *pool;
	int64_t user_id;
	int granted, refused, failures;
};

/* Reserve 7 tokens at a time against a budget of 100 until refused. */
static void *reserve_race(void *arg)
{
	struct reserver *x = arg;
	for (;;) {
		struct db_conn *c;
		if (db_acquire(x->pool, 5000, &c) != TSR_OK) {
			x->failures++;
			return NULL;
		}
		bool g = false;
		int64_t spent = -1;
		tsr_rc rc = db_usage_reserve(c, x->user_id, 7, 100, &g, &spent);
		db_release(x->pool, c);
		if (rc != TSR_OK || spent < 0 || spent > 100) {
			x->failures++;
			return NULL;
		}
		if (!g) {
			x->refused++;
			return NULL;
		}
		x->granted++;
	}
}

static void racing_budget_reservations_never_pass_the_budget(void **state)
{
	(void)state;
	PGconn *a = PQconnectdb(url);
	assert_int_equal(PQstatus(a), CONNECTION_OK);
	/* not across midnight UTC, where the budget's day changes */
	int sec = (int)strtol(q1(a, "SELECT (extract(epoch FROM now())::bigint % 86400)::int"), NULL, 10);
	if (sec > 86390) {
		struct timespec ts = { 86401 - sec, 0 };
		nanosleep(&ts, NULL);
	}
	int64_t uid = strtoll(q1(a, "INSERT INTO users (user_name) VALUES ('spender') RETURNING id"), NULL, 10);
	struct db_pool *pool;
	assert_int_equal(db_pool_new(url, 8, 5, &pool), TSR_OK);
	struct reserver r[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		r[i] = (struct reserver){ pool, uid, 0, 0, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reserve_race, &r[i]), 0);
	}
	int granted = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].failures, 0);
		assert_int_equal(r[i].refused, 1);
		granted += r[i].granted;
	}
	assert_int_equal(granted, 14); /* 14 * 7 = 98 <= 100 < 15 * 7 */
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)uid);
	const char *p[] = { id };
	static const char row[] = "SELECT tokens_reserved || ' ' || tokens_used || ' ' || requests || ' ' || bytes_out "
				  "FROM usage_counters WHERE user_id = $1";
	assert_string_equal(qp(a, row, 1, p), "98 0 14 0");

	/* settling: one request used 3 of its 7, another all 7 plus 2 more (an estimate can fall short) */
	struct db_conn *c;
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	assert_int_equal(db_usage_settle(c, uid, 7, 3, 100), TSR_OK);
	assert_int_equal(db_usage_settle(c, uid, 7, 9, 50), TSR_OK);
	assert_string_equal(qp(a, row, 1, p), "84 12 14 150");
	/* what was given back can be reserved again: 100 - 84 - 12 = 4 left, so 4 fit and 5 do not */
	bool g = false;
	int64_t spent = 0;
	assert_int_equal(db_usage_reserve(c, uid, 5, 100, &g, &spent), TSR_OK);
	assert_false(g);
	assert_int_equal(spent, 96);
	assert_int_equal(db_usage_reserve(c, uid, 4, 100, &g, &spent), TSR_OK);
	assert_true(g);
	assert_int_equal(spent, 100);
	db_release(pool, c);
	db_pool_free(pool);
	PQfinish(a);
}

static void group_mask_follows_nested_groups_and_tolerates_cycles(void **state)
{
	(void)state;
	PGconn *a = PQconnectdb(url);
	assert_int_equal(PQstatus(a), CONNECTION_OK);
	int64_t uid = strtoll(q1(a, "INSERT INTO users (user_name) VALUES ('grouped') RETURNING id"), NULL, 10);
	q1(a, "INSERT INTO groups (name, source) VALUES ('ML-Outer', 'ldap'), ('mid', 'scim'), ('inner', 'ldap'), "
	      "('gh-team', 'github'), ('elsewhere', 'ldap')");
	/* outer > mid > inner > outer (a cycle); the user is in inner and in the GitHub team */
	q1(a, "INSERT INTO group_members (group_id, member_group_id) "
	      "SELECT g.id, m.id FROM groups g, groups m WHERE (g.name, m.name) IN "
	      "(('ML-Outer', 'mid'), ('mid', 'inner'), ('inner', 'ML-Outer'))");
	char id[24];
	snprintf(id, sizeof(id), "%lld", (long long)uid);
	const char *p[] = { id };
	qp(a, "INSERT INTO group_members (group_id, member_user_id) SELECT id, $1 FROM groups "
	      "WHERE name IN ('inner', 'gh-team')",
	   1, p);
	struct db_pool *pool;
	assert_int_equal(db_pool_new(url, 1, 5, &pool), TSR_OK);
	struct db_conn *c;
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	const char *names[] = { "ml-outer", "elsewhere", "gh-team", "mid", "nosuch" };
	uint64_t mask = 99;
	assert_int_equal(db_user_group_mask(c, uid, names, 5, &mask), TSR_OK);
	assert_int_equal(mask, (1u << 0) | (1u << 3));
	assert_int_equal(db_user_group_mask(c, uid + 1000000, names, 5, &mask), TSR_OK);
	assert_int_equal(mask, 0);
	db_release(pool, c);
	db_pool_free(pool);
	PQfinish(a);
}

static void token_check_carries_the_union_of_its_repositories_classifications(void **state)
{
	(void)state;
	PGconn *a = PQconnectdb(url);
	assert_int_equal(PQstatus(a), CONNECTION_OK);
	const char *uid = q1(a, "INSERT INTO users (user_name) VALUES ('classy') RETURNING id");
	const char *p[] = { uid };
	/* three repositories, one unclassified; a token scoped to all three, one scoped to the plain one */
	const char *cred = qp(a,
			      "WITH r AS (INSERT INTO repositories (owner, name, classifications) VALUES "
			      "  ('acme', 'ehr', '{phi,pci}'), ('acme', 'plain', '{}'), ('acme', 'cards', '{pci,internal}') "
			      "  RETURNING id, name), "
			      "c AS (INSERT INTO credentials (kind, token_hash, user_id, auth_method, expires_at) "
			      "  VALUES ('access', sha256('classy-token'), $1, 'local', now() + interval '1 hour') RETURNING id), "
			      "d AS (INSERT INTO credentials (kind, token_hash, user_id, auth_method, expires_at) "
			      "  VALUES ('access', sha256('plain-token'), $1, 'local', now() + interval '1 hour') RETURNING id), "
			      "x AS (INSERT INTO credential_repos (credential_id, repo_id) "
			      "  SELECT c.id, r.id FROM c, r UNION ALL SELECT d.id, r.id FROM d, r WHERE r.name = 'plain') "
			      "SELECT id FROM c",
			      1, p);
	assert_true(*cred);
	struct db_pool *pool;
	assert_int_equal(db_pool_new(url, 1, 5, &pool), TSR_OK);
	struct db_conn *c;
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	uint8_t h[32];
	const char *hex = q1(a, "SELECT encode(sha256('classy-token'), 'hex')");
	for (int i = 0; i < 32; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &h[i]), 1);
	struct principal who;
	assert_int_equal(db_credential_lookup(c, h, &who), TSR_OK);
	assert_int_equal(who.n_repos, 3);
	assert_string_equal(who.classes, "phi,pci,internal"); /* repository order, each once */
	hex = q1(a, "SELECT encode(sha256('plain-token'), 'hex')");
	for (int i = 0; i < 32; i++)
		assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &h[i]), 1);
	assert_int_equal(db_credential_lookup(c, h, &who), TSR_OK);
	assert_int_equal(who.n_repos, 1);
	assert_string_equal(who.classes, "");
	/* a reclassification is seen by the next check */
	q1(a, "UPDATE repositories SET classifications = '{pci}' WHERE name = 'plain'");
	assert_int_equal(db_credential_lookup(c, h, &who), TSR_OK);
	assert_string_equal(who.classes, "pci");
	db_release(pool, c);
	db_pool_free(pool);
	PQfinish(a);
}

/* The payloads of the notifications a has received on its channels so far, comma-separated. */
static void notes(PGconn *a, char *out, size_t n)
{
	out[0] = '\0';
	PQconsumeInput(a);
	PGnotify *m;
	while ((m = PQnotifies(a)) != NULL) {
		size_t used = strlen(out);
		snprintf(out + used, n - used, "%s%s", used ? "," : "", m->extra);
		PQfreemem(m);
	}
}

static void a_reclassification_by_the_sync_is_notified(void **state)
{
	(void)state;
	PGconn *a = PQconnectdb(url);
	assert_int_equal(PQstatus(a), CONNECTION_OK);
	const char *id = q1(a, "INSERT INTO repositories (host, owner, name, external_id, visibility) "
			       "VALUES ('github', 'acme', 'notified', 424242, 'private') RETURNING id");
	char want[40], got[256];
	snprintf(want, sizeof(want), "repo:%s", id);
	q1(a, "LISTEN tessera_perm");
	struct db_pool *pool;
	assert_int_equal(db_pool_new(url, 1, 5, &pool), TSR_OK);
	struct db_conn *c;
	assert_int_equal(db_acquire(pool, 2000, &c), TSR_OK);
	const char *phi[] = { "phi" }, *topics[] = { "phi-data" };
	bool changed = false;
	assert_int_equal(db_rp_update_repo(c, 424242, "acme", "notified", "private", false, topics, 1, phi, 1, &changed),
			 TSR_OK);
	assert_true(changed);
	q1(a, "SELECT 1"); /* a round trip: the notification (sent at the sync's commit) has arrived */
	notes(a, got, sizeof(got));
	assert_string_equal(got, want);
	/* the same classifications again: nothing to notify */
	assert_int_equal(db_rp_update_repo(c, 424242, "acme", "notified", "private", false, topics, 1, phi, 1, &changed),
			 TSR_OK);
	q1(a, "SELECT 1");
	notes(a, got, sizeof(got));
	assert_string_equal(got, "");
	db_release(pool, c);
	db_pool_free(pool);
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
		cmocka_unit_test(racing_leases_never_pass_the_limit),
		cmocka_unit_test(racing_budget_reservations_never_pass_the_budget),
		cmocka_unit_test(group_mask_follows_nested_groups_and_tolerates_cycles),
		cmocka_unit_test(token_check_carries_the_union_of_its_repositories_classifications),
		cmocka_unit_test(a_reclassification_by_the_sync_is_notified),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
