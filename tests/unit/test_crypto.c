/* Unit tests of lib/crypto.c: token shape, hashing, constant-time compare. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/crypto.h"

static void tokens_are_prefixed_long_and_distinct(void **state)
{
	char a[TOKEN_LEN + 1], b[TOKEN_LEN + 1];
	assert_int_equal(crypto_token_new(a), TSR_OK);
	assert_int_equal(crypto_token_new(b), TSR_OK);
	assert_int_equal(strlen(a), 47);
	assert_memory_equal(a, "tsr_", 4);
	assert_true(crypto_token_shape_ok(a));
	assert_string_not_equal(a, b);
}

static void shape_check_rejects_junk(void **state)
{
	assert_false(crypto_token_shape_ok("tsr_bogus"));
	assert_false(crypto_token_shape_ok("Bearer xyz"));
	assert_false(crypto_token_shape_ok("tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!"));
	assert_true(crypto_token_shape_ok("tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
}

static void sha256_matches_known_vector(void **state)
{
	uint8_t h[SHA256_LEN];
	char hex[65];
	crypto_sha256("abc", 3, h);
	crypto_hex(h, sizeof(h), hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void b64url_matches_rfc4648(void **state)
{
	char out[16];
	crypto_b64url((const uint8_t *)"foob", 4, out);
	assert_string_equal(out, "Zm9vYg");
	crypto_b64url((const uint8_t *)"\xfb\xff", 2, out);
	assert_string_equal(out, "-_8");
}

static void equal_is_exact(void **state)
{
	assert_true(crypto_equal("abcd", "abcd", 4));
	assert_false(crypto_equal("abcd", "abce", 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tokens_are_prefixed_long_and_distinct), cmocka_unit_test(shape_check_rejects_junk),
		cmocka_unit_test(sha256_matches_known_vector), cmocka_unit_test(b64url_matches_rfc4648),
		cmocka_unit_test(equal_is_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
