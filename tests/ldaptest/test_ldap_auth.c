/*
 * ldap_authenticate() and the connection's TLS against a real slapd
 * (run by tests/integration/ldap_authenticate.sh, which starts slapd with
 * ppolicy and TLS and loads the fixture). Environment:
 *   TEST_LDAP_URI, TEST_LDAPS_URI, TEST_LDAP_CA_FILE, TEST_LDAP_OTHER_CA,
 *   TEST_LDAP_PEOPLE, LDAPSYNC_BIND_DN, LDAPSYNC_PW_FILE, TEST_CLOSED_PORT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sync/ldap.h"
#include "lib/config.h"

static const char *env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		fail_msg("%s is not set (run through tests/integration/ldap_authenticate.sh)", name);
	return v;
}

static void set(char **slot, const char *v)
{
	free(*slot);
	*slot = v ? strdup(v) : NULL;
}

/* A config for the test slapd: plain ldap://, the service account, ppolicy lock or employeeType. */
static struct config *cfg_new(void)
{
	struct config *c = NULL;
	assert_int_equal(config_load(NULL, true, &c, stderr), TSR_OK);
	set(&c->ldap.uri, env("TEST_LDAP_URI"));
	set(&c->ldap.bind_dn, env("LDAPSYNC_BIND_DN"));
	set(&c->ldap.bind_password_file, env("LDAPSYNC_PW_FILE"));
	set(&c->ldap.user_base, env("TEST_LDAP_PEOPLE"));
	set(&c->ldap.disabled_filter, "(|(pwdAccountLockedTime=*)(employeeType=disabled))");
	c->ldap.timeout = 3;
	return c;
}

static tsr_rc auth(struct config *c, const char *login, const char *pw, char *dn)
{
	return ldap_authenticate(c, login, pw, dn, 1024);
}

static void the_right_password_is_accepted_and_names_the_entry(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_OK);
	char want[512];
	snprintf(want, sizeof(want), "uid=alice,%s", env("TEST_LDAP_PEOPLE"));
	assert_string_equal(dn, want);
	config_free(c);
}

static void a_wrong_password_is_unauthenticated(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "alice", "not-alice-pw", dn), TSR_UNAUTHENTICATED);
	assert_string_equal(dn, "");
	config_free(c);
}

static void an_empty_password_never_reaches_the_directory(void **state)
{
	struct config *c = cfg_new();
	char dn[1024], uri[64];
	assert_int_equal(auth(c, "alice", "", dn), TSR_UNAUTHENTICATED);
	assert_int_equal(auth(c, "alice", NULL, dn), TSR_UNAUTHENTICATED);
	assert_int_equal(auth(c, "", "alice-pw", dn), TSR_UNAUTHENTICATED);
	/* even with the directory down: no bind is attempted at all */
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%s", env("TEST_CLOSED_PORT"));
	set(&c->ldap.uri, uri);
	assert_int_equal(auth(c, "alice", "", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void an_unknown_login_is_unauthenticated(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "nobody", "alice-pw", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void filter_metacharacters_in_the_login_match_nothing(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	/* unescaped, (uid=al*) would find alice and her password would work */
	assert_int_equal(auth(c, "al*", "alice-pw", dn), TSR_UNAUTHENTICATED);
	assert_int_equal(auth(c, "*", "alice-pw", dn), TSR_UNAUTHENTICATED);
	assert_int_equal(auth(c, "alice)(uid=*", "alice-pw", dn), TSR_UNAUTHENTICATED);
	assert_int_equal(auth(c, "x)(|(uid=alice)", "alice-pw", dn), TSR_UNAUTHENTICATED);
	assert_int_equal(auth(c, "alice\\", "alice-pw", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void a_disabled_user_with_the_right_password_is_denied(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "carol", "carol-pw", dn), TSR_DENIED);
	/* with a wrong password the account's state is not revealed */
	assert_int_equal(auth(c, "carol", "wrong", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void a_ppolicy_locked_user_cannot_log_in(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "bob", "bob-pw", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void a_login_held_by_two_entries_is_refused(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "twin", "twin-pw", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void a_non_ascii_login_works(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	assert_int_equal(auth(c, "j\xc3\xbcrgen", "j\xc3\xbcrgen-pw", dn), TSR_OK);
	config_free(c);
}

static void the_login_attribute_is_configurable(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	set(&c->ldap.login_attr, "mail");
	assert_int_equal(auth(c, "alice@example.com", "alice-pw", dn), TSR_OK);
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_UNAUTHENTICATED);
	config_free(c);
}

static void an_unreachable_directory_is_unavailable(void **state)
{
	struct config *c = cfg_new();
	char dn[1024], uri[64];
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%s", env("TEST_CLOSED_PORT"));
	set(&c->ldap.uri, uri);
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_UNAVAILABLE);
	config_free(c);
}

static void bad_service_credentials_make_logins_unavailable(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	set(&c->ldap.bind_password_file, NULL);
	set(&c->ldap.bind_password, "wrong-service-password");
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_UNAVAILABLE);
	config_free(c);
}

static void no_ldap_configuration_is_invalid(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	set(&c->ldap.uri, NULL);
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_INVALID);
	config_free(c);
}

static void starttls_and_ldaps_with_the_right_ca_work(void **state)
{
	struct config *c = cfg_new();
	char dn[1024];
	set(&c->ldap.ca_file, env("TEST_LDAP_CA_FILE"));
	c->ldap.starttls = true;
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_OK);
	c->ldap.starttls = false;
	set(&c->ldap.uri, env("TEST_LDAPS_URI"));
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_OK);
	config_free(c);
}

static void a_certificate_from_another_ca_is_refused(void **state)
{
	struct config *c = cfg_new();
	char dn[1024], err[512];
	set(&c->ldap.ca_file, env("TEST_LDAP_OTHER_CA"));
	c->ldap.starttls = true;
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_UNAVAILABLE);
	struct ldap_session *s = NULL;
	assert_int_equal(ldap_session_open(c, &s, err, sizeof(err)), TSR_UNAVAILABLE);
	assert_non_null(strstr(err, "StartTLS with"));
	c->ldap.starttls = false;
	set(&c->ldap.uri, env("TEST_LDAPS_URI"));
	assert_int_equal(auth(c, "alice", "alice-pw", dn), TSR_UNAVAILABLE);
	assert_int_equal(ldap_session_open(c, &s, err, sizeof(err)), TSR_UNAVAILABLE);
	assert_null(s);
	config_free(c);
}

static tsr_rc count_entry(void *arg, const struct ldap_entry *e)
{
	(*(int *)arg)++;
	return TSR_OK;
}

static void a_paged_search_over_ldaps_reads_every_entry(void **state)
{
	struct config *c = cfg_new();
	char err[512];
	set(&c->ldap.uri, env("TEST_LDAPS_URI"));
	set(&c->ldap.ca_file, env("TEST_LDAP_CA_FILE"));
	c->ldap.page_size = 2;
	struct ldap_session *s = NULL;
	assert_int_equal(ldap_session_open(c, &s, err, sizeof(err)), TSR_OK);
	int n = 0;
	size_t count = 0;
	bool missing = true;
	static const char *const attrs[] = { "uid", NULL };
	assert_int_equal(ldap_session_search(s, env("TEST_LDAP_PEOPLE"), "(objectClass=inetOrgPerson)", attrs,
					     count_entry, &n, &count, &missing, err, sizeof(err)),
			 TSR_OK);
	assert_int_equal(n, 7); /* alice bob carol jürgen twin twin dave */
	assert_int_equal(count, 7);
	assert_false(missing);
	assert_int_equal(ldap_session_search(s, "ou=nowhere,dc=example,dc=com", "(objectClass=*)", attrs, count_entry,
					     &n, &count, &missing, err, sizeof(err)),
			 TSR_OK);
	assert_true(missing);
	assert_int_equal(count, 0);
	ldap_session_close(s);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_right_password_is_accepted_and_names_the_entry),
		cmocka_unit_test(a_wrong_password_is_unauthenticated),
		cmocka_unit_test(an_empty_password_never_reaches_the_directory),
		cmocka_unit_test(an_unknown_login_is_unauthenticated),
		cmocka_unit_test(filter_metacharacters_in_the_login_match_nothing),
		cmocka_unit_test(a_disabled_user_with_the_right_password_is_denied),
		cmocka_unit_test(a_ppolicy_locked_user_cannot_log_in),
		cmocka_unit_test(a_login_held_by_two_entries_is_refused),
		cmocka_unit_test(a_non_ascii_login_works),
		cmocka_unit_test(the_login_attribute_is_configurable),
		cmocka_unit_test(an_unreachable_directory_is_unavailable),
		cmocka_unit_test(bad_service_credentials_make_logins_unavailable),
		cmocka_unit_test(no_ldap_configuration_is_invalid),
		cmocka_unit_test(starttls_and_ldaps_with_the_right_ca_work),
		cmocka_unit_test(a_certificate_from_another_ca_is_refused),
		cmocka_unit_test(a_paged_search_over_ldaps_reads_every_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
