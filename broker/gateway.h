/*
 * gateway.h — the LLM gateway: the one governed path from AI tools to the
 * approved upstreams.
 *
 * Routes (OpenAI and Anthropic dialects, token from Authorization: Bearer or
 * x-api-key, access tokens only): /openai/v1/chat/completions, /responses,
 * /embeddings, /models; /anthropic/v1/messages, /messages/count_tokens.
 * Every request is checked (token, scope, audit log writable), scanned
 * (scanner.h), routed by policy (policy.h) to an upstream serving its model,
 * forwarded with the organisation's key instead of the caller's token, and
 * relayed back — SSE streams chunk by chunk with backpressure. Each request
 * leaves exactly one audit record (gateway.request); a response, or a
 * stream's final event, is released only once that record is durable.
 * Errors are written in the route's dialect so real clients show them.
 */
#ifndef TSR_GATEWAY_H
#define TSR_GATEWAY_H

#include "broker.h"
#include "http.h"
#include "../lib/buf.h"
#include "../lib/masterkey.h"

struct gateway;

/*
 * Build the scanner and policy from b->cfg, import the upstreams (upstream.h)
 * and start the upstream client thread. mk may be NULL when no upstream has
 * a key. Config errors are printed on stderr. Caller stops with gateway_stop().
 */
tsr_rc gateway_start(struct broker *b, struct masterkey *mk, struct gateway **out) TSR_WUR;
/* Abort transfers in flight and free. gateway_stop(NULL) is a no-op. Call after http_stop(). */
void gateway_stop(struct gateway *gw);

/* Gateway metrics in Prometheus text (requests by route/status/upstream, latencies, scanner hits, spool). */
tsr_rc gateway_metrics_render(struct broker *b, struct buf *out) TSR_WUR;

extern const struct route_table gateway_routes;

#endif
