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

/* The larger of *v and u's k1 (else k2) when that is an integer; true when one was. */
static bool take(json_t *u, const char *k1, const char *k2, int64_t *v)
{
	json_t *x = json_object_get(u, k1);
	if (!json_is_integer(x) && k2)
		x = json_object_get(u, k2);
	if (!json_is_integer(x))
		return false;
	if (json_integer_value(x) > *v)
		*v = (int64_t)json_integer_value(x);
	return true;
}

static bool take_usage(json_t *u, int64_t *in, int64_t *out)
{
	bool a = take(u, "prompt_tokens", "input_tokens", in);
	bool b = take(u, "completion_tokens", "output_tokens", out);
	return a || b;
}

/* The whole text parsed: usage at the top level, or under message (anthropic message_start) or
 * response (responses API events). What gw_usage_from_json did before the scan; now its fallback. */
static void usage_full_parse(const char *p, size_t n, int64_t *in, int64_t *out)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	if (!j)
		return;
	json_t *u = json_object_get(j, "usage");
	if (!json_is_object(u))
		u = json_object_get(json_object_get(j, "message"), "usage");
	if (!json_is_object(u))
		u = json_object_get(json_object_get(j, "response"), "usage");
	if (json_is_object(u))
		take_usage(u, in, out);
	json_decref(j);
}

static bool json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A \u escape of a letter of "usage" (a, e, g, s, u): a key spelt "usag\u0065" is "usage" to a
 * JSON parser but invisible to the byte scan, so its mere presence also sends us to the full parse. */
static bool has_usage_letter_escape(const char *p, size_t n)
{
	const char *s = p, *end = p + n;
	while ((s = memmem(s, (size_t)(end - s), "\\u00", 4)) != NULL) {
		if (end - s >= 6 && ((s[4] == '6' && (s[5] == '1' || s[5] == '5' || s[5] == '7')) ||
				     (s[4] == '7' && (s[5] == '3' || s[5] == '5'))))
			return true;
		s += 4;
	}
	return false;
}

/*
 * The counts feed the daily token budgets: an under-count is a budget bypass, an over-count only
 * conservative. So rather than parse a whole answer for a few integers, the scan parses only the
 * objects of real "usage" keys and takes the largest counts of all of them (also of usage objects
 * the full parse would not look at); whenever it may have missed one, the full parse runs too.
 *
 * A real key: "usage" whose previous non-whitespace byte is '{' or ',' and which is followed by
 * ':' and '{' (whitespace allowed). In valid JSON such bytes are always a key: a '"' inside a
 * string is escaped, so its previous byte is '\', and after a closing '"' no letter may follow.
 * Hence in valid JSON every such object parses, and every "usage" key the full parse could read
 * is found — unless it is spelt with \u escapes (has_usage_letter_escape). So when the scan
 * finds no usage object (the "usage":null of every OpenAI stream chunk with include_usage) the
 * full parse would find none either, and is skipped. It runs when an object failed to parse
 * (the text is then not valid JSON, and the full parse fails as soon as the error, or the depth
 * limit, is reached).
 * tests/fuzz/fuzz_usage.c checks both claims against the former reading: the result never
 * under-counts, nor does the scan alone when there are no escapes.
 *
 * usage_scan: true when every usage object parsed.
 */
static bool usage_scan(const char *p, size_t n, int64_t *in, int64_t *out)
{
	size_t at = 0;
	const char *k;
	while (at < n && (k = memmem(p + at, n - at, "\"usage\"", 7)) != NULL) {
		size_t b = (size_t)(k - p), v = b + 7;
		at = v;
		while (b > 0 && json_ws(p[b - 1]))
			b--;
		if (b == 0 || (p[b - 1] != '{' && p[b - 1] != ','))
			continue; /* a string value, or not JSON */
		while (v < n && json_ws(p[v]))
			v++;
		if (v >= n || p[v] != ':')
			continue;
		v++;
		while (v < n && json_ws(p[v]))
			v++;
		if (v >= n || p[v] != '{')
			continue; /* "usage": null and the like */
		json_error_t err;
		json_t *u = json_loadb(p + v, n - v, JSON_DISABLE_EOF_CHECK, &err);
		if (!u)
			return false; /* invalid JSON (or no memory): let the full parse judge */
		/* Go on after the object: the spans parsed are disjoint, so nested "usage" objects
		 * cost one parse, not one per level (the full parse reads no usage inside a usage). */
		if (err.position > 0 && (size_t)err.position <= n - v)
			at = v + (size_t)err.position;
		if (json_is_object(u))
			take_usage(u, in, out);
		json_decref(u);
	}
	return true;
}

void gw_usage_from_json(const char *p, size_t n, int64_t *in, int64_t *out)
{
	if (!memmem(p, n, "\"usage\"", 7))
		return; /* most stream events carry none: not worth a parse */
	if (!usage_scan(p, n, in, out) || has_usage_letter_escape(p, n))
		usage_full_parse(p, n, in, out);
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
