/*
 * libFuzzer target: log_redact() runs over every log line, which carries
 * request paths and headers from the network.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_redact
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	size_t before = strlen(s);
	log_redact(s);
	if (strlen(s) > before)
		abort(); /* redaction never lengthens a line */
	free(s);
	return 0;
}
