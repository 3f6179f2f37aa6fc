/*
 * http.h — tesserad's HTTP edge on libmicrohttpd: listeners, request
 * bodies (bounded), the route table dispatch with its role check, and
 * JSON replies. Handlers run on MHD's worker threads.
 *
 * Authorisation lives in the route table (routes.c): each route declares
 * the role it needs; http.c authenticates and checks it before calling the
 * handler, so handlers never re-implement the check.
 */
#ifndef TSR_HTTP_H
#define TSR_HTTP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>

#include "../lib/buf.h"
#include "../db/credential.h"
#include "broker.h"

#define ROLE_PUBLIC 0u
#define ROLE_ANY (1u << 31) /* any valid credential */

struct http_req {
	struct broker *b;
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	bool admin_listener;   /* arrived on admin_listen */
	struct buf body;       /* request body, bounded */
	bool too_large;
	char client_addr[64];
	struct principal who;  /* valid when authed */
	bool authed;
	int route;             /* index in the route table, -1 unmatched */
	struct timespec start;
	/* response */
	int status;
	const char *content_type;
	struct buf out;
};

typedef tsr_rc (*route_fn)(struct http_req *r);

struct route {
	const char *method;
	const char *path;
	unsigned role;   /* ROLE_PUBLIC, ROLE_ANY, or role bits any of which suffices */
	route_fn fn;
};

/* The route table (routes.c). */
extern const struct route routes[];
extern const int n_routes;

struct http_server;

/*
 * Start listening on listen (and admin_listen when set and different).
 * Caller stops with http_stop().
 */
tsr_rc http_start(struct broker *b, struct http_server **out) TSR_WUR;
/*
 * Stop accepting, let in-flight requests finish (at most timeout_s), close
 * every connection, free. http_stop(NULL) is a no-op.
 */
void http_stop(struct http_server *s, int timeout_s);

/* Reply helpers for handlers. The JSON reference is stolen. */
tsr_rc http_reply_json(struct http_req *r, int status, json_t *j) TSR_WUR;
/* Error envelope {"error":{"status","code","message"}}. */
tsr_rc http_reply_error(struct http_req *r, tsr_rc rc, const char *fmt, ...) TSR_PRINTF(3, 4) TSR_WUR;

/* Print "METHOD PATH ROLE" per route (for --list-routes and tests). */
void http_list_routes(FILE *f);

#endif
