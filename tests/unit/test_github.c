/*
 * Unit tests of GitHub's wire formats (sync/github.c, sync/github_hook.c) and of the topic ->
 * classification map (sync/sync_github.c): the Link-header parser, the
 * permission mapping, name checks, the webhook signature check and the
 * webhook payload parser. No network, no database.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/hmac.h>

#include "sync/github.h"
#include "sync/github_hook.h"
#include "sync/sync_github.h"

static void link_next_finds_next_among_others(void **state)
{
	char out[256];
	const char *h = "<https://api.github.com/organizations/9/members?per_page=100&page=2>; rel=\"next\", "
			"<https://api.github.com/organizations/9/members?per_page=100&page=50>; rel=\"last\"";
	assert_int_equal(gh_link_next(h, out, sizeof(out)), TSR_OK);
	assert_string_equal(out, "https://api.github.com/organizations/9/members?per_page=100&page=2");
	h = "<https://x/a?page=1>; rel=\"first\", <https://x/a?page=3>; rel=\"prev\", <https://x/a?page=5>; rel=\"next\"";
	assert_int_equal(gh_link_next(h, out, sizeof(out)), TSR_OK);
	assert_string_equal(out, "https://x/a?page=5");
}

static void link_next_accepts_rfc8288_variants(void **state)
{
	char out[256];
	assert_int_equal(gh_link_next("<https://x/n>;rel=next", out, sizeof(out)), TSR_OK);
	assert_string_equal(out, "https://x/n");
	assert_int_equal(gh_link_next("<https://x/n> ; REL = \"last next\"", out, sizeof(out)), TSR_OK);
	assert_string_equal(out, "https://x/n");
	assert_int_equal(gh_link_next("<https://x/a,b;c>; title=\"x, y\"; rel=\"next\"", out, sizeof(out)), TSR_OK);
	assert_string_equal(out, "https://x/a,b;c");
}

static void link_next_absent_or_malformed(void **state)
{
	char out[256];
	assert_int_equal(gh_link_next(NULL, out, sizeof(out)), TSR_NOT_FOUND);
	assert_int_equal(gh_link_next("", out, sizeof(out)), TSR_NOT_FOUND);
	assert_int_equal(gh_link_next("<https://x/l>; rel=\"last\"", out, sizeof(out)), TSR_NOT_FOUND);
	assert_int_equal(gh_link_next("<https://x/nextpage>; rel=\"nextish\"", out, sizeof(out)), TSR_NOT_FOUND);
	assert_int_equal(gh_link_next("<https://x/n; rel=\"next\"", out, sizeof(out)), TSR_INVALID);
	assert_int_equal(gh_link_next("https://x/n; rel=\"next\"", out, sizeof(out)), TSR_INVALID);
	assert_int_equal(gh_link_next("<https://x/n>; rel=\"next", out, sizeof(out)), TSR_INVALID);
	assert_int_equal(gh_link_next("<>; rel=\"next\"", out, sizeof(out)), TSR_INVALID);
	assert_int_equal(gh_link_next("<https://x/n> junk", out, sizeof(out)), TSR_INVALID);
	char small[8];
	assert_int_equal(gh_link_next("<https://x/too-long>; rel=\"next\"", small, sizeof(small)), TSR_TOO_LARGE);
}

static void permissions_map_to_the_repo_permission_order(void **state)
{
	assert_int_equal(gh_perm_parse("pull"), GH_PERM_READ);
	assert_int_equal(gh_perm_parse("READ"), GH_PERM_READ);
	assert_int_equal(gh_perm_parse("push"), GH_PERM_WRITE);
	assert_int_equal(gh_perm_parse("maintain"), GH_PERM_MAINTAIN);
	assert_int_equal(gh_perm_parse("none"), GH_PERM_NONE);
	assert_int_equal(gh_perm_parse("custom-role"), GH_PERM_NONE);
	assert_null(gh_perm_name(GH_PERM_NONE));
	assert_string_equal(gh_perm_name(GH_PERM_TRIAGE), "triage");
	json_t *o = json_pack("{s:{s:b,s:b,s:b,s:b,s:b},s:s}", "permissions", "admin", 0, "maintain", 0, "push", 1,
			      "triage", 1, "pull", 1, "role_name", "custom-writer");
	assert_int_equal(gh_perm_of(o), GH_PERM_WRITE); /* booleans win over a custom role name */
	json_decref(o);
	o = json_pack("{s:s}", "role_name", "maintain");
	assert_int_equal(gh_perm_of(o), GH_PERM_MAINTAIN);
	json_decref(o);
	o = json_pack("{s:s}", "permission", "pull");
	assert_int_equal(gh_perm_of(o), GH_PERM_READ);
	json_decref(o);
	o = json_pack("{s:{s:b}}", "permissions", "pull", 0);
	assert_int_equal(gh_perm_of(o), GH_PERM_NONE);
	json_decref(o);
}

static void names_are_those_github_allows(void **state)
{
	assert_true(gh_name_ok("acme"));
	assert_true(gh_name_ok("my.repo_name-2"));
	assert_false(gh_name_ok(""));
	assert_false(gh_name_ok(NULL));
	assert_false(gh_name_ok(".."));
	assert_false(gh_name_ok("a/b"));
	assert_false(gh_name_ok("a%2fb"));
	assert_false(gh_name_ok("a b"));
	char long_name[102];
	memset(long_name, 'a', 101);
	long_name[101] = '\0';
	assert_false(gh_name_ok(long_name));
}

static void sign(const char *secret, const char *body, char out[72])
{
	unsigned char mac[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), mac, &n);
	memcpy(out, "sha256=", 7);
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}

static void signature_is_hmac_sha256_of_the_raw_body(void **state)
{
	const char *body = "{\"action\":\"removed\"}";
	char sig[72];
	sign("s3cret", body, sig);
	assert_true(gh_signature_ok("s3cret", 6, body, strlen(body), sig));
	assert_false(gh_signature_ok("other", 5, body, strlen(body), sig));
	assert_false(gh_signature_ok("s3cret", 6, body, strlen(body) - 1, sig)); /* one byte less */
	assert_false(gh_signature_ok("s3cret", 6, body, strlen(body), sig + 7));   /* no "sha256=" */
	assert_false(gh_signature_ok("s3cret", 6, body, strlen(body), NULL));
	assert_false(gh_signature_ok("", 0, body, strlen(body), sig)); /* no secret, no trust */
	char upper[72];
	snprintf(upper, sizeof(upper), "%s", sig);
	for (char *p = upper + 7; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	assert_true(gh_signature_ok("s3cret", 6, body, strlen(body), upper));
	sig[20] = 'g';
	assert_false(gh_signature_ok("s3cret", 6, body, strlen(body), sig));
	char sha1[] = "sha1=0123456789012345678901234567890123456789";
	assert_false(gh_signature_ok("s3cret", 6, body, strlen(body), sha1));
}

static void membership_event_is_parsed(void **state)
{
	const char *b = "{\"action\":\"removed\",\"scope\":\"team\",\"member\":{\"login\":\"Frank\",\"id\":12},"
			"\"team\":{\"id\":3,\"slug\":\"platform-sre\",\"parent\":{\"id\":1,\"slug\":\"platform\"}},"
			"\"organization\":{\"login\":\"Acme\",\"id\":9}}";
	struct gh_event e;
	assert_int_equal(gh_event_parse("membership", b, strlen(b), &e), TSR_OK);
	assert_string_equal(e.action, "removed");
	assert_string_equal(e.org, "acme");
	assert_true(e.has_user);
	assert_int_equal(e.user_id, 12);
	assert_string_equal(e.user_login, "Frank");
	assert_true(e.has_team);
	assert_int_equal(e.team_id, 3);
	assert_int_equal(e.team_parent_id, 1);
	assert_string_equal(e.team_slug, "platform-sre");
	assert_false(e.has_repo);
}

static void organization_and_repository_events_are_parsed(void **state)
{
	const char *b = "{\"action\":\"member_removed\",\"membership\":{\"user\":{\"login\":\"carol\",\"id\":7}},"
			"\"organization\":{\"login\":\"acme\"}}";
	struct gh_event e;
	assert_int_equal(gh_event_parse("organization", b, strlen(b), &e), TSR_OK);
	assert_true(e.has_user);
	assert_int_equal(e.user_id, 7);
	b = "{\"action\":\"edited\",\"repository\":{\"id\":44,\"name\":\"api\",\"owner\":{\"login\":\"ACME\"},"
	    "\"private\":true,\"archived\":true,\"topics\":[\"HIPAA\",\"web\"]}}";
	assert_int_equal(gh_event_parse("repository", b, strlen(b), &e), TSR_OK);
	assert_true(e.has_repo);
	assert_string_equal(e.visibility, "private");
	assert_true(e.archived);
	assert_true(e.has_topics);
	assert_int_equal(e.ntopics, 2);
	assert_string_equal(e.topics[0], "hipaa");
	assert_string_equal(e.org, "acme"); /* from the owner when "organization" is absent */
}

static void malformed_payloads_are_refused(void **state)
{
	struct gh_event e;
	const char *bad[] = {
		"[]",
		"{\"member\":{\"id\":\"12\",\"login\":\"x\"}}",
		"{\"member\":{\"id\":12,\"login\":\"a/b\"}}",
		"{\"repository\":{\"id\":1,\"name\":\"../x\"}}",
		"{\"repository\":{\"id\":1,\"name\":\"x\",\"visibility\":\"secret\"}}",
		"{\"repository\":{\"id\":1,\"name\":\"x\",\"topics\":\"hipaa\"}}",
		"{\"team\":{\"id\":-3,\"slug\":\"t\"}}",
		"{\"organization\":\"acme\"}",
		"{\"action\":\"a\",\"action\":\"b\"}",
		"not json",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gh_event_parse("member", bad[i], strlen(bad[i]), &e), TSR_INVALID);
	assert_int_equal(gh_event_parse("Member", "{}", 2, &e), TSR_INVALID);
	assert_int_equal(gh_event_parse("member\n", "{}", 2, &e), TSR_INVALID);
	assert_int_equal(gh_event_parse("push", "{\"ref\":\"main\"}", 14, &e), TSR_OK);
}

static void topics_map_to_sorted_unique_classifications(void **state)
{
	char *items[] = { "hipaa:phi", "pci:pci", "ephi:phi", "bad", ":x", "y:" };
	struct strlist map = { items, 6 };
	const char *topics[] = { "PCI", "hipaa", "ephi", "web" };
	const char *out[8];
	size_t n = sync_github_classify(&map, topics, 4, out, 8);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "pci");
	assert_string_equal(out[1], "phi");
	assert_int_equal(sync_github_classify(&map, topics + 3, 1, out, 8), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(link_next_finds_next_among_others),
		cmocka_unit_test(link_next_accepts_rfc8288_variants),
		cmocka_unit_test(link_next_absent_or_malformed),
		cmocka_unit_test(permissions_map_to_the_repo_permission_order),
		cmocka_unit_test(names_are_those_github_allows),
		cmocka_unit_test(signature_is_hmac_sha256_of_the_raw_body),
		cmocka_unit_test(membership_event_is_parsed),
		cmocka_unit_test(organization_and_repository_events_are_parsed),
		cmocka_unit_test(malformed_payloads_are_refused),
		cmocka_unit_test(topics_map_to_sorted_unique_classifications),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
