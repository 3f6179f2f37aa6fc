/*
 * gateway_relay.c — the second half of a forwarded request: relaying the
 * upstream's answer and closing the request with its audit record.
 *
 * Buffered answers (JSON, errors) are held until the audit record is
 * durable, then sent whole. Streams (SSE) are handed to the client as they
 * arrive, a complete line at a time, except the stream's terminal event
 * ("data: [DONE]", "event: message_stop", "event: response.completed"):
 * that and anything after it waits for the audit record, so a client never
 * sees a finished stream the audit log does not know about. If the record
 * cannot be written the stream is cut instead (the client sees an error).
 * Backpressure: at most STREAM_MAX bytes wait for the client; beyond that
 * the upstream transfer is paused until the client has read half of it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "gateway_int.h"
#include "auditlog.h"
#include "gateway_detail.h"
#include "../lib/log.h"

#define STREAM_MAX (256u << 10)
#define RESP_MAX (64u << 20)

int64_t gw_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* The first bytes of the answer: decide buffered or streamed (engine thread, g->mu held). */
static void headers_done(struct gw_req *g)
{
	curl_easy_getinfo(g->job.easy, CURLINFO_RESPONSE_CODE, &g->status);
	const char *ct = NULL;
	curl_easy_getinfo(g->job.easy, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(g->ctype, sizeof(g->ctype), "%s", ct ? ct : "application/json");
	g->t_first_ns = gw_now_ns();
	bool sse = strncmp(g->ctype, "text/event-stream", 17) == 0;
	if (g->want_stream && g->status == 200 && sse) {
		g->mode = GW_STREAM;
		if (g->r) {
			uclient_unwatch(g->en, &g->job); /* MHD owns the connection again from here */
			http_stream_start(g->r, 200, "text/event-stream", gw_stream_read, g);
		}
	} else {
		g->mode = GW_BUFFER;
	}
}

size_t gw_on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct gw_req *g = arg;
	size_t n = size * nmemb;
	g->job.last_ns = uclient_now_ns();
	pthread_mutex_lock(&g->mu);
	if (g->mode == GW_PENDING)
		headers_done(g);
	if (g->mode == GW_STREAM) {
		if (g->resp.len - g->rd + n > STREAM_MAX && g->resp.len > g->rd) {
			g->paused = true;
			g->job.paused = true;
			pthread_mutex_unlock(&g->mu);
			return CURL_WRITEFUNC_PAUSE;
		}
		if (g->rd == g->resp.len) {
			g->resp.len = g->rd = 0;
		} else if (g->rd > g->resp.len / 2) {
			memmove(g->resp.data, g->resp.data + g->rd, g->resp.len - g->rd);
			g->resp.len -= g->rd;
			g->rd = 0;
		}
		if (buf_append(&g->resp, p, n) != TSR_OK) {
			pthread_mutex_unlock(&g->mu);
			return 0; /* CURLE_WRITE_ERROR: the transfer fails */
		}
		gw_sse_feed(g, p, n);
		g->total_in += (int64_t)n;
		if (g->r && g->line_end > g->total_out)
			http_stream_wake(g->r);
		pthread_mutex_unlock(&g->mu);
		return n;
	}
	tsr_rc rc = buf_append(&g->resp, p, n);
	g->total_in += (int64_t)n;
	pthread_mutex_unlock(&g->mu);
	return rc == TSR_OK ? n : 0;
}

ssize_t gw_stream_read(void *arg, char *out, size_t max)
{
	struct gw_req *g = arg;
	pthread_mutex_lock(&g->mu);
	int64_t end = g->total_in;
	if (!g->audit_ok) {
		end = g->line_end;
		if (g->withhold_from >= 0 && g->withhold_from < end)
			end = g->withhold_from;
	}
	ssize_t ret = 0;
	if (end > g->total_out) {
		size_t n = (size_t)(end - g->total_out);
		if (n > max)
			n = max;
		memcpy(out, g->resp.data + g->rd, n);
		g->rd += n;
		g->total_out += (int64_t)n;
		ret = (ssize_t)n;
		if (g->paused && g->resp.len - g->rd < STREAM_MAX / 2) {
			g->paused = false;
			uclient_unpause(g->en, &g->job);
		}
	} else if (g->audit_done && !g->audit_ok) {
		ret = HTTP_STREAM_ERROR;
	} else if (g->audit_done && g->upstream_done) {
		ret = g->code == CURLE_OK && g->total_out == g->total_in ? HTTP_STREAM_END : HTTP_STREAM_ERROR;
	}
	pthread_mutex_unlock(&g->mu);
	return ret;
}

/* The reply of a buffered request once its record is durable (g->mu held, g->r set). */
static void reply_buffered(struct gw_req *g)
{
	struct http_req *r = g->r;
	tsr_rc rc = TSR_OK;
	if (!g->audit_ok) {
		rc = gw_error(r, g->dialect, 503,
			      "the response was withheld: its audit record could not be written (tessera fails closed)");
	} else if (g->code == CURLE_ABORTED_BY_CALLBACK) {
		rc = gw_error(r, g->dialect, 503, "the request was cancelled (tesserad is shutting down)");
	} else if (g->code == CURLE_OPERATION_TIMEDOUT) {
		rc = gw_error(r, g->dialect, 504, "upstream '%s' timed out", g->up->name);
	} else if (g->code != CURLE_OK) {
		rc = gw_error(r, g->dialect, 502, "upstream '%s' failed: %s", g->up->name, curl_easy_strerror(g->code));
	} else if (g->status == 401 || g->status == 403) {
		rc = gw_error(r, g->dialect, 502, "upstream '%s' refused tessera's organisation key (HTTP %ld)",
			      g->up->name, g->status);
	} else {
		buf_free(&r->out);
		r->out = g->resp;
		buf_init(&g->resp, 0);
		r->status = (int)g->status;
		r->content_type = g->ctype;
	}
	if (rc != TSR_OK && r->status == 0)
		r->status = 500;
	http_resume(r);
}

static void on_audited(void *arg, tsr_rc rc)
{
	struct gw_req *g = arg;
	pthread_mutex_lock(&g->mu);
	g->audit_done = true;
	g->audit_ok = rc == TSR_OK;
	if (!g->audit_ok)
		log_error("gateway_audit_failed", "route=%s upstream=%s withheld=true", g->route, g->up->name);
	if (g->r) {
		if (g->mode == GW_STREAM)
			http_stream_wake(g->r);
		else
			reply_buffered(g);
	}
	pthread_mutex_unlock(&g->mu);
	ujob_unref(&g->job);
}

/* The HTTP status the audit record carries for this request. */
static int final_status(const struct gw_req *g)
{
	if (g->client_gone || g->code == CURLE_ABORTED_BY_CALLBACK)
		return g->mode == GW_STREAM ? 200 : 499;
	if (g->code == CURLE_OPERATION_TIMEDOUT)
		return 504;
	if (g->code != CURLE_OK && g->mode != GW_STREAM)
		return 502;
	if (g->status == 401 || g->status == 403)
		return 502;
	return (int)g->status;
}

void gw_on_done(struct ujob *job, CURLcode code)
{
	struct gw_req *g = (struct gw_req *)job;
	pthread_mutex_lock(&g->mu);
	if (g->mode == GW_PENDING && code == CURLE_OK)
		headers_done(g);
	if (g->mode == GW_PENDING)
		g->mode = GW_BUFFER;
	g->upstream_done = true;
	g->code = code;
	g->t_done_ns = gw_now_ns();
	if (g->mode == GW_BUFFER && code == CURLE_OK && g->resp.len)
		gw_usage_from_json(g->resp.data, g->resp.len, &g->tokens_in, &g->tokens_out);
	int status = final_status(g);
	int64_t total_us = (g->t_done_ns - ts_ns(&g->t0)) / 1000;
	int64_t upstream_us = (g->t_done_ns - g->t_fwd_ns) / 1000;
	int64_t ttfb_us = g->t_first_ns ? (g->t_first_ns - g->t_fwd_ns) / 1000 : -1;
	int64_t resp_bytes = g->total_in;
	bool stream = g->mode == GW_STREAM, client_gone = g->client_gone;
	pthread_mutex_unlock(&g->mu);

	/* detail in canonical form, so the audit writer and shipper need not parse and re-dump it */
	struct gateway_detail gd = { .classifications = g->classes, .client_gone = client_gone,
				     .overhead_us = total_us - upstream_us, .stream = stream, .ttfb_us = ttfb_us,
				     .upstream_error = code != CURLE_OK ? curl_easy_strerror(code) : NULL,
				     .upstream_us = upstream_us };
	struct buf d;
	buf_init(&d, 4096);
	const char *detail = gateway_detail_json(&d, &gd) == TSR_OK ? d.data : NULL;

	struct audit_event ev;
	tsr_rc rc = audit_event_init(&ev, g->user_name, "gateway.request", status < 400 ? "success" : "failure");
	if (rc == TSR_OK) {
		ev.actor_addr = g->addr;
		ev.target = g->route;
		ev.user_id = g->user_id;
		ev.repo_id = g->repo_id;
		ev.credential_id = g->cred_id;
		ev.route = g->route;
		ev.model = g->model;
		ev.upstream = g->up->name;
		ev.upstream_key_id = g->key_id;
		ev.decision = g->decision;
		ev.rule_hits = g->rule_hits;
		ev.req_bytes = (int64_t)g->body.len;
		ev.resp_bytes = resp_bytes;
		ev.req_sha256_hex = g->sha256_hex;
		ev.status = status;
		ev.latency_us = total_us;
		ev.tokens_in = g->tokens_in;
		ev.tokens_out = g->tokens_out;
		ev.detail = detail;
		ev.detail_canonical = true;
		ujob_ref(&g->job);
		rc = auditlog_submit(g->gw->b->audit, &ev, on_audited, g);
		if (rc != TSR_OK)
			ujob_unref(&g->job);
	}
	buf_free(&d);
	gw_metrics_request(gw_route_kind(g->route), status, g->up->name, total_us - upstream_us, upstream_us);
	if (rc != TSR_OK) {
		log_error("gateway_audit_unqueued", "route=%s error=%s", g->route, status_name(rc));
		ujob_ref(&g->job);
		on_audited(g, TSR_UNAVAILABLE);
	}
}

void gw_on_hangup(struct ujob *job)
{
	struct gw_req *g = (struct gw_req *)job;
	pthread_mutex_lock(&g->mu);
	g->client_gone = true;
	pthread_mutex_unlock(&g->mu);
	uclient_cancel(g->en, job);
}

void gw_on_close(void *arg, bool completed)
{
	struct gw_req *g = arg;
	pthread_mutex_lock(&g->mu);
	g->r = NULL;
	bool running = !g->upstream_done;
	if (!completed)
		g->client_gone = true;
	pthread_mutex_unlock(&g->mu);
	if (running)
		uclient_cancel(g->en, &g->job); /* the client went away mid-stream */
	ujob_unref(&g->job);
}

void gw_release(struct ujob *job)
{
	struct gw_req *g = (struct gw_req *)job;
	if (g->reserved)
		policy_budget_settle(g->gw->policy, g->user_id, g->reserved,
				     g->tokens_in >= 0 || g->tokens_out >= 0
					     ? (g->tokens_in > 0 ? g->tokens_in : 0) + (g->tokens_out > 0 ? g->tokens_out : 0)
					     : g->reserved,
				     (int64_t)g->body.len);
	if (job->easy)
		gw_easy_put(g->gw, job->easy);
	for (struct curl_slist *h = g->hdrs; h; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data)); /* one of them holds the organisation key */
	curl_slist_free_all(g->hdrs);
	buf_wipe(&g->body);
	buf_free(&g->resp);
	buf_free(&g->line);
	free(g->rule_hits);
	pthread_mutex_destroy(&g->mu);
	struct gateway *gw = g->gw;
	free(g);
	atomic_fetch_sub(&gw->live, 1);
}
