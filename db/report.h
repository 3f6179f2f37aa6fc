/*
 * report.h — the auditor's reports, computed by Postgres from the evidence
 * tables (permission history, credentials, audit_events, sync_runs, …).
 *
 * Each function returns one JSON document built in SQL (jsonb_build_object:
 * the structure is the report's contract, see tesserad(8)); the HTTP edge
 * (broker/admin_reports.c) parses it and adds what only tesserad knows
 * (configuration). Times are ISO-8601 UTC text; time parameters are parsed
 * by Postgres in UTC and may be NULL for "now" / open ends.
 * Every function runs in its own read-only transaction (c must be idle) and
 * returns TSR_NOT_FOUND when the named user or repository does not exist.
 * Caller frees *json with free().
 */
#ifndef TSR_DB_REPORT_H
#define TSR_DB_REPORT_H

#include "db.h"

/*
 * Who could get a token for repo at `at` (NULL: now): each user holding a
 * permission then, through which sources (team, direct/outside
 * collaborator, org), since when, and whether the user was active then.
 */
tsr_rc db_report_access_repo(struct db_conn *c, const char *repo, const char *at, char **json) TSR_WUR;
/* Which repositories user could reach at `at`, through which sources. */
tsr_rc db_report_access_user(struct db_conn *c, const char *user, const char *at, char **json) TSR_WUR;
/*
 * Gateway use in [from, to): requests, blocked requests, bytes sent to and
 * received from upstreams, LLM tokens, grouped by `by` (user|repo|upstream)
 * and, for user and repo, per upstream; user (may be NULL) narrows to one user.
 */
tsr_rc db_report_usage(struct db_conn *c, const char *from, const char *to, const char *by, const char *user,
		       char **json) TSR_WUR;
/*
 * The revocation receipts of user (every user.offboard event, with the seal
 * covering it) and every credential the user ever held: when it stopped
 * working, why, when it last worked, and any use after it stopped.
 */
tsr_rc db_report_offboarding(struct db_conn *c, const char *user, char **json) TSR_WUR;
/* Upstreams known to the database with their attributes and exact first/last use. */
tsr_rc db_report_upstreams(struct db_conn *c, char **json) TSR_WUR;
/*
 * Live evidence for the compliance checklist (counts over the last `days`
 * days). classified is the policy as "class:attr|attr,…" (e.g.
 * "phi:baa|on_prem").
 */
tsr_rc db_report_compliance_evidence(struct db_conn *c, int days, const char *classified, char **json) TSR_WUR;

#endif
