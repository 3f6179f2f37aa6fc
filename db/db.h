/*
 * db.h — the PostgreSQL layer: a fixed connection pool and named prepared
 * statements.
 *
 * Every SQL statement tesserad runs on a request path is a named
 * struct db_stmt declared in the db/ module that owns it, executed with
 * bound text parameters, so nothing is ever interpolated into SQL.
 * Statements are prepared lazily on each pooled connection the first time
 * they are used there.
 *
 * Threads: db_acquire/db_release may be called from any thread; a
 * struct db_conn belongs to exactly one thread between the two calls.
 * Lock order: pool->mu is a leaf lock (nothing else is taken while held).
 * db/ never includes broker headers.
 */
#ifndef TSR_DB_H
#define TSR_DB_H

#include <stdbool.h>
#include <libpq-fe.h>
#include "../lib/status.h"

/*
 * A named prepared statement. Each db/ module declares its own as static
 * const objects next to the C function that uses them; the pointer is the
 * identity, the name must be unique across tessera (prefix it with the
 * module: "cred_lookup", "ldap_user_upsert", ...).
 */
struct db_stmt {
	const char *name;
	int nparams;
	const char *sql;
};

struct db_conn {
	PGconn *pg;
	const struct db_stmt **prepared; /* open-addressing set of statements prepared here */
	unsigned prepared_cap;
	unsigned prepared_n;
};

struct db_pool;

/*
 * Open a pool of size connections to conninfo. Connections are opened lazily
 * so a pool can be created while Postgres is still down.
 * Caller frees with db_pool_free().
 */
tsr_rc db_pool_new(const char *conninfo, int size, int connect_timeout_s, struct db_pool **out) TSR_WUR;
void db_pool_free(struct db_pool *p);

/*
 * Borrow a healthy connection, waiting up to timeout_ms for one to be free.
 * TSR_UNAVAILABLE when none can be had (Postgres down or pool exhausted).
 * Return it with db_release(); never keep it across requests.
 */
tsr_rc db_acquire(struct db_pool *p, int timeout_ms, struct db_conn **out) TSR_WUR;
/* Return c to the pool. A connection left in a transaction or broken is reset. */
void db_release(struct db_pool *p, struct db_conn *c);
/* Connections in use right now (for /metrics). */
int db_pool_in_use(struct db_pool *p);
int db_pool_size(struct db_pool *p);

/*
 * Run a statement with n text parameters (NULL = SQL NULL), preparing it on
 * this connection the first time. Returns the result (caller frees with
 * PQclear()) or NULL after logging the error; *rc says why (TSR_UNAVAILABLE
 * for connection loss, TSR_CONFLICT for a unique violation, TSR_INVALID for
 * other data errors, TSR_INTERNAL otherwise).
 */
PGresult *db_exec(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params, tsr_rc *rc) TSR_WUR;
/* db_exec() for a statement whose rows (if any) do not matter: TSR_OK or why it failed. */
tsr_rc db_exec_ok(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params) TSR_WUR;
/*
 * db_exec() for a list: returns a zeroed array of one elem_size element per
 * row (at least one element, so never NULL on success) for the caller to
 * decode the rows into, with the result in *res (caller PQclear()s it and
 * frees the array) and the row count in *rows. On failure: NULL, *res NULL,
 * *rows 0, *rc says why.
 */
void *db_exec_rows(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params, size_t elem_size,
		   PGresult **res, int *rows, tsr_rc *rc) TSR_WUR;

/*
 * Join the caller's transaction or open one: *own says which, and
 * db_tx_end() commits (rc OK) or rolls back only what db_tx_begin() opened,
 * returning the final rc. Lets a db/ function run alone or inside a larger
 * transaction (an LDAP sync run, a SCIM write) with the same code.
 */
tsr_rc db_tx_begin(struct db_conn *c, bool *own) TSR_WUR;
tsr_rc db_tx_end(struct db_conn *c, bool own, tsr_rc rc) TSR_WUR;

/* Prepare s on c now if it is not yet (for pipelined sends of PQsendQueryPrepared). */
tsr_rc db_prepare(struct db_conn *c, const struct db_stmt *s) TSR_WUR;

/* Run a constant statement without parameters (BEGIN, COMMIT, ROLLBACK). */
tsr_rc db_simple(struct db_conn *c, const char *constant_sql) TSR_WUR;

/* Open one standalone connection (for migrations and LISTEN). Caller PQfinish()es. */
tsr_rc db_connect(const char *conninfo, int connect_timeout_s, PGconn **out) TSR_WUR;

/*
 * A PostgreSQL text[] literal ({"a","b\"c"}) of v[0..n), for binding a list
 * as one parameter ($1::text[]). NULL entries become NULL elements.
 * Caller frees with free(); NULL on allocation failure.
 */
char *db_text_array(const char *const *v, size_t n);

/* Map a failed result's SQLSTATE to an rc. */
tsr_rc db_result_rc(const PGresult *r, PGconn *c);

/* Ask Postgres whether it is reachable with a trivial query on a pooled connection. */
tsr_rc db_ping(struct db_pool *p) TSR_WUR;

#endif
