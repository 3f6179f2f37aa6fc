/*
 * auditlog.h — group commit for audit events on the request path, with a
 * local spool so no served request is without its record.
 *
 * Requests hand an event to auditlog_append() and wait, or to
 * auditlog_submit() and get a callback; one writer thread takes everything
 * queued (up to a batch), appends it to the hash chain in one transaction on
 * its own connection (db_audit_append: one pipelined round trip and one
 * commit for the batch) and reports the outcome to every waiter. So N
 * concurrent requests cost one serialised chain append, not N.
 * TSR_OK means durable: committed in Postgres, or — when Postgres is
 * unreachable — written and fdatasync'ed to the spool ([audit] spool_dir,
 * default STATE/spool). Spooled events are replayed in order as soon as
 * Postgres answers again (before any newer event), de-duplicated by
 * (event_id, at) so a batch that did commit but whose acknowledgement was
 * lost is not stored twice. When neither can be written the outcome is
 * TSR_UNAVAILABLE and auditlog_ready() says why (the gateway refuses, fail
 * closed, and /readyz reports it).
 * While idle the writer checks its connection every second, so a dead
 * Postgres is noticed (and the spool probed) before the next request.
 * The queue is bounded; when it is full the caller gets TSR_UNAVAILABLE at
 * once (shed load) rather than queueing without limit.
 * Events are deep-copied on entry: callers may pass pointers into their
 * request state. Lock order: al->mu is a leaf; callbacks run on the writer
 * thread without it held.
 */
#ifndef TSR_AUDITLOG_H
#define TSR_AUDITLOG_H

#include <stdbool.h>
#include <stddef.h>
#include "broker.h"
#include "../db/audit.h"

struct auditlog;

tsr_rc auditlog_start(struct broker *b, struct auditlog **out) TSR_WUR;
/* Flush what is queued, stop the writer. auditlog_stop(NULL) is a no-op. */
void auditlog_stop(struct auditlog *al);
/* Append ev durably; blocks until its batch committed (or was spooled) or failed. */
tsr_rc auditlog_append(struct auditlog *al, const struct audit_event *ev) TSR_WUR;

/* Called once per submitted event, on the writer thread, with the outcome. Must not block. */
typedef void (*auditlog_done_fn)(void *arg, tsr_rc rc);
/*
 * Queue ev without waiting; done(arg, rc) follows once it is durable or has
 * failed. When this returns non-OK (queue full, shutting down, no memory)
 * done is not called.
 */
tsr_rc auditlog_submit(struct auditlog *al, const struct audit_event *ev, auditlog_done_fn done, void *arg) TSR_WUR;

/* Can an event be made durable right now (Postgres or the spool)? If not, why gets the reason. */
bool auditlog_ready(struct auditlog *al, char *why, size_t whylen);

/* Events waiting right now (for /metrics). */
int auditlog_depth(struct auditlog *al);
/* Bytes in the spool waiting for replay (for /metrics). */
long long auditlog_spool_bytes(struct auditlog *al);

#endif
