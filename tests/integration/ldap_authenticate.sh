#!/usr/bin/env bash
# ldap_authenticate.sh — password logins against a real slapd (ppolicy, TLS): runs the C tests in
# tests/ldaptest/test_ldap_auth (ldap_authenticate(), StartTLS and ldaps:// with the right and a
# wrong CA, paged searches over TLS), re-emitting each of their test points here. Also checks in
# slapd's own log that no bind was ever made with an empty password.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

ldapsync_slapd 500 paged ppolicy tls
P=$TEST_LDAP_PEOPLE
ldap_add >"$LDAPSYNC_DIR/fixture.log" 2>&1 <<LDIF || fail "fixture_loaded" "$(tail -5 "$LDAPSYNC_DIR/fixture.log")"
dn: uid=alice,$P
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
mail: alice@example.com
userPassword: alice-pw

dn: uid=bob,$P
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: bob-pw
pwdAccountLockedTime: 000001010000Z

dn: uid=carol,$P
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carol-pw
employeeType: disabled

dn: cn=Jürgen,$P
objectClass: inetOrgPerson
uid: jürgen
cn: Jürgen
sn: J
userPassword: jürgen-pw

dn: uid=twin,$P
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: T
userPassword: twin-pw

dn: ou=contractors,$P
objectClass: organizationalUnit
ou: contractors

dn: uid=twin,ou=contractors,$P
objectClass: inetOrgPerson
uid: twin
cn: Twin Two
sn: T
userPassword: twin-pw

dn: uid=dave,$P
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
LDIF

other=$(mktemp_dir otherca)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$other/ca.key" -out "$other/ca.pem" -days 2 \
	-subj "/CN=some other CA" >/dev/null 2>&1 || fail "other_ca_created"
bin=$TESSERA_BUILDDIR/tests/ldaptest/test_ldap_auth
[[ -x $bin ]] || fail "tests/ldaptest/test_ldap_auth_is_built" "missing $bin (make check builds it)"

out=$(TEST_LDAP_OTHER_CA=$other/ca.pem LDAPSYNC_PW_FILE=$LDAPSYNC_DIR/ldap.pw TEST_CLOSED_PORT=$(free_port) \
	CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 "$bin" 2>&1)
rc=$?
points=0
while IFS= read -r line; do
	if [[ $line =~ ^ok\ [0-9]+\ -\ (.*)$ ]]; then
		ok "${BASH_REMATCH[1]}"
		points=$((points + 1))
	elif [[ $line =~ ^not\ ok\ [0-9]+\ -\ (.*)$ ]]; then
		fail "${BASH_REMATCH[1]}" "$(printf '%s\n' "$out" | grep -E '^#' | head -20)"
		points=$((points + 1))
	fi
done <<<"$out"
if ((points == 0 || (rc != 0 && rc != 1))); then
	fail "test_ldap_auth_ran_to_completion" "exit $rc; output:
$(printf '%s\n' "$out" | tail -30)"
fi

# slapd logs every bind. Alice's entry was bound exactly where a non-empty password met a single
# match: right password (1), wrong password (1), login by mail (1), StartTLS (1), ldaps (1) = 5;
# the empty-password attempts, the filter-injection logins and the untrusted-CA attempts never bound.
binds=$(grep -c "BIND dn=\"uid=alice,$P\" method=128" "$TEST_SLAPD_DIR/slapd.log")
is "$binds" 5 "alice_was_bound_only_when_a_password_met_her_single_entry"

tap_done
