/*
 * gateway_metrics.c — the gateway's part of /metrics: requests by route,
 * status and upstream; latency split into tesserad's own overhead and the
 * upstream's time; scanner hits by rule; audit spool and transfers in flight.
 * Counters are atomics; the (route, status, upstream) series live in a small
 * table under a mutex held only for a short scan.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "gateway_int.h"
#include "auditlog.h"

static const char *const route_names[] = { "/openai/v1/chat/completions", "/openai/v1/responses",
					   "/openai/v1/embeddings", "/openai/v1/models", "/anthropic/v1/messages",
					   "/anthropic/v1/messages/count_tokens" };
#define N_ROUTES (int)(sizeof(route_names) / sizeof(route_names[0]))
#define MAX_SERIES 512

static const int64_t bucket_us[] = { 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000, 10000000 };
#define NB (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct series {
	int route, status;
	char upstream[64];
	uint64_t n;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct series table[MAX_SERIES];
static int n_series;
static atomic_uint_fast64_t over_b[NB + 1], up_b[NB + 1], over_sum, up_sum;
static atomic_uint_fast64_t hits[SCAN_MAX_RULES];

int gw_route_kind(const char *route)
{
	for (int i = 0; i < N_ROUTES; i++)
		if (strcmp(route, route_names[i]) == 0)
			return i;
	return 0;
}

static void observe(atomic_uint_fast64_t *b, atomic_uint_fast64_t *sum, int64_t us)
{
	size_t k = 0;
	while (k < NB && us > bucket_us[k])
		k++;
	atomic_fetch_add_explicit(&b[k], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(sum, (uint64_t)us, memory_order_relaxed);
}

void gw_metrics_request(int route_kind, int status, const char *upstream, int64_t overhead_us, int64_t upstream_us)
{
	const char *up = upstream ? upstream : "none";
	pthread_mutex_lock(&mu);
	int i;
	for (i = 0; i < n_series; i++)
		if (table[i].route == route_kind && table[i].status == status && strcmp(table[i].upstream, up) == 0)
			break;
	if (i == n_series && n_series < MAX_SERIES) {
		table[i].route = route_kind;
		table[i].status = status;
		snprintf(table[i].upstream, sizeof(table[i].upstream), "%s", up);
		n_series++;
	}
	if (i < n_series)
		table[i].n++;
	pthread_mutex_unlock(&mu);
	if (overhead_us >= 0)
		observe(over_b, &over_sum, overhead_us);
	if (upstream_us >= 0)
		observe(up_b, &up_sum, upstream_us);
}

void gw_metrics_hits(const struct scan_result *res)
{
	if (!res->total)
		return;
	for (int i = 0; i < SCAN_MAX_RULES; i++)
		if (res->hits[i])
			atomic_fetch_add_explicit(&hits[i], res->hits[i], memory_order_relaxed);
}

tsr_rc gateway_metrics_render(struct broker *b, struct buf *out)
{
	tsr_rc rc = TSR_OK;
#define P(...)                                                     \
	do {                                                       \
		if ((rc = buf_printf(out, __VA_ARGS__)) != TSR_OK) \
			return rc;                                 \
	} while (0)
	P("# HELP tessera_gateway_requests_total Gateway requests answered, by route, status and upstream.\n");
	P("# TYPE tessera_gateway_requests_total counter\n");
	pthread_mutex_lock(&mu);
	for (int i = 0; i < n_series; i++) {
		rc = buf_printf(out, "tessera_gateway_requests_total{route=\"%s\",status=\"%d\",upstream=\"%s\"} %llu\n",
				route_names[table[i].route], table[i].status, table[i].upstream,
				(unsigned long long)table[i].n);
		if (rc != TSR_OK)
			break;
	}
	pthread_mutex_unlock(&mu);
	if (rc != TSR_OK)
		return rc;
	const char *names[] = { "tessera_gateway_overhead_seconds", "tessera_gateway_upstream_seconds" };
	const char *help[] = { "Time tesserad itself spent on a forwarded request (checks, scan, relay, audit).",
			       "Time from handing a request to the upstream until its answer ended." };
	atomic_uint_fast64_t *bs[] = { over_b, up_b }, *sums[] = { &over_sum, &up_sum };
	for (int h = 0; h < 2; h++) {
		P("# HELP %s %s\n# TYPE %s histogram\n", names[h], help[h], names[h]);
		uint64_t cum = 0;
		for (size_t k = 0; k <= NB; k++) {
			cum += atomic_load_explicit(&bs[h][k], memory_order_relaxed);
			if (k < NB)
				P("%s_bucket{le=\"%g\"} %llu\n", names[h], (double)bucket_us[k] / 1e6, (unsigned long long)cum);
			else
				P("%s_bucket{le=\"+Inf\"} %llu\n", names[h], (unsigned long long)cum);
		}
		P("%s_sum %.6f\n%s_count %llu\n", names[h],
		  (double)atomic_load_explicit(sums[h], memory_order_relaxed) / 1e6, names[h], (unsigned long long)cum);
	}
	if (b->gateway) {
		struct gateway *gw = b->gateway;
		P("# HELP tessera_scanner_hits_total Data-governance scanner matches in outbound requests, by rule.\n");
		P("# TYPE tessera_scanner_hits_total counter\n");
		for (int i = 0; i < scanner_n_rules(gw->scanner); i++)
			P("tessera_scanner_hits_total{rule=\"%s\"} %llu\n", scanner_rule_name(gw->scanner, i),
			  (unsigned long long)atomic_load_explicit(&hits[i], memory_order_relaxed));
		P("# HELP tessera_gateway_upstream_transfers Upstream requests in flight.\n");
		P("# TYPE tessera_gateway_upstream_transfers gauge\n");
		P("tessera_gateway_upstream_transfers %d\n", uclient_active());
	}
	if (b->audit) {
		char why[256];
		P("# HELP tessera_audit_spool_bytes Audit records waiting in the local spool for Postgres.\n");
		P("# TYPE tessera_audit_spool_bytes gauge\n");
		P("tessera_audit_spool_bytes %lld\n", auditlog_spool_bytes(b->audit));
		P("# HELP tessera_audit_writable 1 when an audit record can be made durable now (Postgres or spool).\n");
		P("# TYPE tessera_audit_writable gauge\n");
		P("tessera_audit_writable %d\n", auditlog_ready(b->audit, why, sizeof(why)) ? 1 : 0);
	}
#undef P
	return rc;
}
