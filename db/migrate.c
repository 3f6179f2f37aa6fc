/*
 * migrate.c — see migrate.h.
 *
 * The advisory lock key is fixed (a constant derived from the word
 * "tessera-migrate") and taken at session level, so the lock spans all
 * files and the bookkeeping table's creation. Migration files are trusted
 * input from the installation, which is why they are run with PQexec
 * (multi-statement text) — the only non-constant PQexec in tessera.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "../lib/buf.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

#define MIGRATE_LOCK_KEY "7310392165731039"
#define MAX_MIGRATION_BYTES (16u << 20)

struct mfile {
	int version;
	char *name;      /* file name */
	char *sql;
	char sum[2 * SHA256_LEN + 1];
};

static int cmp_mfile(const void *a, const void *b)
{
	const struct mfile *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

static void mfiles_free(struct mfile *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].sql);
	}
	free(v);
}

static bool name_ok(const char *s, int *version)
{
	/* NNNN_description.sql */
	for (int i = 0; i < 4; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	size_t n = strlen(s);
	if (s[4] != '_' || n < 10 || strcmp(s + n - 4, ".sql") != 0)
		return false;
	*version = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	return true;
}

static tsr_rc read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return TSR_NOT_FOUND;
	char chunk[8192];
	size_t n;
	tsr_rc rc = TSR_OK;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if ((rc = buf_append(b, chunk, n)) != TSR_OK)
			break;
	if (ferror(f))
		rc = TSR_INTERNAL;
	fclose(f);
	return rc;
}

static tsr_rc load_dir(const char *dir, struct mfile **out, size_t *nout, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(errno));
		return TSR_NOT_FOUND;
	}
	struct mfile *v = NULL;
	size_t n = 0;
	tsr_rc rc = TSR_OK;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int version;
		if (!name_ok(e->d_name, &version))
			continue;
		struct mfile *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			rc = TSR_INTERNAL;
			break;
		}
		v = nv;
		memset(&v[n], 0, sizeof(v[n]));
		v[n].version = version;
		v[n].name = strdup(e->d_name);
		n++;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		struct buf b;
		buf_init(&b, MAX_MIGRATION_BYTES);
		if (!v[n - 1].name || (rc = read_file(path, &b)) != TSR_OK) {
			buf_free(&b);
			snprintf(err, errlen, "cannot read migration %s", path);
			if (rc == TSR_OK)
				rc = TSR_INTERNAL;
			break;
		}
		uint8_t h[SHA256_LEN];
		crypto_sha256(b.data ? b.data : "", b.len, h);
		crypto_hex(h, sizeof(h), v[n - 1].sum);
		v[n - 1].sql = buf_steal(&b);
		if (!v[n - 1].sql) {
			rc = TSR_INTERNAL;
			break;
		}
	}
	closedir(d);
	if (rc != TSR_OK) {
		mfiles_free(v, n);
		return rc;
	}
	qsort(v, n, sizeof(*v), cmp_mfile);
	for (size_t i = 1; i < n; i++) {
		if (v[i].version == v[i - 1].version) {
			snprintf(err, errlen, "two migrations share version %04d: %s and %s", v[i].version,
				 v[i - 1].name, v[i].name);
			mfiles_free(v, n);
			return TSR_CONFLICT;
		}
	}
	*out = v;
	*nout = n;
	return TSR_OK;
}

static tsr_rc exec_ok(PGconn *c, PGresult *r, const char *what, char *err, size_t errlen)
{
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return TSR_OK;
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	snprintf(err, errlen, "%s: %s", what, m ? m : PQerrorMessage(c));
	err[strcspn(err, "\n")] = '\0';
	return PQstatus(c) == CONNECTION_OK ? TSR_INTERNAL : TSR_UNAVAILABLE;
}

#define EXEC_CONST(sql, what)                                                  \
	do {                                                                   \
		PGresult *r_ = PQexec(c, sql); /* checksrc: ok — literal */    \
		rc = exec_ok(c, r_, what, err, errlen);                        \
		PQclear(r_);                                                   \
		if (rc != TSR_OK)                                              \
			goto out;                                              \
	} while (0)

tsr_rc migrate_run(PGconn *c, const char *dir, enum migrate_mode mode, int *applied, char *err,
		   size_t errlen)
{
	struct mfile *files = NULL;
	size_t nfiles = 0;
	PGresult *res = NULL;
	bool locked = false;
	int done = 0;
	tsr_rc rc = load_dir(dir, &files, &nfiles, err, errlen);
	if (rc != TSR_OK)
		return rc;

	if (mode == MIGRATE_APPLY) {
		EXEC_CONST("SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock");
		locked = true;
		EXEC_CONST("CREATE TABLE IF NOT EXISTS schema_migrations ("
			   " version integer PRIMARY KEY,"
			   " name text NOT NULL,"
			   " checksum text NOT NULL,"
			   " applied_at timestamptz NOT NULL DEFAULT now())",
			   "creating schema_migrations");
	} else {
		res = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL"); /* checksrc: ok */
		if ((rc = exec_ok(c, res, "reading schema_migrations", err, errlen)) != TSR_OK)
			goto out;
		bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		res = NULL;
		if (!exists) {
			snprintf(err, errlen, "database has no schema_migrations table: run 'tesserad migrate'");
			rc = TSR_CONFLICT;
			goto out;
		}
	}

	res = PQexec(c, "SELECT version, name, checksum FROM schema_migrations ORDER BY version"); /* checksrc: ok */
	if ((rc = exec_ok(c, res, "reading schema_migrations", err, errlen)) != TSR_OK)
		goto out;

	/* every applied row must match a file byte for byte */
	int nrows = PQntuples(res);
	for (int i = 0; i < nrows; i++) {
		int version = (int)strtol(PQgetvalue(res, i, 0), NULL, 10);
		const char *name = PQgetvalue(res, i, 1);
		const char *sum = PQgetvalue(res, i, 2);
		struct mfile *f = NULL;
		for (size_t j = 0; j < nfiles; j++)
			if (files[j].version == version)
				f = &files[j];
		if (!f) {
			snprintf(err, errlen,
				 "migration %s (version %04d) is applied in the database but missing from %s: "
				 "this tesserad is older than the database",
				 name, version, dir);
			rc = TSR_CONFLICT;
			goto out;
		}
		if (strcmp(f->sum, sum) != 0) {
			snprintf(err, errlen,
				 "migration %s was changed after it was applied (recorded sha256 %.12s…, file %.12s…); "
				 "refusing to start: restore the file and add a new migration instead",
				 f->name, sum, f->sum);
			rc = TSR_CONFLICT;
			goto out;
		}
		f->version = -f->version - 1; /* mark applied */
	}
	PQclear(res);
	res = NULL;

	for (size_t j = 0; j < nfiles; j++) {
		if (files[j].version < 0)
			continue;
		if (mode == MIGRATE_CHECK) {
			snprintf(err, errlen, "migration %s is not applied: run 'tesserad migrate'", files[j].name);
			rc = TSR_CONFLICT;
			goto out;
		}
		EXEC_CONST("BEGIN", "starting a migration transaction");
		PGresult *r = PQexec(c, files[j].sql); /* checksrc: ok — trusted migration file */
		char what[300];
		snprintf(what, sizeof(what), "migration %s failed", files[j].name);
		rc = exec_ok(c, r, what, err, errlen);
		PQclear(r);
		if (rc == TSR_OK) {
			char v[16];
			snprintf(v, sizeof(v), "%d", files[j].version);
			const char *p[] = { v, files[j].name, files[j].sum };
			r = PQexecParams(c,
					 "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
					 3, NULL, p, NULL, NULL, 0);
			rc = exec_ok(c, r, "recording migration", err, errlen);
			PQclear(r);
		}
		if (rc != TSR_OK) {
			PGresult *rb = PQexec(c, "ROLLBACK"); /* checksrc: ok */
			PQclear(rb);
			goto out;
		}
		EXEC_CONST("COMMIT", "committing a migration");
		log_info("migration_applied", "file=%s", files[j].name);
		done++;
	}
	rc = TSR_OK;
out:
	PQclear(res);
	if (locked && PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"); /* checksrc: ok */
		PQclear(r);
	}
	if (applied)
		*applied = done;
	mfiles_free(files, nfiles);
	return rc;
}
