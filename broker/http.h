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
	int retry_after;       /* seconds; > 0 adds a Retry-After header */
	const char *content_type;
	struct buf out;
};

typedef tsr_rc (*route_fn)(struct http_req *r);
/* A route's own authenticator (SCIM bearer, signed webhooks): TSR_OK or a refusal with why. */
typedef tsr_rc (*authn_fn)(struct http_req *r, char *why, size_t whylen);

struct route {
	const char *method;
	const char *path;   /* exact, or with '*' wildcards: one segment inside, the rest at the end */
	unsigned role;      /* ROLE_PUBLIC, ROLE_ANY, or role bits any of which suffices */
	route_fn fn;
	authn_fn authn;     /* NULL: the user credential check (when role is not public) */
};

/* A module's routes; routes.c lists every module's table in route_tables. */
struct route_table {
	const struct route *routes;
	int n;
};
#define ROUTE_TABLE(name, arr) const struct route_table name = { arr, (int)(sizeof(arr) / sizeof(arr[0])) }

extern const struct route_table *const route_tables[]; /* NULL-terminated, routes.c */

/* The part of r->url from the route's first '*' on ("" for exact routes). */
const char *http_route_rest(const struct http_req *r);
/*
 * Copy the idx-th wildcard's match (0-based) into out; false if there is no
 * such wildcard or it does not fit. Route paths: a '*' inside matches one
 * path segment, a final '*' the rest of the path.
 */
bool http_path_arg(const struct http_req *r, int idx, char *out, size_t n);
/* A request header, or NULL. */
const char *http_header(const struct http_req *r, const char *name);
/* A query-string argument, or NULL. */
const char *http_query(const struct http_req *r, const char *name);

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
