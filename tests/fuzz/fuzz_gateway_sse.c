/*
 * libFuzzer target: what an upstream sends back is network input. The SSE
 * line assembler and usage reader (broker/gateway_sse.c) get the bytes in
 * chunks cut where the first byte says. Invariants: the last line end never
 * passes the bytes fed, and a terminal event is never placed after it.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_gateway_sse
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = data[0] % 64 + 1;
	data++;
	size--;
	struct gw_req *g = calloc(1, sizeof(*g));
	g->withhold_from = -1;
	g->tokens_in = g->tokens_out = -1;
	buf_init(&g->line, 4096);
	for (size_t at = 0; at < size; at += step) {
		size_t n = size - at < step ? size - at : step;
		gw_sse_feed(g, (const char *)data + at, n);
		g->total_in += (int64_t)n;
		if (g->line_end > g->total_in || (g->withhold_from >= 0 && g->withhold_from > g->line_end))
			abort();
	}
	int64_t in = -1, out = -1;
	gw_usage_from_json((const char *)data, size, &in, &out);
	buf_free(&g->line);
	free(g);
	return 0;
}
