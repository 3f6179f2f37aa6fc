/*
 * stmt.h — internal to db/: the statement table's element type.
 */
#ifndef TSR_DB_STMT_H
#define TSR_DB_STMT_H

#include "db.h"

struct db_stmt_def {
	const char *name;
	int nparams;
	const char *sql;
};

extern const struct db_stmt_def db_stmts[STMT_COUNT];

#endif
