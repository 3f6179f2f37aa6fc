/*
 * migrate.h — the migration runner.
 *
 * Migrations are files NNNN_description.sql in one directory, applied in
 * order, each in its own transaction, under a session advisory lock so that
 * replicas starting together apply each file exactly once. Each applied file
 * is recorded in schema_migrations with its SHA-256; a file changed after it
 * was applied, or an applied version missing from the directory, makes the
 * runner refuse (TSR_CONFLICT) with a message naming the file.
 */
#ifndef TSR_DB_MIGRATE_H
#define TSR_DB_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "../lib/status.h"

enum migrate_mode {
	MIGRATE_APPLY, /* apply pending files */
	MIGRATE_CHECK, /* verify only: TSR_CONFLICT if anything is pending or changed */
};

/*
 * Run against an open connection (not inside a transaction). err receives a
 * one-line reason on failure. *applied (may be NULL) counts files applied now.
 */
tsr_rc migrate_run(PGconn *c, const char *dir, enum migrate_mode mode, int *applied, char *err,
		   size_t errlen) TSR_WUR;

#endif
