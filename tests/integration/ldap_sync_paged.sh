#!/usr/bin/env bash
# ldap_sync_paged.sh — a slapd whose size limit is 500 entries per search, holding 5,000 users and
# a group with all 5,000 as members: a plain search as the service account stops at 500
# (sizeLimitExceeded), while the sync, paging with RFC 2696 and following the server's cookie,
# mirrors all 5,000 users and all 5,000 memberships.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

pg_start
ldapsync_slapd 500 paged
P=$TEST_LDAP_PEOPLE G=$TEST_LDAP_GROUPS
{
	for i in $(seq 1 5000); do
		printf 'dn: uid=p%05d,%s\nobjectClass: inetOrgPerson\nuid: p%05d\ncn: Person %d\nsn: P\nmail: p%05d@example.com\n\n' \
			"$i" "$P" "$i" "$i" "$i"
	done
	printf 'dn: cn=everyone,%s\nobjectClass: groupOfNames\ncn: everyone\n' "$G"
	for i in $(seq 1 5000); do printf 'member: uid=p%05d,%s\n' "$i" "$P"; done
	printf '\n'
} >"$LDAPSYNC_DIR/fixture.ldif"
ldap_add -f "$LDAPSYNC_DIR/fixture.ldif" >"$LDAPSYNC_DIR/fixture.log" 2>&1 ||
	fail "fixture_loaded" "$(tail -5 "$LDAPSYNC_DIR/fixture.log")"

rc=0
n=$(LDAPNOINIT=1 ldapsearch -x -LLL -H "$TEST_LDAP_URI" -D "$LDAPSYNC_BIND_DN" -y "$LDAPSYNC_DIR/ldap.pw" \
	-b "$P" '(objectClass=inetOrgPerson)' dn 2>/dev/null | grep -c '^dn:') || rc=$?
is "$n" 500 "a_plain_search_by_the_service_account_stops_at_the_size_limit"
rc=0
LDAPNOINIT=1 ldapsearch -x -LLL -H "$TEST_LDAP_URI" -D "$LDAPSYNC_BIND_DN" -y "$LDAPSYNC_DIR/ldap.pw" \
	-b "$P" '(objectClass=inetOrgPerson)' dn >/dev/null 2>&1 || rc=$?
is "$rc" 4 "the_plain_search_ends_in_sizelimitexceeded"

ldapsync_conf "page_size = 300"
ldapsync_start
sync_ldap
is "$SYNC_RC" 0 "the_sync_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "users +5000 added" "the_sync_adds_all_5000_users"
like "$SYNC_OUT" "memberships +5000 added" "the_sync_adds_all_5000_memberships"
is "$(q "SELECT count(*) FROM users u JOIN ldap_users l ON l.user_id = u.id WHERE u.active")" 5000 \
	"all_5000_users_are_in_postgres"
is "$(q "SELECT count(DISTINCT value) FROM user_emails WHERE source = 'ldap'")" 5000 "all_5000_mails_are_in_postgres"
is "$(q "SELECT min(user_name) || '..' || max(user_name) FROM users u JOIN ldap_users l ON l.user_id = u.id")" \
	"p00001..p05000" "first_and_last_pages_are_both_there"
like "$(grep -c 'SRCH base="ou=people' "$TEST_SLAPD_DIR/slapd.log")" "^(1[7-9]|[2-9][0-9])$" \
	"the_users_were_read_in_pages_of_300"
sync_ldap --full
like "$SYNC_OUT" "users +0 added, 0 updated, 0 deactivated" "a_full_re_sync_of_5000_finds_nothing_new"

ldapsync_finish
tap_done
