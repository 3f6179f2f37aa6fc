/*
 * http.c — see http.h.
 *
 * The main listener has `workers` HTTP workers. Each is an MHD daemon in
 * external polling (epoll) without a listening socket, driven by the
 * thread of an upstream engine (upstream_client.h) whose hook it is: a
 * gateway request, its upstream transfer and its reply stay on one thread
 * and one epoll set. Every worker watches the one listening socket
 * (EPOLLEXCLUSIVE: one idle worker is woken per connection); the worker
 * that accepts keeps the connection unless another has fewer, to which it
 * hands it (MHD_add_connection on that worker's thread), so a few
 * long-lived client connections still use every worker.
 * The admin-only listener, if any, is one daemon with MHD's own thread pool
 * (it forwards nothing).
 * A request's struct http_req is created on the first callback, fills its
 * bounded body on the following ones, is dispatched on the last, and freed
 * by the completion callback, which also records metrics and the in-flight
 * count that a graceful stop waits on.
 *
 * The blocking pool: a worker is an event loop, so a request that may wait
 * (its route's fast check says so: a query, a lock) is not dispatched there.
 * The worker defers it (its connection suspended, as for any deferred
 * reply) and queues it to POOL_THREADS threads that dispatch it (the route's
 * authentication and handler) and then resume it with its reply, or hand it
 * on when the handler defers it itself (the gateway: its transfer still runs
 * on the worker's engine, r->en). `pooled` is true from queueing until the
 * pool thread is done with r; a completion callback that comes meanwhile
 * (only a stop's abort can) waits for it, so r is never freed under the pool.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "auditlog.h"
#include "auth.h"
#include "metrics.h"
#include "upstream_client.h"
#include "../lib/log.h"

#define MAX_BODY (10u << 20)  /* default request body ceiling */
#define MAX_REPLY (64u << 20) /* ceiling on a generated reply */
#define POOL_THREADS 8        /* the blocking pool, as many as [database] pool_size's default */

/* One HTTP worker of the main listener; d is used on en's thread only, once en runs. */
struct worker {
	struct MHD_Daemon *d;
	struct uclient *en;
	struct listener *l;
	int idx;
	atomic_int conns;   /* open connections (MHD's connection notifications) */
	atomic_int pending; /* handed over by another worker, not yet added */
	atomic_bool closed;
	bool listening;     /* worker's thread: it may accept (until stop_accepting) */
	int64_t relisten_ns; /* worker's thread: accepting paused after an error until then; 0 none */
};

struct listener {
	struct http_server *srv;
	struct MHD_Daemon *d; /* the admin listener: MHD's own threads */
	struct worker *w;     /* the main listener's workers */
	int n_w;
	int lfd;              /* the main listener's socket, watched by every worker */
	atomic_bool closing;  /* stop_accepting has shut lfd down (it is closed after the workers) */
	bool admin;
	char addr[128];
};

struct http_server {
	struct broker *b;
	struct listener l[2];
	int n;
	atomic_int inflight;
	pthread_mutex_t async_mu;     /* guards the list of deferred requests; taken before an http_async's mu */
	struct http_async *async_head;
	/* the blocking pool: a queue of deferred requests to dispatch */
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct http_async *pool_head, *pool_tail;
	bool pool_stop;
	atomic_int pool_n;           /* requests queued to or running on the pool (/metrics) */
	pthread_t pool[POOL_THREADS];
	int n_pool;
};

/*
 * A deferred request's reply state. mu orders the handler's thread (which
 * suspends the connection) against the owner's threads (which resume it):
 * `suspended` is true exactly while MHD holds the connection suspended on
 * our behalf, so a resume is issued only for a connection that cannot be
 * completed (freed) meanwhile. Lock order: async_mu, then mu; the owner's
 * own lock may be held when calling http_resume/http_stream_*, so mu is
 * never held while calling the owner (read, on_close).
 */
enum async_state { A_WAIT, A_READY, A_STREAM, A_STREAMING };

struct http_async {
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* signalled when pooled turns false */
	enum async_state state;
	bool suspended, wake_pending, abort;
	bool pooled;             /* queued to or running on the blocking pool */
	bool handed;             /* on the pool, the handler deferred the reply itself (http_defer) */
	bool closing;            /* the completion callback has begun: resume no more */
	struct http_async *pool_next;
	http_close_fn on_close;
	void *close_arg;
	http_stream_read_fn read;
	void *read_arg;
	struct http_req *r;
	struct http_async *prev, *next;
};

/* ---------- replies ---------- */

tsr_rc http_reply_json(struct http_req *r, int status, json_t *j)
{
	if (!j)
		return TSR_INTERNAL;
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return TSR_INTERNAL;
	buf_free(&r->out);
	buf_init(&r->out, MAX_REPLY);
	tsr_rc rc = buf_puts(&r->out, s);
	free(s);
	if (rc == TSR_OK)
		rc = buf_puts(&r->out, "\n");
	r->status = status;
	r->content_type = "application/json";
	return rc;
}

tsr_rc http_reply_error(struct http_req *r, tsr_rc code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int status = status_http(code);
	json_t *j = json_pack("{s:{s:i,s:s,s:s}}", "error", "status", status, "code", status_name(code), "message",
			      msg);
	return http_reply_json(r, status, j);
}

tsr_rc http_reply_header(struct http_req *r, const char *name, const char *value)
{
	if (r->n_hdr >= (int)(sizeof(r->hdr_name) / sizeof(r->hdr_name[0])) || strlen(name) >= sizeof(r->hdr_name[0]) ||
	    strlen(value) >= sizeof(r->hdr_value[0]) || strpbrk(value, "\r\n"))
		return TSR_TOO_LARGE;
	snprintf(r->hdr_name[r->n_hdr], sizeof(r->hdr_name[0]), "%s", name);
	snprintf(r->hdr_value[r->n_hdr], sizeof(r->hdr_value[0]), "%s", value);
	r->n_hdr++;
	return TSR_OK;
}

/* ---------- routing ---------- */

/* The i-th route across all tables, or NULL past the end. */
static const struct route *route_at(int i)
{
	for (const struct route_table *const *t = route_tables; *t; t++) {
		if (i < (*t)->n)
			return &(*t)->routes[i];
		i -= (*t)->n;
	}
	return NULL;
}

/*
 * A '*' inside a pattern matches one non-empty path segment; a '*' that
 * ends the pattern matches the rest of the path (possibly empty).
 */
static bool path_matches(const char *pattern, const char *url)
{
	while (*pattern) {
		if (*pattern == '*') {
			if (!pattern[1])
				return true;
			size_t seg = strcspn(url, "/");
			if (!seg)
				return false;
			url += seg;
			pattern++;
			continue;
		}
		if (*pattern != *url)
			return false;
		pattern++;
		url++;
	}
	return *url == '\0';
}

bool http_path_arg(const struct http_req *r, int idx, char *out, size_t n)
{
	const struct route *rt = r->route >= 0 ? route_at(r->route) : NULL;
	if (!rt || !n)
		return false;
	const char *p = rt->path, *u = r->url;
	int k = 0;
	while (*p) {
		if (*p == '*') {
			size_t seg = p[1] ? strcspn(u, "/") : strlen(u);
			if (k == idx) {
				if (seg >= n)
					return false;
				memcpy(out, u, seg);
				out[seg] = '\0';
				return true;
			}
			k++;
			u += seg;
			p++;
			continue;
		}
		p++;
		u++;
	}
	return false;
}

static int find_route(const char *method, const char *url, bool *method_mismatch)
{
	*method_mismatch = false;
	const struct route *rt;
	for (int i = 0; (rt = route_at(i)) != NULL; i++) {
		if (!path_matches(rt->path, url))
			continue;
		if (strcmp(rt->method, method) == 0 || (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0))
			return i;
		*method_mismatch = true;
	}
	return -1;
}

const char *http_route_rest(const struct http_req *r)
{
	const struct route *rt = r->route >= 0 ? route_at(r->route) : NULL;
	if (!rt)
		return "";
	const char *star = strchr(rt->path, '*');
	if (!star)
		return "";
	return r->url + (star - rt->path);
}

const char *http_header(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void role_text(unsigned role, char *out, size_t n)
{
	out[0] = '\0';
	size_t used = 0;
	int count = 0;
	for (unsigned bit = 1; bit <= ROLE_DEVELOPER; bit <<= 1) {
		if (!(role & bit))
			continue;
		int w = snprintf(out + used, n - used, "%s'%s'", count ? " or " : "", role_name(bit));
		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
		count++;
	}
}

/*
 * An audit record a reply waits for. Two references: the audit writer's
 * completion, and the request's (dropped by its close callback once the
 * reply was deferred, or at once when the record was durable before).
 * mu orders the completion's http_resume() with the request's end.
 */
struct audit_wait {
	pthread_mutex_t mu;
	struct http_req *r;
	bool done, deferred, closed;
	int refs;
	char action[48];
};

static void audit_wait_unref(struct audit_wait *w)
{
	pthread_mutex_lock(&w->mu);
	bool last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (last) {
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
}

/* The writer: the record is durable (or failed: logged, and the reply still goes, as before). */
static void audit_wait_done(void *arg, tsr_rc rc)
{
	struct audit_wait *w = arg;
	if (rc != TSR_OK)
		log_error("audit_write_failed", "action=%s", w->action);
	pthread_mutex_lock(&w->mu);
	w->done = true;
	if (w->deferred && !w->closed)
		http_resume(w->r);
	pthread_mutex_unlock(&w->mu);
	audit_wait_unref(w);
}

static void audit_wait_close(void *arg, bool completed)
{
	struct audit_wait *w = arg;
	(void)completed;
	pthread_mutex_lock(&w->mu);
	w->closed = true;
	pthread_mutex_unlock(&w->mu);
	audit_wait_unref(w);
}

void http_audit_before_reply(struct http_req *r, const struct audit_event *ev)
{
	struct audit_wait *w = r->audit_wait ? NULL : calloc(1, sizeof(*w));
	if (w) {
		pthread_mutex_init(&w->mu, NULL);
		w->r = r;
		w->refs = 2;
		snprintf(w->action, sizeof(w->action), "%s", ev->action ? ev->action : "-");
		if (r->b->audit && auditlog_submit(r->b->audit, ev, audit_wait_done, w) == TSR_OK) {
			r->audit_wait = w;
			return;
		}
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
	/* cannot queue it (or a second one): written here and now, as before */
	if (!r->b->audit || auditlog_append(r->b->audit, ev) != TSR_OK)
		log_error("audit_write_failed", "action=%s", ev->action ? ev->action : "-");
}

/*
 * After the handler replied: hold the reply until its audit record is
 * durable (true: deferred). Not when the handler deferred its reply itself
 * (http_defer refuses a second owner).
 */
static bool wait_for_audit(struct http_req *r)
{
	struct audit_wait *w = r->audit_wait;
	r->audit_wait = NULL;
	if (!w)
		return false;
	if (http_defer(r, audit_wait_close, w) == TSR_OK) {
		pthread_mutex_lock(&w->mu);
		if (w->done)
			http_resume(r); /* durable already: answer in this turn */
		else
			w->deferred = true;
		pthread_mutex_unlock(&w->mu);
		return true;
	}
	audit_wait_unref(w); /* the handler deferred its reply on its own: it is not held */
	return false;
}

bool http_always_fast(struct http_req *r)
{
	(void)r;
	return true;
}

/* May r run on its event-loop worker (r->route set)? */
static bool route_fast(struct http_req *r)
{
	if (r->route < 0)
		return true; /* 404 and 405 wait on nothing */
	const struct route *rt = route_at(r->route);
	return rt->fast && rt->fast(r);
}

/* Authenticate, check the role and run the handler of r->route (set by on_request). */
static tsr_rc dispatch(struct http_req *r)
{
	int i = r->route;
	if (i < 0) {
		if (r->method_mismatch) {
			char msg[300];
			snprintf(msg, sizeof(msg), "method %s is not allowed on %s", r->method, r->url);
			return http_reply_json(r, 405, json_pack("{s:{s:i,s:s,s:s}}", "error", "status", 405, "code",
								 "method_not_allowed", "message", msg));
		}
		return http_reply_error(r, TSR_NOT_FOUND, "no route for %s %s", r->method, r->url);
	}
	const struct route *rt = route_at(i);
	bool admin_route = strncmp(rt->path, "/admin/", 7) == 0;
	bool split = r->b->cfg->server.admin_listen != NULL;
	if (split && admin_route != r->admin_listener)
		return http_reply_error(r, TSR_NOT_FOUND, "no route for %s %s on this listener", r->method, r->url);
	if (r->too_large && !(rt->authn && (rt->role & ROLE_OWN_LIMIT)))
		return http_reply_error(r, TSR_TOO_LARGE, "request body over the limit of %u bytes", MAX_BODY);
	if (rt->authn) {
		char why[160];
		tsr_rc rc = rt->authn(r, why, sizeof(why));
		if (rc != TSR_OK) {
			metrics_auth_failure();
			/* a route with its own authenticator also answers its own errors (SCIM, hooks) */
			if (r->status)
				return TSR_OK;
			return http_reply_error(r, rc, "%s", why);
		}
	} else if (rt->role != ROLE_PUBLIC) {
		char why[160];
		tsr_rc rc = auth_request(r, why, sizeof(why));
		if (rc != TSR_OK) {
			metrics_auth_failure();
			return http_reply_error(r, rc, "%s", why);
		}
		if (rt->role != ROLE_ANY && !(r->who.roles & rt->role)) {
			char need[96];
			role_text(rt->role, need, sizeof(need));
			auth_audit_denied(r, need);
			return http_reply_error(r, TSR_DENIED, "this route needs role %s", need);
		}
	}
	return rt->fn(r);
}

void http_list_routes(FILE *f)
{
	const struct route *rt;
	for (int i = 0; (rt = route_at(i)) != NULL; i++) {
		char role[96];
		if (rt->authn)
			snprintf(role, sizeof(role), "own");
		else if (rt->role == ROLE_PUBLIC)
			snprintf(role, sizeof(role), "-");
		else if (rt->role == ROLE_ANY)
			snprintf(role, sizeof(role), "any");
		else {
			role[0] = '\0';
			size_t used = 0;
			for (unsigned bit = 1; bit <= ROLE_DEVELOPER; bit <<= 1)
				if (rt->role & bit) {
					int w = snprintf(role + used, sizeof(role) - used, "%s%s", used ? "," : "",
							 role_name(bit));
					if (w > 0)
						used += (size_t)w;
				}
		}
		fprintf(f, "%s %s %s\n", rt->method, rt->path, role);
	}
}

/* ---------- deferred and streamed replies ---------- */

tsr_rc http_defer(struct http_req *r, http_close_fn on_close, void *arg)
{
	if (r->async) {
		/* on the blocking pool: the connection is deferred already; the caller takes it over */
		struct http_async *a = r->async;
		pthread_mutex_lock(&a->mu);
		bool ok = a->pooled && !a->handed;
		if (ok) {
			a->handed = true;
			a->on_close = on_close;
			a->close_arg = arg;
		}
		pthread_mutex_unlock(&a->mu);
		return ok ? TSR_OK : TSR_INTERNAL;
	}
	struct http_async *a = calloc(1, sizeof(*a));
	if (!a)
		return TSR_INTERNAL;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->state = A_WAIT;
	a->on_close = on_close;
	a->close_arg = arg;
	a->r = r;
	pthread_mutex_lock(&r->srv->async_mu);
	a->next = r->srv->async_head;
	if (a->next)
		a->next->prev = a;
	r->srv->async_head = a;
	pthread_mutex_unlock(&r->srv->async_mu);
	r->async = a;
	return TSR_OK;
}

/* a->mu held */
static void wake_locked(struct http_req *r)
{
	struct http_async *a = r->async;
	if (a->closing)
		return; /* the connection is being completed: nothing to resume */
	if (a->suspended) {
		a->suspended = false;
		MHD_resume_connection(r->conn);
		if (r->en)
			uclient_kick(r->en); /* external polling: MHD_run() must follow */
	} else {
		a->wake_pending = true;
	}
}

void http_resume(struct http_req *r)
{
	struct http_async *a = r->async;
	pthread_mutex_lock(&a->mu);
	a->state = A_READY;
	wake_locked(r);
	pthread_mutex_unlock(&a->mu);
}

void http_stream_start(struct http_req *r, int status, const char *content_type, http_stream_read_fn read, void *arg)
{
	struct http_async *a = r->async;
	pthread_mutex_lock(&a->mu);
	r->status = status;
	r->content_type = content_type;
	a->read = read;
	a->read_arg = arg;
	a->state = A_STREAM;
	wake_locked(r);
	pthread_mutex_unlock(&a->mu);
}

void http_stream_wake(struct http_req *r)
{
	struct http_async *a = r->async;
	pthread_mutex_lock(&a->mu);
	wake_locked(r);
	pthread_mutex_unlock(&a->mu);
}

int http_client_fd(const struct http_req *r)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? (int)ci->connect_fd : -1;
}

/* Suspend r's connection until the owner wakes it; called on the HTTP thread handling it. a->mu held. */
static void suspend_locked(struct http_req *r)
{
	r->async->suspended = true;
	r->async->wake_pending = false;
	MHD_suspend_connection(r->conn);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_req *r = cls;
	struct http_async *a = r->async;
	for (;;) {
		pthread_mutex_lock(&a->mu);
		bool abort = a->abort;
		a->wake_pending = false;
		pthread_mutex_unlock(&a->mu);
		if (abort)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		ssize_t n = a->read(a->read_arg, out, max);
		if (n > 0)
			return n;
		if (n == HTTP_STREAM_END)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (n < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		pthread_mutex_lock(&a->mu);
		if (a->wake_pending || a->abort) {
			/* data (or the end) arrived after read() looked: look again */
			pthread_mutex_unlock(&a->mu);
			continue;
		}
		suspend_locked(r);
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
}

static void add_common_headers(struct http_req *r, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->content_type ? r->content_type : "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (r->retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", r->retry_after);
		MHD_add_response_header(resp, "Retry-After", ra);
	}
	for (int i = 0; i < r->n_hdr; i++)
		MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
}

static enum MHD_Result send_stream(struct http_req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r,
								      NULL);
	if (!resp)
		return MHD_NO;
	add_common_headers(r, resp);
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_reply(struct http_req *r);

/* A deferred request's turn on its HTTP thread: send what is ready, else (re)suspend. */
static enum MHD_Result async_step(struct http_req *r)
{
	struct http_async *a = r->async;
	pthread_mutex_lock(&a->mu);
	enum async_state st = a->state;
	if (st == A_WAIT && a->abort) {
		pthread_mutex_unlock(&a->mu);
		return MHD_NO; /* shutting down: close the connection */
	}
	if (st == A_STREAM)
		a->state = A_STREAMING;
	if (st == A_WAIT)
		suspend_locked(r);
	pthread_mutex_unlock(&a->mu);
	if (st == A_READY) {
		if (r->status == 0)
			r->status = 500;
		return send_reply(r);
	}
	if (st == A_STREAM)
		return send_stream(r);
	return MHD_YES;
}

/* After the handler returned rc without deferring: a reply it did not set (it failed before replying). */
static void finish_reply(struct http_req *r, tsr_rc rc)
{
	if (rc != TSR_OK && r->status == 0) {
		tsr_rc ignored = http_reply_error(r, rc, "%s", rc == TSR_UNAVAILABLE ? "database unavailable"
										     : "internal error");
		(void)ignored;
	}
	if (r->status == 0)
		r->status = 500;
}

/* ---------- the blocking pool ---------- */

/*
 * Dispatch a request queued to the pool (a pool thread), then resume it
 * with its reply, hold that reply for its audit record (wait_for_audit),
 * or leave it to the handler that deferred it. Touches neither r nor its
 * http_async once `pooled` is cleared.
 */
static void pool_run(struct http_req *r)
{
	struct http_async *a = r->async;
	pthread_mutex_lock(&a->mu);
	bool skip = a->abort || a->closing; /* stopping: the connection is cut, nothing to answer */
	pthread_mutex_unlock(&a->mu);
	bool answer = false;
	if (!skip) {
		tsr_rc rc = dispatch(r);
		pthread_mutex_lock(&a->mu);
		bool handed = a->handed; /* the handler deferred its reply itself */
		pthread_mutex_unlock(&a->mu);
		if (!handed)
			finish_reply(r, rc);
		/* a reply held for its record is resumed by the writer's completion (audit_wait_done) */
		bool held = wait_for_audit(r);
		answer = !handed && !held;
	}
	pthread_mutex_lock(&a->mu);
	if (answer) {
		a->state = A_READY;
		wake_locked(r);
	}
	a->pooled = false;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static void *pool_main(void *arg)
{
	struct http_server *s = arg;
	pthread_setname_np(pthread_self(), "http-pool");
	pthread_mutex_lock(&s->pool_mu);
	for (;;) {
		while (!s->pool_head && !s->pool_stop)
			pthread_cond_wait(&s->pool_cv, &s->pool_mu);
		struct http_async *a = s->pool_head;
		if (!a)
			break; /* stopping, and the queue is empty */
		s->pool_head = a->pool_next;
		if (!s->pool_head)
			s->pool_tail = NULL;
		pthread_mutex_unlock(&s->pool_mu);
		pool_run(a->r);
		atomic_fetch_sub(&s->pool_n, 1);
		pthread_mutex_lock(&s->pool_mu);
	}
	pthread_mutex_unlock(&s->pool_mu);
	return NULL;
}

/* Defer r and queue it to the pool (r's worker); its connection is suspended until the pool answers. */
static enum MHD_Result pool_queue(struct http_req *r)
{
	struct http_server *s = r->srv;
	if (http_defer(r, NULL, NULL) != TSR_OK)
		return MHD_NO;
	struct http_async *a = r->async;
	pthread_mutex_lock(&a->mu);
	a->pooled = true;
	pthread_mutex_unlock(&a->mu);
	pthread_mutex_lock(&s->pool_mu);
	bool queued = !s->pool_stop && s->n_pool > 0;
	if (queued) {
		atomic_fetch_add(&s->pool_n, 1);
		if (s->pool_tail)
			s->pool_tail->pool_next = a;
		else
			s->pool_head = a;
		s->pool_tail = a;
		pthread_cond_signal(&s->pool_cv);
	}
	pthread_mutex_unlock(&s->pool_mu);
	if (!queued)
		pool_run(r); /* no pool (cannot happen while workers accept): here, as before it existed */
	return async_step(r);
}

/* ---------- MHD callbacks ---------- */

static void client_addr(struct MHD_Connection *c, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	out[0] = '\0';
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || !inet_ntop(sa->sa_family, a, out, (socklen_t)n))
		out[0] = '\0';
}

static enum MHD_Result send_reply(struct http_req *r)
{
	size_t len = r->out.len;
	char *data = buf_steal(&r->out);
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	add_common_headers(r, resp);
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct listener *l = cls;
	struct http_req *r = *req_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &r->start);
		r->b = l->srv->b;
		r->conn = conn;
		r->method = method;
		r->url = url;
		r->admin_listener = l->admin;
		r->route = -1;
		r->srv = l->srv;
		r->en = uclient_self();
		buf_init(&r->body, MAX_BODY);
		buf_init(&r->out, MAX_REPLY);
		client_addr(conn, r->client_addr, sizeof(r->client_addr));
		atomic_fetch_add(&l->srv->inflight, 1);
		*req_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_large && buf_append(&r->body, upload, *upload_size) != TSR_OK)
			r->too_large = true; /* keep reading, answer 413 at the end */
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->dispatched)
		return r->async ? async_step(r) : MHD_NO; /* resumed */
	r->dispatched = true;
	r->route = find_route(r->method, r->url, &r->method_mismatch);
	if (r->en && !route_fast(r))
		return pool_queue(r); /* it may wait: not on this event loop */
	tsr_rc rc = dispatch(r);
	if (r->async) {
		wait_for_audit(r); /* not held: the handler deferred its reply itself */
		return async_step(r); /* the handler deferred its reply */
	}
	finish_reply(r, rc);
	if (wait_for_audit(r))
		return async_step(r); /* the reply, once its audit record is durable */
	return send_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct listener *l = cls;
	struct http_req *r = *req_cls;
	if (!r)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t us = (uint64_t)(now.tv_sec - r->start.tv_sec) * 1000000u +
		      (uint64_t)((now.tv_nsec - r->start.tv_nsec) / 1000);
	metrics_http(r->route, r->status ? r->status : 499, us);
	log_debug("http_request", "method=%s path=\"%s\" status=%d us=%llu addr=%s", r->method, r->url, r->status,
		  (unsigned long long)us, r->client_addr);
	struct http_async *a = r->async;
	if (a) {
		pthread_mutex_lock(&a->mu);
		a->closing = true;
		while (a->pooled) /* a stop cut it while the pool has it: wait until the pool is done with r */
			pthread_cond_wait(&a->cv, &a->mu);
		pthread_mutex_unlock(&a->mu);
		pthread_mutex_lock(&l->srv->async_mu);
		if (a->prev)
			a->prev->next = a->next;
		else
			l->srv->async_head = a->next;
		if (a->next)
			a->next->prev = a->prev;
		pthread_mutex_unlock(&l->srv->async_mu);
		if (a->on_close)
			a->on_close(a->close_arg, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
	}
	buf_wipe(&r->body);
	buf_free(&r->out);
	free(r);
	*req_cls = NULL;
	atomic_fetch_sub(&l->srv->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("http_server", "detail=\"%s\"", msg);
}

static tsr_rc parse_listen(const char *addr, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return TSR_INVALID;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	if (getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res) != 0)
		return TSR_INVALID;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return TSR_OK;
}

/* ---------- workers: hooks run on the worker's engine thread ---------- */

static int64_t worker_timeout(void *arg)
{
	struct worker *w = arg;
	MHD_UNSIGNED_LONG_LONG ms;
	int64_t t = -1;
	if (w->d && MHD_get_timeout(w->d, &ms) == MHD_YES)
		t = ms > 3600000u ? 3600000 : (int64_t)ms;
	if (w->relisten_ns) {
		int64_t left = (w->relisten_ns - uclient_now_ns() + 999999) / 1000000;
		if (left < 0)
			left = 0;
		if (t < 0 || left < t)
			t = left;
	}
	return t;
}

static void worker_run(void *arg)
{
	struct worker *w = arg;
	if (w->relisten_ns && uclient_now_ns() >= w->relisten_ns) {
		w->relisten_ns = 0;
		if (w->listening)
			uclient_accepting(w->en, true);
	}
	if (w->d)
		MHD_run(w->d);
}

/* Close every connection (their completion callbacks run here, on the worker's thread). Idempotent. */
static void worker_close(void *arg)
{
	struct worker *w = arg;
	if (w->en)
		uclient_hook_clear(w->en);
	if (w->d)
		MHD_stop_daemon(w->d);
	w->d = NULL;
	atomic_store(&w->closed, true);
}

/* Start accepting (on w's thread). */
static void worker_listen(void *arg)
{
	struct worker *w = arg;
	if (w->listening)
		uclient_accepting(w->en, true);
}

/* Stop accepting (on w's thread). */
static void worker_unlisten(void *arg)
{
	struct worker *w = arg;
	w->listening = false;
	w->relisten_ns = 0;
	uclient_accepting(w->en, false);
}

/* worker_close on w's own thread, waiting at most ~5 s; false when it did not run there. */
static bool worker_close_on_thread(struct worker *w)
{
	if (uclient_call(w->en, worker_close, w) != TSR_OK)
		return false;
	for (int i = 0; i < 5000 && !atomic_load(&w->closed); i++)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000L }, NULL);
	if (!atomic_load(&w->closed))
		log_warn("http_worker_stuck", "waited=5s");
	return atomic_load(&w->closed);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct worker *w = cls;
	atomic_fetch_add(&w->conns, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

struct handoff {
	struct worker *w;
	int fd;
	socklen_t len;
	struct sockaddr_storage addr;
};

/* Add a connection to w's daemon (w's thread). */
static void add_conn(struct worker *w, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
	if (!w->d || MHD_add_connection(w->d, fd, (const struct sockaddr *)addr, len) != MHD_YES) {
		if (!w->d)
			close(fd); /* MHD_add_connection closes it itself */
		log_warn("http_connection_refused", "reason=\"%s\"", w->d ? "worker refused it" : "stopping");
	}
}

/* A connection another worker handed over, added on its worker's thread. */
static void adopt(void *arg)
{
	struct handoff *h = arg;
	add_conn(h->w, h->fd, &h->addr, h->len);
	atomic_fetch_sub(&h->w->pending, 1);
	free(h);
}

/*
 * The listening socket is readable (w's thread): accept what is waiting.
 * Each connection goes to the worker with the fewest, this one on a tie.
 */
static void worker_accept(void *arg)
{
	struct worker *w = arg;
	struct listener *l = w->l;
	for (int n = 0; n < 64 && w->listening; n++) {
		struct sockaddr_storage addr;
		socklen_t len = sizeof(addr);
		int fd = accept4(l->lfd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (atomic_load(&l->closing)) {
				worker_unlisten(w);
			} else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR && e != ECONNABORTED) {
				/* EMFILE and such: the socket stays readable, so pause for 10 ms rather than spin */
				log_warn("http_accept_failed", "error=\"%s\"", strerror(e));
				uclient_accepting(w->en, false);
				w->relisten_ns = uclient_now_ns() + 10000000LL;
			}
			return;
		}
		struct worker *best = w;
		int best_load = atomic_load(&w->conns) + atomic_load(&w->pending);
		for (int k = 1; k < l->n_w; k++) {
			struct worker *o = &l->w[(w->idx + k) % l->n_w];
			int load = atomic_load(&o->conns) + atomic_load(&o->pending);
			if (load < best_load) {
				best = o;
				best_load = load;
			}
		}
		if (best == w) {
			add_conn(w, fd, &addr, len);
			continue;
		}
		struct handoff *h = malloc(sizeof(*h));
		if (!h) {
			add_conn(w, fd, &addr, len);
			continue;
		}
		*h = (struct handoff){ .w = best, .fd = fd, .len = len, .addr = addr };
		atomic_fetch_add(&best->pending, 1);
		if (uclient_call(best->en, adopt, h) != TSR_OK) {
			atomic_fetch_sub(&best->pending, 1);
			free(h);
			add_conn(w, fd, &addr, len);
		}
	}
}

static int listen_socket(const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static tsr_rc start_workers(struct http_server *s, struct listener *l, const struct sockaddr_storage *ss)
{
	int n = s->b->cfg->server.workers;
	l->w = calloc((size_t)n, sizeof(*l->w));
	if (!l->w)
		return TSR_INTERNAL;
	l->lfd = listen_socket(ss);
	if (l->lfd < 0)
		return TSR_UNAVAILABLE;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_NO_LISTEN_SOCKET;
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	for (int i = 0; i < n; i++) {
		struct worker *w = &l->w[i];
		w->l = l;
		w->idx = i;
		w->listening = true;
		w->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
					MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
					MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
					MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
					MHD_OPTION_CONNECTION_LIMIT, 4096u / (unsigned)n,
					MHD_OPTION_END);
		if (!w->d)
			return TSR_UNAVAILABLE;
		l->n_w = i + 1;
		const union MHD_DaemonInfo *ei = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
		if (!ei)
			return TSR_INTERNAL;
		struct uclient_hook hook = { .fd = ei->epoll_fd, .timeout_ms = worker_timeout, .run = worker_run,
					     .arg = w, .name = "http-worker", .accept_fd = l->lfd,
					     .accept = worker_accept };
		if (uclient_start(&w->en, &hook) != TSR_OK)
			return TSR_INTERNAL;
	}
	/* every worker runs: start accepting */
	for (int i = 0; i < n; i++)
		if (uclient_call(l->w[i].en, worker_listen, &l->w[i]) != TSR_OK)
			return TSR_INTERNAL;
	return TSR_OK;
}

/*
 * Stop accepting. Shutting the listening socket down refuses new
 * connections at once (and those not yet accepted), even while a worker is
 * busy; its descriptor stays valid, so a worker that still calls accept4()
 * on it gets an error rather than another socket. Each worker then stops
 * watching it on its own thread; it is closed once the workers have stopped.
 */
static void stop_accepting(struct listener *l)
{
	if (l->lfd < 0 || atomic_exchange(&l->closing, true))
		return;
	if (shutdown(l->lfd, SHUT_RD) != 0)
		log_warn("http_listen_shutdown_failed", "error=\"%s\"", strerror(errno));
	for (int k = 0; k < l->n_w; k++)
		if (l->w[k].en && uclient_call(l->w[k].en, worker_unlisten, &l->w[k]) != TSR_OK)
			log_debug("http_worker_gone", "worker=%d", k);
}

static tsr_rc start_listener(struct http_server *s, struct listener *l, const char *addr, bool admin)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (parse_listen(addr, &ss) != TSR_OK) {
		log_error("listen_failed", "addr=%s error=\"cannot resolve\"", addr);
		return TSR_INVALID;
	}
	l->srv = s;
	l->admin = admin;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	if (!admin) {
		errno = 0;
		tsr_rc rc = start_workers(s, l, &ss);
		if (rc != TSR_OK) {
			log_error("listen_failed", "addr=%s error=\"%s\"", addr, errno ? strerror(errno) : "cannot start the workers");
			return rc;
		}
		log_info("listening", "addr=%s admin=%s workers=%d", addr, s->b->cfg->server.admin_listen ? "no" : "yes",
			 l->n_w);
		return TSR_OK;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	l->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->b->cfg->server.workers,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
				MHD_OPTION_END);
	if (!l->d) {
		log_error("listen_failed", "addr=%s error=\"%s\"", addr, strerror(errno));
		return TSR_UNAVAILABLE;
	}
	log_info("listening", "addr=%s admin=only", addr);
	return TSR_OK;
}

tsr_rc http_start(struct broker *b, struct http_server **out)
{
	struct http_server *s = calloc(1, sizeof(*s));
	if (!s)
		return TSR_INTERNAL;
	s->b = b;
	pthread_mutex_init(&s->async_mu, NULL);
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_cond_init(&s->pool_cv, NULL);
	for (; s->n_pool < POOL_THREADS; s->n_pool++) {
		if (pthread_create(&s->pool[s->n_pool], NULL, pool_main, s) != 0) {
			log_error("http_pool_failed", "error=\"cannot start a blocking-pool thread\"");
			http_stop(s, 0);
			return TSR_INTERNAL;
		}
	}
	const struct route *rt;
	for (int i = 0; (rt = route_at(i)) != NULL; i++)
		metrics_set_route_name(i, rt->path);
	for (int i = 0; i < 2; i++)
		s->l[i].lfd = -1;
	s->n = 1; /* http_stop() cleans up what a failed start left */
	tsr_rc rc = start_listener(s, &s->l[0], b->cfg->server.listen, false);
	if (rc == TSR_OK && b->cfg->server.admin_listen) {
		s->n = 2;
		rc = start_listener(s, &s->l[1], b->cfg->server.admin_listen, true);
	}
	if (rc != TSR_OK) {
		http_stop(s, 0);
		return rc;
	}
	*out = s;
	atomic_store(&b->http, s);
	return TSR_OK;
}

tsr_rc http_metrics_render(struct http_server *s, struct buf *out)
{
	const struct listener *l = &s->l[0];
	tsr_rc rc = buf_puts(out, "# HELP tessera_http_worker_connections Open client connections per HTTP worker.\n"
				  "# TYPE tessera_http_worker_connections gauge\n");
	for (int i = 0; rc == TSR_OK && i < l->n_w; i++)
		rc = buf_printf(out, "tessera_http_worker_connections{worker=\"%d\"} %d\n", i, atomic_load(&l->w[i].conns));
	if (rc == TSR_OK)
		rc = buf_printf(out, "# HELP tessera_http_pool_requests Requests queued to or running on the blocking pool.\n"
				     "# TYPE tessera_http_pool_requests gauge\n"
				     "tessera_http_pool_requests %d\n",
				atomic_load(&s->pool_n));
	return rc;
}

void http_stop(struct http_server *s, int timeout_s)
{
	if (!s)
		return;
	atomic_store(&s->b->http, NULL); /* /metrics requests still in flight finish before s is freed (step 2) */
	/* 1. stop accepting: close the listening sockets */
	for (int i = 0; i < s->n; i++) {
		struct listener *l = &s->l[i];
		stop_accepting(l);
		if (!l->d)
			continue;
		MHD_socket fd = MHD_quiesce_daemon(l->d);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	/* 2. let requests already received finish */
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load(&s->inflight) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= timeout_s) {
			log_warn("shutdown_timeout", "inflight=%d", atomic_load(&s->inflight));
			break;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 20000000L }, NULL);
	}
	/*
	 * 3. deferred requests still waiting or streaming are cut: a suspended
	 * connection must be resumed before MHD_stop_daemon(), so mark each
	 * aborted, resume it, and give the workers a moment to close them
	 */
	pthread_mutex_lock(&s->async_mu);
	int n_async = 0;
	for (struct http_async *a = s->async_head; a; a = a->next, n_async++) {
		pthread_mutex_lock(&a->mu);
		a->abort = true;
		wake_locked(a->r);
		pthread_mutex_unlock(&a->mu);
	}
	pthread_mutex_unlock(&s->async_mu);
	for (int i = 0; n_async && i < 100; i++) {
		pthread_mutex_lock(&s->async_mu);
		bool left = s->async_head != NULL;
		pthread_mutex_unlock(&s->async_mu);
		if (!left)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 20000000L }, NULL);
	}
	/*
	 * 4. close every connection and join the workers. A worker closes its
	 * connections on its own thread (their on_close callbacks cancel
	 * transfers through its engine), then its engine stops, aborting what
	 * is left; if the thread is gone already, the daemon is stopped here.
	 */
	for (int i = 0; i < s->n; i++) {
		struct listener *l = &s->l[i];
		for (int k = 0; k < l->n_w; k++) {
			struct worker *w = &l->w[k];
			if (w->en && !worker_close_on_thread(w))
				uclient_stop(w->en); /* its thread is gone: nothing else touches w->d now */
			worker_close(w);
			uclient_free(w->en);
		}
		if (l->lfd >= 0)
			close(l->lfd); /* no worker runs now */
		l->lfd = -1;
		free(l->w);
		if (l->d)
			MHD_stop_daemon(l->d);
	}
	/* 5. the blocking pool: every connection is closed, so nothing is queued or running */
	pthread_mutex_lock(&s->pool_mu);
	s->pool_stop = true;
	pthread_cond_broadcast(&s->pool_cv);
	pthread_mutex_unlock(&s->pool_mu);
	for (int i = 0; i < s->n_pool; i++)
		pthread_join(s->pool[i], NULL);
	pthread_cond_destroy(&s->pool_cv);
	pthread_mutex_destroy(&s->pool_mu);
	pthread_mutex_destroy(&s->async_mu);
	free(s);
}
