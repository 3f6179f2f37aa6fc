/*
 * Unit tests of the OpenAI Admin API answer parsers (broker/rotation_provider.c):
 * the documented shapes are accepted, anything else is refused without
 * leaving key bytes behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker/rotation_provider.h"

#define CREATED                                                                                                    \
	"{\"object\":\"organization.project.service_account\",\"id\":\"svc_acct_abc\",\"name\":\"tessera-openai-v2\","  \
	"\"role\":\"member\",\"created_at\":1711471533,\"api_key\":{\"object\":"                                        \
	"\"organization.project.service_account.api_key\",\"value\":\"sk-abcdefghijklmnop123\",\"name\":\"Secret Key\"," \
	"\"created_at\":1711471533,\"id\":\"key_abc\"}}"

static tsr_rc parse(const char *s, struct provider_key *k)
{
	return openai_admin_parse_create(s, strlen(s), k);
}

static bool no_key_bytes(const struct provider_key *k)
{
	for (size_t i = 0; i < sizeof(k->key); i++)
		if (k->key[i])
			return false;
	return true;
}

static void create_answer_gives_key_and_service_account_id(void **state)
{
	(void)state;
	struct provider_key *k = calloc(1, sizeof(*k));
	assert_int_equal(parse(CREATED, k), TSR_OK);
	assert_string_equal(k->key, "sk-abcdefghijklmnop123");
	assert_string_equal(k->id, "svc_acct_abc");
	provider_key_wipe(k);
	assert_true(no_key_bytes(k));
	free(k);
}

static void create_answers_of_other_shapes_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"null",
		"[]",
		"{\"error\":{\"message\":\"Incorrect API key provided\",\"code\":\"invalid_api_key\"}}",
		"{\"id\":\"svc_acct_abc\"}",
		"{\"id\":\"svc_acct_abc\",\"api_key\":{\"value\":42}}",
		"{\"id\":\"svc_acct_abc\",\"api_key\":{\"value\":\"\"}}",
		"{\"id\":\"svc_acct_abc\",\"api_key\":{\"value\":\"sk with space\"}}",
		"{\"id\":\"svc_acct_abc\",\"api_key\":{\"value\":\"sk-\\u0000x\"}}",
		"{\"id\":\"\",\"api_key\":{\"value\":\"sk-abc\"}}",
		"{\"object\":\"organization.project.service_account.deleted\",\"id\":\"svc\",\"api_key\":{\"value\":\"sk-a\"}}",
		"{\"id\":\"svc_acct_abc\",\"id\":\"svc2\",\"api_key\":{\"value\":\"sk-abc\"}}",
	};
	struct provider_key *k = calloc(1, sizeof(*k));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(k, 'x', sizeof(*k));
		assert_int_not_equal(parse(bad[i], k), TSR_OK);
		assert_true(no_key_bytes(k));
	}
	free(k);
}

static void overlong_keys_are_refused(void **state)
{
	(void)state;
	size_t n = PROVIDER_KEY_MAX + 100;
	char *s = malloc(n + 100);
	int w = snprintf(s, n + 100, "{\"id\":\"svc\",\"api_key\":{\"value\":\"");
	memset(s + w, 'k', PROVIDER_KEY_MAX + 1);
	memcpy(s + w + PROVIDER_KEY_MAX + 1, "\"}}", 4);
	struct provider_key *k = calloc(1, sizeof(*k));
	assert_int_not_equal(parse(s, k), TSR_OK);
	free(k);
	free(s);
}

static void delete_answer_must_say_deleted_for_that_id(void **state)
{
	(void)state;
	const char *ok = "{\"object\":\"organization.project.service_account.deleted\",\"id\":\"svc_acct_abc\","
			 "\"deleted\":true}";
	assert_int_equal(openai_admin_parse_delete(ok, strlen(ok), "svc_acct_abc"), TSR_OK);
	assert_int_not_equal(openai_admin_parse_delete(ok, strlen(ok), "svc_acct_other"), TSR_OK);
	const char *no = "{\"id\":\"svc_acct_abc\",\"deleted\":false}";
	assert_int_not_equal(openai_admin_parse_delete(no, strlen(no), "svc_acct_abc"), TSR_OK);
	assert_int_not_equal(openai_admin_parse_delete("", 0, "svc_acct_abc"), TSR_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_answer_gives_key_and_service_account_id),
		cmocka_unit_test(create_answers_of_other_shapes_are_refused),
		cmocka_unit_test(overlong_keys_are_refused),
		cmocka_unit_test(delete_answer_must_say_deleted_for_that_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
