/*
 * audit_spool.h — replaying spooled audit events into the chain without
 * duplicates.
 *
 * Events written to the local spool while Postgres was unreachable may
 * already be in the table (a batch whose COMMIT reached the server but whose
 * acknowledgement did not). Replay therefore takes the chain head lock,
 * drops the events whose (event_id, at) is already present, and appends the
 * rest in the same transaction (the protocol of migrations/0001_initial.sql,
 * audit_chain_head). The order of the remaining events is kept.
 */
#ifndef TSR_DB_AUDIT_SPOOL_H
#define TSR_DB_AUDIT_SPOOL_H

#include "audit.h"

/*
 * Append the events of ev[0..n) that are not yet stored, in one transaction
 * (c must be idle). *appended receives how many were new.
 */
tsr_rc db_audit_replay(struct db_conn *c, const struct audit_event *ev, int n, int *appended) TSR_WUR;

#endif
