/*
 * auditlog.c — see auditlog.h.
 *
 * Each waiter owns a struct item on its own stack; the queue is a linked
 * list of pointers to them, so nothing is freed behind a waiter's back. The
 * writer detaches up to MAX_BATCH items, appends them, records the result
 * in each item and broadcasts `done`. Items are visited only under al->mu
 * except by the writer between detach and completion, when their waiters
 * are blocked.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "../lib/log.h"

#define MAX_BATCH 512
#define MAX_QUEUE 20000

struct item {
	struct item *next;
	struct audit_event ev; /* strings point into blob */
	char *blob;
	bool done;
	tsr_rc rc;
};

struct auditlog {
	struct broker *b;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct item *head, *tail;
	int depth;
	bool stop;
	struct db_conn conn; /* the writer's own connection */
};

/* Copy the strings of src into one allocation owned by the item. */
static tsr_rc item_fill(struct item *it, const struct audit_event *src)
{
	const char *const *fields[] = { &src->actor, &src->actor_addr, &src->action, &src->target, &src->outcome,
					&src->route, &src->model, &src->upstream, &src->decision, &src->rule_hits,
					&src->req_sha256_hex, &src->detail };
	const char **dst[] = { &it->ev.actor, &it->ev.actor_addr, &it->ev.action, &it->ev.target, &it->ev.outcome,
			       &it->ev.route, &it->ev.model, &it->ev.upstream, &it->ev.decision, &it->ev.rule_hits,
			       &it->ev.req_sha256_hex, &it->ev.detail };
	size_t n = 0;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (*fields[i])
			n += strlen(*fields[i]) + 1;
	it->ev = *src;
	it->blob = malloc(n ? n : 1);
	if (!it->blob)
		return TSR_INTERNAL;
	char *p = it->blob;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!*fields[i]) {
			*dst[i] = NULL;
			continue;
		}
		size_t len = strlen(*fields[i]) + 1;
		memcpy(p, *fields[i], len);
		*dst[i] = p;
		p += len;
	}
	return TSR_OK;
}

static tsr_rc writer_conn(struct auditlog *al)
{
	if (al->conn.pg && PQstatus(al->conn.pg) == CONNECTION_OK)
		return TSR_OK;
	if (al->conn.pg) {
		PQfinish(al->conn.pg);
		free(al->conn.prepared);
		memset(&al->conn, 0, sizeof(al->conn));
	}
	return db_connect(al->b->conninfo, 5, &al->conn.pg);
}

static void *writer(void *arg)
{
	struct auditlog *al = arg;
	struct audit_event *evs = calloc(MAX_BATCH, sizeof(*evs));
	struct item **batch = calloc(MAX_BATCH, sizeof(*batch));
	pthread_mutex_lock(&al->mu);
	for (;;) {
		while (!al->head && !al->stop)
			pthread_cond_wait(&al->work, &al->mu);
		if (!al->head && al->stop)
			break;
		int n = 0;
		while (al->head && n < MAX_BATCH) {
			batch[n] = al->head;
			al->head = al->head->next;
			n++;
		}
		if (!al->head)
			al->tail = NULL;
		al->depth -= n;
		pthread_mutex_unlock(&al->mu);

		tsr_rc rc = (!evs || !batch) ? TSR_INTERNAL : writer_conn(al);
		if (rc == TSR_OK) {
			for (int i = 0; i < n; i++)
				evs[i] = batch[i]->ev;
			rc = db_audit_append(&al->conn, evs, n);
			if (rc != TSR_OK && PQstatus(al->conn.pg) == CONNECTION_OK &&
			    PQtransactionStatus(al->conn.pg) != PQTRANS_IDLE) {
				tsr_rc ignored = db_simple(&al->conn, "ROLLBACK");
				(void)ignored;
			}
		}
		if (rc != TSR_OK)
			log_error("audit_batch_failed", "events=%d error=%s", n, status_name(rc));

		pthread_mutex_lock(&al->mu);
		for (int i = 0; i < n; i++) {
			batch[i]->rc = rc;
			batch[i]->done = true;
		}
		pthread_cond_broadcast(&al->done);
	}
	pthread_mutex_unlock(&al->mu);
	free(evs);
	free(batch);
	return NULL;
}

tsr_rc auditlog_start(struct broker *b, struct auditlog **out)
{
	struct auditlog *al = calloc(1, sizeof(*al));
	if (!al)
		return TSR_INTERNAL;
	al->b = b;
	pthread_mutex_init(&al->mu, NULL);
	pthread_cond_init(&al->work, NULL);
	pthread_cond_init(&al->done, NULL);
	if (pthread_create(&al->thread, NULL, writer, al) != 0) {
		free(al);
		return TSR_INTERNAL;
	}
	*out = al;
	return TSR_OK;
}

void auditlog_stop(struct auditlog *al)
{
	if (!al)
		return;
	pthread_mutex_lock(&al->mu);
	al->stop = true;
	pthread_cond_signal(&al->work);
	pthread_mutex_unlock(&al->mu);
	pthread_join(al->thread, NULL);
	if (al->conn.pg)
		PQfinish(al->conn.pg);
	free(al->conn.prepared);
	pthread_mutex_destroy(&al->mu);
	pthread_cond_destroy(&al->work);
	pthread_cond_destroy(&al->done);
	free(al);
}

tsr_rc auditlog_append(struct auditlog *al, const struct audit_event *ev)
{
	struct item it;
	memset(&it, 0, sizeof(it));
	if (item_fill(&it, ev) != TSR_OK)
		return TSR_INTERNAL;
	pthread_mutex_lock(&al->mu);
	if (al->stop || al->depth >= MAX_QUEUE) {
		pthread_mutex_unlock(&al->mu);
		free(it.blob);
		log_warn("audit_queue_full", "depth=%d", MAX_QUEUE);
		return TSR_UNAVAILABLE;
	}
	if (al->tail)
		al->tail->next = &it;
	else
		al->head = &it;
	al->tail = &it;
	al->depth++;
	pthread_cond_signal(&al->work);
	while (!it.done)
		pthread_cond_wait(&al->done, &al->mu);
	pthread_mutex_unlock(&al->mu);
	free(it.blob);
	return it.rc;
}

int auditlog_depth(struct auditlog *al)
{
	pthread_mutex_lock(&al->mu);
	int d = al->depth;
	pthread_mutex_unlock(&al->mu);
	return d;
}
