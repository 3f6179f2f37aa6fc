/*
 * jobs.c — see jobs.h.
 *
 * Per job: one thread, one mutex + condition variable guarding `pending`
 * and `stop`. Lock order: a job's mutex is a leaf (the job runs without it).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs.h"
#include "../lib/crypto.h"
#include "../lib/log.h"

struct job {
	struct jobs *owner;
	const struct job_def *def;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool pending;
	char arg[256];
	bool stop;
	char lock_key[24];
};

struct jobs {
	struct broker *b;
	struct job *v;
	int n;
};

static const struct db_stmt S_TRYLOCK = { "jobs_trylock", 1, "SELECT pg_try_advisory_lock($1::bigint)" };
static const struct db_stmt S_UNLOCK = { "jobs_unlock", 1, "SELECT pg_advisory_unlock($1::bigint)" };
/* $1 key, $2 interval seconds: claim the turn if the last start is older than the interval */
static const struct db_stmt S_CLAIM = { "jobs_claim", 2,
	"INSERT INTO settings (key, value, updated_at) VALUES ($1, now()::text, now()) "
	"ON CONFLICT (key) DO UPDATE SET value = now()::text, updated_at = now() "
	" WHERE settings.updated_at <= now() - make_interval(secs => $2::double precision) "
	"RETURNING key" };

/* Run one turn under the advisory lock; requested runs skip the interval check. */
static void run_turn(struct job *j, bool requested, const char *arg)
{
	struct broker *b = j->owner->b;
	struct db_conn *c;
	if (db_acquire(b->pool, 5000, &c) != TSR_OK) {
		log_warn("job_skipped", "job=%s reason=\"database unavailable\"", j->def->name);
		return;
	}
	tsr_rc rc;
	const char *p[] = { j->lock_key };
	PGresult *r = db_exec(c, &S_TRYLOCK, 1, p, &rc);
	bool locked = r && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!locked) {
		db_release(b->pool, c);
		if (requested)
			log_info("job_busy", "job=%s reason=\"running on another replica\"", j->def->name);
		return;
	}
	char key[96], secs[24];
	snprintf(key, sizeof(key), "job.%s.last_started", j->def->name);
	int64_t iv = j->def->interval(b->cfg);
	snprintf(secs, sizeof(secs), "%lld", requested ? 0LL : (long long)(iv > 0 ? iv - 1 : 0));
	const char *pc[] = { key, secs };
	r = db_exec(c, &S_CLAIM, 2, pc, &rc);
	bool due = r && PQntuples(r) == 1;
	PQclear(r);
	if (due) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		/* a job that ticks every few seconds would fill the log: its routine turns are debug */
		enum log_level lv = requested || iv >= 60 ? LOG_INFO : LOG_DEBUG;
		log_event(lv, "job_started", "job=%s requested=%s", j->def->name, requested ? "true" : "false");
		rc = j->def->run(b, arg);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (rc == TSR_OK)
			log_event(lv, "job_finished", "job=%s ms=%ld", j->def->name, ms);
		else
			log_warn("job_failed", "job=%s ms=%ld error=%s", j->def->name, ms, status_name(rc));
	}
	r = db_exec(c, &S_UNLOCK, 1, p, &rc);
	PQclear(r);
	db_release(b->pool, c);
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	char name[16]; /* the kernel's limit, with the NUL */
	snprintf(name, sizeof(name), "%s", j->def->name);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&j->mu);
	while (!j->stop) {
		int64_t iv = j->def->interval(j->owner->b->cfg);
		if (!j->pending) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			/* wake at least every 5 s: another replica may have died holding the turn */
			until.tv_sec += iv > 0 && iv < 5 ? iv : 5;
			pthread_cond_timedwait(&j->cv, &j->mu, &until);
		}
		if (j->stop)
			break;
		bool requested = j->pending;
		char a[256];
		snprintf(a, sizeof(a), "%s", j->arg);
		j->pending = false;
		j->arg[0] = '\0';
		if (!requested && iv <= 0)
			continue;
		pthread_mutex_unlock(&j->mu);
		run_turn(j, requested, a);
		pthread_mutex_lock(&j->mu);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

tsr_rc jobs_start(struct broker *b, const struct job_def *defs, int n, struct jobs **out)
{
	struct jobs *js = calloc(1, sizeof(*js));
	if (!js)
		return TSR_INTERNAL;
	js->b = b;
	js->v = calloc((size_t)(n ? n : 1), sizeof(*js->v));
	if (!js->v) {
		free(js);
		return TSR_INTERNAL;
	}
	for (int i = 0; i < n; i++) {
		struct job *j = &js->v[i];
		j->owner = js;
		j->def = &defs[i];
		pthread_mutex_init(&j->mu, NULL);
		pthread_cond_init(&j->cv, NULL);
		/* a stable 63-bit lock key from the job's name */
		uint8_t h[SHA256_LEN];
		crypto_sha256(defs[i].name, strlen(defs[i].name), h);
		uint64_t k = 0;
		for (int q = 0; q < 8; q++)
			k = (k << 8) | h[q];
		snprintf(j->lock_key, sizeof(j->lock_key), "%lld", (long long)(k >> 1));
		if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
			js->n = i;
			jobs_stop(js);
			return TSR_INTERNAL;
		}
		js->n = i + 1;
	}
	*out = js;
	return TSR_OK;
}

void jobs_stop(struct jobs *js)
{
	if (!js)
		return;
	for (int i = 0; i < js->n; i++) {
		struct job *j = &js->v[i];
		pthread_mutex_lock(&j->mu);
		j->stop = true;
		pthread_cond_signal(&j->cv);
		pthread_mutex_unlock(&j->mu);
	}
	for (int i = 0; i < js->n; i++) {
		pthread_join(js->v[i].thread, NULL);
		pthread_mutex_destroy(&js->v[i].mu);
		pthread_cond_destroy(&js->v[i].cv);
	}
	free(js->v);
	free(js);
}

tsr_rc jobs_request(struct jobs *js, const char *name, const char *arg)
{
	if (!js)
		return TSR_UNAVAILABLE;
	for (int i = 0; i < js->n; i++) {
		struct job *j = &js->v[i];
		if (strcmp(j->def->name, name) != 0)
			continue;
		if (strlen(arg) >= sizeof(j->arg))
			return TSR_INVALID;
		pthread_mutex_lock(&j->mu);
		tsr_rc rc = TSR_OK;
		if (j->pending) {
			rc = TSR_CONFLICT;
		} else {
			j->pending = true;
			snprintf(j->arg, sizeof(j->arg), "%s", arg);
			pthread_cond_signal(&j->cv);
		}
		pthread_mutex_unlock(&j->mu);
		return rc;
	}
	return TSR_NOT_FOUND;
}
