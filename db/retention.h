/*
 * retention.h — dropping audit records older than [audit] retention.
 *
 * Whole monthly partitions go, through audit_drop_partitions_before() (the
 * one sanctioned way, migrations/0001_initial.sql), in one transaction with
 * the audit event that records the drop ("audit.retention": the cutoff, the
 * partitions, how many records, and the seq and hash of the last dropped
 * record). That last pair is the anchor verification starts from once the
 * records before it are gone (db/audit_read.c), so the remaining chain
 * still verifies from its first record. A drop that would leave a hole in
 * the chain (a record kept with a lower seq than one dropped) is refused
 * and the refusal audited.
 */
#ifndef TSR_DB_RETENTION_H
#define TSR_DB_RETENTION_H

#include <stdint.h>
#include "db.h"

struct retention_result {
	int partitions;        /* dropped now */
	int64_t records;       /* records in them */
	int64_t last_dropped_seq;
	char cutoff[40];
};

/*
 * Drop the partitions that end at or before now() - retention_secs (UTC
 * months). actor names who asked ("system" for the scheduled job). c must
 * be idle. TSR_CONFLICT when the drop was refused (see above).
 */
tsr_rc db_audit_retention(struct db_conn *c, int64_t retention_secs, const char *actor,
			  struct retention_result *out) TSR_WUR;

#endif
