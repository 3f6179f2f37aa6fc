/*
 * auditlog.h — group commit for audit events on the request path, with a
 * local spool so no served request is without its record.
 *
 * Requests hand an event to auditlog_append() and wait, or to
 * auditlog_submit() and get a callback; one writer thread takes everything
 * queued (up to a batch), makes it durable at once (group commit) and
 * reports the outcome to every waiter. So N concurrent requests cost one
 * durable write, not N. What "durable" means is [audit] durability:
 *
 * postgres — TSR_OK means committed in Postgres: the batch is appended to
 *   the hash chain in one transaction on the writer's own connection
 *   (db_audit_append: two pipelined round trips and one commit per batch),
 *   or — only when Postgres is unreachable — written and fdatasync'ed to the
 *   spool ([audit] spool_dir, default STATE/spool, file audit.spool).
 *   Spooled events are replayed in order as soon as Postgres answers again
 *   (before any newer event), de-duplicated by (event_id, at) so a batch
 *   that did commit but whose acknowledgement was lost is not stored twice.
 *   When neither can be written the outcome is TSR_UNAVAILABLE.
 *
 * journal (the default) — TSR_OK means written and fdatasync'ed to the local
 *   write-ahead journal (the same file, STATE/spool/audit.spool): one
 *   write + fdatasync per batch, no Postgres round trip before the answer.
 *   A shipper thread appends the journaled records to the chain in Postgres
 *   in journal order, normally within milliseconds (the same
 *   db_audit_append; what may be stored already — a journal found at start,
 *   a batch whose commit failed — goes through the spool's de-duplicating
 *   replay), and empties the journal once all of it is shipped. While
 *   Postgres is down the journal grows; at [audit] journal_max_bytes of
 *   unshipped records, or when the journal cannot be written, the outcome
 *   is TSR_UNAVAILABLE. The record is therefore on this replica's disk
 *   before the answer and in Postgres shortly after: losing this replica's
 *   disk (not a crash or a kill: those are recovered from the journal at
 *   the next start) loses the records not yet shipped. Each replica has its
 *   own journal; the chain head row lock orders their appends.
 *
 * On TSR_UNAVAILABLE auditlog_ready() says why (the gateway refuses, fail
 * closed, and /readyz reports it). An event that could never be stored
 * (missing actor, invalid JSON field) is refused with TSR_INVALID.
 * While idle the writer checks every second that the record store is
 * usable (Postgres connection and spool probe, or the journal file), so a
 * failure is noticed before the next request.
 * The queue is bounded; when it is full the caller gets TSR_UNAVAILABLE at
 * once (shed load) rather than queueing without limit.
 * Events are deep-copied on entry: callers may pass pointers into their
 * request state. Locks: al->mu and the journal's lock are leaves, never held
 * together; callbacks run on the writer thread without either held.
 */
#ifndef TSR_AUDITLOG_H
#define TSR_AUDITLOG_H

#include <stdbool.h>
#include <stddef.h>
#include "broker.h"
#include "../db/audit.h"

struct auditlog;

tsr_rc auditlog_start(struct broker *b, struct auditlog **out) TSR_WUR;
/* Flush what is queued, stop the writer (and the shipper, after a last pass when Postgres is up). NULL: no-op. */
void auditlog_stop(struct auditlog *al);
/* Append ev durably; blocks until its batch is durable (see above) or failed. */
tsr_rc auditlog_append(struct auditlog *al, const struct audit_event *ev) TSR_WUR;

/* Called once per submitted event, on the writer thread, with the outcome. Must not block. */
typedef void (*auditlog_done_fn)(void *arg, tsr_rc rc);
/*
 * Queue ev without waiting; done(arg, rc) follows once it is durable or has
 * failed. When this returns non-OK (queue full, shutting down, no memory)
 * done is not called.
 */
tsr_rc auditlog_submit(struct auditlog *al, const struct audit_event *ev, auditlog_done_fn done, void *arg) TSR_WUR;

/* Can an event be made durable right now (Postgres or the spool; the journal, not full)? If not, why says why. */
bool auditlog_ready(struct auditlog *al, char *why, size_t whylen);

/* Events waiting right now (for /metrics). */
int auditlog_depth(struct auditlog *al);
/* Bytes in the spool waiting for replay, or in the journal waiting to be shipped (for /metrics). */
long long auditlog_spool_bytes(struct auditlog *al);

#endif
