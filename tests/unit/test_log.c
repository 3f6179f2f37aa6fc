/* Unit tests of lib/log.c: redaction is the last line of defence for secrets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/log.h"

static void redacts_tsr_tokens(void **state)
{
	char s[] = "auth token=tsr_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefg ok";
	log_redact(s);
	assert_null(strstr(s, "IjKlMnOp"));
	assert_non_null(strstr(s, "tsr_AbCd[REDACTED] ok"));
}

static void keeps_short_tsr_words(void **state)
{
	char s[] = "module tsr_log loaded";
	log_redact(s);
	assert_string_equal(s, "module tsr_log loaded");
}

static void redacts_conninfo_password(void **state)
{
	char s[] = "conn host=db password=s3cret user=x";
	log_redact(s);
	assert_null(strstr(s, "s3cret"));
	assert_non_null(strstr(s, "user=x"));
	char q[] = "password='a b\\'c' host=h";
	log_redact(q);
	assert_null(strstr(q, "a b"));
	assert_non_null(strstr(q, "host=h"));
}

static void redacts_uri_password(void **state)
{
	char s[] = "url=postgresql://tessera:hunter2@db.example:5432/tessera";
	log_redact(s);
	assert_null(strstr(s, "hunter2"));
	assert_non_null(strstr(s, "postgresql://tessera:"));
	assert_non_null(strstr(s, "@db.example:5432/tessera"));
}

static void leaves_plain_urls(void **state)
{
	char s[] = "url=http://127.0.0.1:8080/readyz";
	log_redact(s);
	assert_string_equal(s, "url=http://127.0.0.1:8080/readyz");
}

static void level_names_parse(void **state)
{
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("ERROR"), LOG_ERROR);
	assert_int_equal(log_level_parse("loud"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(redacts_tsr_tokens),   cmocka_unit_test(keeps_short_tsr_words),
		cmocka_unit_test(redacts_conninfo_password), cmocka_unit_test(redacts_uri_password),
		cmocka_unit_test(leaves_plain_urls),   cmocka_unit_test(level_names_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
