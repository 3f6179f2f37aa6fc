#!/usr/bin/env bash
# The test harness starts a private OpenLDAP slapd bound to loopback only, with the base tree
# in place, and stops it cleanly.
# shellcheck source=tests/lib/tap.sh
. "$(dirname "$0")/../lib/tap.sh"
# shellcheck source=tests/lib/slapd.sh
. "$(dirname "$0")/../lib/slapd.sh"

slapd_start 3
pid=$TEST_SLAPD_PID dir=$TEST_SLAPD_DIR
port=${TEST_LDAP_URI##*:}

out=$(ldap_search -s base -b "$TEST_LDAP_PEOPLE" dn)
is "$out" "dn: ou=people,dc=example,dc=com" "throwaway_slapd_has_ou_people"

ldap_add >/dev/null <<LDIF
dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice Example
sn: Example
mail: alice@example.com
userPassword: alice-pw
LDIF
out=$(LDAPNOINIT=1 ldapsearch -x -LLL -H "$TEST_LDAP_URI" -b "$TEST_LDAP_BASE" '(uid=alice)' mail entryUUID)
like "$out" "mail: alice@example\.com" "ldap_add_entry_is_found_by_anonymous_search"
like "$out" "entryUUID: [0-9a-f-]{36}" "throwaway_slapd_sets_entryuuid"
out=$(LDAPNOINIT=1 ldapwhoami -x -H "$TEST_LDAP_URI" -D "uid=alice,$TEST_LDAP_PEOPLE" -w alice-pw 2>&1)
is "$out" "dn:uid=alice,ou=people,dc=example,dc=com" "user_can_bind_with_its_password"

for n in 1 2 3 4; do
	printf 'dn: uid=u%d,%s\nobjectClass: inetOrgPerson\nuid: u%d\ncn: u%d\nsn: u\n\n' \
		"$n" "$TEST_LDAP_PEOPLE" "$n" "$n"
done | ldap_add >/dev/null
rc=0
LDAPNOINIT=1 ldapsearch -x -LLL -H "$TEST_LDAP_URI" -b "$TEST_LDAP_PEOPLE" '(objectClass=inetOrgPerson)' dn \
	>/dev/null 2>&1 || rc=$?
is "$rc" 4 "sizelimit_argument_limits_anonymous_searches (4 = sizeLimitExceeded)"

listen=$(ss -Hltn "( sport = :$port )" | awk '{print $4}' | sort -u | tr '\n' ' ')
is "$listen" "127.0.0.1:$port " "throwaway_slapd_listens_on_loopback_only"

slapd_stop
if pid_alive "$pid"; then
	fail "slapd_stop_ends_slapd" "pid $pid still alive"
else
	ok "slapd_stop_ends_slapd"
fi
if [[ -e $dir ]]; then
	fail "slapd_stop_removes_its_dir" "$dir still exists"
else
	ok "slapd_stop_removes_its_dir"
fi
is "$(ss -Hltn "( sport = :$port )")" "" "slapd_stop_frees_the_port"

tap_done
