/*
 * audit.h — appending audit events to the hash chain in Postgres.
 *
 * The writer protocol is the one documented at audit_chain_head in
 * migrations/0001_initial.sql: lock the head row, give each record the next
 * seq and chain its hash (lib/audit_canon.h), insert, move the head, commit.
 * Batches amortise the serialised section. The gateway's spool and batching
 * (issue 7) build on db_audit_append().
 */
#ifndef TSR_DB_AUDIT_H
#define TSR_DB_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include "db.h"
#include "../lib/audit_canon.h"

/*
 * One event. Numeric fields: 0 (ids) or -1 (counts, status, latency) mean
 * NULL. JSON fields are any valid JSON text (canonicalised on append).
 * at_us and event_id are filled by audit_event_init().
 */
struct audit_event {
	int64_t at_us;
	char event_id[37];
	const char *actor;       /* required */
	int64_t actor_user_id;
	const char *actor_addr;
	const char *action;      /* required */
	const char *target;
	const char *outcome;     /* success | failure | denied */
	int64_t user_id, repo_id, credential_id;
	const char *route, *model, *upstream;
	int64_t upstream_key_id;
	const char *decision;
	const char *rule_hits;   /* JSON */
	int64_t req_bytes, resp_bytes;
	const char *req_sha256_hex;
	int64_t status, latency_us, tokens_in, tokens_out;
	const char *detail;      /* JSON */
	/*
	 * detail is already exactly what audit_canon_json() would return
	 * (producers on the hot path write it so, e.g. the gateway): appending
	 * then takes it as is instead of parsing and re-dumping it. Copies of
	 * the struct carry it; the spool/journal line does not (a replayed
	 * event is canonicalised again).
	 */
	bool detail_canonical;
};

/* Zero the event, stamp the time and a fresh event id, NULL the numbers. */
tsr_rc audit_event_init(struct audit_event *e, const char *actor, const char *action, const char *outcome) TSR_WUR;

/* Could e be appended (required fields present, JSON fields valid)? TSR_INVALID if not. */
tsr_rc audit_event_check(const struct audit_event *e) TSR_WUR;

/*
 * Append n events in order. Runs its own transaction when c is idle, or
 * joins the caller's open transaction (then the caller's COMMIT publishes
 * the events together with the change they describe).
 */
tsr_rc db_audit_append(struct db_conn *c, const struct audit_event *ev, int n) TSR_WUR;

#endif
