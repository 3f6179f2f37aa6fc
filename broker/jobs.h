/*
 * jobs.h — background jobs (sync, rotation, sealing) that run on exactly one
 * replica at a time.
 *
 * Each job has its own thread, so a 20-second directory sync never delays
 * a rotation and never touches an HTTP worker. Before running, the thread
 * takes a session advisory lock derived from the job's name
 * (pg_try_advisory_lock) on its own connection; a replica that does not get
 * it skips the turn. Under the lock it re-reads when the job last started on
 * any replica (settings key "job.<name>.last_started") so a schedule fires
 * once per interval across the whole deployment, not once per replica.
 * jobs_request() asks for a run now (an admin's `tessera sync run`); the
 * request carries a copy of its argument, never a pointer into a request.
 */
#ifndef TSR_JOBS_H
#define TSR_JOBS_H

#include <stdbool.h>
#include <stdint.h>
#include "broker.h"

struct job_def {
	const char *name;                                  /* "sync.ldap" */
	int64_t (*interval)(const struct config *cfg);     /* seconds; <= 0: only on request */
	/* Run once. arg is the requester's argument ("" for scheduled runs). */
	tsr_rc (*run)(struct broker *b, const char *arg);
};

struct jobs;

tsr_rc jobs_start(struct broker *b, const struct job_def *defs, int n, struct jobs **out) TSR_WUR;
/* Stop every job thread (a running job finishes first). jobs_stop(NULL) is a no-op. */
void jobs_stop(struct jobs *j);
/*
 * Ask job name to run as soon as possible with arg (copied, at most 255
 * bytes). TSR_NOT_FOUND for an unknown job, TSR_CONFLICT when a request is
 * already pending (shed, with a clear error, rather than queue unboundedly).
 */
tsr_rc jobs_request(struct jobs *j, const char *name, const char *arg) TSR_WUR;

#endif
