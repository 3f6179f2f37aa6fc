/*
 * repo_perm.h — repository permissions from the repo host, in Postgres.
 *
 * Two layers (tables in migrations/0001_initial.sql and 0004_github.sql):
 *   inputs   what GitHub reports: github_orgs, github_org_members,
 *            github_teams, github_team_members, github_team_repos,
 *            github_repo_collaborators, plus repositories and repo_accounts;
 *   derived  repo_permission_sources (one row per source of a user's
 *            permission on a repo), repo_permissions (their maximum: the row
 *            the token check reads) and repo_permission_history (one row per
 *            change of a source).
 * db_rp_store_*() replace inputs; db_rp_recompute() derives the sources of
 * an organisation (or of some of its users or repos) from the inputs with one
 * query, writes what differs (history rows included), keeps repo_permissions
 * equal to the maximum, revokes the access tokens whose permission vanished
 * (db_perm_revoke_lost) and NOTIFYs tessera_perm. Identity join: a GitHub
 * account counts for the live user whose repo_login equals its login, case
 * insensitively; unmatched accounts get nothing.
 *
 * The sync's own bookkeeping (runs, ETag cache, deliveries, queue) is
 * db/github_state.h.
 *
 * Transactions: every function runs in the caller's open transaction (the
 * sync runs one per run, a webhook one per delivery) and takes the
 * transaction-level advisory lock RP_WRITE_LOCK first (db_rp_lock), so a
 * webhook and a sync run never interleave their writes.
 */
#ifndef TSR_DB_REPO_PERM_H
#define TSR_DB_REPO_PERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "db.h"

/* GitHub's own ids everywhere below: accounts, teams and repos. perm is "read" … "admin". */
struct rp_account { int64_t id; const char *login; };
struct rp_member { int64_t account_id; bool owner; };
struct rp_team { int64_t id; const char *slug; const char *name; int64_t parent_id; /* 0: top */ };
struct rp_team_member { int64_t team_id; int64_t account_id; };
struct rp_grant { int64_t team_id; int64_t repo_id; const char *perm; };
struct rp_collab { int64_t repo_id; int64_t account_id; const char *perm; };
struct rp_repo {
	int64_t id;
	const char *name;
	const char *visibility;       /* public|private|internal or NULL */
	bool archived;
	const char *const *topics;
	size_t ntopics;
	const char *const *classes;   /* classifications derived from topics */
	size_t nclasses;
};

/* Counts of input changes, for sync_runs. */
struct rp_counts {
	int repos_added, repos_updated, repos_removed;
	int teams_added, teams_updated, teams_removed;
	int members_added, members_removed;          /* org and team memberships */
	int grants_changed, collabs_changed;
};

/* What a recompute changed. */
struct rp_changes {
	int granted, raised, lowered, removed;  /* source rows (= history rows written) */
	int pairs_changed;                      /* repo_permissions rows written or deleted */
	int pairs_lost;                         /* of which deleted: the user lost the repo */
	int revoked;                            /* access tokens revoked for it */
};

/* Take the transaction-level write lock shared by sync runs and webhooks. */
tsr_rc db_rp_lock(struct db_conn *c) TSR_WUR;

/* Upsert accounts (id, login); a renamed login is updated. */
tsr_rc db_rp_store_accounts(struct db_conn *c, const struct rp_account *v, size_t n) TSR_WUR;
/* The organisation's row: login as GitHub spells it, its id, base permission (NULL: none). */
tsr_rc db_rp_store_org(struct db_conn *c, const char *login, int64_t id, const char *base_perm) TSR_WUR;
/* Replace the org's member list. */
tsr_rc db_rp_store_members(struct db_conn *c, const char *org, const struct rp_member *v, size_t n,
			   struct rp_counts *k) TSR_WUR;
/* Replace the org's team list; teams that vanished lose their members and grants. */
tsr_rc db_rp_store_teams(struct db_conn *c, const char *org, const struct rp_team *v, size_t n,
			 struct rp_counts *k) TSR_WUR;
/* Replace the member lists of the teams in scope[0..ns). */
tsr_rc db_rp_store_team_members(struct db_conn *c, const int64_t *scope, size_t ns, const struct rp_team_member *v,
				size_t n, struct rp_counts *k) TSR_WUR;
/* Replace the grants of the teams in teams[0..nt) and of the repos in repos[0..nr). */
tsr_rc db_rp_store_grants(struct db_conn *c, const int64_t *teams, size_t nt, const int64_t *repos, size_t nr,
			  const struct rp_grant *v, size_t n, struct rp_counts *k) TSR_WUR;
/* Replace the direct collaborators of the repos in scope[0..ns). */
tsr_rc db_rp_store_collabs(struct db_conn *c, const int64_t *scope, size_t ns, const struct rp_collab *v, size_t n,
			   struct rp_counts *k) TSR_WUR;
/*
 * Upsert the org's repositories (owner = org login as GitHub spells it).
 * With complete, repos of the org not in v are marked removed (removed_at)
 * and lose their grants and collaborators. Repos that were archived,
 * unarchived, reclassified or removed get NOTIFY tessera_perm 'repo:<id>'.
 */
tsr_rc db_rp_store_repos(struct db_conn *c, const char *org_login, const struct rp_repo *v, size_t n, bool complete,
			 struct rp_counts *k) TSR_WUR;

/*
 * Refresh the planner's statistics of the input and source tables, inside
 * the caller's transaction (ANALYZE counts the rows it inserted). A first
 * sync fills empty tables: without this the recompute is planned for empty
 * tables and runs in nested loops for hours at 10,000 repositories.
 */
tsr_rc db_rp_analyze(struct db_conn *c) TSR_WUR;

/*
 * Derive the permission sources of org (lower-case login) from the inputs
 * and apply the difference, limited to the accounts in accounts[0..na)
 * and/or the repos in repos[0..nr) when those are non-NULL (GitHub ids).
 * run_id (sync_runs.id) goes into the history rows; actor names who revokes
 * ("github-sync").
 */
tsr_rc db_rp_recompute(struct db_conn *c, const char *org, const int64_t *accounts, size_t na, const int64_t *repos,
		       size_t nr, int64_t run_id, const char *actor, struct rp_changes *out) TSR_WUR;

/*
 * Revoke, at once, the live access tokens (credentials of kind 'access')
 * scoped through credential_repos to a repo whose user no longer holds any
 * permission on it: for each pair (user_ids[i], repo_ids[i]) without a
 * repo_permissions row. Sets revoked_at, revoked_reason 'permission lost',
 * revoked_by actor; one audit event "token.revoke" per token; NOTIFY
 * tessera_revoke '<credential id>' and tessera_perm 'user:<u>:repo:<r>'.
 * Pairs that still hold a permission are left alone, so calling it is always
 * safe. Joins the caller's transaction or runs its own. *revoked may be NULL.
 */
tsr_rc db_perm_revoke_lost(struct db_conn *c, const int64_t *user_ids, const int64_t *repo_ids, size_t n,
			   const char *actor, int *revoked) TSR_WUR;

/* ---------- webhook removals: the input rows a delivery invalidates ---------- */

/* Collaborator account left repo. */
tsr_rc db_rp_remove_collab(struct db_conn *c, int64_t repo_id, int64_t account_id, bool *changed) TSR_WUR;
/*
 * Account left team: also from the team's ancestors, whose listed members
 * include the members of child teams (fail closed; the queued re-read of
 * those teams restores a direct membership of an ancestor).
 */
tsr_rc db_rp_remove_team_member(struct db_conn *c, int64_t team_id, int64_t account_id, bool *changed) TSR_WUR;
/* Team lost its grant on repo. */
tsr_rc db_rp_remove_grant(struct db_conn *c, int64_t team_id, int64_t repo_id, bool *changed) TSR_WUR;
/* Team (and, as on GitHub, its child teams) deleted. */
tsr_rc db_rp_remove_team(struct db_conn *c, int64_t team_id, bool *changed) TSR_WUR;
/*
 * Account left the organisation: its org role, its team memberships and its
 * collaborations on the org's repositories go (fail closed: should GitHub
 * have kept one as an outside collaborator, the next full run restores it).
 */
tsr_rc db_rp_remove_org_member(struct db_conn *c, const char *org, int64_t account_id, bool *changed) TSR_WUR;
/* Repository deleted: marked removed, grants and collaborators dropped, NOTIFY 'repo:<id>'. */
tsr_rc db_rp_remove_repo(struct db_conn *c, int64_t repo_id, bool *changed) TSR_WUR;
/*
 * A repository's own attributes changed (renamed, archived, visibility,
 * topics): update the live row by GitHub id when it exists. topics/classes
 * NULL keep the stored ones. NOTIFY 'repo:<id>' when archived or
 * classifications changed.
 */
tsr_rc db_rp_update_repo(struct db_conn *c, int64_t repo_id, const char *owner, const char *name,
			 const char *visibility, bool archived, const char *const *topics, size_t ntopics,
			 const char *const *classes, size_t nclasses, bool *changed) TSR_WUR;

/* ---------- report ---------- */

/* A repo-host account that matches no live user (it gets no permission). */
struct rp_unmatched {
	char login[101];
	int64_t id;             /* GitHub user id */
	char orgs[512];         /* "org:role,…" of the synced orgs it belongs to ("" for outside collaborators) */
	int teams;              /* team memberships */
	int collaborations;     /* repositories it was added to directly */
	char first_seen[32], last_seen[32];  /* RFC 3339 UTC */
};
typedef tsr_rc (*rp_unmatched_fn)(void *arg, const struct rp_unmatched *u);
/*
 * Accounts the sync currently sees (org members, direct and outside
 * collaborators) whose login matches no live user's repo_login, by login,
 * at most limit of them; *total is how many there are.
 */
tsr_rc db_rp_unmatched(struct db_conn *c, int limit, rp_unmatched_fn fn, void *arg, int64_t *total) TSR_WUR;

#endif
