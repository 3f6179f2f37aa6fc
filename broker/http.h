/*
 * http.h — tesserad's HTTP edge on libmicrohttpd: listeners, request
 * bodies (bounded), the route table dispatch with its role check, and
 * JSON replies. Handlers run on an HTTP worker or on the blocking pool.
 *
 * Authorisation lives in the route table (routes.c): each route declares
 * the role it needs; http.c authenticates and checks it before calling the
 * handler, so handlers never re-implement the check.
 *
 * The main listener's workers are event loops (http.c): a request that may
 * wait (on PostgreSQL, a lock, the disk) is run on the blocking pool
 * instead, so it never stalls the other connections and streams of its
 * worker. Which requests may run on the worker itself is the route's fast
 * check (struct route); handlers need not know where they run.
 */
#ifndef TSR_HTTP_H
#define TSR_HTTP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <microhttpd.h>

#include "../lib/buf.h"
#include "../db/credential.h"
#include "broker.h"

#define ROLE_PUBLIC 0u
#define ROLE_ANY (1u << 31) /* any valid credential */
/*
 * With authn: the route answers a body over the limit itself (r->too_large),
 * in its own error format, after its authenticator ran (the gateway's dialects).
 */
#define ROLE_OWN_LIMIT (1u << 30)

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
	char hdr_name[4][32];  /* extra response headers, set with http_reply_header() */
	char hdr_value[4][512];
	int n_hdr;
	const char *content_type;
	struct buf out;
	/* deferred and streamed replies (http_defer); private to http.c */
	struct http_async *async;
	struct http_server *srv;
	struct uclient *en; /* the worker's engine (main listener), NULL on MHD's own threads */
	bool dispatched;
	struct audit_wait *audit_wait; /* http_audit_before_reply(); private to http.c */
	bool who_cached;  /* r->who came from the token cache before dispatch (auth_fast); auth_request keeps it */
	bool method_mismatch; /* no route: but the path has one for another method; private to http.c */
};

typedef tsr_rc (*route_fn)(struct http_req *r);
/* A route's own authenticator (SCIM bearer, signed webhooks): TSR_OK or a refusal with why. */
typedef tsr_rc (*authn_fn)(struct http_req *r, char *why, size_t whylen);
/*
 * Can this request be answered without waiting on PostgreSQL or the disk
 * (authentication included)? Asked on an event-loop worker before dispatch;
 * false runs the request on the blocking pool. A wrong "true" costs only a
 * wait on the worker, as before the pool existed; it must never be needed
 * for correctness.
 */
typedef bool (*fast_fn)(struct http_req *r);

struct route {
	const char *method;
	const char *path;   /* exact, or with '*' wildcards: one segment inside, the rest at the end */
	unsigned role;      /* ROLE_PUBLIC, ROLE_ANY, or role bits any of which suffices */
	route_fn fn;
	authn_fn authn;     /* NULL: the user credential check (when role is not public) */
	fast_fn fast;       /* NULL: may always wait, so runs on the blocking pool (see fast_fn) */
};

/* A fast check for routes that never wait (health, metrics). */
bool http_always_fast(struct http_req *r);

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
/* /metrics lines of the listeners (connections per worker). */
tsr_rc http_metrics_render(struct http_server *s, struct buf *out) TSR_WUR;

/* Reply helpers for handlers. The JSON reference is stolen. */
tsr_rc http_reply_json(struct http_req *r, int status, json_t *j) TSR_WUR;
/* Error envelope {"error":{"status","code","message"}}. */
tsr_rc http_reply_error(struct http_req *r, tsr_rc rc, const char *fmt, ...) TSR_PRINTF(3, 4) TSR_WUR;
/* Add a response header (ETag, Location, WWW-Authenticate; at most 4). TSR_TOO_LARGE when full or too long. */
tsr_rc http_reply_header(struct http_req *r, const char *name, const char *value) TSR_WUR;

struct audit_event;
/*
 * Queue ev for the audit writer and hold this request's reply until the
 * record is durable, without this thread waiting: the handler sets its reply
 * as usual and returns, and the reply goes out once the writer has made the
 * record durable (the worker's event loop serves others meanwhile). When the
 * record cannot be queued it is logged (audit_write_failed) and the reply
 * goes out at once, as it did when written inline. For replies set before the
 * handler returns; a handler that calls http_defer() audits on its own.
 */
void http_audit_before_reply(struct http_req *r, const struct audit_event *ev);

/*
 * Deferred replies, for handlers that wait on another thread (the gateway's
 * upstream call) without blocking an HTTP worker. The handler calls
 * http_defer() and returns TSR_OK without replying; the connection is then
 * suspended. Later, from any thread, exactly one of:
 *   - set the reply (http_reply_json/http_reply_error/r->out) and call http_resume(r);
 *   - call http_stream_start() to send a body produced piece by piece.
 * on_close(arg, completed) is called exactly once, on an HTTP thread, when
 * the request ends for any reason (completed false: the client went away,
 * a write failed, or shutdown); r is freed right after it returns, so the
 * owner must serialise its own calls on r with on_close (its own mutex) and
 * never touch r afterwards. While the connection is suspended the client's
 * disconnect is not noticed here: http_client_fd() lets the owner watch it.
 * On the blocking pool the connection is already suspended: http_defer()
 * then hands it to the caller the same way.
 */
typedef void (*http_close_fn)(void *arg, bool completed);
tsr_rc http_defer(struct http_req *r, http_close_fn on_close, void *arg) TSR_WUR;
void http_resume(struct http_req *r);
/*
 * Streamed body. read(arg, buf, max) runs on an HTTP thread: it copies up to
 * max bytes and returns how many; 0 when nothing is available yet (the
 * connection sleeps until http_stream_wake(): this is the backpressure in
 * both directions), HTTP_STREAM_END at the end, HTTP_STREAM_ERROR to cut the
 * connection (the client sees an incomplete response). It must not block and
 * must not call back into http_*.
 */
#define HTTP_STREAM_END ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*http_stream_read_fn)(void *arg, char *buf, size_t max);
void http_stream_start(struct http_req *r, int status, const char *content_type, http_stream_read_fn read, void *arg);
/* New data (or the end) is available for read(): wake the connection. */
void http_stream_wake(struct http_req *r);
/* The client connection's socket (to watch for a hang-up while suspended), -1 if unknown. */
int http_client_fd(const struct http_req *r);

/* Print "METHOD PATH ROLE" per route (for --list-routes and tests). */
void http_list_routes(FILE *f);

#endif
