/*
 * auditlog_line.h — one audit event as a line of the spool / journal file.
 *
 * The writer's hot path (every request's record is journaled): the line is
 * written straight into a buffer, no jansson tree and no allocation per
 * field. The format is the one the readers in auditlog.c parse with jansson
 * (event_from_json): a compact JSON object with every field of struct
 * audit_event, in struct order; ints in decimal, a NULL string (or one that
 * is not valid UTF-8) as null. detail_canonical is deliberately not written:
 * a replayed event is canonicalised again.
 */
#ifndef TSR_AUDITLOG_LINE_H
#define TSR_AUDITLOG_LINE_H

#include "../db/audit.h"
#include "../lib/buf.h"

/* Append e to out as one JSON line, "\n" included. */
tsr_rc auditlog_line(struct buf *out, const struct audit_event *e) TSR_WUR;

#endif
