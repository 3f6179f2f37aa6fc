/*
 * gateway_sse.c — reading what upstreams send back: usage counts from JSON
 * answers and SSE events, line boundaries and the terminal event of a
 * stream (gateway_relay.c withholds that event until the audit record is
 * durable). Bytes from the network: tests/fuzz/fuzz_gateway_sse.c.
 */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "gateway_int.h"

static void take(json_t *u, const char *k1, const char *k2, int64_t *v)
{
	json_t *x = json_object_get(u, k1);
	if (!json_is_integer(x) && k2)
		x = json_object_get(u, k2);
	if (json_is_integer(x) && json_integer_value(x) > *v)
		*v = (int64_t)json_integer_value(x);
}

void gw_usage_from_json(const char *p, size_t n, int64_t *in, int64_t *out)
{
	if (!memmem(p, n, "\"usage\"", 7))
		return; /* most stream events carry none: not worth a parse */
	json_t *j = json_loadb(p, n, 0, NULL);
	if (!j)
		return;
	json_t *u = json_object_get(j, "usage");
	if (!json_is_object(u))
		u = json_object_get(json_object_get(j, "message"), "usage");   /* anthropic message_start */
	if (!json_is_object(u))
		u = json_object_get(json_object_get(j, "response"), "usage");  /* responses API events */
	if (json_is_object(u)) {
		take(u, "prompt_tokens", "input_tokens", in);
		take(u, "completion_tokens", "output_tokens", out);
	}
	json_decref(j);
}

/* A complete line (without its newline) at absolute offset at. */
static void sse_line(struct gw_req *g, const char *s, size_t n, int64_t at)
{
	if (n && s[n - 1] == '\r')
		n--;
	static const char *const terminal[] = { "data: [DONE]", "event: message_stop", "event: response.completed",
						"event: response.failed", "event: response.incomplete" };
	for (size_t i = 0; i < sizeof(terminal) / sizeof(terminal[0]); i++) {
		size_t tl = strlen(terminal[i]);
		if (n == tl && memcmp(s, terminal[i], tl) == 0 && g->withhold_from < 0)
			g->withhold_from = at;
	}
	if (n > 5 && memcmp(s, "data:", 5) == 0 && memmem(s, n, "\"usage\"", 7))
		gw_usage_from_json(s + 5, n - 5, &g->tokens_in, &g->tokens_out);
}

void gw_sse_feed(struct gw_req *g, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (p + i)) : n - i;
		int64_t abs_end = g->total_in + (int64_t)(i + len);
		if (nl) {
			int64_t line_start = abs_end - (int64_t)g->line.len - (int64_t)len;
			if (g->line.len) {
				/* the line began in an earlier chunk */
				if (buf_append(&g->line, p + i, len) == TSR_OK)
					sse_line(g, g->line.data, g->line.len, line_start);
				g->line.len = 0;
			} else {
				sse_line(g, p + i, len, line_start);
			}
			g->line_end = abs_end + 1;
			i += len + 1;
		} else {
			if (buf_append(&g->line, p + i, len) != TSR_OK)
				g->line.len = 0; /* an over-long line is relayed, not parsed */
			i = n;
		}
	}
}
