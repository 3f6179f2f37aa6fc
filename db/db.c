/*
 * db.c — connection pool and statement execution. See db.h.
 *
 * The pool is a fixed array of slots guarded by one mutex and a condition
 * variable. Connections are opened on first use and re-opened when found
 * broken at release or acquire, so a Postgres restart heals without a
 * tesserad restart. Prepared-statement flags are per connection and reset
 * whenever the connection is re-opened.
 */
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "../lib/log.h"

struct slot {
	struct db_conn conn;
	bool busy;
};

struct db_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *conninfo;
	int connect_timeout_s;
	int size;
	int in_use;
	struct slot *slots;
};

/* Server notices (WARNING, NOTICE) go to the structured log, not raw stderr. */
static void on_notice(void *arg, const char *msg)
{
	char m[512];
	snprintf(m, sizeof(m), "%s", msg);
	m[strcspn(m, "\n")] = '\0';
	log_info("db_notice", "detail=\"%s\"", m);
}

tsr_rc db_connect(const char *conninfo, int connect_timeout_s, PGconn **out)
{
	char tmo[16];
	snprintf(tmo, sizeof(tmo), "%d", connect_timeout_s > 0 ? connect_timeout_s : 5);
	/*
	 * A dead peer must not hold a thread for the kernel's 15-minute
	 * retransmission timeout: unacknowledged data fails the connection
	 * after 10 s (tcp_user_timeout), an idle pooled one is probed after
	 * 30 s (keepalives). They come before dbname, so the URL may override
	 * them; connect_timeout comes after it: [database] connect_timeout wins.
	 */
	const char *kw[] = { "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
			     "dbname", "connect_timeout", "application_name", NULL };
	const char *val[] = { "1", "30", "10", "3", "10000", conninfo, tmo, "tesserad", NULL };
	/* expand_dbname=1: conninfo may be a URI or key=value string */
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (!c)
		return TSR_INTERNAL;
	if (PQstatus(c) != CONNECTION_OK) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		log_warn("db_connect_failed", "error=\"%s\"", msg);
		PQfinish(c);
		return TSR_UNAVAILABLE;
	}
	PQsetNoticeProcessor(c, on_notice, NULL);
	*out = c;
	return TSR_OK;
}

static void conn_drop(struct db_conn *c);

tsr_rc db_pool_new(const char *conninfo, int size, int connect_timeout_s, struct db_pool **out)
{
	struct db_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return TSR_INTERNAL;
	p->conninfo = strdup(conninfo);
	p->slots = calloc((size_t)size, sizeof(*p->slots));
	if (!p->conninfo || !p->slots) {
		free(p->conninfo);
		free(p->slots);
		free(p);
		return TSR_INTERNAL;
	}
	p->size = size;
	p->connect_timeout_s = connect_timeout_s;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	*out = p;
	return TSR_OK;
}

void db_pool_free(struct db_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->size; i++)
		conn_drop(&p->slots[i].conn);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	/* the conninfo may hold a password */
	memset(p->conninfo, 0, strlen(p->conninfo));
	free(p->conninfo);
	free(p->slots);
	free(p);
}

static void conn_drop(struct db_conn *c)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	free(c->prepared);
	c->prepared = NULL;
	c->prepared_cap = c->prepared_n = 0;
}

static unsigned ptr_hash(const void *p, unsigned cap)
{
	uintptr_t v = (uintptr_t)p;
	v ^= v >> 17;
	v *= 0x9e3779b97f4a7c15u;
	return (unsigned)(v >> 32) & (cap - 1);
}

static bool is_prepared(const struct db_conn *c, const struct db_stmt *s)
{
	if (!c->prepared_cap)
		return false;
	for (unsigned i = ptr_hash(s, c->prepared_cap);; i = (i + 1) & (c->prepared_cap - 1)) {
		if (c->prepared[i] == s)
			return true;
		if (!c->prepared[i])
			return false;
	}
}

static tsr_rc mark_prepared(struct db_conn *c, const struct db_stmt *s)
{
	if ((c->prepared_n + 1) * 2 > c->prepared_cap) {
		unsigned cap = c->prepared_cap ? c->prepared_cap * 2 : 64;
		const struct db_stmt **t = calloc(cap, sizeof(*t));
		if (!t)
			return TSR_INTERNAL;
		for (unsigned i = 0; i < c->prepared_cap; i++) {
			if (!c->prepared[i])
				continue;
			unsigned j = ptr_hash(c->prepared[i], cap);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = c->prepared[i];
		}
		free(c->prepared);
		c->prepared = t;
		c->prepared_cap = cap;
	}
	unsigned j = ptr_hash(s, c->prepared_cap);
	while (c->prepared[j])
		j = (j + 1) & (c->prepared_cap - 1);
	c->prepared[j] = s;
	c->prepared_n++;
	return TSR_OK;
}

tsr_rc db_acquire(struct db_pool *p, int timeout_ms, struct db_conn **out)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	struct slot *s = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* prefer a slot with an open connection */
		for (int i = 0; i < p->size && !s; i++)
			if (!p->slots[i].busy && p->slots[i].conn.pg)
				s = &p->slots[i];
		for (int i = 0; i < p->size && !s; i++)
			if (!p->slots[i].busy)
				s = &p->slots[i];
		if (s)
			break;
		if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->mu);
			log_warn("db_pool_exhausted", "size=%d", p->size);
			return TSR_UNAVAILABLE;
		}
	}
	s->busy = true;
	p->in_use++;
	pthread_mutex_unlock(&p->mu);

	/* connect outside the lock: it may take connect_timeout */
	if (s->conn.pg && PQstatus(s->conn.pg) != CONNECTION_OK)
		conn_drop(&s->conn);
	if (!s->conn.pg) {
		tsr_rc rc = db_connect(p->conninfo, p->connect_timeout_s, &s->conn.pg);
		if (rc != TSR_OK) {
			db_release(p, &s->conn);
			return rc;
		}
	}
	*out = &s->conn;
	return TSR_OK;
}

void db_release(struct db_pool *p, struct db_conn *c)
{
	if (!c)
		return;
	if (c->pg && (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)) {
		/* broken, or a caller left a transaction open: never hand that on */
		conn_drop(c);
	}
	struct slot *s = (struct slot *)(void *)c; /* conn is the first member of slot */
	pthread_mutex_lock(&p->mu);
	s->busy = false;
	p->in_use--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

int db_pool_in_use(struct db_pool *p)
{
	pthread_mutex_lock(&p->mu);
	int n = p->in_use;
	pthread_mutex_unlock(&p->mu);
	return n;
}

int db_pool_size(struct db_pool *p)
{
	return p->size;
}

tsr_rc db_result_rc(const PGresult *r, PGconn *c)
{
	if (PQstatus(c) != CONNECTION_OK)
		return TSR_UNAVAILABLE;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (!state)
		return TSR_UNAVAILABLE;
	if (strcmp(state, "23505") == 0)
		return TSR_CONFLICT;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0)
		return TSR_UNAVAILABLE;
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
		return TSR_INVALID;
	return TSR_INTERNAL;
}

static void log_pg_error(const char *what, const PGresult *r, PGconn *c)
{
	char msg[512];
	const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	snprintf(msg, sizeof(msg), "%s", m ? m : PQerrorMessage(c));
	msg[strcspn(msg, "\n")] = '\0';
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	log_error("db_error", "stmt=%s sqlstate=%s error=\"%s\"", what, state ? state : "-", msg);
}

tsr_rc db_prepare(struct db_conn *c, const struct db_stmt *d)
{
	if (is_prepared(c, d))
		return TSR_OK;
	PGresult *r = PQprepare(c->pg, d->name, d->sql, d->nparams, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		tsr_rc rc = db_result_rc(r, c->pg);
		log_pg_error(d->name, r, c->pg);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	return mark_prepared(c, d);
}

PGresult *db_exec(struct db_conn *c, const struct db_stmt *d, int n, const char *const *params, tsr_rc *rc)
{
	if (n != d->nparams) {
		*rc = TSR_INTERNAL; /* broken invariant in the caller */
		log_error("db_error", "stmt=%s error=\"wrong parameter count %d\"", d->name, n);
		return NULL;
	}
	if ((*rc = db_prepare(c, d)) != TSR_OK)
		return NULL;
	PGresult *r = PQexecPrepared(c->pg, d->name, n, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		*rc = db_result_rc(r, c->pg);
		if (*rc != TSR_CONFLICT)
			log_pg_error(d->name, r, c->pg);
		PQclear(r);
		return NULL;
	}
	*rc = TSR_OK;
	return r;
}

tsr_rc db_exec_ok(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params)
{
	tsr_rc rc;
	PGresult *r = db_exec(c, s, n, params, &rc);
	if (!r)
		return rc;
	PQclear(r);
	return TSR_OK;
}

void *db_exec_rows(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params, size_t elem_size,
		   PGresult **res, int *rows, tsr_rc *rc)
{
	*rows = 0;
	*res = db_exec(c, s, n, params, rc);
	if (!*res)
		return NULL;
	int m = PQntuples(*res);
	void *a = calloc(m ? (size_t)m : 1, elem_size);
	if (!a) {
		PQclear(*res);
		*res = NULL;
		*rc = TSR_INTERNAL;
		return NULL;
	}
	*rows = m;
	return a;
}

tsr_rc db_simple(struct db_conn *c, const char *constant_sql)
{
	PGresult *r = PQexec(c->pg, constant_sql); /* checksrc: ok — callers pass literals only */
	tsr_rc rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK
			    ? TSR_OK
			    : db_result_rc(r, c->pg);
	if (rc != TSR_OK)
		log_pg_error(constant_sql, r, c->pg);
	PQclear(r);
	return rc;
}

tsr_rc db_ping(struct db_pool *p)
{
	struct db_conn *c;
	tsr_rc rc = db_acquire(p, 2000, &c);
	if (rc != TSR_OK)
		return rc;
	rc = db_simple(c, "SELECT 1");
	db_release(p, c);
	return rc;
}

char *db_text_array(const char *const *v, size_t n)
{
	size_t len = 3;
	for (size_t i = 0; i < n; i++)
		len += v[i] ? 2 * strlen(v[i]) + 3 : 5;
	char *out = malloc(len);
	if (!out)
		return NULL;
	size_t o = 0;
	out[o++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[o++] = ',';
		if (!v[i]) {
			memcpy(out + o, "NULL", 4);
			o += 4;
			continue;
		}
		out[o++] = '"';
		for (const char *p = v[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				out[o++] = '\\';
			out[o++] = *p;
		}
		out[o++] = '"';
	}
	out[o++] = '}';
	out[o] = '\0';
	return out;
}

tsr_rc db_tx_begin(struct db_conn *c, bool *own)
{
	*own = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
	return *own ? db_simple(c, "BEGIN") : TSR_OK;
}

tsr_rc db_tx_end(struct db_conn *c, bool own, tsr_rc rc)
{
	if (!own)
		return rc;
	if (rc == TSR_OK)
		return db_simple(c, "COMMIT");
	if (PQstatus(c->pg) == CONNECTION_OK) {
		tsr_rc ignored = db_simple(c, "ROLLBACK");
		(void)ignored;
	}
	return rc;
}
