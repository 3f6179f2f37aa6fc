/*
 * sync_ldap.h — mirroring the directory into Postgres (DESIGN.md: identity
 * model, offboarding).
 *
 * A run reads the directory first (users, the disabled set, groups with
 * member, uniqueMember, memberUid and optionally users' memberOf), then
 * makes every change in ONE Postgres transaction: it commits completely or
 * not at all. Full runs read every entry; incremental runs read full
 * entries only where modifyTimestamp >= the high-water mark of the last
 * run, plus the list of entry ids present (deletions, returns), so a
 * disable, delete, rename (modrdn) or membership change is seen by the next
 * incremental run. A run falls back to full when there is no mark yet or
 * the [ldap] mapping changed.
 *
 * Users are matched by their stable id (id_attr), never by DN. Users that
 * become disabled or disappear are deactivated only through db_offboard()
 * inside the run's transaction; a run that would deactivate more than
 * [ldap] max_deactivate_ratio of the active directory users stops, changes
 * nothing and says why, unless forced. Every change is an audit event; a
 * run that finds nothing new writes nothing but its sync_runs row.
 *
 * The job "sync.ldap" that drives it lives in broker/admin_sync.c (sync/
 * never includes broker/).
 * Threads: sync_ldap_run() blocks (network, Postgres) for as long as the
 * run takes: call it from a job thread, never from an HTTP worker.
 */
#ifndef TSR_SYNC_SYNC_LDAP_H
#define TSR_SYNC_SYNC_LDAP_H

#include <stdbool.h>
#include <stdint.h>
#include "../db/db.h"
#include "../db/sync_run.h"
#include "../lib/config.h"

struct sync_ldap_opts {
	bool full;               /* read everything even when an incremental run would do */
	bool force;              /* go past the safety valve */
	const char *started_by;  /* "schedule", "cli:<user>" */
	const char *request_id;  /* recorded in the run's detail; NULL or "" for none */
};

struct sync_ldap_result {
	int64_t run_id;          /* 0 when not even the run row could be written */
	char status[16];         /* ok | failed */
	char error[512];         /* "" when ok */
	struct sync_counts counts;
};

/*
 * One run, recorded in sync_runs. TSR_OK when it committed; otherwise the
 * reason (TSR_UNAVAILABLE directory or database down, TSR_UNAUTHENTICATED
 * bad service credentials, TSR_INVALID configuration, TSR_CONFLICT the
 * safety valve tripped) with nothing changed and res->error saying why.
 */
tsr_rc sync_ldap_run(struct db_pool *pool, const struct config *cfg, const struct sync_ldap_opts *o,
		     struct sync_ldap_result *res) TSR_WUR;

#endif
