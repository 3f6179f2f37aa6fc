/* Unit tests of lib/masterkey.c: envelopes open only with the right key and AAD. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
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

static void envelope_round_trips(void **state)
{
	struct masterkey *mk = key_of(1);
	struct sealed s;
	assert_int_equal(envelope_seal(mk, "sk-org-secret", 13, "upstream_key:openai:1", &s), TSR_OK);
	assert_int_equal(s.ciphertext_len, 13 + 16);
	assert_null(memmem(s.ciphertext, s.ciphertext_len, "sk-org", 6));
	uint8_t *pt;
	size_t n;
	assert_int_equal(envelope_open(mk, &s, "upstream_key:openai:1", &pt, &n), TSR_OK);
	assert_int_equal(n, 13);
	assert_string_equal((char *)pt, "sk-org-secret");
	envelope_free_plain(pt, n);
	sealed_free(&s);
	masterkey_free(mk);
}

static void wrong_aad_or_key_or_tamper_is_refused(void **state)
{
	struct masterkey *mk = key_of(1), *other = key_of(2);
	struct sealed s;
	uint8_t *pt;
	size_t n;
	assert_int_equal(envelope_seal(mk, "secret", 6, "row:a", &s), TSR_OK);
	assert_int_equal(envelope_open(mk, &s, "row:b", &pt, &n), TSR_DENIED);
	assert_int_equal(envelope_open(other, &s, "row:a", &pt, &n), TSR_DENIED);
	s.ciphertext[0] ^= 1;
	assert_int_equal(envelope_open(mk, &s, "row:a", &pt, &n), TSR_DENIED);
	sealed_free(&s);
	masterkey_free(mk);
	masterkey_free(other);
}

static void rewrap_moves_to_the_new_master_key(void **state)
{
	struct masterkey *old = key_of(1), *fresh = key_of(3);
	struct sealed s;
	uint8_t *pt;
	size_t n;
	assert_int_equal(envelope_seal(old, "k", 1, "x", &s), TSR_OK);
	assert_int_equal(envelope_rewrap(old, fresh, &s), TSR_OK);
	assert_string_equal(s.master_key_id, masterkey_id(fresh));
	assert_int_equal(envelope_open(old, &s, "x", &pt, &n), TSR_DENIED);
	assert_int_equal(envelope_open(fresh, &s, "x", &pt, &n), TSR_OK);
	envelope_free_plain(pt, n);
	sealed_free(&s);
	masterkey_free(old);
	masterkey_free(fresh);
}

static void key_file_must_be_private_and_well_formed(void **state)
{
	char path[] = "/tmp/tsr-mk-XXXXXX", err[256];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
	assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
	close(fd);
	struct masterkey *mk = NULL;
	chmod(path, 0644);
	assert_int_equal(masterkey_load(path, &mk, err, sizeof(err)), TSR_DENIED);
	assert_non_null(strstr(err, "chmod 600"));
	chmod(path, 0600);
	assert_int_equal(masterkey_load(path, &mk, err, sizeof(err)), TSR_OK);
	assert_int_equal(strlen(masterkey_id(mk)), 64);
	assert_null(strstr(masterkey_id(mk), "000102030405"));
	masterkey_free(mk);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "short\n", 6), 6);
	close(fd);
	assert_int_equal(masterkey_load(path, &mk, err, sizeof(err)), TSR_INVALID);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(envelope_round_trips),
		cmocka_unit_test(wrong_aad_or_key_or_tamper_is_refused),
		cmocka_unit_test(rewrap_moves_to_the_new_master_key),
		cmocka_unit_test(key_file_must_be_private_and_well_formed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
