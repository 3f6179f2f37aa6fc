/*
 * broker.h — the state one tesserad process shares between its threads.
 *
 * Everything here is set up by main() before the HTTP listeners start and
 * torn down after they stop; while serving it is read-only except for the
 * atomics. Modules receive a struct broker * instead of reaching for globals.
 */
#ifndef TSR_BROKER_H
#define TSR_BROKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "../lib/config.h"
#include "../db/db.h"

struct jobs;
struct tokencache;
struct auditlog;
struct gateway;
struct masterkey;
struct http_server;

struct broker {
	const struct config *cfg;
	struct db_pool *pool;
	const char *migrations_dir;
	time_t started_at;
	atomic_bool shutting_down;
	struct jobs *jobs;      /* background jobs; NULL in `migrate` */
	struct tokencache *tokens; /* the token check (tokencache.h) */
	struct auditlog *audit;    /* group-committed audit events (auditlog.h) */
	struct gateway *gateway;   /* the LLM gateway (gateway.h); NULL in `migrate` */
	const struct masterkey *masterkey; /* lib/masterkey.h; NULL when none is configured */
	const char *conninfo;   /* for modules that need their own connection (LISTEN) */
	_Atomic(struct http_server *) http; /* the listeners (http.h): set by http_start, cleared as http_stop begins */
};

#endif
