/*
 * libFuzzer target: the parsers of directory data that the sync applies to
 * whatever the LDAP server sends — DN comparison keys (ldap_dn_key over
 * ldap_str2dn/ldap_dn2str), member/uniqueMember values (ldap_member_key),
 * UTF-8 validation, external ids (objectGUID), Active Directory range
 * attribute names (member;range=0-1499) — and the RFC 4515 escaping
 * every filter value goes through.
 * Build: ../configure CC=clang --enable-fuzzers && make tests/fuzz/fuzz_ldap_dn
 * Invariants checked: a key is its own key (normalisation is idempotent);
 * escaped filter values contain no metacharacter and unescape to the input;
 * an objectGUID id turns back into the same 16 bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/ldap.h"
#include "sync/ldap_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexv(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void check_escape(const uint8_t *data, size_t size)
{
	char *e = ldap_filter_escape(data, size);
	if (!e)
		return;
	size_t o = 0;
	for (const char *p = e; *p; p++) {
		if (*p == '(' || *p == ')' || *p == '*' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort(); /* a metacharacter or raw byte left in a filter value */
		unsigned char c = (unsigned char)*p;
		if (*p == '\\') {
			int hi = hexv(p[1]), lo = hi >= 0 ? hexv(p[2]) : -1;
			if (hi < 0 || lo < 0)
				abort();
			c = (unsigned char)(hi << 4 | lo);
			p += 2;
		}
		if (o >= size || c != data[o++])
			abort(); /* does not unescape to the input */
	}
	if (o != size)
		abort();
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_escape(data, size);
	(void)ldap_utf8_valid((const char *)data, size);

	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char *key = NULL;
	if (ldap_dn_key(s, &key) == TSR_OK) {
		char *again = NULL;
		if (ldap_dn_key(key, &again) != TSR_OK || strcmp(key, again) != 0)
			abort(); /* normalising a key must give the key */
		free(again);
	}
	free(key);
	for (int unique = 0; unique < 2; unique++) {
		char *mk = NULL;
		(void)ldap_member_key((const char *)data, size, unique, &mk);
		free(mk);
	}

	struct berval bv = { (ber_len_t)size, (char *)(uintptr_t)data };
	char id[512];
	if (ldap_external_id("objectGUID", &bv, id, sizeof(id)) == TSR_OK && size == 16) {
		char *f1 = ldap_filter_external_id("objectGUID", id), *f2 = ldap_filter_eq("objectGUID", data, 16);
		if (!f1 || !f2 || strcmp(f1, f2) != 0)
			abort(); /* the GUID string does not lead back to the entry */
		free(f1);
		free(f2);
	}
	(void)ldap_external_id("entryUUID", &bv, id, sizeof(id));
	long lo, hi;
	if (ldap_range_attr(s, "member", &lo, &hi) && (lo < 0 || (hi != -1 && hi < lo)))
		abort(); /* a range that does not make sense was accepted */
	free(s);
	return 0;
}
