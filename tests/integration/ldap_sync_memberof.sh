#!/usr/bin/env bash
# ldap_sync_memberof.sh — with [ldap] member_of = true, memberships come from users' memberOf
# (Active Directory, the OpenLDAP memberof overlay) even when the service account may not read the
# groups' member values at all; a membership change, which changes memberOf but not the user's
# modifyTimestamp, is still seen by the next incremental run.
set -uo pipefail
# shellcheck source=tests/lib/tap.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/tap.sh"
# shellcheck source=tests/lib/ldapsync.sh disable=SC1091
. "$TESSERA_SRCDIR/tests/lib/ldapsync.sh"

pg_start
# the service account (bound by DN) cannot see member; everyone else reads everything
export TESSERA_SLAPD_EXTRA_CONF='access to attrs=member by dn.exact="cn=tessera-sync,dc=example,dc=com" none by * read
access to * by * read'
ldapsync_slapd 500 paged memberof
unset TESSERA_SLAPD_EXTRA_CONF
P=$TEST_LDAP_PEOPLE G=$TEST_LDAP_GROUPS
ldap_add >/dev/null 2>&1 <<LDIF || fail "fixture_loaded"
dn: uid=ann,$P
objectClass: inetOrgPerson
uid: ann
cn: Ann
sn: A

dn: uid=ben,$P
objectClass: inetOrgPerson
uid: ben
cn: Ben
sn: B

dn: cn=readers,$G
objectClass: groupOfNames
cn: readers
member: uid=ann,$P
member: uid=ben,$P

dn: cn=writers,$G
objectClass: groupOfNames
cn: writers
member: uid=ann,$P
LDIF

hidden=$(LDAPNOINIT=1 ldapsearch -x -LLL -H "$TEST_LDAP_URI" -D "$LDAPSYNC_BIND_DN" -y "$LDAPSYNC_DIR/ldap.pw" \
	-b "$G" '(cn=readers)' member 2>&1)
unlike "$hidden" "member:" "the_service_account_cannot_read_member_values"

members() {
	q "SELECT string_agg(g.name || ':' || u.user_name, ',' ORDER BY g.name, u.user_name)
	     FROM group_members m JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.member_user_id"
}

ldapsync_conf "member_of = false"
ldapsync_start
sync_ldap
is "$SYNC_RC" 0 "sync_without_member_of_succeeds" || diag "$SYNC_OUT"
is "$(members)" "" "without_member_of_hidden_members_give_no_memberships"
ldapsync_stop

ldapsync_conf "member_of = true"
ldapsync_start
sync_ldap
is "$SYNC_RC" 0 "sync_with_member_of_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "\(full" "changing_the_mapping_makes_the_run_full"
is "$(members)" "readers:ann,readers:ben,writers:ann" "memberships_come_from_memberof"

sleep 1.1
ldap_modify >/dev/null <<LDIF
dn: cn=writers,$G
changetype: modify
add: member
member: uid=ben,$P
-
delete: member
member: uid=ann,$P
LDIF
ts=$(ldap_search -b "uid=ben,$P" -s base '(objectClass=*)' modifyTimestamp memberOf)
like "$ts" "memberOf: cn=writers" "the_overlay_gave_ben_memberof_writers"
sync_ldap
is "$SYNC_RC" 0 "incremental_sync_succeeds" || diag "$SYNC_OUT"
like "$SYNC_OUT" "\(incremental" "the_run_is_incremental"
is "$(members)" "readers:ann,readers:ben,writers:ben" "a_memberof_change_is_seen_by_the_incremental_run"

ldapsync_finish
tap_done
