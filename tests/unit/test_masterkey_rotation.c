/*
 * Unit tests of master-key rotation in lib/masterkey.c: a key with an
 * adopted successor seals under the successor and opens envelopes of either
 * key; a previous key opens old rows; re-wrapped envelopes open with the new
 * key alone; an unknown key opens nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/masterkey.h"

static struct masterkey *key_of(uint8_t fill)
{
	uint8_t k[32];
	memset(k, fill, sizeof(k));
	struct masterkey *mk;
	assert_int_equal(masterkey_from_bytes(k, &mk), TSR_OK);
	return mk;
}

static bool opens(const struct masterkey *mk, const struct sealed *s)
{
	uint8_t *pt = NULL;
	size_t n = 0;
	if (envelope_open(mk, s, "row:1", &pt, &n) != TSR_OK)
		return false;
	bool same = n == 6 && memcmp(pt, "secret", 6) == 0;
	envelope_free_plain(pt, n);
	return same;
}

static void adopted_key_seals_new_envelopes_and_both_keys_open(void **state)
{
	(void)state;
	struct masterkey *old = key_of(1), *plain_new = key_of(2);
	struct sealed a, b;
	assert_int_equal(envelope_seal(old, "secret", 6, "row:1", &a), TSR_OK);
	assert_int_equal(masterkey_adopt(old, key_of(2)), TSR_OK);
	assert_string_equal(masterkey_id(masterkey_current(old)), masterkey_id(plain_new));
	assert_int_equal(envelope_seal(old, "secret", 6, "row:1", &b), TSR_OK);
	assert_string_equal(b.master_key_id, masterkey_id(plain_new));
	assert_true(opens(old, &a));
	assert_true(opens(old, &b));
	assert_true(opens(plain_new, &b));
	assert_false(opens(plain_new, &a));
	sealed_free(&a);
	sealed_free(&b);
	masterkey_free(old);
	masterkey_free(plain_new);
}

static void rewrapped_envelope_opens_with_the_new_key_alone(void **state)
{
	(void)state;
	struct masterkey *old = key_of(1), *plain_new = key_of(2);
	struct sealed a;
	assert_int_equal(envelope_seal(old, "secret", 6, "row:1", &a), TSR_OK);
	assert_int_equal(masterkey_adopt(old, key_of(2)), TSR_OK);
	assert_int_equal(envelope_rewrap(old, old, &a), TSR_OK);
	assert_string_equal(a.master_key_id, masterkey_id(plain_new));
	assert_true(opens(plain_new, &a));
	sealed_free(&a);
	masterkey_free(old);
	masterkey_free(plain_new);
}

static void previous_key_opens_rows_not_yet_rewrapped(void **state)
{
	(void)state;
	struct masterkey *old = key_of(1), *cur = key_of(2), *stranger = key_of(3);
	struct sealed a;
	assert_int_equal(envelope_seal(old, "secret", 6, "row:1", &a), TSR_OK);
	assert_false(opens(cur, &a));
	masterkey_set_previous(cur, old); /* cur owns old now */
	assert_true(opens(cur, &a));
	assert_false(opens(stranger, &a));
	assert_int_equal(masterkey_adopt(cur, key_of(1)), TSR_INVALID); /* back to the previous key */
	assert_int_equal(masterkey_adopt(cur, key_of(2)), TSR_OK);     /* already current */
	assert_int_equal(masterkey_adopt(cur, key_of(4)), TSR_OK);
	assert_int_equal(masterkey_adopt(cur, key_of(5)), TSR_CONFLICT);
	sealed_free(&a);
	masterkey_free(cur);
	masterkey_free(stranger);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(adopted_key_seals_new_envelopes_and_both_keys_open),
		cmocka_unit_test(rewrapped_envelope_opens_with_the_new_key_alone),
		cmocka_unit_test(previous_key_opens_rows_not_yet_rewrapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
