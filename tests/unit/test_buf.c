/* Unit tests of lib/buf.c: every growable buffer has a ceiling. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/buf.h"

static void append_up_to_ceiling_then_refuse(void **state)
{
	struct buf b;
	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "0123456789", 10), TSR_OK);
	assert_int_equal(buf_append(&b, "x", 1), TSR_TOO_LARGE);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	buf_free(&b);
}

static void printf_respects_ceiling(void **state)
{
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "abc"), TSR_OK);
	assert_string_equal(b.data, "42-abc");
	assert_int_equal(buf_printf(&b, "%s", "toolong"), TSR_TOO_LARGE);
	assert_string_equal(b.data, "42-abc");
	buf_wipe(&b);
	assert_null(b.data);
}

static void grows_across_many_appends(void **state)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(buf_append(&b, "ab", 2), TSR_OK);
	assert_int_equal(b.len, 200000);
	char *s = buf_steal(&b);
	assert_non_null(s);
	assert_int_equal(strlen(s), 200000);
	free(s);
	buf_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(append_up_to_ceiling_then_refuse),
		cmocka_unit_test(printf_respects_ceiling),
		cmocka_unit_test(grows_across_many_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
