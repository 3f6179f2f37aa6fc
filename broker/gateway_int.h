/*
 * gateway_int.h — what the gateway's files share: the per-request state
 * (struct gw_req) and the dialect helpers. Not for other modules.
 *
 * Threads and ownership of a forwarded request:
 *   HTTP worker   gateway.c: checks, scan, policy, builds the transfer, defers
 *                 the reply; later sends it / pulls the stream (gw_stream_read)
 *                 and finally on_close; the same thread, as the worker's
 *                 engine (g->en), runs gateway_relay.c's libcurl callbacks
 *                 (gw_on_write), the end of the transfer (gw_on_done) and a
 *                 client hang-up (gw_on_hangup);
 *   audit writer  gw_on_audited: the record is durable (or not): release the
 *                 reply or the stream's last bytes.
 * g->mu guards everything the threads share (r, the stream buffer and the
 * flags); it is taken before the HTTP layer's own lock (http_resume etc.
 * are called with it held) and before the engine's queue lock. References:
 * one for the HTTP side (dropped in on_close), one for the transfer
 * (uclient), one while the audit record is in flight.
 */
#ifndef TSR_GATEWAY_INT_H
#define TSR_GATEWAY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "gateway.h"
#include "http.h"
#include "policy.h"
#include "scanner.h"
#include "upstream.h"
#include "upstream_client.h"
#include "../lib/buf.h"

struct gateway {
	struct broker *b;
	struct scanner *scanner;
	struct policy *policy;
	struct upstreams *ups;
	struct masterkey *mk;
	atomic_int live; /* gw_req not yet released: gateway_stop waits for them */
	/* libcurl easy handles of finished transfers, reset and reused (gw_easy_get/put) */
	pthread_mutex_t easy_mu;
	CURL *easy[64];
	int n_easy;
};

/*
 * An easy handle for a new transfer: a finished one, reset, or a new one
 * (NULL when out of memory). Reuse spares each request libcurl's set-up
 * and tear-down of a handle (its allocations, its download buffer).
 */
CURL *gw_easy_get(struct gateway *gw);
/* Give back the handle of a transfer that is out of every multi handle (any thread). */
void gw_easy_put(struct gateway *gw, CURL *e);

enum gw_mode { GW_PENDING, GW_BUFFER, GW_STREAM };

struct gw_req {
	struct ujob job; /* first: the engine's handle on us */
	struct gateway *gw;
	struct uclient *en; /* the engine of the HTTP worker that took the request */
	pthread_mutex_t mu;
	struct http_req *r; /* NULL once the HTTP side closed */
	enum upstream_dialect dialect;
	struct upstream *up;
	/* request */
	struct buf body;    /* what goes upstream (possibly redacted) */
	struct curl_slist *hdrs;
	bool want_stream;
	char route[64], model[128], sha256_hex[65], classes[256], user_name[256], addr[64];
	char *rule_hits;    /* JSON, malloc'd */
	const char *decision;
	int64_t user_id, repo_id, cred_id, key_id;
	int64_t reserved;   /* budget tokens reserved */
	struct timespec t0; /* request arrival */
	int64_t t_fwd_ns, t_first_ns, t_done_ns;
	/* response */
	enum gw_mode mode;
	long status;
	char ctype[128];
	struct buf resp;    /* buffered body, or the stream's pending bytes */
	size_t rd;          /* stream: bytes of resp already handed to the client */
	int64_t total_in, total_out, line_end, withhold_from;
	struct buf line;    /* stream: the partial SSE line being assembled */
	bool paused;
	int64_t tokens_in, tokens_out;
	/* outcome */
	bool upstream_done, audit_done, audit_ok, client_gone;
	CURLcode code;
};

/* gateway_dialect.c */
/* Write an error in the route's dialect (status: HTTP status). */
tsr_rc gw_error(struct http_req *r, enum upstream_dialect d, int status, const char *fmt, ...) TSR_PRINTF(4, 5) TSR_WUR;
/* Take usage counts from a JSON response or one SSE data payload (keeps the largest seen). */
void gw_usage_from_json(const char *p, size_t n, int64_t *in, int64_t *out);
/* Feed stream bytes: assembles lines, notes usage, terminal events and the last line end. g->mu held. */
void gw_sse_feed(struct gw_req *g, const char *p, size_t n);

/* gateway_relay.c */
size_t gw_on_write(char *p, size_t size, size_t nmemb, void *arg);
void gw_on_done(struct ujob *job, CURLcode code);
void gw_on_hangup(struct ujob *job);
void gw_release(struct ujob *job);
void gw_on_close(void *arg, bool completed);
ssize_t gw_stream_read(void *arg, char *out, size_t max);
int64_t gw_now_ns(void);

/* gateway_metrics.c */
void gw_metrics_request(int route_kind, int status, const char *upstream, int64_t overhead_us, int64_t upstream_us);
void gw_metrics_hits(const struct scan_result *res);
int gw_route_kind(const char *route);

#endif
