/*
 * libFuzzer target: gh_link_next() parses the Link header of every GitHub
 * API page (sync/github.c); a wrong "next" silently truncates a listing,
 * so besides memory safety it checks the result's invariants.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_github_link
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/github.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = malloc(size + 1);
	if (!h)
		return 0;
	memcpy(h, data, size);
	h[size] = '\0';
	char out[256];
	memset(out, 'x', sizeof(out));
	tsr_rc rc = gh_link_next(h, out, sizeof(out));
	if (rc == TSR_OK) {
		size_t n = strnlen(out, sizeof(out));
		/* a URL that fits, copied from inside the header, never empty */
		if (n == 0 || n >= sizeof(out) || !strstr(h, out))
			abort();
	} else if (rc != TSR_NOT_FOUND && rc != TSR_INVALID && rc != TSR_TOO_LARGE) {
		abort();
	}
	/* a tiny buffer must never be overrun */
	char small[2];
	rc = gh_link_next(h, small, sizeof(small));
	if (rc == TSR_OK && strlen(small) >= sizeof(small))
		abort();
	free(h);
	return 0;
}
