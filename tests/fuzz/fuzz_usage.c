/*
 * libFuzzer target: gw_usage_from_json (broker/gateway_sse.c) reads token counts from an
 * upstream's answer by parsing only its "usage" objects. The counts feed the daily token budgets,
 * so the invariant is: for any bytes, and any counts already seen, each count it leaves is >= the
 * one the reference (the former reading: the whole text parsed with jansson, usage at the top,
 * under "message" or under "response") leaves. Over-counting is allowed; under-counting aborts.
 * The byte scan alone (without the full-parse fallback) must not under-count either when no key
 * can be spelt with \u escapes: that is the claim the scan rests on, and the fallback would
 * otherwise hide a scan that misses keys. gateway_sse.c is included to reach its static parts.
 * Input: 1 byte picks the starting counts, the rest is the answer.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_usage
 * Run:   tests/fuzz/fuzz_usage -dict=../tests/fuzz/usage.dict -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "broker/gateway_sse.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ref_take(json_t *u, const char *k1, const char *k2, int64_t *v)
{
	json_t *x = json_object_get(u, k1);
	if (!json_is_integer(x) && k2)
		x = json_object_get(u, k2);
	if (json_is_integer(x) && json_integer_value(x) > *v)
		*v = (int64_t)json_integer_value(x);
}

/* gw_usage_from_json as it was before the scan: the reference. */
static void ref_usage_from_json(const char *p, size_t n, int64_t *in, int64_t *out)
{
	if (!memmem(p, n, "\"usage\"", 7))
		return;
	json_t *j = json_loadb(p, n, 0, NULL);
	if (!j)
		return;
	json_t *u = json_object_get(j, "usage");
	if (!json_is_object(u))
		u = json_object_get(json_object_get(j, "message"), "usage");
	if (!json_is_object(u))
		u = json_object_get(json_object_get(j, "response"), "usage");
	if (json_is_object(u)) {
		ref_take(u, "prompt_tokens", "input_tokens", in);
		ref_take(u, "completion_tokens", "output_tokens", out);
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const int64_t starts[] = { -1, 0, 5, 1000, INT64_MIN, INT64_MAX };
	int64_t in0 = starts[data[0] % 6], out0 = starts[(data[0] / 6) % 6];
	data++;
	size--;
	int64_t in = in0, out = out0, rin = in0, rout = out0;
	gw_usage_from_json((const char *)data, size, &in, &out);
	ref_usage_from_json((const char *)data, size, &rin, &rout);
	if (in < rin || out < rout)
		abort(); /* an under-count: a budget bypass */
	if (in < in0 || out < out0)
		abort(); /* counts only ever go up */
	if (!has_usage_letter_escape((const char *)data, size)) {
		int64_t sin = in0, sout = out0;
		usage_scan((const char *)data, size, &sin, &sout);
		if (sin < rin || sout < rout)
			abort(); /* the scan missed a usage key the full parse reads */
	}
	return 0;
}
