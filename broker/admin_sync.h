/*
 * admin_sync.h — the admin API of synchronisation, generic over the kind:
 *
 *   POST /admin/v1/sync/{kind}       {"full":bool,"force":bool} → 202; asks the
 *                                    job "sync.{kind}" to run (jobs_request)
 *   GET  /admin/v1/sync/status       per kind: the latest run and the latest successful one
 *   GET  /admin/v1/sync/runs         recent runs (?kind=K&limit=N), or the run of one
 *                                    request (?kind=K&request=ID; 404 until it starts)
 *   GET  /admin/v1/sync/runs/{id}    one run
 *
 * All need role admin or security (the route table says so). Handlers never
 * run a sync: they hand a request to the job thread and return at once.
 *
 * A sync job (LDAP here, GitHub in its own module) registers as
 * "sync.<kind>" in job_defs[] and receives the request as its argument in
 * the text form below; sync_request_parse() reads it. A scheduled run gets
 * "" (incremental, not forced, started_by "schedule", no request id).
 * The job records request_id in its sync_runs row's detail ("request_id"),
 * which is how `tessera sync run` finds the run it asked for.
 */
#ifndef TSR_ADMIN_SYNC_H
#define TSR_ADMIN_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include "../lib/status.h"

struct route_table;
extern const struct route_table admin_sync_routes;

struct sync_request {
	bool full;             /* read everything, not only what changed */
	bool force;            /* go past the safety valve */
	char request_id[37];   /* UUID, "" for scheduled runs */
	char by[160];          /* sync_runs.started_by: "schedule" or "cli:<user>" */
};

/*
 * The "sync.ldap" job for job_defs[] (broker/jobs.h): scheduled every [ldap]
 * sync_interval, never when [ldap] uri is unset; runs sync_ldap_run().
 */
struct broker;
struct config;
int64_t ldap_sync_interval(const struct config *cfg);
tsr_rc ldap_sync_job(struct broker *b, const char *arg);

/* Text form: "full=1;force=0;request=UUID;by=cli:alice" (by last, may hold anything but NUL). */
tsr_rc sync_request_format(const struct sync_request *req, char *out, size_t n) TSR_WUR;
/* Parse the text form; "" gives a scheduled run. TSR_INVALID for anything else. */
tsr_rc sync_request_parse(const char *arg, struct sync_request *out) TSR_WUR;

#endif
