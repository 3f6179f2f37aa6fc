/*
 * sync_run.h — the sync_runs table: one row per LDAP or GitHub sync run.
 *
 * A run's data changes commit in one transaction of their own; the run row
 * is written outside it (begin before, progress during, finish after) on
 * another connection or while no transaction is open, so a failed or
 * refused run is still recorded and a CLI polling the row sees progress.
 * Generic over the kind ('ldap', 'github'): both syncs use it.
 */
#ifndef TSR_DB_SYNC_RUN_H
#define TSR_DB_SYNC_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "db.h"

struct sync_counts {
	int users_added, users_updated, users_deactivated;
	int groups_added, groups_updated, groups_removed;
	int memberships_added, memberships_removed;
	int permissions_changed, api_calls, not_modified;
	int64_t wait_ms;
};

/* A sync_runs row. Strings are owned; release with sync_run_clear(). */
struct sync_run {
	int64_t id;
	char kind[16], mode[16], status[16];
	char started_at[40], finished_at[40]; /* RFC 3339 UTC, "" while running */
	double duration_s;                    /* so far, while running */
	char *error;                          /* NULL when none */
	char *started_by;                     /* NULL when unknown */
	bool forced;
	struct sync_counts counts;
	char *detail;                         /* JSON object text, NULL when none */
	char which[16];                       /* db_sync_run_status(): "latest" or "last_ok" */
};

/*
 * Insert a 'running' row. detail_json may be NULL (e.g. {"request_id":"…"}
 * so a requester finds its run). *id gets the row's id.
 */
tsr_rc db_sync_run_begin(struct db_conn *c, const char *kind, const char *mode, const char *started_by, bool forced,
			 const char *detail_json, int64_t *id) TSR_WUR;
/* Set detail.progress of a running row (a JSON object text). */
tsr_rc db_sync_run_progress(struct db_conn *c, int64_t id, const char *progress_json) TSR_WUR;
/*
 * Finish the row: status 'ok' | 'failed' | 'aborted', error (may be NULL),
 * counts, and detail_json merged into the row's detail (progress dropped).
 */
tsr_rc db_sync_run_finish(struct db_conn *c, int64_t id, const char *status, const char *error,
			  const struct sync_counts *k, const char *detail_json) TSR_WUR;
/*
 * Mark 'running' rows of kind other than keep_id 'aborted' (a replica died
 * mid-run). Call only while holding the job's lock. *n (may be NULL) counts them.
 */
tsr_rc db_sync_run_abort_stale(struct db_conn *c, const char *kind, int64_t keep_id, int *n) TSR_WUR;

/* Seconds since the latest successful run of kind in mode started; -1 when there was none. */
tsr_rc db_sync_run_last_ok_age(struct db_conn *c, const char *kind, const char *mode, int64_t *secs) TSR_WUR;
/* One row by id; TSR_NOT_FOUND when absent. */
tsr_rc db_sync_run_get(struct db_conn *c, int64_t id, struct sync_run *out) TSR_WUR;
/* The newest row of kind whose detail.request_id is request_id; TSR_NOT_FOUND when none (yet). */
tsr_rc db_sync_run_by_request(struct db_conn *c, const char *kind, const char *request_id,
			      struct sync_run *out) TSR_WUR;
/*
 * Per kind: the latest run (which = "latest") and the latest successful one
 * (which = "last_ok"). Caller frees with sync_runs_free().
 */
tsr_rc db_sync_run_status(struct db_conn *c, struct sync_run **out, size_t *n) TSR_WUR;
/* Recent runs, newest first: kind may be NULL (all), limit 1..1000. Caller frees with sync_runs_free(). */
tsr_rc db_sync_run_list(struct db_conn *c, const char *kind, int limit, struct sync_run **out, size_t *n) TSR_WUR;

void sync_run_clear(struct sync_run *r);
void sync_runs_free(struct sync_run *v, size_t n);

#endif
