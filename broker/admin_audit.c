/*
 * admin_audit.c — see admin_audit.h.
 *
 * An export or a verification is a task: the handler copies the request's
 * parameters into it, defers its reply (http_defer) and starts a detached
 * producer thread. The producer reads the log (db/audit_read.h), verifies
 * as it goes, and either replies once (verify, errors before the first
 * byte) or streams: it formats records into a 64 KiB staging area and moves
 * them into a 1 MiB ring the HTTP thread drains through stream_read();
 * when the ring is full the producer waits (the client's pace sets the
 * export's pace), when it is empty the connection sleeps until
 * http_stream_wake(). The task is freed by whichever of the producer's end
 * and the request's end (on_close) comes last.
 *
 * Lock order: registry.mu, then a task's mu, then http.c's own lock (taken
 * inside http_stream_wake / http_resume, which are called with the task's
 * mu held so they never race with on_close freeing the request).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "admin_audit.h"
#include "../db/audit.h"
#include "../db/audit_read.h"
#include "../db/seal.h"
#include "../lib/audit_export.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define MAX_TASKS 2
#define RING_BYTES (1u << 20)
#define STAGE_BYTES (64u << 10)
#define MAX_LINE (16u << 20) /* one record's line; records are small, this only bounds a pathological one */
#define SEARCH_MAX 1000

enum task_kind { T_EXPORT, T_VERIFY };

struct task {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct broker *b;
	struct http_req *r; /* NULL once the request ended */
	bool http_ref, thread_ref;
	bool done, failed, streaming;
	enum task_kind kind;
	/* parameters, copied from the request */
	char from[80], to[80], user[256], repo[512];
	bool has_from, has_to, has_user, has_repo, csv;
	char who[256];
	int64_t who_id;
	char addr[64];
	/* ring buffer the HTTP thread drains */
	char *ring;
	size_t head, len;
	/* producer side */
	char stage[STAGE_BYTES];
	size_t stage_len;
	EVP_MD_CTX *digest;
	uint64_t bytes;
	struct task *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running;
	struct task *tasks;
} registry = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL };
static atomic_bool stopping;

static void task_free(struct task *t)
{
	EVP_MD_CTX_free(t->digest);
	free(t->ring);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static void on_close(void *arg, bool completed)
{
	(void)completed;
	struct task *t = arg;
	pthread_mutex_lock(&t->mu);
	t->r = NULL;
	t->http_ref = false;
	bool last = !t->thread_ref;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (last)
		task_free(t);
}

static ssize_t stream_read(void *arg, char *out, size_t max)
{
	struct task *t = arg;
	pthread_mutex_lock(&t->mu);
	size_t n = t->len < max ? t->len : max;
	size_t first = n < RING_BYTES - t->head ? n : RING_BYTES - t->head;
	memcpy(out, t->ring + t->head, first);
	memcpy(out + first, t->ring, n - first);
	t->head = (t->head + n) % RING_BYTES;
	t->len -= n;
	ssize_t ret = (ssize_t)n;
	if (n)
		pthread_cond_signal(&t->cv);
	else if (t->done)
		ret = t->failed ? HTTP_STREAM_ERROR : HTTP_STREAM_END;
	pthread_mutex_unlock(&t->mu);
	return ret;
}

/* Move n bytes into the ring, waiting for room. TSR_UNAVAILABLE once the client is gone. */
static tsr_rc push(struct task *t, const char *p, size_t n)
{
	while (n) {
		pthread_mutex_lock(&t->mu);
		while (t->len == RING_BYTES && t->r && !atomic_load(&stopping))
			pthread_cond_wait(&t->cv, &t->mu);
		if (!t->r || atomic_load(&stopping)) {
			pthread_mutex_unlock(&t->mu);
			return TSR_UNAVAILABLE;
		}
		size_t room = RING_BYTES - t->len;
		size_t k = n < room ? n : room;
		size_t tail = (t->head + t->len) % RING_BYTES;
		size_t first = k < RING_BYTES - tail ? k : RING_BYTES - tail;
		memcpy(t->ring + tail, p, first);
		memcpy(t->ring, p + first, k - first);
		t->len += k;
		http_stream_wake(t->r);
		pthread_mutex_unlock(&t->mu);
		p += k;
		n -= k;
	}
	return TSR_OK;
}

static tsr_rc flush(struct task *t)
{
	tsr_rc rc = push(t, t->stage, t->stage_len);
	t->stage_len = 0;
	return rc;
}

/* Body bytes that count towards records_sha256. */
static tsr_rc out(struct task *t, const char *p, size_t n)
{
	EVP_DigestUpdate(t->digest, p, n);
	t->bytes += n;
	while (n) {
		size_t k = STAGE_BYTES - t->stage_len < n ? STAGE_BYTES - t->stage_len : n;
		memcpy(t->stage + t->stage_len, p, k);
		t->stage_len += k;
		p += k;
		n -= k;
		if (t->stage_len == STAGE_BYTES) {
			tsr_rc rc = flush(t);
			if (rc != TSR_OK)
				return rc;
		}
	}
	return TSR_OK;
}

/* One JSON line (CSV: "# " + JSON), into the digest unless it is the trailer. */
static tsr_rc out_json(struct task *t, json_t *j, bool comment)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return TSR_INTERNAL;
	tsr_rc rc = TSR_OK;
	if (comment)
		rc = out(t, "# ", 2);
	if (rc == TSR_OK)
		rc = out(t, s, strlen(s));
	if (rc == TSR_OK)
		rc = out(t, "\n", 1);
	free(s);
	return rc;
}

/* Reply once (verify, or an error before streaming started), if the client is still there. */
static void reply_json(struct task *t, int status, json_t *j)
{
	pthread_mutex_lock(&t->mu);
	if (t->r) {
		tsr_rc rc = http_reply_json(t->r, status, j);
		(void)rc;
		http_resume(t->r);
	} else {
		json_decref(j);
	}
	pthread_mutex_unlock(&t->mu);
}

static void reply_error(struct task *t, tsr_rc code, const char *msg)
{
	pthread_mutex_lock(&t->mu);
	if (t->r) {
		tsr_rc rc = http_reply_error(t->r, code, "%s", msg);
		(void)rc;
		http_resume(t->r);
	}
	pthread_mutex_unlock(&t->mu);
}

static bool in_ids(int64_t v, const int64_t *ids, int n)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == v)
			return true;
	return false;
}

static json_t *problem_json(const struct audit_finding *f)
{
	if (f->problem == AUDIT_OK)
		return json_null();
	return json_pack("{s:s,s:I,s:I,s:s}", "kind", audit_problem_name(f->problem), "seq", (json_int_t)f->seq,
			 "seal_id", (json_int_t)f->seal_id, "message", f->message);
}

static json_t *seal_brief(const struct audit_seal_rec *s, bool have)
{
	if (!have)
		return json_null();
	char at[32];
	audit_time_format(s->sealed_at_us, at);
	return json_pack("{s:I,s:I,s:s,s:s}", "id", (json_int_t)s->id, "seq_upto", (json_int_t)s->seq_upto,
			 "sealed_at", at, "key_id", s->key_id);
}

static void audit_action(struct task *t, struct db_conn *c, const char *action, bool ok, json_t *detail)
{
	char *d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	struct audit_event ev;
	if (d && audit_event_init(&ev, t->who, action, ok ? "success" : "failure") == TSR_OK) {
		ev.actor_user_id = t->who_id;
		ev.actor_addr = t->addr;
		ev.detail = d;
		if (db_audit_append(c, &ev, 1) != TSR_OK)
			log_error("audit_write_failed", "action=%s", action);
	}
	free(d);
}

/* ---------- export ---------- */

static tsr_rc export_records(struct task *t, struct db_conn *c)
{
	int64_t *uids = NULL, *rids = NULL;
	int nu = 0, nr = 0;
	struct audit_verify_out vo;
	memset(&vo, 0, sizeof(vo));
	audit_verify_init(&vo.v);
	struct audit_reader *rd = NULL;
	json_t *trailer = NULL;
	int64_t count = 0, seals_written = 0, first_seq = 0, last_seq = 0;
	uint8_t first_prev[32] = { 0 }, head_hash[32] = { 0 };
	bool filtered = t->has_user || t->has_repo;
	tsr_rc rc = TSR_OK;
	char msg[600];

	if (t->has_user && (rc = db_audit_user_ids(c, t->user, &uids, &nu)) != TSR_OK) {
		snprintf(msg, sizeof(msg), "no user named %s", t->user);
		reply_error(t, rc, rc == TSR_NOT_FOUND ? msg : "cannot look the user up");
		goto out;
	}
	if (t->has_repo && (rc = db_audit_repo_ids(c, t->repo, &rids, &nr)) != TSR_OK) {
		snprintf(msg, sizeof(msg), "no repository named %s", t->repo);
		reply_error(t, rc, rc == TSR_NOT_FOUND ? msg : "cannot look the repository up");
		goto out;
	}
	struct audit_range range;
	rc = db_audit_read_begin(c);
	if (rc == TSR_OK)
		rc = db_audit_range(c, t->has_from ? t->from : NULL, t->has_to ? t->to : NULL, &range);
	if (rc == TSR_INVALID) {
		reply_error(t, rc, "from and to must be times, e.g. 2026-11-20 or 2026-11-20T10:00:00Z (UTC)");
		goto out;
	}
	if (rc == TSR_OK)
		rc = db_audit_verify_prepare(c, &range, &vo);
	if (rc == TSR_OK && !range.empty)
		rc = audit_reader_open(c, range.lo, range.hi, &rd);
	if (rc != TSR_OK) {
		reply_error(t, rc, "cannot read the audit log");
		goto out;
	}

	/* from here the reply is the stream */
	char name[128], expect[32];
	snprintf(name, sizeof(name), "attachment; filename=\"tessera-audit-%" PRId64 "-%" PRId64 ".%s\"",
		 range.empty ? 0 : range.lo, range.empty ? 0 : range.hi, t->csv ? "csv" : "jsonl");
	snprintf(expect, sizeof(expect), "%" PRId64, range.empty ? 0 : range.hi - range.lo + 1);
	pthread_mutex_lock(&t->mu);
	if (t->r) {
		tsr_rc ignored = http_reply_header(t->r, "Content-Disposition", name);
		ignored = http_reply_header(t->r, "X-Tessera-Expected-Records", expect);
		(void)ignored;
		http_stream_start(t->r, 200, t->csv ? "text/csv; charset=utf-8" : "application/x-ndjson", stream_read, t);
		t->streaming = true;
	}
	pthread_mutex_unlock(&t->mu);
	if (!t->streaming) {
		rc = TSR_UNAVAILABLE;
		goto out;
	}
	if (t->csv) {
		struct buf h;
		buf_init(&h, 4096);
		rc = audit_csv_header(&h);
		if (rc == TSR_OK)
			rc = out(t, h.data, h.len);
		buf_free(&h);
	}
	struct buf line;
	buf_init(&line, MAX_LINE);
	if (rd) {
		vo.v.find = db_audit_find_hash;
		vo.v.find_arg = rd;
		const struct audit_row *row;
		while (rc == TSR_OK && (rc = audit_reader_next(rd, &row)) == TSR_OK && row) {
			if (audit_verify_record(&vo.v, &row->rec) && row->has_seal)
				audit_verify_seal(&vo.v, &row->seal, true);
			bool keep = (!t->has_user || in_ids(row->user_id, uids, nu)) &&
				    (!t->has_repo || in_ids(row->repo_id, rids, nr));
			if (keep) {
				if (!count) {
					first_seq = row->rec.seq;
					memcpy(first_prev, row->rec.prev_hash, 32);
				}
				last_seq = row->rec.seq;
				memcpy(head_hash, row->rec.hash, 32);
				count++;
				if (t->csv) {
					line.len = 0;
					rc = audit_csv_row(&line, &row->rec);
					if (rc == TSR_OK)
						rc = out(t, line.data, line.len);
				} else {
					rc = out_json(t, audit_export_json(&row->rec), false);
				}
			}
			if (rc == TSR_OK && row->has_seal) {
				rc = out_json(t, audit_export_seal_json(&row->seal), t->csv);
				seals_written++;
			}
		}
		if (rc == TSR_OK)
			rc = audit_reader_quiesce(rd);
		vo.v.find = NULL;
	}
	buf_free(&line);
	if (rc == TSR_OK)
		rc = db_audit_verify_finish(c, &vo);
	audit_reader_close(rd);
	rd = NULL;
	struct audit_seal_rec cover;
	bool have_cover = false;
	if (rc == TSR_OK && vo.v.have_last)
		rc = db_audit_covering_seal(c, vo.v.last_seq, &cover, &have_cover);
	db_audit_read_end(c);
	if (rc != TSR_OK)
		goto out;

	/* the trailing verification record, signed */
	char ph[65], hh[65], now[32];
	crypto_hex(first_prev, 32, ph);
	crypto_hex(head_hash, 32, hh);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	audit_time_format((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, now);
	uint8_t digest[32];
	unsigned int dl = 32;
	EVP_DigestFinal_ex(t->digest, digest, &dl);
	char dhex[65];
	crypto_hex(digest, 32, dhex);
	json_t *filter = json_object();
	if (t->has_user)
		json_object_set_new(filter, "user", json_string(t->user));
	if (t->has_repo)
		json_object_set_new(filter, "repo", json_string(t->repo));
	trailer = json_pack(
		"{s:s,s:s,s:s,s:o,s:o,s:o,s:b,s:o,s:o,s:I,s:o,s:o,s:{s:b,s:I,s:I,s:I,s:o},s:I,s:o,s:s,s:s,s:s}", "type",
		"verification", "format", AUDIT_EXPORT_FORMAT, "records_format", t->csv ? "csv" : "jsonl", "from",
		t->has_from ? json_string(t->from) : json_null(), "to", t->has_to ? json_string(t->to) : json_null(),
		"filter", filter, "filtered", filtered, "seq_first", count ? json_integer(first_seq) : json_null(),
		"seq_last", count ? json_integer(last_seq) : json_null(), "count", (json_int_t)count, "first_prev_hash",
		count ? json_string(ph) : json_null(), "head_hash", count ? json_string(hh) : json_null(), "chain",
		"verified", vo.v.bad.problem == AUDIT_OK, "records", (json_int_t)vo.v.count, "seq_first",
		(json_int_t)(vo.v.have_first ? vo.v.first_seq : 0), "seq_last", (json_int_t)(vo.v.have_last ? vo.v.last_seq : 0),
		"problem", problem_json(&vo.v.bad), "seals_in_file", (json_int_t)seals_written, "covering_seal",
		have_cover ? audit_export_seal_json(&cover) : json_null(), "records_sha256", dhex, "exported_at", now,
		"exported_by", t->who);
	if (!trailer) {
		rc = TSR_INTERNAL;
		goto out;
	}
	char kid[65] = "";
	uint8_t sig[AUDIT_SIG_LEN];
	bool signed_ok = false;
	if (t->b->masterkey) {
		json_object_set_new(trailer, "key_id", json_null());
		json_object_set_new(trailer, "signature", json_null());
		/* the key id is part of what is signed: pick the key first */
		struct seal_key *keys = NULL;
		int nk = 0;
		if (db_seal_keys(c, &keys, &nk) == TSR_OK && nk && keys[0].active)
			snprintf(kid, sizeof(kid), "%s", keys[0].id);
		free(keys);
		if (!kid[0]) {
			/* no key yet: the signing call creates it, then sign again with its id */
			char *probe = audit_export_signed_text(trailer);
			if (probe && db_seal_sign(c, t->b->masterkey, probe, strlen(probe), kid, sig) != TSR_OK)
				kid[0] = '\0';
			free(probe);
		}
		if (kid[0]) {
			json_object_set_new(trailer, "key_id", json_string(kid));
			char *text = audit_export_signed_text(trailer);
			char used[65];
			if (text && db_seal_sign(c, t->b->masterkey, text, strlen(text), used, sig) == TSR_OK &&
			    strcmp(used, kid) == 0)
				signed_ok = true;
			free(text);
		}
	}
	if (signed_ok) {
		char b64[89];
		audit_b64(sig, AUDIT_SIG_LEN, b64);
		json_object_set_new(trailer, "signature", json_string(b64));
	} else {
		json_object_set_new(trailer, "key_id", json_null());
		json_object_set_new(trailer, "signature", json_null());
		log_warn("audit_export_unsigned", "reason=\"%s\"",
			 t->b->masterkey ? "signing failed" : "no master key: set [server] master_key_file");
	}
	json_t *d = json_pack("{s:o,s:o,s:s,s:O,s:I,s:I,s:I,s:b}", "from",
			      t->has_from ? json_string(t->from) : json_null(), "to",
			      t->has_to ? json_string(t->to) : json_null(), "format", t->csv ? "csv" : "jsonl", "filter",
			      filter, "records", (json_int_t)count, "seq_first", (json_int_t)first_seq, "seq_last",
			      (json_int_t)last_seq, "chain_verified", vo.v.bad.problem == AUDIT_OK);
	if (d)
		audit_action(t, c, "audit.export", true, d);
	json_decref(d);
	rc = flush(t);
	if (rc == TSR_OK) {
		char *s = json_dumps(trailer, JSON_COMPACT);
		if (!s)
			rc = TSR_INTERNAL;
		if (rc == TSR_OK && t->csv)
			rc = push(t, "# ", 2);
		if (rc == TSR_OK)
			rc = push(t, s, strlen(s));
		if (rc == TSR_OK)
			rc = push(t, "\n", 1);
		free(s);
	}
	log_info("audit_exported", "records=%" PRId64 " bytes=%" PRIu64 " by=%s chain=%s", count, t->bytes, t->who,
		 audit_problem_name(vo.v.bad.problem));
out:
	audit_reader_close(rd);
	if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		db_audit_read_end(c);
	json_decref(trailer);
	db_audit_verify_free(&vo);
	free(uids);
	free(rids);
	return rc;
}

/* ---------- verify ---------- */

static tsr_rc verify_range(struct task *t, struct db_conn *c)
{
	struct audit_verify_out vo;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* large ranges are cut into stretches verified at once on their own connections, one per CPU (at most 4) */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int nseg = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
	tsr_rc rc = db_audit_verify_segments(c, t->b->conninfo, (int)t->b->cfg->database.connect_timeout, nseg,
					     t->has_from ? t->from : NULL, t->has_to ? t->to : NULL, &vo);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc != TSR_OK) {
		db_audit_verify_free(&vo);
		reply_error(t, rc,
			    rc == TSR_INVALID ? "from and to must be times, e.g. 2026-11-20 or 2026-11-20T10:00:00Z (UTC)"
					      : "cannot read the audit log");
		return rc;
	}
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	struct audit_verifier *v = &vo.v;
	char hh[65];
	crypto_hex(vo.range.head_hash, 32, hh);
	bool ok = v->bad.problem == AUDIT_OK;
	json_t *j = json_pack("{s:b,s:{s:o,s:o,s:o,s:o},s:I,s:I,s:I,s:{s:I,s:s},s:o,s:o,s:I,s:f}", "ok", ok, "range",
			      "from", t->has_from ? json_string(t->from) : json_null(), "to",
			      t->has_to ? json_string(t->to) : json_null(), "seq_first",
			      v->have_first ? json_integer(v->first_seq) : json_null(), "seq_last",
			      v->count ? json_integer(v->last_seq) : json_null(), "records", (json_int_t)v->count, "seals",
			      (json_int_t)v->seals, "unsealed", (json_int_t)vo.unsealed, "head", "seq",
			      (json_int_t)vo.range.head_seq, "hash", hh, "latest_seal", seal_brief(&v->last_seal, v->have_seal),
			      "problem", problem_json(&v->bad), "elapsed_ms", (json_int_t)(secs * 1000), "records_per_second",
			      secs > 0 ? (double)v->count / secs : 0.0);
	json_t *d = json_pack("{s:o,s:o,s:I,s:s,s:I}", "from", t->has_from ? json_string(t->from) : json_null(), "to",
			      t->has_to ? json_string(t->to) : json_null(), "records", (json_int_t)v->count, "result",
			      audit_problem_name(v->bad.problem), "first_bad_seq", (json_int_t)(ok ? 0 : v->bad.seq));
	if (d)
		audit_action(t, c, "audit.verify", ok, d);
	json_decref(d);
	log_info("audit_verified", "records=%" PRId64 " result=%s ms=%.0f", v->count, audit_problem_name(v->bad.problem),
		 secs * 1000);
	db_audit_verify_free(&vo);
	if (!j) {
		reply_error(t, TSR_INTERNAL, "internal error");
		return TSR_INTERNAL;
	}
	reply_json(t, 200, j);
	return TSR_OK;
}

/* ---------- tasks ---------- */

static void *task_main(void *arg)
{
	pthread_setname_np(pthread_self(), "audit-task");
	struct task *t = arg;
	struct db_conn *c = NULL;
	tsr_rc rc = db_acquire(t->b->pool, 5000, &c);
	if (rc != TSR_OK) {
		reply_error(t, TSR_UNAVAILABLE, "database unavailable");
	} else if (t->kind == T_EXPORT) {
		rc = export_records(t, c);
		if (rc != TSR_OK)
			log_warn("audit_export_failed", "error=%s by=%s", status_name(rc), t->who);
	} else {
		rc = verify_range(t, c);
	}
	if (c)
		db_release(t->b->pool, c);
	/* leave the registry while this thread still holds its reference to t */
	pthread_mutex_lock(&registry.mu);
	for (struct task **p = &registry.tasks; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	registry.running--;
	pthread_cond_broadcast(&registry.cv);
	pthread_mutex_unlock(&registry.mu);
	/* then drop it: from here on_close may free t as soon as the lock is released */
	pthread_mutex_lock(&t->mu);
	t->done = true;
	t->failed = rc != TSR_OK;
	t->thread_ref = false;
	if (t->r && t->streaming)
		http_stream_wake(t->r); /* let the reader see the end */
	bool last = !t->http_ref;
	pthread_mutex_unlock(&t->mu);
	if (last)
		task_free(t);
	return NULL;
}

static bool copy_param(struct http_req *r, const char *name, char *dst, size_t n, bool *has)
{
	const char *v = http_query(r, name);
	*has = v && *v;
	if (!*has)
		return true;
	if (strlen(v) >= n)
		return false;
	snprintf(dst, n, "%s", v);
	return true;
}

static tsr_rc start_task(struct http_req *r, enum task_kind kind)
{
	struct task *t = calloc(1, sizeof(*t));
	if (!t)
		return TSR_INTERNAL;
	t->kind = kind;
	bool has_format;
	char format[16] = "";
	if (!copy_param(r, "from", t->from, sizeof(t->from), &t->has_from) ||
	    !copy_param(r, "to", t->to, sizeof(t->to), &t->has_to) ||
	    !copy_param(r, "user", t->user, sizeof(t->user), &t->has_user) ||
	    !copy_param(r, "repo", t->repo, sizeof(t->repo), &t->has_repo) ||
	    !copy_param(r, "format", format, sizeof(format), &has_format)) {
		free(t);
		return http_reply_error(r, TSR_INVALID, "a query parameter is too long");
	}
	if (has_format && strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0) {
		free(t);
		return http_reply_error(r, TSR_INVALID, "format must be jsonl or csv");
	}
	t->csv = has_format && strcmp(format, "csv") == 0;
	t->b = r->b;
	snprintf(t->who, sizeof(t->who), "%s", r->who.user_name);
	t->who_id = r->who.user_id;
	snprintf(t->addr, sizeof(t->addr), "%s", r->client_addr);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if (kind == T_EXPORT) {
		t->ring = malloc(RING_BYTES);
		t->digest = EVP_MD_CTX_new();
		if (!t->ring || !t->digest || EVP_DigestInit_ex(t->digest, crypto_md_sha256(), NULL) != 1) {
			task_free(t);
			return TSR_INTERNAL;
		}
	}

	pthread_mutex_lock(&registry.mu);
	bool busy = registry.running >= MAX_TASKS || atomic_load(&stopping);
	if (!busy)
		registry.running++;
	pthread_mutex_unlock(&registry.mu);
	if (busy) {
		task_free(t);
		r->retry_after = 30;
		return http_reply_error(r, TSR_RATE_LIMITED,
					"%d audit exports or verifications are already running on this replica; try again",
					MAX_TASKS);
	}
	tsr_rc rc = http_defer(r, on_close, t);
	if (rc != TSR_OK) {
		pthread_mutex_lock(&registry.mu);
		registry.running--;
		pthread_mutex_unlock(&registry.mu);
		task_free(t);
		return rc;
	}
	/* from here on_close owns the HTTP side's reference */
	t->r = r;
	t->http_ref = true;
	t->thread_ref = true;
	pthread_mutex_lock(&registry.mu);
	t->next = registry.tasks;
	registry.tasks = t;
	pthread_mutex_unlock(&registry.mu);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int e = pthread_create(&th, &attr, task_main, t);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		/* no thread: answer now, as the thread would have */
		log_error("audit_task_failed", "error=\"cannot start a thread\"");
		pthread_mutex_lock(&registry.mu);
		for (struct task **p = &registry.tasks; *p; p = &(*p)->next)
			if (*p == t) {
				*p = t->next;
				break;
			}
		registry.running--;
		pthread_mutex_unlock(&registry.mu);
		pthread_mutex_lock(&t->mu);
		t->thread_ref = false;
		pthread_mutex_unlock(&t->mu);
		reply_error(t, TSR_UNAVAILABLE, "cannot start the task");
	}
	return TSR_OK;
}

void admin_audit_stop(void)
{
	atomic_store(&stopping, true);
	pthread_mutex_lock(&registry.mu);
	for (struct task *t = registry.tasks; t; t = t->next) {
		pthread_mutex_lock(&t->mu);
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
	}
	while (registry.running > 0)
		pthread_cond_wait(&registry.cv, &registry.mu);
	pthread_mutex_unlock(&registry.mu);
}

static tsr_rc h_export(struct http_req *r)
{
	return start_task(r, T_EXPORT);
}

static tsr_rc h_verify(struct http_req *r)
{
	return start_task(r, T_VERIFY);
}

/* ---------- search ---------- */

struct search_ctx {
	json_t *rows;
	int64_t last_seq;
};

static tsr_rc add_row(void *arg, const struct audit_row *row)
{
	struct search_ctx *s = arg;
	json_t *j = audit_export_json(&row->rec);
	if (!j || json_array_append_new(s->rows, j) != 0)
		return TSR_INTERNAL;
	s->last_seq = row->rec.seq;
	return TSR_OK;
}

static tsr_rc h_search(struct http_req *r)
{
	struct audit_search q;
	memset(&q, 0, sizeof(q));
	q.user = http_query(r, "user");
	q.repo = http_query(r, "repo");
	q.upstream = http_query(r, "upstream");
	q.action = http_query(r, "action");
	q.decision = http_query(r, "decision");
	q.from = http_query(r, "from");
	q.to = http_query(r, "to");
	const char *const vals[] = { q.user, q.repo, q.upstream, q.action, q.decision, q.from, q.to };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		if (vals[i] && strlen(vals[i]) > 512)
			return http_reply_error(r, TSR_INVALID, "a query parameter is too long");
	q.limit = 100;
	const char *l = http_query(r, "limit"), *b = http_query(r, "before");
	if (l) {
		char *end;
		long v = strtol(l, &end, 10);
		if (end == l || *end || v < 1 || v > SEARCH_MAX)
			return http_reply_error(r, TSR_INVALID, "limit must be a number from 1 to %d", SEARCH_MAX);
		q.limit = (int)v;
	}
	if (b) {
		char *end;
		long long v = strtoll(b, &end, 10);
		if (end == b || *end || v < 1)
			return http_reply_error(r, TSR_INVALID, "before must be a record seq");
		q.before = v;
	}
	struct search_ctx s = { json_array(), 0 };
	if (!s.rows)
		return TSR_INTERNAL;
	struct db_conn *c;
	tsr_rc rc = db_acquire(r->b->pool, 2000, &c);
	if (rc != TSR_OK) {
		json_decref(s.rows);
		return rc;
	}
	rc = db_audit_search(c, &q, add_row, &s);
	db_release(r->b->pool, c);
	if (rc != TSR_OK) {
		json_decref(s.rows);
		if (rc == TSR_INVALID)
			return http_reply_error(r, rc, "from and to must be times, e.g. 2026-11-20 or 2026-11-20T10:00:00Z (UTC)");
		return rc;
	}
	size_t n = json_array_size(s.rows);
	return http_reply_json(r, 200, json_pack("{s:o,s:I,s:o}", "records", s.rows, "count", (json_int_t)n,
						 "next_before",
						 n == (size_t)q.limit ? json_integer(s.last_seq) : json_null()));
}

static const struct route routes[] = {
	{ "GET", "/admin/v1/audit/export", ROLE_ADMIN | ROLE_SECURITY, h_export, NULL, NULL },
	{ "GET", "/admin/v1/audit/verify", ROLE_ADMIN | ROLE_SECURITY, h_verify, NULL, NULL },
	{ "GET", "/admin/v1/audit/search", ROLE_ADMIN | ROLE_SECURITY, h_search, NULL, NULL },
};
ROUTE_TABLE(admin_audit_routes, routes);
