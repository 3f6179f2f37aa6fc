/*
 * sync_github.h — repository permissions from GitHub into Postgres.
 *
 * sync_github_run() is one run of the job "sync.github": for every
 * organisation in [github] orgs it reads, through the REST client
 * (github.h), the org and its base permission, owners and members, teams
 * with their parents, each team's members and repository grants, the
 * repositories (visibility, archived, topics) and each repository's direct
 * collaborators; then, in ONE Postgres transaction, replaces the stored
 * inputs and recomputes permissions (db/repo_perm.h). Nothing is written
 * until everything was read, so a failed run (GitHub unreachable, a
 * malformed page, Postgres gone) leaves the last good state and is recorded
 * as failed in sync_runs. arg "full" ignores the ETag cache (every page is
 * fetched again); "" (scheduled and ordinary requested runs) sends
 * conditional requests, so an unchanged organisation costs 304s only.
 *
 * sync_github_queue() is one turn of the job "sync.github.queue": it
 * drains github_sync_queue, the targeted work webhook deliveries ask for
 * (re-read one repository, one team and its ancestors, the member lists),
 * and recomputes the organisations it touched.
 *
 * Both serialise on a session advisory lock (a queue turn skips while a run
 * holds it) and write under db_rp_lock(). They run on job threads, never
 * on an HTTP worker. sync/ may use db/ and lib/, never broker/.
 */
#ifndef TSR_SYNC_SYNC_GITHUB_H
#define TSR_SYNC_SYNC_GITHUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "github.h"
#include "../db/db.h"
#include "../db/repo_perm.h"
#include "../lib/config.h"

struct gh_sync_opts {
	const struct config *cfg;
	struct db_pool *pool;
	const char *arg;            /* "full" or "" */
	const char *started_by;     /* sync_runs.started_by, e.g. "schedule", "cli:alice" */
	const char *request_id;     /* recorded as detail.request_id (may be NULL) */
	const atomic_bool *cancel;  /* shutdown: stop waiting on GitHub (may be NULL) */
};

struct gh_sync_result {
	int64_t run_id;             /* 0: no run row (nothing queued, lock busy) */
	char status[16];            /* ok | failed | skipped */
	struct gh_stats api;
	struct rp_counts counts;
	struct rp_changes changes;
	int orgs, repos, teams, members, collaborators, queue_items;
	int64_t ms;                 /* wall time */
	int64_t fetch_ms;           /* of which reading GitHub */
};

/* One run of "sync.github". TSR_OK only when the run committed. */
tsr_rc sync_github_run(const struct gh_sync_opts *o, struct gh_sync_result *out) TSR_WUR;
/* One turn of "sync.github.queue"; TSR_OK with status "skipped" when idle or busy. */
tsr_rc sync_github_queue(const struct gh_sync_opts *o, struct gh_sync_result *out) TSR_WUR;

/*
 * Classifications of a repository with topics[0..n) under the configured
 * topic:classification pairs (topics compare case-insensitively), sorted,
 * without duplicates, into out[0..max). Returns how many; pointers point
 * into map.
 */
size_t sync_github_classify(const struct strlist *map, const char *const *topics, size_t n, const char **out,
			    size_t max);

/* Build a REST client from [github] (token_file, or app_id + app_key_file). Caller frees with gh_client_free(). */
tsr_rc sync_github_client(const struct config *cfg, bool conditional, const atomic_bool *cancel,
			  struct gh_client **out) TSR_WUR;

#endif
