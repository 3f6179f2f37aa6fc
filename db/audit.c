/*
 * audit.c — see audit.h.
 *
 * The canonical text of every field is computed here once, hashed, and the
 * same text is what gets inserted, so what the database holds is exactly
 * what was hashed (timestamps travel as integer microseconds, JSON in its
 * canonical form).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"
#include "../lib/json_write.h"
#include "../lib/log.h"

static const struct db_stmt S_HEAD_LOCK = { "audit_head_lock", 0,
	"SELECT seq, encode(hash, 'hex') FROM audit_chain_head FOR UPDATE" };
/*
 * Parameters in audit_canon.h field order, then prev_hash, hash, and `at`
 * again as an exact timestamp text ($2, the integer microseconds, is only
 * hashed: interval arithmetic in SQL goes through floating point). If the
 * two ever disagree, `at` becomes NULL and the NOT NULL constraint refuses
 * the record rather than storing one that cannot verify.
 */
static const struct db_stmt S_INSERT = { "audit_insert", 29,
	"INSERT INTO audit_events (seq, at, event_id, actor_user_id, actor, actor_addr, action, target, "
	"  outcome, user_id, repo_id, credential_id, route, model, upstream, upstream_key_id, decision, "
	"  rule_hits, req_bytes, resp_bytes, req_sha256, status, latency_us, tokens_in, tokens_out, detail, "
	"  prev_hash, hash) "
	"VALUES ($1, CASE WHEN (extract(epoch FROM $29::timestamptz) * 1000000)::bigint = $2::bigint "
	"            THEN $29::timestamptz END, $3::uuid, $4, $5, $6::inet, $7, $8, "
	"  $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb, $19, $20, decode($21, 'hex'), $22, $23, $24, "
	"  $25, $26::jsonb, decode($27, 'hex'), decode($28, 'hex'))" };
static const struct db_stmt S_HEAD_MOVE = { "audit_head_move", 2,
	"UPDATE audit_chain_head SET seq = $1, hash = decode($2, 'hex'), updated_at = now()" };
/* Batches of at least COPY_MIN records are sent with COPY: about a third of PostgreSQL's CPU per record. */
#define COPY_MIN 8


tsr_rc audit_event_init(struct audit_event *e, const char *actor, const char *action, const char *outcome)
{
	memset(e, 0, sizeof(*e));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	uint8_t u[16];
	if (crypto_random_id(u, sizeof(u)) != TSR_OK)
		return TSR_INTERNAL;
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	/* 8-4-4-4-12 hex digits (crypto_hex; snprintf of 16 %02x cost more than the rest of this function) */
	char hex[33];
	crypto_hex(u, sizeof(u), hex);
	char *d = e->event_id;
	for (int i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			*d++ = '-';
		*d++ = hex[i];
	}
	*d = '\0';
	e->actor = actor;
	e->action = action;
	e->outcome = outcome;
	e->req_bytes = e->resp_bytes = e->status = e->latency_us = e->tokens_in = e->tokens_out = -1;
	return TSR_OK;
}

struct canon {
	char num[AUF_NFIELDS][JSON_WRITE_INT_MAX];
	char *json_rule_hits, *json_detail;
	const char *f[AUF_NFIELDS];
};

/* Decimal text of the numeric fields: json_write_i64 rather than snprintf, a dozen per record on the hot path. */
static const char *id_or_null(char *slot, int64_t v)
{
	if (v <= 0)
		return NULL;
	json_write_i64(slot, v);
	return slot;
}

static const char *count_or_null(char *slot, int64_t v)
{
	if (v < 0)
		return NULL;
	json_write_i64(slot, v);
	return slot;
}

static tsr_rc canon_fill(struct canon *k, const struct audit_event *e, int64_t seq)
{
	memset(k, 0, sizeof(*k));
	if (!e->actor || !e->action || !e->outcome)
		return TSR_INVALID;
	json_write_i64(k->num[AUF_SEQ], seq);
	json_write_i64(k->num[AUF_AT_US], e->at_us);
	k->f[AUF_SEQ] = k->num[AUF_SEQ];
	k->f[AUF_AT_US] = k->num[AUF_AT_US];
	k->f[AUF_EVENT_ID] = e->event_id;
	k->f[AUF_ACTOR_USER_ID] = id_or_null(k->num[AUF_ACTOR_USER_ID], e->actor_user_id);
	k->f[AUF_ACTOR] = e->actor;
	k->f[AUF_ACTOR_ADDR] = e->actor_addr && *e->actor_addr ? e->actor_addr : NULL;
	k->f[AUF_ACTION] = e->action;
	k->f[AUF_TARGET] = e->target;
	k->f[AUF_OUTCOME] = e->outcome;
	k->f[AUF_USER_ID] = id_or_null(k->num[AUF_USER_ID], e->user_id);
	k->f[AUF_REPO_ID] = id_or_null(k->num[AUF_REPO_ID], e->repo_id);
	k->f[AUF_CREDENTIAL_ID] = id_or_null(k->num[AUF_CREDENTIAL_ID], e->credential_id);
	k->f[AUF_ROUTE] = e->route;
	k->f[AUF_MODEL] = e->model;
	k->f[AUF_UPSTREAM] = e->upstream;
	k->f[AUF_UPSTREAM_KEY_ID] = id_or_null(k->num[AUF_UPSTREAM_KEY_ID], e->upstream_key_id);
	k->f[AUF_DECISION] = e->decision;
	k->f[AUF_REQ_BYTES] = count_or_null(k->num[AUF_REQ_BYTES], e->req_bytes);
	k->f[AUF_RESP_BYTES] = count_or_null(k->num[AUF_RESP_BYTES], e->resp_bytes);
	k->f[AUF_REQ_SHA256] = e->req_sha256_hex;
	k->f[AUF_STATUS] = count_or_null(k->num[AUF_STATUS], e->status);
	k->f[AUF_LATENCY_US] = count_or_null(k->num[AUF_LATENCY_US], e->latency_us);
	k->f[AUF_TOKENS_IN] = count_or_null(k->num[AUF_TOKENS_IN], e->tokens_in);
	k->f[AUF_TOKENS_OUT] = count_or_null(k->num[AUF_TOKENS_OUT], e->tokens_out);
	if (e->rule_hits) {
		if (audit_canon_json(e->rule_hits, &k->json_rule_hits) != TSR_OK)
			return TSR_INVALID;
		k->f[AUF_RULE_HITS] = k->json_rule_hits;
	}
	if (e->detail && e->detail_canonical) {
		k->f[AUF_DETAIL] = e->detail; /* the producer wrote it canonical: no parse, no allocation */
	} else if (e->detail) {
		if (audit_canon_json(e->detail, &k->json_detail) != TSR_OK) {
			free(k->json_rule_hits);
			return TSR_INVALID;
		}
		k->f[AUF_DETAIL] = k->json_detail;
	}
	return TSR_OK;
}

static void canon_free(struct canon *k)
{
	free(k->json_rule_hits);
	free(k->json_detail);
}

tsr_rc audit_event_check(const struct audit_event *e)
{
	struct canon k;
	tsr_rc rc = canon_fill(&k, e, 1);
	if (rc == TSR_OK)
		canon_free(&k);
	return rc;
}

/*
 * Read the results of `count` pipelined queries, then the sync marker.
 * Returns the first failure; the result of query number `keep` (if >= 0
 * and successful) is handed to *kept instead of being cleared.
 */
static tsr_rc pipe_results(struct db_conn *c, int count, int keep, PGresult **kept)
{
	tsr_rc rc = TSR_OK;
	for (int i = 0; i < count; i++) {
		PGresult *res = PQgetResult(c->pg);
		if (!res) {
			rc = TSR_UNAVAILABLE;
			break;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == TSR_OK) {
			rc = db_result_rc(res, c->pg);
			if (rc == TSR_OK)
				rc = TSR_INTERNAL;
			const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			log_error("audit_append_failed", "error=\"%s\"", m ? m : "pipeline aborted");
		}
		if (i == keep && kept && rc == TSR_OK)
			*kept = res;
		else
			PQclear(res);
		PGresult *sep = PQgetResult(c->pg); /* NULL between queries */
		PQclear(sep);
	}
	for (;;) {
		PGresult *res = PQgetResult(c->pg);
		if (!res)
			break;
		bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
		PQclear(res);
		if (sync)
			break;
	}
	return rc;
}

/* One COPY text-format field: \N for NULL, else the value with \ TAB LF CR escaped. */
static tsr_rc copy_field(struct buf *b, const char *v, bool first)
{
	if (!first && buf_append(b, "\t", 1) != TSR_OK)
		return TSR_INTERNAL;
	if (!v)
		return buf_append(b, "\\N", 2);
	for (const char *p = v; *p;) {
		size_t run = strcspn(p, "\\\t\n\r");
		if (run && buf_append(b, p, run) != TSR_OK)
			return TSR_INTERNAL;
		p += run;
		if (!*p)
			break;
		const char *esc = *p == '\\' ? "\\\\" : *p == '\t' ? "\\t" : *p == '\n' ? "\\n" : "\\r";
		if (buf_append(b, esc, 2) != TSR_OK)
			return TSR_INTERNAL;
		p++;
	}
	return TSR_OK;
}

/* A bytea field from hex digits (\\x..., the backslash escaped for COPY), or \N. */
static tsr_rc copy_bytea(struct buf *b, const char *hex)
{
	if (!hex)
		return buf_append(b, "\t\\N", 3);
	if (buf_append(b, "\t\\\\x", 4) != TSR_OK || buf_puts(b, hex) != TSR_OK)
		return TSR_INTERNAL;
	return TSR_OK;
}

/* One record ready to send: its canonical fields, hashes and timestamp, as S_INSERT's parameters. */
struct audit_row {
	struct canon k;
	char prev_hex[65], hash_hex[65], at[40];
	const char *p[AUF_NFIELDS + 3];
};

/*
 * The rows as COPY text, in the COPY's column order: the values S_INSERT
 * binds (at as its timestamp text, the SHA-256 and the hashes as bytea).
 */
static tsr_rc copy_rows(struct buf *b, const struct audit_row *rows, int n)
{
	tsr_rc rc = TSR_OK;
	for (int i = 0; i < n && rc == TSR_OK; i++) {
		const char *const *f = rows[i].p;
		for (int k = 0; k < AUF_NFIELDS && rc == TSR_OK; k++) {
			if (k == AUF_REQ_SHA256)
				rc = copy_bytea(b, f[k]);
			else
				rc = copy_field(b, k == AUF_AT_US ? f[AUF_NFIELDS + 2] : f[k], k == 0);
		}
		if (rc == TSR_OK)
			rc = copy_bytea(b, f[AUF_NFIELDS]);
		if (rc == TSR_OK)
			rc = copy_bytea(b, f[AUF_NFIELDS + 1]);
		if (rc == TSR_OK && buf_append(b, "\n", 1) != TSR_OK)
			rc = TSR_INTERNAL;
	}
	return rc;
}

/* COPY the prepared rows (c idle in a transaction, not in pipeline mode). */
static tsr_rc copy_send(struct db_conn *c, const struct buf *b)
{
	PGresult *r = PQexec(c->pg, "COPY audit_events (seq, at, event_id, actor_user_id, actor, actor_addr, action, "
				    "  target, outcome, user_id, repo_id, credential_id, route, model, upstream, "
				    "  upstream_key_id, decision, rule_hits, req_bytes, resp_bytes, req_sha256, status, "
				    "  latency_us, tokens_in, tokens_out, detail, prev_hash, hash) FROM STDIN");
	ExecStatusType st = PQresultStatus(r);
	tsr_rc rc = st == PGRES_COPY_IN ? TSR_OK : db_result_rc(r, c->pg);
	if (rc == TSR_OK && st != PGRES_COPY_IN)
		rc = TSR_INTERNAL;
	PQclear(r);
	if (rc != TSR_OK)
		return rc;
	bool sent = PQputCopyData(c->pg, b->data, (int)b->len) == 1;
	if (PQputCopyEnd(c->pg, sent ? NULL : "tesserad could not send the rows") != 1)
		return TSR_UNAVAILABLE;
	while ((r = PQgetResult(c->pg)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == TSR_OK) {
			rc = db_result_rc(r, c->pg);
			if (rc == TSR_OK)
				rc = TSR_INTERNAL;
			const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
			log_error("audit_append_failed", "error=\"%s\"", m ? m : "copy failed");
		}
		PQclear(r);
	}
	return sent ? rc : TSR_UNAVAILABLE;
}

/*
 * Two round trips per batch when c is idle: [BEGIN, lock the head] and
 * [INSERT each record, move the head, COMMIT], each one pipeline. From
 * COPY_MIN records on, the records go in one COPY of their own (a third
 * round trip, much less work for PostgreSQL per record). Inside the
 * caller's transaction the same without BEGIN and COMMIT.
 */
tsr_rc db_audit_append(struct db_conn *c, const struct audit_event *ev, int n)
{
	if (n <= 0)
		return TSR_OK;
	bool own_tx = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
	tsr_rc rc = db_prepare(c, &S_HEAD_LOCK);
	if (rc == TSR_OK)
		rc = db_prepare(c, &S_INSERT);
	if (rc == TSR_OK)
		rc = db_prepare(c, &S_HEAD_MOVE);
	if (rc != TSR_OK)
		return rc;
	if (PQenterPipelineMode(c->pg) != 1)
		return TSR_UNAVAILABLE;
	struct audit_row *rows = NULL;
	int filled = 0;
	PGresult *r = NULL;
	bool sent = (!own_tx || PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1) &&
		    PQsendQueryPrepared(c->pg, S_HEAD_LOCK.name, 0, NULL, NULL, NULL, 0) == 1 && PQpipelineSync(c->pg) == 1;
	rc = sent ? pipe_results(c, own_tx ? 2 : 1, own_tx ? 1 : 0, &r) : TSR_UNAVAILABLE;
	if (rc != TSR_OK)
		goto out;
	if (!r || PQntuples(r) != 1 || PQgetlength(r, 0, 1) != 64) {
		log_error("audit_chain_head_missing", "rows=%d", r ? PQntuples(r) : -1);
		rc = TSR_INTERNAL;
		goto out;
	}
	int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	uint8_t prev[32];
	if (!crypto_unhex(PQgetvalue(r, 0, 1), prev, sizeof(prev))) {
		rc = TSR_INTERNAL;
		goto out;
	}

	/* every record's canonical fields and hash first, then one pipeline */
	rows = calloc((size_t)n, sizeof(*rows));
	if (!rows) {
		rc = TSR_INTERNAL;
		goto out;
	}
	for (int i = 0; i < n; i++, filled++) {
		struct audit_row *w = &rows[i];
		if ((rc = canon_fill(&w->k, &ev[i], ++seq)) != TSR_OK) {
			log_error("audit_event_invalid", "action=%s", ev[i].action ? ev[i].action : "-");
			goto out;
		}
		uint8_t h[32];
		audit_canon_hash(w->k.f, prev, h);
		crypto_hex(prev, 32, w->prev_hex);
		crypto_hex(h, 32, w->hash_hex);
		time_t secs = (time_t)(ev[i].at_us / 1000000);
		struct tm tm;
		gmtime_r(&secs, &tm);
		snprintf(w->at, sizeof(w->at), "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ev[i].at_us % 1000000));
		for (int f = 0; f < AUF_NFIELDS; f++)
			w->p[f] = w->k.f[f];
		w->p[AUF_NFIELDS] = w->prev_hex;
		w->p[AUF_NFIELDS + 1] = w->hash_hex;
		w->p[AUF_NFIELDS + 2] = w->at;
		memcpy(prev, h, 32);
	}
	char seqs[24];
	snprintf(seqs, sizeof(seqs), "%" PRId64, seq);
	const char *hp[] = { seqs, rows[n - 1].hash_hex };
	sent = true;
	int queued = n;
	if (n >= COPY_MIN) {
		/* COPY is not allowed in a pipeline: one round trip of its own, then the head and COMMIT */
		struct buf cb;
		buf_init(&cb, (size_t)1 << 30);
		rc = PQexitPipelineMode(c->pg) == 1 ? copy_rows(&cb, rows, n) : TSR_INTERNAL;
		if (rc == TSR_OK)
			rc = copy_send(c, &cb);
		buf_free(&cb);
		if (rc == TSR_OK && PQenterPipelineMode(c->pg) != 1)
			rc = TSR_UNAVAILABLE;
		if (rc != TSR_OK)
			goto out;
		queued = 0;
	}
	for (int i = 0; i < queued && sent; i++)
		sent = PQsendQueryPrepared(c->pg, S_INSERT.name, AUF_NFIELDS + 3, rows[i].p, NULL, NULL, 0) == 1;
	if (sent)
		sent = PQsendQueryPrepared(c->pg, S_HEAD_MOVE.name, 2, hp, NULL, NULL, 0) == 1;
	if (sent && own_tx)
		sent = PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1;
	if (sent)
		sent = PQpipelineSync(c->pg) == 1;
	rc = sent ? pipe_results(c, queued + 1 + (own_tx ? 1 : 0), -1, NULL) : TSR_UNAVAILABLE;
out:
	PQclear(r);
	for (int i = 0; i < filled; i++)
		canon_free(&rows[i].k);
	free(rows);
	if (PQexitPipelineMode(c->pg) != 1 && rc == TSR_OK)
		rc = TSR_INTERNAL;
	/* a failed batch leaves our transaction open (aborted): end it */
	if (own_tx && rc != TSR_OK && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	return rc;
}
