/*
 * audit_read.c — see audit_read.h.
 *
 * The cursor is fetched with binary results (no text conversion in
 * Postgres, fixed-size integers here) and the canonical text of each field
 * is rebuilt from them the way db/audit.c wrote it: integers in decimal,
 * `at` as integer microseconds (binary timestamptz is microseconds since
 * 2000-01-01), uuid lower-case, req_sha256 lower-case hex, actor_addr as
 * host(inet), jsonb re-canonicalised with audit_canon_json. Seals come from
 * a second cursor in the same snapshot, merged by seq.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_read.h"
#include "../lib/crypto.h"
#include "../lib/json_write.h" /* json_write_i64: decimal text without snprintf, which costs more than the hash here */
#include "../lib/log.h"

#define BATCH 2000
#define SEAL_BATCH 1000
#define PG_EPOCH_US INT64_C(946684800000000) /* 2000-01-01 in Unix microseconds */

/* Column list shared by every record cursor; audit_canon.h field order, then prev_hash, hash. */
#define REC_COLS                                                                                                   \
	"e.seq, e.at, e.event_id, e.actor_user_id, e.actor, host(e.actor_addr), e.action, e.target, e.outcome, "   \
	"e.user_id, e.repo_id, e.credential_id, e.route, e.model, e.upstream, e.upstream_key_id, e.decision, "     \
	"e.rule_hits, e.req_bytes, e.resp_bytes, e.req_sha256, e.status, e.latency_us, e.tokens_in, e.tokens_out, " \
	"e.detail, e.prev_hash, e.hash "

static const struct db_stmt S_CUR_RANGE = { "audit_read_cur_range", 2,
	"DECLARE tsr_audit_cur NO SCROLL CURSOR FOR SELECT " REC_COLS
	"FROM audit_events e WHERE e.seq BETWEEN $1 AND $2 ORDER BY e.seq, e.at" };
static const struct db_stmt S_CUR_SEALS = { "audit_read_cur_seals", 2,
	"DECLARE tsr_audit_seals NO SCROLL CURSOR FOR "
	"SELECT id, seq_upto, encode(head_hash, 'hex'), encode(signature, 'hex'), key_id, "
	"       (extract(epoch FROM sealed_at) * 1000000)::bigint "
	"  FROM audit_seals WHERE seq_upto BETWEEN $1 AND $2 ORDER BY seq_upto" };
static const struct db_stmt S_CUR_SEARCH = { "audit_read_cur_search", 9,
	"DECLARE tsr_audit_cur NO SCROLL CURSOR FOR SELECT " REC_COLS "FROM audit_events e "
	" WHERE ($1::text IS NULL OR e.user_id IN (SELECT id FROM users WHERE lower(user_name) = lower($1))) "
	"   AND ($2::text IS NULL OR e.repo_id IN (SELECT id FROM repositories WHERE lower(full_name) = lower($2))) "
	"   AND ($3::text IS NULL OR e.upstream = $3) "
	"   AND ($4::text IS NULL OR e.action = $4) "
	"   AND ($5::text IS NULL OR e.decision = $5) "
	"   AND ($6::timestamptz IS NULL OR e.at >= $6::timestamptz) "
	"   AND ($7::timestamptz IS NULL OR e.at < $7::timestamptz) "
	"   AND ($8::bigint IS NULL OR e.seq < $8::bigint) "
	" ORDER BY e.seq DESC LIMIT $9" };
static const struct db_stmt S_HEAD = { "audit_read_head", 0,
	"SELECT seq, encode(hash, 'hex') FROM audit_chain_head" };
static const struct db_stmt S_RANGE = { "audit_read_range", 2,
	"SELECT min(seq), max(seq) FROM audit_events "
	" WHERE ($1::timestamptz IS NULL OR at >= $1::timestamptz) AND ($2::timestamptz IS NULL OR at < $2::timestamptz)" };
static const struct db_stmt S_MIN_SEQ = { "audit_read_min_seq", 0, "SELECT min(seq) FROM audit_events" };
static const struct db_stmt S_HASH_AT = { "audit_read_hash_at", 1,
	"SELECT encode(hash, 'hex') FROM audit_events WHERE seq = $1 ORDER BY at LIMIT 1" };
static const struct db_stmt S_RETENTION_ANCHOR = { "audit_read_retention_anchor", 1,
	"SELECT detail->>'last_dropped_hash' FROM audit_events "
	" WHERE action = 'audit.retention' AND outcome = 'success' "
	"   AND detail->>'last_dropped_seq' = $1 ORDER BY seq DESC LIMIT 1" };
static const struct db_stmt S_KEYS = { "audit_read_keys", 0,
	"SELECT id, encode(public_key, 'hex') FROM audit_keys ORDER BY created_at" };
static const struct db_stmt S_FIND = { "audit_read_find", 1,
	"SELECT seq FROM audit_events WHERE hash = decode($1, 'hex') ORDER BY seq LIMIT 1" };
static const struct db_stmt S_SEALS_AFTER = { "audit_read_seals_after", 2,
	"SELECT id, seq_upto, encode(head_hash, 'hex'), encode(signature, 'hex'), key_id, "
	"       (extract(epoch FROM sealed_at) * 1000000)::bigint "
	"  FROM audit_seals WHERE seq_upto > $1 AND seq_upto <= $2 ORDER BY seq_upto LIMIT 1" };
static const struct db_stmt S_COVERING = { "audit_read_covering", 1,
	"SELECT id, seq_upto, encode(head_hash, 'hex'), encode(signature, 'hex'), key_id, "
	"       (extract(epoch FROM sealed_at) * 1000000)::bigint "
	"  FROM audit_seals WHERE seq_upto >= $1 ORDER BY seq_upto LIMIT 1" };
static const struct db_stmt S_USER_IDS = { "audit_read_user_ids", 1,
	"SELECT id FROM users WHERE lower(user_name) = lower($1) ORDER BY id" };
static const struct db_stmt S_REPO_IDS = { "audit_read_repo_ids", 1,
	"SELECT id FROM repositories WHERE lower(full_name) = lower($1) ORDER BY id" };

enum { COL_PREV = AUF_NFIELDS, COL_HASH, NCOLS };

/* Expected binary type of each column (pg_type OIDs). */
static const unsigned col_type[NCOLS] = {
	[AUF_SEQ] = 20, [AUF_AT_US] = 1184, [AUF_EVENT_ID] = 2950, [AUF_ACTOR_USER_ID] = 20, [AUF_ACTOR] = 25,
	[AUF_ACTOR_ADDR] = 25, [AUF_ACTION] = 25, [AUF_TARGET] = 25, [AUF_OUTCOME] = 25, [AUF_USER_ID] = 20,
	[AUF_REPO_ID] = 20, [AUF_CREDENTIAL_ID] = 20, [AUF_ROUTE] = 25, [AUF_MODEL] = 25, [AUF_UPSTREAM] = 25,
	[AUF_UPSTREAM_KEY_ID] = 20, [AUF_DECISION] = 25, [AUF_RULE_HITS] = 3802, [AUF_REQ_BYTES] = 20,
	[AUF_RESP_BYTES] = 20, [AUF_REQ_SHA256] = 17, [AUF_STATUS] = 23, [AUF_LATENCY_US] = 20, [AUF_TOKENS_IN] = 23,
	[AUF_TOKENS_OUT] = 23, [AUF_DETAIL] = 3802, [COL_PREV] = 17, [COL_HASH] = 17,
};

struct audit_reader {
	struct db_conn *c;
	bool own_tx;
	bool in_flight;
	bool eof;
	PGresult *cur, *next;
	int cur_i, cur_n;
	/* the row handed out and the storage its strings point into */
	struct audit_row row;
	char num[AUF_NFIELDS][JSON_WRITE_INT_MAX];
	char uuid[37], sha[65];
	char *json[2];    /* canonical text of rule_hits / detail of the current row */
	char *json_raw[2]; /* the jsonb text it came from: the same text is not parsed again */
	/* seals */
	bool with_seals;
	PGresult *seals;
	int seal_i;
	bool seals_eof;
	bool have_seal;
	struct audit_seal_rec seal;
};

tsr_rc db_audit_read_begin(struct db_conn *c)
{
	tsr_rc rc = db_simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc == TSR_OK)
		rc = db_simple(c, "SET LOCAL timezone = 'UTC'");
	if (rc == TSR_OK)
		rc = db_simple(c, "SET LOCAL plan_cache_mode = force_custom_plan");
	return rc;
}

void db_audit_read_end(struct db_conn *c)
{
	if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		return;
	tsr_rc rc = db_simple(c, PQtransactionStatus(c->pg) == PQTRANS_INERROR ? "ROLLBACK" : "COMMIT");
	(void)rc;
}

static int64_t be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | u[i];
	return (int64_t)v;
}

static int32_t be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (int32_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3]);
}

static tsr_rc send_fetch(struct audit_reader *rd)
{
	if (PQsendQueryParams(rd->c->pg, "FETCH 2000 FROM tsr_audit_cur", 0, NULL, NULL, NULL, NULL, 1) != 1) {
		log_error("audit_read_failed", "error=\"%s\"", PQerrorMessage(rd->c->pg));
		return TSR_UNAVAILABLE;
	}
	rd->in_flight = true;
	return TSR_OK;
}

static tsr_rc recv_fetch(struct audit_reader *rd, PGresult **out)
{
	rd->in_flight = false;
	PGresult *r = PQgetResult(rd->c->pg);
	tsr_rc rc = TSR_OK;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = r ? db_result_rc(r, rd->c->pg) : TSR_UNAVAILABLE;
		const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		log_error("audit_read_failed", "error=\"%s\"", m ? m : PQerrorMessage(rd->c->pg));
		PQclear(r);
		r = NULL;
	}
	for (PGresult *extra; (extra = PQgetResult(rd->c->pg)) != NULL;)
		PQclear(extra);
	if (r && PQnfields(r) != NCOLS) {
		log_error("audit_read_failed", "error=\"unexpected column count %d\"", PQnfields(r));
		PQclear(r);
		r = NULL;
		rc = TSR_INTERNAL;
	}
	for (int i = 0; r && i < NCOLS; i++) {
		if (PQftype(r, i) != col_type[i] || PQfformat(r, i) != 1) {
			log_error("audit_read_failed", "error=\"column %d has type %u\"", i, PQftype(r, i));
			PQclear(r);
			r = NULL;
			rc = TSR_INTERNAL;
		}
	}
	*out = r;
	return rc;
}

static tsr_rc open_cursor(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p, bool with_seals,
			  const char *seal_lo, const char *seal_hi, struct audit_reader **out)
{
	*out = NULL;
	struct audit_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return TSR_INTERNAL;
	rd->c = c;
	tsr_rc rc = TSR_OK;
	if (PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
		if ((rc = db_audit_read_begin(c)) != TSR_OK) {
			free(rd);
			return rc;
		}
		rd->own_tx = true;
	}
	PGresult *r = db_exec(c, s, n, p, &rc);
	PQclear(r);
	if (rc == TSR_OK && with_seals) {
		const char *sp[] = { seal_lo, seal_hi };
		r = db_exec(c, &S_CUR_SEALS, 2, sp, &rc);
		PQclear(r);
		rd->with_seals = true;
	}
	if (rc == TSR_OK)
		rc = send_fetch(rd);
	if (rc != TSR_OK) {
		audit_reader_close(rd);
		return rc;
	}
	*out = rd;
	return TSR_OK;
}

tsr_rc audit_reader_open(struct db_conn *c, int64_t seq_lo, int64_t seq_hi, struct audit_reader **out)
{
	char lo[24], hi[24];
	snprintf(lo, sizeof(lo), "%" PRId64, seq_lo);
	snprintf(hi, sizeof(hi), "%" PRId64, seq_hi);
	const char *p[] = { lo, hi };
	return open_cursor(c, &S_CUR_RANGE, 2, p, true, lo, hi, out);
}

tsr_rc audit_reader_quiesce(struct audit_reader *rd)
{
	if (!rd->in_flight)
		return TSR_OK;
	return recv_fetch(rd, &rd->next);
}

void audit_reader_close(struct audit_reader *rd)
{
	if (!rd)
		return;
	if (rd->in_flight) {
		PGresult *r = NULL;
		tsr_rc rc = recv_fetch(rd, &r);
		(void)rc;
		PQclear(r);
	}
	PQclear(rd->cur);
	PQclear(rd->next);
	PQclear(rd->seals);
	for (int k = 0; k < 2; k++) {
		free(rd->json[k]);
		free(rd->json_raw[k]);
	}
	if (PQtransactionStatus(rd->c->pg) == PQTRANS_INTRANS) {
		tsr_rc rc = db_simple(rd->c, "CLOSE ALL");
		(void)rc;
	}
	if (rd->own_tx)
		db_audit_read_end(rd->c);
	free(rd);
}

/* Decode row i of rd->cur into rd->row. */
static tsr_rc decode_row(struct audit_reader *rd, int i)
{
	PGresult *r = rd->cur;
	struct audit_rec *a = &rd->row.rec;
	rd->row.user_id = rd->row.repo_id = 0;
	for (int k = 0; k < AUF_NFIELDS; k++) {
		if (PQgetisnull(r, i, k)) {
			a->f[k] = NULL;
			continue;
		}
		const char *v = PQgetvalue(r, i, k);
		int len = PQgetlength(r, i, k);
		switch (col_type[k]) {
		case 20:
			if (len != 8)
				return TSR_INTERNAL;
			json_write_i64(rd->num[k], be64(v));
			a->f[k] = rd->num[k];
			if (k == AUF_USER_ID)
				rd->row.user_id = be64(v);
			else if (k == AUF_REPO_ID)
				rd->row.repo_id = be64(v);
			break;
		case 23:
			if (len != 4)
				return TSR_INTERNAL;
			json_write_i64(rd->num[k], be32(v));
			a->f[k] = rd->num[k];
			break;
		case 1184:
			if (len != 8)
				return TSR_INTERNAL;
			rd->row.at_us = be64(v) + PG_EPOCH_US;
			json_write_i64(rd->num[k], rd->row.at_us);
			a->f[k] = rd->num[k];
			break;
		case 2950:
			if (len != 16)
				return TSR_INTERNAL;
			{
				/* 8-4-4-4-12 lower-case hex, as uuid_out prints it */
				const uint8_t *u = (const uint8_t *)v;
				crypto_hex(u, 4, rd->uuid);
				rd->uuid[8] = '-';
				crypto_hex(u + 4, 2, rd->uuid + 9);
				rd->uuid[13] = '-';
				crypto_hex(u + 6, 2, rd->uuid + 14);
				rd->uuid[18] = '-';
				crypto_hex(u + 8, 2, rd->uuid + 19);
				rd->uuid[23] = '-';
				crypto_hex(u + 10, 6, rd->uuid + 24);
			}
			a->f[k] = rd->uuid;
			break;
		case 17: /* req_sha256 */
			if (len != 32)
				return TSR_INTERNAL;
			crypto_hex((const uint8_t *)v, 32, rd->sha);
			a->f[k] = rd->sha;
			break;
		case 3802: {
			/* binary jsonb: a version byte (1), then the text */
			if (len < 1 || v[0] != 1)
				return TSR_INTERNAL;
			int j = k == AUF_DETAIL;
			if (!rd->json_raw[j] || strcmp(rd->json_raw[j], v + 1) != 0) {
				free(rd->json[j]);
				free(rd->json_raw[j]);
				rd->json[j] = rd->json_raw[j] = NULL;
				if (audit_canon_json(v + 1, &rd->json[j]) != TSR_OK)
					return TSR_INTERNAL;
				rd->json_raw[j] = strdup(v + 1);
				if (!rd->json_raw[j])
					return TSR_INTERNAL;
			}
			a->f[k] = rd->json[j];
			break;
		}
		default: /* text: libpq NUL-terminates every value */
			a->f[k] = v;
			break;
		}
	}
	if (!a->f[AUF_SEQ] || PQgetlength(r, i, COL_PREV) != 32 || PQgetlength(r, i, COL_HASH) != 32)
		return TSR_INTERNAL;
	a->seq = be64(PQgetvalue(r, i, AUF_SEQ));
	memcpy(a->prev_hash, PQgetvalue(r, i, COL_PREV), 32);
	memcpy(a->hash, PQgetvalue(r, i, COL_HASH), 32);
	return TSR_OK;
}

static bool seal_from_text(PGresult *r, int i, struct audit_seal_rec *s)
{
	memset(s, 0, sizeof(*s));
	s->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	s->seq_upto = strtoll(PQgetvalue(r, i, 1), NULL, 10);
	s->sealed_at_us = strtoll(PQgetvalue(r, i, 5), NULL, 10);
	snprintf(s->key_id, sizeof(s->key_id), "%s", PQgetvalue(r, i, 4));
	return crypto_unhex(PQgetvalue(r, i, 2), s->head_hash, 32) &&
	       crypto_unhex(PQgetvalue(r, i, 3), s->signature, AUDIT_SIG_LEN);
}

/* The next seal of the seal cursor into rd->seal (have_seal false at its end). */
static tsr_rc advance_seal(struct audit_reader *rd)
{
	rd->have_seal = false;
	if (!rd->seals || rd->seal_i >= PQntuples(rd->seals)) {
		if (rd->seals_eof)
			return TSR_OK;
		PQclear(rd->seals);
		rd->seals = NULL;
		rd->seal_i = 0;
		tsr_rc rc = audit_reader_quiesce(rd);
		if (rc != TSR_OK)
			return rc;
		PGresult *r = PQexecParams(rd->c->pg, "FETCH 1000 FROM tsr_audit_seals", 0, NULL, NULL, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			rc = db_result_rc(r, rd->c->pg);
			log_error("audit_read_failed", "error=\"%s\"", PQerrorMessage(rd->c->pg));
			PQclear(r);
			return rc;
		}
		rd->seals = r;
		if (PQntuples(r) < SEAL_BATCH)
			rd->seals_eof = true;
		if (PQntuples(r) == 0)
			return TSR_OK;
	}
	if (!seal_from_text(rd->seals, rd->seal_i, &rd->seal))
		return TSR_INTERNAL;
	rd->seal_i++;
	rd->have_seal = true;
	return TSR_OK;
}

tsr_rc audit_reader_next(struct audit_reader *rd, const struct audit_row **row)
{
	*row = NULL;
	tsr_rc rc;
	while (!rd->cur || rd->cur_i >= rd->cur_n) {
		if (rd->cur) {
			PQclear(rd->cur);
			rd->cur = NULL;
			if (rd->cur_n < BATCH)
				rd->eof = true;
		}
		if (rd->eof)
			return TSR_OK;
		if (rd->next) {
			rd->cur = rd->next;
			rd->next = NULL;
		} else {
			if (!rd->in_flight && (rc = send_fetch(rd)) != TSR_OK)
				return rc;
			if ((rc = recv_fetch(rd, &rd->cur)) != TSR_OK)
				return rc;
		}
		rd->cur_n = PQntuples(rd->cur);
		rd->cur_i = 0;
		/* ask for the next batch now: Postgres produces it while this one is consumed */
		if (rd->cur_n == BATCH && (rc = send_fetch(rd)) != TSR_OK)
			return rc;
	}
	if ((rc = decode_row(rd, rd->cur_i++)) != TSR_OK) {
		log_error("audit_read_failed", "error=\"undecodable record\"");
		return rc;
	}
	rd->row.has_seal = false;
	if (rd->with_seals) {
		if (!rd->have_seal && !rd->seals_eof && (rc = advance_seal(rd)) != TSR_OK)
			return rc;
		while (rd->have_seal && rd->seal.seq_upto < rd->row.rec.seq)
			if ((rc = advance_seal(rd)) != TSR_OK)
				return rc;
		if (rd->have_seal && rd->seal.seq_upto == rd->row.rec.seq) {
			rd->row.has_seal = true;
			rd->row.seal = rd->seal;
			if ((rc = advance_seal(rd)) != TSR_OK)
				return rc;
		}
	}
	*row = &rd->row;
	return TSR_OK;
}

/* ---------- ranges, keys, anchors ---------- */

static PGresult *exec1(struct db_conn *c, const struct db_stmt *s, int n, const char *const *p, tsr_rc *rc)
{
	PGresult *r = db_exec(c, s, n, p, rc);
	if (r && PQntuples(r) == 0) {
		PQclear(r);
		return NULL;
	}
	return r;
}

tsr_rc db_audit_range(struct db_conn *c, const char *from, const char *to, struct audit_range *out)
{
	memset(out, 0, sizeof(*out));
	tsr_rc rc;
	PGresult *r = exec1(c, &S_HEAD, 0, NULL, &rc);
	if (!r)
		return rc == TSR_OK ? TSR_INTERNAL : rc;
	out->head_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	bool ok = crypto_unhex(PQgetvalue(r, 0, 1), out->head_hash, 32);
	PQclear(r);
	if (!ok)
		return TSR_INTERNAL;
	const char *p[] = { from, to };
	r = exec1(c, &S_RANGE, 2, p, &rc);
	if (!r)
		return rc == TSR_OK ? TSR_INTERNAL : rc;
	if (PQgetisnull(r, 0, 0)) {
		out->empty = true;
	} else {
		out->lo = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		out->hi = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	if (!to) {
		out->to_head = true;
		if (!out->empty && out->head_seq > out->hi)
			out->hi = out->head_seq;
		if (out->empty && !from && out->head_seq > 0) {
			/* nothing in the table but the head has moved: everything is gone */
			out->empty = false;
			out->lo = 1;
			out->hi = out->head_seq;
		}
	}
	if (!from && !out->empty) {
		/* the first record of the table (the range may start before any record's time) */
		r = exec1(c, &S_MIN_SEQ, 0, NULL, &rc);
		if (r && !PQgetisnull(r, 0, 0))
			out->lo = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
	return TSR_OK;
}

tsr_rc db_audit_keys(struct db_conn *c, struct audit_pubkey **keys, int *n)
{
	*keys = NULL;
	*n = 0;
	tsr_rc rc;
	PGresult *r = db_exec(c, &S_KEYS, 0, NULL, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	struct audit_pubkey *k = calloc((size_t)rows + 1, sizeof(*k));
	if (!k) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++) {
		snprintf(k[i].id, sizeof(k[i].id), "%s", PQgetvalue(r, i, 0));
		if (!crypto_unhex(PQgetvalue(r, i, 1), k[i].pub, 32)) {
			PQclear(r);
			free(k);
			return TSR_INTERNAL;
		}
	}
	PQclear(r);
	*keys = k;
	*n = rows;
	return TSR_OK;
}

bool db_audit_find_hash(void *arg, const uint8_t h[32], int64_t *seq)
{
	struct audit_reader *rd = arg;
	if (audit_reader_quiesce(rd) != TSR_OK)
		return false;
	char hex[65];
	crypto_hex(h, 32, hex);
	const char *p[] = { hex };
	tsr_rc rc;
	PGresult *r = exec1(rd->c, &S_FIND, 1, p, &rc);
	if (!r)
		return false;
	*seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return true;
}

tsr_rc db_audit_verify_prepare(struct db_conn *c, const struct audit_range *range, struct audit_verify_out *out)
{
	tsr_rc rc = db_audit_keys(c, &out->keys, &out->nkeys);
	if (rc != TSR_OK)
		return rc;
	out->v.keys = out->keys;
	out->v.nkeys = out->nkeys;
	out->range = *range;
	if (range->empty)
		return TSR_OK;
	if (range->lo <= 1) {
		static const uint8_t genesis[32];
		audit_verify_anchor(&out->v, 0, genesis);
		return TSR_OK;
	}
	char before[24];
	snprintf(before, sizeof(before), "%" PRId64, range->lo - 1);
	const char *p[] = { before };
	uint8_t h[32];
	PGresult *r = exec1(c, &S_HASH_AT, 1, p, &rc);
	if (!r && rc != TSR_OK)
		return rc;
	if (!r) /* not in the table: dropped by retention, which recorded it? */
		r = exec1(c, &S_RETENTION_ANCHOR, 1, p, &rc);
	if (!r && rc != TSR_OK)
		return rc;
	if (!r || PQgetisnull(r, 0, 0) || !crypto_unhex(PQgetvalue(r, 0, 0), h, 32)) {
		PQclear(r);
		audit_verify_fail(&out->v, AUDIT_REMOVED, range->lo - 1,
				  "record seq %" PRId64 " was removed (the records start at seq %" PRId64
				  " and no retention drop accounts for it)",
				  range->lo - 1, range->lo);
		return TSR_OK;
	}
	PQclear(r);
	audit_verify_anchor(&out->v, range->lo - 1, h);
	return TSR_OK;
}

tsr_rc db_audit_verify_finish(struct db_conn *c, struct audit_verify_out *out)
{
	struct audit_verifier *v = &out->v;
	if (v->bad.problem == AUDIT_OK && !out->range.empty) {
		/* a seal beyond the last record: the records it covers were cut off */
		char a[24], b[24];
		snprintf(a, sizeof(a), "%" PRId64, v->have_last ? v->last_seq : 0);
		snprintf(b, sizeof(b), "%" PRId64, out->range.to_head ? INT64_MAX : out->range.hi);
		const char *p[] = { a, b };
		tsr_rc rc;
		PGresult *r = exec1(c, &S_SEALS_AFTER, 2, p, &rc);
		if (!r && rc != TSR_OK)
			return rc;
		if (r) {
			struct audit_seal_rec s;
			bool ok = seal_from_text(r, 0, &s);
			PQclear(r);
			if (!ok)
				return TSR_INTERNAL;
			audit_verify_seal(v, &s, true);
		}
	}
	if (v->bad.problem == AUDIT_OK && out->range.to_head)
		audit_verify_head(v, out->range.head_seq, out->range.head_hash);
	if (v->have_seal && v->have_last && v->last_seq > v->last_seal.seq_upto)
		out->unsealed = v->last_seq - v->last_seal.seq_upto;
	else if (!v->have_seal)
		out->unsealed = v->count;
	return TSR_OK;
}

/* Feed the records of range (and the seals on them) to out->v, already anchored. */
static tsr_rc verify_records(struct db_conn *c, const struct audit_range *range, struct audit_verify_out *out)
{
	struct audit_reader *rd = NULL;
	tsr_rc rc = TSR_OK;
	if (!range->empty)
		rc = audit_reader_open(c, range->lo, range->hi, &rd);
	if (rd) {
		out->v.find = db_audit_find_hash;
		out->v.find_arg = rd;
		const struct audit_row *row;
		while ((rc = audit_reader_next(rd, &row)) == TSR_OK && row) {
			if (!audit_verify_record(&out->v, &row->rec))
				break;
			if (row->has_seal && !audit_verify_seal(&out->v, &row->seal, true))
				break;
		}
		if (rc == TSR_OK)
			rc = audit_reader_quiesce(rd);
		out->v.find = NULL;
		out->v.find_arg = NULL;
	}
	audit_reader_close(rd);
	return rc;
}

tsr_rc db_audit_verify_run(struct db_conn *c, const struct audit_range *range, const struct audit_seal_rec *anchor_seal,
			   struct audit_verify_out *out)
{
	tsr_rc rc = db_audit_verify_prepare(c, range, out);
	if (rc == TSR_OK && anchor_seal && out->v.bad.problem == AUDIT_OK && out->v.have_last) {
		if (!crypto_equal(out->v.last_hash, anchor_seal->head_hash, 32)) {
			audit_verify_fail(&out->v, AUDIT_REWRITTEN, anchor_seal->seq_upto,
					  "record seq %" PRId64 " no longer has the hash signed by seal #%" PRId64,
					  anchor_seal->seq_upto, anchor_seal->id);
			out->v.bad.seal_id = anchor_seal->id;
		} else {
			out->v.last_seal = *anchor_seal;
			out->v.have_seal = true;
		}
	}
	if (rc == TSR_OK && out->v.bad.problem == AUDIT_OK)
		rc = verify_records(c, range, out);
	if (rc == TSR_OK)
		rc = db_audit_verify_finish(c, out);
	return rc;
}

/* ---------- parallel verification ---------- */

struct segment {
	const char *conninfo;
	int timeout_s;
	struct audit_range range;
	bool last;
	struct audit_verify_out out;
	tsr_rc rc;
	pthread_t thread;
	bool started;
};

/* One stretch of the chain on its own connection: anchored on the record before it, must reach its end. */
static void *segment_main(void *arg)
{
	struct segment *g = arg;
	struct db_conn c;
	memset(&c, 0, sizeof(c));
	g->rc = db_connect(g->conninfo, g->timeout_s, &c.pg);
	if (g->rc != TSR_OK)
		return NULL;
	g->rc = db_audit_read_begin(&c);
	if (g->rc == TSR_OK)
		g->rc = db_audit_verify_prepare(&c, &g->range, &g->out);
	if (g->rc == TSR_OK && g->out.v.bad.problem == AUDIT_OK)
		g->rc = verify_records(&c, &g->range, &g->out);
	struct audit_verifier *v = &g->out.v;
	if (g->rc == TSR_OK && !g->last && v->bad.problem == AUDIT_OK && (!v->have_last || v->last_seq < g->range.hi)) {
		int64_t from = v->have_last ? v->last_seq + 1 : g->range.lo;
		if (from == g->range.hi)
			audit_verify_fail(v, AUDIT_REMOVED, from, "record seq %" PRId64 " was removed", from);
		else
			audit_verify_fail(v, AUDIT_REMOVED, from, "records seq %" PRId64 "..%" PRId64 " were removed", from,
					  g->range.hi);
	}
	db_audit_read_end(&c);
	PQfinish(c.pg);
	free(c.prepared);
	return NULL;
}

tsr_rc db_audit_verify_parallel(const char *conninfo, int timeout_s, struct db_conn *c, const struct audit_range *range,
				int nseg, struct audit_verify_out *out)
{
	int64_t span = range->empty ? 0 : range->hi - range->lo + 1;
	if (nseg > 8)
		nseg = 8;
	if (nseg <= 1 || span < (int64_t)nseg * 50000)
		return db_audit_verify_run(c, range, NULL, out);
	struct segment g[8];
	memset(g, 0, sizeof(g));
	int64_t per = span / nseg;
	tsr_rc rc = TSR_OK;
	for (int i = 0; i < nseg; i++) {
		g[i].conninfo = conninfo;
		g[i].timeout_s = timeout_s;
		g[i].range = *range;
		g[i].range.lo = range->lo + per * i;
		g[i].range.hi = i == nseg - 1 ? range->hi : range->lo + per * (i + 1) - 1;
		g[i].range.to_head = false;
		g[i].last = i == nseg - 1;
		audit_verify_init(&g[i].out.v);
	}
	for (int i = 0; i < nseg; i++)
		g[i].started = pthread_create(&g[i].thread, NULL, segment_main, &g[i]) == 0;
	for (int i = 0; i < nseg; i++) {
		if (g[i].started)
			pthread_join(g[i].thread, NULL);
		else
			g[i].rc = TSR_INTERNAL;
		if (g[i].rc != TSR_OK && rc == TSR_OK)
			rc = g[i].rc;
	}
	/* merge: the first problem in chain order wins; counts add up; the end is the last segment's */
	if (rc == TSR_OK)
		rc = db_audit_keys(c, &out->keys, &out->nkeys);
	struct audit_verifier *v = &out->v;
	v->keys = out->keys;
	v->nkeys = out->nkeys;
	out->range = *range;
	for (int i = 0; rc == TSR_OK && i < nseg; i++) {
		struct audit_verifier *s = &g[i].out.v;
		if (s->bad.problem != AUDIT_OK && v->bad.problem == AUDIT_OK)
			v->bad = s->bad;
		v->count += s->count;
		v->seals += s->seals;
		if (s->have_first && !v->have_first) {
			v->have_first = true;
			v->first_seq = s->first_seq;
			memcpy(v->first_prev, s->first_prev, 32);
		}
		if (s->have_last && s->count) {
			v->have_last = true;
			v->last_seq = s->last_seq;
			memcpy(v->last_hash, s->last_hash, 32);
		}
		if (s->have_seal) {
			v->have_seal = true;
			v->last_seal = s->last_seal;
		}
	}
	for (int i = 0; i < nseg; i++)
		db_audit_verify_free(&g[i].out);
	if (rc == TSR_OK)
		rc = db_audit_verify_finish(c, out);
	return rc;
}

tsr_rc db_audit_verify(struct db_conn *c, const char *from, const char *to, struct audit_verify_out *out)
{
	return db_audit_verify_segments(c, NULL, 0, 1, from, to, out);
}

tsr_rc db_audit_verify_segments(struct db_conn *c, const char *conninfo, int timeout_s, int nseg, const char *from,
				const char *to, struct audit_verify_out *out)
{
	memset(out, 0, sizeof(*out));
	audit_verify_init(&out->v);
	tsr_rc rc = db_audit_read_begin(c);
	struct audit_range range;
	if (rc == TSR_OK)
		rc = db_audit_range(c, from, to, &range);
	if (rc == TSR_OK)
		rc = conninfo && nseg > 1 ? db_audit_verify_parallel(conninfo, timeout_s, c, &range, nseg, out)
					  : db_audit_verify_run(c, &range, NULL, out);
	db_audit_read_end(c);
	return rc;
}

void db_audit_verify_free(struct audit_verify_out *out)
{
	audit_verify_free(&out->v);
	free(out->keys);
	out->keys = NULL;
}

tsr_rc db_audit_covering_seal(struct db_conn *c, int64_t seq, struct audit_seal_rec *out, bool *found)
{
	*found = false;
	char s[24];
	snprintf(s, sizeof(s), "%" PRId64, seq);
	const char *p[] = { s };
	tsr_rc rc;
	PGresult *r = exec1(c, &S_COVERING, 1, p, &rc);
	if (!r)
		return rc;
	*found = seal_from_text(r, 0, out);
	PQclear(r);
	return *found ? TSR_OK : TSR_INTERNAL;
}

tsr_rc db_audit_search(struct db_conn *c, const struct audit_search *q,
		       tsr_rc (*fn)(void *arg, const struct audit_row *row), void *arg)
{
	char before[24], limit[24];
	snprintf(before, sizeof(before), "%" PRId64, q->before);
	snprintf(limit, sizeof(limit), "%d", q->limit > 0 ? q->limit : 100);
	const char *p[] = { q->user, q->repo, q->upstream, q->action, q->decision, q->from, q->to,
			    q->before > 0 ? before : NULL, limit };
	struct audit_reader *rd;
	tsr_rc rc = open_cursor(c, &S_CUR_SEARCH, 9, p, false, NULL, NULL, &rd);
	if (rc != TSR_OK)
		return rc;
	const struct audit_row *row;
	while ((rc = audit_reader_next(rd, &row)) == TSR_OK && row)
		if ((rc = fn(arg, row)) != TSR_OK)
			break;
	audit_reader_close(rd);
	return rc;
}

static tsr_rc ids(struct db_conn *c, const struct db_stmt *s, const char *name, int64_t **out, int *n)
{
	*out = NULL;
	*n = 0;
	const char *p[] = { name };
	tsr_rc rc;
	PGresult *r = db_exec(c, s, 1, p, &rc);
	if (!r)
		return rc;
	int rows = PQntuples(r);
	int64_t *v = calloc((size_t)rows + 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < rows; i++)
		v[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
	PQclear(r);
	*out = v;
	*n = rows;
	return rows ? TSR_OK : TSR_NOT_FOUND;
}

tsr_rc db_audit_user_ids(struct db_conn *c, const char *user, int64_t **out, int *n)
{
	return ids(c, &S_USER_IDS, user, out, n);
}

tsr_rc db_audit_repo_ids(struct db_conn *c, const char *repo, int64_t **out, int *n)
{
	return ids(c, &S_REPO_IDS, repo, out, n);
}
