/*
 * test_scim_filter.c — the SCIM filter parser and its SQL compiler, without a
 * database: precedence (not > and > or), value paths, URN prefixes, case
 * rules, precise error positions, the shapes compiled to SQL (values only as
 * $n parameters), NULL-safe negation, and C evaluation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker/scim_filter.h"

/* A small map shaped like db/scim_store.c's. */
static const struct scim_sql_attr email_sub[] = {
	{ "value", "e.value", SCIM_SQL_STRING, false, NULL, NULL },
	{ "type", "e.type", SCIM_SQL_STRING, false, NULL, NULL },
	{ "primary", "e.is_primary", SCIM_SQL_BOOL, false, NULL, NULL },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};
static const struct scim_sql_attr map[] = {
	{ "id", "u.scim_id", SCIM_SQL_ID, true, NULL, NULL },
	{ "username", "u.user_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "externalid", "us.external_id", SCIM_SQL_STRING, true, NULL, NULL },
	{ "title", "us.title", SCIM_SQL_STRING, false, NULL, NULL },
	{ "active", "u.active", SCIM_SQL_BOOL, false, NULL, NULL },
	{ "name.givenname", "u.given_name", SCIM_SQL_STRING, false, NULL, NULL },
	{ "meta.created", "u.created_at", SCIM_SQL_DATETIME, false, NULL, NULL },
	{ "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department", "(u.ent->>'department')",
	  SCIM_SQL_STRING, false, NULL, NULL },
	{ "emails", NULL, SCIM_SQL_STRING, false, "EXISTS (SELECT 1 FROM e WHERE e.u = u.id", email_sub },
	{ NULL, NULL, SCIM_SQL_STRING, false, NULL, NULL },
};

static struct scim_filter *parse_ok(const char *s)
{
	struct scim_filter *f = NULL;
	struct scim_err err;
	tsr_rc rc = scim_filter_parse(s, &f, &err);
	if (rc != TSR_OK)
		fail_msg("'%s' did not parse: %s at %zu", s, err.msg, err.pos);
	return f;
}

/* Compile s; returns the SQL (static buffer) and the parameter count. */
static const char *sql_of(const char *s, int *n, char params[][64])
{
	static char out[4096];
	struct scim_filter *f = parse_ok(s);
	struct scim_sql q;
	struct scim_err err;
	scim_sql_init(&q);
	tsr_rc rc = scim_filter_sql(f, map, 1, &q, &err);
	if (rc != TSR_OK)
		fail_msg("'%s' did not compile: %s", s, err.msg);
	snprintf(out, sizeof(out), "%s", q.sql.data);
	*n = q.n;
	for (int i = 0; i < q.n && params; i++)
		snprintf(params[i], 64, "%s", q.params[i]);
	scim_sql_free(&q);
	scim_filter_free(f);
	return out;
}

static void expect_error(const char *s, size_t pos, const char *fragment)
{
	struct scim_filter *f = NULL;
	struct scim_err err;
	assert_int_equal(scim_filter_parse(s, &f, &err), TSR_INVALID);
	assert_null(f);
	if (err.pos != pos || !strstr(err.msg, fragment))
		fail_msg("'%s': got '%s' at %zu, want '%s' at %zu", s, err.msg, err.pos, fragment, pos);
}

static void precedence_not_binds_tighter_than_and_than_or(void **state)
{
	struct scim_filter *f = parse_ok("a pr or b pr and not (c pr)");
	assert_int_equal(f->op, SCIM_OR);
	assert_int_equal(f->a->op, SCIM_PR);
	assert_int_equal(f->b->op, SCIM_AND);
	assert_int_equal(f->b->b->op, SCIM_NOT);
	assert_string_equal(f->b->b->a->path.attr, "c");
	scim_filter_free(f);
	f = parse_ok("(a pr or b pr) and c pr");
	assert_int_equal(f->op, SCIM_AND);
	assert_int_equal(f->a->op, SCIM_OR);
	scim_filter_free(f);
}

static void operators_and_keywords_ignore_case(void **state)
{
	struct scim_filter *f = parse_ok("userName EQ \"x\" AND Active Eq True OR title Pr");
	assert_int_equal(f->op, SCIM_OR);
	assert_int_equal(f->a->a->op, SCIM_EQ);
	assert_int_equal(f->a->b->v.type, SCIM_V_TRUE);
	scim_filter_free(f);
}

static void value_path_and_urn_prefix_parse(void **state)
{
	struct scim_filter *f = parse_ok("emails[type eq \"work\" and primary eq true]");
	assert_int_equal(f->op, SCIM_VALUEPATH);
	assert_string_equal(f->path.attr, "emails");
	assert_int_equal(f->a->op, SCIM_AND);
	scim_filter_free(f);
	f = parse_ok("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"");
	assert_string_equal(f->path.urn, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
	assert_string_equal(f->path.attr, "manager");
	assert_string_equal(f->path.sub, "value");
	scim_filter_free(f);
}

static void string_values_are_json_decoded(void **state)
{
	struct scim_filter *f = parse_ok("userName eq \"a\\\"b\\u00e9\\\\\"");
	assert_string_equal(f->v.s, "a\"b\xc3\xa9\\");
	scim_filter_free(f);
	f = parse_ok("n eq -12.5e3");
	assert_int_equal(f->v.type, SCIM_V_NUMBER);
	assert_string_equal(f->v.s, "-12.5e3");
	scim_filter_free(f);
}

static void errors_name_what_and_where(void **state)
{
	expect_error("", 0, "empty");
	expect_error("userName", 8, "operator");
	expect_error("userName xx \"a\"", 9, "operator");
	expect_error("userName eq", 11, "value");
	expect_error("userName eq bob", 12, "value");
	expect_error("userName eq \"bob", 12, "unterminated");
	expect_error("(userName pr", 12, "')'");
	expect_error("userName pr)", 11, "unbalanced");
	expect_error("userName pr and", 15, "attribute");
	expect_error("emails[type eq \"w\"", 18, "']'");
	expect_error("emails[a[b pr]]", 8, "nested");
	expect_error("not userName pr", 4, "operator");
	expect_error("1abc pr", 0, "invalid attribute");
	expect_error("userName pr garbage", 12, "'and', 'or'");
}

static void nesting_and_size_are_bounded(void **state)
{
	char deep[400];
	size_t o = 0;
	for (int i = 0; i < 100; i++)
		deep[o++] = '(';
	memcpy(deep + o, "a pr", 4);
	o += 4;
	for (int i = 0; i < 100; i++)
		deep[o++] = ')';
	deep[o] = '\0';
	struct scim_filter *f = NULL;
	struct scim_err err;
	assert_int_equal(scim_filter_parse(deep, &f, &err), TSR_INVALID);
	assert_non_null(strstr(err.msg, "deeper"));
}

static void user_name_eq_compiles_to_the_indexed_expression(void **state)
{
	int n;
	char p[4][64];
	const char *sql = sql_of("userName eq \"Bob\"", &n, p);
	assert_string_equal(sql, "(lower(u.user_name) = lower($1))");
	assert_int_equal(n, 1);
	assert_string_equal(p[0], "Bob");
}

static void values_never_reach_the_sql_text(void **state)
{
	int n;
	char p[4][64];
	const char *sql = sql_of("userName eq \"x'); DROP TABLE users; --\" or externalId co \"'\"", &n, p);
	assert_null(strstr(sql, "DROP"));
	assert_null(strchr(sql, '\''));
	assert_int_equal(n, 2);
	assert_string_equal(p[0], "x'); DROP TABLE users; --");
}

static void case_exact_attributes_compare_exactly(void **state)
{
	int n;
	assert_string_equal(sql_of("externalId eq \"E\"", &n, NULL), "(us.external_id = $1)");
	assert_string_equal(sql_of("externalId sw \"E\"", &n, NULL), "starts_with(us.external_id, $1)");
	assert_string_equal(sql_of("title ew \"x\"", &n, NULL), "(right(lower(us.title), length(lower($1))) = lower($1))");
}

static void negation_is_null_safe(void **state)
{
	int n;
	assert_string_equal(sql_of("not (title eq \"x\")", &n, NULL),
			    "(NOT coalesce((lower(us.title) = lower($1)), false))");
}

static void value_paths_compile_to_exists(void **state)
{
	int n;
	assert_string_equal(sql_of("emails[type eq \"work\" and primary eq true]", &n, NULL),
			    "EXISTS (SELECT 1 FROM e WHERE e.u = u.id AND (((lower(e.type) = lower($1)) AND "
			    "(e.is_primary = $2::boolean))))");
	assert_string_equal(sql_of("emails co \"@x\"", &n, NULL),
			    "EXISTS (SELECT 1 FROM e WHERE e.u = u.id AND ((strpos(lower(e.value), lower($1)) > 0)))");
	assert_string_equal(sql_of("emails pr", &n, NULL), "EXISTS (SELECT 1 FROM e WHERE e.u = u.id AND (true))");
}

static void extension_attributes_resolve_with_or_without_urn(void **state)
{
	int n;
	const char *want = "(lower((u.ent->>'department')) = lower($1))";
	assert_string_equal(sql_of("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"R\"", &n,
				   NULL), want);
	assert_string_equal(sql_of("department eq \"R\"", &n, NULL), want);
}

static void type_rules_are_enforced(void **state)
{
	struct scim_filter *f;
	struct scim_err err;
	struct scim_sql q;
	const char *bad[] = { "active gt true", "active eq \"maybe\"", "userName eq 12", "meta.created gt \"yesterday\"",
			      "nosuch eq \"x\"", "userName[type eq \"x\"]", "meta.created co \"2020\"" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = parse_ok(bad[i]);
		scim_sql_init(&q);
		if (scim_filter_sql(f, map, 1, &q, &err) != TSR_INVALID)
			fail_msg("'%s' compiled", bad[i]);
		scim_sql_free(&q);
		scim_filter_free(f);
	}
	int n;
	assert_string_equal(sql_of("active eq \"True\"", &n, NULL), "(u.active = $1::boolean)");
	assert_string_equal(sql_of("meta.created ge \"2024-01-31T12:00:00.5+02:00\"", &n, NULL),
			    "(u.created_at >= $1::timestamptz)");
	assert_string_equal(sql_of("id eq \"not-a-uuid\"", &n, NULL), "false");
	assert_int_equal(n, 0);
}

static void evaluation_in_c_follows_the_same_rules(void **state)
{
	json_t *u = json_loads("{\"userName\":\"Bob\",\"active\":true,\"emails\":[{\"value\":\"b@x.org\",\"type\":\"work\","
			       "\"primary\":true},{\"value\":\"h@y.org\",\"type\":\"home\"}],\"externalId\":\"E1\"}",
			       0, NULL);
	struct {
		const char *f;
		bool want;
	} cases[] = {
		{ "username eq \"bob\"", true },
		{ "emails[type eq \"home\"]", true },
		{ "emails[type eq \"work\" and primary eq false]", false },
		{ "emails.value ew \"y.org\"", true },
		{ "emails co \"x.org\"", true },
		{ "title pr", false },
		{ "not (title eq \"x\")", true },
		{ "title ne \"x\"", true },
		{ "active eq \"True\"", true },
		{ "userName gt \"alice\" and userName lt \"carol\"", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scim_filter *f = parse_ok(cases[i].f);
		if (scim_filter_eval(f, u, NULL) != cases[i].want)
			fail_msg("'%s' evaluated to %d", cases[i].f, !cases[i].want);
		scim_filter_free(f);
	}
	json_decref(u);
}

static void patch_paths_parse_with_filter_and_sub_attribute(void **state)
{
	struct scim_path *p;
	struct scim_err err;
	assert_int_equal(scim_path_parse("emails[type eq \"work\"].value", &p, &err), TSR_OK);
	assert_string_equal(p->attr.attr, "emails");
	assert_non_null(p->filter);
	assert_string_equal(p->sub, "value");
	scim_path_free(p);
	assert_int_equal(scim_path_parse("members[value eq \"2819c223\"]", &p, &err), TSR_OK);
	assert_null(p->sub);
	scim_path_free(p);
	assert_int_equal(scim_path_parse("name.givenName", &p, &err), TSR_OK);
	assert_string_equal(p->attr.sub, "givenName");
	scim_path_free(p);
	assert_int_equal(scim_path_parse("emails[type eq \"work\"]x", &p, &err), TSR_INVALID);
	assert_int_equal(err.pos, 22);
	assert_int_equal(scim_path_parse("name.givenName[x pr]", &p, &err), TSR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(precedence_not_binds_tighter_than_and_than_or),
		cmocka_unit_test(operators_and_keywords_ignore_case),
		cmocka_unit_test(value_path_and_urn_prefix_parse),
		cmocka_unit_test(string_values_are_json_decoded),
		cmocka_unit_test(errors_name_what_and_where),
		cmocka_unit_test(nesting_and_size_are_bounded),
		cmocka_unit_test(user_name_eq_compiles_to_the_indexed_expression),
		cmocka_unit_test(values_never_reach_the_sql_text),
		cmocka_unit_test(case_exact_attributes_compare_exactly),
		cmocka_unit_test(negation_is_null_safe),
		cmocka_unit_test(value_paths_compile_to_exists),
		cmocka_unit_test(extension_attributes_resolve_with_or_without_urn),
		cmocka_unit_test(type_rules_are_enforced),
		cmocka_unit_test(evaluation_in_c_follows_the_same_rules),
		cmocka_unit_test(patch_paths_parse_with_filter_and_sub_attribute),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
