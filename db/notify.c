/*
 * notify.c — see notify.h.
 *
 * One thread, one connection. The thread sleeps in poll() on the connection's
 * socket and on a self-pipe used by notify_stop() to wake it. State shared
 * with other threads (connected flag, backend pid) is atomic; there are no
 * locks here.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"
#include "../lib/log.h"

struct notify {
	pthread_t thread;
	char *conninfo;
	char **channels;
	int n;
	struct notify_ops ops;
	int wake[2];
	atomic_bool stop;
	atomic_bool connected;
	atomic_int backend_pid;
};

static PGconn *listen_connect(struct notify *nt)
{
	PGconn *c;
	if (db_connect(nt->conninfo, 5, &c) != TSR_OK)
		return NULL;
	for (int i = 0; i < nt->n; i++) {
		char *id = PQescapeIdentifier(c, nt->channels[i], strlen(nt->channels[i]));
		if (!id)
			goto fail;
		char sql[256];
		snprintf(sql, sizeof(sql), "LISTEN %s", id);
		PQfreemem(id);
		PGresult *r = PQexec(c, sql); /* checksrc: ok — identifier escaped by libpq */
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok)
			goto fail;
	}
	return c;
fail:
	PQfinish(c);
	return NULL;
}

/* Sleep ms or until stopped; returns false when stopping. */
static bool nap(struct notify *nt, int ms)
{
	struct pollfd p = { .fd = nt->wake[0], .events = POLLIN };
	poll(&p, 1, ms);
	return !atomic_load(&nt->stop);
}

static void *run(void *arg)
{
	struct notify *nt = arg;
	int backoff = 50;
	while (!atomic_load(&nt->stop)) {
		PGconn *c = listen_connect(nt);
		if (!c) {
			if (!nap(nt, backoff))
				break;
			backoff = backoff < 2000 ? backoff * 2 : 2000;
			continue;
		}
		backoff = 50;
		atomic_store(&nt->backend_pid, PQbackendPID(c));
		atomic_store(&nt->connected, true);
		log_info("notify_listening", "channels=%d backend_pid=%d", nt->n, PQbackendPID(c));
		/* anything sent while we were away is lost: tell the user */
		nt->ops.on_reset(nt->ops.arg);
		for (;;) {
			struct pollfd p[2] = { { .fd = PQsocket(c), .events = POLLIN },
					       { .fd = nt->wake[0], .events = POLLIN } };
			int r = poll(p, 2, 1000);
			if (atomic_load(&nt->stop))
				break;
			if (r < 0 && errno != EINTR)
				break;
			if (r == 0) {
				/* idle: a cheap round trip proves the connection is alive */
				PGresult *k = PQexec(c, "SELECT 1"); /* checksrc: ok */
				bool ok = PQresultStatus(k) == PGRES_TUPLES_OK;
				PQclear(k);
				if (!ok)
					break;
			}
			if (!PQconsumeInput(c))
				break;
			PGnotify *n;
			while ((n = PQnotifies(c)) != NULL) {
				nt->ops.on_notify(nt->ops.arg, n->relname, n->extra);
				PQfreemem(n);
			}
			if (PQstatus(c) != CONNECTION_OK)
				break;
		}
		atomic_store(&nt->connected, false);
		atomic_store(&nt->backend_pid, 0);
		PQfinish(c);
		if (atomic_load(&nt->stop))
			break;
		log_warn("notify_lost", "reconnecting=true");
		nt->ops.on_reset(nt->ops.arg);
	}
	return NULL;
}

tsr_rc notify_start(const char *conninfo, const char *const *channels, int n, const struct notify_ops *ops,
		    struct notify **out)
{
	struct notify *nt = calloc(1, sizeof(*nt));
	if (!nt)
		return TSR_INTERNAL;
	nt->wake[0] = nt->wake[1] = -1;
	nt->conninfo = strdup(conninfo);
	nt->channels = calloc((size_t)n, sizeof(char *));
	if (!nt->conninfo || !nt->channels || pipe(nt->wake) != 0)
		goto fail;
	nt->n = n;
	for (int i = 0; i < n; i++)
		if (!(nt->channels[i] = strdup(channels[i])))
			goto fail;
	nt->ops = *ops;
	if (pthread_create(&nt->thread, NULL, run, nt) != 0)
		goto fail;
	*out = nt;
	return TSR_OK;
fail:
	nt->n = n;
	if (nt->wake[0] >= 0) {
		close(nt->wake[0]);
		close(nt->wake[1]);
	}
	for (int i = 0; nt->channels && i < n; i++)
		free(nt->channels[i]);
	free(nt->channels);
	free(nt->conninfo);
	free(nt);
	return TSR_INTERNAL;
}

void notify_stop(struct notify *nt)
{
	if (!nt)
		return;
	atomic_store(&nt->stop, true);
	ssize_t w = write(nt->wake[1], "x", 1);
	(void)w;
	pthread_join(nt->thread, NULL);
	close(nt->wake[0]);
	close(nt->wake[1]);
	for (int i = 0; i < nt->n; i++)
		free(nt->channels[i]);
	free(nt->channels);
	memset(nt->conninfo, 0, strlen(nt->conninfo));
	free(nt->conninfo);
	free(nt);
}

bool notify_connected(struct notify *nt)
{
	return nt && atomic_load(&nt->connected);
}

int notify_backend_pid(struct notify *nt)
{
	return nt ? atomic_load(&nt->backend_pid) : 0;
}

tsr_rc notify_send(struct db_conn *c, const char *channel, const char *payload)
{
	const char *p[] = { channel, payload };
	PGresult *r = PQexecParams(c->pg, "SELECT pg_notify($1, $2)", 2, NULL, p, NULL, NULL, 0);
	tsr_rc rc = PQresultStatus(r) == PGRES_TUPLES_OK ? TSR_OK : db_result_rc(r, c->pg);
	PQclear(r);
	return rc;
}
