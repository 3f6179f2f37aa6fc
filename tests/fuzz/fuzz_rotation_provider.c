/*
 * libFuzzer target: what a provider's admin API answers is network input.
 * The OpenAI Admin API parsers (broker/rotation_provider.c) get arbitrary
 * bytes. Invariants: a parsed key and id are non-empty printable ASCII
 * without spaces, NUL-terminated inside their buffers; a refused answer
 * leaves no key bytes behind.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_rotation_provider
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/rotation_provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n == 0 || n >= max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct provider_key *k = malloc(sizeof(*k));
	if (!k)
		return 0;
	memset(k, 0xAA, sizeof(*k));
	if (openai_admin_parse_create((const char *)data, size, k) == TSR_OK) {
		check_printable(k->key, sizeof(k->key));
		check_printable(k->id, sizeof(k->id));
	} else {
		for (size_t i = 0; i < sizeof(k->key); i++)
			if (k->key[i])
				abort();
	}
	free(k);
	tsr_rc ignored = openai_admin_parse_delete((const char *)data, size, "svc_acct_abc");
	(void)ignored;
	return 0;
}
