/*
 * test_model_access.c — [policy] model_access without a database: the glob,
 * which entry decides (most specific, then first configured), roles, "any"
 * and "none", groups (asked for only when roles don't suffice), unmatched
 * models allowed, the refusal's wording, and configuration errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker/model_access.h"

static struct model_access *compile(const char **v, size_t n)
{
	struct strlist l = { (char **)v, n };
	struct model_access *m = NULL;
	char err[256] = "";
	assert_int_equal(model_access_new(&l, &m, err, sizeof(err)), TSR_OK);
	assert_non_null(m);
	return m;
}

static void glob_matches_stars_and_question_marks(void **state)
{
	(void)state;
	assert_true(model_access_glob("gpt-4o*", "gpt-4o"));
	assert_true(model_access_glob("gpt-4o*", "gpt-4o-mini"));
	assert_false(model_access_glob("gpt-4o*", "gpt-4"));
	assert_false(model_access_glob("gpt-4o*", "xgpt-4o"));
	assert_true(model_access_glob("*", ""));
	assert_true(model_access_glob("*haiku*", "claude-3-5-haiku-20241022"));
	assert_true(model_access_glob("o?-preview", "o1-preview"));
	assert_false(model_access_glob("o?-preview", "o10-preview"));
	assert_true(model_access_glob("a*b*c", "aXXbYYbZc"));
	assert_false(model_access_glob("a*b*c", "aXXbYYbZ"));
	assert_true(model_access_glob("llama3:*", "llama3:8b"));
	assert_false(model_access_glob("GPT-4o", "gpt-4o")); /* case-sensitive, as providers are */
	assert_true(model_access_glob("exact", "exact"));
	assert_false(model_access_glob("exact", "exactly"));
}

static void roles_any_and_none_decide(void **state)
{
	(void)state;
	const char *v[] = { "gpt-4o*:developer|ml-research", "claude-3-5-haiku*:any", "o1*:admin", "banned-*:none" };
	struct model_access *m = compile(v, 4);
	int rule;
	assert_int_equal(model_access_check(m, "o1-preview", MA_ROLE_ADMIN, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, 2);
	assert_int_equal(model_access_check(m, "o1-preview", MA_ROLE_DEVELOPER | MA_ROLE_SECURITY, NULL, &rule), MA_DENY);
	assert_int_equal(model_access_check(m, "claude-3-5-haiku-latest", 0, NULL, &rule), MA_ALLOW);
	assert_int_equal(model_access_check(m, "gpt-4o-mini", MA_ROLE_DEVELOPER, NULL, &rule), MA_ALLOW);
	assert_int_equal(model_access_check(m, "banned-model", MA_ROLE_ADMIN, NULL, &rule), MA_DENY);
	assert_int_equal(rule, 3);
	model_access_free(m);
}

static void unmatched_models_are_allowed(void **state)
{
	(void)state;
	const char *v[] = { "o1*:admin" };
	struct model_access *m = compile(v, 1);
	int rule = 7;
	assert_int_equal(model_access_check(m, "gpt-4o", 0, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, -1);
	model_access_free(m);
	struct strlist none = { NULL, 0 };
	char err[64];
	assert_int_equal(model_access_new(&none, &m, err, sizeof(err)), TSR_OK);
	assert_true(model_access_empty(m));
	assert_int_equal(model_access_check(m, "anything", 0, NULL, &rule), MA_ALLOW);
	model_access_free(m);
}

static void catch_all_none_makes_the_default_a_refusal(void **state)
{
	(void)state;
	const char *v[] = { "*:none", "gpt-4o-mini:any" };
	struct model_access *m = compile(v, 2);
	int rule;
	assert_int_equal(model_access_check(m, "gpt-4o-mini", 0, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, 1);
	assert_int_equal(model_access_check(m, "gpt-4o", MA_ROLE_ADMIN, NULL, &rule), MA_DENY);
	assert_int_equal(rule, 0);
	model_access_free(m);
}

static void most_specific_entry_wins_then_the_first(void **state)
{
	(void)state;
	const char *v[] = { "gpt-*:any", "gpt-4o*:admin", "gpt-4o-mini:any", "gpt-4o-m*:developer", "gpt-4o-?ini:security" };
	struct model_access *m = compile(v, 5);
	int rule;
	/* the exact name beats every glob, even longer ones */
	assert_int_equal(model_access_check(m, "gpt-4o-mini", 0, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, 2);
	/* "gpt-4o-m*" (8 literal) and "gpt-4o-?ini" (10 literal): the latter */
	assert_int_equal(model_access_check(m, "gpt-4o-xini", MA_ROLE_SECURITY, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, 4);
	assert_int_equal(model_access_check(m, "gpt-4o-max", MA_ROLE_SECURITY, NULL, &rule), MA_DENY);
	assert_int_equal(rule, 3);
	assert_int_equal(model_access_check(m, "gpt-4o", MA_ROLE_DEVELOPER, NULL, &rule), MA_DENY);
	assert_int_equal(rule, 1);
	assert_int_equal(model_access_check(m, "gpt-3.5", 0, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, 0);
	model_access_free(m);
	/* equally specific: the first configured */
	const char *w[] = { "a*:admin", "*a:any" };
	m = compile(w, 2);
	assert_int_equal(model_access_check(m, "aa", 0, NULL, &rule), MA_DENY);
	assert_int_equal(rule, 0);
	model_access_free(m);
}

static void groups_are_asked_for_only_when_roles_do_not_suffice(void **state)
{
	(void)state;
	const char *v[] = { "gpt-4o*:developer|ML-Research|contractors", "o1*:admin|ml-research", "x*:Other" };
	struct model_access *m = compile(v, 3);
	size_t n;
	const char *const *g = model_access_group_names(m, &n);
	assert_int_equal(n, 3);
	assert_string_equal(g[0], "ml-research"); /* lower-cased, each once */
	assert_string_equal(g[1], "contractors");
	assert_string_equal(g[2], "other");
	int rule;
	assert_int_equal(model_access_check(m, "gpt-4o", MA_ROLE_DEVELOPER, NULL, &rule), MA_ALLOW);
	assert_int_equal(model_access_check(m, "gpt-4o", 0, NULL, &rule), MA_NEED_GROUPS);
	uint64_t in_ml = 1u << 0, in_other = 1u << 2, in_none = 0;
	assert_int_equal(model_access_check(m, "gpt-4o", 0, &in_ml, &rule), MA_ALLOW);
	assert_int_equal(model_access_check(m, "gpt-4o", 0, &in_other, &rule), MA_DENY);
	assert_int_equal(model_access_check(m, "o1-mini", 0, &in_ml, &rule), MA_ALLOW);
	assert_int_equal(model_access_check(m, "o1-mini", 0, &in_none, &rule), MA_DENY);
	assert_int_equal(model_access_check(m, "x1", 0, &in_other, &rule), MA_ALLOW);
	model_access_free(m);
}

static void the_refusal_names_the_entry(void **state)
{
	(void)state;
	const char *v[] = { "o1*:admin", "banned*:none" };
	struct model_access *m = compile(v, 2);
	int rule;
	char why[256];
	assert_int_equal(model_access_check(m, "o1-preview", 0, NULL, &rule), MA_DENY);
	model_access_why(m, rule, "o1-preview", why, sizeof(why));
	assert_string_equal(why, "policy model_access: model o1-preview is limited to admin (entry 'o1*:admin')");
	assert_int_equal(model_access_check(m, "banned-1", 0, NULL, &rule), MA_DENY);
	model_access_why(m, rule, "banned-1", why, sizeof(why));
	assert_string_equal(why, "policy model_access: model banned-1 may not be used by anyone (entry 'banned*:none')");
	model_access_free(m);
}

static void model_names_with_a_colon_split_at_the_last(void **state)
{
	(void)state;
	const char *v[] = { "llama3:70b:admin", "llama3:*:any" };
	struct model_access *m = compile(v, 2);
	int rule;
	assert_int_equal(model_access_check(m, "llama3:70b", 0, NULL, &rule), MA_DENY);
	assert_int_equal(rule, 0);
	assert_int_equal(model_access_check(m, "llama3:8b", 0, NULL, &rule), MA_ALLOW);
	assert_int_equal(rule, 1);
	model_access_free(m);
}

static void bad_entries_are_refused_at_load(void **state)
{
	(void)state;
	const char *bad[] = { "gpt-4o", ":admin", "gpt-4o:", "gpt-4o:admin||any" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct strlist l = { (char **)&bad[i], 1 };
		struct model_access *m = NULL;
		char err[256] = "";
		assert_int_equal(model_access_new(&l, &m, err, sizeof(err)), TSR_INVALID);
		assert_null(m);
		assert_non_null(strstr(err, "[policy] model_access"));
	}
	/* 65 distinct groups: too many for the membership mask */
	char names[65][16];
	const char *v[65];
	for (int i = 0; i < 65; i++) {
		snprintf(names[i], sizeof(names[i]), "m%d:g%d", i, i);
		v[i] = names[i];
	}
	struct strlist l = { (char **)v, 65 };
	struct model_access *m = NULL;
	char err[256] = "";
	assert_int_equal(model_access_new(&l, &m, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, "more than 64"));
	l.n = 64;
	assert_int_equal(model_access_new(&l, &m, err, sizeof(err)), TSR_OK);
	model_access_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(glob_matches_stars_and_question_marks),
		cmocka_unit_test(roles_any_and_none_decide),
		cmocka_unit_test(unmatched_models_are_allowed),
		cmocka_unit_test(catch_all_none_makes_the_default_a_refusal),
		cmocka_unit_test(most_specific_entry_wins_then_the_first),
		cmocka_unit_test(groups_are_asked_for_only_when_roles_do_not_suffice),
		cmocka_unit_test(the_refusal_names_the_entry),
		cmocka_unit_test(model_names_with_a_colon_split_at_the_last),
		cmocka_unit_test(bad_entries_are_refused_at_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
