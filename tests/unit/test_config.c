/* Unit tests of lib/config.c: the key table, value parsing, precise errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/config.h"

static char path[64];

/* Write text to a temp file and load it; errors go to err[]. */
static tsr_rc load(const char *text, bool dev, struct config **out, char *err, size_t errlen)
{
	snprintf(path, sizeof(path), "/tmp/tsr-conf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	FILE *e = fmemopen(err, errlen, "w");
	tsr_rc rc = config_load(path, dev, out, e);
	fclose(e);
	unlink(path);
	return rc;
}

static void duration_units_parse(void **state)
{
	int64_t s;
	assert_int_equal(config_parse_duration("15m", &s), TSR_OK);
	assert_int_equal(s, 900);
	assert_int_equal(config_parse_duration("1h30m", &s), TSR_OK);
	assert_int_equal(s, 5400);
	assert_int_equal(config_parse_duration("7y", &s), TSR_OK);
	assert_int_equal(s, 7 * 365 * 86400LL);
	assert_int_equal(config_parse_duration("45", &s), TSR_OK);
	assert_int_equal(s, 45);
	assert_int_equal(config_parse_duration("15 parsecs", &s), TSR_INVALID);
	assert_int_equal(config_parse_duration("", &s), TSR_INVALID);
	assert_int_equal(config_parse_duration("-5m", &s), TSR_INVALID);
	assert_int_equal(config_parse_duration("99999999999999999999y", &s), TSR_INVALID);
}

static void defaults_apply_without_file(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	FILE *e = fmemopen(err, sizeof(err), "w");
	assert_int_equal(config_load(NULL, true, &c, e), TSR_OK);
	fclose(e);
	assert_string_equal(c->server.listen, "127.0.0.1:8080");
	assert_int_equal(c->tokens.default_ttl, 900);
	assert_int_equal(c->tokens.max_ttl, 8 * 3600);
	assert_true(c->ldap.max_deactivate_ratio > 0.099 && c->ldap.max_deactivate_ratio < 0.101);
	assert_int_equal(c->policy.classified_upstreams.n, 2);
	config_free(c);
}

static void unknown_key_names_file_line_and_section(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	assert_int_equal(load("[server]\nlisten = 127.0.0.1:9\nprot = 1\n", true, &c, err, sizeof(err)), TSR_INVALID);
	char want[128];
	snprintf(want, sizeof(want), "%s:3: unknown key 'prot' in [server]", path);
	assert_non_null(strstr(err, want));
}

static void bad_value_names_key_and_value(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	assert_int_equal(load("[database]\nurl = x\npool_size = abc\n", false, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, ":3: bad value for 'pool_size' in [database]"));
	assert_non_null(strstr(err, "got 'abc'"));
}

static void secret_value_never_echoed(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	assert_int_equal(load("[database]\nurl = postgresql://u:hunter2@h/db\n[ldap]\nuri = ldap://x\nbind_password = hunter2\nbogus = 1\n",
			      false, &c, err, sizeof(err)),
			 TSR_INVALID);
	assert_null(strstr(err, "hunter2"));
	assert_non_null(strstr(err, "unknown key 'bogus' in [ldap]"));
}

static void missing_database_section_without_dev(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	assert_int_equal(load("[server]\nworkers = 2\n", false, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, "missing required section [database]"));
	assert_int_equal(load("[server]\nworkers = 2\n", true, &c, err, sizeof(err)), TSR_OK);
	config_free(c);
}

static void max_ttl_is_capped_at_eight_hours(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	assert_int_equal(load("[tokens]\nmax_ttl = 9h\n", true, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, "'max_ttl' in [tokens]"));
}

static void upstream_sections_parse_and_validate(void **state)
{
	struct config *c = NULL;
	char err[1024] = "";
	assert_int_equal(load("[upstream.azure]\nkind = azure-openai\nbase_url = https://x\nbaa = yes\nmodels = a, b\n"
			      "[upstream.local]\nkind = openai-compatible\nbase_url = http://127.0.0.1:1\non_prem = true\n",
			      true, &c, err, sizeof(err)),
			 TSR_OK);
	assert_int_equal(c->n_upstreams, 2);
	assert_string_equal(c->upstreams[0].name, "azure");
	assert_true(c->upstreams[0].baa);
	assert_int_equal(c->upstreams[0].models.n, 2);
	assert_string_equal(c->upstreams[0].models.v[1], "b");
	assert_int_equal(c->upstreams[0].rotation_period, 30 * 86400);
	assert_true(c->upstreams[1].on_prem);
	config_free(c);
	assert_int_equal(load("[upstream.x]\nkind = gopher\nbase_url = u\n", true, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, "bad value for 'kind' in [upstream.x]"));
	assert_int_equal(load("[upstream.y]\nbase_url = u\n", true, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, "missing required key 'kind' in [upstream.y]"));
}

static void unknown_section_and_duplicates_rejected(void **state)
{
	struct config *c = NULL;
	char err[512] = "";
	assert_int_equal(load("[foo]\na = 1\n", true, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, ":1: unknown section [foo]"));
	assert_int_equal(load("[server]\nworkers = 2\nworkers = 3\n", true, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, ":3: duplicate key 'workers' in [server]"));
}

static void long_lines_keep_line_numbers(void **state)
{
	struct config *c = NULL;
	char err[1024] = "";
	char text[2048];
	char longv[700];
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	snprintf(text, sizeof(text), "[ldap]\nuri = ldap://x\nuser_filter = (cn=%s)\nnope = 1\n", longv);
	assert_int_equal(load(text, true, &c, err, sizeof(err)), TSR_INVALID);
	assert_non_null(strstr(err, ":4: unknown key 'nope' in [ldap]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(duration_units_parse),
		cmocka_unit_test(defaults_apply_without_file),
		cmocka_unit_test(unknown_key_names_file_line_and_section),
		cmocka_unit_test(bad_value_names_key_and_value),
		cmocka_unit_test(secret_value_never_echoed),
		cmocka_unit_test(missing_database_section_without_dev),
		cmocka_unit_test(max_ttl_is_capped_at_eight_hours),
		cmocka_unit_test(upstream_sections_parse_and_validate),
		cmocka_unit_test(unknown_section_and_duplicates_rejected),
		cmocka_unit_test(long_lines_keep_line_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
