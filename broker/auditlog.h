/*
 * auditlog.h — group commit for audit events on the request path.
 *
 * Requests hand an event to auditlog_append() and wait; one writer thread
 * takes everything queued (up to a batch), appends it to the hash chain in
 * one transaction on its own connection (db_audit_append: one pipelined
 * round trip and one commit for the batch) and wakes the waiters with the
 * outcome. So N concurrent requests cost one serialised chain append, not N.
 * A request is answered only after its event is durable: TSR_OK means
 * committed. The queue is bounded; when it is full the caller gets
 * TSR_UNAVAILABLE at once (shed load) rather than queueing without limit.
 * Events are deep-copied on entry: callers may pass pointers into their
 * request state. Lock order: al->mu is a leaf.
 */
#ifndef TSR_AUDITLOG_H
#define TSR_AUDITLOG_H

#include "broker.h"
#include "../db/audit.h"

struct auditlog;

tsr_rc auditlog_start(struct broker *b, struct auditlog **out) TSR_WUR;
/* Flush what is queued, stop the writer. auditlog_stop(NULL) is a no-op. */
void auditlog_stop(struct auditlog *al);
/* Append ev durably; blocks until its batch committed or failed. */
tsr_rc auditlog_append(struct auditlog *al, const struct audit_event *ev) TSR_WUR;
/* Events waiting right now (for /metrics). */
int auditlog_depth(struct auditlog *al);

#endif
