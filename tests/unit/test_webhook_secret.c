/*
 * test_webhook_secret.c — the pure rules of webhook-secret rotation
 * (broker/webhook_secret_set.c): which versions may sign a delivery at a
 * given instant (the active one always, a retiring one strictly before its
 * not_after), the copies handed to a hook are independent of the cache and
 * wiped on free, and what an operator may supply as a secret.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker/webhook_secret.h"

static char s_new[] = "new-secret-0123456789", s_old[] = "old-secret-0123456789", s_older[] = "older-secret-012345";

static void fill(struct webhook_secret_version v[3])
{
	memset(v, 0, 3 * sizeof(*v));
	v[0] = (struct webhook_secret_version){ 3, true, 0, s_new, sizeof(s_new) - 1 };
	v[1] = (struct webhook_secret_version){ 2, false, 10000, s_old, sizeof(s_old) - 1 };
	v[2] = (struct webhook_secret_version){ 1, false, 5000, s_older, sizeof(s_older) - 1 };
}

static void retiring_version_verifies_until_not_after_only(void **state)
{
	(void)state;
	struct webhook_secret_version v[3];
	fill(v);
	assert_true(webhook_secret_usable(&v[1], 9999));
	assert_false(webhook_secret_usable(&v[1], 10000));
	assert_false(webhook_secret_usable(&v[1], 10001));
}

static void active_version_verifies_at_any_time(void **state)
{
	(void)state;
	struct webhook_secret_version v[3];
	fill(v);
	assert_true(webhook_secret_usable(&v[0], 0));
	assert_true(webhook_secret_usable(&v[0], INT64_MAX));
}

static void pick_keeps_order_and_drops_expired_versions(void **state)
{
	(void)state;
	struct webhook_secret_version v[3];
	fill(v);
	struct webhook_secret_set set;
	assert_int_equal(webhook_secret_pick(v, 3, 4000, &set), TSR_OK);
	assert_int_equal(set.n, 3);
	assert_int_equal(set.v[0].version, 3);
	assert_int_equal(set.v[2].version, 1);
	webhook_secret_set_free(&set);

	assert_int_equal(webhook_secret_pick(v, 3, 7000, &set), TSR_OK);
	assert_int_equal(set.n, 2);
	assert_int_equal(set.v[0].version, 3);
	assert_int_equal(set.v[1].version, 2);
	webhook_secret_set_free(&set);

	assert_int_equal(webhook_secret_pick(v, 3, 10000, &set), TSR_OK);
	assert_int_equal(set.n, 1);
	assert_string_equal(set.v[0].secret, s_new);
	webhook_secret_set_free(&set);
}

static void picked_secrets_are_copies_and_free_empties_the_set(void **state)
{
	(void)state;
	struct webhook_secret_version v[3];
	fill(v);
	struct webhook_secret_set set;
	assert_int_equal(webhook_secret_pick(v, 3, 0, &set), TSR_OK);
	assert_ptr_not_equal(set.v[0].secret, s_new);
	assert_int_equal(set.v[0].len, strlen(s_new));
	assert_memory_equal(set.v[0].secret, s_new, set.v[0].len + 1);
	webhook_secret_set_free(&set);
	assert_int_equal(set.n, 0);
	assert_null(set.v[0].secret);
	webhook_secret_set_free(&set); /* twice: still fine */
	webhook_secret_set_free(NULL);
	assert_string_equal(s_new, "new-secret-0123456789"); /* the source is untouched */
}

static void pick_never_returns_more_than_the_cap(void **state)
{
	(void)state;
	struct webhook_secret_version v[WEBHOOK_SECRET_MAX + 3];
	for (int i = 0; i < WEBHOOK_SECRET_MAX + 3; i++)
		v[i] = (struct webhook_secret_version){ 20 - i, i == 0, 1000, s_old, sizeof(s_old) - 1 };
	struct webhook_secret_set set;
	assert_int_equal(webhook_secret_pick(v, WEBHOOK_SECRET_MAX + 3, 0, &set), TSR_OK);
	assert_int_equal(set.n, WEBHOOK_SECRET_MAX);
	webhook_secret_set_free(&set);
}

static void operator_secret_must_be_long_printable_and_without_spaces(void **state)
{
	(void)state;
	assert_true(webhook_secret_acceptable("0123456789abcdef", 16));
	assert_false(webhook_secret_acceptable("0123456789abcde", 15));
	assert_false(webhook_secret_acceptable("0123456789 abcdef", 17));
	assert_false(webhook_secret_acceptable("0123456789abcdef\n", 17));
	assert_false(webhook_secret_acceptable("0123456789\x01" "abcdef", 17));
	assert_false(webhook_secret_acceptable("0123456789\xc3\xa9" "abcdef", 18));
	char nul[20] = "0123456789abcdef";
	nul[8] = '\0';
	assert_false(webhook_secret_acceptable(nul, 16)); /* an embedded NUL */
	char big[WEBHOOK_SECRET_MAX_LEN + 2];
	memset(big, 'a', sizeof(big));
	big[WEBHOOK_SECRET_MAX_LEN] = '\0';
	assert_true(webhook_secret_acceptable(big, WEBHOOK_SECRET_MAX_LEN));
	big[WEBHOOK_SECRET_MAX_LEN] = 'a';
	big[WEBHOOK_SECRET_MAX_LEN + 1] = '\0';
	assert_false(webhook_secret_acceptable(big, WEBHOOK_SECRET_MAX_LEN + 1));
	assert_false(webhook_secret_acceptable(NULL, 0));
}

static void only_hr_and_github_are_webhook_names(void **state)
{
	(void)state;
	enum webhook_kind k;
	assert_true(webhook_kind_parse("hr", &k));
	assert_int_equal(k, WEBHOOK_HR);
	assert_true(webhook_kind_parse("github", &k));
	assert_int_equal(k, WEBHOOK_GITHUB);
	assert_string_equal(webhook_kind_name(WEBHOOK_GITHUB), "github");
	assert_false(webhook_kind_parse("HR", &k));
	assert_false(webhook_kind_parse("scim", &k));
	assert_false(webhook_kind_parse("", &k));
	assert_false(webhook_kind_parse(NULL, &k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retiring_version_verifies_until_not_after_only),
		cmocka_unit_test(active_version_verifies_at_any_time),
		cmocka_unit_test(pick_keeps_order_and_drops_expired_versions),
		cmocka_unit_test(picked_secrets_are_copies_and_free_empties_the_set),
		cmocka_unit_test(pick_never_returns_more_than_the_cap),
		cmocka_unit_test(operator_secret_must_be_long_printable_and_without_spaces),
		cmocka_unit_test(only_hr_and_github_are_webhook_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
