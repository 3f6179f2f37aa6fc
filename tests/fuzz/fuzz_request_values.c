/*
 * libFuzzer target: the small parsers that read values straight from HTTP
 * requests — the bearer token's shape check, hex signatures
 * (X-Tessera-Signature), and durations ("ttl" of POST /auth/v1/token).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	bool shaped = crypto_token_shape_ok(s);
	if (shaped && strlen(s) != TOKEN_LEN)
		abort();
	uint8_t out[SHA256_LEN];
	if (strlen(s) >= 2 * SHA256_LEN && crypto_unhex(s, out, SHA256_LEN) && strlen(s) != 2 * SHA256_LEN)
		abort(); /* unhex accepts exactly 2n digits */
	int64_t secs;
	if (config_parse_duration(s, &secs) == TSR_OK && secs < 0)
		abort();
	free(s);
	return 0;
}
