/*
 * audit_tool — writes valid, chained audit records for tests and
 * benchmarks, following the writer protocol of audit_chain_head.
 *
 *   audit_tool gen URL N [--days D] [--users U] [--repos R] [--seal-every K]
 *       N gateway.request records spread evenly over the last D days
 *       (default 1), user_id 1..U (default 100), repo_id 1..R (default 50),
 *       hashed here and loaded with one COPY in one transaction (fast:
 *       ~millions per minute). --seal-every K also writes a seal after
 *       every K records with a test key whose public half is registered in
 *       audit_keys (retired, so it holds no private key); the private key
 *       goes to stderr as "seal key: HEX" for tests that sign more.
 *   audit_tool append URL
 *       one event per stdin line as JSON, appended with db_audit_append()
 *       (the code path tesserad uses): {"action","actor","outcome","at"
 *       (ISO-8601 UTC, optional),"user_id","repo_id","credential_id",
 *       "route","model","upstream","decision","rule_hits","req_bytes",
 *       "resp_bytes","req_sha256","status","latency_us","tokens_in",
 *       "tokens_out","target","detail"}.
 *
 * Prints "appended N records, head seq S" on success; exit 1 on failure.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "db/audit.h"
#include "db/db.h"
#include "lib/audit_seal.h"
#include "lib/audit_verify.h"
#include "lib/crypto.h"

static int die(PGconn *c, const char *what)
{
	fprintf(stderr, "audit_tool: %s: %s\n", what, c ? PQerrorMessage(c) : "");
	return 1;
}

static void at_text(int64_t us, char out[40])
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(out, 40, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int gen(const char *url, long n, int argc, char **argv)
{
	long days = 1, users = 100, repos = 50, seal_every = 0;
	for (int i = 0; i + 1 < argc; i += 2) {
		long v = strtol(argv[i + 1], NULL, 10);
		if (strcmp(argv[i], "--days") == 0)
			days = v;
		else if (strcmp(argv[i], "--users") == 0)
			users = v;
		else if (strcmp(argv[i], "--repos") == 0)
			repos = v;
		else if (strcmp(argv[i], "--seal-every") == 0)
			seal_every = v;
	}
	if (days < 1 || users < 1 || repos < 1 || seal_every < 0)
		return 2;
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		return die(c, "connect");
	PQclear(PQexec(c, "BEGIN"));
	PQclear(PQexec(c, "SET LOCAL synchronous_commit = off"));
	PGresult *r = PQexec(c, "SELECT seq, encode(hash, 'hex') FROM audit_chain_head FOR UPDATE");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		return die(c, "head");
	int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	uint8_t prev[32];
	if (!crypto_unhex(PQgetvalue(r, 0, 1), prev, 32))
		return die(NULL, "head hash");
	PQclear(r);

	uint8_t pub[32], priv[32];
	char key_id[65] = "";
	if (seal_every) {
		if (audit_ed25519_keygen(pub, priv) != TSR_OK)
			return die(NULL, "keygen");
		audit_key_id(pub, key_id);
		char pubhex[65], privhex[65];
		crypto_hex(pub, 32, pubhex);
		crypto_hex(priv, 32, privhex);
		const char *p[] = { key_id, pubhex };
		r = PQexecParams(c, "INSERT INTO audit_keys (id, public_key, retired_at) VALUES ($1, decode($2, 'hex'), now())",
				 2, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return die(c, "insert key");
		PQclear(r);
		fprintf(stderr, "seal key: %s\n", privhex);
		OPENSSL_cleanse(privhex, sizeof(privhex));
	}

	r = PQexec(c, "COPY audit_events (seq, at, event_id, actor, action, outcome, user_id, repo_id, credential_id, "
		      "route, model, upstream, decision, rule_hits, req_bytes, resp_bytes, req_sha256, status, latency_us, "
		      "tokens_in, tokens_out, detail, prev_hash, hash) FROM STDIN");
	if (PQresultStatus(r) != PGRES_COPY_IN)
		return die(c, "copy");
	PQclear(r);

	static const char *const upstreams[] = { "azure-east", "onprem-vllm", "anthropic" };
	static const char *const models[] = { "gpt-4o", "llama-3-70b", "claude-sonnet" };
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t end_us = (int64_t)now.tv_sec * 1000000 - 1000000;
	int64_t span = (int64_t)days * 86400 * 1000000;
	int64_t step = n > 0 ? span / n : 1;
	if (step < 1)
		step = 1;
	int64_t at_us = end_us - step * n;
	struct audit_verifier hv;
	audit_verify_init(&hv);
	char *line = malloc(8192);
	struct { int64_t seq, at; uint8_t h[32]; } *seals = NULL;
	size_t nseals = 0;
	if (seal_every)
		seals = calloc((size_t)(n / seal_every + 1), sizeof(*seals));
	for (long i = 0; i < n; i++) {
		at_us += step;
		seq++;
		uint64_t x = next_rand();
		char num[12][24], eid[37], sha[65], prev_hex[65], hash_hex[65], at[40];
		uint8_t u[16], s[32];
		for (int k = 0; k < 16; k++)
			u[k] = (uint8_t)(next_rand() >> 24);
		u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
		u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
		snprintf(eid, sizeof(eid), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
			 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
		for (int k = 0; k < 32; k++)
			s[k] = (uint8_t)(next_rand() >> 16);
		crypto_hex(s, 32, sha);
		int up = (int)(x % 3);
		bool blocked = x % 50 == 7;
		const char *f[AUF_NFIELDS] = { 0 };
		snprintf(num[0], 24, "%" PRId64, seq);
		snprintf(num[1], 24, "%" PRId64, at_us);
		snprintf(num[2], 24, "%ld", (long)(x % (uint64_t)users) + 1);
		snprintf(num[3], 24, "%ld", (long)((x >> 8) % (uint64_t)repos) + 1);
		snprintf(num[4], 24, "%ld", (long)((x >> 16) % 100000) + 1);
		snprintf(num[5], 24, "%ld", blocked ? 0L : (long)(x >> 20) % 20000 + 200);
		snprintf(num[6], 24, "%ld", blocked ? 0L : (long)(x >> 30) % 60000 + 100);
		snprintf(num[7], 24, "%d", blocked ? 403 : 200);
		snprintf(num[8], 24, "%ld", (long)(x >> 34) % 3000000 + 1000);
		snprintf(num[9], 24, "%ld", blocked ? 0L : (long)(x >> 40) % 8000);
		snprintf(num[10], 24, "%ld", blocked ? 0L : (long)(x >> 44) % 4000);
		f[AUF_SEQ] = num[0];
		f[AUF_AT_US] = num[1];
		f[AUF_EVENT_ID] = eid;
		char actor[24];
		snprintf(actor, sizeof(actor), "user%s", num[2]);
		f[AUF_ACTOR] = actor;
		f[AUF_ACTION] = "gateway.request";
		f[AUF_OUTCOME] = blocked ? "denied" : "success";
		f[AUF_USER_ID] = num[2];
		f[AUF_REPO_ID] = num[3];
		f[AUF_CREDENTIAL_ID] = num[4];
		f[AUF_ROUTE] = up == 2 ? "/anthropic/v1/messages" : "/openai/v1/chat/completions";
		f[AUF_MODEL] = models[up];
		f[AUF_UPSTREAM] = upstreams[up];
		f[AUF_DECISION] = blocked ? "block" : "allow";
		f[AUF_RULE_HITS] = blocked ? "{\"aws_access_key\":1}" : NULL;
		f[AUF_REQ_BYTES] = num[5];
		f[AUF_RESP_BYTES] = num[6];
		f[AUF_REQ_SHA256] = sha;
		f[AUF_STATUS] = num[7];
		f[AUF_LATENCY_US] = num[8];
		f[AUF_TOKENS_IN] = num[9];
		f[AUF_TOKENS_OUT] = num[10];
		f[AUF_DETAIL] = x % 5 == 0 ? "{\"client\":\"claude-code\",\"stream\":true}" : NULL;
		uint8_t h[32];
		audit_verify_hash(&hv, f, prev, h);
		crypto_hex(prev, 32, prev_hex);
		crypto_hex(h, 32, hash_hex);
		at_text(at_us, at);
		int len = snprintf(line, 8192,
				   "%s\t%s\t%s\t%s\tgateway.request\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\\\\x%s\t%s\t%s\t%s\t%s\t%s\t\\\\x%s\t\\\\x%s\n",
				   num[0], at, eid, actor, f[AUF_OUTCOME], num[2], num[3], num[4], f[AUF_ROUTE],
				   f[AUF_MODEL], f[AUF_UPSTREAM], f[AUF_DECISION], blocked ? f[AUF_RULE_HITS] : "\\N",
				   num[5], num[6], sha, num[7], num[8], num[9], num[10],
				   f[AUF_DETAIL] ? f[AUF_DETAIL] : "\\N", prev_hex, hash_hex);
		if (PQputCopyData(c, line, len) != 1)
			return die(c, "copy data");
		memcpy(prev, h, 32);
		if (seal_every && (i + 1) % seal_every == 0) {
			seals[nseals].seq = seq;
			seals[nseals].at = at_us + 1;
			memcpy(seals[nseals].h, h, 32);
			nseals++;
		}
	}
	if (PQputCopyEnd(c, NULL) != 1)
		return die(c, "copy end");
	r = PQgetResult(c);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return die(c, "copy result");
	PQclear(r);
	for (size_t i = 0; i < nseals; i++) {
		char msg[256], sig_hex[129], hh[65], sq[24], at[40];
		uint8_t sig[64];
		size_t ml = audit_seal_message(seals[i].seq, seals[i].h, seals[i].at, key_id, msg, sizeof(msg));
		if (!ml || audit_ed25519_sign(priv, msg, ml, sig) != TSR_OK)
			return die(NULL, "sign");
		crypto_hex(sig, 64, sig_hex);
		crypto_hex(seals[i].h, 32, hh);
		snprintf(sq, sizeof(sq), "%" PRId64, seals[i].seq);
		at_text(seals[i].at, at);
		const char *p[] = { sq, hh, sig_hex, key_id, at };
		r = PQexecParams(c, "INSERT INTO audit_seals (seq_upto, head_hash, signature, key_id, sealed_at) "
				    "VALUES ($1, decode($2, 'hex'), decode($3, 'hex'), $4, $5::timestamptz)",
				 5, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			return die(c, "insert seal");
		PQclear(r);
	}
	OPENSSL_cleanse(priv, sizeof(priv));
	char sq[24], hx[65];
	snprintf(sq, sizeof(sq), "%" PRId64, seq);
	crypto_hex(prev, 32, hx);
	const char *hp[] = { sq, hx };
	r = PQexecParams(c, "UPDATE audit_chain_head SET seq = $1, hash = decode($2, 'hex'), updated_at = now()", 2, NULL,
			 hp, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return die(c, "head move");
	PQclear(r);
	r = PQexec(c, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return die(c, "commit");
	PQclear(r);
	printf("appended %ld records, head seq %" PRId64 "\n", n, seq);
	free(line);
	free(seals);
	audit_verify_free(&hv);
	PQfinish(c);
	return 0;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t jint(json_t *o, const char *k, int64_t dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static int append(const char *url)
{
	struct db_pool *pool;
	struct db_conn *c;
	if (db_pool_new(url, 1, 5, &pool) != TSR_OK || db_acquire(pool, 5000, &c) != TSR_OK)
		return die(NULL, "connect");
	char line[65536];
	long n = 0;
	int status = 0;
	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == '\n' || line[0] == '#')
			continue;
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);
		if (!j) {
			fprintf(stderr, "audit_tool: line %ld: %s\n", n + 1, e.text);
			status = 1;
			break;
		}
		struct audit_event ev;
		if (audit_event_init(&ev, jstr(j, "actor") ? jstr(j, "actor") : "test",
				     jstr(j, "action") ? jstr(j, "action") : "gateway.request",
				     jstr(j, "outcome") ? jstr(j, "outcome") : "success") != TSR_OK) {
			json_decref(j);
			status = 1;
			break;
		}
		if (jstr(j, "at") && !audit_time_parse(jstr(j, "at"), &ev.at_us)) {
			fprintf(stderr, "audit_tool: line %ld: at must look like 2026-01-02T03:04:05.000000Z\n", n + 1);
			json_decref(j);
			status = 1;
			break;
		}
		ev.user_id = jint(j, "user_id", 0);
		ev.repo_id = jint(j, "repo_id", 0);
		ev.credential_id = jint(j, "credential_id", 0);
		ev.actor_user_id = jint(j, "actor_user_id", 0);
		ev.route = jstr(j, "route");
		ev.model = jstr(j, "model");
		ev.upstream = jstr(j, "upstream");
		ev.decision = jstr(j, "decision");
		ev.target = jstr(j, "target");
		ev.req_sha256_hex = jstr(j, "req_sha256");
		ev.req_bytes = jint(j, "req_bytes", -1);
		ev.resp_bytes = jint(j, "resp_bytes", -1);
		ev.status = jint(j, "status", -1);
		ev.latency_us = jint(j, "latency_us", -1);
		ev.tokens_in = jint(j, "tokens_in", -1);
		ev.tokens_out = jint(j, "tokens_out", -1);
		char *rule_hits = json_object_get(j, "rule_hits") ? json_dumps(json_object_get(j, "rule_hits"), JSON_COMPACT) : NULL;
		char *detail = json_object_get(j, "detail") ? json_dumps(json_object_get(j, "detail"), JSON_COMPACT) : NULL;
		ev.rule_hits = rule_hits;
		ev.detail = detail;
		tsr_rc rc = db_audit_append(c, &ev, 1);
		free(rule_hits);
		free(detail);
		json_decref(j);
		if (rc != TSR_OK) {
			fprintf(stderr, "audit_tool: line %ld: append failed (%s)\n", n + 1, status_name(rc));
			status = 1;
			break;
		}
		n++;
	}
	PGresult *r = PQexec(c->pg, "SELECT seq FROM audit_chain_head");
	if (status == 0)
		printf("appended %ld records, head seq %s\n", n, PQntuples(r) ? PQgetvalue(r, 0, 0) : "?");
	PQclear(r);
	db_release(pool, c);
	db_pool_free(pool);
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "gen") == 0)
		return gen(argv[2], strtol(argv[3], NULL, 10), argc - 4, argv + 4);
	if (argc == 3 && strcmp(argv[1], "append") == 0)
		return append(argv[2]);
	fprintf(stderr, "usage: audit_tool gen URL N [--days D] [--users U] [--repos R] [--seal-every K]\n"
			"       audit_tool append URL < events.jsonl\n");
	return 2;
}
