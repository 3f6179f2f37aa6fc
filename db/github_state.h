/*
 * github_state.h — the GitHub sync's own bookkeeping in Postgres: its
 * sync_runs rows, the conditional-request cache (github_etags), webhook
 * delivery ids (replay protection) and the queue of targeted re-reads that
 * webhook deliveries ask for (github_sync_queue, migrations/0004_github.sql).
 * The permissions themselves are db/repo_perm.h. Functions run in the
 * caller's open transaction unless they say otherwise.
 */
#ifndef TSR_DB_GITHUB_STATE_H
#define TSR_DB_GITHUB_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "db.h"
#include "repo_perm.h"

/* ---------- sync bookkeeping ---------- */

/*
 * Insert a sync_runs row (kind 'github', status 'running') in its own
 * transaction; first mark older 'running' github rows 'aborted' when
 * abort_stale (the caller holds the sync lock, so they belong to a dead
 * replica). request_id (may be NULL) goes into detail.request_id, where
 * `tessera sync run` looks for the run it asked for.
 */
tsr_rc db_gh_run_begin(struct db_conn *c, const char *mode, const char *started_by, const char *request_id,
		       bool abort_stale, int64_t *run_id) TSR_WUR;
/* A webhook's run row, already finished ('ok'), inside the caller's transaction. */
tsr_rc db_gh_run_webhook(struct db_conn *c, const char *started_by, int64_t *run_id) TSR_WUR;
/* Drop a webhook run row that ended up changing nothing (same transaction). */
tsr_rc db_gh_run_discard(struct db_conn *c, int64_t run_id) TSR_WUR;

struct gh_run_totals {
	const struct rp_counts *counts;
	const struct rp_changes *changes;
	long api_calls, not_modified;
	int64_t wait_ms;
	const char *detail;   /* JSON object text or NULL */
};
/* Record the outcome: status ok|failed|aborted, error text (never a secret) or NULL; detail is merged. */
tsr_rc db_gh_run_finish(struct db_conn *c, int64_t run_id, const char *status, const char *error,
			const struct gh_run_totals *t) TSR_WUR;

/* ---------- conditional-request cache (github_etags) ---------- */

/* Call fn for every stored entry whose url starts with prefix and whose data has version v. */
typedef tsr_rc (*gh_etag_fn)(void *arg, const char *url, const char *etag, const char *data);
tsr_rc db_gh_etags_load(struct db_conn *c, const char *prefix, int version, gh_etag_fn fn, void *arg) TSR_WUR;
/* Upsert n entries (sha256 as 64 hex digits or NULL); entries untouched for 30 days are purged. */
tsr_rc db_gh_etags_save(struct db_conn *c, const char *const *urls, const char *const *etags,
			const char *const *sha_hex, const char *const *datas, size_t n) TSR_WUR;

/* ---------- webhook deliveries and the targeted work queue ---------- */

/* Record X-GitHub-Delivery; *duplicate when it was seen before (replay). */
tsr_rc db_gh_delivery_claim(struct db_conn *c, const char *delivery_id, bool *duplicate) TSR_WUR;

struct gh_queue_item {
	int64_t id;
	char org[101];
	char kind[16];      /* repo | team | members | org */
	int64_t ref_id;
	char ref[101];
	char event[48];
};
tsr_rc db_gh_queue_add(struct db_conn *c, const char *org, const char *kind, int64_t ref_id, const char *ref,
		       const char *event) TSR_WUR;
/* Up to max queued items, oldest first; caller frees *out with free(). */
tsr_rc db_gh_queue_peek(struct db_conn *c, int max, struct gh_queue_item **out, int *n) TSR_WUR;
/* Delete processed items (ids[0..n)). */
tsr_rc db_gh_queue_done(struct db_conn *c, const int64_t *ids, size_t n) TSR_WUR;
/* A complete run supersedes every item queued before it started: delete them. */
tsr_rc db_gh_queue_done_before_run(struct db_conn *c, int64_t run_id) TSR_WUR;

#endif
