/*
 * Unit tests of the directory client's pure parts (sync/ldap.c,
 * sync/ldap_read.c, sync/strmap.c): RFC 4515 filter escaping and
 * builders, attribute names, RFC 4514 DN comparison keys, uniqueMember
 * UIDs, UTF-8 validation, objectGUID ids, entry digests.
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
#include "sync/ldap_read.h"
#include "sync/strmap.h"

static void filter_escape_escapes_specials_and_non_ascii(void **state)
{
	const char in[] = "a*b(c)\\d\0e\xc3\xa9";
	char *out = ldap_filter_escape(in, sizeof(in) - 1);
	assert_string_equal(out, "a\\2ab\\28c\\29\\5cd\\00e\\c3\\a9");
	free(out);
	out = ldap_filter_escape("", 0);
	assert_string_equal(out, "");
	free(out);
}

static void filter_eq_escapes_the_value_and_checks_the_attribute(void **state)
{
	char *f = ldap_filter_eq("uid", "alice)(uid=*", 12);
	assert_string_equal(f, "(uid=alice\\29\\28uid=\\2a)");
	free(f);
	assert_null(ldap_filter_eq("uid)(x", "a", 1));
	assert_null(ldap_filter_eq("", "a", 1));
	f = ldap_filter_ge("modifyTimestamp", "20240101000000Z", 15);
	assert_string_equal(f, "(modifyTimestamp>=20240101000000Z)");
	free(f);
}

static void filter_and_or_wrap_bare_filters(void **state)
{
	char *f = ldap_filter_and("objectClass=person", "(uid=a)");
	assert_string_equal(f, "(&(objectClass=person)(uid=a))");
	free(f);
	char *parts[] = { "(a=1)", "(b=2)", "(c=3)" };
	f = ldap_filter_or(parts, 3);
	assert_string_equal(f, "(|(a=1)(b=2)(c=3))");
	free(f);
	assert_null(ldap_filter_or(parts, 0));
}

static void attribute_names_are_validated(void **state)
{
	const char *good[] = { "uid", "sAMAccountName", "entryUUID", "x-custom-1", "2.5.4.3", "mail;lang-en", "cn;binary" };
	const char *bad[] = { "", "1uid", "u id", "uid=", "uid)", "2.5..3", "mail;", "-uid", "a;b c" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(ldap_attr_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(ldap_attr_valid(bad[i]));
}

static void assert_same_key(const char *a, const char *b)
{
	char *ka = NULL, *kb = NULL;
	assert_int_equal(ldap_dn_key(a, &ka), TSR_OK);
	assert_int_equal(ldap_dn_key(b, &kb), TSR_OK);
	if (strcmp(ka, kb) != 0)
		fail_msg("'%s' -> '%s' but '%s' -> '%s'", a, ka, b, kb);
	free(ka);
	free(kb);
}

static void assert_other_key(const char *a, const char *b)
{
	char *ka = NULL, *kb = NULL;
	assert_int_equal(ldap_dn_key(a, &ka), TSR_OK);
	assert_int_equal(ldap_dn_key(b, &kb), TSR_OK);
	if (strcmp(ka, kb) == 0)
		fail_msg("'%s' and '%s' both -> '%s'", a, b, ka);
	free(ka);
	free(kb);
}

static void dn_keys_agree_across_spellings_of_one_dn(void **state)
{
	assert_same_key("uid=Alice,OU=People,dc=Example,DC=com", "uid=alice,ou=people,dc=example,dc=com");
	assert_same_key("cn=Smith\\, John,ou=people,dc=x", "cn=Smith\\2C John,ou=people,dc=x");
	assert_same_key("cn=\\ lead and trail\\ ,dc=x", "cn=\\20lead and trail\\20,dc=x");
	assert_same_key("uid=plus\\+one,dc=x", "uid=plus\\2Bone,dc=x");
	assert_same_key("cn=The \\\"Boss\\\",dc=x", "cn=The \\22Boss\\22,dc=x");
	assert_same_key("cn=J\xc3\xbcrgen M\xc3\xbcller,dc=x", "cn=J\\C3\\BCrgen M\\C3\\BCller,dc=x");
	assert_same_key("cn=Multi+uid=multi,dc=x", "UID=multi+CN=Multi,dc=x");
	assert_same_key("cn=back\\\\slash \\#1\\; x\\=y,dc=x", "cn=back\\5Cslash #1\\3B x\\3Dy,dc=x");
}

static void dn_keys_keep_different_dns_apart(void **state)
{
	assert_other_key("cn=a\\,b,dc=x", "cn=a,cn=b,dc=x");     /* escaped comma vs separator */
	assert_other_key("cn=a\\+b,dc=x", "cn=a+b=c,dc=x");        /* escaped plus vs multi-valued RDN */
	assert_other_key("cn=\\ a,dc=x", "cn=a,dc=x");             /* a leading space is part of the value */
	assert_other_key("uid=alice,ou=people,dc=x", "uid=alice,ou=staff,dc=x");
	char *k = NULL;
	assert_int_equal(ldap_dn_key("not a dn", &k), TSR_INVALID);
	assert_int_equal(ldap_dn_key("cn=\xff\xfe,dc=x", &k), TSR_INVALID);
	assert_int_equal(ldap_dn_key("", &k), TSR_INVALID);
	assert_null(k);
}

static void unique_member_uid_suffix_is_dropped(void **state)
{
	const char *v = "uid=a,dc=x#'0101'B";
	char *k1 = NULL, *k2 = NULL, *k3 = NULL;
	assert_int_equal(ldap_member_key(v, strlen(v), true, &k1), TSR_OK);
	assert_int_equal(ldap_dn_key("uid=a,dc=x", &k2), TSR_OK);
	assert_string_equal(k1, k2);
	/* as a plain member value, "#'0101'B" is part of the last RDN's value */
	assert_int_equal(ldap_member_key(v, strlen(v), false, &k3), TSR_OK);
	assert_string_not_equal(k3, k2);
	free(k1);
	free(k2);
	free(k3);
	k1 = NULL;
	assert_int_equal(ldap_member_key("x\0y", 3, true, &k1), TSR_INVALID);
	assert_null(k1);
}

static void utf8_validation_refuses_what_postgres_refuses(void **state)
{
	assert_true(ldap_utf8_valid("J\xc3\xbcrgen \xe6\x9d\x8e \xf0\x9f\x98\x80", 16));
	assert_false(ldap_utf8_valid("a\0b", 3));            /* NUL */
	assert_false(ldap_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
	assert_false(ldap_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(ldap_utf8_valid("\xe6\x9d", 2));         /* truncated */
	assert_false(ldap_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	assert_false(ldap_utf8_valid("\xff", 1));
}

static void object_guid_becomes_its_canonical_string_and_back(void **state)
{
	unsigned char g[16] = { 0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66,
				0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	struct berval bv = { 16, (char *)g };
	char id[64];
	assert_int_equal(ldap_external_id("objectGUID", &bv, id, sizeof(id)), TSR_OK);
	assert_string_equal(id, "00112233-4455-6677-8899-aabbccddeeff");
	char *f = ldap_filter_external_id("objectGUID", id);
	assert_string_equal(f, "(objectGUID=3\"\\11\\00UDwf\\88\\99\\aa\\bb\\cc\\dd\\ee\\ff)");
	free(f);
	assert_null(ldap_filter_external_id("objectGUID", "not-a-guid"));
	struct berval uuid = { 36, "f92ee594-7d8f-1041-93aa-31485a331850" };
	assert_int_equal(ldap_external_id("entryUUID", &uuid, id, sizeof(id)), TSR_OK);
	assert_string_equal(id, "f92ee594-7d8f-1041-93aa-31485a331850");
	struct berval bin = { 3, "\x01\x02\xff" };
	assert_int_equal(ldap_external_id("someId", &bin, id, sizeof(id)), TSR_OK);
	assert_string_equal(id, "0102ff");
	struct berval empty = { 0, "" };
	assert_int_equal(ldap_external_id("entryUUID", &empty, id, sizeof(id)), TSR_INVALID);
	assert_int_equal(ldap_external_id("entryUUID", &uuid, id, 10), TSR_TOO_LARGE);
}

static void ranged_attribute_names_are_recognised(void **state)
{
	long lo = -2, hi = -2;
	assert_true(ldap_range_attr("member;range=0-1499", "member", &lo, &hi));
	assert_int_equal(lo, 0);
	assert_int_equal(hi, 1499);
	assert_true(ldap_range_attr("Member;Range=1500-*", "member", &lo, &hi));
	assert_int_equal(lo, 1500);
	assert_int_equal(hi, -1);
	assert_false(ldap_range_attr("member", "member", &lo, &hi));
	assert_false(ldap_range_attr("memberOf;range=0-10", "member", &lo, &hi));
	assert_false(ldap_range_attr("member;range=10-5", "member", &lo, &hi));
	assert_false(ldap_range_attr("member;range=-1-5", "member", &lo, &hi));
	assert_false(ldap_range_attr("member;range=0-*x", "member", &lo, &hi));
	assert_false(ldap_range_attr("member;range=0-", "member", &lo, &hi));
}

static void digests_change_with_any_mirrored_field(void **state)
{
	char *mails1[] = { "a@x", "b@x" }, *mails2[] = { "b@x", "a@x" };
	struct ldap_user_entry u = { .dn = "uid=a,dc=x", .login = "a", .display_name = "A", .mails = mails1,
				     .n_mails = 2 };
	uint8_t d1[32], d2[32], d3[32];
	ldap_user_digest(&u, true, d1);
	ldap_user_digest(&u, true, d2);
	assert_memory_equal(d1, d2, 32);
	u.mails = mails2; /* the primary address changed */
	ldap_user_digest(&u, true, d3);
	assert_memory_not_equal(d1, d3, 32);
	u.mails = mails1;
	u.display_name = NULL; /* absent is not the same as empty */
	ldap_user_digest(&u, true, d3);
	assert_memory_not_equal(d1, d3, 32);
	u.display_name = "";
	ldap_user_digest(&u, true, d2);
	assert_memory_not_equal(d2, d3, 32);
	u.display_name = "A";
	ldap_user_digest(&u, false, d3); /* repo login mapping switched off */
	assert_memory_not_equal(d1, d3, 32);
	/* fields cannot bleed into each other */
	struct ldap_user_entry x = { .dn = "ab", .login = "c" }, y = { .dn = "a", .login = "bc" };
	ldap_user_digest(&x, true, d1);
	ldap_user_digest(&y, true, d2);
	assert_memory_not_equal(d1, d2, 32);
}

static void strmap_finds_what_was_put_and_refuses_duplicates(void **state)
{
	struct strmap m;
	assert_int_equal(strmap_init(&m, 2), TSR_OK);
	char keys[3000][8];
	for (size_t i = 0; i < 3000; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		assert_int_equal(strmap_put(&m, keys[i], i), TSR_OK);
	}
	assert_int_equal(strmap_put(&m, "k7", 1), TSR_CONFLICT);
	size_t v;
	for (size_t i = 0; i < 3000; i++) {
		assert_true(strmap_get(&m, keys[i], &v));
		assert_int_equal(v, i);
	}
	assert_false(strmap_get(&m, "k3000", NULL));
	assert_int_equal(m.n, 3000);
	strmap_free(&m);
	strmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(filter_escape_escapes_specials_and_non_ascii),
		cmocka_unit_test(filter_eq_escapes_the_value_and_checks_the_attribute),
		cmocka_unit_test(filter_and_or_wrap_bare_filters),
		cmocka_unit_test(attribute_names_are_validated),
		cmocka_unit_test(dn_keys_agree_across_spellings_of_one_dn),
		cmocka_unit_test(dn_keys_keep_different_dns_apart),
		cmocka_unit_test(unique_member_uid_suffix_is_dropped),
		cmocka_unit_test(utf8_validation_refuses_what_postgres_refuses),
		cmocka_unit_test(object_guid_becomes_its_canonical_string_and_back),
		cmocka_unit_test(ranged_attribute_names_are_recognised),
		cmocka_unit_test(digests_change_with_any_mirrored_field),
		cmocka_unit_test(strmap_finds_what_was_put_and_refuses_duplicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
