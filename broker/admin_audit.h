/*
 * admin_audit.h — the audit log for the security team (roles security or
 * admin):
 *   GET /admin/v1/audit/export?from&to&format=jsonl|csv&user&repo
 *       the records of the range in chain order, streamed, with their seals
 *       and a signed trailing verification record (lib/audit_export.h)
 *   GET /admin/v1/audit/verify?from&to
 *       chain and seal verification of the range: the first bad record
 *   GET /admin/v1/audit/search?user&repo&upstream&action&decision&from&to&limit&before
 *       the newest matching records
 * Exports and verifications run on their own threads (never an HTTP
 * worker), at most two at a time per replica (more: 429), each holding one
 * pooled connection and one bounded buffer (1 MiB) whatever the range:
 * the producer waits while the client reads (backpressure). Each is audited
 * ("audit.export", "audit.verify").
 */
#ifndef TSR_BROKER_ADMIN_AUDIT_H
#define TSR_BROKER_ADMIN_AUDIT_H

#include "http.h"

extern const struct route_table admin_audit_routes;

/* Cut running exports and verifications and wait for their threads (after http_stop, before the pool goes). */
void admin_audit_stop(void);

#endif
