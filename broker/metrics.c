/*
 * metrics.c — see metrics.h.
 *
 * Counters are a fixed matrix [route][status 100..599] of relaxed atomics:
 * no allocation and no lock on the request path. Latency histograms use the
 * Prometheus cumulative-bucket convention at render time.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "../db/db.h"
#include "tokencache.h"
#include "auditlog.h"
#include "gateway.h"
#include "rotation.h"
#include "webhook_secret.h"

#define NSTATUS 500
static const uint64_t bucket_us[] = { 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
				      500000, 1000000, 2500000, 5000000, 10000000 };
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

/* index METRICS_MAX_ROUTES is "unmatched" */
static atomic_uint_fast64_t http_count[METRICS_MAX_ROUTES + 1][NSTATUS];
static atomic_uint_fast64_t http_bucket[METRICS_MAX_ROUTES + 1][NBUCKETS + 1];
static atomic_uint_fast64_t http_sum_us[METRICS_MAX_ROUTES + 1];
static atomic_uint_fast64_t auth_failures;
static const char *route_names[METRICS_MAX_ROUTES + 1];

void metrics_set_route_name(int route, const char *name)
{
	if (route >= 0 && route < METRICS_MAX_ROUTES)
		route_names[route] = name;
}

void metrics_http(int route, int status, uint64_t latency_us)
{
	int r = (route >= 0 && route < METRICS_MAX_ROUTES) ? route : METRICS_MAX_ROUTES;
	int s = (status >= 100 && status < 600) ? status - 100 : 500 - 100;
	atomic_fetch_add_explicit(&http_count[r][s], 1, memory_order_relaxed);
	size_t b = 0;
	while (b < NBUCKETS && latency_us > bucket_us[b])
		b++;
	atomic_fetch_add_explicit(&http_bucket[r][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&http_sum_us[r], latency_us, memory_order_relaxed);
}

void metrics_auth_failure(void)
{
	atomic_fetch_add_explicit(&auth_failures, 1, memory_order_relaxed);
}

static const char *rname(int r)
{
	return r == METRICS_MAX_ROUTES || !route_names[r] ? "unmatched" : route_names[r];
}

tsr_rc metrics_render(struct broker *b, struct buf *out)
{
	tsr_rc rc = TSR_OK;
#define P(...)                                                 \
	do {                                                   \
		if ((rc = buf_printf(out, __VA_ARGS__)) != TSR_OK) \
			return rc;                             \
	} while (0)
	P("# HELP tessera_build_info Version of this tesserad.\n# TYPE tessera_build_info gauge\n");
	P("tessera_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	P("# HELP tessera_start_time_seconds Unix time tesserad started.\n# TYPE tessera_start_time_seconds gauge\n");
	P("tessera_start_time_seconds %lld\n", (long long)b->started_at);
	P("# HELP tessera_http_requests_total HTTP requests answered, by route and status.\n");
	P("# TYPE tessera_http_requests_total counter\n");
	for (int r = 0; r <= METRICS_MAX_ROUTES; r++) {
		if (r < METRICS_MAX_ROUTES && !route_names[r])
			continue;
		for (int s = 0; s < NSTATUS; s++) {
			uint64_t v = atomic_load_explicit(&http_count[r][s], memory_order_relaxed);
			if (v)
				P("tessera_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", rname(r), s + 100,
				  (unsigned long long)v);
		}
	}
	P("# HELP tessera_http_request_duration_seconds Time from request to response, by route.\n");
	P("# TYPE tessera_http_request_duration_seconds histogram\n");
	for (int r = 0; r <= METRICS_MAX_ROUTES; r++) {
		if (r < METRICS_MAX_ROUTES && !route_names[r])
			continue;
		uint64_t cum = 0;
		for (size_t k = 0; k <= NBUCKETS; k++) {
			cum += atomic_load_explicit(&http_bucket[r][k], memory_order_relaxed);
			if (k < NBUCKETS)
				P("tessera_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", rname(r),
				  (double)bucket_us[k] / 1e6, (unsigned long long)cum);
			else
				P("tessera_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
				  rname(r), (unsigned long long)cum);
		}
		P("tessera_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", rname(r),
		  (double)atomic_load_explicit(&http_sum_us[r], memory_order_relaxed) / 1e6);
		P("tessera_http_request_duration_seconds_count{route=\"%s\"} %llu\n", rname(r),
		  (unsigned long long)cum);
	}
	P("# HELP tessera_auth_failures_total Requests refused for a missing or bad credential.\n");
	P("# TYPE tessera_auth_failures_total counter\n");
	P("tessera_auth_failures_total %llu\n",
	  (unsigned long long)atomic_load_explicit(&auth_failures, memory_order_relaxed));
	P("# HELP tessera_db_pool_connections Database connections by state.\n");
	P("# TYPE tessera_db_pool_connections gauge\n");
	if (b->tokens) {
		P("# HELP tessera_token_cache_entries Credentials cached by the token check.\n");
		P("# TYPE tessera_token_cache_entries gauge\n");
		P("tessera_token_cache_entries %d\n", tokencache_size(b->tokens));
		P("# HELP tessera_token_cache_lookups_total Token checks, by cache result.\n");
		P("# TYPE tessera_token_cache_lookups_total counter\n");
		P("tessera_token_cache_lookups_total{result=\"hit\"} %llu\n", (unsigned long long)tokencache_hits(b->tokens));
		P("tessera_token_cache_lookups_total{result=\"miss\"} %llu\n",
		  (unsigned long long)tokencache_misses(b->tokens));
		P("# HELP tessera_token_cache_refreshes_total Cached credentials re-read in the background before going stale.\n");
		P("# TYPE tessera_token_cache_refreshes_total counter\n");
		P("tessera_token_cache_refreshes_total %llu\n", (unsigned long long)tokencache_refreshes(b->tokens));
		P("# HELP tessera_notify_backend_pid Backend pid of the LISTEN connection (0: disconnected).\n");
		P("# TYPE tessera_notify_backend_pid gauge\n");
		P("tessera_notify_backend_pid %d\n", tokencache_listener_pid(b->tokens));
	}
	if (b->audit) {
		P("# HELP tessera_audit_queue_depth Audit events waiting for their batch commit.\n");
		P("# TYPE tessera_audit_queue_depth gauge\n");
		P("tessera_audit_queue_depth %d\n", auditlog_depth(b->audit));
	}
	int used = db_pool_in_use(b->pool);
	P("tessera_db_pool_connections{state=\"in_use\"} %d\n", used);
	P("tessera_db_pool_connections{state=\"size\"} %d\n", db_pool_size(b->pool));
	struct http_server *http = atomic_load(&b->http);
	if (http && (rc = http_metrics_render(http, out)) != TSR_OK)
		return rc;
	if ((rc = gateway_metrics_render(b, out)) != TSR_OK)
		return rc;
	if ((rc = rotation_metrics_render(b, out)) != TSR_OK)
		return rc;
	if ((rc = webhook_secret_push_metrics(b, out)) != TSR_OK)
		return rc;
#undef P
	return rc;
}
