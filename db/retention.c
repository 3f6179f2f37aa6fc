/*
 * retention.c — see retention.h.
 *
 * Lock order: the partitions (ACCESS EXCLUSIVE, taken by the drop, which
 * waits at most lock_timeout for readers such as a running export), then the
 * audit chain head (db_audit_append). Writers wait for the commit; the drop
 * itself is a catalog change, so that is short.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "retention.h"
#include "audit.h"
#include "../lib/log.h"

/* the cutoff never reaches into the current month (the drop function refuses that) */
static const struct db_stmt S_CUTOFF = { "retention_cutoff", 1,
	"SELECT least(now() - make_interval(secs => $1::double precision), "
	"             date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::text" };
static const struct db_stmt S_CANDIDATES = { "retention_candidates", 1,
	"SELECT c.relname FROM pg_inherits ih JOIN pg_class c ON c.oid = ih.inhrelid "
	" WHERE ih.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_[0-9]{6}$' "
	"   AND (make_date(substr(c.relname, 14, 4)::int, substr(c.relname, 18, 2)::int, 1)::timestamp "
	"        + interval '1 month') AT TIME ZONE 'UTC' <= $1::timestamptz "
	" ORDER BY c.relname" };
static const struct db_stmt S_DROPPED_STATS = { "retention_dropped_stats", 1,
	"SELECT count(*), max(seq), (SELECT min(seq) FROM audit_events WHERE tableoid <> ALL($1::regclass[])) "
	"  FROM audit_events WHERE tableoid = ANY($1::regclass[])" };
static const struct db_stmt S_HASH = { "retention_hash", 1,
	"SELECT encode(hash, 'hex') FROM audit_events WHERE seq = $1 ORDER BY at LIMIT 1" };
static const struct db_stmt S_DROP = { "retention_drop", 1,
	"SELECT audit_drop_partitions_before($1::timestamptz)" };

static tsr_rc audit_it(struct db_conn *c, const char *actor, const char *outcome, json_t *detail)
{
	char *d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	if (!d)
		return TSR_INTERNAL;
	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, actor, "audit.retention", outcome);
	if (rc == TSR_OK) {
		ev.detail = d;
		rc = db_audit_append(c, &ev, 1);
	}
	free(d);
	return rc;
}

tsr_rc db_audit_retention(struct db_conn *c, int64_t retention_secs, const char *actor, struct retention_result *out)
{
	memset(out, 0, sizeof(*out));
	char secs[24];
	snprintf(secs, sizeof(secs), "%" PRId64, retention_secs);
	json_t *names = json_array();
	json_t *detail = NULL;
	char *arr = NULL;
	const char **v = NULL;
	tsr_rc rc = db_simple(c, "BEGIN");
	if (rc != TSR_OK) {
		json_decref(names);
		return rc;
	}
	const char *p1[] = { secs };
	PGresult *r = db_exec(c, &S_CUTOFF, 1, p1, &rc);
	if (!r)
		goto out;
	snprintf(out->cutoff, sizeof(out->cutoff), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *p2[] = { out->cutoff };
	r = db_exec(c, &S_CANDIDATES, 1, p2, &rc);
	if (!r)
		goto out;
	int n = PQntuples(r);
	v = calloc((size_t)n + 1, sizeof(*v));
	for (int i = 0; v && i < n; i++) {
		v[i] = PQgetvalue(r, i, 0);
		json_array_append_new(names, json_string(v[i]));
	}
	arr = v && n ? db_text_array(v, (size_t)n) : NULL;
	PQclear(r);
	if (!v) {
		rc = TSR_INTERNAL;
		goto out;
	}
	if (n == 0)
		goto out; /* nothing old enough */
	if (!arr) {
		rc = TSR_INTERNAL;
		goto out;
	}
	const char *p3[] = { arr };
	r = db_exec(c, &S_DROPPED_STATS, 1, p3, &rc);
	if (!r)
		goto out;
	out->records = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	bool any = !PQgetisnull(r, 0, 1);
	int64_t max_dropped = any ? strtoll(PQgetvalue(r, 0, 1), NULL, 10) : 0;
	bool rest = !PQgetisnull(r, 0, 2);
	int64_t min_kept = rest ? strtoll(PQgetvalue(r, 0, 2), NULL, 10) : 0;
	PQclear(r);
	detail = json_pack("{s:s,s:I,s:O,s:I}", "cutoff", out->cutoff, "retention_seconds", (json_int_t)retention_secs,
			   "partitions", names, "records_dropped", (json_int_t)out->records);
	if (!detail) {
		rc = TSR_INTERNAL;
		goto out;
	}
	if (any && rest && max_dropped >= min_kept) {
		/* refuse, and say so in the log and the audit trail (in a fresh transaction) */
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
		json_object_set_new(detail, "refused",
				    json_string("a kept record has a lower seq than a dropped one: the chain would have a hole"));
		json_object_set_new(detail, "max_dropped_seq", json_integer((json_int_t)max_dropped));
		json_object_set_new(detail, "min_kept_seq", json_integer((json_int_t)min_kept));
		rc = audit_it(c, actor, "failure", detail);
		log_error("audit_retention_refused", "max_dropped_seq=%" PRId64 " min_kept_seq=%" PRId64, max_dropped,
			  min_kept);
		json_decref(detail);
		json_decref(names);
		free(arr);
		free(v);
		return rc == TSR_OK ? TSR_CONFLICT : rc;
	}
	if (any) {
		char ms[24];
		snprintf(ms, sizeof(ms), "%" PRId64, max_dropped);
		const char *p4[] = { ms };
		r = db_exec(c, &S_HASH, 1, p4, &rc);
		if (!r)
			goto out;
		json_object_set_new(detail, "last_dropped_seq", json_integer((json_int_t)max_dropped));
		json_object_set_new(detail, "last_dropped_hash", json_string(PQntuples(r) ? PQgetvalue(r, 0, 0) : ""));
		PQclear(r);
		out->last_dropped_seq = max_dropped;
	}
	r = db_exec(c, &S_DROP, 1, p2, &rc);
	if (!r)
		goto out;
	out->partitions = PQntuples(r);
	PQclear(r);
	rc = audit_it(c, actor, "success", detail);
out:
	if (rc == TSR_OK) {
		rc = db_simple(c, "COMMIT");
	} else if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	if (rc == TSR_OK && out->partitions)
		log_info("audit_retention_dropped", "partitions=%d records=%" PRId64 " cutoff=\"%s\"", out->partitions,
			 out->records, out->cutoff);
	json_decref(detail);
	json_decref(names);
	free(arr);
	free(v);
	return rc;
}
